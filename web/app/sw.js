// The web app's service worker: keeps the app shell for offline use and
// installation. The server fills in the list of content-hashed files and a
// version that changes with any of them, so every deploy installs a new
// worker, which drops the old files.
//
// Pages: network first (a fresh deploy is seen at once), the kept copy
// when the network is down or slow. Hashed files: the kept copy, since
// their content never changes under a name. Nothing else is touched: the
// relay connection is a WebSocket, which service workers never see.

const VERSION = /*VERSION*/;
const ASSETS = /*ASSETS*/;
const CACHE = `wschat-${VERSION}`;
const SHELL = ['/', '/manifest.webmanifest'];
const NETWORK_TIMEOUT_MS = 3000;

self.addEventListener('install', (ev) => {
  ev.waitUntil(
    caches.open(CACHE)
      .then((c) => c.addAll([...SHELL, ...ASSETS]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (ev) => {
  ev.waitUntil((async () => {
    for (const k of await caches.keys()) {
      if (k.startsWith('wschat-') && k !== CACHE) await caches.delete(k);
    }
    await self.clients.claim();
  })());
});

async function networkFirst(req) {
  const cache = await caches.open(CACHE);
  try {
    const res = await Promise.race([
      fetch(req),
      new Promise((_, reject) => setTimeout(() => reject(new Error('slow network')), NETWORK_TIMEOUT_MS)),
    ]);
    if (res.ok) cache.put('/', res.clone());
    return res;
  } catch (e) {
    const kept = await cache.match('/');
    if (kept) return kept;
    throw e;
  }
}

async function cacheFirst(req) {
  const kept = await caches.match(req);
  return kept || fetch(req);
}

self.addEventListener('fetch', (ev) => {
  const req = ev.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (req.mode === 'navigate' || url.pathname === '/' || url.pathname === '/index.html') {
    ev.respondWith(networkFirst(req));
  } else if (ASSETS.includes(url.pathname) || SHELL.includes(url.pathname)) {
    ev.respondWith(cacheFirst(req));
  }
});
