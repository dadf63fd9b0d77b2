// The messages of the open conversation. Older pages load when the user scrolls to the top;
// what is on screen while the tab is visible is marked read with one cumulative `read`.
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { html } from './html.js';
import { foldConversation, groupReactions, tickOf } from '../fold.js';
import { clockTime, displayName, systemText } from '../format.js';
import { Media } from './media.js';
import { Avatar } from './avatar.js';
import { Tick } from './tick.js';

const EMOJIS = ['👍', '❤️', '😂', '😮', '😢', '🙏'];
const NEAR_EDGE_PX = 80;
const HIGHLIGHT_MS = 2500; // how long a message opened from search stays highlighted

export function MessageList({ state, c, onReply, onEdit }) {
  const list = useRef(null);
  const stickToBottom = useRef(true);
  const anchor = useRef(null); // scroll position to keep while older messages are prepended
  const visible = useRef(new Set());
  const [flash, setFlash] = useState(null); // the seq of a search hit just scrolled to
  const id = c.conversation_id;
  const { items, bySeq } = foldConversation(state.entriesOf(id), state.pendingOf(id));
  const lastItem = items.at(-1);

  // Everything up to the newest message on screen is read; when the newest message of all is
  // on screen, so are the events after it (reactions, edits), up to the conversation's last seq.
  function markRead() {
    if (document.visibilityState !== 'visible' || !visible.current.size) return;
    const seqs = [...visible.current].map((el) => Number(el.dataset.seq));
    const newest = Math.max(...seqs);
    state.markRead(id, lastItem && newest >= lastItem.seq ? c.last_seq : newest);
  }

  useEffect(() => {
    // On screen: at least half of the message, or half the list's height for a tall one.
    const observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        const shown = entry.intersectionRatio >= 0.5
          || entry.intersectionRect.height >= entry.rootBounds.height / 2;
        if (shown) visible.current.add(entry.target);
        else visible.current.delete(entry.target);
      }
      markRead();
    }, { root: list.current, threshold: [0, 0.25, 0.5, 0.75, 1] });
    const observe = () => {
      for (const el of list.current.querySelectorAll('[data-seq]')) observer.observe(el);
    };
    observe();
    const mutations = new MutationObserver(() => {
      for (const el of visible.current) if (!el.isConnected) visible.current.delete(el);
      observe();
    });
    mutations.observe(list.current, { childList: true, subtree: true });
    document.addEventListener('visibilitychange', markRead);
    return () => {
      observer.disconnect();
      mutations.disconnect();
      document.removeEventListener('visibilitychange', markRead);
    };
  }, [id]);

  useEffect(markRead);

  useLayoutEffect(() => {
    const el = list.current;
    if (anchor.current && el.scrollHeight !== anchor.current.height) {
      el.scrollTop = anchor.current.top + (el.scrollHeight - anchor.current.height);
      anchor.current = null;
    } else if (stickToBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
    // A short conversation cannot be scrolled, so fetch older messages until it can.
    if (el.scrollHeight <= el.clientHeight && !state.historyDone.has(id)) state.loadOlder(id);
    // A search hit: once its message is here, centre it, focus it and highlight it briefly.
    const hit = state.highlight;
    const target = hit?.conversationId === id
      && el.querySelector(`[data-testid="message"][data-seq="${hit.seq}"]`);
    if (target) {
      state.highlight = null;
      stickToBottom.current = false;
      target.scrollIntoView({ block: 'center' });
      target.focus({ preventScroll: true });
      setFlash(hit.seq);
    }
  });

  useEffect(() => {
    if (flash === null) return undefined;
    const timer = setTimeout(() => setFlash(null), HIGHLIGHT_MS);
    return () => clearTimeout(timer);
  }, [flash]);

  function onScroll() {
    const el = list.current;
    stickToBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_EDGE_PX;
    if (el.scrollTop < NEAR_EDGE_PX && !state.historyDone.has(id)) {
      anchor.current = { top: el.scrollTop, height: el.scrollHeight };
      state.loadOlder(id);
    }
  }

  return html`
    <ol class="messages" ref=${list} onScroll=${onScroll} role="log" aria-live="polite"
      aria-label="Messages" tabindex="0">
      ${state.historyLoading.has(id) && html`<li class="history-note">Loading older messages…</li>`}
      ${state.historyDone.has(id) && html`<li class="history-note">Start of the conversation</li>`}
      ${items.map((item) => item.kind === 'system'
        ? html`<li key=${item.seq} class="system" data-testid="system-message" data-seq=${item.seq}>
            ${systemText(item.body, state.users)}</li>`
        : html`<${MessageItem} key=${`${item.sender_id}:${item.client_msg_id}`} state=${state} c=${c} item=${item}
            quoted=${item.reply_to && bySeq.get(item.reply_to)} highlighted=${item.seq === flash}
            onReply=${onReply} onEdit=${onEdit} />`)}
    </ol>`;
}

function MessageItem({ state, c, item, quoted, highlighted, onReply, onEdit }) {
  const [picking, setPicking] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const me = state.me.user_id;
  const mine = item.sender_id === me;
  const status = mine ? tickOf(item, c) : undefined;
  const sender = displayName(state.users, item.sender_id);
  const settled = !item.pending && !item.deleted;
  const myReaction = item.reactions.get(me);
  const react = (emoji) => {
    setPicking(false);
    state.react(c.conversation_id, item.seq, emoji === myReaction ? '' : emoji);
  };
  return html`
    <li class=${`message ${mine ? 'mine' : 'theirs'}${highlighted ? ' highlighted' : ''}`}
      data-testid="message" data-seq=${item.seq} data-highlighted=${highlighted ? 'true' : undefined}
      data-client-msg-id=${item.client_msg_id} data-status=${status}
      tabindex="0">
      ${!mine && c.kind === 'group' ? html`<div class="sender">
          <${Avatar} state=${state} userId=${item.sender_id} />${sender}</div>`
        : html`<span class="visually-hidden">${mine ? 'You' : sender}: </span>`}
      ${item.reply_to && html`<blockquote data-testid="reply-quote">
        ${quoted ? `${displayName(state.users, quoted.sender_id)}: ${quoted.deleted ? 'message deleted' : quoted.body}`
          : `message #${item.reply_to}`}</blockquote>`}
      ${item.kind === 'media' && !item.deleted && html`
        <${Media} state=${state} mediaId=${item.media_id} name=${item.body} />`}
      <div class="body" data-testid="message-body">
        ${item.deleted ? html`<em>message deleted</em>` : item.kind === 'media' ? '' : item.body}
      </div>
      <div class="meta">
        ${item.edited && !item.deleted && html`<span data-testid="edited">edited</span>`}
        <time datetime=${new Date(item.ts).toISOString()}>${clockTime(item.ts)}</time>
        ${mine && html`<${Tick} status=${status} />`}
      </div>
      ${item.reactions.size > 0 && html`
        <div class="reactions">
          ${[...groupReactions(item.reactions)].map(([emoji, users]) => html`
            <button type="button" data-testid="reaction" data-emoji=${emoji}
              aria-pressed=${users.includes(me)} onClick=${() => react(emoji)}
              title=${users.map((u) => displayName(state.users, u)).join(', ')}>
              ${emoji} ${users.length}</button>`)}
        </div>`}
      ${item.failed && html`
        <p class="error" role="alert">Not sent: ${item.failed}
          <button type="button" class="link" onClick=${() => state.retry(item.client_msg_id)}>Retry</button>
          <button type="button" class="link" onClick=${() => state.discard(item.client_msg_id)}>Discard</button>
        </p>`}
      ${settled && html`
        <div class="message-actions">
          <button type="button" data-testid="reply" onClick=${() => onReply(item)}>Reply</button>
          <button type="button" data-testid="react" aria-expanded=${picking}
            onClick=${() => setPicking(!picking)}>React</button>
          ${mine && item.kind === 'text' && html`
            <button type="button" data-testid="edit" onClick=${() => onEdit(item)}>Edit</button>`}
          ${mine && (confirming
            ? html`<button type="button" class="danger" data-testid="delete-confirm"
                onClick=${() => state.remove(c.conversation_id, item.seq)}>Delete for everyone</button>`
            : html`<button type="button" data-testid="delete"
                onClick=${() => setConfirming(true)}>Delete</button>`)}
        </div>`}
      ${picking && html`
        <div class="emoji-picker" role="group" aria-label="Reactions">
          ${EMOJIS.map((emoji) => html`
            <button type="button" data-testid="emoji" data-emoji=${emoji}
              aria-label=${`React with ${emoji}`} onClick=${() => react(emoji)}>${emoji}</button>`)}
        </div>`}
    </li>`;
}
