// An admin's view of the node's accounts: every account with its role, state and last seen,
// and per account Disable / Enable, Make admin / Make user and "Set a new password" (for
// someone who forgot theirs). The admin's own row has none of them: the node refuses an admin
// who would lock themselves out, and their own password is changed under Password, with the
// current one. The list is read again after every change, so it shows what the node holds.
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from './html.js';
import { lastSeen } from '../format.js';
import { Outcome, useAction, useSubmit } from './actions.js';

export function AccountsAdmin({ state }) {
  const [users, setUsers] = useState(null);
  const { busy, error, done, run } = useAction();
  const [loadError, setLoadError] = useState(null);
  const reload = async () => {
    try {
      setUsers((await state.api.users()).users);
      setLoadError(null);
    } catch (err) {
      setLoadError(err.message);
    }
  };
  useEffect(() => { reload(); }, [state.api]);
  // Whatever the answer, the list is read again: a refusal may mean it changed elsewhere.
  const act = (action, doneText) => run(action, doneText).finally(reload);
  return html`
    <section class="admin" aria-labelledby="accounts-heading">
      <h2 id="accounts-heading">Accounts</h2>
      ${loadError && html`<p class="error" role="alert">${loadError}</p>`}
      <${Outcome} error=${error} done=${done} testid="account-result" />
      ${users && html`
        <ul class="accounts" aria-label="Accounts" data-testid="accounts">
          ${users.map((u) => html`
            <${AccountRow} key=${u.user_id} state=${state} user=${u} busy=${busy} act=${act} />`)}
        </ul>`}
      <button type="button" class="link" data-testid="accounts-refresh" onClick=${reload}>
        Refresh</button>
    </section>`;
}

function AccountRow({ state, user, busy, act }) {
  const [resetting, setResetting] = useState(false);
  const mine = user.user_id === state.me.user_id;
  const who = user.username;
  const update = (change, text) => act(() => state.api.updateUser(user.user_id, change), text);
  return html`
    <li data-testid="account" data-user-id=${user.user_id} data-username=${user.username}
      data-role=${user.role} data-disabled=${user.disabled ? 'true' : 'false'}>
      <span class="account-name" data-testid="account-name">
        ${user.display_name} <span class="muted">@${user.username}${mine ? ' (you)' : ''}</span>
      </span>
      <span class="account-facts muted" data-testid="account-facts">${facts(user)}</span>
      ${!mine && html`
        <span class="account-actions">
          ${user.disabled
            ? html`<button type="button" class="link" data-testid="account-enable" disabled=${busy}
                aria-label=${`Enable ${who}`}
                onClick=${() => update({ disabled: false }, `${who} is enabled: they can log in`
                  + ' again.')}>Enable</button>`
            : html`<button type="button" class="link" data-testid="account-disable"
                disabled=${busy} aria-label=${`Disable ${who}`}
                onClick=${() => update({ disabled: true }, `${who} is disabled: they are logged`
                  + ' out and cannot log in.')}>Disable</button>`}
          ${user.role === 'admin'
            ? html`<button type="button" class="link" data-testid="account-make-user"
                disabled=${busy} aria-label=${`Make ${who} a user`}
                onClick=${() => update({ role: 'user' }, `${who} is no longer an admin.`)}>
                Make user</button>`
            : html`<button type="button" class="link" data-testid="account-make-admin"
                disabled=${busy} aria-label=${`Make ${who} an admin`}
                onClick=${() => update({ role: 'admin' }, `${who} is now an admin of this`
                  + ' node.')}>Make admin</button>`}
          <button type="button" class="link" data-testid="account-password"
            aria-expanded=${resetting ? 'true' : 'false'}
            aria-label=${`Set a new password for ${who}`}
            onClick=${() => setResetting(!resetting)}>Set a new password</button>
        </span>
        ${resetting && html`
          <${NewPassword} state=${state} user=${user} act=${act}
            close=${() => setResetting(false)} />`}`}
    </li>`;
}

function facts(user) {
  const seen = user.last_seen ? lastSeen(user.last_seen) : 'never seen';
  return `${user.role}, ${user.disabled ? 'disabled' : 'enabled'}, ${seen}`;
}

function NewPassword({ state, user, act, close }) {
  const [password, setPassword] = useState('');
  const input = useRef(null);
  useEffect(() => input.current?.focus(), []); // opened by a click: type at once
  const id = `new-password-${user.user_id}`;
  // A refusal (the password's rules) stays here, by the field. A success closes the form and
  // is said in the section's status line, through `act`, which also reads the list again.
  const { error, busy, submit } = useSubmit(async () => {
    const answer = await state.api.resetPassword(user.user_id, password);
    act(async () => answer, ({ devices_logged_out: n }) => `New password set for`
      + ` ${user.username}; ${n} device${n === 1 ? '' : 's'} logged out. Tell them their new`
      + ' password yourself: the node does not send it.');
    close();
  });
  return html`
    <form class="inline-form account-password" onSubmit=${submit}
      aria-label=${`New password for ${user.username}`}>
      <label for=${id}>New password for ${user.username} (at least 8 characters)</label>
      <input id=${id} ref=${input} type="password" autocomplete="new-password" required
        minlength="8" data-testid="account-new-password" value=${password}
        onInput=${(e) => setPassword(e.target.value)} />
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button type="submit" data-testid="account-password-submit" disabled=${busy}>
        Set password</button>
      <button type="button" class="secondary" data-testid="account-password-cancel"
        onClick=${close}>Cancel</button>
    </form>`;
}
