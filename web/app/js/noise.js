// The client's side of the relay handshake: Noise_KX_25519_ChaChaPoly_BLAKE2s
// (noiseprotocol.org, revision 34) with the relay as initiator, as
// PROTOCOL.md §4 gives it. Only the responder of the one pattern wschat
// uses; the primitives are noble's (vendor.js). The repo's golden vectors,
// made by github.com/flynn/noise on the Go side, pin it byte for byte
// (web/app/test/vectors.js).

import { blake2s, hmac, chacha20poly1305, x25519 } from '../vendor/vendor.js';
import { concat, utf8, putU64, isZero } from './bytes.js';

const PROTOCOL_NAME = utf8('Noise_KX_25519_ChaChaPoly_BLAKE2s');
const HASHLEN = 32;
const EMPTY = new Uint8Array(0);

function hkdf2(ck, ikm) {
  const temp = hmac(blake2s, ck, ikm);
  const out1 = hmac(blake2s, temp, Uint8Array.of(1));
  const out2 = hmac(blake2s, temp, concat(out1, Uint8Array.of(2)));
  return [out1, out2];
}

function nonce(n) {
  const b = new Uint8Array(12);
  putU64(b, 4, n);
  return b;
}

// dh is X25519 with an all-zero result refused (Noise leaves that check to
// the application; the Go side refuses it too).
function dh(priv, pub) {
  let s;
  try {
    s = x25519.getSharedSecret(priv, pub);
  } catch {
    s = new Uint8Array(32);
  }
  if (isZero(s)) throw new Error('noise: x25519 result is all zero (low-order key)');
  return s;
}

class SymmetricState {
  constructor(prologue) {
    this.h = PROTOCOL_NAME.length <= HASHLEN ? concat(PROTOCOL_NAME, new Uint8Array(HASHLEN - PROTOCOL_NAME.length)) : blake2s(PROTOCOL_NAME);
    this.ck = this.h;
    this.k = null;
    this.n = 0n;
    this.mixHash(prologue);
  }
  mixHash(data) {
    this.h = blake2s(concat(this.h, data));
  }
  mixKey(ikm) {
    const [ck, k] = hkdf2(this.ck, ikm);
    this.ck = ck;
    this.k = k;
    this.n = 0n;
  }
  encryptAndHash(p) {
    if (!this.k) {
      this.mixHash(p);
      return p;
    }
    const c = chacha20poly1305(this.k, nonce(this.n), this.h).encrypt(p);
    this.n++;
    this.mixHash(c);
    return c;
  }
  decryptAndHash(c) {
    if (!this.k) {
      this.mixHash(c);
      return c;
    }
    const p = chacha20poly1305(this.k, nonce(this.n), this.h).decrypt(c);
    this.n++;
    this.mixHash(c);
    return p;
  }
  split() {
    return hkdf2(this.ck, EMPTY);
  }
}

// kxResponder runs the responder's half of KX: it reads the initiator's
// message 1 (its ephemeral key, empty payload) and writes message 2 with
// payload. staticPriv is the responder's X25519 private key (32 bytes,
// clamped by X25519), peerStatic the initiator's pinned static key,
// ephemeralPriv 32 random bytes. It returns message 2 and the two
// transport keys: i2r (initiator to responder) and r2i.
export function kxResponder({ prologue, staticPriv, staticPub, peerStatic, message1, payload, ephemeralPriv }) {
  const ss = new SymmetricState(prologue);
  // Pre-message "-> s": the initiator's static key is known.
  ss.mixHash(peerStatic);
  // Message 1: "-> e" and an empty payload.
  if (message1.length !== 32) throw new Error('noise: message 1 is not an ephemeral key');
  const re = message1;
  ss.mixHash(re);
  ss.decryptAndHash(EMPTY);
  // Message 2: "<- e, ee, se, s, es" and the payload.
  const ePub = x25519.getPublicKey(ephemeralPriv);
  ss.mixHash(ePub);
  ss.mixKey(dh(ephemeralPriv, re)); // ee
  ss.mixKey(dh(ephemeralPriv, peerStatic)); // se
  const encStatic = ss.encryptAndHash(staticPub); // s
  ss.mixKey(dh(staticPriv, re)); // es
  const encPayload = ss.encryptAndHash(payload);
  const [i2r, r2i] = ss.split();
  return { message2: concat(ePub, encStatic, encPayload), i2r, r2i };
}
