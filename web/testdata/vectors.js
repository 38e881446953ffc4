// The repo's golden vectors (wire/testdata/golden-v1.txt, keys/testdata/*)
// run through the web app's protocol code. The Go test web/vectors_test.go
// runs this module in real headless Chromium; `node web/testdata/node.mjs`
// runs it in Node for a quick look.
//
// runVectors returns {checks, failures}: every check that ran, and a
// message for each one that did not give what the Go code gives.

import { blake3, chacha20, x25519 } from '../app/vendor/vendor.js';
import { utf8, hex, unhex, equal, concat } from '../app/js/bytes.js';
import * as wire from '../app/js/wire.js';
import * as keys from '../app/js/keys.js';
import * as st from '../app/js/structured.js';

// detRand is wire's test randomness: the ChaCha20 keystream under
// BLAKE3("wschat test randomness: " + label), zero nonce.
export function detRand(label) {
  const key = blake3(utf8('wschat test randomness: ' + label));
  let pos = 0;
  return (n) => {
    const start = pos;
    pos += n;
    const firstBlock = Math.floor(start / 64);
    const lastBlock = Math.floor((pos - 1) / 64);
    const stream = chacha20(key, new Uint8Array(12), new Uint8Array((lastBlock - firstBlock + 1) * 64), undefined, firstBlock);
    return stream.slice(start - firstBlock * 64, start - firstBlock * 64 + n);
  };
}

function seeds(a, b) {
  const x = new Uint8Array(32);
  const ed = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    x[i] = a + i;
    ed[i] = b + i;
  }
  return [x, ed];
}

const fixedIdentity = (n) => new wire.Identity(...seeds(n * 64, n * 64 + 32));
const FIXED_TIME = Date.UTC(2026, 10, 23, 12, 0, 0);

function parseGolden(text) {
  const g = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.indexOf(': ');
    g[line.slice(0, i)] = unhex(line.slice(i + 2));
  }
  return g;
}

// parseKeyVector splits a keys/testdata file into its header and body.
function parseKeyVector(text) {
  const i = text.indexOf('\n\n');
  const hdr = {};
  for (const line of text.slice(0, i).split('\n')) {
    const j = line.indexOf(': ');
    hdr[line.slice(0, j)] = line.slice(j + 2);
  }
  return { hdr, body: text.slice(i + 2) };
}

export function runVectors({ golden, keyVectors, structured }) {
  const checks = [];
  const failures = [];
  const check = (name, fn) => {
    checks.push(name);
    try {
      const r = fn();
      if (r !== true) failures.push(`${name}: ${r}`);
    } catch (e) {
      failures.push(`${name}: threw ${e.code || ''} ${e.message}`);
    }
  };
  const same = (got, want) => (equal(got, want) ? true : `got ${hex(got)}, want ${hex(want)}`);

  const g = parseGolden(golden);
  const alice = fixedIdentity(1);
  const bob = fixedIdentity(2);
  const relaySeed = new Uint8Array(32).map((_, i) => 0xa0 + i);
  check('alice keys', () => same(concat(alice.pub.x, alice.pub.ed), concat(g.alice_x25519_public, g.alice_ed25519_public)));
  check('alice fingerprint', () => same(alice.pub.fp, g.alice_fingerprint));
  check('routing ids', () => same(concat(alice.pub.id, bob.pub.id), concat(g.alice_routing_id, g.bob_routing_id)));
  const relayAddr = new TextDecoder().decode(g.relay_address);
  let addr;
  check('relay address', () => {
    addr = wire.parseRelayAddress(relayAddr);
    return addr.toString() === relayAddr ? same(addr.key, g.relay_key) : 'does not re-encode';
  });
  check('relay key from seed', () => same(x25519.getPublicKey(relaySeed), g.relay_key));
  let session;
  check('hello is the relay ephemeral of detRand("golden relay")', () => {
    // The relay side is Go's; its ephemeral key shows the stream matches.
    const pub = x25519.getPublicKey(detRand('golden relay')(32));
    return same(g.hello, concat(Uint8Array.of(1, 1), pub));
  });
  check('auth (client handshake) byte for byte', () => {
    const r = wire.clientHandshake(alice, g.relay_key, wire.CONN_RECEIVE, g.hello, detRand('golden client'));
    session = r.session;
    return same(r.auth, g.auth);
  });
  check('welcome opens', () => {
    const f = Uint8Array.from(g.frame_s2c_0_welcome);
    const h = session.recv.openHeader(f);
    const c = session.recv.openCommand(h, f);
    if (c.op !== wire.OP.Welcome || !equal(c.id, alice.pub.id) || c.time !== BigInt(FIXED_TIME)) return `welcome ${JSON.stringify(c, big)}`;
    return c.maxFrameSize === wire.MAX_FRAME_SIZE && c.connFlags === wire.CONN_RECEIVE ? true : 'welcome fields';
  });
  check('ping frame byte for byte', () => same(session.send.sealCommand({ op: wire.OP.Ping, token: 0x0102030405060708n }).frame, g.frame_c2s_0_ping));
  const ab = new wire.Pair(alice, bob.pub);
  const ba = new wire.Pair(bob, alice.pub);
  const msg = { id: Uint8Array.from({ length: 16 }, (_, i) => i), sentAt: FIXED_TIME, type: wire.TYPE.Text, body: utf8('hello, bob') };
  check('envelope byte for byte', () => same(ab.seal(msg, detRand('golden envelope')(24)), g.envelope_alice_to_bob));
  check('data frame byte for byte', () => {
    const f = concat(new Uint8Array(9), g.envelope_alice_to_bob);
    const i = session.send.sealHeader(f, bob.pub.id, 0);
    return i === 1n ? same(f, g.frame_c2s_1_data_to_bob) : `index ${i}`;
  });
  check('custody opens', () => {
    const f = Uint8Array.from(g.frame_s2c_1_custody);
    const c = session.recv.openCommand(session.recv.openHeader(f), f);
    const e = c.custody[0];
    return c.custody.length === 1 && e.index === 1n && e.status === wire.STATUS.Stored && e.reason === 0 ? true : JSON.stringify(c, big);
  });
  check('ack frame byte for byte', () => same(session.send.sealCommand({ op: wire.OP.Ack, acks: [0n] }).frame, g.frame_c2s_2_ack));
  // A stored frame comes without its sender's id (UNNAMED_ID): the pair
  // tag names the sender.
  check('stored unnamed frame: sender found by its pair tag, opened', () => {
    const f = Uint8Array.from(g.frame_s2c_2_stored_unnamed);
    const h = session.recv.openHeader(f);
    if (h.index !== 2n || !equal(h.id, wire.UNNAMED_ID) || h.flags !== 0) return `header ${JSON.stringify(h, big)}`;
    const body = f.subarray(9);
    if (!ab.from(body) || ab.from(g.envelope_alice_to_bob)) return 'pair tag does not tell the senders apart';
    const m = ab.open(body);
    return new TextDecoder().decode(m.body) === 'hello, alice' ? true : 'opened wrong';
  });
  check('receipt frame byte for byte (FLAG_RECEIPT)', () => {
    const rm = { id: Uint8Array.from({ length: 16 }, (_, i) => 0x20 + i), sentAt: FIXED_TIME, type: wire.TYPE.Delivered, body: Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i) };
    const env = ab.seal(rm, detRand('golden receipt')(24));
    const f = concat(new Uint8Array(9), env);
    const i = session.send.sealHeader(f, bob.pub.id, wire.FLAG_RECEIPT);
    return i === 3n ? same(f, g.frame_c2s_3_receipt_to_bob) : `index ${i}`;
  });
  const pushKey = unhex('046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5');
  check('push key opens', () => {
    const f = Uint8Array.from(g.frame_s2c_3_push_key);
    const c = session.recv.openCommand(session.recv.openHeader(f), f);
    return c.op === wire.OP.PushKey ? same(c.key, pushKey) : `op ${c.op}`;
  });
  check('push subscribe byte for byte', () => same(session.send.sealCommand({ op: wire.OP.PushSubscribe, p256dh: pushKey, auth: utf8('0123456789abcdef'), endpoint: 'https://push.example/wpush/v2/gAAAAABk' }).frame, g.frame_c2s_4_push_subscribe));
  check('push result opens', () => {
    const f = Uint8Array.from(g.frame_s2c_4_push_result);
    const c = session.recv.openCommand(session.recv.openHeader(f), f);
    return c.op === wire.OP.PushResult && c.reason === 0 ? true : JSON.stringify(c, big);
  });
  check('relay_moved envelope opens and is checked', () => {
    const m = ba.open(g.envelope_alice_to_bob_relay_moved);
    const body = new TextDecoder().decode(m.body);
    if (m.type !== wire.TYPE.RelayMoved || m.id[0] !== 0x40) return `opened ${m.type}`;
    return body === 'wss://relay.example.com/#YFpyXSpK3-6xop4X7dYhwbdZPujNvESsbEq24vgF0jw' ? true : `body ${body}`;
  });
  check('relay_moved with a non-canonical address is malformed', () => {
    try {
      ab.seal({ id: new Uint8Array(16), sentAt: FIXED_TIME, type: wire.TYPE.RelayMoved, body: utf8('wss://relay.example.com/#YFpy') });
      return 'sealed';
    } catch (e) {
      return e.code === 'ErrInnerMalformed' ? true : e.code;
    }
  });
  check('bob opens the envelope', () => {
    const m = ba.open(g.envelope_alice_to_bob);
    return new TextDecoder().decode(m.body) === 'hello, bob' && m.sentAt === FIXED_TIME && m.type === 1 && m.id[15] === 15 ? true : 'opened wrong';
  });
  // Every tamper has its own error, as in Go.
  const tampered = (at, code) => () => {
    const env = Uint8Array.from(g.envelope_alice_to_bob);
    env[at] ^= 1;
    try {
      ba.open(env);
      return 'opened';
    } catch (e) {
      return e.code === code ? true : `${e.code}, want ${code}`;
    }
  };
  check('tampered nonce: wrong pair', tampered(5, 'ErrWrongPair'));
  check('tampered version', tampered(0, 'ErrEnvelopeVersion'));
  check('tampered ciphertext', tampered(100, 'ErrDecrypt'));
  check('truncated envelope', () => {
    try {
      ba.open(g.envelope_alice_to_bob.subarray(1));
      return 'opened';
    } catch (e) {
      return e.code === 'ErrEnvelopeSize' ? true : e.code;
    }
  });
  check('reflected envelope', () => {
    try {
      ab.open(g.envelope_alice_to_bob);
      return 'opened';
    } catch (e) {
      return e.code === 'ErrReflected' ? true : e.code;
    }
  });
  check('tampered command does not authenticate', () => {
    const { session: s } = wire.clientHandshake(alice, g.relay_key, wire.CONN_RECEIVE, g.hello, detRand('golden client'));
    const f = Uint8Array.from(g.frame_s2c_0_welcome);
    f[20] ^= 1;
    try {
      s.recv.openCommand(s.recv.openHeader(f), f);
      return 'opened';
    } catch (e) {
      return e.code === 'ErrCommandAuth' ? true : e.code;
    }
  });
  check('low-order x25519 keys refused', () => {
    for (const k of [new Uint8Array(32), Uint8Array.of(1, ...new Array(31).fill(0))]) {
      try {
        wire.checkX25519Public(k);
        return 'accepted';
      } catch (e) {
        if (e.code !== 'ErrLowOrderKey') return e.code;
      }
    }
    return true;
  });
  check('small-order ed25519 key refused', () => {
    try {
      wire.checkEd25519Public(Uint8Array.of(1, ...new Array(31).fill(0)));
      return 'accepted';
    } catch (e) {
      return e.code === 'ErrSmallOrderKey' ? true : e.code;
    }
  });

  // wire/testdata/golden-v1-structured.txt: each body parses and
  // re-encodes to itself; bob opens alice's envelope of each; a damaged
  // body is malformed.
  if (structured) {
    const sv = parseGolden(structured);
    const kinds = [
      ['question', wire.TYPE.Question, 0x50, (b) => st.encodeQuestion(st.parseQuestion(b))],
      ['reply', wire.TYPE.Reply, 0x60, (b) => st.encodeReply(st.parseReply(b))],
      ['approval_request', wire.TYPE.ApprovalRequest, 0x70, (b) => st.encodeApprovalRequest(st.parseApprovalRequest(b))],
      ['approval_answer', wire.TYPE.ApprovalAnswer, 0x80, (b) => st.encodeApprovalAnswer(st.parseApprovalAnswer(b))],
    ];
    for (const [name, type, firstID, roundTrip] of kinds) {
      check(`structured ${name}: body round trip`, () => same(roundTrip(sv['body_' + name]), sv['body_' + name]));
      check(`structured ${name}: envelope opens`, () => {
        const m = ba.open(sv['envelope_alice_to_bob_' + name]);
        if (m.type !== type || m.id[0] !== firstID) return `type ${m.type}, id ${hex(m.id)}`;
        return same(m.body, sv['body_' + name]);
      });
      check(`structured ${name}: envelope byte for byte`, () => {
        const id = Uint8Array.from({ length: 16 }, (_, i) => firstID + i);
        return same(ab.seal({ id, sentAt: FIXED_TIME, type, body: sv['body_' + name] }, detRand('golden ' + name)(24)), sv['envelope_alice_to_bob_' + name]);
      });
    }
    check('structured: a question with a repeated choice is malformed', () => {
      try {
        st.encodeQuestion({ text: 'pick', choices: ['a', 'a'] });
        return 'encoded';
      } catch (e) {
        return e.code === 'ErrInnerMalformed' ? true : e.message;
      }
    });
    check('structured: an approval answer with behavior 3 is refused by Open', () => {
      const body = Uint8Array.from(sv.body_approval_answer);
      body[21] = 3;
      try {
        ab.seal({ id: new Uint8Array(16), sentAt: FIXED_TIME, type: wire.TYPE.ApprovalAnswer, body });
        return 'sealed';
      } catch (e) {
        return e.code === 'ErrInnerMalformed' ? true : e.code;
      }
    });
    check('structured: approval request fields', () => {
      const a = st.parseApprovalRequest(sv.body_approval_request);
      return a.requestId === 'abcde' && a.tool === 'Bash' && a.description === 'Run the test suite' ? true : JSON.stringify(a);
    });
  }

  // keys/testdata: every vector, decoded as its header says.
  for (const [name, text] of Object.entries(keyVectors)) {
    const { hdr, body } = parseKeyVector(text);
    const expect = hdr.expect;
    const wantCodes = expect === 'ok' ? [] : expect.split(' ').map((c) => c.replace(/^wire\./, ''));
    const outcome = (fn, okCheck) => () => {
      let v;
      try {
        v = fn();
      } catch (e) {
        if (!wantCodes.length) return `threw ${e.code}: ${e.message}`;
        const codes = [e.code, e.cause && e.cause.code].filter(Boolean);
        return wantCodes.every((c) => codes.includes(c)) ? true : `threw ${codes.join(' ')}, want ${expect}`;
      }
      if (wantCodes.length) return `accepted, want ${expect}`;
      return okCheck(v);
    };
    switch (hdr.kind) {
      case 'invite':
        check(`keys/testdata/${name}`, outcome(() => keys.parseInvite(body.trim()), (inv) => {
          if (inv.pub.idHex !== hdr.id || inv.name !== hdr.nick || (inv.relay || '-') !== hdr.relay) return `decoded ${inv.pub.idHex} ${inv.name} ${inv.relay}`;
          return inv.toString() === body.trim() ? true : 'does not re-encode';
        }));
        break;
      case 'identity':
        if (body.startsWith('-----BEGIN AGE')) {
          // The browser does not read age files; it must say so, not misread them.
          check(`keys/testdata/${name} (age: refused as passphrase-protected)`, () => {
            try {
              keys.parseIdentity(utf8(body));
              return 'accepted';
            } catch (e) {
              return e.code === 'ErrPassphraseRequired' ? true : e.code;
            }
          });
          break;
        }
        check(`keys/testdata/${name}`, outcome(() => keys.parseIdentity(utf8(body)), (f) => {
          if (f.identity.pub.idHex !== hdr.id || f.name !== hdr.nick || (f.relay || '-') !== hdr.relay) return 'decoded wrong';
          return new TextDecoder().decode(keys.marshalIdentity(f)) === body ? true : 'does not re-encode';
        }));
        break;
      case 'safety':
        check(`keys/testdata/${name}`, () => {
          const n = keys.safetyNumber(keys.parseInvite(hdr.a).pub, keys.parseInvite(hdr.b).pub);
          return n === body.trim() ? true : `got ${n}`;
        });
        break;
      default: // contacts files are the CLI's address book; the browser keeps its own.
    }
  }
  return { checks, failures };
}

function big(_, v) {
  return typeof v === 'bigint' ? v.toString() : v;
}
