// The structured message types of PROTOCOL.md §7 ("Structured messages"),
// as wire/structured.go lays them out: question, reply, approval_request,
// approval_answer. Parsing is strict (exact lengths, the ranges given,
// valid UTF-8) and encoding checks what it makes by parsing it back.
// wire/testdata/golden-v1-structured.txt pins both, in Chromium.

import { utf8, utf8Decode, concat, putU16, putU64, getU16, getU64 } from './bytes.js';

const MESSAGE_ID_SIZE = 16;

export const MAX_CHOICES = 8;
export const MAX_CHOICE_LEN = 64;
export const REQUEST_ID_LEN = 5;
export const MAX_APPROVAL_TEXT = 4096;

// The errors carry wire's code for them: an envelope with such a body is
// malformed (wire.js imports this module, so it cannot import wire.js).
const bad = (type, why) => Object.assign(new Error(`malformed message: structured body: ${type}: ${why}`), { code: 'ErrInnerMalformed' });

export function validRequestID(s) {
  return typeof s === 'string' && /^[a-km-z]{5}$/.test(s);
}

export function parseQuestion(b) {
  if (b.length < 2) throw bad('question', `${b.length} bytes`);
  const n = b[0];
  if (n > MAX_CHOICES) throw bad('question', `${n} choices, at most ${MAX_CHOICES}`);
  let o = 1;
  const choices = [];
  for (let i = 0; i < n; i++) {
    if (o >= b.length) throw bad('question', `truncated choice ${i + 1}`);
    const l = b[o];
    if (l < 1 || l > MAX_CHOICE_LEN || b.length < o + 1 + l) throw bad('question', `choice ${i + 1}: length ${l}`);
    const c = utf8Decode(b.subarray(o + 1, o + 1 + l));
    if (c === null) throw bad('question', `choice ${i + 1} is not UTF-8`);
    if (choices.includes(c)) throw bad('question', `choice ${i + 1} repeats another`);
    choices.push(c);
    o += 1 + l;
  }
  const text = o < b.length ? utf8Decode(b.subarray(o)) : null;
  if (text === null) throw bad('question', 'the question is empty or not UTF-8');
  return { text, choices };
}

export function encodeQuestion(q) {
  const parts = [Uint8Array.of(q.choices.length)];
  for (const c of q.choices) {
    const cb = utf8(c);
    parts.push(Uint8Array.of(cb.length), cb);
  }
  parts.push(utf8(q.text));
  const b = concat(...parts);
  parseQuestion(b);
  return b;
}

export function parseReply(b) {
  if (b.length < MESSAGE_ID_SIZE + 1) throw bad('reply', `${b.length} bytes`);
  const choice = b[MESSAGE_ID_SIZE];
  const text = utf8Decode(b.subarray(MESSAGE_ID_SIZE + 1));
  if (choice > MAX_CHOICES) throw bad('reply', `choice ${choice}, at most ${MAX_CHOICES}`);
  if (text === null) throw bad('reply', 'text is not UTF-8');
  if (choice === 0 && text === '') throw bad('reply', 'neither a choice nor text');
  return { to: b.slice(0, MESSAGE_ID_SIZE), choice, text };
}

export function encodeReply(r) {
  if (!(r.choice >= 0 && r.choice <= MAX_CHOICES)) throw bad('reply', `choice ${r.choice}`);
  const b = concat(r.to, Uint8Array.of(r.choice), utf8(r.text));
  parseReply(b);
  return b;
}

export function parseApprovalRequest(b) {
  if (b.length < REQUEST_ID_LEN + 8 + 1 + 2 + 1) throw bad('approval_request', `${b.length} bytes`);
  const requestId = new TextDecoder().decode(b.subarray(0, REQUEST_ID_LEN));
  if (!validRequestID(requestId)) throw bad('approval_request', 'request id');
  const ms = getU64(b, REQUEST_ID_LEN);
  if (ms === 0n || ms > 2n ** 53n) throw bad('approval_request', `expiry ${ms}`);
  let o = REQUEST_ID_LEN + 8;
  const tl = b[o];
  if (tl < 1 || b.length < o + 1 + tl + 2) throw bad('approval_request', `tool name length ${tl}`);
  const tool = utf8Decode(b.subarray(o + 1, o + 1 + tl));
  o += 1 + tl;
  const dl = getU16(b, o);
  if (dl > MAX_APPROVAL_TEXT || b.length < o + 2 + dl) throw bad('approval_request', `description length ${dl}`);
  const description = utf8Decode(b.subarray(o + 2, o + 2 + dl));
  const previewBytes = b.subarray(o + 2 + dl);
  if (previewBytes.length > MAX_APPROVAL_TEXT) throw bad('approval_request', `input preview of ${previewBytes.length} bytes`);
  const inputPreview = utf8Decode(previewBytes);
  if (tool === null || description === null || inputPreview === null) throw bad('approval_request', 'text is not UTF-8');
  return { requestId, expiresAt: Number(ms), tool, description, inputPreview };
}

export function parseApprovalAnswer(b) {
  if (b.length !== MESSAGE_ID_SIZE + REQUEST_ID_LEN + 1) throw bad('approval_answer', `${b.length} bytes, want 22`);
  const requestId = new TextDecoder().decode(b.subarray(MESSAGE_ID_SIZE, MESSAGE_ID_SIZE + REQUEST_ID_LEN));
  if (!validRequestID(requestId)) throw bad('approval_answer', 'request id');
  const behavior = b[b.length - 1];
  if (behavior !== 1 && behavior !== 2) throw bad('approval_answer', `behavior ${behavior}`);
  return { request: b.slice(0, MESSAGE_ID_SIZE), requestId, allow: behavior === 1 };
}

export function encodeApprovalAnswer(a) {
  if (!validRequestID(a.requestId) || a.request.length !== MESSAGE_ID_SIZE) throw bad('approval_answer', 'request id');
  return concat(a.request, utf8(a.requestId), Uint8Array.of(a.allow ? 1 : 2));
}

// encodeApprovalRequest is for tests and vectors: the browser answers
// approval requests, it does not make them.
export function encodeApprovalRequest(a) {
  const tool = utf8(a.tool);
  const desc = utf8(a.description);
  const head = new Uint8Array(REQUEST_ID_LEN + 8 + 1);
  head.set(utf8(a.requestId), 0);
  putU64(head, REQUEST_ID_LEN, a.expiresAt);
  head[REQUEST_ID_LEN + 8] = tool.length;
  const dl = new Uint8Array(2);
  putU16(dl, 0, desc.length);
  const b = concat(head, tool, dl, desc, utf8(a.inputPreview));
  parseApprovalRequest(b);
  return b;
}

