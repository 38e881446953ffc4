// The messenger's screens: the conversation list beside (or, on a phone,
// before) a conversation, and the pages that open in the conversation's
// place. Routes go through history, so a phone's back button works.

import { h, icon, clear, shown, shownName, clock, dayLabel, sameDay, listTime, plural, toast, avatar } from './ui.js';
import { utf8 } from './bytes.js';
import { MAX_BODY_SIZE, TYPE } from './wire.js';
import { REASON_TEXT } from './client.js';
import { renderAddContact, renderContact, renderMe } from './pages.js';

const PAGE = 80; // messages loaded at a time
const MAX_SHOWN = 3 * PAGE; // messages in the page at once
const STATE_TEXT = { pending: 'Sending…', sent: 'Sent', stored: 'Stored on the relay until they connect', delivered: 'Delivered', read: 'Read', failed: 'Not sent' };
const TICK = { pending: '🕓', sent: '✓', stored: '✓', delivered: '✓✓', read: '✓✓', failed: '⚠' };

const dayKey = (ms) => new Date(ms).toDateString();


export function renderMain(app) {
  const client = app.client;
  const list = h('ul.convs', { 'aria-label': 'Conversations' });
  const status = h('div.status', { id: 'status', role: 'status' });
  const side = h('section.pane-list', { 'aria-label': 'Conversations' },
    h('header.bar',
      h('h1.grow', 'wschat'),
      h('button.icon', { type: 'button', id: 'add-contact', title: 'Add a contact', 'aria-label': 'Add a contact', onclick: () => go({ view: 'add' }) }, icon('plus')),
      h('button.icon', { type: 'button', id: 'open-me', title: 'You: invite, identity, settings', 'aria-label': 'You: invite, identity, settings', onclick: () => go({ view: 'me' }) }, icon('menu')),
    ),
    status,
    list,
  );
  const pane = h('section.pane-conv', { id: 'pane' });
  const main = h('div.main', { id: 'main' }, side, pane);
  clear(app.root).append(main);

  let current = null; // the view in the pane: {route, destroy?, update?}

  function route(r, push, replace) {
    current?.view.destroy?.();
    current = null;
    clear(pane);
    main.classList.toggle('in-conv', r.view !== 'list');
    if (push) history.pushState(r, '');
    else if (replace) history.replaceState(r, '');
    app.route = r;
    let v;
    switch (r.view) {
      case 'conv': {
        const c = client.contacts.get(r.peer);
        if (!c) return route({ view: 'list' }, false);
        v = new ConvView(app, c, go);
        break;
      }
      case 'add':
        v = renderAddContact(app, go, r.invite);
        break;
      case 'contact': {
        const c = client.contacts.get(r.peer);
        if (!c) return route({ view: 'list' }, false);
        v = renderContact(app, c, go);
        break;
      }
      case 'me':
        v = renderMe(app, go);
        break;
      default:
        v = { el: h('div.empty', h('p', client.contacts.size ? 'Pick a conversation.' : 'No contacts yet.'), !client.contacts.size && addHint()) };
    }
    current = { route: r, view: v };
    pane.append(v.el);
    v.focus?.();
    renderList();
  }

  // go opens a route; with replace, in place of the current one (so that
  // Back skips it: the add-contact page once the contact is added).
  function go(r, { replace } = {}) {
    route(r, !replace, replace);
  }
  app.go = go;

  function addHint() {
    return h('div',
      h('p', 'Add the agent you want to talk to: run `wschat invite --link` where it runs, and open the link here, or paste its invite.'),
      h('button.primary', { type: 'button', onclick: () => go({ view: 'add' }) }, 'Add a contact'));
  }

  // renderList rebuilds the conversation list. Calls overlap (every event
  // asks for one); only the latest one draws, so a slow, older read of the
  // store never paints over a newer one.
  let listGen = 0;
  async function renderList() {
    const gen = ++listGen;
    const convs = new Map((await app.store.convs()).map((c) => [c.peer, c]));
    if (gen !== listGen) return;
    const contacts = [...client.contacts.values()];
    contacts.sort((a, b) => (convs.get(b.fp)?.lastSeq || 0) - (convs.get(a.fp)?.lastSeq || 0) || a.name.localeCompare(b.name));
    clear(list);
    if (!contacts.length) {
      list.append(h('li.empty', addHint()));
      return;
    }
    for (const c of contacts) {
      const cv = convs.get(c.fp) || {};
      const live = client.liveOf(c.fp);
      const last = cv.lastType === TYPE.RelayMoved ? 'moved to another relay' : cv.lastText === null ? 'unsupported message' : cv.lastText;
      const preview = live.typing ? h('span.preview.typing', 'typing…') : h('span.preview', cv.lastText === undefined ? shownName(c.nick) : (cv.lastDir === 'out' ? 'You: ' : '') + shownName(last).slice(0, 120));
      const active = app.route?.peer === c.fp && app.route?.view === 'conv';
      list.append(h('li',
        h('button', { type: 'button', class: 'conv', dataset: { peer: c.fp }, 'aria-current': active ? 'true' : 'false', onclick: () => go({ view: 'conv', peer: c.fp }) },
          avatar(c),
          h('span.conv-text',
            h('span.conv-top', h('span.conv-name', shownName(c.name), c.verifiedAt ? h('span.verified', { title: 'Safety number verified' }, ' ✓') : null), cv.lastAt ? h('span.conv-time', listTime(cv.lastAt)) : null),
            h('span.conv-last', preview, cv.unread ? h('span.badge', { 'aria-label': plural(cv.unread, 'unread message') }, String(cv.unread)) : null),
          ),
        ),
      ));
    }
  }

  function renderStatus(s) {
    const line = {
      connecting: 'Connecting to the relay…',
      online: '',
      standby: 'Connected in another tab',
      stopped: '',
    }[s.state];
    status.hidden = false;
    status.className = 'status';
    clear(status);
    if (s.state === 'offline') {
      status.classList.add('offline');
      const secs = Math.max(1, Math.round((s.retryAt - Date.now()) / 1000));
      status.append(navigator.onLine === false ? 'Offline: messages wait here and go out when the network is back. ' : `Relay unreachable (${s.error}); retrying in ${secs} s. `,
        h('button.link', { type: 'button', onclick: () => client.kick() }, 'Retry now'));
    } else if (s.viaOtherTab && s.state === 'online') {
      status.hidden = true;
    } else if (line) {
      status.append(line);
    } else {
      status.hidden = true;
    }
    status.dataset.state = s.state;
  }

  client.addEventListener('change', (ev) => {
    const d = ev.detail;
    if (d.kind === 'status') renderStatus(d);
    if (['messages', 'contacts', 'live', 'state'].includes(d.kind)) renderList();
    if (d.kind === 'contacts' && current?.route.view === 'conv' && !client.contacts.has(current.route.peer)) route({ view: 'list' }, false);
    current?.view.update?.(d);
    if (d.kind === 'error') toast(d.message, 'error');
  });
  renderStatus(client.status);
  // A status line counting down wants a tick.
  setInterval(() => client.status.state === 'offline' && renderStatus(client.status), 1000);

  addEventListener('popstate', (ev) => route(ev.state || { view: 'list' }, false));
  const first = app.pendingInvite ? { view: 'add', invite: app.pendingInvite }
    : app.pendingConv && client.contacts.has(app.pendingConv) ? { view: 'conv', peer: app.pendingConv }
      : app.firstRun ? { view: 'me', firstRun: true } : { view: 'list' };
  app.pendingInvite = '';
  app.pendingConv = '';
  history.replaceState({ view: 'list' }, '');
  route(first, first.view !== 'list');
}

// ConvView is one open conversation.
class ConvView {
  constructor(app, c, go) {
    this.app = app;
    this.c = c;
    this.client = app.client;
    this.byId = new Map(); // message id -> {el, rec}
    this.firstSeq = Infinity;
    this.lastSeq = 0;
    this.lastDay = null;
    this.loadingOlder = false;
    this.done = false; // all history loaded
    this.typingSent = 0;
    this.typingTimer = null;

    this.sub = h('div.sub', { id: 'conv-sub', 'aria-live': 'polite' });
    this.list = h('div.messages', { id: 'messages', role: 'log', 'aria-label': `Messages with ${shownName(c.name)}`, tabindex: '0' });
    this.input = h('textarea', { id: 'compose', rows: 1, placeholder: `Message ${shownName(c.name)}`, 'aria-label': `Message to ${shownName(c.name)}`, enterkeyhint: 'send' });
    this.counter = h('div.counter', { hidden: true });
    this.send = h('button.primary', { type: 'submit', id: 'send', title: 'Send', 'aria-label': 'Send' }, icon('send'));
    this.el = h('div.view',
      h('header.bar',
        h('button.icon.back', { type: 'button', 'aria-label': 'Back to conversations', onclick: () => history.back() }, icon('back')),
        avatar(c),
        h('div.grow',
          h('h2', { id: 'conv-title' }, shownName(c.name), c.verifiedAt ? h('span.verified', { title: 'Safety number verified' }, ' ✓ verified') : null),
          this.sub),
        h('button.icon', { type: 'button', id: 'conv-info', title: 'Contact, safety number', 'aria-label': 'Contact and safety number', onclick: () => go({ view: 'contact', peer: c.fp }) }, icon('info')),
      ),
      this.list,
      this.counter,
      h('form.composer', { onsubmit: (ev) => this.submit(ev) }, this.input, this.send),
    );
    this.input.addEventListener('keydown', (ev) => {
      const coarse = matchMedia('(pointer: coarse)').matches;
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && !coarse) {
        ev.preventDefault();
        this.submit(ev);
      }
    });
    this.input.addEventListener('input', () => this.onInput());
    this.list.addEventListener('scroll', () => this.onScroll(), { passive: true });
    this.onVis = () => this.maybeRead();
    document.addEventListener('visibilitychange', this.onVis);
    addEventListener('focus', this.onVis);
    const draft = sessionStorage.getItem(`draft:${c.fp}`);
    if (draft) this.input.value = draft;
    this.renderSub();
    this.subTimer = setInterval(() => this.renderSub(), 2000);
    this.client.sendLive(c.fp, TYPE.Presence, true);
    this.loadInitial();
  }

  focus() {
    if (!matchMedia('(pointer: coarse)').matches) this.input.focus();
  }

  destroy() {
    document.removeEventListener('visibilitychange', this.onVis);
    removeEventListener('focus', this.onVis);
    clearInterval(this.subTimer);
    if (this.typingSent) this.client.sendLive(this.c.fp, TYPE.Typing, false);
    this.client.sendLive(this.c.fp, TYPE.Presence, false);
    sessionStorage.setItem(`draft:${this.c.fp}`, this.input.value);
  }

  renderSub() {
    const l = this.client.liveOf(this.c.fp);
    const online = this.client.status.state === 'online' || this.client.status.viaOtherTab;
    this.sub.textContent = l.typing ? 'typing…' : l.online && online ? 'online' : shownName(this.c.nick) + (this.c.relay && this.c.relay !== this.client.relay.toString() ? ' · on another relay' : '');
    this.sub.classList.toggle('typing', l.typing);
  }

  // The conversation shows a window of at most MAX_SHOWN messages, moved
  // a page at a time as the person scrolls: a conversation of any length
  // opens and scrolls without building thousands of nodes.
  async loadInitial() {
    clear(this.list);
    this.byId.clear();
    const recs = await this.app.store.history(this.c.fp, Infinity, PAGE);
    this.done = recs.length < PAGE; // nothing older
    this.atNewest = true;
    const firstUnread = recs.find((r) => r.dir === 'in' && r.state === 'unread');
    const frag = document.createDocumentFragment();
    let prev = null;
    for (const r of recs) {
      if (r === firstUnread) frag.append(h('div.unread-mark', { id: 'unread-mark' }, h('span', 'New messages')));
      this.addTo(frag, r, prev);
      prev = r;
    }
    this.firstSeq = recs.length ? recs[0].seq : Infinity;
    this.lastSeq = recs.length ? recs[recs.length - 1].seq : 0;
    this.lastRec = prev;
    this.list.append(h('div.load-older', { id: 'load-older', hidden: this.done }, 'Scroll up for older messages'));
    this.list.append(frag);
    if (!recs.length) this.list.append(h('p.empty', { id: 'no-messages' }, `Messages you exchange with ${shownName(this.c.name)} are end-to-end encrypted. Say hello.`));
    this.jump?.remove();
    const mark = this.list.querySelector('#unread-mark');
    if (mark) mark.scrollIntoView({ block: 'center' });
    else this.list.scrollTop = this.list.scrollHeight;
    this.maybeRead();
  }

  // addTo appends a message (with a day separator when the day changes).
  addTo(parent, r, prev) {
    const t = r.dir === 'in' ? r.receivedAt : r.sentAt;
    if (!prev || !sameDay(prev.dir === 'in' ? prev.receivedAt : prev.sentAt, t)) parent.append(h('div.day', { dataset: { day: dayKey(t) } }, h('span', dayLabel(t))));
    const el = this.msgEl(r);
    el.dataset.seq = r.seq;
    this.byId.set(r.dir + r.id, { el, rec: r });
    parent.append(el);
  }

  msgEl(r) {
    switch (r.type) {
      case TYPE.ApprovalRequest:
        return this.approvalEl(r);
      case TYPE.ApprovalAnswer:
        return h(`div.msg.${r.dir}.notice`, { dataset: { id: r.id } }, `${r.dir === 'out' ? 'You' : shownName(this.c.name)} ${r.allow ? 'allowed' : 'denied'} request ${r.requestId}`);
    }
    if (r.type === TYPE.RelayMoved) {
      return h('div.msg.in.notice', { dataset: { id: r.id } }, `${shownName(this.c.name)} moved to another relay: ${shownName((r.text || '').split('#')[0])} (same keys; messages go there now)`);
    }
    const body = r.text === null || r.text === undefined
      ? h('div.text.unsupported', `Unsupported message (type ${r.type}): update wschat to see it.`)
      : h('div.text', shown(r.text));
    const meta = h('div.meta', h('time', { datetime: new Date(r.sentAt).toISOString(), title: new Date(r.sentAt).toLocaleString() }, clock(r.dir === 'in' ? r.receivedAt : r.sentAt)));
    if (r.dir === 'out') meta.append(h(`span.tick.${r.state}`, { title: STATE_TEXT[r.state], 'aria-label': STATE_TEXT[r.state], dataset: { state: r.state } }, TICK[r.state] || ''));
    if (r.dir === 'in' && r.text !== null && r.text !== undefined) {
      meta.prepend(h('button.link.reply-to', { type: 'button', title: 'Reply to this message', 'aria-label': 'Reply to this message', onclick: () => this.startReply(r) }, 'Reply'));
    }
    const bubble = h('div.bubble');
    if (r.type === TYPE.Reply) bubble.append(this.quoteEl(r));
    bubble.append(body);
    if (r.type === TYPE.Question && r.choices?.length) bubble.append(this.choicesEl(r));
    bubble.append(meta);
    if (r.state === 'failed') {
      bubble.append(h('div.failed-note', `Not sent: ${REASON_TEXT[r.error] || r.error}. `,
        h('button.link', { type: 'button', onclick: () => this.client.retry(this.c.fp, r.id) }, 'Retry')));
    }
    return h(`div.msg.${r.dir}`, { dataset: { id: r.id, state: r.state || '' } }, bubble);
  }

  // quoteEl shows what a reply answers: the quoted message, or a note
  // that it is not kept here. Filled in when the store answers.
  quoteEl(r) {
    const q = h('div.quote', '…');
    this.app.store.find(this.c.fp, r.replyTo).then((m) => {
      clear(q);
      if (!m) {
        q.append('reply to a message not kept here');
        return;
      }
      const who = m.dir === 'out' ? 'You' : shownName(this.c.name);
      const text = m.text === null || m.text === undefined ? 'a message' : m.text;
      q.append(h('span.quote-who', who + ': '), shown(text.length > 200 ? text.slice(0, 199) + '…' : text));
      if (m.type === TYPE.Question && r.choice >= 1 && r.choice <= (m.choices || []).length) q.append(h('span.quote-choice', ` → option ${r.choice}`));
    });
    return q;
  }

  // choicesEl: a question's options as numbered buttons; picking one
  // sends a reply with that choice.
  choicesEl(r) {
    const box = h('div.choices', { role: 'group', 'aria-label': 'Choices' });
    r.choices.forEach((c, i) => {
      const k = i + 1;
      box.append(h(`button.choice${r.answered === k ? '.picked' : ''}`, {
        type: 'button',
        'aria-pressed': r.answered === k ? 'true' : 'false',
        onclick: async () => {
          try {
            await this.client.reply(this.c.fp, r.id, k, c);
          } catch (e) {
            toast(e.message, 'error');
          }
        },
      }, `${k}. `, shownName(c)));
    });
    return box;
  }

  // approvalEl: an agent asks the person to allow or deny a tool use
  // (PROTOCOL.md §7). Prominent, apart from text; the preview is inert
  // text in a monospace block; Allow and Deny only while it is open.
  approvalEl(r) {
    const open = r.dir === 'in' && !r.verdict && Date.now() < r.expiresAt;
    const card = h('div.approval', { role: 'group', 'aria-label': `Approval request ${r.requestId}` },
      h('div.approval-head', h('strong', `${shownName(this.c.name)} asks to use `), h('code.mono', shownName(r.tool))),
      this.c.verifiedAt ? null : h('p.warn', `${shownName(this.c.name)} is not verified: compare safety numbers before you allow anything.`),
      r.text ? h('p.approval-desc', shown(r.text)) : null,
      r.inputPreview ? h('pre.input-preview.mono', shown(r.inputPreview)) : null,
      h('p.hint', r.verdict ? `You ${r.verdict === 'allow' ? 'allowed' : 'denied'} it.` : open ? `Open until ${clock(r.expiresAt)} · request ${r.requestId} · or reply “yes ${r.requestId}” / “no ${r.requestId}”` : `Expired at ${clock(r.expiresAt)}.`));
    if (open) {
      const act = (allow) => async () => {
        try {
          await this.client.answerApproval(this.c.fp, r.id, allow);
        } catch (e) {
          toast(e.message, 'error');
        }
        this.updateState(r.id, 'in');
      };
      card.append(h('div.actions', h('button.primary.allow', { type: 'button', onclick: act(true) }, 'Allow'), h('button.danger.deny', { type: 'button', onclick: act(false) }, 'Deny')));
    }
    return h(`div.msg.${r.dir}.approval-msg`, { dataset: { id: r.id, state: r.verdict || (open ? 'open' : 'closed') } }, card);
  }

  startReply(r) {
    this.replyTo = r;
    this.replyBar?.remove();
    this.replyBar = h('div.replying', h('span.grow', 'Replying to ', shown((r.text || '').slice(0, 80))), h('button.link', { type: 'button', onclick: () => this.cancelReply() }, 'Cancel'));
    this.counter.before(this.replyBar);
    this.input.focus();
  }

  cancelReply() {
    this.replyTo = null;
    this.replyBar?.remove();
    this.replyBar = null;
  }

  msgCount() {
    return this.byId.size;
  }

  // drop removes n messages (and the day separators they leave alone) from
  // the top or the bottom of the window.
  drop(n, fromTop) {
    const nodes = () => [...this.list.querySelectorAll(':scope > .msg, :scope > .day, :scope > .unread-mark')];
    let all = nodes();
    if (!fromTop) all.reverse();
    let dropped = 0;
    for (const el of all) {
      if (dropped >= n && el.classList.contains('msg')) break;
      if (el.classList.contains('msg')) {
        this.byId.delete((el.classList.contains('out') ? 'out' : 'in') + el.dataset.id);
        dropped++;
      }
      el.remove();
    }
    // The window's new edge: its seq, and a day separator above the first.
    all = nodes();
    const msgs = all.filter((e) => e.classList.contains('msg'));
    if (fromTop) {
      const first = msgs[0];
      if (first && !(first.previousElementSibling?.classList.contains('day'))) {
        const r = this.byId.get((first.classList.contains('out') ? 'out' : 'in') + first.dataset.id).rec;
        const t = r.dir === 'in' ? r.receivedAt : r.sentAt;
        first.before(h('div.day', { dataset: { day: dayKey(t) } }, h('span', dayLabel(t))));
      }
      this.firstSeq = first ? +first.dataset.seq : Infinity;
      this.done = false;
      this.list.querySelector('#load-older').hidden = false;
    } else {
      const last = msgs[msgs.length - 1];
      const tail = this.list.lastElementChild;
      if (tail?.classList.contains('day')) tail.remove();
      this.lastSeq = last ? +last.dataset.seq : 0;
      this.lastRec = last ? this.byId.get((last.classList.contains('out') ? 'out' : 'in') + last.dataset.id).rec : null;
      this.atNewest = false;
    }
  }

  async loadOlder() {
    if (this.loadingOlder || this.done) return;
    this.loadingOlder = true;
    try {
      const recs = await this.app.store.history(this.c.fp, this.firstSeq, PAGE);
      if (recs.length < PAGE) this.done = true;
      const anchor = this.list.querySelector(':scope > .msg');
      const anchorTop = anchor ? anchor.getBoundingClientRect().top : 0;
      const frag = document.createDocumentFragment();
      let prev = null;
      for (const r of recs) {
        this.addTo(frag, r, prev);
        prev = r;
      }
      // The first shown message's day separator may now repeat the last
      // loaded one's day.
      const older = this.list.querySelector('#load-older');
      const firstDay = older.nextElementSibling;
      if (prev && firstDay?.classList.contains('day') && firstDay.dataset.day === dayKey(prev.dir === 'in' ? prev.receivedAt : prev.sentAt)) firstDay.remove();
      if (recs.length) this.firstSeq = recs[0].seq;
      older.after(frag);
      older.hidden = this.done;
      if (this.msgCount() > MAX_SHOWN) this.drop(this.msgCount() - MAX_SHOWN, false);
      // Keep what the person was looking at where it was.
      if (anchor) this.list.scrollTop += anchor.getBoundingClientRect().top - anchorTop;
    } finally {
      this.loadingOlder = false;
    }
  }

  async loadNewer() {
    if (this.loadingNewer || this.atNewest) return;
    this.loadingNewer = true;
    try {
      const recs = await this.app.store.historyAfter(this.c.fp, this.lastSeq, PAGE);
      if (recs.length < PAGE) this.atNewest = true;
      const anchor = [...this.list.querySelectorAll(':scope > .msg')].pop();
      const anchorTop = anchor ? anchor.getBoundingClientRect().top : 0;
      let prev = this.lastRec;
      for (const r of recs) {
        this.addTo(this.list, r, prev);
        prev = r;
      }
      if (recs.length) {
        this.lastSeq = recs[recs.length - 1].seq;
        this.lastRec = prev;
      }
      if (this.msgCount() > MAX_SHOWN) this.drop(this.msgCount() - MAX_SHOWN, true);
      if (anchor) this.list.scrollTop += anchor.getBoundingClientRect().top - anchorTop;
      if (this.atNewest) this.jump?.remove();
    } finally {
      this.loadingNewer = false;
    }
  }

  onScroll() {
    const l = this.list;
    if (l.scrollTop < 400) this.loadOlder();
    if (l.scrollHeight - l.scrollTop - l.clientHeight < 400) this.loadNewer();
  }

  async appendNew() {
    if (!this.atNewest) {
      // The window is further back: offer the way down instead.
      if (!this.jump || !this.jump.isConnected) {
        this.jump = h('button.jump', { type: 'button', id: 'jump-newest', onclick: () => this.loadInitial() }, 'New messages ↓');
        this.list.after(this.jump);
      }
      return;
    }
    const recs = await this.app.store.historyAfter(this.c.fp, this.lastSeq, PAGE);
    const nearBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 120;
    this.list.querySelector('#no-messages')?.remove();
    let prev = this.lastRec || null;
    let mine = false;
    for (const r of recs) {
      if (r.seq <= this.lastSeq) continue;
      this.addTo(this.list, r, prev);
      prev = r;
      this.lastSeq = r.seq;
      if (r.dir === 'out') mine = true;
    }
    this.lastRec = prev;
    if (this.msgCount() > MAX_SHOWN) this.drop(this.msgCount() - MAX_SHOWN, true);
    if (nearBottom || mine) this.list.scrollTop = this.list.scrollHeight;
    this.maybeRead();
  }

  async updateState(id, dir) {
    for (const d of dir ? [dir] : ['out', 'in']) {
      const v = this.byId.get(d + id);
      if (!v) continue;
      const r = await this.app.store.message(d, this.c.fp, id);
      if (!r) continue;
      const el = this.msgEl(r);
      el.dataset.seq = r.seq;
      v.el.replaceWith(el);
      this.byId.set(d + id, { el, rec: r });
    }
  }

  update(d) {
    if (d.peer && d.peer !== this.c.fp) return;
    if (d.kind === 'messages') this.appendNew();
    else if (d.kind === 'state' && d.id) this.updateState(d.id);
    else if (d.kind === 'live' || d.kind === 'status') this.renderSub();
    else if (d.kind === 'contacts') {
      const c = this.client.contacts.get(this.c.fp);
      if (c) this.c = c;
    }
  }

  // maybeRead sends the read acknowledgement when a person can see the
  // conversation.
  maybeRead() {
    if (document.visibilityState !== 'visible' || !document.hasFocus()) return;
    // Once within 250 ms of the first ask, however many follow (a timer
    // reset on every event never fired while messages kept coming).
    if (this.readTimer) return;
    this.readTimer = setTimeout(() => {
      this.readTimer = null;
      this.client.markRead(this.c.fp);
    }, 250);
  }

  onInput() {
    const n = utf8(this.input.value).length;
    this.counter.hidden = n < MAX_BODY_SIZE - 5000;
    this.counter.textContent = `${n.toLocaleString()} of ${MAX_BODY_SIZE.toLocaleString()} bytes`;
    this.counter.classList.toggle('over', n > MAX_BODY_SIZE);
    this.send.disabled = n > MAX_BODY_SIZE;
    this.input.style && this.autosize();
    const now = Date.now();
    if (this.input.value && now - this.typingSent > 4000) {
      this.typingSent = now;
      this.client.sendLive(this.c.fp, TYPE.Typing, true);
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => {
      if (this.typingSent) this.client.sendLive(this.c.fp, TYPE.Typing, false);
      this.typingSent = 0;
    }, 4000);
  }

  autosize() {
    // rows, not inline styles (the CSP forbids them).
    const lines = Math.min(8, this.input.value.split('\n').length);
    this.input.rows = Math.max(1, lines);
  }

  async submit(ev) {
    ev.preventDefault();
    const text = this.input.value;
    if (!text.trim()) return;
    if (utf8(text).length > MAX_BODY_SIZE) {
      toast(`That is more than one message holds (${MAX_BODY_SIZE.toLocaleString()} bytes).`, 'error');
      return;
    }
    this.input.value = '';
    this.onInput();
    this.typingSent = 0;
    sessionStorage.removeItem(`draft:${this.c.fp}`);
    try {
      if (!this.atNewest) await this.loadInitial();
      if (this.replyTo) {
        const to = this.replyTo;
        this.cancelReply();
        await this.client.reply(this.c.fp, to.id, 0, text);
      } else {
        await this.client.sendText(this.c.fp, text);
      }
    } catch (e) {
      this.input.value = text;
      toast(e.message, 'error');
    }
    this.focus();
  }
}
