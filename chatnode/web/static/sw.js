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
