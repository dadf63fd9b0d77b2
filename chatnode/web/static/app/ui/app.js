// The whole screen: the login form, or the conversation list beside the open conversation
// (one at a time on a phone-sized screen).
import { useEffect } from 'preact/hooks';
import { html, useChat } from './html.js';
import { Login } from './login.js';
import { InviteRegister, takeInviteFromHash } from './invite.js';
import { Sidebar } from './sidebar.js';
import { ConversationPane } from './conversation.js';

export function App({ state }) {
  useChat(state);
  useEffect(() => {
    const follow = () => {
      if (takeInviteFromHash(state)) return;
      state.open(decodeURIComponent(location.hash.slice(1)) || null);
    };
    window.addEventListener('hashchange', follow);
    if (state.me || location.hash.startsWith('#invite=')) follow();
    return () => window.removeEventListener('hashchange', follow);
  }, [state, state.me]);

  if (!state.booted) return html`<p class="loading">Loading…</p>`;
  if (!state.me && state.invite) return html`<${InviteRegister} state=${state} />`;
  if (!state.me) return html`<${Login} state=${state} />`;
  const open = state.openId && state.conversations.get(state.openId);
  return html`
    <div class=${`layout ${open ? 'has-open' : ''}`}>
      <${Sidebar} state=${state} />
      <main class="pane" aria-label="Conversation">
        ${open ? html`<${ConversationPane} key=${open.conversation_id} state=${state} c=${open} />`
          : html`<p class="empty">Choose a conversation, or start a new one.</p>`}
      </main>
      ${state.notice && html`
        <div class="notice" role="status">
          ${state.notice}
          <button type="button" aria-label="Dismiss" onClick=${() => { state.notice = null; state.changed(); }}>×</button>
        </div>`}
    </div>`;
}
