// The optional passphrase on the identity kept in this browser: the two
// seeds encrypted with AES-256-GCM under a key derived from the passphrase
// with PBKDF2-SHA-256 (WebCrypto; 600,000 iterations, OWASP's figure for
// it). Without the passphrase the stored identity is unreadable; the app
// asks for it when it opens. Never on by default: a person who sets it
// accepts typing it on every visit.

import { concat, b64, unb64, b64url, unb64url, randomBytes } from './bytes.js';

export const PBKDF2_ITERATIONS = 600_000;

async function deriveKey(passphrase, salt, iterations) {
  const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(passphrase), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, base, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

// lockSeeds returns the stored form of seeds under passphrase.
export async function lockSeeds(xSeed, edSeed, passphrase) {
  if (!passphrase) throw new Error('the passphrase is empty');
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const key = await deriveKey(passphrase, salt, PBKDF2_ITERATIONS);
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, concat(xSeed, edSeed)));
  return { kdf: 'PBKDF2-SHA-256', iterations: PBKDF2_ITERATIONS, salt: b64(salt), iv: b64(iv), ct: b64(ct) };
}

export class WrongPassphrase extends Error {
  constructor() {
    super('wrong passphrase');
  }
}

// unlockSeeds opens the stored form; it throws WrongPassphrase when the
// passphrase does not open it.
export async function unlockSeeds(locked, passphrase) {
  if (locked.kdf !== 'PBKDF2-SHA-256' || !(locked.iterations >= 100_000 && locked.iterations <= 10_000_000)) {
    throw new Error('the stored identity is locked in a way this version does not know');
  }
  const key = await deriveKey(passphrase, unb64(locked.salt), locked.iterations);
  let plain;
  try {
    plain = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: unb64(locked.iv) }, key, unb64(locked.ct)));
  } catch {
    throw new WrongPassphrase();
  }
  if (plain.length !== 64) throw new Error('the stored identity is damaged');
  return [plain.slice(0, 32), plain.slice(32)];
}

// Stored identity records: {name, relay, x, ed} with the seeds in
// base64url, or {name, relay, pub: {x, ed}, locked} when protected.
export function plainRecord(name, relay, identity) {
  return { name, relay, x: b64url(identity.xSeed), ed: b64url(identity.edSeed) };
}

export async function lockedRecord(name, relay, identity, passphrase) {
  return {
    name,
    relay,
    pub: { x: b64url(identity.pub.x), ed: b64url(identity.pub.ed) },
    locked: await lockSeeds(identity.xSeed, identity.edSeed, passphrase),
  };
}

export function seedsOf(rec) {
  const x = unb64url(rec.x || '');
  const ed = unb64url(rec.ed || '');
  if (!x || !ed || x.length !== 32 || ed.length !== 32) throw new Error('the stored identity is damaged');
  return [x, ed];
}
