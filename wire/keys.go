package wire

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"filippo.io/edwards25519"
	"lukechampine.com/blake3"
)

// Key-validation errors. Every import of a public key (invite, contact,
// handshake) goes through CheckX25519Public or CheckEd25519Public, and these
// are what they return, wrapped with context.
var (
	// ErrKeySize: a key is not exactly 32 bytes.
	ErrKeySize = errors.New("key is not 32 bytes")
	// ErrNonCanonicalKey: the encoding is not the canonical one (an
	// X25519 u-coordinate ≥ 2^255-19 or with the top bit set, or an Ed25519
	// point that does not re-encode to the same bytes).
	ErrNonCanonicalKey = errors.New("key encoding is not canonical")
	// ErrLowOrderKey: an X25519 public key of low order; a DH with it gives
	// an all-zero (or attacker-known) shared secret.
	ErrLowOrderKey = errors.New("x25519 key has low order")
	// ErrSmallOrderKey: an Ed25519 public key that is not a point of the
	// prime-order subgroup (small order, or with a torsion component); the
	// identity point would accept one fixed signature for every message.
	ErrSmallOrderKey = errors.New("ed25519 key is not in the prime-order subgroup")
	// ErrInvalidKey: the bytes are not a point on the curve.
	ErrInvalidKey = errors.New("key is not a valid curve point")
	// ErrZeroSharedSecret: a Diffie-Hellman result was all zero.
	ErrZeroSharedSecret = errors.New("x25519 shared secret is all zero")
)

// KeySize is the size of every public and private key and of a
// fingerprint.
const KeySize = 32

// RoutingIDSize is the size of a routing id.
const RoutingIDSize = 8

// RoutingID addresses a client at the relay: the first 8 bytes of the
// identity's fingerprint. The all-zero id addresses the relay itself and is
// never the id of an identity (NewPublicIdentity refuses it).
type RoutingID [RoutingIDSize]byte

// RelayID is the all-zero routing id: frames to it are commands to the relay,
// frames from it are the relay's answers.
var RelayID RoutingID

// IsRelay reports whether id is the relay's own (all-zero) id.
func (id RoutingID) IsRelay() bool { return id == RelayID }

// UnnamedID is the all-ones routing id. A relay puts it in the header of
// a frame whose sender it did not keep: a frame it had stored (relays keep
// no sender id at rest). The recipient finds the sender by the envelope's
// pair tag (Pair.From). It is never the id of an identity.
var UnnamedID = RoutingID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// IsUnnamed reports whether id is UnnamedID.
func (id RoutingID) IsUnnamed() bool { return id == UnnamedID }

// String is the lowercase hex form used in logs and in listen --json.
func (id RoutingID) String() string { return hex.EncodeToString(id[:]) }

// ParseRoutingID parses the 16-hex-digit form written by String.
func ParseRoutingID(s string) (RoutingID, error) {
	var id RoutingID
	if len(s) != 2*RoutingIDSize {
		return id, fmt.Errorf("routing id %q: want %d hex digits", s, 2*RoutingIDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("routing id %q: %w", s, err)
	}
	return id, nil
}

// Fingerprint is the 32-byte hash that names an identity: both public keys
// under a versioned BLAKE3 context. Message keys, signatures and safety
// numbers bind fingerprints, never the 8-byte routing id alone.
type Fingerprint [KeySize]byte

// Short is the first 8 hex digits, for logs.
func (f Fingerprint) Short() string { return hex.EncodeToString(f[:4]) }

// PublicIdentity is the public half of an identity: its X25519 key (key
// agreement) and its Ed25519 key (signatures). Values made by
// NewPublicIdentity have passed every import check.
type PublicIdentity struct {
	X  [KeySize]byte // X25519 public key
	Ed [KeySize]byte // Ed25519 public key

	fp Fingerprint // static after construction
}

// NewPublicIdentity validates both keys and returns the identity they form.
// It is the single door through which foreign keys enter the program.
func NewPublicIdentity(x, ed []byte) (PublicIdentity, error) {
	if err := CheckX25519Public(x); err != nil {
		return PublicIdentity{}, err
	}
	if err := CheckEd25519Public(ed); err != nil {
		return PublicIdentity{}, err
	}
	return derivedPublicIdentity(x, ed)
}

// derivedPublicIdentity is NewPublicIdentity for keys derived from seeds
// here, which are valid by construction (a clamped X25519 scalar times
// the base point; an Ed25519 scalar times the base point, of prime
// order): it skips the checks that cost a scalar multiplication.
func derivedPublicIdentity(x, ed []byte) (PublicIdentity, error) {
	var p PublicIdentity
	copy(p.X[:], x)
	copy(p.Ed[:], ed)
	p.fp = fingerprint(p.X[:], p.Ed[:])
	if p.ID().IsRelay() || p.ID().IsUnnamed() {
		// 2^-63 by chance; refuse rather than alias the relay or a stored
		// frame's unnamed sender.
		return PublicIdentity{}, fmt.Errorf("identity %s: routing id is reserved", p.fp.Short())
	}
	return p, nil
}

func fingerprint(x, ed []byte) Fingerprint {
	var in [2 * KeySize]byte
	copy(in[:], x)
	copy(in[KeySize:], ed)
	var fp Fingerprint
	blake3.DeriveKey(fp[:], ContextFingerprint, in[:])
	return fp
}

// Fingerprint names the identity.
func (p PublicIdentity) Fingerprint() Fingerprint { return p.fp }

// ID is the routing id: the first 8 bytes of the fingerprint.
func (p PublicIdentity) ID() RoutingID {
	var id RoutingID
	copy(id[:], p.fp[:RoutingIDSize])
	return id
}

// IsZero reports whether p is the zero value (not a valid identity).
func (p PublicIdentity) IsZero() bool { return p.fp == Fingerprint{} }

// Equal compares both keys in constant time.
func (p PublicIdentity) Equal(q PublicIdentity) bool {
	return subtle.ConstantTimeCompare(p.X[:], q.X[:])&subtle.ConstantTimeCompare(p.Ed[:], q.Ed[:]) == 1
}

// String is the short form for logs: the routing id.
func (p PublicIdentity) String() string { return p.ID().String() }

// p25519 is 2^255-19, little-endian.
var p25519 = [KeySize]byte{
	0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
}

// lowOrderKeys are the canonical u-coordinates of the points of order
// dividing 8, on the curve and on its twist: 0 (order 2), 1 and p-1 (order
// 4, one on each), and the two of order 8. For any other canonical u, X25519
// with a clamped scalar (a multiple of the cofactor 8, and not of the large
// prime orders) is not zero; for these it is. Comparing with the list gives
// the answer of that scalar multiplication (tests check both agree) at the
// cost of five comparisons instead of some 60 µs. The list is libsodium's
// (has_small_order), without the non-canonical encodings refused before.
var lowOrderKeys = [5][KeySize]byte{
	{},
	{1},
	{
		0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
	},
	{
		0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
		0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57,
	},
	{
		0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	},
}

// CheckX25519Public refuses a public key that is not 32 bytes, not
// canonical, or of low order.
func CheckX25519Public(b []byte) error {
	if len(b) != KeySize {
		return ErrKeySize
	}
	if b[31]&0x80 != 0 || !lessLE(b, p25519[:]) {
		return ErrNonCanonicalKey
	}
	if isLowOrderX25519(b) {
		return ErrLowOrderKey
	}
	return nil
}

// isLowOrderX25519 reports whether the canonical u-coordinate b is one of
// lowOrderKeys.
func isLowOrderX25519(b []byte) bool {
	low := 0
	for i := range lowOrderKeys {
		low |= subtle.ConstantTimeCompare(b, lowOrderKeys[i][:])
	}
	return low == 1
}

// lessLE reports a < b for little-endian byte strings of equal length.
func lessLE(a, b []byte) bool {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// orderMinusOne is ℓ-1, the group order minus one, little-endian.
var orderMinusOne = func() *edwards25519.Scalar {
	b := [KeySize]byte{
		0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
	}
	s, err := edwards25519.NewScalar().SetCanonicalBytes(b[:])
	if err != nil {
		panic(err)
	}
	return s
}()

// CheckEd25519Public refuses a public key that is not 32 bytes, not a
// canonical point encoding, or not a point of the prime-order subgroup (which
// covers the eight small-order points and every mixed-order point). Honest
// key generation only makes prime-order points.
func CheckEd25519Public(b []byte) error {
	if len(b) != KeySize {
		return ErrKeySize
	}
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return ErrInvalidKey
	}
	if subtle.ConstantTimeCompare(p.Bytes(), b) != 1 {
		return ErrNonCanonicalKey
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return ErrSmallOrderKey
	}
	// [ℓ]P = [ℓ-1]P + P is the identity exactly for prime-order points.
	// A public key is no secret: variable time is fine, and a third
	// quicker (a relay checks one per connection).
	q := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(orderMinusOne, p, edwards25519.NewScalar())
	q.Add(q, p)
	if q.Equal(edwards25519.NewIdentityPoint()) != 1 {
		return ErrSmallOrderKey
	}
	return nil
}

// Identity is a private identity: an X25519 key and an Ed25519 key, made
// from two independent 32-byte seeds. Static after construction; safe for
// concurrent use.
type Identity struct {
	xSeed  [KeySize]byte
	edSeed [KeySize]byte
	x      *ecdh.PrivateKey
	ed     ed25519.PrivateKey
	pub    PublicIdentity
}

// NewIdentity makes an identity from 64 bytes of rand (crypto/rand.Reader in
// production; a fixed stream only in tests and vectors).
func NewIdentity(rand io.Reader) (*Identity, error) {
	var seeds [2 * KeySize]byte
	if _, err := io.ReadFull(rand, seeds[:]); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	var xs, es [KeySize]byte
	copy(xs[:], seeds[:KeySize])
	copy(es[:], seeds[KeySize:])
	return IdentityFromSeeds(xs, es)
}

// IdentityFromSeeds rebuilds an identity from the seeds Seeds returns (the
// X25519 private scalar before clamping, and the RFC 8032 Ed25519 seed).
func IdentityFromSeeds(xSeed, edSeed [KeySize]byte) (*Identity, error) {
	x, err := ecdh.X25519().NewPrivateKey(xSeed[:])
	if err != nil {
		return nil, fmt.Errorf("x25519 seed: %w", err)
	}
	ed := ed25519.NewKeyFromSeed(edSeed[:])
	pub, err := derivedPublicIdentity(x.PublicKey().Bytes(), ed.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return &Identity{xSeed: xSeed, edSeed: edSeed, x: x, ed: ed, pub: pub}, nil
}

// Seeds returns the two secret seeds, for writing the identity file. Never
// log them.
func (id *Identity) Seeds() (xSeed, edSeed [KeySize]byte) { return id.xSeed, id.edSeed }

// Public returns the public half.
func (id *Identity) Public() PublicIdentity { return id.pub }

// dh computes X25519 with a peer's (validated) public key and refuses an
// all-zero result.
func (id *Identity) dh(peerX []byte) ([]byte, error) {
	return x25519(id.x, peerX)
}

func x25519(priv *ecdh.PrivateKey, peerX []byte) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(peerX)
	if err != nil {
		return nil, ErrInvalidKey
	}
	s, err := priv.ECDH(pub)
	if err != nil {
		// crypto/ecdh refuses an all-zero output itself.
		return nil, ErrZeroSharedSecret
	}
	var zero [KeySize]byte
	if subtle.ConstantTimeCompare(s, zero[:]) == 1 {
		return nil, ErrZeroSharedSecret
	}
	return s, nil
}
