package keys_test

import (
	"regexp"
	"testing"

	"github.com/wschat/wschat/keys"
)

func TestSafetyNumber(t *testing.T) {
	a, b := alice(t).Public(), bob(t).Public()
	ab, ba := keys.SafetyNumber(a, b), keys.SafetyNumber(b, a)
	if ab != ba {
		t.Fatalf("not symmetric: %q and %q", ab, ba)
	}
	if !regexp.MustCompile(`^[0-9]{5}( [0-9]{5}){5}$`).MatchString(ab) {
		t.Fatalf("safety number %q is not 6 groups of 5 digits", ab)
	}
	seen := map[string]bool{ab: true}
	for i := range 32 {
		p := peer(t, i).Public()
		for _, s := range []string{keys.SafetyNumber(a, p), keys.SafetyNumber(p, b)} {
			if seen[s] {
				t.Fatalf("safety number %q repeated for another pair", s)
			}
			seen[s] = true
		}
	}
}
