// Wycheproof vectors run through our key-import checks and the primitives the
// wire format builds on. They pin three policies: an X25519 import refuses
// every low-order and every non-canonical public key (stricter than
// Wycheproof's "acceptable") and otherwise agrees with RFC 7748 bit for bit;
// crypto/ed25519.Verify refuses S ≥ ℓ and non-canonical R, while
// CheckEd25519Public accepts honest keys and refuses the small-order and
// mixed-order keys that Verify alone would let through; and the
// XChaCha20-Poly1305 AEAD of envelope.go matches the published vectors.

package wire

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"math/big"
	"slices"
	"strings"
	"testing"

	"filippo.io/edwards25519"
	"github.com/c2sp/wycheproof"
	"golang.org/x/crypto/chacha20poly1305"
)

// wycheHex is a hex string in a vector file.
type wycheHex []byte

func (h *wycheHex) UnmarshalText(b []byte) (err error) {
	*h, err = hex.DecodeString(string(b))
	return err
}

// wycheCase holds the fields of the three schemas used here; JSON names
// match case-insensitively (iv, aad, ct, …).
type wycheCase struct {
	TcID    int      `json:"tcId"`
	Comment string   `json:"comment"`
	Flags   []string `json:"flags"`
	Result  string   `json:"result"` // valid, acceptable or invalid

	Public, Private, Shared wycheHex // xdh_comp
	Msg, Sig                wycheHex // eddsa_verify (Msg also aead)
	Key, IV, AAD, CT, Tag   wycheHex // aead
}

func (c wycheCase) has(flag string) bool { return slices.Contains(c.Flags, flag) }

type wycheGroup struct {
	PublicKey struct{ PK wycheHex } `json:"publicKey"`
	Tests     []wycheCase           `json:"tests"`
}

// loadWycheproof reads one vector file and checks that every test it
// announces was decoded.
func loadWycheproof(t *testing.T, name string) []wycheGroup {
	t.Helper()
	var f struct {
		NumberOfTests int          `json:"numberOfTests"`
		TestGroups    []wycheGroup `json:"testGroups"`
	}
	b, err := fs.ReadFile(wycheproof.TestVectors, name)
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	n := 0
	for _, g := range f.TestGroups {
		n += len(g.Tests)
	}
	if n == 0 || n != f.NumberOfTests {
		t.Fatalf("%s: decoded %d tests, file announces %d", name, n, f.NumberOfTests)
	}
	return f.TestGroups
}

// checkBuckets logs every bucket and fails if an expected one is empty, so
// that no test passes on zero vectors.
func checkBuckets(t *testing.T, got map[string]int, want ...string) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(got)) {
		t.Logf("%4d  %s", got[k], k)
	}
	for _, k := range want {
		if got[k] == 0 {
			t.Errorf("no vector fell in bucket %q", k)
		}
	}
}

func TestWycheproofX25519(t *testing.T) {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	const (
		bNonCanon    = "non-canonical: ErrNonCanonicalKey"
		bNonCanonLow = "non-canonical and low order: ErrNonCanonicalKey"
		bLowOrder    = "low order: ErrLowOrderKey"
		bZeroShared  = "low order: ErrZeroSharedSecret or ErrInvalidKey from x25519"
		bValid       = "valid: shared secret matches"
		bAcceptable  = "acceptable (twist): shared secret matches"
	)
	buckets := map[string]int{}
	for _, g := range loadWycheproof(t, "x25519_test.json") {
		for _, c := range g.Tests {
			be := slices.Clone(c.Public) // all are 32 bytes; CheckX25519Public refuses others
			slices.Reverse(be)
			u := new(big.Int).SetBytes(be)
			nonCanon := c.has("NonCanonicalPublic") || c.Public[31]&0x80 != 0 || u.Cmp(p) >= 0
			lowOrder := c.has("LowOrderPublic") || c.has("ZeroSharedSecret")

			priv, err := ecdh.X25519().NewPrivateKey(c.Private)
			if err != nil {
				t.Fatalf("tc %d: private key: %v", c.TcID, err)
			}
			var shared []byte
			var dhErr error
			checkErr := CheckX25519Public(c.Public)
			if checkErr == nil {
				shared, dhErr = x25519(priv, c.Public)
			}
			what := func() string { return c.Result + " " + c.Comment + " " + hex.EncodeToString(c.Public) }
			switch {
			case nonCanon:
				// Canonicity is checked first, so a low-order point given
				// non-canonically is refused as non-canonical.
				if !errors.Is(checkErr, ErrNonCanonicalKey) {
					t.Errorf("tc %d (%s): want ErrNonCanonicalKey, got %v", c.TcID, what(), checkErr)
				} else if lowOrder {
					buckets[bNonCanonLow]++
				} else {
					buckets[bNonCanon]++
				}
			case lowOrder:
				switch {
				case errors.Is(checkErr, ErrLowOrderKey):
					buckets[bLowOrder]++
				case checkErr == nil && (errors.Is(dhErr, ErrZeroSharedSecret) || errors.Is(dhErr, ErrInvalidKey)):
					buckets[bZeroShared]++
				default:
					t.Errorf("tc %d (%s): low-order key not refused: check %v, x25519 %v", c.TcID, what(), checkErr, dhErr)
				}
			case checkErr != nil || dhErr != nil:
				t.Errorf("tc %d (%s): refused: check %v, x25519 %v", c.TcID, what(), checkErr, dhErr)
			case !bytes.Equal(shared, c.Shared):
				t.Errorf("tc %d (%s): shared secret %x, want %x", c.TcID, what(), shared, c.Shared)
			case c.Result == "valid":
				buckets[bValid]++
			default:
				buckets[bAcceptable]++
			}
		}
	}
	// bZeroShared is expected to stay empty: CheckX25519Public catches every
	// low-order key before x25519 runs.
	checkBuckets(t, buckets, bNonCanon, bNonCanonLow, bLowOrder, bValid, bAcceptable)
}

func TestWycheproofEd25519(t *testing.T) {
	buckets := map[string]int{}
	for _, g := range loadWycheproof(t, "ed25519_test.json") {
		pk := g.PublicKey.PK
		if err := CheckEd25519Public(pk); err != nil {
			t.Errorf("public key %x: %v", pk, err)
			continue
		}
		buckets["public keys accepted by CheckEd25519Public"]++
		for _, c := range g.Tests {
			want := c.Result == "valid"
			if got := ed25519.Verify(ed25519.PublicKey(pk), c.Msg, c.Sig); got != want {
				t.Errorf("tc %d (%s %v %s): Verify = %v", c.TcID, c.Result, c.Flags, c.Comment, got)
				continue
			}
			switch {
			case want:
				buckets["valid: verified"]++
			case c.has("SignatureMalleability") || c.has("InvalidKtv"):
				buckets["invalid, S ≥ ℓ or malleated: refused"]++
			case c.has("InvalidEncoding"):
				buckets["invalid, bad encoding of R or S: refused"]++
			default:
				buckets["invalid, other: refused"]++
			}
		}
	}
	checkBuckets(t, buckets, "public keys accepted by CheckEd25519Public", "valid: verified",
		"invalid, S ≥ ℓ or malleated: refused", "invalid, bad encoding of R or S: refused", "invalid, other: refused")
}

// smallOrderPoints returns the eight points of the torsion subgroup: the
// multiples of a point of order 8 whose encoding is taken from the literature
// ("Taming the many EdDSAs"), checked to be eight distinct points.
func smallOrderPoints(t *testing.T) []*edwards25519.Point {
	t.Helper()
	b, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	t8, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	pts := []*edwards25519.Point{edwards25519.NewIdentityPoint()}
	seen := map[string]bool{hex.EncodeToString(pts[0].Bytes()): true}
	for i := 1; i < 8; i++ {
		pts = append(pts, new(edwards25519.Point).Add(pts[i-1], t8))
		seen[hex.EncodeToString(pts[i].Bytes())] = true
	}
	if new(edwards25519.Point).Add(pts[7], t8).Equal(edwards25519.NewIdentityPoint()) != 1 || len(seen) != 8 {
		t.Fatalf("%x is not a point of order 8", b)
	}
	// The identity and (0, -1), as the literature spells them.
	if !seen["01"+strings.Repeat("00", 31)] || !seen["ec"+strings.Repeat("ff", 30)+"7f"] {
		t.Fatal("derived torsion points miss the identity or (0, -1)")
	}
	return pts
}

func TestSmallOrderEd25519Keys(t *testing.T) {
	// The identity as a key accepts one fixed signature (R = identity,
	// S = 0) for every message: [S]B = R + [k]A holds whatever k is.
	identity := make([]byte, KeySize)
	identity[0] = 1
	sig := make([]byte, ed25519.SignatureSize)
	sig[0] = 1
	for _, msg := range []string{"pay alice 10", "pay mallory 1000"} {
		if !ed25519.Verify(identity, []byte(msg), sig) {
			t.Errorf("crypto/ed25519 no longer accepts the identity-key forgery for %q", msg)
		}
	}
	if err := CheckEd25519Public(identity); !errors.Is(err, ErrSmallOrderKey) {
		t.Errorf("identity key: got %v, want ErrSmallOrderKey", err)
	}

	torsion := smallOrderPoints(t)
	for _, p := range torsion {
		if err := CheckEd25519Public(p.Bytes()); !errors.Is(err, ErrSmallOrderKey) {
			t.Errorf("small-order key %x: got %v, want ErrSmallOrderKey", p.Bytes(), err)
		}
	}

	// Honest key plus a torsion component: verifies most signatures of the
	// honest key's owner yet is not the key that owner published.
	seed := bytes.Repeat([]byte{0x5a}, ed25519.SeedSize)
	honest := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	if err := CheckEd25519Public(honest); err != nil {
		t.Fatalf("honest key %x: %v", []byte(honest), err)
	}
	a, err := new(edwards25519.Point).SetBytes(honest)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range torsion[1:] {
		mixed := new(edwards25519.Point).Add(a, p).Bytes()
		if err := CheckEd25519Public(mixed); !errors.Is(err, ErrSmallOrderKey) {
			t.Errorf("mixed-order key %x: got %v, want ErrSmallOrderKey", mixed, err)
		}
	}

	// Non-canonical spellings of small-order points must not slip past as
	// different bytes.
	for _, s := range []string{
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // identity, y = p+1
		"0100000000000000000000000000000000000000000000000000000000000080", // identity, x = -0
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // (0, -1), x = -0
	} {
		b, _ := hex.DecodeString(s)
		if err := CheckEd25519Public(b); !errors.Is(err, ErrNonCanonicalKey) && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("non-canonical small-order key %s: got %v", s, err)
		}
	}
}

func TestWycheproofXChaCha20Poly1305(t *testing.T) {
	buckets := map[string]int{}
	for _, g := range loadWycheproof(t, "xchacha20_poly1305_test.json") {
		for _, c := range g.Tests {
			// NewX refuses other key sizes and Seal/Open panic on other
			// nonce sizes; the wire format fixes both.
			if len(c.Key) != chacha20poly1305.KeySize || len(c.IV) != chacha20poly1305.NonceSizeX {
				if c.Result == "valid" {
					t.Errorf("tc %d: valid vector with key %d, nonce %d bytes", c.TcID, len(c.Key), len(c.IV))
				}
				buckets["invalid, wrong key or nonce size: refused by size"]++
				continue
			}
			aead, err := chacha20poly1305.NewX(c.Key)
			if err != nil {
				t.Fatalf("tc %d: %v", c.TcID, err)
			}
			sealed := slices.Concat(c.CT, c.Tag)
			pt, err := aead.Open(nil, c.IV, sealed, c.AAD)
			switch {
			case c.Result != "valid" && err == nil:
				t.Errorf("tc %d (%v %s): invalid ciphertext opened", c.TcID, c.Flags, c.Comment)
			case c.Result != "valid":
				buckets["invalid: Open refused"]++
			case err != nil || !bytes.Equal(pt, c.Msg):
				t.Errorf("tc %d (%v): Open = %x, %v; want %x", c.TcID, c.Flags, pt, err, c.Msg)
			case !bytes.Equal(aead.Seal(nil, c.IV, c.Msg, c.AAD), sealed):
				t.Errorf("tc %d (%v): Seal differs from %x", c.TcID, c.Flags, sealed)
			default:
				buckets["valid: Seal and Open match"]++
			}
		}
	}
	checkBuckets(t, buckets, "valid: Seal and Open match", "invalid: Open refused",
		"invalid, wrong key or nonce size: refused by size")
}
