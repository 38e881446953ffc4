// The wschat wire format, protocol version 1, as PROTOCOL.md gives it byte
// by byte and package wire implements it in Go: identities and key checks
// (§1), relay addresses (§2), the relay handshake (§4), frames and header
// blinding (§5), relay commands (§6), the end-to-end envelope (§7) and the
// replay rules (§8). The repo's golden vectors run through this file in
// real Chromium (web/app/test/vectors.js).
//
// Every function that reads foreign bytes checks sizes before anything
// else and throws a WireError whose code is the Go error's name.

import { blake3, chacha20, chacha20poly1305, xchacha20poly1305, ed25519, ed25519ctx, x25519 } from '../vendor/vendor.js';
import {
  utf8, utf8Decode, concat, equal, isZero, hex, b64url, unb64url,
  putU16, putU32, putU64, getU16, getU32, getU64, randomBytes,
} from './bytes.js';
import { kxResponder } from './noise.js';
import { parseQuestion, parseReply, parseApprovalRequest, parseApprovalAnswer } from './structured.js';

export const PROTOCOL_VERSION = 1;
export const SUBPROTOCOL = 'wschat.v1';

export const CTX = {
  fingerprint: utf8('wschat v1 2026-11 identity fingerprint'),
  messageKey: utf8('wschat v1 2026-11 message key'),
  pairTag: utf8('wschat v1 2026-11 pair tag'),
  blind: utf8('wschat v1 2026-11 header blinding'),
  command: utf8('wschat v1 2026-11 relay command'),
  safety: utf8('wschat v1 2026-11 safety number'),
};
const SIG_MESSAGE = utf8('wschat v1 message');
const SIG_RELAY_AUTH = utf8('wschat v1 relay auth');

export const KEY_SIZE = 32;
export const ROUTING_ID_SIZE = 8;
export const FRAME_HEADER_SIZE = 9;
export const NONCE_SIZE = 24;
export const PAIR_TAG_SIZE = 8;
export const TAG_SIZE = 16;
export const ENVELOPE_HEADER_SIZE = 33;
export const SIGNATURE_SIZE = 64;
export const MESSAGE_ID_SIZE = 16;
export const MIN_PADDED = 128;
export const MAX_PADDED = 1 << 16;
const INNER_HEADER_SIZE = 30;
export const MAX_BODY_SIZE = MAX_PADDED - INNER_HEADER_SIZE - SIGNATURE_SIZE; // 65442
export const MIN_ENVELOPE_SIZE = ENVELOPE_HEADER_SIZE + MIN_PADDED + TAG_SIZE;
export const MAX_ENVELOPE_SIZE = ENVELOPE_HEADER_SIZE + MAX_PADDED + TAG_SIZE;
export const MAX_FRAME_SIZE = FRAME_HEADER_SIZE + ENVELOPE_HEADER_SIZE + MAX_PADDED + TAG_SIZE; // 65594
export const MAX_FRAMES_PER_DIRECTION = 2n ** 34n;
export const MAX_COMMAND_ENTRIES = 4096;
export const MAX_ACK_IDS = 1024;
export const MAX_RELAY_ADDRESS_LEN = 255;
export const REPLAY_HORIZON_MS = 30 * 24 * 3600 * 1000;
export const MAX_CLOCK_SKEW_MS = 24 * 3600 * 1000;
export const HELLO_SIZE = 34;
export const AUTH_SIZE = 195;

export const MSG_HELLO = 0x01;
export const MSG_AUTH = 0x02;
export const CONN_RECEIVE = 1;
export const FLAG_EPHEMERAL = 1;
export const FLAG_RECEIPT = 2; // PROTOCOL.md §5: on every delivered and read envelope
const FRAME_FLAGS_KNOWN = FLAG_EPHEMERAL | FLAG_RECEIPT;
// UNNAMED_ID heads a frame the relay had stored: it keeps no sender ids,
// and the recipient finds the sender by the pair tag (Pair.from).
export const UNNAMED_ID = new Uint8Array(8).fill(0xff);

export const RELAY_ID = new Uint8Array(8);

export class WireError extends Error {
  constructor(code, detail) {
    super(detail ? `${MESSAGES[code] || code}: ${detail}` : MESSAGES[code] || code);
    this.code = code;
  }
}

const MESSAGES = {
  ErrKeySize: 'key is not 32 bytes',
  ErrNonCanonicalKey: 'key encoding is not canonical',
  ErrLowOrderKey: 'x25519 key has low order',
  ErrSmallOrderKey: 'ed25519 key is not in the prime-order subgroup',
  ErrInvalidKey: 'key is not a valid curve point',
  ErrZeroSharedSecret: 'x25519 shared secret is all zero',
  ErrRelayAddress: 'invalid relay address',
  ErrHandshakeMalformed: 'malformed handshake message',
  ErrHandshakeVersion: 'unsupported protocol version',
  ErrFrameSize: 'frame size out of range',
  ErrFrameFlags: 'unknown frame flags',
  ErrFramesExhausted: 'connection frame counter exhausted',
  ErrCommandAuth: 'relay command does not authenticate',
  ErrCommandMalformed: 'malformed relay command',
  ErrUnknownCommand: 'unknown relay command',
  ErrEnvelopeSize: 'envelope size is not a padding bucket',
  ErrEnvelopeVersion: 'unsupported envelope version',
  ErrWrongPair: 'envelope is not from this sender to this recipient',
  ErrReflected: 'envelope is our own, reflected back',
  ErrDecrypt: 'envelope does not authenticate',
  ErrSignature: 'message signature does not verify',
  ErrInnerMalformed: 'malformed message',
  ErrBodyTooLarge: 'message body too large',
  ErrSelfPair: 'cannot exchange messages with oneself',
  ErrReplay: 'message already received',
  ErrTooOld: 'message is older than the replay horizon',
  ErrFromFuture: 'message is dated in the future',
};

export const deriveKey = (ctx, material, dkLen = 32) => blake3(material, { context: ctx, dkLen });

// §1: key checks.

// p = 2^255-19 and the five canonical low-order u-coordinates, little-endian.
const P25519 = Uint8Array.from([0xed, ...new Array(30).fill(0xff), 0x7f]);
const LOW_ORDER = [
  new Uint8Array(32),
  Uint8Array.from([1, ...new Array(31).fill(0)]),
  Uint8Array.from([0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
    0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00]),
  Uint8Array.from([0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
    0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57]),
  Uint8Array.from([0xec, ...new Array(30).fill(0xff), 0x7f]),
];

function lessLE(a, b) {
  for (let i = a.length - 1; i >= 0; i--) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

export function checkX25519Public(b) {
  if (!(b instanceof Uint8Array) || b.length !== KEY_SIZE) throw new WireError('ErrKeySize');
  if (b[31] & 0x80 || !lessLE(b, P25519)) throw new WireError('ErrNonCanonicalKey');
  let low = false;
  for (const l of LOW_ORDER) low = equal(b, l) || low;
  if (low) throw new WireError('ErrLowOrderKey');
}

export function checkEd25519Public(b) {
  if (!(b instanceof Uint8Array) || b.length !== KEY_SIZE) throw new WireError('ErrKeySize');
  let p;
  try {
    // ZIP 215 decoding accepts the non-canonical encodings of valid points,
    // as Go's edwards25519 does, so that the re-encoding check below names
    // them; strict decoding would call them invalid.
    p = ed25519.Point.fromBytes(b, true);
  } catch {
    throw new WireError('ErrInvalidKey');
  }
  if (!equal(p.toBytes(), b)) throw new WireError('ErrNonCanonicalKey');
  if (p.isSmallOrder() || !p.isTorsionFree()) throw new WireError('ErrSmallOrderKey');
}

export function fingerprint(x, ed) {
  return deriveKey(CTX.fingerprint, concat(x, ed));
}

// PublicIdentity: the two public keys, checked, and the fingerprint.
export class PublicIdentity {
  constructor(x, ed, fp) {
    this.x = x;
    this.ed = ed;
    this.fp = fp;
    this.id = fp.subarray(0, ROUTING_ID_SIZE);
  }
  static from(x, ed) {
    checkX25519Public(x);
    checkEd25519Public(ed);
    return PublicIdentity.derived(x, ed);
  }
  // derived skips the checks, for keys made here from seeds.
  static derived(x, ed) {
    const fp = fingerprint(x, ed);
    if (isZero(fp.subarray(0, 8))) throw new Error(`identity ${hex(fp.subarray(0, 4))}: routing id is the relay's`);
    return new PublicIdentity(Uint8Array.from(x), Uint8Array.from(ed), fp);
  }
  equal(o) {
    return equal(this.x, o.x) && equal(this.ed, o.ed);
  }
  get idHex() {
    return hex(this.id);
  }
  get fpHex() {
    return hex(this.fp);
  }
}

// Identity: a private identity from its two 32-byte seeds.
export class Identity {
  constructor(xSeed, edSeed) {
    if (xSeed.length !== 32 || edSeed.length !== 32) throw new WireError('ErrKeySize');
    this.xSeed = Uint8Array.from(xSeed);
    this.edSeed = Uint8Array.from(edSeed);
    this.pub = PublicIdentity.derived(x25519.getPublicKey(this.xSeed), ed25519.getPublicKey(this.edSeed));
  }
  static generate() {
    return new Identity(randomBytes(32), randomBytes(32));
  }
  sign(msg, context) {
    return ed25519ctx.sign(msg, this.edSeed, { context });
  }
  dh(peerX) {
    let s;
    try {
      s = x25519.getSharedSecret(this.xSeed, peerX);
    } catch {
      throw new WireError('ErrZeroSharedSecret');
    }
    if (isZero(s)) throw new WireError('ErrZeroSharedSecret');
    return s;
  }
}

// §2: relay addresses.

export class RelayAddress {
  constructor(url, key) {
    this.url = url;
    this.key = key;
  }
  toString() {
    return this.url + '#' + b64url(this.key);
  }
}

export function parseRelayAddress(s) {
  const bad = (why) => new WireError('ErrRelayAddress', `${JSON.stringify(s)}: ${why}`);
  if (typeof s !== 'string') throw bad('not text');
  if (utf8(s).length > MAX_RELAY_ADDRESS_LEN) throw bad(`longer than ${MAX_RELAY_ADDRESS_LEN} bytes`);
  const hash = s.indexOf('#');
  if (hash < 0 || hash === s.length - 1) throw bad("no relay key after '#'");
  const base = s.slice(0, hash);
  const frag = s.slice(hash + 1);
  const key = unb64url(frag);
  if (!key || key.length !== KEY_SIZE) throw bad('relay key is not 43 base64url characters');
  try {
    checkX25519Public(key);
  } catch (e) {
    throw bad('relay key: ' + e.message);
  }
  for (let i = 0; i < base.length; i++) {
    const c = base.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) throw bad('not printable ASCII');
  }
  const m = /^(wss?):\/\/([^/?#]*)(.*)$/.exec(base);
  if (!m) throw bad('scheme must be ws or wss');
  const authority = m[2];
  if (authority === '' || authority.includes('@')) throw bad('want ws[s]://host[:port][/path]');
  try {
    new URL(base);
  } catch {
    throw bad('not a URL');
  }
  return new RelayAddress(base, key);
}

// §5: frames and header blinding; §6: relay commands.

export const OP = { Welcome: 1, Custody: 2, Ack: 3, Error: 4, Ping: 5, Pong: 6, Restarting: 7, BacklogDone: 8, PushKey: 9, PushSubscribe: 10, PushUnsubscribe: 11, PushResult: 12 };
export const PUSH_KEY_SIZE = 65;
export const PUSH_AUTH_SIZE = 16;
export const MAX_PUSH_ENDPOINT = 1024;
export const STATUS = { Delivered: 1, Stored: 2, Refused: 3 };
export const REASONS = [
  'none', 'malformed', 'too_large', 'rate_limited', 'mailbox_full',
  'recipient_offline', 'unknown_recipient', 'shutting_down', 'internal',
  'too_many_connections', 'handshake_failed', 'version', 'idle',
  'slow_consumer', 'expired', 'bad_recipient', 'storage_full', 'sender_budget',
  'bad_endpoint',
];
export const reasonName = (r) => REASONS[r] || `reason_${r}`;

const FIXED_SIZE = { 1: 22, 4: 5, 5: 8, 6: 8, 7: 8, 8: 4, 9: 65, 12: 1 };

export function encodeCommand(c) {
  let b;
  switch (c.op) {
    case OP.Welcome:
      b = new Uint8Array(23);
      b[1] = c.version;
      b[2] = c.connFlags;
      putU64(b, 3, c.time);
      putU32(b, 11, c.maxFrameSize);
      b.set(c.id, 15);
      break;
    case OP.Custody: {
      const n = c.custody.length;
      if (n === 0 || n > MAX_COMMAND_ENTRIES) throw new WireError('ErrCommandMalformed', `${n} custody entries`);
      b = new Uint8Array(3 + 10 * n);
      putU16(b, 1, n);
      c.custody.forEach((e, i) => {
        putU64(b, 3 + 10 * i, e.index);
        b[3 + 10 * i + 8] = e.status;
        b[3 + 10 * i + 9] = e.reason || 0;
      });
      break;
    }
    case OP.Ack: {
      const n = c.acks.length;
      if (n === 0 || n > MAX_COMMAND_ENTRIES) throw new WireError('ErrCommandMalformed', `${n} acks`);
      b = new Uint8Array(3 + 8 * n);
      putU16(b, 1, n);
      c.acks.forEach((a, i) => putU64(b, 3 + 8 * i, a));
      break;
    }
    case OP.Error:
      b = new Uint8Array(6);
      b[1] = c.reason;
      putU32(b, 2, c.retryAfter);
      break;
    case OP.Ping:
    case OP.Pong:
      b = new Uint8Array(9);
      putU64(b, 1, c.token);
      break;
    case OP.Restarting:
      b = new Uint8Array(9);
      putU32(b, 1, c.retryAfter);
      putU32(b, 5, c.tryFor);
      break;
    case OP.BacklogDone:
      b = new Uint8Array(5);
      putU32(b, 1, c.count);
      break;
    case OP.PushKey:
      if (c.key.length !== PUSH_KEY_SIZE) throw new WireError('ErrCommandMalformed', 'push key size');
      b = concat(new Uint8Array(1), c.key);
      break;
    case OP.PushSubscribe:
    case OP.PushUnsubscribe: {
      const ep = utf8(c.endpoint);
      if (ep.length === 0 || ep.length > MAX_PUSH_ENDPOINT) throw new WireError('ErrCommandMalformed', `push endpoint of ${ep.length} bytes`);
      const len = new Uint8Array(2);
      putU16(len, 0, ep.length);
      if (c.op === OP.PushSubscribe) {
        if (c.p256dh.length !== PUSH_KEY_SIZE || c.auth.length !== PUSH_AUTH_SIZE) throw new WireError('ErrCommandMalformed', 'push subscription keys');
        b = concat(new Uint8Array(1), c.p256dh, c.auth, len, ep);
      } else {
        b = concat(new Uint8Array(1), len, ep);
      }
      break;
    }
    case OP.PushResult:
      b = Uint8Array.of(0, c.reason);
      break;
    default:
      throw new WireError('ErrUnknownCommand', `op ${c.op}`);
  }
  b[0] = c.op;
  return b;
}

function parseEndpoint(b) {
  if (b.length < 2) throw new WireError('ErrCommandMalformed');
  const n = getU16(b, 0);
  if (n === 0 || n > MAX_PUSH_ENDPOINT || b.length !== 2 + n) throw new WireError('ErrCommandMalformed', `push endpoint of ${n} bytes in ${b.length}`);
  const s = utf8Decode(b.subarray(2));
  if (s === null) throw new WireError('ErrCommandMalformed', 'push endpoint is not UTF-8');
  return s;
}

// parseCommand decodes a command plaintext strictly. u64 fields are BigInt.
export function parseCommand(b) {
  if (b.length === 0) throw new WireError('ErrCommandMalformed');
  const op = b[0];
  const body = b.subarray(1);
  if (op in FIXED_SIZE && body.length !== FIXED_SIZE[op]) {
    throw new WireError('ErrCommandMalformed', `op ${op} is ${body.length} bytes, want ${FIXED_SIZE[op]}`);
  }
  const entries = (size) => {
    if (body.length < 2) throw new WireError('ErrCommandMalformed');
    const n = getU16(body, 0);
    if (n === 0 || n > MAX_COMMAND_ENTRIES || body.length !== 2 + n * size) {
      throw new WireError('ErrCommandMalformed', `${n} entries in ${body.length} bytes`);
    }
    return n;
  };
  switch (op) {
    case OP.Welcome:
      return { op, version: body[0], connFlags: body[1], time: getU64(body, 2), maxFrameSize: getU32(body, 10), id: body.slice(14, 22) };
    case OP.Custody: {
      const n = entries(10);
      const custody = [];
      for (let i = 0; i < n; i++) {
        const e = body.subarray(2 + 10 * i);
        const entry = { index: getU64(e, 0), status: e[8], reason: e[9] };
        if (entry.status === STATUS.Delivered || entry.status === STATUS.Stored) {
          if (entry.reason !== 0) throw new WireError('ErrCommandMalformed', 'reason on an accepted entry');
        } else if (entry.status !== STATUS.Refused) {
          throw new WireError('ErrCommandMalformed', `custody status ${entry.status}`);
        }
        custody.push(entry);
      }
      return { op, custody };
    }
    case OP.Ack: {
      const n = entries(8);
      const acks = [];
      for (let i = 0; i < n; i++) acks.push(getU64(body, 2 + 8 * i));
      return { op, acks };
    }
    case OP.Error:
      return { op, reason: body[0], retryAfter: getU32(body, 1) };
    case OP.Ping:
    case OP.Pong:
      return { op, token: getU64(body, 0) };
    case OP.Restarting:
      return { op, retryAfter: getU32(body, 0), tryFor: getU32(body, 4) };
    case OP.BacklogDone:
      return { op, count: getU32(body, 0) };
    case OP.PushKey:
      return { op, key: body.slice() };
    case OP.PushSubscribe:
      if (body.length < PUSH_KEY_SIZE + PUSH_AUTH_SIZE) throw new WireError('ErrCommandMalformed', 'push subscription size');
      return { op, p256dh: body.slice(0, PUSH_KEY_SIZE), auth: body.slice(PUSH_KEY_SIZE, PUSH_KEY_SIZE + PUSH_AUTH_SIZE), endpoint: parseEndpoint(body.subarray(PUSH_KEY_SIZE + PUSH_AUTH_SIZE)) };
    case OP.PushUnsubscribe:
      return { op, endpoint: parseEndpoint(body) };
    case OP.PushResult:
      return { op, reason: body[0] };
    default:
      throw new WireError('ErrUnknownCommand', `op ${op}`);
  }
}

const ZERO_NONCE12 = new Uint8Array(12);
const ZERO_HEADER = new Uint8Array(FRAME_HEADER_SIZE);
const ZERO_BLOCK = new Uint8Array(64);

function commandNonce(i) {
  const n = new Uint8Array(12);
  putU64(n, 0, i);
  return n;
}

// Framer is one direction of one connection. Frames must pass through it
// in the order they cross the wire.
export class Framer {
  constructor(transportKey) {
    this.blindKey = deriveKey(CTX.blind, transportKey);
    this.cmdKey = deriveKey(CTX.command, transportKey);
    this.next = 0n;
    this.block = -1n;
    this.stream = null;
  }
  mask(frame) {
    if (this.next >= MAX_FRAMES_PER_DIRECTION) throw new WireError('ErrFramesExhausted');
    const i = this.next;
    const blk = i >> 2n;
    if (blk !== this.block) {
      this.stream = chacha20(this.blindKey, ZERO_NONCE12, ZERO_BLOCK, undefined, Number(blk));
      this.block = blk;
    }
    const off = Number(i & 3n) * 16;
    for (let j = 0; j < FRAME_HEADER_SIZE; j++) frame[j] ^= this.stream[off + j];
    this.next++;
    return i;
  }
  // sealHeader writes id and flags into frame[0:9] and blinds them; the
  // body must already follow. Returns the frame's index.
  sealHeader(frame, id, flags) {
    if (frame.length <= FRAME_HEADER_SIZE || frame.length > MAX_FRAME_SIZE) throw new WireError('ErrFrameSize');
    if (flags & ~FRAME_FLAGS_KNOWN) throw new WireError('ErrFrameFlags');
    frame.set(id, 0);
    frame[8] = flags;
    return this.mask(frame);
  }
  // openHeader unblinds frame[0:9] in place.
  openHeader(frame) {
    if (frame.length <= FRAME_HEADER_SIZE || frame.length > MAX_FRAME_SIZE) throw new WireError('ErrFrameSize');
    const index = this.mask(frame);
    const h = { index, id: frame.slice(0, 8), flags: frame[8] };
    if (h.flags & ~FRAME_FLAGS_KNOWN) throw new WireError('ErrFrameFlags');
    return h;
  }
  sealCommand(cmd) {
    const plain = encodeCommand(cmd);
    if (FRAME_HEADER_SIZE + plain.length + TAG_SIZE > MAX_FRAME_SIZE) throw new WireError('ErrFrameSize');
    const sealed = chacha20poly1305(this.cmdKey, commandNonce(this.next), ZERO_HEADER).encrypt(plain);
    const frame = concat(ZERO_HEADER, sealed);
    const index = this.mask(frame);
    return { frame, index };
  }
  openCommand(h, frame) {
    if (!isZero(h.id) || h.flags !== 0 || frame.length < FRAME_HEADER_SIZE + 1 + TAG_SIZE) throw new WireError('ErrCommandAuth');
    let plain;
    try {
      plain = chacha20poly1305(this.cmdKey, commandNonce(h.index), ZERO_HEADER).decrypt(frame.subarray(FRAME_HEADER_SIZE));
    } catch {
      throw new WireError('ErrCommandAuth');
    }
    return parseCommand(plain);
  }
}

// §4: the relay handshake, client side.

const PROLOGUE = utf8('wschat relay handshake');

// clientHandshake answers the relay's Hello. rand(n) gives n random bytes
// (tests pass a fixed stream). Returns the Auth message and the session:
// send (client to relay) and recv Framers.
export function clientHandshake(id, relayKey, flags, hello, rand = randomBytes) {
  if (flags & ~CONN_RECEIVE) throw new Error('unknown connection flags');
  if (hello.length !== HELLO_SIZE || hello[0] !== MSG_HELLO) throw new WireError('ErrHandshakeMalformed');
  if (hello[1] < PROTOCOL_VERSION) throw new WireError('ErrHandshakeVersion', `relay speaks ${hello[1]}, client ${PROTOCOL_VERSION}`);
  const re = hello.subarray(2);
  checkX25519Public(re);
  const signed = concat(Uint8Array.of(PROTOCOL_VERSION), relayKey, re, id.pub.x, id.pub.ed, Uint8Array.of(flags));
  const sig = id.sign(signed, SIG_RELAY_AUTH);
  const payload = concat(Uint8Array.of(flags), id.pub.ed, sig);
  const { message2, i2r, r2i } = kxResponder({
    prologue: concat(PROLOGUE, hello.subarray(0, 2)),
    staticPriv: id.xSeed,
    staticPub: id.pub.x,
    peerStatic: relayKey,
    message1: re,
    payload,
    ephemeralPriv: rand(32),
  });
  const auth = concat(Uint8Array.of(MSG_AUTH, PROTOCOL_VERSION), message2);
  // KX: the first transport key is initiator (relay) to responder (client).
  return { auth, session: { send: new Framer(r2i), recv: new Framer(i2r) } };
}

// §7: peer messages.

export const TYPE = { Text: 1, Delivered: 2, Read: 3, Typing: 4, Presence: 5, RelayMoved: 6, Question: 0x10, Reply: 0x11, ApprovalRequest: 0x12, ApprovalAnswer: 0x13 };
export const isEphemeralType = (t) => t === TYPE.Typing || t === TYPE.Presence;

export function paddedSize(n) {
  const need = INNER_HEADER_SIZE + n + SIGNATURE_SIZE;
  let l = MIN_PADDED;
  while (l < need) l <<= 1;
  return l;
}

export const envelopeSize = (n) => ENVELOPE_HEADER_SIZE + paddedSize(n) + TAG_SIZE;

function checkBody(type, b) {
  switch (type) {
    case TYPE.Text:
      if (utf8Decode(b) === null) throw new WireError('ErrInnerMalformed', 'text is not UTF-8');
      break;
    case TYPE.Delivered:
    case TYPE.Read:
      if (b.length === 0 || b.length % MESSAGE_ID_SIZE !== 0 || b.length > MAX_ACK_IDS * MESSAGE_ID_SIZE) {
        throw new WireError('ErrInnerMalformed', `acknowledgement body of ${b.length} bytes`);
      }
      break;
    case TYPE.Typing:
    case TYPE.Presence:
      if (b.length !== 1 || b[0] > 1) throw new WireError('ErrInnerMalformed', 'live message body');
      break;
    case TYPE.Question:
      parseQuestion(b);
      break;
    case TYPE.Reply:
      parseReply(b);
      break;
    case TYPE.ApprovalRequest:
      parseApprovalRequest(b);
      break;
    case TYPE.ApprovalAnswer:
      parseApprovalAnswer(b);
      break;
    case TYPE.RelayMoved: {
      const s = utf8Decode(b);
      let ok = false;
      try {
        ok = s !== null && parseRelayAddress(s).toString() === s;
      } catch {
        ok = false;
      }
      if (!ok) throw new WireError('ErrInnerMalformed', 'relay_moved body is not a canonical relay address');
      break;
    }
  }
}

export function ackIDs(body) {
  const ids = [];
  for (let i = 0; i + MESSAGE_ID_SIZE <= body.length; i += MESSAGE_ID_SIZE) ids.push(body.slice(i, i + MESSAGE_ID_SIZE));
  return ids;
}
export const ackBody = (ids) => concat(...ids);

// Pair holds the keys between an identity and one peer, derived once.
export class Pair {
  constructor(self, peer) {
    if (peer.equal(self.pub)) throw new WireError('ErrSelfPair');
    const shared = self.dh(peer.x);
    const me = self.pub.fp;
    const them = peer.fp;
    const dir = (ctx, from, to) => deriveKey(ctx, concat(shared, from, to));
    this.self = self;
    this.peer = peer;
    this.sendKey = dir(CTX.messageKey, me, them);
    this.recvKey = dir(CTX.messageKey, them, me);
    this.sendTagKey = dir(CTX.pairTag, me, them);
    this.recvTagKey = dir(CTX.pairTag, them, me);
    this.sendSig = concat(Uint8Array.of(PROTOCOL_VERSION), me, them);
    this.recvSig = concat(Uint8Array.of(PROTOCOL_VERSION), them, me);
  }

  // seal makes the envelope of m = {id, sentAt (unix ms), type, body}.
  seal(m, nonce = randomBytes(NONCE_SIZE)) {
    if (m.body.length > MAX_BODY_SIZE) throw new WireError('ErrBodyTooLarge', `${m.body.length} bytes, at most ${MAX_BODY_SIZE}`);
    checkBody(m.type, m.body);
    if (!(m.sentAt > 0 && m.sentAt <= 2 ** 53)) throw new WireError('ErrInnerMalformed', 'sent-at time before 1970');
    const l = paddedSize(m.body.length);
    const inner = new Uint8Array(l);
    inner.set(m.id, 0);
    putU64(inner, 16, m.sentAt);
    inner[24] = m.type;
    putU32(inner, 26, m.body.length);
    inner.set(m.body, INNER_HEADER_SIZE);
    const sig = this.self.sign(concat(this.sendSig, inner.subarray(0, l - SIGNATURE_SIZE)), SIG_MESSAGE);
    inner.set(sig, l - SIGNATURE_SIZE);
    const tag = blake3(nonce, { key: this.sendTagKey, dkLen: PAIR_TAG_SIZE });
    const hdr = concat(Uint8Array.of(PROTOCOL_VERSION), nonce, tag);
    return concat(hdr, xchacha20poly1305(this.sendKey, nonce, hdr).encrypt(inner));
  }

  // from reports whether env carries the pair tag of the peer's envelopes
  // to us: how a frame headed UNNAMED_ID finds its sender (§7).
  from(env) {
    if (env.length < ENVELOPE_HEADER_SIZE) return false;
    const nonce = env.subarray(1, 1 + NONCE_SIZE);
    return equal(env.subarray(1 + NONCE_SIZE, ENVELOPE_HEADER_SIZE), blake3(nonce, { key: this.recvTagKey, dkLen: PAIR_TAG_SIZE }));
  }

  // open authenticates and decrypts an envelope the relay says came from
  // the peer, cheapest check first. It changes no state.
  open(env) {
    if (env.length < MIN_ENVELOPE_SIZE || env.length > MAX_ENVELOPE_SIZE) throw new WireError('ErrEnvelopeSize');
    const l = env.length - ENVELOPE_HEADER_SIZE - TAG_SIZE;
    if ((l & (l - 1)) !== 0) throw new WireError('ErrEnvelopeSize');
    if (env[0] !== PROTOCOL_VERSION) throw new WireError('ErrEnvelopeVersion', String(env[0]));
    const nonce = env.subarray(1, 1 + NONCE_SIZE);
    const got = env.subarray(1 + NONCE_SIZE, ENVELOPE_HEADER_SIZE);
    if (!equal(got, blake3(nonce, { key: this.recvTagKey, dkLen: PAIR_TAG_SIZE }))) {
      if (equal(got, blake3(nonce, { key: this.sendTagKey, dkLen: PAIR_TAG_SIZE }))) throw new WireError('ErrReflected');
      throw new WireError('ErrWrongPair');
    }
    let inner;
    try {
      inner = xchacha20poly1305(this.recvKey, nonce, env.subarray(0, ENVELOPE_HEADER_SIZE)).decrypt(env.subarray(ENVELOPE_HEADER_SIZE));
    } catch {
      throw new WireError('ErrDecrypt');
    }
    const signed = concat(this.recvSig, inner.subarray(0, l - SIGNATURE_SIZE));
    let ok = false;
    try {
      ok = ed25519ctx.verify(inner.subarray(l - SIGNATURE_SIZE), signed, this.peer.ed, { context: SIG_MESSAGE, zip215: false });
    } catch {
      ok = false;
    }
    if (!ok) throw new WireError('ErrSignature');
    return parseInner(inner);
  }
}

function parseInner(inner) {
  const l = inner.length;
  const type = inner[24];
  const ms = getU64(inner, 16);
  if (ms === 0n || ms > 2n ** 53n) throw new WireError('ErrInnerMalformed', `sent-at ${ms}`);
  if (inner[25] !== 0) throw new WireError('ErrInnerMalformed', `inner flags ${inner[25]}`);
  const n = getU32(inner, 26);
  if (n > l - INNER_HEADER_SIZE - SIGNATURE_SIZE || paddedSize(n) !== l) {
    throw new WireError('ErrInnerMalformed', `body length ${n} in a ${l}-byte bucket`);
  }
  if (!isZero(inner.subarray(INNER_HEADER_SIZE + n, l - SIGNATURE_SIZE))) throw new WireError('ErrInnerMalformed', 'padding is not zero');
  const body = inner.slice(INNER_HEADER_SIZE, INNER_HEADER_SIZE + n);
  checkBody(type, body);
  return { id: inner.slice(0, 16), sentAt: Number(ms), type, body };
}

// checkFreshness applies §8's time rules to an opened message.
export function checkFreshness(m, now) {
  if (m.sentAt < now - REPLAY_HORIZON_MS) throw new WireError('ErrTooOld');
  if (m.sentAt > now + MAX_CLOCK_SKEW_MS) throw new WireError('ErrFromFuture');
}
