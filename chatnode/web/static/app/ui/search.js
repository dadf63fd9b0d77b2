// Search the messages this user may read (GET /api/v1/search). Hits are listed newest first,
// each with its snippet; the node marks the matches as [start, end) code point ranges, which are
// cut into text and <mark> elements here, so no user text is ever parsed as HTML. Choosing a
// hit opens its conversation scrolled to the message. Keyboard: Enter searches, ArrowDown moves
// from the box into the hits, ArrowUp/ArrowDown between hits, Escape back to the box or clears.
import { useRef, useState } from 'preact/hooks';
import { html } from './html.js';
import { conversationTitle, displayName, shortTime } from '../format.js';

export function Search({ state }) {
  const [query, setQuery] = useState('');
  const [result, setResult] = useState(null); // { q, hits, next_before }
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const input = useRef(null);
  const results = useRef(null);

  async function fetchPage(q, before) {
    setBusy(true);
    setError(null);
    try {
      return await state.api.search(q, before);
    } catch (err) {
      setError(err.status === 0 ? 'Search needs a connection to the server.' : err.message);
      return null;
    } finally {
      setBusy(false);
    }
  }

  async function run(event) {
    event.preventDefault();
    const q = query.trim();
    if (!q) return clear();
    const page = await fetchPage(q);
    setResult(page && { q, ...page });
  }

  async function more() {
    const page = await fetchPage(result.q, result.next_before);
    if (page) setResult({ ...result, hits: [...result.hits, ...page.hits], next_before: page.next_before });
  }

  function clear() {
    setResult(null);
    setError(null);
    setQuery('');
    input.current?.focus();
  }

  const hitButtons = () => [...(results.current?.querySelectorAll('[data-testid="search-hit"]') ?? [])];

  function onInputKey(event) {
    if (event.key === 'Escape') clear();
    if (event.key === 'ArrowDown' && hitButtons().length) {
      event.preventDefault();
      hitButtons()[0].focus();
    }
  }

  function onHitKey(event) {
    const buttons = hitButtons();
    const at = buttons.indexOf(document.activeElement);
    if (event.key === 'Escape') input.current?.focus();
    else if (event.key === 'ArrowDown' && at < buttons.length - 1) buttons[at + 1].focus();
    else if (event.key === 'ArrowUp') (at > 0 ? buttons[at - 1] : input.current)?.focus();
    else return;
    event.preventDefault();
  }

  return html`
    <div class="search">
      <form role="search" onSubmit=${run}>
        <label for="search-input" class="visually-hidden">Search messages</label>
        <input id="search-input" ref=${input} type="search" data-testid="search-input"
          placeholder="Search messages" maxlength="200" value=${query} onKeyDown=${onInputKey}
          onInput=${(e) => setQuery(e.target.value)} />
        <button type="submit" data-testid="search-submit" disabled=${busy}>Search</button>
      </form>
      ${error && html`<p class="error" role="alert" data-testid="search-error">${error}</p>`}
      ${result && html`
        <section class="search-results" aria-label="Search results" ref=${results}>
          <p role="status" class="search-count" data-testid="search-count">
            ${result.hits.length ? `${result.hits.length}${result.next_before ? '+' : ''} found`
              : 'No messages found'}</p>
          <ul data-testid="search-results" onKeyDown=${onHitKey}>
            ${result.hits.map((hit) => html`
              <${Hit} key=${`${hit.conversation_id}:${hit.seq}`} state=${state} hit=${hit} />`)}
          </ul>
          <div class="search-actions">
            ${result.next_before !== null && html`
              <button type="button" class="link" data-testid="search-more" disabled=${busy}
                onClick=${more}>More results</button>`}
            <button type="button" class="link" data-testid="search-clear" onClick=${clear}>
              Clear search</button>
          </div>
        </section>`}
    </div>`;
}

function Hit({ state, hit }) {
  const c = state.conversations.get(hit.conversation_id);
  const where = c ? conversationTitle(c, state.users, state.me.user_id) : 'Conversation';
  const who = hit.sender_id === state.me.user_id ? 'You' : displayName(state.users, hit.sender_id);
  return html`
    <li>
      <button type="button" class="search-hit" data-testid="search-hit"
        data-conversation-id=${hit.conversation_id} data-seq=${hit.seq}
        onClick=${() => state.jumpTo(hit.conversation_id, hit.seq)}>
        <span class="title">${where}</span>
        <span class="when">${shortTime(hit.ts)}</span>
        <span class="snippet" data-testid="search-snippet">${who}: ${marked(hit)}</span>
      </button>
    </li>`;
}

// The snippet as text nodes and <mark> elements. Offsets count code points, as Array.from does
// (an emoji is one), not UTF-16 units.
function marked(hit) {
  const chars = Array.from(hit.snippet);
  const parts = [];
  let at = 0;
  for (const [start, end] of hit.marks) {
    if (start < at || end > chars.length) continue;
    parts.push(chars.slice(at, start).join(''));
    parts.push(html`<mark>${chars.slice(start, end).join('')}</mark>`);
    at = end;
  }
  parts.push(chars.slice(at).join(''));
  return parts;
}
