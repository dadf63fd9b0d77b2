// The offline shell. The node fills in VERSION (a hash of the app's files) and SHELL (their
// URLs) when it starts, so a new node version means a new cache, and the old one is dropped.
// Only the app's own files are cached here: the API and the WebSocket always go to the network,
// and the data the app shows offline lives in IndexedDB.
const VERSION = '__VERSION__';
const SHELL = __SHELL__;
const CACHE = `chatnode-shell-${VERSION}`;

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL))
    .then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== location.origin) return;
  if (!SHELL.includes(url.pathname)) return;
  // Cache first: the files of one VERSION never change, so the cached copy is the right one.
  event.respondWith(caches.open(CACHE).then(async (cache) => {
    const cached = await cache.match(url.pathname);
    return cached ?? fetch(event.request);
  }));
});

// Web Push (see app/notify.js): the node sends JSON, encrypted for this browser only.
// `message`: show it, one notification per conversation (the tag), replaced by the next.
// `clear`: the user read that conversation on another device; close what is shown for it.
async function handlePush(data) {
  if (data.type === 'clear') {
    const shown = await self.registration.getNotifications({ tag: data.conversation_id });
    shown.forEach((n) => n.close());
    return;
  }
  if (data.type !== 'message') return;
  await self.registration.showNotification(data.title, {
    body: data.body,
    tag: data.conversation_id,
    renotify: true,
    icon: '/static/icons/icon-192.png',
    data: { conversation_id: data.conversation_id },
  });
}

// A tap opens the conversation: in a tab of the app if there is one, else in a new one.
async function openConversation(conversationId) {
  const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const tab = tabs.find((c) => new URL(c.url).origin === location.origin);
  if (tab) {
    tab.postMessage({ type: 'open', conversation_id: conversationId });
    // Allowed only while handling the tap itself; the tab shows the conversation either way.
    await tab.focus().catch(() => {});
    return;
  }
  await self.clients.openWindow(`/#${encodeURIComponent(conversationId)}`);
}

self.addEventListener('push', (event) => {
  let data;
  try {
    data = event.data.json();
  } catch {
    return; // not from the node
  }
  event.waitUntil(handlePush(data));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const conversationId = event.notification.data?.conversation_id;
  if (conversationId) event.waitUntil(openConversation(conversationId));
});
