package wire

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// Fuzz targets for every parser in the package. Each checks that hostile
// input never panics and that whatever is accepted re-encodes to the same
// bytes (or, for authenticated formats, is exactly what was sealed).

func FuzzParseCommand(f *testing.F) {
	for _, c := range []*Command{
		{Op: OpWelcome, Version: 1, ID: RoutingID{1}},
		{Op: OpCustody, Custody: []CustodyEntry{{Index: 3, Status: StatusRefused, Reason: ReasonTooLarge}}},
		{Op: OpAck, Acks: []uint64{1, 2}},
		{Op: OpRestarting, RetryAfter: 1, TryFor: 2},
	} {
		b, _ := c.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommand(b)
		if err != nil {
			return
		}
		out, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("%x parsed but re-encodes as %x (%v)", b, out, err)
		}
	})
}

// FuzzFrame feeds arbitrary frames to a relay's receive side, as a hostile
// client would after the handshake.
func FuzzFrame(f *testing.F) {
	id := fixedIdentity(f, 1)
	r := fixedRelay(f)
	cs, _ := connect(f, id, r, 0, detRand("fuzz frame"))
	ping, _, _ := cs.Send.AppendCommand(nil, &Command{Op: OpPing, Token: 1})
	f.Add(bytes.Clone(ping)) // the corpus entry is unblinded in place
	data := make([]byte, FrameHeaderSize+MinEnvelopeSize)
	cs.Send.SealHeader(data, RoutingID{9}, 0)
	f.Add(data)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, res := connect(t, id, r, 0, detRand("fuzz frame"))
		orig := bytes.Clone(b) // OpenHeader unblinds in place
		h, err := res.Session.Recv.OpenHeader(b)
		if err != nil || !h.ID.IsRelay() {
			return
		}
		c, err := res.Session.Recv.OpenCommand(h, b)
		if err == nil && !bytes.Equal(orig, ping) {
			t.Fatalf("a frame other than the genuine one opened as %+v", c)
		}
	})
}

// FuzzRelayHandshake feeds arbitrary Auth messages to the relay.
func FuzzRelayHandshake(f *testing.F) {
	id := fixedIdentity(f, 1)
	r := fixedRelay(f)
	_, hello, err := NewRelayHandshake(r, detRand("fuzz relay"))
	if err != nil {
		f.Fatal(err)
	}
	genuine, _, err := ClientHandshake(id, r.Public(), ConnReceive, hello, detRand("fuzz client"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(genuine)
	f.Add(genuine[:100])
	f.Fuzz(func(t *testing.T, auth []byte) {
		rh, _, err := NewRelayHandshake(r, detRand("fuzz relay"))
		if err != nil {
			t.Fatal(err)
		}
		res, err := rh.Finish(auth)
		if err == nil && !bytes.Equal(auth, genuine) {
			t.Fatalf("forged auth accepted for %v", res.Peer)
		}
	})
}

// FuzzClientHandshake feeds arbitrary Hello messages to a client.
func FuzzClientHandshake(f *testing.F) {
	id := fixedIdentity(f, 1)
	r := fixedRelay(f)
	_, hello, _ := NewRelayHandshake(r, rand.Reader)
	f.Add(hello)
	f.Fuzz(func(t *testing.T, hello []byte) {
		ClientHandshake(id, r.Public(), 0, hello, rand.Reader)
	})
}

// FuzzOpenEnvelope: nothing but the exact envelope that was sealed opens.
func FuzzOpenEnvelope(f *testing.F) {
	tr := newTrio(f)
	m := &Message{ID: MessageID{7}, SentAt: fixedTime, Type: TypeText, Body: []byte("fuzz me")}
	genuine, err := tr.ab.Seal(nil, m, detRand("fuzz envelope"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(genuine)
	f.Add(genuine[:MinEnvelopeSize-1])
	f.Fuzz(func(t *testing.T, env []byte) {
		got, err := tr.ba.Open(env)
		if err != nil {
			return
		}
		if !bytes.Equal(env, genuine) {
			t.Fatalf("an altered envelope opened: %+v", got)
		}
	})
}

// FuzzInner: the inner-plaintext parser (reached only after the AEAD and
// the signature) is strict and canonical.
func FuzzInner(f *testing.F) {
	in := make([]byte, MinPadded)
	putInner(in, &Message{ID: MessageID{1}, SentAt: fixedTime, Type: TypeText, Body: []byte("hi")})
	f.Add(in)
	f.Fuzz(func(t *testing.T, in []byte) {
		l := len(in)
		if l < MinPadded || l > MaxPadded || l&(l-1) != 0 {
			return
		}
		m, err := parseInner(in)
		if err != nil {
			return
		}
		out := make([]byte, l)
		putInner(out, m)
		if !bytes.Equal(out[:l-SignatureSize], in[:l-SignatureSize]) {
			t.Fatalf("inner re-encodes differently")
		}
	})
}

func FuzzReplayState(f *testing.F) {
	g := NewReplayGuard()
	g.Accept(Fingerprint{1}, MessageID{1}, fixedTime, fixedTime)
	g.Accept(Fingerprint{1}, MessageID{2}, fixedTime, fixedTime)
	g.Accept(Fingerprint{2}, MessageID{1}, fixedTime, fixedTime)
	b, _ := g.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		g := NewReplayGuard()
		if err := g.UnmarshalBinary(b); err != nil {
			return
		}
		out, _ := g.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatalf("replay state re-encodes differently")
		}
	})
}

func FuzzParseRelayAddress(f *testing.F) {
	r := fixedRelay(f)
	f.Add("ws://127.0.0.1:8443/#" + r.Public().String())
	f.Add("wss://relay.example/ws?x=1#" + r.Public().String())
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseRelayAddress(s)
		if err != nil {
			return
		}
		if a.String() != s {
			t.Fatalf("%q parses but prints as %q", s, a.String())
		}
	})
}
