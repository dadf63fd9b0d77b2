// One open conversation: who it is with (presence, typing), the messages, and the composer.
import { useState } from 'preact/hooks';
import { html } from './html.js';
import { conversationTitle, displayName, lastSeen, otherMember } from '../format.js';
import { MessageList } from './messages.js';
import { Composer } from './composer.js';
import { Members } from './members.js';

export function ConversationPane({ state, c }) {
  const [replyTo, setReplyTo] = useState(null); // a folded item
  const [editing, setEditing] = useState(null); // a folded item
  const [showMembers, setShowMembers] = useState(false);
  const title = conversationTitle(c, state.users, state.me.user_id);
  return html`
    <section class="conversation-pane" aria-labelledby="conversation-title">
      <header class="conversation-header">
        <button type="button" class="back" data-testid="back" aria-label="Back to conversations"
          onClick=${() => { location.hash = ''; state.open(null); }}>←</button>
        <div class="who">
          <h2 id="conversation-title">${title}</h2>
          <p class="subtitle">
            <span data-testid="presence">${presenceLine(state, c)}</span>
            <span data-testid="typing" aria-live="polite">${typingLine(state, c)}</span>
          </p>
        </div>
        ${c.kind === 'group' && html`
          <button type="button" data-testid="members-toggle" aria-expanded=${showMembers}
            onClick=${() => setShowMembers(!showMembers)}>Members</button>`}
      </header>
      ${showMembers && html`<${Members} state=${state} c=${c} />`}
      <${MessageList} state=${state} c=${c}
        onReply=${(item) => { setEditing(null); setReplyTo(item); }}
        onEdit=${(item) => { setReplyTo(null); setEditing(item); }} />
      <${Composer} state=${state} c=${c} replyTo=${replyTo} editing=${editing}
        clear=${() => { setReplyTo(null); setEditing(null); }} />
    </section>`;
}

function presenceLine(state, c) {
  if (c.kind === 'group') {
    const others = c.members.filter((m) => m.user_id !== state.me.user_id);
    const online = others.filter((m) => state.presence.get(m.user_id)?.online).length;
    return `${c.members.length} members${online ? `, ${online} online` : ''}`;
  }
  const presence = state.presence.get(otherMember(c, state.me.user_id));
  if (!presence) return '';
  return presence.online ? 'online' : lastSeen(presence.last_seen);
}

function typingLine(state, c) {
  const who = [...(state.typing.get(c.conversation_id)?.keys() ?? [])];
  if (!who.length) return '';
  if (c.kind === 'direct') return 'typing…';
  const names = who.map((id) => displayName(state.users, id)).join(', ');
  return `${names} ${who.length === 1 ? 'is' : 'are'} typing…`;
}
