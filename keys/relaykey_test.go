package keys_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/wschat/wschat/keys"
)

func TestRelayKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay", "relay.key")
	r, created, err := keys.LoadOrCreateRelayKey(path, rand.Reader)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	r2, created, err := keys.LoadOrCreateRelayKey(path, rand.Reader)
	if err != nil || created || r2.Public() != r.Public() {
		t.Fatalf("reload: created=%v %v", created, err)
	}
	data, _ := os.ReadFile(path)
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 1
		if _, err := keys.ParseRelayKey(bad); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	os.Chmod(path, 0o644)
	if _, _, err := keys.LoadOrCreateRelayKey(path, rand.Reader); !errors.Is(err, keys.ErrInsecurePermissions) {
		t.Fatalf("world-readable key: %v", err)
	}
}

func FuzzParseRelayKey(f *testing.F) {
	path := filepath.Join(f.TempDir(), "relay.key")
	keys.LoadOrCreateRelayKey(path, rand.Reader)
	data, _ := os.ReadFile(path)
	f.Add(data)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := keys.ParseRelayKey(b)
		if err != nil {
			return
		}
		if out := keys.MarshalRelayKey(r); !bytes.Equal(out, b) {
			t.Fatalf("relay key re-encodes differently")
		}
	})
}
