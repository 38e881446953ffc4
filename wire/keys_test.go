package wire

import (
	"crypto/rand"
	"math/big"
	"slices"
	"testing"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/curve25519"
)

// The list is the u-coordinates of the curve's 8-torsion (found here from
// Edwards points, as [ℓ]P of a random point P), with 1 and p-1, one of
// which is the twist's point of order 4.
func TestLowOrderListIsTheTorsion(t *testing.T) {
	var gen *edwards25519.Point
	for gen == nil {
		var b [KeySize]byte
		rand.Read(b[:])
		p, err := new(edwards25519.Point).SetBytes(b[:])
		if err != nil {
			continue
		}
		q := new(edwards25519.Point).ScalarMult(orderMinusOne, p)
		q.Add(q, p) // [ℓ]P: in the torsion subgroup
		q4 := new(edwards25519.Point).Add(q, q)
		q4.Add(q4, q4)
		if q4.Equal(edwards25519.NewIdentityPoint()) == 0 {
			gen = q // [4]Q is not the identity: Q has order 8
		}
	}
	want := map[[KeySize]byte]bool{{1}: true, lowOrderKeys[4]: true} // 1, p-1
	t8 := edwards25519.NewIdentityPoint()
	for range 8 {
		t8.Add(t8, gen)
		if t8.Equal(edwards25519.NewIdentityPoint()) == 1 {
			continue // no u-coordinate
		}
		want[[KeySize]byte(t8.BytesMontgomery())] = true
	}
	var got [][KeySize]byte
	for k := range want {
		got = append(got, k)
	}
	if len(got) != len(lowOrderKeys) {
		t.Fatalf("%d u-coordinates of low order, list has %d", len(got), len(lowOrderKeys))
	}
	for _, u := range got {
		if !slices.Contains(lowOrderKeys[:], u) {
			t.Fatalf("u = %x of low order is not listed", u)
		}
	}
}

// The low-order list gives the answer of the scalar multiplication it
// replaces: X25519 with a clamped scalar is all zero exactly for the
// listed u-coordinates. Checked on the list, on the smallest and largest
// canonical values, and on random ones.
func TestLowOrderListMatchesScalarMult(t *testing.T) {
	// A fixed clamped scalar, as X25519 itself clamps.
	scalar := [KeySize]byte{0x48, 0x5a, 0x77, 0x73, 0x63, 0x68, 0x61, 0x74, 31: 0x40}
	zeroProduct := func(u []byte) bool {
		_, err := curve25519.X25519(scalar[:], u)
		return err != nil
	}
	check := func(u []byte) {
		t.Helper()
		if got, want := isLowOrderX25519(u), zeroProduct(u); got != want {
			t.Fatalf("u = %x: listed %v, zero product %v", u, got, want)
		}
	}
	for _, u := range lowOrderKeys {
		if !zeroProduct(u[:]) {
			t.Fatalf("listed u = %x has a non-zero product", u)
		}
		if CheckX25519Public(u[:]) != ErrLowOrderKey {
			t.Fatalf("u = %x not refused", u)
		}
	}
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	le := func(n *big.Int) []byte {
		var b [KeySize]byte
		n.FillBytes(b[:])
		for i, j := 0, KeySize-1; i < j; i, j = i+1, j-1 {
			b[i], b[j] = b[j], b[i]
		}
		return b[:]
	}
	for i := int64(0); i < 64; i++ {
		check(le(big.NewInt(i)))
		check(le(new(big.Int).Sub(p, big.NewInt(i+1))))
	}
	for i := 0; i < 2000; i++ {
		n, _ := rand.Int(rand.Reader, p)
		check(le(n))
	}
}
