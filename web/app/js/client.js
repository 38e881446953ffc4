// The web app's client: one identity, its contacts and its store, and its
// connections to relays, following PROTOCOL.md §6–§8 as the Go client
// (package bridge) does:
//
//   - one receiving connection to the identity's own relay, reconnecting
//     with backoff (and at once when the network comes back);
//   - a message to a contact goes to that contact's relay (its invite says
//     which): over the receiving connection when it is the same relay,
//     else over a send-only connection opened for the purpose;
//   - every outgoing message is sealed once and kept in the outbox until a
//     relay's Custody answer, then sent again, the same envelope, on the
//     next connection; receivers show it once;
//   - an incoming message is verified, stored with its replay entry, its
//     sender sent a `delivered`, and only then the relay acknowledged;
//   - only one tab holds the connections (a Web Lock); the others use the
//     store and hear of changes on a BroadcastChannel.
//
// Events (CustomEvent "change", detail.kind): status, messages, state,
// contacts, live, stranger, error.

import * as wire from './wire.js';
import { equal, hex, unhex, utf8, utf8Decode, randomBytes, b64url, unb64url } from './bytes.js';
import { RelayConn } from './relayconn.js';
import { safetyNumber } from './keys.js';
import * as st from './structured.js';

const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 30_000;
const OTHER_RELAY_IDLE_MS = 30_000;
const TYPING_SHOWN_MS = 6_000;

// Refusals that another attempt later may get past; the rest end the
// message's journey (it stays in the history, marked failed, with the
// reason and a Retry).
const TRANSIENT = new Set(['rate_limited', 'shutting_down', 'internal', 'too_many_connections', 'slow_consumer']);

export const REASON_TEXT = {
  malformed: 'the relay could not read it',
  too_large: 'it is larger than the relay accepts',
  rate_limited: 'the relay is limiting how fast this browser sends',
  mailbox_full: "the contact's mailbox on the relay is full",
  recipient_offline: 'the contact is not online',
  unknown_recipient: 'the contact is not registered on their relay (they should open wschat once)',
  shutting_down: 'the relay is restarting',
  internal: 'the relay failed to store it',
  too_many_connections: 'the relay has too many connections',
  slow_consumer: 'the relay is overloaded',
  expired: 'it expired on the relay',
  bad_recipient: 'it was addressed wrongly',
};

export class Backoff {
  constructor() {
    this.n = 0;
  }
  next() {
    let d = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(this.n, 20));
    this.n++;
    return d / 2 + (Math.random() * d) / 2;
  }
  reset() {
    this.n = 0;
  }
}

// shownFields is what the history keeps of a message: its text (null for
// a type this version does not know: shown as such, never dropped) and
// the fields of a structured one (PROTOCOL.md §7).
export function shownFields(m) {
  switch (m.type) {
    case wire.TYPE.Text:
    case wire.TYPE.RelayMoved:
      return { text: utf8Decode(m.body), extra: {} };
    case wire.TYPE.Question: {
      const q = st.parseQuestion(m.body);
      return { text: q.text, extra: { choices: q.choices } };
    }
    case wire.TYPE.Reply: {
      const r = st.parseReply(m.body);
      return { text: r.text, extra: { replyTo: hex(r.to), choice: r.choice } };
    }
    case wire.TYPE.ApprovalRequest: {
      const a = st.parseApprovalRequest(m.body);
      return { text: a.description, extra: { requestId: a.requestId, expiresAt: a.expiresAt, tool: a.tool, inputPreview: a.inputPreview } };
    }
    case wire.TYPE.ApprovalAnswer: {
      const a = st.parseApprovalAnswer(m.body);
      return { text: `${a.allow ? 'allowed' : 'denied'} ${a.requestId}`, extra: { replyTo: hex(a.request), requestId: a.requestId, allow: a.allow } };
    }
  }
  return { text: null, extra: {} };
}

// decodeSubscription turns a PushSubscription's JSON into the fields of
// a PushSubscribe command.
export function decodeSubscription(j) {
  const p256dh = unb64urlLoose(j.keys && j.keys.p256dh);
  const auth = unb64urlLoose(j.keys && j.keys.auth);
  if (!p256dh || p256dh.length !== wire.PUSH_KEY_SIZE || !auth || auth.length !== wire.PUSH_AUTH_SIZE || typeof j.endpoint !== 'string') {
    throw new Error('the browser gave a push subscription of an unknown form');
  }
  return { p256dh, auth, endpoint: j.endpoint };
}

// unb64urlLoose accepts base64url with or without padding (browsers give
// it without; some with).
function unb64urlLoose(s) {
  if (typeof s !== 'string') return null;
  return unb64url(s.replace(/=+$/, ''));
}

// contactFromRecord rebuilds the in-memory contact from its stored form.
function contactFromRecord(r) {
  const pub = wire.PublicIdentity.from(unb64url(r.x), unb64url(r.ed));
  return { ...r, pub };
}

export class Client extends EventTarget {
  constructor({ store, identity, name, relay, now = () => Date.now(), WebSocketImpl }) {
    super();
    this.store = store;
    this.identity = identity; // wire.Identity
    this.name = name;
    this.relay = relay; // wire.RelayAddress: our own
    this.now = now;
    this.WS = WebSocketImpl;
    this.contacts = new Map(); // fp hex -> contact
    this.byID = new Map(); // routing id hex -> contact
    this.pairs = new Map(); // fp hex -> wire.Pair
    this.status = { state: 'stopped' };
    this.main = null; // RelayConn: receiving, own relay
    this.others = new Map(); // relay address string -> {conn, timer, opening}
    this.inFlight = new Map(); // RelayConn -> Map(index string -> outbox id)
    this.live = new Map(); // fp -> {typing, typingUntil, online}
    this.pushKey = null; // the relay's VAPID key, from PushKey
    this.pushWaiters = new Map(); // RelayConn -> resolvers of PushResults, in order
    this.stopped = true;
    this.flushing = null;
    this.channel = typeof BroadcastChannel !== 'undefined' ? new BroadcastChannel('wschat-client') : null;
    this.leader = false;
    if (this.channel) this.channel.onmessage = (ev) => this.onChannel(ev.data);
    if (store.changes) store.changes.onmessage = (ev) => this.onStoreChange(ev.data);
  }

  emit(kind, detail = {}) {
    this.dispatchEvent(new CustomEvent('change', { detail: { kind, ...detail } }));
  }

  setStatus(s) {
    this.status = s;
    this.emit('status', s);
    if (this.leader) this.post({ kind: 'status', status: s });
  }

  post(m) {
    try {
      this.channel?.postMessage(m);
    } catch {
      // closed
    }
  }

  async load() {
    this.contacts.clear();
    this.byID.clear();
    for (const r of await this.store.contacts()) {
      try {
        const c = contactFromRecord(r);
        this.contacts.set(c.fp, c);
        this.byID.set(c.pub.idHex, c);
      } catch (e) {
        this.emit('error', { message: `contact ${r.name} has invalid keys and was skipped: ${e.message}` });
      }
    }
  }

  pairFor(c) {
    let p = this.pairs.get(c.fp);
    if (!p) {
      p = new wire.Pair(this.identity, c.pub);
      this.pairs.set(c.fp, p);
    }
    return p;
  }

  safetyNumber(c) {
    return safetyNumber(this.identity.pub, c.pub);
  }

  // start runs the connections while this tab holds the lock; other tabs
  // stand by and take over when this one closes.
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    const run = () => this.runLeader();
    if (navigator.locks) {
      this.setStatus({ state: 'standby' });
      this.lockAbort = new AbortController();
      navigator.locks
        .request(`wschat-connection-${this.identity.pub.idHex}`, { signal: this.lockAbort.signal }, run)
        .catch(() => {});
    } else {
      run();
    }
    this.onOnline = () => this.kick();
    addEventListener('online', this.onOnline);
    if (typeof document !== 'undefined') {
      this.onVisible = () => document.visibilityState === 'visible' && this.kick();
      document.addEventListener('visibilitychange', this.onVisible);
    }
  }

  stop() {
    this.stopped = true;
    this.lockAbort?.abort();
    removeEventListener('online', this.onOnline);
    if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', this.onVisible);
    this.wake?.();
    this.main?.close();
    for (const o of this.others.values()) o.conn?.close();
  }

  // kick reconnects now instead of at the end of the backoff.
  kick() {
    this.wake?.();
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  async runLeader() {
    this.leader = true;
    const backoff = new Backoff();
    try {
      await this.store.prune(this.now() - wire.REPLAY_HORIZON_MS).catch(() => {});
      while (!this.stopped) {
        this.setStatus({ state: 'connecting' });
        let err;
        const conn = this.newConn(this.relay, true);
        try {
          await conn.open();
          this.main = conn;
          backoff.reset();
          this.setStatus({ state: 'online' });
          this.flush();
          err = await conn.ended;
        } catch (e) {
          err = e;
        }
        this.main = null;
        this.inFlight.delete(conn);
        for (const l of this.live.values()) l.online = false;
        this.emit('live', {});
        if (this.stopped) break;
        let delay = backoff.next();
        if (err && err.kind === 'restarting') delay = (err.retryAfter || 0) + delay / 4;
        this.setStatus({ state: 'offline', error: err ? err.message : '', kind: err?.kind, retryAt: this.now() + delay });
        await this.sleep(delay);
      }
    } finally {
      this.leader = false;
      this.setStatus({ state: 'stopped' });
    }
  }

  newConn(address, receive) {
    const conn = new RelayConn({
      address,
      identity: this.identity,
      receive,
      WebSocketImpl: this.WS,
      handlers: {
        // A send-only connection gets the receipts the relay stored for
        // us (PROTOCOL.md §6), handled like any incoming frame.
        onData: (h, body) => this.incoming(conn, h, body),
        onCommand: (c) => this.command(conn, c),
        onClose: (err) => {
          this.inFlight.delete(conn);
          endedWith(err);
        },
      },
    });
    let endedWith;
    conn.ended = new Promise((resolve) => (endedWith = resolve));
    this.inFlight.set(conn, new Map());
    conn.backlog = new Promise((resolve) => (conn.backlogDone = resolve));
    return conn;
  }

  // connFor gives the open connection for a relay address, opening a
  // send-only one for a relay other than our own.
  async connFor(relayStr) {
    if (!relayStr || relayStr === this.relay.toString()) {
      if (!this.main) throw new Error('not connected');
      return this.main;
    }
    let o = this.others.get(relayStr);
    if (o && o.conn && !o.conn.closed && o.conn.welcome) {
      this.touchOther(relayStr, o);
      return o.conn;
    }
    if (o && o.opening) return o.opening;
    const conn = this.newConn(wire.parseRelayAddress(relayStr), false);
    o = { conn, timer: null };
    this.others.set(relayStr, o);
    o.opening = conn
      .open()
      .then(() => {
        o.opening = null;
        this.touchOther(relayStr, o);
        return conn;
      })
      .catch((e) => {
        this.others.delete(relayStr);
        throw e;
      });
    return o.opening;
  }

  touchOther(relayStr, o) {
    clearTimeout(o.timer);
    o.timer = setTimeout(() => {
      // Close it once nothing is waiting for custody on it.
      if (!this.inFlight.get(o.conn)?.size) {
        o.conn.close();
        this.others.delete(relayStr);
      } else {
        this.touchOther(relayStr, o);
      }
    }, OTHER_RELAY_IDLE_MS);
  }

  // flush hands every outbox entry to its relay unless it is already on
  // its way there. One flush at a time; a flush asked for meanwhile runs
  // after.
  flush() {
    if (!this.leader) {
      this.post({ kind: 'flush' });
      return Promise.resolve();
    }
    if (this.flushing) {
      this.flushAgain = true;
      return this.flushing;
    }
    this.flushing = (async () => {
      do {
        this.flushAgain = false;
        await this.flushOnce().catch((e) => this.emit('error', { message: e.message }));
      } while (this.flushAgain && !this.stopped);
    })().finally(() => (this.flushing = null));
    return this.flushing;
  }

  async flushOnce() {
    if (!this.main) return;
    const out = await this.store.outbox();
    for (const o of out) {
      if (this.stopped) return;
      let conn;
      try {
        conn = await this.connFor(o.relay);
      } catch (e) {
        await this.store.noteAttempt(o.id, e.message);
        this.emit('state', { peer: o.peer, id: o.id, error: `cannot reach ${o.relay}: ${e.message}` });
        continue;
      }
      const fl = this.inFlight.get(conn);
      if (!fl || [...fl.values()].includes(o.id)) continue;
      try {
        const i = conn.sendData(unhex(o.to), o.flags || 0, o.envelope);
        fl.set(String(i), o.id);
      } catch {
        // closed meanwhile: the next connection sends it
      }
    }
  }

  async command(conn, c) {
    switch (c.op) {
      case wire.OP.BacklogDone:
        conn.backlogDone?.();
        return;
      case wire.OP.PushKey:
        if (conn === this.main) await this.onPushKey(c.key);
        return;
      case wire.OP.PushResult: {
        const waiter = (this.pushWaiters.get(conn) || []).shift();
        waiter?.(c.reason);
        return;
      }
      case wire.OP.Custody:
        break;
      default:
        return;
    }
    const fl = this.inFlight.get(conn);
    if (!fl) return;
    for (const e of c.custody) {
      const id = fl.get(String(e.index));
      if (!id) continue;
      const o = await this.store.outboxEntry(id);
      if (o) {
        if (e.status === wire.STATUS.Refused) {
          const reason = wire.reasonName(e.reason);
          if (TRANSIENT.has(reason)) {
            await this.store.noteAttempt(id, reason);
          } else {
            await this.store.removeOutbox(id);
            await this.store.setState(o.peer, id, 'failed', reason);
          }
          this.emit('state', { peer: o.peer, id, refused: reason });
        } else {
          const st = e.status === wire.STATUS.Delivered ? 'sent' : 'stored';
          // State first: a crash in between sends it again (shown once).
          await this.store.setState(o.peer, id, st);
          await this.store.removeOutbox(id);
          this.emit('state', { peer: o.peer, id, state: st });
        }
      }
      fl.delete(String(e.index));
    }
  }

  // incoming handles one data frame on the receiving connection.
  async incoming(conn, h, body) {
    const ephemeral = (h.flags & wire.FLAG_EPHEMERAL) !== 0;
    const ack = () => {
      if (!ephemeral) conn.ack(h.index);
    };
    const idHex = hex(h.id);
    let c = this.byID.get(idHex);
    if (!c && equal(h.id, wire.UNNAMED_ID)) {
      // A stored frame: the relay kept no sender id (PROTOCOL.md §7).
      for (const k of this.byID.values()) {
        if (this.pairFor(k).from(body)) {
          c = k;
          break;
        }
      }
    }
    if (!c) {
      await this.noteStranger(idHex);
      ack();
      return;
    }
    let m;
    try {
      m = this.pairFor(c).open(body);
      wire.checkFreshness(m, this.now());
    } catch (e) {
      console.warn(`wschat: dropped a frame from ${c.name} that does not verify: ${e.code || e.message}`);
      ack();
      return;
    }
    m.idHex = hex(m.id);
    switch (m.type) {
      case wire.TYPE.Typing:
      case wire.TYPE.Presence:
        this.onLive(c, m.type, m.body[0] === 1);
        ack();
        return;
      case wire.TYPE.Delivered:
      case wire.TYPE.Read: {
        const res = await this.store.addIncoming(c.fp, m, undefined, this.now());
        if (!res.dup) {
          const st = m.type === wire.TYPE.Read ? 'read' : 'delivered';
          for (const id of wire.ackIDs(m.body)) {
            const r = await this.store.setState(c.fp, hex(id), st);
            if (r) this.emit('state', { peer: c.fp, id: r.id, state: r.state });
          }
        }
        ack();
        return;
      }
    }
    const { text, extra } = shownFields(m);
    const res = await this.store.addIncoming(c.fp, m, text, this.now(), extra);
    if (m.type === wire.TYPE.RelayMoved && !res.dup) await this.applyMove(c, text, m.sentAt);
    if (text !== null) {
      // Also for a repeat: the first acknowledgement may have been lost.
      // Before the relay's Ack: a crash in between brings a redelivery.
      this.sendReceipt(c, m.id);
    }
    ack();
    if (!res.dup) {
      const l = this.live.get(c.fp);
      if (l) l.typing = false;
      this.emit('messages', { peer: c.fp, rec: res.rec, incoming: true });
    }
  }

  async noteStranger(idHex) {
    const s = (await this.store.getMeta('strangers')) || {};
    const e = s[idHex] || { count: 0 };
    e.count++;
    e.lastAt = this.now();
    s[idHex] = e;
    await this.store.setMeta('strangers', s);
    this.emit('stranger', { id: idHex, count: e.count });
  }

  seal(c, type, body) {
    const id = randomBytes(wire.MESSAGE_ID_SIZE);
    const sentAt = this.now();
    const envelope = this.pairFor(c).seal({ id, sentAt, type, body });
    return { id, idHex: hex(id), sentAt, envelope };
  }

  // sendReceipt sends the sender a delivered receipt (PROTOCOL.md §6):
  // at once when the sender's relay is ours (a receipt lost with the
  // connection comes again with the redelivery), else through the outbox.
  async sendReceipt(c, id) {
    const s = this.seal(c, wire.TYPE.Delivered, wire.ackBody([id]));
    if (!c.relay || c.relay === this.relay.toString()) {
      try {
        this.main?.sendData(c.pub.id, wire.FLAG_RECEIPT, s.envelope);
      } catch {
        // closed: the redelivery brings another receipt
      }
      return;
    }
    await this.store.addOutgoing({ peer: c.fp, id: s.idHex, type: wire.TYPE.Delivered, sentAt: s.sentAt }, { to: c.pub.idHex, relay: c.relay, envelope: s.envelope, type: wire.TYPE.Delivered, flags: wire.FLAG_RECEIPT });
    this.flush();
  }

  // applyMove takes a contact's relay_moved notice (§7): its messages go
  // to the new relay from now on, waiting ones too, unless a newer notice
  // was applied already.
  async applyMove(c, address, sentAt) {
    const r = await this.store.contact(c.fp);
    if (!r || (r.movedAt && r.movedAt >= sentAt)) return;
    r.relay = address;
    r.movedAt = sentAt;
    await this.store.putContact(r);
    await this.store.tx('outbox', 'readwrite', async (st) => {
      const all = await new Promise((resolve, reject) => {
        const q = st.outbox.getAll();
        q.onsuccess = () => resolve(q.result);
        q.onerror = () => reject(q.error);
      });
      for (const o of all) if (o.peer === c.fp) st.outbox.put({ ...o, relay: address });
    });
    await this.load();
    this.emit('contacts', {});
    this.flush();
  }

  // sendText queues a text message and hands it over when connected.
  async sendText(fp, text) {
    const c = this.contacts.get(fp);
    if (!c) throw new Error('no such contact');
    const body = utf8(text);
    if (body.length > wire.MAX_BODY_SIZE) throw new Error(`the message is ${body.length} bytes; at most ${wire.MAX_BODY_SIZE} fit in one message`);
    const s = this.seal(c, wire.TYPE.Text, body);
    const rec = await this.store.addOutgoing(
      { peer: fp, id: s.idHex, type: wire.TYPE.Text, text, sentAt: s.sentAt },
      { to: c.pub.idHex, relay: c.relay || '', envelope: s.envelope, type: wire.TYPE.Text },
    );
    this.emit('messages', { peer: fp, rec });
    this.sendLive(fp, wire.TYPE.Typing, false);
    this.flush();
    return rec;
  }

  // sendStructured queues a structured message (a reply, an approval
  // answer) like a text, and records it in the history.
  async sendStructured(fp, type, body) {
    const c = this.contacts.get(fp);
    if (!c) throw new Error('no such contact');
    const s = this.seal(c, type, body);
    const { text, extra } = shownFields({ type, body });
    const rec = await this.store.addOutgoing(
      { peer: fp, id: s.idHex, type, text, sentAt: s.sentAt, extra },
      { to: c.pub.idHex, relay: c.relay || '', envelope: s.envelope, type },
    );
    this.emit('messages', { peer: fp, rec });
    this.flush();
    return rec;
  }

  // reply answers a message: with a question's option k (its text goes
  // along, so the answer reads right where the question is not kept), or
  // with text (choice 0).
  async reply(fp, toHex, choice, text) {
    const rec = await this.sendStructured(fp, wire.TYPE.Reply, st.encodeReply({ to: unhex(toHex), choice, text }));
    const q = await this.store.find(fp, toHex);
    if (q && q.type === wire.TYPE.Question && choice > 0) {
      await this.store.update(q.dir, fp, toHex, { answered: choice });
      this.emit('state', { peer: fp, id: toHex });
    }
    return rec;
  }

  // answerApproval sends the person's verdict on an approval request. Only
  // a person's action calls it: never a message.
  async answerApproval(fp, requestHex, allow) {
    const r = await this.store.message('in', fp, requestHex);
    if (!r || r.type !== wire.TYPE.ApprovalRequest) throw new Error('no such approval request');
    if (r.verdict) throw new Error(`already answered: ${r.verdict}`);
    if (this.now() >= r.expiresAt) throw new Error('this request has expired');
    await this.store.update('in', fp, requestHex, { verdict: allow ? 'allow' : 'deny' });
    this.emit('state', { peer: fp, id: requestHex });
    return this.sendStructured(fp, wire.TYPE.ApprovalAnswer, st.encodeApprovalAnswer({ request: unhex(requestHex), requestId: r.requestId, allow }));
  }

  // retry puts a failed message back in the outbox, the same envelope if
  // it is still fresh, else sealed anew with the same id.
  async retry(fp, idHex) {
    const c = this.contacts.get(fp);
    const r = await this.store.message('out', fp, idHex);
    if (!c || !r || r.state !== 'failed' || r.type !== wire.TYPE.Text) return;
    const envelope = this.pairFor(c).seal({ id: unhex(idHex), sentAt: r.sentAt, type: r.type, body: utf8(r.text) });
    await this.store.tx(['outbox', 'messages'], 'readwrite', async (s) => {
      s.outbox.put({ id: idHex, peer: fp, to: c.pub.idHex, relay: c.relay || '', envelope, type: r.type, createdAt: this.now(), attempts: 0, lastError: '' });
      r.state = 'pending';
      delete r.error;
      s.messages.put(r);
    });
    this.emit('state', { peer: fp, id: idHex, state: 'pending' });
    this.flush();
  }

  // markRead tells the contact that the person saw their messages.
  async markRead(fp) {
    const c = this.contacts.get(fp);
    if (!c) return;
    const ids = await this.store.markRead(fp);
    for (let i = 0; i < ids.length; i += wire.MAX_ACK_IDS) {
      const chunk = ids.slice(i, i + wire.MAX_ACK_IDS).map(unhex);
      const s = this.seal(c, wire.TYPE.Read, wire.ackBody(chunk));
      await this.store.addOutgoing({ peer: fp, id: s.idHex, type: wire.TYPE.Read, sentAt: s.sentAt }, { to: c.pub.idHex, relay: c.relay || '', envelope: s.envelope, type: wire.TYPE.Read, flags: wire.FLAG_RECEIPT });
    }
    if (ids.length) {
      this.emit('messages', { peer: fp, read: true });
      this.flush();
    }
  }

  // sendLive sends typing or presence, delivered only if the contact is
  // online now.
  sendLive(fp, type, on) {
    if (!this.leader) {
      this.post({ kind: 'sendLive', fp, type, on });
      return;
    }
    const c = this.contacts.get(fp);
    if (!c || !this.main) return;
    this.connFor(c.relay)
      .then((conn) => {
        const s = this.seal(c, type, Uint8Array.of(on ? 1 : 0));
        conn.sendData(c.pub.id, wire.FLAG_EPHEMERAL, s.envelope);
      })
      .catch(() => {});
  }

  onLive(c, type, on) {
    const l = this.live.get(c.fp) || { typing: false, online: false };
    if (type === wire.TYPE.Typing) {
      l.typing = on;
      l.typingUntil = this.now() + TYPING_SHOWN_MS;
      if (on) l.online = true;
    } else {
      l.online = on;
      if (!on) l.typing = false;
    }
    this.live.set(c.fp, l);
    this.emit('live', { peer: c.fp });
    this.post({ kind: 'live', peer: c.fp, live: l });
  }

  liveOf(fp) {
    const l = this.live.get(fp);
    if (!l) return { typing: false, online: false };
    return { typing: l.typing && this.now() < l.typingUntil, online: l.online };
  }

  // Push (PROTOCOL.md §6, "Push wake-ups").

  async onPushKey(key) {
    this.pushKey = key;
    await this.store.setMeta('pushKey', { relay: this.relay.toString(), key: b64url(key) });
    this.emit('push', {});
    // Renew this browser's subscription on every connection: the relay
    // may have forgotten it, and the browser may have rotated it.
    const p = await this.store.getMeta('push');
    if (p && p.enabled && p.subscription) this.pushCommand({ op: wire.OP.PushSubscribe, ...decodeSubscription(p.subscription) }).catch(() => {});
  }

  // pushCommand sends a push command on the receiving connection and
  // resolves with the relay's PushResult reason (0: done).
  pushCommand(cmd) {
    const conn = this.main;
    if (!conn) return Promise.reject(new Error('not connected to the relay'));
    return new Promise((resolve, reject) => {
      const list = this.pushWaiters.get(conn) || [];
      this.pushWaiters.set(conn, list);
      const t = setTimeout(() => reject(new Error('the relay did not answer')), 10_000);
      list.push((reason) => {
        clearTimeout(t);
        resolve(reason);
      });
      conn.sendCommand(cmd);
    });
  }

  // pushSubscribe registers a browser PushSubscription (its toJSON()).
  async pushSubscribe(subJSON, showText = true) {
    const reason = await this.pushCommand({ op: wire.OP.PushSubscribe, ...decodeSubscription(subJSON) });
    if (reason !== 0) throw new Error(`the relay refused the subscription: ${wire.reasonName(reason)}`);
    await this.store.setMeta('push', { enabled: true, subscription: subJSON, showText });
  }

  async pushUnsubscribe() {
    const p = await this.store.getMeta('push');
    if (p && p.subscription) await this.pushCommand({ op: wire.OP.PushUnsubscribe, endpoint: p.subscription.endpoint }).catch(() => {});
    await this.store.setMeta('push', { enabled: false, showText: p ? p.showText : true });
  }

  // collect is what the service worker does on a push: connect as the
  // identity (receiving), take every stored frame as the page would
  // (stored, delivered sent, then acknowledged), hand over the outbox, and
  // close. It returns the new incoming text messages.
  async collect(timeoutMs = 20_000) {
    const got = [];
    const onChange = (ev) => {
      if (ev.detail.kind === 'messages' && ev.detail.incoming && ev.detail.rec) got.push(ev.detail.rec);
    };
    this.addEventListener('change', onChange);
    const conn = this.newConn(this.relay, true);
    this.leader = true;
    this.stopped = false; // as long as it collects: flush runs
    let timer;
    try {
      await conn.open();
      this.main = conn;
      this.flush();
      await Promise.race([conn.backlog, conn.ended, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
      await conn.idle();
      await this.flushing;
      // Wait (a little) for the relay's custody of what was handed over,
      // so that the outbox is not left to resend it next time.
      for (let i = 0; i < 150 && this.inFlight.get(conn)?.size && !conn.closed; i++) await new Promise((r) => setTimeout(r, 20));
    } finally {
      clearTimeout(timer);
      this.removeEventListener('change', onChange);
      conn.close();
      await conn.idle();
      this.main = null;
      this.leader = false;
      this.stopped = true;
    }
    return got;
  }

  // Contacts.

  async addContact(name, invite) {
    if (invite.pub.equal(this.identity.pub)) throw new Error('that is your own invite');
    for (const c of this.contacts.values()) {
      if (c.pub.equal(invite.pub) && c.name !== name) throw new Error(`these keys are already your contact ${c.name}`);
    }
    const existing = await this.store.contactByName(name);
    if (existing && !existing.removed && existing.fp !== invite.pub.fpHex) {
      throw new Error(`you already have a contact named ${name} with other keys; pick another name`);
    }
    const prev = await this.store.contact(invite.pub.fpHex);
    const rec = {
      fp: invite.pub.fpHex,
      name,
      nick: invite.name,
      x: b64url(invite.pub.x),
      ed: b64url(invite.pub.ed),
      relay: invite.relay || '',
      addedAt: prev && !prev.removed ? prev.addedAt : this.now(),
      verifiedAt: prev && !prev.removed ? prev.verifiedAt : null,
    };
    await this.store.putContact(rec);
    await this.load();
    this.emit('contacts', {});
    return this.contacts.get(rec.fp);
  }

  async removeContact(fp) {
    await this.store.removeContact(fp);
    this.pairs.delete(fp);
    await this.load();
    this.emit('contacts', {});
  }

  async setVerified(fp, verified) {
    const r = await this.store.contact(fp);
    if (!r) return;
    r.verifiedAt = verified ? this.now() : null;
    await this.store.putContact(r);
    await this.load();
    this.emit('contacts', {});
  }

  // Tabs.

  onChannel(m) {
    if (!m || typeof m !== 'object') return;
    if (m.kind === 'flush' && this.leader) this.flush();
    else if (m.kind === 'sendLive' && this.leader) this.sendLive(m.fp, m.type, m.on);
    else if (m.kind === 'status' && !this.leader) {
      this.status = { ...m.status, viaOtherTab: true };
      this.emit('status', this.status);
    } else if (m.kind === 'live' && !this.leader) {
      this.live.set(m.peer, m.live);
      this.emit('live', { peer: m.peer });
    }
  }

  async onStoreChange(m) {
    if (!m || typeof m !== 'object') return;
    if (m.kind === 'contacts') {
      await this.load();
      this.emit('contacts', {});
    } else if (m.kind === 'messages' || m.kind === 'state' || m.kind === 'read') {
      this.emit(m.kind === 'read' ? 'messages' : m.kind, { peer: m.peer, id: m.id, fromOtherTab: true });
      if (m.kind === 'messages' && this.leader) this.flush();
    }
  }
}

