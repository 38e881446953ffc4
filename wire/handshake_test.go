package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/flynn/noise"
)

func TestHandshake(t *testing.T) {
	id := fixedIdentity(t, 1)
	r := fixedRelay(t)
	for _, flags := range []byte{0, ConnReceive} {
		cs, res := connect(t, id, r, flags, rand.Reader)
		if !res.Peer.Equal(id.Public()) || res.Peer.ID() != id.Public().ID() {
			t.Fatalf("relay learned %v, want %v", res.Peer, id.Public())
		}
		if res.Receive != (flags&ConnReceive != 0) {
			t.Fatalf("receive = %v for flags %#x", res.Receive, flags)
		}
		// The relay's Welcome opens on the client: the relay holds its key.
		w, _, err := res.Session.Send.AppendCommand(nil, &Command{Op: OpWelcome, Version: 1, ConnFlags: flags, ID: res.Peer.ID()})
		if err != nil {
			t.Fatal(err)
		}
		h, err := cs.Recv.OpenHeader(w)
		if err != nil || !h.ID.IsRelay() || h.Index != 0 {
			t.Fatalf("welcome header %+v, %v", h, err)
		}
		c, err := cs.Recv.OpenCommand(h, w)
		if err != nil || c.Op != OpWelcome || c.ID != id.Public().ID() {
			t.Fatalf("welcome %+v, %v", c, err)
		}
	}
}

func TestHandshakeReplayRefused(t *testing.T) {
	id := fixedIdentity(t, 1)
	r := fixedRelay(t)
	_, hello, err := NewRelayHandshake(r, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth, _, err := ClientHandshake(id, r.Public(), ConnReceive, hello, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A later connection has a fresh relay ephemeral: the recorded Auth
	// no longer decrypts.
	rh2, _, err := NewRelayHandshake(r, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rh2.Finish(auth); !errors.Is(err, ErrHandshakeDecrypt) {
		t.Fatalf("replayed auth: %v, want ErrHandshakeDecrypt", err)
	}
}

func TestHandshakeWrongRelayKey(t *testing.T) {
	id := fixedIdentity(t, 1)
	r := fixedRelay(t)
	other, err := NewRelayIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rh, hello, err := NewRelayHandshake(r, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth, _, err := ClientHandshake(id, other.Public(), 0, hello, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rh.Finish(auth); !errors.Is(err, ErrHandshakeDecrypt) {
		t.Fatalf("auth for another relay key: %v, want ErrHandshakeDecrypt", err)
	}
}

// An impostor relay without the pinned key cannot make a Welcome the
// client accepts.
func TestHandshakeImpostorRelay(t *testing.T) {
	id := fixedIdentity(t, 1)
	real := fixedRelay(t)
	fake, err := NewRelayIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rh, hello, err := NewRelayHandshake(fake, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth, cs, err := ClientHandshake(id, real.Public(), 0, hello, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rh.Finish(auth); err == nil {
		t.Fatal("impostor relay finished the handshake")
	}
	// Whatever the impostor sends does not open as a relay command.
	garbage := make([]byte, 64)
	h, err := cs.Recv.OpenHeader(garbage)
	if err == nil {
		if _, err := cs.Recv.OpenCommand(h, garbage); !errors.Is(err, ErrCommandAuth) {
			t.Fatalf("impostor command: %v", err)
		}
	}
}

func TestHandshakeTamper(t *testing.T) {
	id := fixedIdentity(t, 1)
	r := fixedRelay(t)
	// Flip every bit of Auth in turn: each must fail.
	for bit := 0; bit < AuthSize*8; bit += 9 { // every byte, a different bit of each
		rh, hello, err := NewRelayHandshake(r, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		auth, _, err := ClientHandshake(id, r.Public(), ConnReceive, hello, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		auth[bit/8] ^= 1 << (bit % 8)
		if _, err := rh.Finish(auth); err == nil {
			t.Fatalf("bit %d flipped: accepted", bit)
		}
	}
	rh, hello, _ := NewRelayHandshake(r, rand.Reader)
	auth, _, _ := ClientHandshake(id, r.Public(), 0, hello, rand.Reader)
	for _, bad := range [][]byte{nil, auth[:AuthSize-1], append(bytes.Clone(auth), 0)} {
		if _, err := rh.Finish(bad); !errors.Is(err, ErrHandshakeMalformed) {
			t.Fatalf("%d-byte auth: %v, want ErrHandshakeMalformed", len(bad), err)
		}
	}
	v := bytes.Clone(auth)
	v[1] = 2
	if _, err := rh.Finish(v); !errors.Is(err, ErrHandshakeVersion) {
		t.Fatalf("version 2: %v", err)
	}
	// Client side: malformed Hello.
	for _, bad := range [][]byte{nil, hello[:HelloSize-1], {MsgAuth, 1}} {
		if _, _, err := ClientHandshake(id, r.Public(), 0, bad, rand.Reader); !errors.Is(err, ErrHandshakeMalformed) {
			t.Fatalf("hello %x: %v", bad, err)
		}
	}
	h0 := bytes.Clone(hello)
	h0[1] = 0
	if _, _, err := ClientHandshake(id, r.Public(), 0, h0, rand.Reader); !errors.Is(err, ErrHandshakeVersion) {
		t.Fatalf("hello version 0: %v", err)
	}
	lo := bytes.Clone(hello)
	clear(lo[2:])
	if _, _, err := ClientHandshake(id, r.Public(), 0, lo, rand.Reader); !errors.Is(err, ErrLowOrderKey) {
		t.Fatalf("low-order relay ephemeral: %v", err)
	}
	if _, _, err := ClientHandshake(id, r.Public(), 0x80, hello, rand.Reader); !errors.Is(err, ErrHandshakeFlags) {
		t.Fatalf("unknown flags: %v", err)
	}
}

// forgeAuth builds an Auth message with chosen keys, flags and signature.
func forgeAuth(t *testing.T, r *RelayIdentity, hello []byte, static noise.DHKey, ed []byte, flags byte, sig []byte) []byte {
	t.Helper()
	payload := append(append([]byte{flags}, ed...), sig...)
	auth, _, err := clientAuth(static, r.Public(), hello, payload, rand.Reader, nil)
	if err != nil {
		t.Fatal(err)
	}
	return auth
}

func TestHandshakeHostileKeys(t *testing.T) {
	id := fixedIdentity(t, 1)
	r := fixedRelay(t)
	honest := noise.DHKey{Private: id.x.Bytes(), Public: id.pub.X[:]}
	sign := func(hello []byte, pub PublicIdentity, flags byte) []byte {
		m := authSigned(ProtocolVersion, r.Public(), hello[2:], pub, flags)
		sig, err := id.ed.Sign(nil, m[:], &ed25519.Options{Context: SigContextRelayAuth})
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	identityPoint := make([]byte, KeySize)
	identityPoint[0] = 1
	lowOrder := make([]byte, KeySize) // u = 0
	tests := []struct {
		name string
		auth func(hello []byte) []byte
		want error
	}{
		{"honest", func(h []byte) []byte {
			return forgeAuth(t, r, h, honest, id.pub.Ed[:], ConnReceive, sign(h, id.pub, ConnReceive))
		}, nil},
		{"signature S+L", func(h []byte) []byte {
			return forgeAuth(t, r, h, honest, id.pub.Ed[:], 0, addL(sign(h, id.pub, 0)))
		}, ErrHandshakeSignature},
		{"signature for another relay ephemeral", func(h []byte) []byte {
			other := bytes.Clone(h)
			other[2] ^= 1
			return forgeAuth(t, r, h, honest, id.pub.Ed[:], 0, sign(other, id.pub, 0))
		}, ErrHandshakeSignature},
		{"signature over other flags", func(h []byte) []byte {
			return forgeAuth(t, r, h, honest, id.pub.Ed[:], ConnReceive, sign(h, id.pub, 0))
		}, ErrHandshakeSignature},
		{"unknown flags", func(h []byte) []byte {
			return forgeAuth(t, r, h, honest, id.pub.Ed[:], 0x40, sign(h, id.pub, 0x40))
		}, ErrHandshakeFlags},
		{"small-order ed25519 key", func(h []byte) []byte {
			return forgeAuth(t, r, h, honest, identityPoint, 0, make([]byte, 64))
		}, ErrSmallOrderKey},
		{"low-order x25519 static", func(h []byte) []byte {
			return forgeAuth(t, r, h, noise.DHKey{Private: id.x.Bytes(), Public: lowOrder}, id.pub.Ed[:], 0, make([]byte, 64))
		}, ErrLowOrderKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rh, hello, err := NewRelayHandshake(r, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			_, err = rh.Finish(tt.auth(hello))
			if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Finish: %v, want %v", err, tt.want)
			}
		})
	}
}

// addL returns the signature with ℓ added to S: the same point equation,
// a non-canonical encoding that must be refused.
func addL(sig []byte) []byte {
	l := [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 31: 0x10}
	out := bytes.Clone(sig)
	var carry uint16
	for i := 0; i < 32; i++ {
		v := uint16(out[32+i]) + uint16(l[i]) + carry
		out[32+i], carry = byte(v), v>>8
	}
	return out
}
