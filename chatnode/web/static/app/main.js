// Start: the service worker (offline shell), the cached state, then the screen.
import { render } from 'preact';
import { html } from './ui/html.js';
import { App } from './ui/app.js';
import { ChatState } from './state.js';

// Service workers exist only in secure contexts (https, localhost): on plain http the app still
// works, it just cannot open without the node.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch((err) => console.warn('no offline shell', err));
  // A tapped push notification asks an open tab to show its conversation (sw.js).
  navigator.serviceWorker.addEventListener('message', (event) => {
    if (event.data?.type === 'open') location.hash = event.data.conversation_id;
  });
}

const state = new ChatState();
window.chatnode = state; // for the console and for scripts driving the UI
render(html`<${App} state=${state} />`, document.getElementById('app'));
state.boot();
