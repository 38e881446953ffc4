package wire

import (
	"io"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20"
	"lukechampine.com/blake3"
)

// detRand is a deterministic byte stream for vectors and tests: the
// ChaCha20 keystream under a key derived from label. Never use outside tests.
func detRand(label string) io.Reader {
	k := blake3.Sum256([]byte("wschat test randomness: " + label))
	c, err := chacha20.NewUnauthenticatedCipher(k[:], make([]byte, chacha20.NonceSize))
	if err != nil {
		panic(err)
	}
	return &streamReader{c: c}
}

type streamReader struct{ c *chacha20.Cipher }

func (r *streamReader) Read(p []byte) (int, error) {
	clear(p)
	r.c.XORKeyStream(p, p)
	return len(p), nil
}

func seeds(a, b byte) (x, ed [KeySize]byte) {
	for i := range x {
		x[i] = a + byte(i)
		ed[i] = b + byte(i)
	}
	return x, ed
}

// fixedIdentity returns a fixed identity; n selects which.
func fixedIdentity(t testing.TB, n byte) *Identity {
	t.Helper()
	x, ed := seeds(n*64, n*64+32)
	id, err := IdentityFromSeeds(x, ed)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func fixedRelay(t testing.TB) *RelayIdentity {
	t.Helper()
	var s [KeySize]byte
	for i := range s {
		s[i] = 0xa0 + byte(i)
	}
	r, err := RelayIdentityFromSeed(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fixedTime is the clock of the vectors: 2026-11-23 12:00:00 UTC.
var fixedTime = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// connect runs a handshake in memory and returns both sides.
func connect(t testing.TB, id *Identity, r *RelayIdentity, flags byte, rnd io.Reader) (*Session, *AuthResult) {
	t.Helper()
	rh, hello, err := NewRelayHandshake(r, rnd)
	if err != nil {
		t.Fatal(err)
	}
	auth, cs, err := ClientHandshake(id, r.Public(), flags, hello, rnd)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rh.Finish(auth)
	if err != nil {
		t.Fatal(err)
	}
	return cs, res
}
