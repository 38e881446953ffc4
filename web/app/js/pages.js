// The pages that open in the conversation's place: adding a contact (by
// pasted invite, invite link or camera), a contact's details and safety
// number, and the person's own invite, identity and settings.

import { h, icon, clear, shownName, toast, copyText, download, dialog, avatar } from './ui.js';
import { parseInvite, cleanInvite, checkContactName, suggestContactName, safetyNumber, marshalIdentity, IdentityFile, Invite } from './keys.js';
import { lockedRecord, plainRecord } from './lock.js';
import { qrCanvas } from './qr.js';
import { unb64url } from './bytes.js';

function pageHeader(title, go) {
  return h('header.bar',
    h('button.icon.back', { type: 'button', 'aria-label': 'Back', onclick: () => history.back() }, icon('back')),
    h('h2.grow', title));
}

function safetyGrid(number) {
  return h('div.safety', { 'aria-label': `Safety number ${number}`, id: 'safety-number' }, ...number.split(' ').map((g) => h('span', g)));
}

// relayHTTP is the web address of a relay's page, from its ws(s) URL.
export function relayHTTP(relayURL) {
  return relayURL.replace(/^ws(s?):\/\//, 'http$1://');
}

export function inviteLink(inv) {
  return `${relayHTTP(inv.relay.split('#')[0])}#invite=${inv.toString()}`;
}

export function renderAddContact(app, go, initial = '') {
  const client = app.client;
  const err = h('p.error', { role: 'alert', id: 'add-error' });
  const preview = h('div', { id: 'add-preview' });
  const inviteIn = h('textarea.mono', { id: 'invite', rows: 4, spellcheck: 'false', autocomplete: 'off', placeholder: 'WSCHAT1-…', 'aria-describedby': 'invite-hint' });
  const nameIn = h('input', { type: 'text', id: 'contact-name', autocomplete: 'off', spellcheck: 'false', maxlength: 64 });
  const add = h('button.primary', { type: 'submit', id: 'add', disabled: true }, 'Add contact');
  let invite = null;
  let nameTouched = false;

  function check() {
    err.textContent = '';
    clear(preview);
    invite = null;
    add.disabled = true;
    const text = cleanInvite(inviteIn.value);
    if (!text) return;
    try {
      invite = parseInvite(text);
    } catch (e) {
      err.textContent = e.message;
      return;
    }
    if (invite.pub.equal(client.identity.pub)) {
      err.textContent = 'That is your own invite. Paste the invite of the agent or person you want to talk to.';
      invite = null;
      return;
    }
    if (!nameTouched) nameIn.value = suggestContactName(invite.name);
    const known = [...client.contacts.values()].find((c) => c.pub.equal(invite.pub));
    const other = invite.relay && invite.relay !== client.relay.toString();
    preview.append(
      h('p', known ? `Already your contact ${shownName(known.name)}.` : `${shownName(invite.name)} (their name for themselves)`),
      h('p.hint', 'Safety number, to compare with theirs (`wschat contacts verify NAME`):'),
      safetyGrid(safetyNumber(client.identity.pub, invite.pub)),
      h('p.hint', invite.relay ? (other ? `On another relay: ${invite.relay.split('#')[0]}` : 'On your relay.') : 'Their invite names no relay: messages go through yours.'),
    );
    add.disabled = false;
  }

  inviteIn.addEventListener('input', check);
  nameIn.addEventListener('input', () => {
    nameTouched = true;
  });
  const scan = 'BarcodeDetector' in window ? h('button.plain', { type: 'button', id: 'scan', onclick: () => scanQR(inviteIn, check) }, 'Scan a QR code') : null;
  const form = h('form.card', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      if (!invite) return;
      const name = nameIn.value.trim();
      try {
        checkContactName(name);
        const c = await client.addContact(name, invite);
        toast(`Added ${name}`);
        go({ view: 'conv', peer: c.fp }, { replace: true });
      } catch (e) {
        err.textContent = e.message;
      }
    },
  },
  h('h2', initial ? 'Add this contact?' : 'Add a contact'),
  h('label', { for: 'invite' }, 'Their invite'),
  inviteIn,
  h('p.hint', { id: 'invite-hint' }, 'An agent prints it with `wschat invite` (or `wschat invite --link` for a link that opens this page).'),
  scan,
  preview,
  h('label', { for: 'contact-name' }, 'Name them'),
  nameIn,
  h('p.hint', 'Letters, digits, ".", "_" and "-": the name you will see.'),
  err,
  h('div.actions', add, h('button.plain', { type: 'button', onclick: () => history.back() }, 'Cancel')));
  if (initial) {
    inviteIn.value = initial;
    check();
  }
  return { el: h('div.view', pageHeader('Add a contact', go), h('div.page', form)), focus: () => (initial ? nameIn : inviteIn).focus() };
}

async function scanQR(target, then) {
  let stream;
  const video = h('video.scan', { autoplay: true, playsinline: true, muted: true });
  const stop = () => stream?.getTracks().forEach((t) => t.stop());
  const d = dialog({ title: 'Scan an invite', body: [video], buttons: [{ label: 'Cancel', value: null }] });
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    video.srcObject = stream;
    const det = new window.BarcodeDetector({ formats: ['qr_code'] });
    let found = false;
    const tick = async () => {
      if (found || !video.isConnected) return stop();
      try {
        const codes = await det.detect(video);
        const hit = codes.find((c) => /WSCHAT\d+-/.test(c.rawValue));
        if (hit) {
          found = true;
          target.value = cleanInvite(hit.rawValue);
          then();
          video.closest('dialog')?.querySelector('button')?.click();
          return stop();
        }
      } catch {
        // not ready yet
      }
      setTimeout(tick, 250);
    };
    tick();
  } catch (e) {
    toast(`No camera: ${e.message}`, 'error');
    video.closest('dialog')?.querySelector('button')?.click();
  }
  await d;
  stop();
}

export function renderContact(app, c, go) {
  const client = app.client;
  const number = client.safetyNumber(c);
  const verified = h('p', { id: 'verified-state' });
  const toggle = h('button.plain', { type: 'button', id: 'verify' });
  function paint() {
    const cur = client.contacts.get(c.fp) || c;
    clear(verified).append(cur.verifiedAt ? h('span.okay', `✓ Verified on ${new Date(cur.verifiedAt).toLocaleDateString()}`) : 'Not verified yet.');
    toggle.textContent = cur.verifiedAt ? 'Mark as not verified' : 'Mark as verified';
  }
  toggle.addEventListener('click', async () => {
    const cur = client.contacts.get(c.fp) || c;
    if (!cur.verifiedAt) {
      const ok = await dialog({
        title: `Mark ${shownName(c.name)} as verified?`,
        body: ['Only if you compared the safety number with theirs over a channel you trust (in person, or on a call) and every digit matches.'],
        buttons: [{ label: 'Cancel', value: false }, { label: 'They match', value: true, primary: true }],
      });
      if (!ok) return;
    }
    await client.setVerified(c.fp, !cur.verifiedAt);
    paint();
  });
  paint();
  const remove = h('button.plain.error', {
    type: 'button',
    id: 'remove',
    onclick: async () => {
      const ok = await dialog({
        title: `Remove ${shownName(c.name)}?`,
        body: ['Their messages stay in this browser’s history. Messages they send later are kept aside as from a stranger; add them again to see them.'],
        buttons: [{ label: 'Cancel', value: false }, { label: 'Remove', value: true, primary: true }],
        danger: true,
      });
      if (!ok) return;
      await client.removeContact(c.fp);
      toast(`Removed ${c.name}`);
      go({ view: 'list' });
    },
  }, 'Remove contact');
  const other = c.relay && c.relay !== client.relay.toString();
  const card = h('div.card',
    h('div.row', avatar(c), h('div.grow', h('h2', shownName(c.name)), h('p.hint', `Calls themselves ${shownName(c.nick)}`))),
    h('h3', 'Safety number'),
    safetyGrid(number),
    h('p.hint', `Compare it with the one ${shownName(c.name)} sees: on the terminal, \`wschat contacts verify NAME\`. If every digit matches, no one swapped the keys between you.`),
    verified,
    h('div.actions', toggle),
    h('h3', 'Details'),
    h('p.hint', 'Relay: ', h('span.mono', c.relay ? c.relay.split('#')[0] : 'none (messages go through yours)'), other ? ' (not yours)' : ''),
    h('p.hint', 'Routing id: ', h('span.mono', c.pub.idHex)),
    h('p.hint', 'Added: ', new Date(c.addedAt).toLocaleString()),
    h('div.actions', remove),
  );
  return { el: h('div.view', pageHeader(shownName(c.name), go), h('div.page', card)) };
}

export function renderMe(app, go) {
  const client = app.client;
  const rec = app.rec;
  const inv = new Invite(client.identity.pub, rec.name, rec.relay);
  const text = inv.toString();
  const link = inviteLink(inv);
  const first = app.route?.firstRun || history.state?.firstRun;
  const copy = (what, label) => async () => {
    const ok = await copyText(what);
    toast(ok ? `${label} copied` : 'Copying failed: select the text and copy it', ok ? 'info' : 'error');
  };

  const cards = [];
  if (first) {
    cards.push(h('div.card', { id: 'first-run' },
      h('h2', `You are ${shownName(rec.name)}`),
      h('p', 'Your identity is made and registered on your relay. To talk to an agent, give it your invite below; on the machine where the agent runs:'),
      h('p.mono.invite-text', `wschat contacts add ${suggestContactName(rec.name).toLowerCase()} ${text}`),
      h('p', 'and add the agent here with its invite (`wschat invite --link` prints a link that opens this app).'),
      h('div.actions', h('button.primary', { type: 'button', onclick: () => go({ view: 'add' }) }, 'Add a contact'))));
  }
  cards.push(h('div.card', { id: 'my-invite' },
    h('h2', 'Your invite'),
    h('p.hint', 'Anyone who has it can write to you. It holds your public keys, your name and your relay; no secret.'),
    qrCanvas(text, 'Your invite as a QR code'),
    h('p.mono.invite-text', { id: 'invite-text' }, text),
    h('div.actions',
      h('button.plain', { type: 'button', onclick: copy(text, 'Invite') }, 'Copy invite'),
      h('button.plain', { type: 'button', onclick: copy(link, 'Link') }, 'Copy link'),
      navigator.share ? h('button.plain', { type: 'button', onclick: () => navigator.share({ title: 'wschat invite', text: `Add me on wschat: ${link}` }).catch(() => {}) }, 'Share…') : null),
    h('p.hint', 'Link: ', h('span.mono', { id: 'invite-link' }, link))));

  const relayKey = rec.relay.split('#')[1] || '';
  cards.push(h('div.card',
    h('h2', 'Identity'),
    h('p.hint', 'Name: ', shownName(rec.name)),
    h('p.hint', 'Routing id: ', h('span.mono', { id: 'my-id' }, client.identity.pub.idHex)),
    h('p.hint', 'Relay: ', h('span.mono', rec.relay.split('#')[0]), ', key ', h('span.mono', relayKey)),
    h('p.hint', app.config.servedBy === 'local' ? 'You run this page from your own wschat binary (`wschat web`).' : 'This page was served by your relay. To run your own copy of the page instead, use `wschat web`.'),
    h('div.actions',
      h('button.plain', { type: 'button', id: 'export', onclick: () => exportIdentity(app) }, 'Export identity file'),
    )));

  cards.push(notificationsCard(app));
  cards.push(passphraseCard(app));
  cards.push(h('div.card',
    h('h2', 'Leave this browser'),
    h('p.hint', 'Deletes your identity, contacts and messages from this browser. Export your identity first to keep using it elsewhere.'),
    h('div.actions', h('button.plain.error', { type: 'button', id: 'wipe', onclick: () => wipe(app) }, 'Delete everything here'))));
  return { el: h('div.view', pageHeader('You', go), h('div.page', ...cards)) };
}

async function exportIdentity(app) {
  const ok = await dialog({
    title: 'Export your identity?',
    body: ['The file holds your secret keys: anyone who has it can read your messages and write as you. Keep it like a password. The CLI reads it as its identity file (`--home DIR`, file DIR/identity, mode 0600).'],
    buttons: [{ label: 'Cancel', value: false }, { label: 'Download', value: true, primary: true }],
  });
  if (!ok) return;
  const idf = new IdentityFile(app.client.identity, app.rec.name, app.rec.relay);
  download(`wschat-identity-${suggestContactName(app.rec.name)}.txt`, marshalIdentity(idf));
}

export const SUBSCRIBE_TIMEOUT_MS = 10_000;

function withTimeout(p, ms, message) {
  return Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(message)), ms))]);
}

// notificationsCard turns Web Push wake-ups on and off (PROTOCOL.md §6).
function notificationsCard(app) {
  const client = app.client;
  const state = h('p.hint', { id: 'push-state', 'aria-live': 'polite' });
  const err = h('p.error', { role: 'alert', id: 'push-error' });
  const toggle = h('button.plain', { type: 'button', id: 'push-toggle' });
  const showText = h('input', { type: 'checkbox', id: 'push-show-text' });
  const card = h('div.card', { id: 'notifications' },
    h('h2', 'Notifications'),
    h('p.hint', 'Your relay wakes this browser when a message waits for you; the notification is made here, on your device: the relay and the push service never see the text or who wrote it.'),
    state,
    h('div.actions', toggle),
    h('label.row', { for: 'push-show-text' }, showText, h('span', 'Show the sender and the text in notifications (else only “New message”)')),
    err);
  const supported = 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
  async function paint() {
    const p = (await app.store.getMeta('push')) || {};
    const key = client.pushKey || (await app.store.getMeta('pushKey'))?.key || app.config.vapid;
    showText.checked = p.showText !== false;
    toggle.hidden = false;
    if (!supported) {
      state.textContent = 'This browser cannot receive push notifications.';
      toggle.hidden = true;
    } else if (!key) {
      state.textContent = 'Your relay does not send wake-ups (or has not said so yet: it tells once connected).';
      toggle.hidden = true;
    } else if (Notification.permission === 'denied') {
      state.textContent = 'Notifications are blocked for this site in the browser settings.';
      toggle.hidden = true;
    } else if (p.enabled) {
      state.textContent = 'On: this browser is woken when a message waits.';
      toggle.textContent = 'Turn off';
    } else {
      state.textContent = 'Off.';
      toggle.textContent = 'Turn on notifications';
    }
  }
  toggle.addEventListener('click', async () => {
    err.textContent = '';
    toggle.disabled = true;
    try {
      const p = (await app.store.getMeta('push')) || {};
      if (p.enabled) {
        await client.pushUnsubscribe();
        const reg = await navigator.serviceWorker.ready;
        await (await reg.pushManager.getSubscription())?.unsubscribe();
      } else {
        if ((await Notification.requestPermission()) !== 'granted') throw new Error('Notifications were not allowed.');
        const keyB64 = client.pushKey ? null : (await app.store.getMeta('pushKey'))?.key || app.config.vapid;
        const key = client.pushKey || unb64url(keyB64);
        const reg = await withTimeout(navigator.serviceWorker.ready, SUBSCRIBE_TIMEOUT_MS, 'The app’s service worker is not running; reload and try again.');
        state.textContent = 'Asking the browser for a subscription…';
        const sub = await withTimeout(reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }), SUBSCRIBE_TIMEOUT_MS,
          `The browser did not answer the request for a push subscription in ${SUBSCRIBE_TIMEOUT_MS / 1000} s (some browsers need their push service, which may be blocked here). Try again later.`);
        await client.pushSubscribe(sub.toJSON(), showText.checked);
      }
    } catch (e) {
      err.textContent = e.message;
    } finally {
      toggle.disabled = false;
      paint();
    }
  });
  showText.addEventListener('change', async () => {
    const p = (await app.store.getMeta('push')) || {};
    p.showText = showText.checked;
    await app.store.setMeta('push', p);
  });
  client.addEventListener('change', (ev) => ev.detail.kind === 'push' && paint());
  paint();
  return card;
}

function passphraseCard(app) {
  const rec = app.rec;
  const locked = !!rec.locked;
  const pw = h('input', { type: 'password', id: 'new-passphrase', autocomplete: 'new-password' });
  const pw2 = h('input', { type: 'password', id: 'new-passphrase2', autocomplete: 'new-password' });
  const err = h('p.error', { role: 'alert' });
  const set = h('button.plain', { type: 'submit', id: 'set-passphrase' }, locked ? 'Change passphrase' : 'Set passphrase');
  const form = h('form.card', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      if (pw.value.length < 8) return (err.textContent = 'Use at least 8 characters.');
      if (pw.value !== pw2.value) return (err.textContent = 'The two passphrases differ.');
      set.disabled = true;
      app.rec = await lockedRecord(rec.name, rec.relay, app.client.identity, pw.value);
      await app.store.setMeta('identity', app.rec);
      toast('Passphrase set: wschat asks for it when it opens');
      app.go({ view: 'me' });
    },
  },
  h('h2', 'Passphrase'),
  h('p.hint', locked ? 'Your stored identity is protected: wschat asks for the passphrase when it opens.' : 'Optionally protect your stored keys with a passphrase; wschat then asks for it each time it opens. A forgotten passphrase cannot be recovered.'),
  h('label', { for: 'new-passphrase' }, 'New passphrase'), pw,
  h('label', { for: 'new-passphrase2' }, 'Again'), pw2,
  err,
  h('div.actions', set, locked ? h('button.plain', {
    type: 'button',
    onclick: async () => {
      app.rec = plainRecord(rec.name, rec.relay, app.client.identity);
      await app.store.setMeta('identity', app.rec);
      toast('Passphrase removed');
      app.go({ view: 'me' });
    },
  }, 'Remove passphrase') : null));
  return form;
}

async function wipe(app) {
  const ok = await dialog({
    title: 'Delete everything in this browser?',
    body: ['Your identity, contacts and messages go. Without an exported identity file, your contacts can no longer reach you at this identity.'],
    buttons: [{ label: 'Cancel', value: false }, { label: 'Delete', value: true, primary: true }],
    danger: true,
  });
  if (!ok) return;
  app.client.stop();
  await app.store.wipe();
  location.reload();
}

