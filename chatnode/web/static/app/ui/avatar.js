// A user's picture where their name is shown, or their initial when they have none. The bytes
// need the bearer token, so they come from the cache or REST and are shown from a blob URL.
import { useEffect, useState } from 'preact/hooks';
import { html } from './html.js';

export function Avatar({ state, userId, user }) {
  const person = user ?? state.users.get(userId);
  const avatarId = person?.avatar;
  const [url, setUrl] = useState(null);
  useEffect(() => {
    if (!avatarId) return undefined;
    let alive = true;
    let made = null;
    state.avatarUrl(avatarId).then((u) => {
      made = u;
      if (alive) setUrl(u);
      else URL.revokeObjectURL(u);
    }, () => {});
    return () => {
      alive = false;
      setUrl(null);
      if (made) URL.revokeObjectURL(made);
    };
  }, [avatarId]);
  const name = person?.display_name || person?.username || '?';
  // Decorative: the name is always written beside it.
  if (avatarId && url) {
    return html`<img class="avatar" data-testid="avatar" data-user-id=${person?.user_id ?? userId}
      data-avatar-id=${avatarId} src=${url} alt="" />`;
  }
  return html`<span class="avatar initial" data-testid="avatar"
    data-user-id=${person?.user_id ?? userId} aria-hidden="true">${[...name][0].toUpperCase()}</span>`;
}
