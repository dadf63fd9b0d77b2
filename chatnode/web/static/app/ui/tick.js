// ✓ sent, ✓✓ delivered, blue ✓✓ read, a clock while sending; spoken as words.
import { html } from './html.js';

const SHAPES = {
  sending: ['🕓', 'sending'],
  sent: ['✓', 'sent'],
  delivered: ['✓✓', 'delivered'],
  read: ['✓✓', 'read'],
  failed: ['⚠', 'not sent'],
};

export function Tick({ status }) {
  const [shape, words] = SHAPES[status];
  return html`<span class=${`tick ${status}`} role="img" aria-label=${words}
    title=${words}>${shape}</span>`;
}
