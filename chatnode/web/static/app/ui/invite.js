// Registering with an invite link (`/#invite=TOKEN`): the person chooses a username, a display
// name and a password, and is logged in at once. A used, expired or revoked invite shows the
// node's own words for it.
import { useState } from 'preact/hooks';
import { useSubmit } from './actions.js';
import { html } from './html.js';

// Take the token out of the address bar as soon as the page has it, so that it stays out of
// the history and of anything copied from the address bar later.
export function takeInviteFromHash(state) {
  const match = /^#invite=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (!match) return false;
  history.replaceState(null, '', location.pathname + location.search);
  if (state.me) state.notice = 'You are logged in already: log out first to use that invite link.';
  else state.invite = match[1];
  state.changed();
  return true;
}

export function InviteRegister({ state }) {
  const [username, setUsername] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [password, setPassword] = useState('');
  const { error, busy, submit } = useSubmit(
    () => state.login(username.trim(), password, {
      register: true, invite: state.invite, displayName: displayName.trim() || undefined }),
    () => {}, explain);

  function toLogin() {
    state.invite = null;
    state.changed();
  }

  return html`
    <main class="login">
      <h1><img src="/static/icons/icon.svg" alt="" width="40" height="40" /> chatnode</h1>
      <p>You are invited. Choose how you log in and how others see you.</p>
      <form onSubmit=${submit} aria-label="Create your account">
        <label for="invite-username">Username</label>
        <input id="invite-username" data-testid="invite-username" autocomplete="username"
          autocapitalize="none" required maxlength="32" value=${username}
          aria-describedby="invite-username-hint" onInput=${(e) => setUsername(e.target.value)} />
        <small id="invite-username-hint">Letters, digits, dot, dash or underscore.</small>
        <label for="invite-display-name">Display name (optional)</label>
        <input id="invite-display-name" data-testid="invite-display-name" autocomplete="name"
          maxlength="64" value=${displayName} onInput=${(e) => setDisplayName(e.target.value)} />
        <label for="invite-password">Password (at least 8 characters)</label>
        <input id="invite-password" data-testid="invite-password" type="password" required
          minlength="8" autocomplete="new-password" value=${password}
          onInput=${(e) => setPassword(e.target.value)} />
        ${error && html`<p class="error" role="alert" data-testid="invite-error">${error}</p>`}
        <button type="submit" data-testid="invite-submit" disabled=${busy}>Create account</button>
        <button type="button" class="secondary" data-testid="invite-to-login" onClick=${toLogin}>
          I have an account: log in</button>
      </form>
    </main>`;
}

// The node names a refused field in its own terms (`$.username`); say it in the form's.
const FIELDS = {
  '$.username': 'Choose a username of 1 to 32 letters, digits, dots, dashes or underscores.',
  '$.password': 'Choose a password of at least 8 characters.',
  '$.display_name': 'A display name has at most 64 characters.',
};

function explain(err) {
  if (err.status === 0) return 'Cannot reach the server. Check your connection.';
  if (err.code === 'conflict') return 'That username is taken: choose another.';
  if (err.code === 'invalid') {
    const field = Object.keys(FIELDS).find((f) => err.message.includes(f));
    if (field) return FIELDS[field];
  }
  return err.message;
}
