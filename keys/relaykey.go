package keys

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/wschat/wschat/wire"
)

// The relay key file holds a relay's private X25519 key, in the same
// strict, checked line format as identity files:
//
//	wschat-relay-key v1
//	x25519: <43 base64url chars>     32-byte X25519 seed
//	check: <16 lowercase hex digits> derive_key(ContextRelayKeyFileCheck, every byte before this line)[0:8]
//
// MarshalRelayKey(ParseRelayKey(b)) == b for every accepted b.
const (
	ContextRelayKeyFileCheck = "wschat v1 2026-11 relay key file checksum"
	relayKeyMagic            = "wschat-relay-key"
	relayKeyVersion          = 1
	maxRelayKeyFileSize      = 256
)

// MarshalRelayKey encodes a relay key file.
func MarshalRelayKey(r *wire.RelayIdentity) []byte {
	seed := r.Seed()
	defer clear(seed[:])
	b := fmt.Appendf(nil, "%s v%d\nx25519: ", relayKeyMagic, relayKeyVersion)
	b = base64.RawURLEncoding.AppendEncode(b, seed[:])
	b = append(b, '\n')
	return appendCheckLine(b, ContextRelayKeyFileCheck)
}

// ParseRelayKey decodes a relay key file strictly.
func ParseRelayKey(b []byte) (*wire.RelayIdentity, error) {
	if len(b) > maxRelayKeyFileSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrCorrupt, len(b), maxRelayKeyFileSize)
	}
	lines, err := splitChecked(b, relayKeyMagic, relayKeyVersion, ContextRelayKeyFileCheck, "relay key file")
	if err != nil {
		return nil, err
	}
	v, ok := "", len(lines) == 1
	if ok {
		v, ok = cutPrefix(lines[0], "x25519: ")
	}
	var seed [wire.KeySize]byte
	if !ok || !decodeKey(seed[:], v) {
		return nil, fmt.Errorf("%w: want one x25519 line", ErrCorrupt)
	}
	defer clear(seed[:])
	return wire.RelayIdentityFromSeed(seed)
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) < len(p) || s[:len(p)] != p {
		return "", false
	}
	return s[len(p):], true
}

// LoadOrCreateRelayKey loads the relay key at path, or makes one from rand
// and saves it (0600, atomically) if there is none. created reports which.
func LoadOrCreateRelayKey(path string, rand io.Reader) (r *wire.RelayIdentity, created bool, err error) {
	data, err := readFileLimited(path, maxRelayKeyFileSize, 0o077)
	if err == nil {
		defer clear(data)
		r, err := ParseRelayKey(data)
		if err != nil {
			return nil, false, fmt.Errorf("relay key file %q: %w", path, err)
		}
		return r, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("relay key file: %w", err)
	}
	if r, err = wire.NewRelayIdentity(rand); err != nil {
		return nil, false, err
	}
	b := MarshalRelayKey(r)
	defer clear(b)
	if err := writeFileAtomic(path, b, false); err != nil {
		return nil, false, fmt.Errorf("relay key file: %w", err)
	}
	return r, true, nil
}
