// Invites, identity files, safety numbers and names, as PROTOCOL.md §9
// gives them and package keys implements them in Go: an identity file
// exported here is the one `wschat` reads, and an invite made by either
// parses in the other. keys/testdata's vectors pin both (test/vectors.js).

import { utf8, utf8Decode, concat, hex, b64url, unb64url, base32, unbase32, compare, equal } from './bytes.js';
import { PublicIdentity, Identity, parseRelayAddress, KEY_SIZE, CTX, deriveKey } from './wire.js';

export const INVITE_PREFIX = 'WSCHAT1-';
const CTX_INVITE = utf8('wschat v1 2026-11 invite checksum');
const CTX_IDENTITY_FILE = utf8('wschat v1 2026-11 identity file checksum');
export const MAX_NICK_LEN = 64;
export const MAX_CONTACT_NAME_LEN = 64;
const INVITE_MIN_PAYLOAD = 2 * KEY_SIZE + 1 + 1 + 4;
const INVITE_MAX_PAYLOAD = 2 * KEY_SIZE + 1 + MAX_NICK_LEN + 1 + 255 + 4;
export const MAX_INVITE_LEN = INVITE_PREFIX.length + Math.floor((INVITE_MAX_PAYLOAD * 8 + 4) / 5);
export const MAX_IDENTITY_FILE_SIZE = 4096;

export class KeysError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// checkNick: a nickname is 1..64 bytes of UTF-8 without control, line or
// paragraph separator or bidi-control characters, and without white space
// at either end.
export function checkNick(s) {
  const bad = (why) => new KeysError('ErrInvalidNick', `invalid nickname: ${why}`);
  if (s === '') throw bad('empty');
  if (utf8(s).length > MAX_NICK_LEN) throw bad(`longer than ${MAX_NICK_LEN} bytes`);
  if (/[\p{Cc}\p{Zl}\p{Zp}\p{Bidi_Control}]/u.test(s)) throw bad('has a control character');
  if (/^\p{White_Space}|\p{White_Space}$/u.test(s)) throw bad('starts or ends with white space');
}

// checkContactName: names are plain ASCII so they can appear in argv and
// environment variables on the CLI side; the browser keeps the same rule
// so that an exported address book would mean the same.
export function checkContactName(s) {
  const bad = (why) => new KeysError('ErrInvalidContactName', `invalid contact name: ${why}`);
  if (s === '') throw bad('empty');
  if (s.length > MAX_CONTACT_NAME_LEN) throw bad(`longer than ${MAX_CONTACT_NAME_LEN} characters`);
  if (!/^[A-Za-z0-9._-]+$/.test(s)) throw bad('use letters, digits, ".", "_" and "-"');
  if (s[0] === '-' || s[0] === '.') throw bad('must not start with "-" or "."');
}

// suggestContactName makes a valid contact name from a nickname.
export function suggestContactName(nick) {
  let s = nick.normalize('NFKD').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '').slice(0, MAX_CONTACT_NAME_LEN);
  return s || 'contact';
}

function checkRelay(s) {
  if (s === '') return;
  const a = parseRelayAddress(s);
  if (a.toString() !== s) throw new KeysError('ErrRelayAddress', `relay address ${JSON.stringify(s)} is not in canonical form`);
}

// Invites.

export class Invite {
  constructor(pub, name, relay) {
    this.pub = pub;
    this.name = name;
    this.relay = relay || '';
  }
  static make(pub, name, relay = '') {
    checkNick(name);
    checkRelay(relay);
    return new Invite(pub, name, relay);
  }
  payload() {
    const nick = utf8(this.name).subarray(0, 255);
    const relay = utf8(this.relay).subarray(0, 255);
    const b = concat(this.pub.x, this.pub.ed, Uint8Array.of(nick.length), nick, Uint8Array.of(relay.length), relay);
    return concat(b, deriveKey(CTX_INVITE, b, 4));
  }
  toString() {
    return INVITE_PREFIX + base32(this.payload());
  }
}

// cleanInvite joins an invite that was wrapped over lines or pasted with
// spaces or a link around it, so that parseInvite sees just the invite.
export function cleanInvite(s) {
  let t = s.trim();
  const m = /#invite=([^&\s]+)/.exec(t);
  if (m) t = decodeURIComponent(m[1]);
  if (/^WSCHAT\d+-/i.test(t.replace(/\s+/g, ''))) t = t.replace(/\s+/g, '');
  return t;
}

const inviteErr = (code, msg) => new KeysError(code, msg);

export function parseInvite(s) {
  let body;
  if (s.startsWith(INVITE_PREFIX)) {
    body = s.slice(INVITE_PREFIX.length);
  } else if (s === '') {
    throw inviteErr('ErrInvitePrefix', 'not a wschat invite: the invite is empty');
  } else {
    const m = /^(WSCHAT)(\d{1,8})-/i.exec(s);
    if (m) {
      if (m[1] !== 'WSCHAT' || m[2] === '1') throw inviteErr('ErrInviteEncoding', 'invite has invalid characters: it is in lower case; use the invite exactly as printed');
      throw inviteErr('ErrInviteVersion', `invite from a newer wschat: it is version ${m[2]}, this app reads version 1; upgrade`);
    }
    throw inviteErr('ErrInvitePrefix', `not a wschat invite: it should start with ${JSON.stringify(INVITE_PREFIX)}`);
  }
  if (s.length > MAX_INVITE_LEN) throw inviteErr('ErrInviteInvalid', `invalid invite: ${s.length} characters, longer than any invite; copy only the invite`);
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7'))) {
      const col = INVITE_PREFIX.length + i + 1;
      let why = `${JSON.stringify(c)} at column ${col} never appears in an invite; copy it again`;
      if (c >= 'a' && c <= 'z') why = `lower-case ${JSON.stringify(c)} at column ${col}; use the invite exactly as printed`;
      else if (/\s/.test(c)) why = `white space at column ${col}; an invite is one line without spaces`;
      else if ('018'.includes(c)) why = `${JSON.stringify(c)} at column ${col} never appears in an invite (is it ${JSON.stringify('OIB'['018'.indexOf(c)])}?)`;
      throw inviteErr('ErrInviteEncoding', 'invite has invalid characters: ' + why);
    }
  }
  if ([1, 3, 6].includes(body.length % 8)) throw inviteErr('ErrInviteTruncated', 'invite is incomplete: it was cut off or has a stray character; copy the whole line again');
  const p = unbase32(body);
  if (!p) throw inviteErr('ErrInviteEncoding', 'invite has invalid characters; copy the invite again');
  inviteLength(p);
  if (base32(p) !== body) throw inviteErr('ErrInviteEncoding', 'invite has invalid characters: the last character cannot end an invite; copy it again');
  return parsePayload(p);
}

function inviteLength(p) {
  if (p.length < INVITE_MIN_PAYLOAD) throw inviteErr('ErrInviteTruncated', 'invite is incomplete: it is too short to be an invite; copy the whole line');
  const rlenAt = 2 * KEY_SIZE + 1 + p[2 * KEY_SIZE];
  let want = rlenAt + 1 + 4;
  if (rlenAt < p.length) want += p[rlenAt];
  if (want > p.length) throw inviteErr('ErrInviteTruncated', 'invite is incomplete: it ends early (or was mistyped); copy the whole line again');
  return want;
}

function parsePayload(p) {
  if (p.length > INVITE_MAX_PAYLOAD) throw inviteErr('ErrInviteInvalid', 'invalid invite: longer than any invite; copy only the invite');
  const want = inviteLength(p);
  const sumAt = p.length - 4;
  if (!equal(deriveKey(CTX_INVITE, p.subarray(0, sumAt), 4), p.subarray(sumAt))) {
    throw inviteErr('ErrInviteChecksum', 'invite checksum mismatch: the invite was mistyped or changed; copy it again');
  }
  if (want !== p.length) throw inviteErr('ErrInviteInvalid', 'invalid invite: its length fields do not add up; ask for a new invite');
  const nlenAt = 2 * KEY_SIZE;
  const rlenAt = nlenAt + 1 + p[nlenAt];
  let pub;
  try {
    pub = PublicIdentity.from(p.slice(0, KEY_SIZE), p.slice(KEY_SIZE, nlenAt));
  } catch (e) {
    const err = inviteErr('ErrInviteInvalid', `invalid invite: ${e.message}; ask for a new invite`);
    err.cause = e;
    throw err;
  }
  const nick = utf8Decode(p.subarray(nlenAt + 1, rlenAt));
  const relay = utf8Decode(p.subarray(rlenAt + 1, sumAt));
  try {
    if (nick === null) throw new KeysError('ErrInvalidNick', 'invalid nickname: not UTF-8');
    checkNick(nick);
    if (relay === null) throw new KeysError('ErrRelayAddress', 'relay address is not UTF-8');
    checkRelay(relay);
  } catch (e) {
    const err = inviteErr('ErrInviteInvalid', `invalid invite: ${e.message}; ask for a new invite`);
    err.cause = e;
    throw err;
  }
  return new Invite(pub, nick, relay);
}

// Identity files (the CLI's format, so that a person can move between
// browser and terminal).

export class IdentityFile {
  constructor(identity, name, relay = '') {
    this.identity = identity;
    this.name = name;
    this.relay = relay;
  }
  invite() {
    return new Invite(this.identity.pub, this.name, this.relay);
  }
}

function checkLine(b) {
  return 'check: ' + hex(deriveKey(CTX_IDENTITY_FILE, b, 8)) + '\n';
}

export function marshalIdentity(f) {
  checkNick(f.name);
  checkRelay(f.relay);
  let s = 'wschat-identity v1\nname: ' + f.name + '\n';
  if (f.relay) s += 'relay: ' + f.relay + '\n';
  s += 'x25519: ' + b64url(f.identity.xSeed) + '\ned25519: ' + b64url(f.identity.edSeed) + '\n';
  const b = utf8(s);
  return concat(b, utf8(checkLine(b)));
}

const corrupt = (why) => new KeysError('ErrCorrupt', 'identity file is damaged: ' + why);

// parseIdentity reads the plaintext identity file; it accepts only the
// exact bytes marshalIdentity writes. A passphrase-protected (age) file is
// refused with ErrPassphraseRequired.
export function parseIdentity(b) {
  if (b.length > MAX_IDENTITY_FILE_SIZE) throw corrupt(`${b.length} bytes, more than the limit of ${MAX_IDENTITY_FILE_SIZE}`);
  const text = utf8Decode(b);
  if (text === null) throw corrupt('not UTF-8 text');
  if (text.startsWith('-----BEGIN AGE ENCRYPTED FILE-----')) {
    throw new KeysError('ErrPassphraseRequired', 'this identity file is protected with a passphrase; decrypt it first with `age -d`, or export it from wschat without one');
  }
  const first = text.split('\n', 1)[0];
  if (first !== 'wschat-identity v1') {
    const m = /^wschat-identity v(\d+)$/.exec(first);
    if (m && m[1] !== '1') throw new KeysError('ErrUnsupportedVersion', `identity file version ${m[1]} is from a newer wschat`);
    throw corrupt('not a wschat identity file (the first line should be "wschat-identity v1")');
  }
  if (!text.endsWith('\n')) throw corrupt('truncated (no newline at the end)');
  const body = text.slice(0, -1);
  const i = body.lastIndexOf('\n');
  const last = body.slice(i + 1);
  if (!last.startsWith('check: ')) throw corrupt('truncated (the last line is not the check line)');
  if (last + '\n' !== checkLine(utf8(text.slice(0, i + 1)))) throw corrupt('check line does not match: the file was damaged or edited');
  const lines = text.slice(first.length + 1, i + 1).split('\n').slice(0, -1);
  if (lines.some((l) => l.includes('\r'))) throw corrupt('a line has a carriage return');
  const next = (key) => {
    if (lines.length && lines[0].startsWith(key + ': ')) return lines.shift().slice(key.length + 2);
    return null;
  };
  const name = next('name');
  if (name === null) throw corrupt('want "name: "');
  checkNick(name);
  let relay = next('relay');
  if (relay !== null) {
    if (relay === '') throw corrupt('empty relay');
    checkRelay(relay);
  } else {
    relay = '';
  }
  const seeds = [];
  for (const key of ['x25519', 'ed25519']) {
    const v = next(key);
    if (v === null) throw corrupt(`want "${key}: "`);
    const s = v.length === 43 ? unb64url(v) : null;
    if (!s || s.length !== 32) throw corrupt(`${key} seed is not 43 base64url characters`);
    seeds.push(s);
  }
  if (lines.length) throw corrupt('unexpected line after the keys');
  return new IdentityFile(new Identity(seeds[0], seeds[1]), name, relay);
}

// Safety numbers: thirty digits both sides compute from the two identities.
export function safetyNumber(a, b) {
  let lo = a.fp;
  let hi = b.fp;
  if (compare(lo, hi) > 0) [lo, hi] = [hi, lo];
  const d = deriveKey(CTX.safety, concat(lo, hi), 30);
  const groups = [];
  for (let i = 0; i < 6; i++) {
    let v = 0n;
    for (const c of d.subarray(5 * i, 5 * i + 5)) v = (v << 8n) | BigInt(c);
    groups.push(String(v % 100000n).padStart(5, '0'));
  }
  return groups.join(' ');
}

