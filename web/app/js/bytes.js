// Byte helpers: encodings, little-endian integers, comparisons. Every
// decoder here is strict: it refuses what the matching encoder would not
// write.

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export const utf8 = (s) => enc.encode(s);

// utf8Decode returns the text, or null if b is not valid UTF-8.
export function utf8Decode(b) {
  try {
    return dec.decode(b);
  } catch {
    return null;
  }
}

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

// compare orders byte strings of equal length (-1, 0, 1).
export function compare(a, b) {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

export function isZero(b) {
  let d = 0;
  for (const x of b) d |= x;
  return d === 0;
}

const HEX = '0123456789abcdef';

export function hex(b) {
  let s = '';
  for (const x of b) s += HEX[x >> 4] + HEX[x & 15];
  return s;
}

// unhex parses lower- or upper-case hex; null on anything else.
export function unhex(s) {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return null;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64STD = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function b64encode(b, alphabet, pad) {
  let s = '';
  let i = 0;
  for (; i + 3 <= b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    s += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63];
  }
  const r = b.length - i;
  if (r === 1) {
    const n = b[i] << 16;
    s += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + (pad ? '==' : '');
  } else if (r === 2) {
    const n = (b[i] << 16) | (b[i + 1] << 8);
    s += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + (pad ? '=' : '');
  }
  return s;
}

function b64decode(s, alphabet) {
  if (s.length % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (const c of s) {
    const v = alphabet.indexOf(c);
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  // Canonical only: the unused low bits must be zero.
  if ((acc & ((1 << bits) - 1)) !== 0) return null;
  return out.subarray(0, o);
}

// base64url without padding (relay keys, identity-file seeds).
export const b64url = (b) => b64encode(b, B64URL, false);
export function unb64url(s) {
  const b = b64decode(s, B64URL);
  return b && b64url(b) === s ? b : null;
}

// Standard base64 with padding (push subscription keys arrive as base64url
// too; this is for data the app writes itself, such as its stored blobs).
export const b64 = (b) => b64encode(b, B64STD, true);
export function unb64(s) {
  const body = s.replace(/=+$/, '');
  const b = b64decode(body, B64STD);
  return b && b64(b) === s ? b : null;
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

// base32 is RFC 4648 upper case without padding (invites).
export function base32(b) {
  let s = '';
  let acc = 0;
  let bits = 0;
  for (const x of b) {
    acc = ((acc << 8) | x) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      s += B32[(acc >> bits) & 31];
    }
  }
  if (bits > 0) s += B32[(acc << (5 - bits)) & 31];
  return s;
}

// unbase32 decodes; null when a character is outside the alphabet or the
// length cannot end on a whole byte. Callers re-encode to check the tail.
export function unbase32(s) {
  if ([1, 3, 6].includes(s.length % 8)) return null;
  const out = new Uint8Array(Math.floor((s.length * 5) / 8));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (const c of s) {
    const v = B32.indexOf(c);
    if (v < 0) return null;
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

// Little-endian integers. u64 values are BigInt; callers that know a
// value fits in 2^53 convert with Number().
export function putU16(b, o, v) {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}
export function putU32(b, o, v) {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(o, v, true);
}
export function putU64(b, o, v) {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setBigUint64(o, BigInt(v), true);
}
export const getU16 = (b, o) => b[o] | (b[o + 1] << 8);
export const getU32 = (b, o) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(o, true);
export const getU64 = (b, o) => new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(o, true);

export function randomBytes(n) {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return b;
}
