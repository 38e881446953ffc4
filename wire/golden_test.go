package wire

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/")

const goldenFile = "testdata/golden-v1.txt"

type vector struct{ name, hex string }

// goldenVectors computes the protocol-1 vectors from fixed keys and fixed
// randomness: a full connection (Hello, Auth, the relay's Welcome, a
// client Ping, a data frame carrying an envelope, its Custody answer, the
// recipient's Ack) and the envelope itself.
func goldenVectors(t *testing.T) []vector {
	alice, bob := fixedIdentity(t, 1), fixedIdentity(t, 2)
	r := fixedRelay(t)
	var out []vector
	add := func(name string, b []byte) { out = append(out, vector{name, hex.EncodeToString(b)}) }
	ax, aed := alice.Seeds()
	add("alice_x25519_seed", ax[:])
	add("alice_ed25519_seed", aed[:])
	ap := alice.Public()
	add("alice_x25519_public", ap.X[:])
	add("alice_ed25519_public", ap.Ed[:])
	fp := alice.Public().Fingerprint()
	add("alice_fingerprint", fp[:])
	aid := alice.Public().ID()
	add("alice_routing_id", aid[:])
	bid := bob.Public().ID()
	add("bob_routing_id", bid[:])
	rs := r.Seed()
	add("relay_seed", rs[:])
	rk := r.Public()
	add("relay_key", rk[:])
	out = append(out, vector{"relay_address", hex.EncodeToString([]byte("ws://127.0.0.1:8443/#" + rk.String()))})

	rh, hello, err := NewRelayHandshake(r, detRand("golden relay"))
	if err != nil {
		t.Fatal(err)
	}
	add("hello", hello)
	auth, cs, err := ClientHandshake(alice, r.Public(), ConnReceive, hello, detRand("golden client"))
	if err != nil {
		t.Fatal(err)
	}
	add("auth", auth)
	res, err := rh.Finish(auth)
	if err != nil {
		t.Fatal(err)
	}
	welcome, _, err := res.Session.Send.AppendCommand(nil, &Command{Op: OpWelcome, Version: ProtocolVersion, ConnFlags: ConnReceive, Time: uint64(fixedTime.UnixMilli()), MaxFrameSize: MaxFrameSize, ID: aid})
	if err != nil {
		t.Fatal(err)
	}
	add("frame_s2c_0_welcome", welcome)
	ping, _, err := cs.Send.AppendCommand(nil, &Command{Op: OpPing, Token: 0x0102030405060708})
	if err != nil {
		t.Fatal(err)
	}
	add("frame_c2s_0_ping", ping)

	ab, err := alice.Pair(bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	m := &Message{SentAt: fixedTime, Type: TypeText, Body: []byte("hello, bob")}
	for i := range m.ID {
		m.ID[i] = byte(i)
	}
	env, err := ab.Seal(nil, m, detRand("golden envelope"))
	if err != nil {
		t.Fatal(err)
	}
	add("envelope_alice_to_bob", env)
	data := append(make([]byte, FrameHeaderSize), env...)
	if _, err := cs.Send.SealHeader(data, bid, 0); err != nil {
		t.Fatal(err)
	}
	add("frame_c2s_1_data_to_bob", data)
	custody, _, err := res.Session.Send.AppendCommand(nil, &Command{Op: OpCustody, Custody: []CustodyEntry{{Index: 1, Status: StatusStored}}})
	if err != nil {
		t.Fatal(err)
	}
	add("frame_s2c_1_custody", custody)
	ack, _, err := cs.Send.AppendCommand(nil, &Command{Op: OpAck, Acks: []uint64{0}})
	if err != nil {
		t.Fatal(err)
	}
	add("frame_c2s_2_ack", ack)

	// Bob's envelope to alice, as the relay hands it over from its
	// mailbox: the header names no sender (UnnamedID).
	ba, err := bob.Pair(alice.Public())
	if err != nil {
		t.Fatal(err)
	}
	m2 := &Message{SentAt: fixedTime, Type: TypeText, Body: []byte("hello, alice")}
	for i := range m2.ID {
		m2.ID[i] = byte(0x10 + i)
	}
	env2, err := ba.Seal(nil, m2, detRand("golden envelope 2"))
	if err != nil {
		t.Fatal(err)
	}
	stored := append(make([]byte, FrameHeaderSize), env2...)
	if _, err := res.Session.Send.SealHeader(stored, UnnamedID, 0); err != nil {
		t.Fatal(err)
	}
	add("frame_s2c_2_stored_unnamed", stored)
	// Alice's delivered receipt for it, marked FlagReceipt.
	rm := &Message{SentAt: fixedTime, Type: TypeDelivered, Body: AckBody(m2.ID)}
	for i := range rm.ID {
		rm.ID[i] = byte(0x20 + i)
	}
	renv, err := ab.Seal(nil, rm, detRand("golden receipt"))
	if err != nil {
		t.Fatal(err)
	}
	receipt := append(make([]byte, FrameHeaderSize), renv...)
	if _, err := cs.Send.SealHeader(receipt, bid, FlagReceipt); err != nil {
		t.Fatal(err)
	}
	add("frame_c2s_3_receipt_to_bob", receipt)
	// Push: the relay's VAPID key after the backlog, alice's subscription,
	// the relay's answer.
	pushKey, _, err := res.Session.Send.AppendCommand(nil, &Command{Op: OpPushKey, PushKey: goldenPushKey()})
	if err != nil {
		t.Fatal(err)
	}
	add("frame_s2c_3_push_key", pushKey)
	sub, _, err := cs.Send.AppendCommand(nil, &Command{Op: OpPushSubscribe, PushKey: goldenPushKey(), PushAuth: []byte("0123456789abcdef"), PushEndpoint: goldenPushEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	add("frame_c2s_4_push_subscribe", sub)
	result, _, err := res.Session.Send.AppendCommand(nil, &Command{Op: OpPushResult})
	if err != nil {
		t.Fatal(err)
	}
	add("frame_s2c_4_push_result", result)
	// Since 2026-12: alice tells bob she now receives on another relay.
	moved := &Message{SentAt: fixedTime, Type: TypeRelayMoved, Body: []byte(goldenMovedTo)}
	for i := range moved.ID {
		moved.ID[i] = byte(0x40 + i)
	}
	menv, err := ab.Seal(nil, moved, detRand("golden relay moved"))
	if err != nil {
		t.Fatal(err)
	}
	add("envelope_alice_to_bob_relay_moved", menv)
	return out
}

const goldenPushEndpoint = "https://push.example/wpush/v2/gAAAAABk"

// goldenPushKey is a fixed uncompressed P-256 point (the generator).
func goldenPushKey() []byte {
	k, _ := hex.DecodeString("04" +
		"6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296" +
		"4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")
	return k
}

// goldenMovedTo is the relay address in the relay-moved vector.
const goldenMovedTo = "wss://relay.example.com/#YFpyXSpK3-6xop4X7dYhwbdZPujNvESsbEq24vgF0jw"

func TestGoldenVectors(t *testing.T) {
	got := goldenVectors(t)
	if *update {
		var b strings.Builder
		b.WriteString("# wschat wire format, protocol version 1: golden vectors (hex).\n")
		b.WriteString("# expect: ok — made from the fixed keys and randomness in golden_test.go,\n")
		b.WriteString("# reproduced byte for byte and decoded by every later version that speaks 1.\n")
		b.WriteString("# relay_address is the hex of the ASCII string.\n")
		for _, v := range got {
			fmt.Fprintf(&b, "%s: %s\n", v.name, v.hex)
		}
		if err := os.WriteFile(goldenFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := readGolden(t)
	if len(want) != len(got) {
		t.Fatalf("%s has %d vectors, code makes %d", goldenFile, len(want), len(got))
	}
	for _, v := range got {
		if want[v.name] != v.hex {
			t.Errorf("%s drifted:\n got  %s\n want %s", v.name, v.hex, want[v.name])
		}
	}
}

func readGolden(t *testing.T) map[string]string {
	t.Helper()
	return readGoldenFile(t, goldenFile)
}

// readGoldenFile reads "name: hex" lines, skipping blank and # lines.
func readGoldenFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		line := s.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		m[k] = v
	}
	return m
}

// TestGoldenDecode decodes the stored bytes, not freshly made ones: old
// frames must stay readable whatever the encoder does later.
func TestGoldenDecode(t *testing.T) {
	g := readGolden(t)
	b := func(name string) []byte {
		v, err := hex.DecodeString(g[name])
		if err != nil || len(v) == 0 {
			t.Fatalf("%s: %v", name, err)
		}
		return v
	}
	alice, bob := fixedIdentity(t, 1), fixedIdentity(t, 2)
	r := fixedRelay(t)
	addr, err := ParseRelayAddress(string(b("relay_address")))
	if err != nil || addr.Key != r.Public() {
		t.Fatalf("relay address: %v", err)
	}
	// The relay side, with the same ephemeral randomness, accepts the stored Auth.
	rh, hello, err := NewRelayHandshake(r, detRand("golden relay"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hello, b("hello")) {
		t.Fatal("hello differs")
	}
	res, err := rh.Finish(b("auth"))
	if err != nil {
		t.Fatalf("stored auth: %v", err)
	}
	if !res.Peer.Equal(alice.Public()) || !res.Receive {
		t.Fatalf("stored auth names %v receive=%v", res.Peer, res.Receive)
	}
	// The client side accepts the stored Hello and the stored relay frames.
	_, cs, err := ClientHandshake(alice, r.Public(), ConnReceive, b("hello"), detRand("golden client"))
	if err != nil {
		t.Fatal(err)
	}
	openCmd := func(f *Framer, name string, op Op) *Command {
		frame := b(name)
		h, err := f.OpenHeader(frame)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c, err := f.OpenCommand(h, frame)
		if err != nil || c.Op != op {
			t.Fatalf("%s: %+v, %v", name, c, err)
		}
		return c
	}
	if w := openCmd(cs.Recv, "frame_s2c_0_welcome", OpWelcome); w.ID != alice.Public().ID() || w.Time != uint64(fixedTime.UnixMilli()) {
		t.Fatalf("welcome %+v", w)
	}
	if p := openCmd(res.Session.Recv, "frame_c2s_0_ping", OpPing); p.Token != 0x0102030405060708 {
		t.Fatalf("ping %+v", p)
	}
	data := b("frame_c2s_1_data_to_bob")
	h, err := res.Session.Recv.OpenHeader(data)
	if err != nil || h.ID != bob.Public().ID() || h.Index != 1 || h.Flags != 0 {
		t.Fatalf("data frame header %+v, %v", h, err)
	}
	if !bytes.Equal(data[FrameHeaderSize:], b("envelope_alice_to_bob")) {
		t.Fatal("data frame body is not the envelope")
	}
	if c := openCmd(cs.Recv, "frame_s2c_1_custody", OpCustody); c.Custody[0] != (CustodyEntry{Index: 1, Status: StatusStored}) {
		t.Fatalf("custody %+v", c)
	}
	if a := openCmd(res.Session.Recv, "frame_c2s_2_ack", OpAck); len(a.Acks) != 1 || a.Acks[0] != 0 {
		t.Fatalf("ack %+v", a)
	}
	// Alice finds the sender of the unnamed stored frame by its pair tag
	// and opens it.
	ab, err := alice.Pair(bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	stored := b("frame_s2c_2_stored_unnamed")
	h, err = cs.Recv.OpenHeader(stored)
	if err != nil || !h.ID.IsUnnamed() || h.Index != 2 || h.Flags != 0 {
		t.Fatalf("stored frame header %+v, %v", h, err)
	}
	if ab.From(b("envelope_alice_to_bob")) || !ab.From(stored[FrameHeaderSize:]) {
		t.Fatal("pair tag does not tell bob's envelope from alice's")
	}
	if m, err := ab.Open(stored[FrameHeaderSize:]); err != nil || string(m.Body) != "hello, alice" {
		t.Fatalf("stored frame: %+v, %v", m, err)
	}
	receipt := b("frame_c2s_3_receipt_to_bob")
	h, err = res.Session.Recv.OpenHeader(receipt)
	if err != nil || h.ID != bob.Public().ID() || h.Index != 3 || h.Flags != FlagReceipt {
		t.Fatalf("receipt frame header %+v, %v", h, err)
	}
	// Bob opens the stored envelope.
	ba, err := bob.Pair(alice.Public())
	if err != nil {
		t.Fatal(err)
	}
	m, err := ba.Open(b("envelope_alice_to_bob"))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != "hello, bob" || m.Type != TypeText || !m.SentAt.Equal(fixedTime) || m.ID[15] != 15 {
		t.Fatalf("opened %+v", m)
	}
	if c := openCmd(cs.Recv, "frame_s2c_3_push_key", OpPushKey); !bytes.Equal(c.PushKey, goldenPushKey()) {
		t.Fatalf("push key %+v", c)
	}
	if c := openCmd(res.Session.Recv, "frame_c2s_4_push_subscribe", OpPushSubscribe); c.PushEndpoint != goldenPushEndpoint || string(c.PushAuth) != "0123456789abcdef" || !bytes.Equal(c.PushKey, goldenPushKey()) {
		t.Fatalf("push subscribe %+v", c)
	}
	if c := openCmd(cs.Recv, "frame_s2c_4_push_result", OpPushResult); c.Reason != ReasonNone {
		t.Fatalf("push result %+v", c)
	}
	rm, err := ba.Open(receipt[FrameHeaderSize:])
	if err != nil || rm.Type != TypeDelivered || len(AckIDs(rm.Body)) != 1 || AckIDs(rm.Body)[0][0] != 0x10 {
		t.Fatalf("receipt: %+v, %v", rm, err)
	}
	mv, err := ba.Open(b("envelope_alice_to_bob_relay_moved"))
	if err != nil {
		t.Fatal(err)
	}
	if string(mv.Body) != goldenMovedTo || mv.Type != TypeRelayMoved || mv.ID[0] != 0x40 {
		t.Fatalf("opened %+v", mv)
	}
}
