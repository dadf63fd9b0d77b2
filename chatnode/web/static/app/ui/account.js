// Settings of one's own account: display name and avatar, password, and the devices logged in.
import { useEffect, useState } from 'preact/hooks';
import { html } from './html.js';
import { lastSeen } from '../format.js';
import { Avatar } from './avatar.js';
import { Outcome, useAction } from './actions.js';

export function AccountSettings({ state }) {
  const [passwordChanges, setPasswordChanges] = useState(0); // the device list follows them
  return html`
    <${ProfileSettings} state=${state} />
    <${PasswordSettings} state=${state} changed=${() => setPasswordChanges((n) => n + 1)} />
    <${DeviceSettings} state=${state} reload=${passwordChanges} />`;
}

function ProfileSettings({ state }) {
  const [name, setName] = useState(state.me.display_name ?? '');
  const { busy, error, done, run } = useAction();
  const save = (event) => {
    event.preventDefault();
    run(() => state.setDisplayName(name), 'Name saved.');
  };
  const upload = (event) => {
    const file = event.target.files[0];
    event.target.value = '';
    if (file) run(() => state.setAvatar(file), 'Picture saved.');
  };
  return html`
    <fieldset class="account-section">
      <legend>Profile</legend>
      <div class="profile-picture">
        <${Avatar} state=${state} user=${state.me} />
        <label for="avatar-input">Picture (PNG, JPEG, GIF or WebP)</label>
        <input id="avatar-input" type="file" accept="image/png,image/jpeg,image/gif,image/webp"
          data-testid="avatar-input" disabled=${busy} onChange=${upload} />
        ${state.me.avatar && html`
          <button type="button" class="link" data-testid="avatar-remove" disabled=${busy}
            onClick=${() => run(() => state.removeAvatar(), 'Picture removed.')}>
            Remove picture</button>`}
      </div>
      <form onSubmit=${save}>
        <label for="display-name">Display name</label>
        <input id="display-name" data-testid="display-name" required maxlength="64"
          value=${name} onInput=${(e) => setName(e.target.value)} />
        <button type="submit" data-testid="display-name-submit" disabled=${busy}>Save name</button>
      </form>
      <${Outcome} error=${error} done=${done} testid="profile-saved" />
    </fieldset>`;
}

function PasswordSettings({ state, changed }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [others, setOthers] = useState(false);
  const { busy, error, done, run } = useAction();
  const submit = (event) => {
    event.preventDefault();
    run(async () => {
      await state.changePassword(current, next, others);
      setCurrent('');
      setNext('');
      changed();
    }, others ? 'Password changed; your other devices are logged out.' : 'Password changed.');
  };
  return html`
    <form class="account-section" onSubmit=${submit}>
      <fieldset>
        <legend>Password</legend>
        <label for="password-current">Current password</label>
        <input id="password-current" type="password" autocomplete="current-password" required
          data-testid="password-current" value=${current}
          onInput=${(e) => setCurrent(e.target.value)} />
        <label for="password-new">New password (at least 8 characters)</label>
        <input id="password-new" type="password" autocomplete="new-password" required
          minlength="8" data-testid="password-new" value=${next}
          onInput=${(e) => setNext(e.target.value)} />
        <label class="check">
          <input type="checkbox" data-testid="password-log-out-others" checked=${others}
            onChange=${(e) => setOthers(e.target.checked)} />
          Log out my other devices</label>
        <button type="submit" data-testid="password-submit" disabled=${busy}>
          Change password</button>
        <${Outcome} error=${error} done=${done} testid="password-changed" />
      </fieldset>
    </form>`;
}

function DeviceSettings({ state, reload }) {
  const [devices, setDevices] = useState(null);
  const { error, run } = useAction();
  const load = () => run(async () => setDevices((await state.api.devices()).devices), null);
  useEffect(() => { load(); }, [reload]);
  const logOut = (device) => run(async () => {
    setDevices((await state.api.logOutDevice(device.device_id)).devices);
  }, null);
  return html`
    <fieldset class="account-section">
      <legend>My devices</legend>
      <ul class="devices">
        ${(devices ?? []).map((d) => html`
          <li key=${d.device_id} data-testid="device" data-device-id=${d.device_id}
            data-current=${d.current ? 'true' : 'false'}>
            <span class="device-name">${d.name || 'Unnamed device'}</span>
            <span class="device-seen">${d.current ? 'this device' : seenText(d.last_seen)}</span>
            ${!d.current && html`
              <button type="button" class="link" data-testid="device-log-out"
                aria-label=${`Log out ${d.name || 'this device'}`}
                onClick=${() => logOut(d)}>Log out</button>`}
          </li>`)}
      </ul>
      <button type="button" class="link" data-testid="devices-refresh" onClick=${load}>
        Refresh</button>
      <${Outcome} error=${error} />
    </fieldset>`;
}

function seenText(ts) {
  return lastSeen(ts).replace(/^last seen/, 'seen').replace(/^offline$/, 'never seen');
}
