// DOM helpers. Nothing a contact sends ever becomes markup: every string
// goes into the page as a text node (h() has no way to set inner HTML), and
// shown() makes control and bidi characters visible and tames runs of
// combining marks, so a message changes nothing but its own bubble.

// h builds an element: h('div.msg.out', {title: 'x', onclick: fn}, child...).
// Children are nodes or strings (text nodes); null and false are skipped.
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Icons: SVG paths on a 24-unit grid, drawn with the text colour.
const ICONS = {
  plus: ['M12 5v14', 'M5 12h14'],
  menu: ['M4 7h16', 'M4 12h16', 'M4 17h16'],
  back: ['M15 5l-7 7 7 7'],
  info: ['M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z', 'M12 16v-5', 'M12 8h.01'],
  send: ['M4 12l16-8-6 16-2.5-6.5z', 'M20 4 11.5 13.5'],
};

export function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'i');
  svg.setAttribute('aria-hidden', 'true');
  for (const d of ICONS[name]) {
    const p = document.createElementNS(ns, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// Characters shown as a visible token instead of acting: C0 and C1
// controls (but tab and newline in message bodies), DEL, bidi embeddings,
// overrides, isolates and marks, line and paragraph separators, and the
// invisible formatting characters that can hide text.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/gu;
const CONTROL_NAME = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/gu;
// More than this many combining marks on one base are cut (scripts that
// stack marks use a handful; "zalgo" text uses thousands).
const MAX_MARKS = 6;
const MARK_RUN = new RegExp(`(\\p{M}{${MAX_MARKS}})\\p{M}+`, 'gu');

const token = (ch) => `\u27e8U+${ch.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}\u27e9`;

// shown is text as a person may see it in a message bubble.
export function shown(s) {
  return String(s).replace(CONTROL, token).replace(MARK_RUN, '$1\u2026');
}

// shownName is a nickname or contact name on one line.
export function shownName(s) {
  return String(s).replace(CONTROL_NAME, token).replace(MARK_RUN, '$1\u2026');
}

export function plural(n, one, many = one + 's') {
  return `${n} ${n === 1 ? one : many}`;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
const shortDayFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });

export const clock = (ms) => timeFmt.format(new Date(ms));

export function dayLabel(ms, now = Date.now()) {
  const d = new Date(ms);
  const today = new Date(now);
  const start = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const days = Math.round((start(today) - start(d)) / 86400000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  return dayFmt.format(d);
}

export function sameDay(a, b) {
  const x = new Date(a);
  const y = new Date(b);
  return x.getFullYear() === y.getFullYear() && x.getMonth() === y.getMonth() && x.getDate() === y.getDate();
}

// listTime is the time in the conversation list: the clock today, else the day.
export function listTime(ms, now = Date.now()) {
  return sameDay(ms, now) ? clock(ms) : shortDayFmt.format(new Date(ms));
}

// initial is the letter on a contact's avatar.
export function initial(name) {
  const m = /\p{L}|\p{N}/u.exec(name);
  return m ? m[0].toUpperCase() : '?';
}

// hue gives each contact a stable avatar colour from its fingerprint.
export function hue(fpHex) {
  return parseInt(fpHex.slice(0, 4), 16) % 360;
}

// avatar is a contact's initial on its colour (one of twelve classes: no
// inline styles under the CSP).
export function avatar(c) {
  return h(`span.avatar.h${hue(c.fp) % 12}`, { 'aria-hidden': 'true' }, initial(c.name));
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

// download offers bytes as a file, without a server round trip.
export function download(name, bytes, type = 'text/plain') {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// toast shows a short notice at the bottom of the screen.
export function toast(text, kind = 'info') {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const t = h(`div.toast.${kind}`, shownName(text));
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 3500);
}

// dialog shows a modal with a message and buttons; resolves with the
// chosen button's value (or null when dismissed).
export function dialog({ title, body, buttons, danger }) {
  return new Promise((resolve) => {
    const d = h('dialog.modal', { 'aria-labelledby': 'dlg-title' });
    const close = (v) => {
      d.close();
      d.remove();
      resolve(v);
    };
    d.append(
      h('h2', { id: 'dlg-title' }, title),
      ...[].concat(body || []).map((b) => (b instanceof Node ? b : h('p', b))),
      h('div.buttons', ...buttons.map((b) => h(`button.${b.primary ? (danger ? 'danger' : 'primary') : 'plain'}`, { type: 'button', onclick: () => close(b.value) }, b.label))),
    );
    d.addEventListener('cancel', (ev) => {
      ev.preventDefault();
      close(null);
    });
    document.body.append(d);
    d.showModal();
    d.querySelector('button.primary, button.danger')?.focus();
  });
}
