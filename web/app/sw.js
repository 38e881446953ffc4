// The web app's service worker: keeps the app shell for offline use and
// installation. The server fills in the list of content-hashed files and a
// version that changes with any of them, so every deploy installs a new
// worker, which drops the old files.
//
// Pages: network first (a fresh deploy is seen at once), the kept copy
// when the network is down or slow. Hashed files: the kept copy, since
// their content never changes under a name. Nothing else is touched: the
// relay connection is a WebSocket, which service workers never see.
//
// Push (PROTOCOL.md §6, "Push wake-ups"): the relay's push carries no
// content. The worker connects as the identity, collects the stored
// messages as the page would (stored before acknowledged, shown once),
// and builds the notifications here: one per conversation, the contact's
// name and the text (or only "New message", as the person chose). Read
// receipts wait until the person opens the conversation.

import { Store } from './js/store.js';
import { Client } from './js/client.js';
import { Identity, parseRelayAddress } from './js/wire.js';
import { seedsOf } from './js/lock.js';
import { shown, shownName } from './js/ui.js';

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

const TYPE_APPROVAL_REQUEST = 0x12;

const ICON = ASSETS.find((a) => a.startsWith('/icons/icon-192.')) || '/icons/icon-192.png';

// tell lets the app's windows (and the tests) know a push was handled.
async function tell(msg) {
  for (const c of await self.clients.matchAll({ type: 'window', includeUncontrolled: true })) c.postMessage(msg);
}

async function notify(title, body, tag, data) {
  await self.registration.showNotification(title, { body, tag, renotify: true, icon: ICON, badge: ICON, data, timestamp: Date.now() });
}

// collectAndNotify returns what it showed: [{peer, count}].
async function collectAndNotify() {
  const store = await Store.open();
  try {
    const rec = await store.getMeta('identity');
    if (!rec) return [];
    const settings = (await store.getMeta('push')) || {};
    const showText = settings.showText !== false;
    if (rec.locked) {
      await notify('wschat', 'New message: unlock wschat to read it', 'wschat', {});
      return [{ peer: '', count: 1 }];
    }
    const identity = new Identity(...seedsOf(rec));
    const client = new Client({ store, identity, name: rec.name, relay: parseRelayAddress(rec.relay) });
    await client.load();
    const lockName = `wschat-connection-${identity.pub.idHex}`;
    const got = await navigator.locks.request(lockName, { ifAvailable: true }, async (lock) => (lock ? client.collect() : null));
    if (got === null) {
      // A window of the app holds the connection and takes the message.
      return [];
    }
    const byPeer = new Map();
    for (const r of got) {
      const list = byPeer.get(r.peer) || [];
      list.push(r);
      byPeer.set(r.peer, list);
    }
    const shownList = [];
    // An approval request gets a notification of its own, with Allow and
    // Deny: the person may answer from it (PROTOCOL.md §7).
    for (const r of got) {
      if (r.type !== TYPE_APPROVAL_REQUEST || Date.now() >= r.expiresAt) continue;
      const c = client.contacts.get(r.peer);
      const who = c ? shownName(c.name) : 'An agent';
      const warn = c && c.verifiedAt ? '' : ' (not verified)';
      await self.registration.showNotification(`${who}${warn} asks to use ${shownName(r.tool)}`, {
        body: shown(r.text || '').slice(0, 180) || 'Allow this tool use?',
        tag: `wschat-approval-${r.id}`,
        requireInteraction: true,
        icon: ICON,
        badge: ICON,
        data: { peer: r.peer, approval: r.id },
        actions: [{ action: 'allow', title: 'Allow' }, { action: 'deny', title: 'Deny' }],
      });
      shownList.push({ peer: r.peer, approval: r.id });
    }
    for (const [peer, all] of byPeer) {
      const list = all.filter((r) => r.type !== TYPE_APPROVAL_REQUEST);
      if (!list.length) continue;
      const c = client.contacts.get(peer);
      const last = list[list.length - 1];
      const more = list.length > 1 ? ` (and ${list.length - 1} more)` : '';
      const title = c ? shownName(c.name) : 'wschat';
      const text = last.text === null || last.text === undefined ? 'A message this version cannot show' : shown(last.text);
      await notify(showText ? title : 'wschat', showText ? (text.length > 180 ? text.slice(0, 179) + '…' : text) + more : 'New message', `wschat-${peer}`, { peer });
      shownList.push({ peer, count: list.length });
    }
    return shownList;
  } finally {
    store.close();
  }
}

self.addEventListener('push', (ev) => {
  ev.waitUntil((async () => {
    try {
      const shownList = await collectAndNotify();
      await tell({ kind: 'push-done', shown: shownList });
    } catch (e) {
      await notify('wschat', 'New message', 'wschat', {});
      await tell({ kind: 'push-done', error: String(e && e.message ? e.message : e) });
    }
  })());
});

// answer sends the person's verdict from the notification's buttons:
// queued like any message, then handed over on a connection of its own.
async function answer(peer, requestID, allow) {
  const store = await Store.open();
  try {
    const rec = await store.getMeta('identity');
    if (!rec || rec.locked) return;
    const identity = new Identity(...seedsOf(rec));
    const client = new Client({ store, identity, name: rec.name, relay: parseRelayAddress(rec.relay) });
    await client.load();
    await client.answerApproval(peer, requestID, allow);
    await navigator.locks.request(`wschat-connection-${identity.pub.idHex}`, { ifAvailable: true }, async (lock) => {
      if (lock) await client.collect();
      else client.flush(); // the app's window holds the connection: it sends it
    });
  } finally {
    store.close();
  }
}

self.addEventListener('notificationclick', (ev) => {
  ev.notification.close();
  const peer = ev.notification.data && ev.notification.data.peer;
  const approval = ev.notification.data && ev.notification.data.approval;
  if (approval && (ev.action === 'allow' || ev.action === 'deny')) {
    ev.waitUntil(answer(peer, approval, ev.action === 'allow').then(() => tell({ kind: 'answered', approval, allow: ev.action === 'allow' })).catch((e) => tell({ kind: 'answered', approval, error: String(e.message || e) })));
    return;
  }
  ev.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const w = wins.find((c) => new URL(c.url).origin === self.location.origin);
    if (w) {
      await w.focus();
      w.postMessage({ kind: 'open', peer });
      return;
    }
    await self.clients.openWindow(peer ? `/#conv=${peer}` : '/');
  })());
});
