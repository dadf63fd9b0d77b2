// An attachment: images inline, anything else as a download. The bytes need the bearer token,
// so they are fetched (or taken from the cache) and shown from a blob URL.
import { useEffect, useState } from 'preact/hooks';
import { html } from './html.js';

// Raster formats only: an SVG can carry script, and a blob URL opened in a tab runs with the
// app's origin, so SVGs (and everything else) are offered as downloads.
const INLINE_IMAGES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif']);

export function Media({ state, mediaId, name }) {
  const [media, setMedia] = useState(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let url = null;
    let alive = true;
    state.mediaUrl(mediaId).then((m) => {
      url = m.url;
      if (alive) setMedia(m);
      else URL.revokeObjectURL(url);
    }, () => alive && setFailed(true));
    return () => {
      alive = false;
      if (url) URL.revokeObjectURL(url);
    };
  }, [mediaId]);
  if (failed) return html`<p class="media-missing">Attachment unavailable offline</p>`;
  if (!media) return html`<p class="media-loading">Loading attachment…</p>`;
  if (INLINE_IMAGES.has(media.type)) {
    return html`<a href=${media.url} target="_blank" rel="noopener">
      <img class="media-image" data-testid="media-image" src=${media.url} alt=${name} /></a>`;
  }
  return html`<a class="media-file" data-testid="media-file" href=${media.url}
    download=${name}>📎 ${name}</a>`;
}
