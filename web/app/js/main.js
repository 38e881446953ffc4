// The web app's entry: reads the page's configuration and the link it was
// opened with, opens the store, and shows the first screen: a clear error,
// the first-run setup, the passphrase prompt, or the messenger.

import * as wire from './wire.js';
import { Store, StoreError } from './store.js';
import { Client } from './client.js';
import { parseIdentity, checkNick, cleanInvite } from './keys.js';
import { plainRecord, seedsOf, unlockSeeds, WrongPassphrase } from './lock.js';
import { h, clear, shownName, toast } from './ui.js';
import { renderMain } from './views.js';
import { b64url } from './bytes.js';

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') || '';

export const app = {
  root: document.getElementById('app'),
  config: { relay: meta('wschat-relay'), servedBy: meta('wschat-served-by'), vapid: meta('wschat-vapid') },
  store: null,
  client: null,
  rec: null, // the stored identity record
  pendingInvite: '',
  linkKey: '',
};

// ready marks the moment the first usable screen is up (the benchmark in
// web/bench_test.go reads it).
export function ready() {
  if (!document.documentElement.dataset.ready) {
    performance.mark('wschat-ready');
    document.documentElement.dataset.ready = String(Math.round(performance.now()));
  }
}

// fatal replaces the page with an error a person can act on.
export function fatal(title, lines, actions = []) {
  clear(app.root).append(
    h('main.fatal.card', { role: 'alert' },
      h('h1', title),
      ...lines.map((l) => h('p', l)),
      h('div.actions', ...actions.map((a) => h(`button.${a.primary ? 'primary' : 'plain'}`, { type: 'button', onclick: a.run }, a.label))),
    ),
  );
}

function readLink() {
  const hash = location.hash.slice(1);
  if (!hash) return;
  const params = new URLSearchParams(hash);
  if (params.has('invite')) app.pendingInvite = cleanInvite(params.get('invite'));
  else if (/^[A-Za-z0-9_-]{43}$/.test(hash)) app.linkKey = hash;
  // The fragment never reaches the server; keep it out of history too.
  history.replaceState(null, '', location.pathname + location.search);
}

// pageRelay is the relay this page came from, as an address, or null.
function pageRelay() {
  if (!app.config.relay) return null;
  try {
    return wire.parseRelayAddress(app.config.relay);
  } catch {
    return null;
  }
}

async function boot() {
  readLink();
  if (!window.isSecureContext) {
    fatal('This page needs a secure connection', [
      `wschat keeps your keys in this browser, which browsers allow only on https:// pages (or on localhost). This page was opened over ${location.protocol}//${location.host}.`,
      'Ask the relay operator to serve it over HTTPS (wschat relay --acme DOMAIN, or a proxy with a certificate), or run your own copy with `wschat web`.',
    ]);
    return;
  }
  try {
    app.store = await Store.open();
  } catch (e) {
    const err = e instanceof StoreError ? e : new StoreError('io', String(e));
    fatal('wschat cannot open its storage in this browser', [
      err.message,
      err.kind === 'unsupported'
        ? 'Private or restricted windows may block storage; open wschat in a normal window.'
        : 'If this keeps happening, the site data may be damaged: export nothing is possible without it, so restore from an exported identity file after clearing this site’s data in the browser settings.',
    ], [{ label: 'Try again', primary: true, run: () => location.reload() }]);
    return;
  }
  let rec;
  try {
    rec = await app.store.getMeta('identity');
  } catch (e) {
    fatal('wschat cannot read its storage', [e.message], [{ label: 'Try again', primary: true, run: () => location.reload() }]);
    return;
  }
  app.rec = rec;
  if (!rec) return setup();
  if (rec.locked) return unlock();
  let seeds;
  try {
    seeds = seedsOf(rec);
  } catch (e) {
    fatal('Your stored identity is damaged', [e.message, 'If you exported it before, import that file in a fresh browser profile.']);
    return;
  }
  start(new wire.Identity(...seeds));
}

// start runs the messenger for identity, after checking that the relay
// still has the key this browser pinned.
export function start(identity) {
  let relay;
  try {
    relay = wire.parseRelayAddress(app.rec.relay);
  } catch (e) {
    fatal('Your stored identity has no usable relay', [e.message]);
    return;
  }
  const pr = pageRelay();
  const mismatch = (pr && pr.url === relay.url && b64url(pr.key) !== b64url(relay.key)) || (app.linkKey && relayIsPage(relay) && app.linkKey !== b64url(relay.key));
  if (mismatch) {
    fatal('The relay’s key does not match the one this browser pinned', [
      `This browser pinned the key ${b64url(relay.key)} for ${relay.url} when you set wschat up.`,
      `The relay now announces ${pr && pr.url === relay.url ? b64url(pr.key) : app.linkKey}. Someone may be impersonating the relay, or its operator replaced its key.`,
      'wschat will not connect until this is settled. Ask the operator; if the key changed on purpose, export your identity file, clear this site’s data and set up again.',
    ]);
    return;
  }
  app.client = new Client({ store: app.store, identity, name: app.rec.name, relay });
  app.client.load().then(() => {
    app.client.start();
    renderMain(app);
    ready();
    registerServiceWorker();
    // An invite link opened while the app is open changes only the
    // fragment: no reload, so listen for it.
    addEventListener('hashchange', () => {
      readLink();
      if (app.pendingInvite) {
        const invite = app.pendingInvite;
        app.pendingInvite = '';
        app.go({ view: 'add', invite });
      }
    });
  });
}

function relayIsPage(relay) {
  try {
    const u = new URL(relay.url.replace(/^ws/, 'http'));
    return u.host === location.host;
  } catch {
    return false;
  }
}

function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register('/sw.js', { scope: '/', type: 'module' }).catch((e) => console.warn('wschat: no offline support:', e.message));
}

// The relay this page would make an identity on, and how its key is known.
function setupRelay() {
  const pr = pageRelay();
  if (pr) {
    if (app.linkKey && app.linkKey !== b64url(pr.key)) {
      return { error: `Your link pins the relay key ${app.linkKey}, but this relay announces ${b64url(pr.key)}. Someone may be impersonating the relay; do not go on. Check the address line the relay printed.` };
    }
    return { relay: pr, source: app.linkKey ? 'link' : 'first-use' };
  }
  if (app.linkKey) {
    const base = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
    return { relay: wire.parseRelayAddress(base + '#' + app.linkKey), source: 'link' };
  }
  return { relay: null, source: 'ask' };
}

function setup() {
  const sr = setupRelay();
  if (sr.error) {
    fatal('The relay’s key does not match your link', [sr.error]);
    return;
  }
  const err = h('p.error', { role: 'alert' });
  const nameIn = h('input', { type: 'text', id: 'nick', autocomplete: 'nickname', maxlength: 64, required: true, placeholder: 'e.g. Ana', 'aria-describedby': 'nick-hint' });
  const relayIn = sr.relay ? null : h('input.mono', { type: 'text', id: 'relay', autocomplete: 'off', spellcheck: 'false', placeholder: 'wss://relay.example/#…' });
  const create = h('button.primary', { type: 'submit', id: 'create' }, 'Create my identity');
  const fileIn = h('input.visually-hidden', { type: 'file', id: 'import-file', accept: '.txt,text/plain,*/*' });
  const form = h('form.card.welcome', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      const name = nameIn.value.trim();
      let relay = sr.relay;
      try {
        checkNick(name);
        if (!relay) relay = wire.parseRelayAddress(relayIn.value.trim());
      } catch (e) {
        err.textContent = e.message;
        return;
      }
      create.disabled = true;
      create.textContent = 'Making your keys…';
      const identity = wire.Identity.generate();
      app.rec = plainRecord(name, relay.toString(), identity);
      await app.store.setMeta('identity', app.rec);
      await app.store.setMeta('relayPin', { address: relay.toString(), source: sr.source, at: Date.now() });
      app.firstRun = true;
      start(identity);
    },
  },
  h('h1', 'Welcome to wschat'),
  h('p', 'Talk with your AI agents and scripts, end to end encrypted. Your keys are made here, in this browser, and never leave it; the relay only ever sees ciphertext.'),
  h('label', { for: 'nick' }, 'Your name'),
  nameIn,
  h('p.hint', { id: 'nick-hint' }, 'Shown to the people and agents you add. You can use any name.'),
  relayIn ? [h('label', { for: 'relay' }, 'Relay address'), relayIn, h('p.hint', 'The line `wschat relay` printed: its URL and, after #, its key.')] : relayInfo(sr),
  err,
  h('div.actions', create, h('button.plain', { type: 'button', onclick: () => fileIn.click() }, 'Import an identity file'), fileIn),
  );
  fileIn.addEventListener('change', async () => {
    const f = fileIn.files[0];
    if (!f) return;
    err.textContent = '';
    if (f.size > 8192) {
      err.textContent = `That file is ${f.size} bytes; an identity file is under 1 KB. Pick the file \`wschat\` keeps as "identity" in its home.`;
      return;
    }
    try {
      const idf = parseIdentity(new Uint8Array(await f.arrayBuffer()));
      let relay = idf.relay;
      if (!relay) relay = sr.relay ? sr.relay.toString() : '';
      if (!relay) throw new Error('this identity file names no relay; type the relay address above first');
      app.rec = plainRecord(idf.name, relay, idf.identity);
      await app.store.setMeta('identity', app.rec);
      await app.store.setMeta('relayPin', { address: relay, source: 'identity-file', at: Date.now() });
      toast(`Imported ${idf.name}`);
      start(idf.identity);
    } catch (e) {
      err.textContent = `Cannot import it: ${e.message}`;
    }
  });
  clear(app.root).append(h('div.page', form));
  nameIn.focus();
  ready();
}

function relayInfo(sr) {
  const how = {
    link: 'Its key comes from the link you opened.',
    'first-use': 'This is the first time this browser meets this relay: its key is now pinned, and a different key later will be refused. To be sure it is the right one, compare it with the address line the relay printed.',
  }[sr.source];
  return h('div.hint', { id: 'relay-info' },
    h('p', 'Relay: ', h('span.mono', sr.relay.url)),
    h('p', 'Relay key: ', h('span.mono', { id: 'relay-key' }, b64url(sr.relay.key))),
    h('p', how),
  );
}

function unlock() {
  const pw = h('input', { type: 'password', id: 'passphrase', autocomplete: 'current-password', required: true });
  const err = h('p.error', { role: 'alert' });
  const go = h('button.primary', { type: 'submit' }, 'Unlock');
  const form = h('form.card', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      go.disabled = true;
      go.textContent = 'Unlocking…';
      try {
        const seeds = await unlockSeeds(app.rec.locked, pw.value);
        start(new wire.Identity(...seeds));
      } catch (e) {
        err.textContent = e instanceof WrongPassphrase ? 'That passphrase does not open it. Try again.' : e.message;
        go.disabled = false;
        go.textContent = 'Unlock';
        pw.select();
      }
    },
  },
  h('h2', `Unlock ${shownName(app.rec.name)}`),
  h('p', 'Your identity in this browser is protected with a passphrase.'),
  h('label', { for: 'passphrase' }, 'Passphrase'), pw, err, h('div.actions', go));
  clear(app.root).append(h('div.page', form));
  pw.focus();
  ready();
}

boot().catch((e) => fatal('wschat failed to start', [e && e.message ? e.message : String(e)], [{ label: 'Reload', primary: true, run: () => location.reload() }]));
