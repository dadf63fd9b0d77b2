// A group's members: admins add and remove people; anyone can leave.
import { useState } from 'preact/hooks';
import { html } from './html.js';
import { displayName } from '../format.js';
import { Avatar } from './avatar.js';

export function Members({ state, c }) {
  const [username, setUsername] = useState('');
  const [error, setError] = useState(null);
  const admin = c.members.some((m) => m.user_id === state.me.user_id && m.role === 'admin');

  async function act(action) {
    setError(null);
    try {
      await action();
      setUsername('');
    } catch (err) {
      setError(err.code === 'not_found' ? 'No user with that name.' : err.message);
    }
  }

  return html`
    <section class="members" aria-label="Members">
      <ul>
        ${c.members.map((m) => html`
          <li key=${m.user_id} data-testid="member" data-user-id=${m.user_id}>
            <${Avatar} state=${state} userId=${m.user_id} />
            ${displayName(state.users, m.user_id)}${m.role === 'admin' ? ' (admin)' : ''}
            ${admin && m.user_id !== state.me.user_id && html`
              <button type="button" class="link"
                onClick=${() => act(() => state.api.removeMember(c.conversation_id, m.user_id))}>
                Remove</button>`}
          </li>`)}
      </ul>
      ${admin && html`
        <form class="inline-form" onSubmit=${(e) => { e.preventDefault(); act(() => state.addMember(c.conversation_id, username)); }}>
          <label for="add-member-username">Add a member</label>
          <input id="add-member-username" data-testid="add-member-username" required
            autocapitalize="none" value=${username} onInput=${(e) => setUsername(e.target.value)} />
          <button type="submit" data-testid="add-member-submit">Add</button>
        </form>`}
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button type="button" class="danger" data-testid="leave-group"
        onClick=${() => act(() => state.leave(c.conversation_id))}>Leave group</button>
    </section>`;
}
