package keys

import (
	"bytes"
	"strconv"
	"strings"

	"lukechampine.com/blake3"

	"github.com/wschat/wschat/wire"
)

// Safety number layout: SafetyGroups groups of five decimal digits.
const (
	SafetyGroups     = 6
	safetyGroupBytes = 5      // bytes of BLAKE3 output per group
	safetyGroupMod   = 100000 // five digits
)

// SafetyNumber is the number two people read to each other (or compare on
// screen) to check that each has pinned the other's real keys: if anyone
// swapped a key in between, the numbers differ. It is the same whichever
// identity comes first:
//
//	lo, hi = the two fingerprints, sorted bytewise
//	d      = BLAKE3 derive_key(wire.ContextSafetyNumber, lo ‖ hi), 30 bytes
//	group i = d[5i:5i+5] as a big-endian integer, mod 100000, as 5 digits
//
// The six groups are separated by single spaces, e.g.
// "01234 56789 01234 56789 01234 56789".
func SafetyNumber(a, b wire.PublicIdentity) string {
	lo, hi := a.Fingerprint(), b.Fingerprint()
	if bytes.Compare(lo[:], hi[:]) > 0 {
		lo, hi = hi, lo
	}
	var in [2 * wire.KeySize]byte
	copy(in[:], lo[:])
	copy(in[wire.KeySize:], hi[:])
	var d [SafetyGroups * safetyGroupBytes]byte
	blake3.DeriveKey(d[:], wire.ContextSafetyNumber, in[:])

	var sb strings.Builder
	for i := range SafetyGroups {
		var v uint64
		for _, c := range d[i*safetyGroupBytes : (i+1)*safetyGroupBytes] {
			v = v<<8 | uint64(c)
		}
		if i > 0 {
			sb.WriteByte(' ')
		}
		s := strconv.FormatUint(v%safetyGroupMod, 10)
		sb.WriteString(strings.Repeat("0", 5-len(s)) + s)
	}
	return sb.String()
}
