// The app's local state in IndexedDB: the identity, the pinned relay key,
// contacts, the message history, the outbox, the replay guard and the
// conversation list. It survives reloads and browser restarts; every
// incoming message is written here, in one transaction with its replay
// entry, before the relay is told it may delete its copy.
//
// Object stores (database "wschat", version DB_VERSION):
//   meta      key -> value: "identity", "relayPin", "settings", "seq"
//   contacts  keyPath fp (hex fingerprint); index "name" (unique)
//   messages  keyPath key = dir:peer:id; index "conv" on [peer, seq]
//   seen      keyPath key = peer:id, every message accepted from a peer
//             (text and acknowledgements): the replay guard of §8
//   outbox    keyPath id (hex message id): sealed envelopes not yet in a
//             relay's custody
//   convs     keyPath peer: last message, unread count

export const DB_NAME = 'wschat';
export const DB_VERSION = 1;

// States of an outgoing message, in the one order they move through.
// "failed" is off the line: the relay refused it and it left the outbox.
export const STATES = ['pending', 'sent', 'stored', 'delivered', 'read'];
const RANK = { pending: 0, sent: 1, stored: 1, delivered: 2, read: 3, failed: -1 };
export const stateRank = (s) => (s in RANK ? RANK[s] : -1);

export class StoreError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind; // "unsupported" | "blocked" | "corrupt" | "quota" | "io"
  }
}

const req = (r) =>
  new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });

const done = (tx) =>
  new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error || new StoreError('io', 'transaction aborted'));
    tx.onerror = () => reject(tx.error);
  });

function wrapError(e) {
  if (e instanceof StoreError) return e;
  if (e && e.name === 'QuotaExceededError') return new StoreError('quota', 'the browser ran out of storage for this site');
  return new StoreError('io', `the browser's storage failed: ${e && e.message ? e.message : e}`);
}

export class Store {
  constructor(db) {
    this.db = db;
    this.changes = typeof BroadcastChannel !== 'undefined' ? new BroadcastChannel('wschat-store') : null;
  }

  static async open(name = DB_NAME) {
    if (typeof indexedDB === 'undefined') throw new StoreError('unsupported', 'this browser has no IndexedDB (is it a private window?)');
    const r = indexedDB.open(name, DB_VERSION);
    r.onupgradeneeded = (ev) => {
      const db = r.result;
      if (ev.oldVersion < 1) {
        db.createObjectStore('meta');
        db.createObjectStore('contacts', { keyPath: 'fp' }).createIndex('name', 'name', { unique: true });
        db.createObjectStore('messages', { keyPath: 'key' }).createIndex('conv', ['peer', 'seq']);
        db.createObjectStore('seen', { keyPath: 'key' }).createIndex('sentAt', 'sentAt');
        db.createObjectStore('outbox', { keyPath: 'id' });
        db.createObjectStore('convs', { keyPath: 'peer' });
      }
    };
    let db;
    try {
      db = await new Promise((resolve, reject) => {
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
        r.onblocked = () => reject(new StoreError('blocked', 'another tab holds an older version of wschat open; close it and reload'));
      });
    } catch (e) {
      if (e instanceof StoreError) throw e;
      if (e && e.name === 'VersionError') throw new StoreError('corrupt', 'this browser holds data from a newer wschat; open that version, or export the identity there');
      throw new StoreError('corrupt', `the browser's storage for wschat cannot be opened: ${e && e.message ? e.message : e}`);
    }
    const want = ['meta', 'contacts', 'messages', 'seen', 'outbox', 'convs'];
    for (const s of want) {
      if (!db.objectStoreNames.contains(s)) {
        db.close();
        throw new StoreError('corrupt', `the browser's storage for wschat is damaged (no "${s}" table)`);
      }
    }
    db.onversionchange = () => db.close();
    return new Store(db);
  }

  close() {
    this.db.close();
    this.changes?.close();
  }

  // announce tells other tabs (and the service worker) what changed.
  announce(what) {
    try {
      this.changes?.postMessage(what);
    } catch {
      // a closed channel: nothing to tell
    }
  }

  async tx(stores, mode, fn) {
    let t;
    try {
      t = this.db.transaction(stores, mode);
    } catch (e) {
      throw wrapError(e);
    }
    const s = {};
    for (const n of [].concat(stores)) s[n] = t.objectStore(n);
    let result;
    try {
      result = await fn(s, t);
      await done(t);
    } catch (e) {
      try {
        t.abort();
      } catch {
        // already finished
      }
      throw wrapError(e);
    }
    return result;
  }

  async getMeta(key) {
    return this.tx('meta', 'readonly', (s) => req(s.meta.get(key)));
  }

  async setMeta(key, value) {
    return this.tx('meta', 'readwrite', (s) => req(s.meta.put(value, key)));
  }

  // Contacts.

  async contacts() {
    const all = await this.tx('contacts', 'readonly', (s) => req(s.contacts.getAll()));
    return all.filter((c) => !c.removed).sort((a, b) => a.name.localeCompare(b.name));
  }

  async contact(fp) {
    return this.tx('contacts', 'readonly', (s) => req(s.contacts.get(fp)));
  }

  async contactByName(name) {
    return this.tx('contacts', 'readonly', (s) => req(s.contacts.index('name').get(name)));
  }

  // putContact adds or updates a contact. A removed contact with the same
  // keys comes back, history and all.
  async putContact(c) {
    await this.tx('contacts', 'readwrite', async (s) => {
      const other = await req(s.contacts.index('name').get(c.name));
      if (other && other.fp !== c.fp) {
        if (!other.removed) throw new StoreError('io', `the name ${c.name} is taken by another contact`);
        await req(s.contacts.delete(other.fp));
      }
      await req(s.contacts.put(c));
    });
    this.announce({ kind: 'contacts' });
  }

  async removeContact(fp) {
    await this.tx(['contacts', 'outbox'], 'readwrite', async (s) => {
      const c = await req(s.contacts.get(fp));
      if (!c) return;
      c.removed = true;
      // Freed: the name may go to someone else; history stays.
      c.name = `~removed-${fp.slice(0, 16)}`;
      await req(s.contacts.put(c));
      const out = await req(s.outbox.getAll());
      for (const o of out) if (o.peer === fp) await req(s.outbox.delete(o.id));
    });
    this.announce({ kind: 'contacts' });
  }

  // Messages.

  async nextSeq(s) {
    const n = ((await req(s.meta.get('seq'))) || 0) + 1;
    await req(s.meta.put(n, 'seq'));
    return n;
  }

  // addOutgoing records a sealed message in the history and, when env is
  // given, in the outbox, in one transaction.
  async addOutgoing(m, outbox) {
    const rec = await this.tx(['meta', 'messages', 'outbox', 'convs'], 'readwrite', async (s) => {
      const seq = await this.nextSeq(s);
      const rec = { ...(m.extra || {}), key: `out:${m.peer}:${m.id}`, seq, dir: 'out', peer: m.peer, id: m.id, type: m.type, text: m.text, sentAt: m.sentAt, receivedAt: m.sentAt, state: 'pending' };
      if (m.text !== undefined) await req(s.messages.add(rec));
      if (outbox) await req(s.outbox.add({ ...outbox, id: m.id, peer: m.peer, createdAt: m.sentAt, attempts: 0, lastError: '' }));
      if (m.text !== undefined) await this.bumpConv(s, m.peer, rec, false);
      return rec;
    });
    this.announce({ kind: 'messages', peer: m.peer });
    return rec;
  }

  async bumpConv(s, peer, rec, unread) {
    const c = (await req(s.convs.get(peer))) || { peer, unread: 0 };
    c.lastText = rec.text;
    c.lastType = rec.type;
    c.lastAt = rec.dir === 'in' ? rec.receivedAt : rec.sentAt;
    c.lastDir = rec.dir;
    c.lastSeq = rec.seq;
    if (unread) c.unread = (c.unread || 0) + 1;
    await req(s.convs.put(c));
  }

  // addIncoming stores a message that passed every check: its replay entry
  // and, for text, its history row and conversation, in one transaction.
  // It returns {dup: true} when the message was accepted before.
  async addIncoming(peer, m, text, now, extra = {}) {
    const idHex = m.idHex;
    const res = await this.tx(['meta', 'messages', 'seen', 'convs'], 'readwrite', async (s) => {
      const key = `${peer}:${idHex}`;
      if (await req(s.seen.get(key))) return { dup: true };
      await req(s.seen.add({ key, peer, sentAt: m.sentAt }));
      if (text === undefined) return { dup: false };
      const seq = await this.nextSeq(s);
      const rec = { ...extra, key: `in:${peer}:${idHex}`, seq, dir: 'in', peer, id: idHex, type: m.type, text, sentAt: m.sentAt, receivedAt: now, state: 'unread' };
      await req(s.messages.add(rec));
      await this.bumpConv(s, peer, rec, true);
      return { dup: false, rec };
    });
    if (res.rec) this.announce({ kind: 'messages', peer });
    return res;
  }

  // setState moves an outgoing message's state forward (never back);
  // "failed" sets the error. Returns the record when it changed.
  async setState(peer, idHex, state, error = '') {
    const rec = await this.tx('messages', 'readwrite', async (s) => {
      const r = await req(s.messages.get(`out:${peer}:${idHex}`));
      if (!r) return null;
      if (state === 'failed') {
        if (stateRank(r.state) > 0) return null;
        r.state = 'failed';
        r.error = error;
      } else if (stateRank(state) > stateRank(r.state)) {
        r.state = state;
        delete r.error;
      } else {
        return null;
      }
      await req(s.messages.put(r));
      return r;
    });
    if (rec) this.announce({ kind: 'state', peer, id: idHex });
    return rec;
  }

  // markRead marks incoming messages read and returns the ids that were
  // unread, for the read acknowledgement.
  async markRead(peer) {
    const ids = await this.tx(['messages', 'convs'], 'readwrite', async (s) => {
      const ids = [];
      const range = IDBKeyRange.bound([peer, 0], [peer, Infinity]);
      const recs = await req(s.messages.index('conv').getAll(range));
      for (const r of recs) {
        if (r.dir === 'in' && r.state === 'unread') {
          r.state = 'read';
          await req(s.messages.put(r));
          ids.push(r.id);
        }
      }
      const c = await req(s.convs.get(peer));
      if (c && c.unread) {
        c.unread = 0;
        await req(s.convs.put(c));
      }
      return ids;
    });
    if (ids.length) this.announce({ kind: 'read', peer });
    return ids;
  }

  // history returns up to limit messages of a conversation before seq
  // (newest last).
  async history(peer, beforeSeq = Infinity, limit = 80) {
    return this.tx('messages', 'readonly', (s) =>
      new Promise((resolve, reject) => {
        const out = [];
        const range = IDBKeyRange.bound([peer, 0], [peer, beforeSeq], false, true);
        const c = s.messages.index('conv').openCursor(range, 'prev');
        c.onsuccess = () => {
          const cur = c.result;
          if (!cur || out.length >= limit) return resolve(out.reverse());
          out.push(cur.value);
          cur.continue();
        };
        c.onerror = () => reject(c.error);
      }),
    );
  }

  // historyAfter returns up to limit messages of a conversation after seq
  // (oldest first).
  async historyAfter(peer, afterSeq, limit = 80) {
    return this.tx('messages', 'readonly', (s) =>
      req(s.messages.index('conv').getAll(IDBKeyRange.bound([peer, afterSeq], [peer, Infinity], true, false), limit)),
    );
  }

  // update changes a stored message record (fields of the app's own:
  // a question's answer, an approval's verdict) and announces it.
  async update(dir, peer, idHex, fields) {
    const rec = await this.tx('messages', 'readwrite', async (s) => {
      const r = await req(s.messages.get(`${dir}:${peer}:${idHex}`));
      if (!r) return null;
      Object.assign(r, fields);
      await req(s.messages.put(r));
      return r;
    });
    if (rec) this.announce({ kind: 'state', peer, id: idHex });
    return rec;
  }

  // find returns the message with this id in a conversation, from either
  // side (what a reply quotes).
  async find(peer, idHex) {
    return (await this.message('in', peer, idHex)) || (await this.message('out', peer, idHex));
  }

  async message(dir, peer, idHex) {
    return this.tx('messages', 'readonly', (s) => req(s.messages.get(`${dir}:${peer}:${idHex}`)));
  }

  async convs() {
    return this.tx('convs', 'readonly', (s) => req(s.convs.getAll()));
  }

  // Outbox.

  async outbox() {
    const all = await this.tx('outbox', 'readonly', (s) => req(s.outbox.getAll()));
    return all.sort((a, b) => a.createdAt - b.createdAt);
  }

  async outboxEntry(id) {
    return this.tx('outbox', 'readonly', (s) => req(s.outbox.get(id)));
  }

  async removeOutbox(id) {
    return this.tx('outbox', 'readwrite', (s) => req(s.outbox.delete(id)));
  }

  async noteAttempt(id, error) {
    return this.tx('outbox', 'readwrite', async (s) => {
      const o = await req(s.outbox.get(id));
      if (!o) return;
      o.attempts++;
      o.lastError = error || '';
      await req(s.outbox.put(o));
    });
  }

  // prune forgets replay entries older than the horizon (their messages are
  // refused as too old anyway) and returns how many went.
  async prune(horizon) {
    return this.tx('seen', 'readwrite', (s) =>
      new Promise((resolve, reject) => {
        let n = 0;
        const c = s.seen.index('sentAt').openCursor(IDBKeyRange.upperBound(horizon, true));
        c.onsuccess = () => {
          const cur = c.result;
          if (!cur) return resolve(n);
          cur.delete();
          n++;
          cur.continue();
        };
        c.onerror = () => reject(c.error);
      }),
    );
  }

  // wipe deletes everything (the person chose to leave this browser).
  async wipe() {
    await this.tx(['meta', 'contacts', 'messages', 'seen', 'outbox', 'convs'], 'readwrite', async (s) => {
      for (const n of Object.keys(s)) await req(s[n].clear());
    });
    this.announce({ kind: 'wipe' });
  }
}
