package keys_test

import (
	"encoding/base32"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"lukechampine.com/blake3"

	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// Fixed test identities. Alice's seeds are the bytes 0..31 (X25519) and
// 32..63 (Ed25519), the relay's seed is 64..95, Bob's are 96..127 and
// 128..159.
const (
	aliceSeed = 0
	relaySeed = 64
	bobSeed   = 96
)

func seed(start int) (s [wire.KeySize]byte) {
	for i := range s {
		s[i] = byte(start + i)
	}
	return s
}

// identityAt is the identity whose seeds start at byte value start.
func identityAt(t testing.TB, start int) *wire.Identity {
	t.Helper()
	id, err := wire.IdentityFromSeeds(seed(start), seed(start+wire.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// peer is the i-th of many distinct identities (i < 256).
func peer(t testing.TB, i int) *wire.Identity {
	t.Helper()
	x, ed := seed(200), seed(232)
	x[0], ed[0] = byte(i), byte(i)
	id, err := wire.IdentityFromSeeds(x, ed)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func alice(t testing.TB) *wire.Identity { return identityAt(t, aliceSeed) }
func bob(t testing.TB) *wire.Identity   { return identityAt(t, bobSeed) }

// testRelay is the relay address of the fixed relay key.
func testRelay(t testing.TB) string {
	t.Helper()
	r, err := wire.RelayIdentityFromSeed(seed(relaySeed))
	if err != nil {
		t.Fatal(err)
	}
	return wire.RelayAddress{URL: "ws://127.0.0.1:8443/", Key: r.Public()}.String()
}

func aliceFile(t testing.TB) *keys.IdentityFile {
	return &keys.IdentityFile{Identity: alice(t), Name: "alice", Relay: testRelay(t)}
}

func mustInvite(t testing.TB, id *wire.Identity, nick, relay string) keys.Invite {
	t.Helper()
	inv, err := keys.NewInvite(id.Public(), nick, relay)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// rawInvite builds an invite string by hand from raw fields with a correct
// checksum, so that what is tested is the content, not the checksum.
func rawInvite(x, ed []byte, nick, relay string) string {
	var p []byte
	p = append(p, x...)
	p = append(p, ed...)
	p = append(p, byte(len(nick)))
	p = append(p, nick...)
	p = append(p, byte(len(relay)))
	p = append(p, relay...)
	return encodePayload(p)
}

// encodePayload appends the checksum to p and encodes it as an invite.
func encodePayload(p []byte) string {
	var sum [4]byte
	blake3.DeriveKey(sum[:], keys.ContextInviteChecksum, p)
	p = append(p, sum[:]...)
	return keys.InvitePrefix + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(p)
}

// writeFile writes data to a new file in a temporary directory with the
// given mode and returns its path.
func writeFile(t testing.TB, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantErrs checks that err matches every target (none means err == nil).
func wantErrs(t testing.TB, err error, targets ...error) {
	t.Helper()
	if len(targets) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %v", targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("error %q is not %q", err, target)
		}
	}
}
