package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

type trio struct {
	alice, bob, carol  *Identity
	ab, ba, ac, ca, bc *Pair
}

func newTrio(t testing.TB) *trio {
	t.Helper()
	tr := &trio{alice: fixedIdentity(t, 1), bob: fixedIdentity(t, 2), carol: fixedIdentity(t, 3)}
	pair := func(a, b *Identity) *Pair {
		p, err := a.Pair(b.Public())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tr.ab, tr.ba = pair(tr.alice, tr.bob), pair(tr.bob, tr.alice)
	tr.ac, tr.ca = pair(tr.alice, tr.carol), pair(tr.carol, tr.alice)
	tr.bc = pair(tr.bob, tr.carol)
	return tr
}

func textMessage(t testing.TB, text string) *Message {
	t.Helper()
	id, err := NewMessageID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Message{ID: id, SentAt: fixedTime, Type: TypeText, Body: []byte(text)}
}

func seal(t testing.TB, p *Pair, m *Message) []byte {
	t.Helper()
	env, err := p.Seal(nil, m, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestEnvelopeRoundTrip(t *testing.T) {
	tr := newTrio(t)
	sizes := []int{0, 1, MinPadded - innerHeaderSize - SignatureSize, MinPadded - innerHeaderSize - SignatureSize + 1, 1000, 4000, MaxBodySize}
	for _, n := range sizes {
		m := &Message{SentAt: fixedTime, Type: TypeText, Body: bytes.Repeat([]byte("x"), n)}
		m.ID[0] = byte(n)
		env := seal(t, tr.ab, m)
		if len(env) != EnvelopeSize(n) {
			t.Fatalf("%d-byte body: envelope %d bytes, EnvelopeSize says %d", n, len(env), EnvelopeSize(n))
		}
		got, err := tr.ba.Open(env)
		if err != nil {
			t.Fatalf("%d-byte body: %v", n, err)
		}
		if got.ID != m.ID || !got.SentAt.Equal(m.SentAt) || got.Type != m.Type || !bytes.Equal(got.Body, m.Body) {
			t.Fatalf("%d-byte body: opened %+v", n, got)
		}
	}
	// Every message type with a valid body.
	id := MessageID{1}
	for _, m := range []*Message{
		{Type: TypeDelivered, Body: AckBody(id)},
		{Type: TypeRead, Body: AckBody(id, MessageID{2})},
		{Type: TypeTyping, Body: []byte{1}},
		{Type: TypePresence, Body: []byte{0}},
		{Type: 0x7f, Body: []byte("a type from the future")},
	} {
		m.SentAt = fixedTime
		got, err := tr.ba.Open(seal(t, tr.ab, m))
		if err != nil || got.Type != m.Type || !bytes.Equal(got.Body, m.Body) {
			t.Fatalf("%s: %+v, %v", m.Type, got, err)
		}
	}
	if ids := AckIDs(AckBody(id, MessageID{2})); len(ids) != 2 || ids[0] != id || ids[1] != (MessageID{2}) {
		t.Fatalf("AckIDs: %v", ids)
	}
}

func TestEnvelopeBucketsHideLength(t *testing.T) {
	tr := newTrio(t)
	a := seal(t, tr.ab, textMessage(t, "y"))
	b := seal(t, tr.ab, textMessage(t, "yes, I will be there at eight"))
	if len(a) != len(b) || len(a) != MinEnvelopeSize {
		t.Fatalf("short messages: %d and %d bytes, want both %d", len(a), len(b), MinEnvelopeSize)
	}
	for n, want := range map[int]int{34: 128, 35: 256, 1000: 2048, MaxBodySize: MaxPadded} {
		if got := paddedSize(n); got != want {
			t.Errorf("paddedSize(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestSealRefuses(t *testing.T) {
	tr := newTrio(t)
	for _, tt := range []struct {
		name string
		m    *Message
		want error
	}{
		{"too large", &Message{SentAt: fixedTime, Type: TypeText, Body: make([]byte, MaxBodySize+1)}, ErrBodyTooLarge},
		{"not utf-8", &Message{SentAt: fixedTime, Type: TypeText, Body: []byte{0xff}}, ErrInnerMalformed},
		{"empty ack", &Message{SentAt: fixedTime, Type: TypeDelivered}, ErrInnerMalformed},
		{"ragged ack", &Message{SentAt: fixedTime, Type: TypeRead, Body: make([]byte, 17)}, ErrInnerMalformed},
		{"typing 2", &Message{SentAt: fixedTime, Type: TypeTyping, Body: []byte{2}}, ErrInnerMalformed},
		{"no time", &Message{Type: TypeText}, ErrInnerMalformed},
	} {
		if _, err := tr.ab.Seal(nil, tt.m, rand.Reader); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := tr.alice.Pair(tr.alice.Public()); !errors.Is(err, ErrSelfPair) {
		t.Errorf("self pair: %v", err)
	}
}

// Every tamper fails, each with its own error.
func TestEnvelopeTamper(t *testing.T) {
	tr := newTrio(t)
	env := seal(t, tr.ab, textMessage(t, "meet at noon"))
	flip := func(i int) []byte {
		e := bytes.Clone(env)
		e[i] ^= 0x01
		return e
	}
	tests := []struct {
		name string
		open *Pair
		env  []byte
		want error
	}{
		{"version byte", tr.ba, flip(0), ErrEnvelopeVersion},
		{"nonce bit", tr.ba, flip(5), ErrWrongPair},
		{"pair tag bit", tr.ba, flip(1 + NonceSize + 3), ErrWrongPair},
		{"ciphertext bit", tr.ba, flip(EnvelopeHeaderSize + 10), ErrDecrypt},
		{"auth tag bit", tr.ba, flip(len(env) - 1), ErrDecrypt},
		{"truncated by one", tr.ba, env[:len(env)-1], ErrEnvelopeSize},
		{"truncated to a smaller bucket", tr.ba, env[:len(env)-MinPadded/2], ErrEnvelopeSize},
		{"extended by one", tr.ba, append(bytes.Clone(env), 0), ErrEnvelopeSize},
		{"extended to the next bucket", tr.ba, append(bytes.Clone(env), make([]byte, MinPadded)...), ErrDecrypt},
		{"empty", tr.ba, nil, ErrEnvelopeSize},
		{"wrong recipient", tr.ca, env, ErrWrongPair},
		{"wrong claimed sender", tr.bc, env, ErrWrongPair},
		{"reflected to its sender", tr.ab, env, ErrReflected},
	}
	for _, tt := range tests {
		if _, err := tt.open.Open(tt.env); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := tr.ba.Open(env); err != nil {
		t.Fatalf("the untouched envelope no longer opens: %v", err)
	}
}

// sealRaw seals hand-made inner plaintext with the pair's send keys, as a
// malicious sender (who holds its own keys) could.
func sealRaw(t *testing.T, p *Pair, inner []byte) []byte {
	t.Helper()
	nonce := make([]byte, NonceSize)
	rand.Read(nonce)
	tag := p.sendTag.tag(nonce)
	hdr := append(append([]byte{ProtocolVersion}, nonce...), tag[:]...)
	return p.sendAEAD.Seal(hdr, nonce, inner, hdr)
}

// signedInner lays out an inner plaintext and signs it like Seal; mutate
// runs before signing, resign after.
func signedInner(t *testing.T, p *Pair, body []byte, mutate func(in []byte), resign func(sig []byte) []byte) []byte {
	t.Helper()
	l := paddedSize(len(body))
	in := make([]byte, l)
	in[0] = 9
	binary.LittleEndian.PutUint64(in[16:], uint64(fixedTime.UnixMilli()))
	in[24] = byte(TypeText)
	binary.LittleEndian.PutUint32(in[26:], uint32(len(body)))
	copy(in[innerHeaderSize:], body)
	if mutate != nil {
		mutate(in)
	}
	msg := append(p.sendSig[:], in[:l-SignatureSize]...)
	sig, err := p.self.ed.Sign(nil, msg, &ed25519.Options{Context: SigContextMessage})
	if err != nil {
		t.Fatal(err)
	}
	if resign != nil {
		sig = resign(sig)
	}
	copy(in[l-SignatureSize:], sig)
	return in
}

func TestEnvelopeHostileSender(t *testing.T) {
	tr := newTrio(t)
	tests := []struct {
		name   string
		mutate func([]byte)
		resign func([]byte) []byte
		want   error
	}{
		{"honest", nil, nil, nil},
		{"signature S+L", nil, addL, ErrSignature},
		{"signature zeroed", nil, func([]byte) []byte { return make([]byte, 64) }, ErrSignature},
		{"nonzero padding", func(in []byte) { in[innerHeaderSize+40+3] = 1 }, nil, ErrInnerMalformed},
		{"body length past the end", func(in []byte) { binary.LittleEndian.PutUint32(in[26:], 1<<20) }, nil, ErrInnerMalformed},
		{"body length of a smaller bucket", func(in []byte) { binary.LittleEndian.PutUint32(in[26:], 0) }, nil, ErrInnerMalformed},
		{"inner flags", func(in []byte) { in[25] = 1 }, nil, ErrInnerMalformed},
		{"zero time", func(in []byte) { clear(in[16:24]) }, nil, ErrInnerMalformed},
		{"text not utf-8", func(in []byte) { in[innerHeaderSize] = 0xff }, nil, ErrInnerMalformed},
	}
	body := bytes.Repeat([]byte("z"), 40) // a 256-byte bucket
	for _, tt := range tests {
		env := sealRaw(t, tr.ab, signedInner(t, tr.ab, body, tt.mutate, tt.resign))
		_, err := tr.ba.Open(env)
		if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	// A signature made for carol does not verify at bob: the recipient is
	// bound into the signed bytes, so carol (who learns the plaintext) cannot
	// pass alice's message on to bob as if alice had sent it to him.
	in := signedInner(t, tr.ac, body, nil, nil)
	if _, err := tr.ba.Open(sealRaw(t, tr.ab, in)); !errors.Is(err, ErrSignature) {
		t.Errorf("signature for another recipient: %v", err)
	}
}

// A leaked recipient key lets its holder compute the message key bob uses
// for alice, but not forge alice's signature.
func TestEnvelopeKeyCompromiseImpersonation(t *testing.T) {
	tr := newTrio(t)
	// Mallory knows bob's private key, and so bob's view of the pair.
	// She seals a message "from alice" with the alice->bob keys, which she
	// can derive (X25519 is symmetric), but signs with her own key.
	mallory := fixedIdentity(t, 4)
	forged := *tr.ab
	forged.self = &Identity{ed: mallory.ed, pub: tr.alice.pub}
	env, err := forged.Seal(nil, textMessage(t, "send the money"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.ba.Open(env); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged with the recipient's key: %v, want ErrSignature", err)
	}
}

func TestReplayGuard(t *testing.T) {
	tr := newTrio(t)
	g := NewReplayGuard()
	now := fixedTime
	alice := tr.alice.Public().Fingerprint()
	m := textMessage(t, "once")
	got, err := tr.ba.Open(seal(t, tr.ab, m))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Accept(alice, got.ID, got.SentAt, now); err != nil {
		t.Fatal(err)
	}
	// The same message, sealed again by a retrying sender or replayed.
	again, err := tr.ba.Open(seal(t, tr.ab, m))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Accept(alice, again.ID, again.SentAt, now); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	// The same id from another sender is another message.
	if err := g.Check(tr.carol.Public().Fingerprint(), m.ID, m.SentAt, now); err != nil {
		t.Fatalf("same id, other sender: %v", err)
	}
	// After a restart the saved state still refuses it.
	state, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	g2 := NewReplayGuard()
	if err := g2.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	if err := g2.Accept(alice, m.ID, m.SentAt, now); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay after restart: %v", err)
	}
	if state2, _ := g2.MarshalBinary(); !bytes.Equal(state, state2) {
		t.Fatal("saved state does not round-trip")
	}
	// Age limits.
	old := textMessage(t, "old")
	if err := g.Check(alice, old.ID, now.Add(-ReplayHorizon), now); !errors.Is(err, ErrTooOld) {
		t.Fatalf("at the horizon: %v", err)
	}
	if err := g.Check(alice, old.ID, now.Add(-ReplayHorizon+time.Millisecond), now); err != nil {
		t.Fatalf("just inside the horizon: %v", err)
	}
	if err := g.Check(alice, old.ID, now.Add(MaxClockSkew+time.Millisecond), now); !errors.Is(err, ErrFromFuture) {
		t.Fatalf("from the future: %v", err)
	}
	// Pruning forgets only what the horizon refuses anyway.
	g.Prune(now.Add(ReplayHorizon))
	if g.Len() != 0 {
		t.Fatalf("%d ids left after the horizon", g.Len())
	}
	if err := g.Check(alice, m.ID, m.SentAt, now.Add(ReplayHorizon)); !errors.Is(err, ErrTooOld) {
		t.Fatalf("pruned id: %v", err)
	}
}

// A failed Open changes nothing: the guard's saved state is byte-identical
// before and after a stream of bad frames.
func TestFailedOpenChangesNothing(t *testing.T) {
	tr := newTrio(t)
	g := NewReplayGuard()
	m := textMessage(t, "hello")
	env := seal(t, tr.ab, m)
	before, _ := g.MarshalBinary()
	for i := range env {
		bad := bytes.Clone(env)
		bad[i] ^= 0x80
		if got, err := tr.ba.Open(bad); err == nil {
			t.Fatalf("byte %d flipped: opened %+v", i, got)
		}
	}
	after, _ := g.MarshalBinary()
	if !bytes.Equal(before, after) {
		t.Fatal("failed opens changed the replay state")
	}
	if _, err := tr.ba.Open(env); err != nil {
		t.Fatal(err)
	}
}

func TestReplayGuardEviction(t *testing.T) {
	g := NewReplayGuard()
	var fp Fingerprint
	now := fixedTime
	start := now.Add(-time.Hour)
	for i := 0; i <= MaxReplayPerPeer; i++ {
		var id MessageID
		binary.LittleEndian.PutUint64(id[:], uint64(i))
		if err := g.Accept(fp, id, start.Add(time.Duration(i)*time.Millisecond), now); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.Len(); n > MaxReplayPerPeer {
		t.Fatalf("%d ids remembered, cap %d", n, MaxReplayPerPeer)
	}
	// The forgotten ids are refused by the floor, not accepted again.
	var first MessageID
	if err := g.Check(fp, first, start, now); !errors.Is(err, ErrTooOld) {
		t.Fatalf("evicted id: %v", err)
	}
}

func TestReplayStateCorrupt(t *testing.T) {
	g := NewReplayGuard()
	if err := g.Accept(Fingerprint{1}, MessageID{1}, fixedTime, fixedTime); err != nil {
		t.Fatal(err)
	}
	good, _ := g.MarshalBinary()
	for _, bad := range [][]byte{nil, good[:len(good)-1], append(bytes.Clone(good), 0), []byte(strings.Repeat("x", 40))} {
		if err := NewReplayGuard().UnmarshalBinary(bad); !errors.Is(err, ErrReplayState) {
			t.Errorf("%d bytes: %v", len(bad), err)
		}
	}
}

// A relay-moved notice carries exactly one relay address in canonical
// form; anything else is malformed, at sealing and at opening.
func TestRelayMovedBody(t *testing.T) {
	alice, bob := fixedIdentity(t, 1), fixedIdentity(t, 2)
	ab, _ := alice.Pair(bob.Public())
	ba, _ := bob.Pair(alice.Public())
	good := "ws://127.0.0.1:8443/#YFpyXSpK3-6xop4X7dYhwbdZPujNvESsbEq24vgF0jw"
	env, err := ab.Seal(nil, &Message{SentAt: fixedTime, Type: TypeRelayMoved, Body: []byte(good)}, detRand("moved"))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ba.Open(env); err != nil || string(m.Body) != good {
		t.Fatalf("open: %v", err)
	}
	for _, bad := range []string{"", "ws://127.0.0.1:8443/", good + " ", "http://x/#YFpyXSpK3-6xop4X7dYhwbdZPujNvESsbEq24vgF0jw", good[:len(good)-1]} {
		if _, err := ab.Seal(nil, &Message{SentAt: fixedTime, Type: TypeRelayMoved, Body: []byte(bad)}, detRand("moved")); !errors.Is(err, ErrInnerMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
