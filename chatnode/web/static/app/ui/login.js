// Log in, or create an account when the node allows open registration.
import { useState } from 'preact/hooks';
import { html } from './html.js';

export function Login({ state }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(state.notice);
  const [busy, setBusy] = useState(false);

  async function submit(event, register = false) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await state.login(username.trim(), password, { register });
      state.notice = null;
    } catch (err) {
      setError(err.status === 0 ? 'Cannot reach the server. Check your connection.' : err.message);
    } finally {
      setBusy(false);
    }
  }

  return html`
    <main class="login">
      <h1><img src="/static/icons/icon.svg" alt="" width="40" height="40" /> chatnode</h1>
      <form onSubmit=${submit}>
        <label for="login-username">Username</label>
        <input id="login-username" data-testid="login-username" autocomplete="username"
          autocapitalize="none" required value=${username}
          onInput=${(e) => setUsername(e.target.value)} />
        <label for="login-password">Password</label>
        <input id="login-password" data-testid="login-password" type="password" required
          autocomplete="current-password" value=${password}
          onInput=${(e) => setPassword(e.target.value)} />
        ${error && html`<p class="error" role="alert">${error}</p>`}
        <button type="submit" data-testid="login-submit" disabled=${busy}>Log in</button>
        <button type="button" class="secondary" data-testid="register-submit" disabled=${busy}
          onClick=${(e) => submit(e, true)}>Create account</button>
      </form>
    </main>`;
}
