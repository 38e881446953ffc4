package wire

import (
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// MaxRelayAddressLen bounds a relay address (it travels inside invites).
const MaxRelayAddressLen = 255

// ErrRelayAddress is wrapped by every ParseRelayAddress failure.
var ErrRelayAddress = errors.New("invalid relay address")

// RelayKey is the relay's long-term X25519 public key, which clients pin.
type RelayKey [KeySize]byte

// String is the unpadded base64url form used in relay addresses.
func (k RelayKey) String() string { return base64.RawURLEncoding.EncodeToString(k[:]) }

// RelayAddress is the one string a relay prints and clients are given: the
// WebSocket URL with the relay's key as its fragment,
//
//	ws://127.0.0.1:8443/#<43 base64url characters>
//
// The fragment is never sent to the server; the client uses it to pin the
// key before it sends anything.
type RelayAddress struct {
	URL string   // ws:// or wss:// URL without the fragment
	Key RelayKey // pinned relay key
}

// String is the canonical form; ParseRelayAddress(a.String()) == a.
func (a RelayAddress) String() string { return a.URL + "#" + a.Key.String() }

// ParseRelayAddress parses and validates a relay address. It accepts only
// the canonical form that String writes.
func ParseRelayAddress(s string) (RelayAddress, error) {
	var a RelayAddress
	if len(s) > MaxRelayAddressLen {
		return a, fmt.Errorf("%w: longer than %d bytes", ErrRelayAddress, MaxRelayAddressLen)
	}
	base, frag, ok := strings.Cut(s, "#")
	if !ok || frag == "" {
		return a, fmt.Errorf("%w %q: no relay key after '#'", ErrRelayAddress, s)
	}
	// The decoder skips '\r' and '\n'; only the exact encoding is accepted.
	key, err := base64.RawURLEncoding.Strict().DecodeString(frag)
	if err != nil || len(key) != KeySize || base64.RawURLEncoding.EncodeToString(key) != frag {
		return a, fmt.Errorf("%w %q: relay key is not 43 base64url characters", ErrRelayAddress, s)
	}
	if err := CheckX25519Public(key); err != nil {
		return a, fmt.Errorf("%w %q: relay key: %w", ErrRelayAddress, s, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return a, fmt.Errorf("%w %q: %v", ErrRelayAddress, s, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return a, fmt.Errorf("%w %q: scheme must be ws or wss", ErrRelayAddress, s)
	}
	if u.Host == "" || u.User != nil || u.Opaque != "" {
		return a, fmt.Errorf("%w %q: want ws[s]://host[:port][/path]", ErrRelayAddress, s)
	}
	for i := 0; i < len(base); i++ {
		if c := base[i]; c <= ' ' || c >= 0x7f {
			return a, fmt.Errorf("%w %q: not printable ASCII", ErrRelayAddress, s)
		}
	}
	a.URL = base
	copy(a.Key[:], key)
	return a, nil
}

// RelayIdentity is the relay's private key. Static after construction.
type RelayIdentity struct {
	priv *ecdh.PrivateKey
	pub  RelayKey
}

// NewRelayIdentity makes a relay key from 32 bytes of rand.
func NewRelayIdentity(rand io.Reader) (*RelayIdentity, error) {
	var seed [KeySize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	return RelayIdentityFromSeed(seed)
}

// RelayIdentityFromSeed rebuilds a relay key from the seed Seed returns.
func RelayIdentityFromSeed(seed [KeySize]byte) (*RelayIdentity, error) {
	priv, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		return nil, err
	}
	r := &RelayIdentity{priv: priv}
	copy(r.pub[:], priv.PublicKey().Bytes())
	if err := CheckX25519Public(r.pub[:]); err != nil {
		return nil, err
	}
	return r, nil
}

// Seed returns the private seed, for the relay's key file. Never log it.
func (r *RelayIdentity) Seed() [KeySize]byte {
	var s [KeySize]byte
	copy(s[:], r.priv.Bytes())
	return s
}

// Public returns the key clients pin.
func (r *RelayIdentity) Public() RelayKey { return r.pub }
