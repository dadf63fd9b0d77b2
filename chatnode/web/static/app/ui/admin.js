// An admin's part of the settings: invites (make one and copy its link, see them all, revoke
// one) and the node's accounts (admin_accounts.js). The node refuses all of it to anyone but
// an admin.
import { useEffect, useState } from 'preact/hooks';
import { useSubmit } from './actions.js';
import { html } from './html.js';
import { AccountsAdmin } from './admin_accounts.js';

const EXPIRIES = [['30m', '30 minutes'], ['12h', '12 hours'], ['1d', '1 day'], ['7d', '7 days'],
  ['30d', '30 days']];

export function AdminSettings({ state }) {
  const [invites, setInvites] = useState(null);
  const [error, setError] = useState(null);
  const reload = async () => {
    try {
      setInvites((await state.api.invites()).invites);
    } catch (err) {
      setError(err.message);
    }
  };
  useEffect(() => { reload(); }, [state.api]);
  return html`
    <section class="admin" aria-labelledby="invites-heading">
      <h2 id="invites-heading">Invites</h2>
      <${NewInvite} state=${state} created=${reload} />
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <${InviteList} state=${state} invites=${invites} changed=${reload} />
    </section>
    <${AccountsAdmin} state=${state} />`;
}

function NewInvite({ state, created }) {
  const [uses, setUses] = useState(1);
  const [expires, setExpires] = useState('7d');
  const [admin, setAdmin] = useState(false);
  const [link, setLink] = useState(null);
  const [copied, setCopied] = useState(false);
  const { error, submit } = useSubmit(async () => {
    setCopied(false);
    const invite = await state.api.createInvite({ uses: Number(uses), expires, admin });
    // Where this admin reached the node is where the invited person will too.
    setLink(`${location.origin}/#invite=${invite.token}`);
  }, created);

  async function copy() {
    try {
      await navigator.clipboard.writeText(link);
      setCopied(true);
    } catch {
      document.getElementById('invite-link')?.select(); // no clipboard here: select to copy
    }
  }

  return html`
    <form class="inline-form" onSubmit=${submit} aria-label="New invite">
      <label for="invite-uses">Accounts it may create</label>
      <input id="invite-uses" data-testid="invite-uses" type="number" min="1" max="1000"
        required value=${uses} onInput=${(e) => setUses(e.target.value)} />
      <label for="invite-expires">Expires after</label>
      <select id="invite-expires" data-testid="invite-expires" value=${expires}
        onChange=${(e) => setExpires(e.target.value)}>
        ${EXPIRIES.map(([v, text]) => html`<option value=${v}>${text}</option>`)}
      </select>
      <label><input type="checkbox" data-testid="invite-admin" checked=${admin}
        onChange=${(e) => setAdmin(e.target.checked)} /> New accounts are admins</label>
      <button type="submit" data-testid="invite-create">Create invite</button>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      ${link && html`
        <label for="invite-link">Invite link (shown once: send it to the person you invite)</label>
        <input id="invite-link" data-testid="invite-link" readonly value=${link}
          onFocus=${(e) => e.target.select()} />
        <button type="button" class="secondary" data-testid="invite-copy" onClick=${copy}>
          ${copied ? 'Copied' : 'Copy link'}</button>`}
    </form>`;
}

function InviteList({ state, invites, changed }) {
  if (invites === null) return null;
  if (invites.length === 0) return html`<p class="muted">No invites yet.</p>`;
  const revoke = async (inviteId) => {
    try {
      await state.api.revokeInvite(inviteId);
    } finally {
      changed(); // revoked, or revoked elsewhere meanwhile: the list shows which
    }
  };
  return html`
    <ul class="invites" aria-label="Invites">
      ${invites.map((i) => html`
        <li key=${i.invite_id} data-testid="invite" data-invite-id=${i.invite_id}
          data-state=${i.state}>
          <span>${describe(i)}</span>
          ${i.state === 'active' && html`
            <button type="button" class="link" data-testid="invite-revoke"
              aria-label=${`Revoke invite ${i.invite_id}`}
              onClick=${() => revoke(i.invite_id)}>Revoke</button>`}
        </li>`)}
    </ul>`;
}

function describe(invite) {
  const when = new Date(invite.expires_at).toLocaleString();
  const state = invite.state === 'active' ? `expires ${when}` : invite.state;
  return `${invite.uses_left} of ${invite.max_uses} left, ${state}`
    + `${invite.admin ? ', makes admins' : ''}${invite.created_by ? `, by ${invite.created_by}` : ''}`;
}
