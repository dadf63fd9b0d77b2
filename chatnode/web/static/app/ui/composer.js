// Writing: text (Enter sends, Shift+Enter is a new line), a reply, an edit, or an attachment
// shown as a preview before it is sent. Typing is announced at most every 2 s by the state.
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from './html.js';
import { displayName } from '../format.js';

export function Composer({ state, c, replyTo, editing, clear }) {
  const [text, setText] = useState('');
  const [file, setFile] = useState(null);
  const [preview, setPreview] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const input = useRef(null);
  const id = c.conversation_id;

  useEffect(() => {
    if (editing) setText(editing.body);
    if (editing || replyTo) input.current.focus();
  }, [editing, replyTo]);

  useEffect(() => {
    if (!file || !file.type.startsWith('image/')) return setPreview(null);
    const url = URL.createObjectURL(file);
    setPreview(url);
    return () => URL.revokeObjectURL(url);
  }, [file]);

  async function submit(event) {
    event?.preventDefault();
    const body = text.trim();
    setError(null);
    if (file) {
      setBusy(true);
      try {
        await state.sendFile(id, file, body);
        setFile(null);
        setText('');
      } catch (err) {
        setError(err.status === 0 ? 'Attachments need a connection to the server.' : err.message);
      } finally {
        setBusy(false);
      }
      return;
    }
    if (!body) return;
    if (editing) state.edit(id, editing.seq, body);
    else state.sendText(id, body, replyTo?.seq);
    setText('');
    clear();
  }

  function onKeyDown(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) submit(event);
    if (event.key === 'Escape' && (editing || replyTo)) {
      setText('');
      clear();
    }
  }

  return html`
    <form class="composer" onSubmit=${submit}>
      ${replyTo && html`
        <div class="composing-context" data-testid="reply-preview">
          Replying to ${displayName(state.users, replyTo.sender_id)}: ${replyTo.body}
          <button type="button" class="link" aria-label="Cancel reply" onClick=${clear}>×</button>
        </div>`}
      ${editing && html`
        <div class="composing-context" data-testid="edit-preview">
          Editing your message
          <button type="button" class="link" aria-label="Cancel edit"
            onClick=${() => { setText(''); clear(); }}>×</button>
        </div>`}
      ${file && html`
        <div class="composing-context" data-testid="attachment-preview">
          ${preview ? html`<img src=${preview} alt=${`Preview of ${file.name}`} />` : '📎'}
          ${file.name} (${Math.ceil(file.size / 1024)} KiB)
          <button type="button" class="link" aria-label="Remove attachment"
            onClick=${() => setFile(null)}>×</button>
        </div>`}
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <div class="composer-row">
        <label class="attach" title="Attach a file">📎
          <input type="file" data-testid="attach" aria-label="Attach a file"
            onChange=${(e) => { setFile(e.target.files[0] ?? null); e.target.value = ''; }} />
        </label>
        <label for="composer" class="visually-hidden">Message</label>
        <textarea id="composer" ref=${input} data-testid="composer" rows="1"
          placeholder=${file ? 'Add a caption' : 'Message'} value=${text}
          onInput=${(e) => { setText(e.target.value); if (e.target.value) state.typingIn(id); }}
          onKeyDown=${onKeyDown}></textarea>
        <button type="submit" data-testid="send" disabled=${busy}>
          ${editing ? 'Save' : busy ? 'Sending…' : 'Send'}</button>
      </div>
    </form>`;
}
