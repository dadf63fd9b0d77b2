// The conversation list (latest activity first) with the user's own controls above it.
import { useState } from 'preact/hooks';
import { html } from './html.js';
import { conversationTitle, otherMember, preview, shortTime } from '../format.js';
import { tickOf } from '../fold.js';
import { askForNotifications, notificationsSupported, subscribeToPush } from '../notify.js';
import { Tick } from './tick.js';
import { Avatar } from './avatar.js';
import { AccountSettings } from './account.js';
import { Search } from './search.js';
import { AdminSettings } from './admin.js';
import { useSubmit } from './actions.js';

const CONNECTION_TEXT = { online: 'Online', connecting: 'Connecting…', offline: 'Offline' };

export function Sidebar({ state }) {
  const [form, setForm] = useState(null); // null | 'chat' | 'group'
  const toggle = (which) => setForm(form === which ? null : which);
  return html`
    <nav class="sidebar" aria-label="Conversations">
      <header class="me">
        <${Avatar} state=${state} user=${state.me} />
        <strong data-testid="my-name">${state.me.display_name || state.me.username}</strong>
        <span class=${`connection ${state.status}`} data-testid="connection"
          data-state=${state.status} role="status">${CONNECTION_TEXT[state.status]}</span>
        <${NotificationButton} state=${state} />
        <button type="button" class="link" data-testid="logout" onClick=${() => state.logout()}>
          Log out</button>
      </header>
      <${PushPreviewSetting} state=${state} />
      <${Search} state=${state} />
      <div class="actions">
        <button type="button" data-testid="new-chat" aria-expanded=${form === 'chat'}
          onClick=${() => toggle('chat')}>New chat</button>
        <button type="button" data-testid="new-group" aria-expanded=${form === 'group'}
          onClick=${() => toggle('group')}>New group</button>
      </div>
      ${form === 'chat' && html`<${NewChat} state=${state} done=${() => setForm(null)} />`}
      ${form === 'group' && html`<${NewGroup} state=${state} done=${() => setForm(null)} />`}
      <ul class="conversations">
        ${state.sortedConversations().map((c) => html`
          <${ConversationItem} key=${c.conversation_id} state=${state} c=${c} />`)}
      </ul>
    </nav>`;
}

function ConversationItem({ state, c }) {
  const unread = state.unread(c);
  const last = c.last_message;
  const mine = last && last.sender_id === state.me.user_id;
  const title = conversationTitle(c, state.users, state.me.user_id);
  return html`
    <li>
      <button type="button" class=${`conversation ${state.openId === c.conversation_id ? 'open' : ''}`}
        data-testid="conversation" data-conversation-id=${c.conversation_id}
        aria-current=${state.openId === c.conversation_id ? 'true' : undefined}
        aria-label=${`${title}${unread ? `, ${unread} unread` : ''}`}
        onClick=${() => state.open(c.conversation_id)}>
        ${c.kind === 'direct' && otherMember(c, state.me.user_id)
          ? html`<${Avatar} state=${state} userId=${otherMember(c, state.me.user_id)} />`
          : html`<${Avatar} state=${state} user=${{ display_name: title }} />`}
        <span class="title" data-testid="conversation-name">${title}</span>
        <span class="when">${last ? shortTime(last.ts) : ''}</span>
        <span class="last" data-testid="conversation-last"
          data-status=${mine ? tickOf(last, c) : undefined}>
          ${mine && html`<${Tick} status=${tickOf(last, c)} />`}
          ${preview(last, state.users)}
        </span>
        <span class="badge" data-testid="unread" hidden=${unread === 0}>${unread}</span>
      </button>
    </li>`;
}

// People type names: a name nobody has is said as such.
const noSuchUser = (err) => (err.code === 'not_found' ? 'No user with that name.' : err.message);

function NewChat({ state, done }) {
  const [username, setUsername] = useState('');
  const { error, busy, submit } = useSubmit(
    async () => state.open(await state.startDirect(username)), done, noSuchUser);
  return html`
    <form class="inline-form" onSubmit=${submit}>
      <label for="new-chat-username">Username</label>
      <input id="new-chat-username" data-testid="new-chat-username" required autofocus
        autocapitalize="none" value=${username} onInput=${(e) => setUsername(e.target.value)} />
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button type="submit" data-testid="new-chat-submit" disabled=${busy}>Start chat</button>
    </form>`;
}

function NewGroup({ state, done }) {
  const [name, setName] = useState('');
  const [members, setMembers] = useState('');
  const { error, busy, submit } = useSubmit(async () => {
    const usernames = members.split(',').map((u) => u.trim()).filter(Boolean);
    state.open(await state.createGroup(name.trim(), usernames));
  }, done, noSuchUser);
  return html`
    <form class="inline-form" onSubmit=${submit}>
      <label for="new-group-name">Group name</label>
      <input id="new-group-name" data-testid="new-group-name" required autofocus value=${name}
        onInput=${(e) => setName(e.target.value)} />
      <label for="new-group-members">Members (usernames, comma-separated)</label>
      <input id="new-group-members" data-testid="new-group-members" autocapitalize="none"
        value=${members} onInput=${(e) => setMembers(e.target.value)} />
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button type="submit" data-testid="new-group-submit" disabled=${busy}>Create group</button>
    </form>`;
}

function NotificationButton({ state }) {
  const [permission, setPermission] = useState(
    notificationsSupported() ? Notification.permission : 'unsupported');
  if (permission !== 'default') return null;
  const ask = async () => {
    const answer = await askForNotifications();
    setPermission(answer);
    if (answer === 'granted') subscribeToPush(state.api); // wake this device when it is closed
  };
  return html`
    <button type="button" class="link" data-testid="notifications" onClick=${ask}>
      Enable notifications</button>`;
}

// How much a push notification may say: push services and lock screens see it.
const PREVIEWS = [['full', 'Sender and message'], ['sender', 'Sender only'],
  ['none', 'Nothing but "New message"']];

function PushPreviewSetting({ state }) {
  const value = state.me.push_preview ?? 'full';
  const [error, setError] = useState(null);
  const change = async (event) => {
    setError(null);
    try {
      await state.rememberMe(await state.api.setPushPreview(event.target.value));
    } catch (err) {
      setError(err.message);
      event.target.value = value;
    }
  };
  const [open, setOpen] = useState(false);
  return html`
    <details class="settings" onToggle=${(e) => setOpen(e.target.open)}>
      <summary data-testid="settings">Settings</summary>
      <label for="push-preview">Notifications show</label>
      <select id="push-preview" data-testid="push-preview" value=${value} onChange=${change}>
        ${PREVIEWS.map(([v, text]) => html`<option value=${v}>${text}</option>`)}
      </select>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      ${open && html`<${AccountSettings} state=${state} />`}
      ${state.me.role === 'admin' && html`<${AdminSettings} state=${state} />`}
    </details>`;
}
