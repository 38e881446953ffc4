// One authenticated connection to a relay (PROTOCOL.md §3–§6): the
// WebSocket, the handshake, the two Framers, relay commands, keepalive.
// Frames are unblinded in the order they arrive and handed to the owner
// one at a time, in order: the next is not given before the owner's
// handler for the last one has settled, so an incoming message is stored
// before the next is looked at and before the relay is acknowledged.

import * as wire from './wire.js';

export const HANDSHAKE_TIMEOUT_MS = 10_000;
export const KEEPALIVE_MS = 25_000; // a Ping after this much silence from the relay
export const PONG_TIMEOUT_MS = 10_000; // and the connection is dead if nothing follows in this
const ACK_BATCH_MS = 20; // Acks written within this are sent as one command

export class RelayError extends Error {
  constructor(kind, message, extra = {}) {
    super(message);
    this.kind = kind; // "auth" | "closed" | "timeout" | "restarting" | "protocol" | "refused"
    Object.assign(this, extra);
  }
}

// RelayConn: open() resolves once the relay's Welcome has opened.
// handlers: onData(header, body) for data frames (may return a promise),
// onCommand(cmd), onClose(err).
export class RelayConn {
  constructor({ address, identity, receive, handlers, WebSocketImpl = WebSocket }) {
    this.address = address; // wire.RelayAddress
    this.identity = identity;
    this.receive = receive;
    this.h = handlers;
    this.WS = WebSocketImpl;
    this.session = null;
    this.welcome = null;
    this.closed = false;
    this.restart = null; // the relay's Restarting notice
    this.queue = Promise.resolve(); // handlers, in order
    this.pendingAcks = [];
    this.ackTimer = null;
    this.lastHeard = Date.now();
    this.keepalive = null;
    this.pingToken = 0n;
  }

  open() {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err) => {
        if (!settled) {
          settled = true;
          reject(err);
        }
        this.shut(err);
      };
      const timer = setTimeout(() => fail(new RelayError('timeout', `the relay at ${this.address.url} did not answer the handshake in ${HANDSHAKE_TIMEOUT_MS / 1000} s`)), HANDSHAKE_TIMEOUT_MS);
      let ws;
      try {
        ws = new this.WS(this.address.url, wire.SUBPROTOCOL);
      } catch (e) {
        clearTimeout(timer);
        fail(new RelayError('closed', `cannot connect to ${this.address.url}: ${e.message}`));
        return;
      }
      this.ws = ws;
      ws.binaryType = 'arraybuffer';
      ws.onmessage = (ev) => {
        if (this.closed) return;
        this.lastHeard = Date.now();
        if (!(ev.data instanceof ArrayBuffer)) return fail(new RelayError('protocol', 'the relay sent a text message'));
        const b = new Uint8Array(ev.data);
        try {
          if (!this.session) {
            const { auth, session } = wire.clientHandshake(this.identity, this.address.key, this.receive ? wire.CONN_RECEIVE : 0, b);
            this.session = session;
            ws.send(auth);
            return;
          }
          const h = this.session.recv.openHeader(b);
          if (!this.welcome) {
            // Nothing from the relay is trusted before its Welcome opens:
            // that proves it holds the pinned key.
            let c;
            try {
              c = this.session.recv.openCommand(h, b);
            } catch {
              throw new RelayError('auth', 'the relay did not prove it holds its key (wrong relay key in the address?)');
            }
            if (c.op !== wire.OP.Welcome) throw new RelayError('auth', 'the relay did not start with Welcome');
            this.welcome = c;
            clearTimeout(timer);
            settled = true;
            this.startKeepalive();
            resolve(c);
            return;
          }
          this.frame(h, b);
        } catch (e) {
          clearTimeout(timer);
          fail(e instanceof RelayError ? e : new RelayError('protocol', `the relay sent a bad frame: ${e.message}`));
        }
      };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        let err;
        if (this.restart) {
          err = new RelayError('restarting', 'the relay is restarting', { retryAfter: this.restart.retryAfter });
        } else if (!this.welcome && this.session) {
          err = new RelayError('auth', `the relay closed the connection during the handshake (code ${ev.code}${ev.reason ? ': ' + ev.reason : ''}); is the relay key right?`);
        } else if (!this.session) {
          err = new RelayError('closed', `cannot reach the relay at ${this.address.url}`);
        } else {
          err = new RelayError('closed', `the connection to the relay closed (code ${ev.code}${ev.reason ? ': ' + ev.reason : ''})`);
        }
        fail(err);
      };
      ws.onerror = () => {
        // onclose follows with the details
      };
    });
  }

  frame(h, b) {
    if (h.id.every((x) => x === 0)) {
      const c = this.session.recv.openCommand(h, b); // throws: out of step, closed
      if (c.op === wire.OP.Ping) {
        this.sendCommand({ op: wire.OP.Pong, token: c.token });
        return;
      }
      if (c.op === wire.OP.Restarting) this.restart = c;
      this.enqueue(() => this.h.onCommand?.(c));
      return;
    }
    const body = b.subarray(wire.FRAME_HEADER_SIZE);
    this.enqueue(() => this.h.onData?.(h, body));
  }

  enqueue(fn) {
    this.queue = this.queue.then(fn).catch((e) => {
      console.error('wschat: handler failed', e);
    });
  }

  startKeepalive() {
    this.keepalive = setInterval(() => {
      if (this.closed) return;
      const quiet = Date.now() - this.lastHeard;
      if (quiet > KEEPALIVE_MS + PONG_TIMEOUT_MS) {
        this.shut(new RelayError('timeout', 'the relay stopped answering'));
      } else if (quiet > KEEPALIVE_MS) {
        this.sendCommand({ op: wire.OP.Ping, token: ++this.pingToken });
      }
    }, 5_000);
  }

  // sendData seals a data frame's header and writes it; returns its index.
  sendData(to, flags, envelope) {
    if (this.closed || !this.session) throw new RelayError('closed', 'not connected to the relay');
    const f = new Uint8Array(wire.FRAME_HEADER_SIZE + envelope.length);
    f.set(envelope, wire.FRAME_HEADER_SIZE);
    const i = this.session.send.sealHeader(f, to, flags);
    this.ws.send(f);
    return i;
  }

  sendCommand(c) {
    if (this.closed || !this.session) return;
    const { frame } = this.session.send.sealCommand(c);
    this.ws.send(frame);
  }

  // ack tells the relay it may delete the frame; batched briefly.
  ack(index) {
    this.pendingAcks.push(index);
    if (this.pendingAcks.length >= wire.MAX_COMMAND_ENTRIES) return this.flushAcks();
    if (!this.ackTimer) this.ackTimer = setTimeout(() => this.flushAcks(), ACK_BATCH_MS);
  }

  flushAcks() {
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    if (!this.pendingAcks.length) return;
    const acks = this.pendingAcks.splice(0, wire.MAX_COMMAND_ENTRIES);
    this.sendCommand({ op: wire.OP.Ack, acks });
  }

  // idle resolves once every handler queued so far has run.
  idle() {
    return this.queue;
  }

  shut(err) {
    if (this.closed) return;
    this.flushAcks();
    this.closed = true;
    clearInterval(this.keepalive);
    try {
      this.ws?.close(1000);
    } catch {
      // closing anyway
    }
    // The owner hears after the handlers already queued have run.
    this.enqueue(() => this.h.onClose?.(err));
  }

  close() {
    this.shut(new RelayError('closed', 'closed by the app'));
  }
}
