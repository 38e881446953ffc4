package keys_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

const base32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

func TestInviteRoundTrip(t *testing.T) {
	relay := testRelay(t)
	for _, inv := range []keys.Invite{
		mustInvite(t, alice(t), "alice", relay),
		mustInvite(t, alice(t), "alice", ""),
		mustInvite(t, bob(t), "Bob's agent 🤖 (cron)", relay),
		mustInvite(t, bob(t), strings.Repeat("é", keys.MaxNickLen/2), relay),
	} {
		s := inv.String()
		if !regexp.MustCompile(`^WSCHAT1-[A-Z2-7]+$`).MatchString(s) {
			t.Fatalf("invite %q is not prefix + upper-case base32", s)
		}
		if len(s) > keys.MaxInviteLen {
			t.Fatalf("invite of %d characters, MaxInviteLen is %d", len(s), keys.MaxInviteLen)
		}
		got, err := keys.ParseInvite(s)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Public.Equal(inv.Public) || got.Public.Fingerprint() != inv.Public.Fingerprint() ||
			got.Name != inv.Name || got.Relay != inv.Relay {
			t.Fatalf("got %+v, want %+v", got, inv)
		}
		if got.String() != s {
			t.Fatalf("re-encoded as %q, want %q", got.String(), s)
		}
	}
}

func TestMaxInviteLen(t *testing.T) {
	r, err := wire.ParseRelayAddress(testRelay(t))
	if err != nil {
		t.Fatal(err)
	}
	r.URL = "wss://" + strings.Repeat("h", wire.MaxRelayAddressLen-len("wss:///#")-43) + "/"
	inv := mustInvite(t, alice(t), strings.Repeat("n", keys.MaxNickLen), r.String())
	if s := inv.String(); len(s) != keys.MaxInviteLen {
		t.Fatalf("longest invite has %d characters, MaxInviteLen is %d", len(s), keys.MaxInviteLen)
	}
}

func TestNewInvite(t *testing.T) {
	pub := alice(t).Public()
	for _, tc := range []struct {
		name        string
		pub         wire.PublicIdentity
		nick, relay string
		want        []error
	}{
		{"zero identity", wire.PublicIdentity{}, "a", "", []error{keys.ErrInviteInvalid}},
		{"empty nick", pub, "", "", []error{keys.ErrInviteInvalid, keys.ErrInvalidNick}},
		{"long nick", pub, strings.Repeat("x", keys.MaxNickLen+1), "", []error{keys.ErrInvalidNick}},
		{"bidi nick", pub, "ab\u202ecd", "", []error{keys.ErrInvalidNick}},
		{"spaced nick", pub, " ab", "", []error{keys.ErrInvalidNick}},
		{"bad UTF-8", pub, "a\xffb", "", []error{keys.ErrInvalidNick}},
		{"bad relay", pub, "a", "ws://127.0.0.1/", []error{keys.ErrInviteInvalid, wire.ErrRelayAddress}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := keys.NewInvite(tc.pub, tc.nick, tc.relay)
			wantErrs(t, err, tc.want...)
		})
	}
}

func TestParseInviteErrors(t *testing.T) {
	a := alice(t)
	good := mustInvite(t, a, "alice", testRelay(t)).String()
	body := strings.TrimPrefix(good, keys.InvitePrefix)
	pub := a.Public()
	x, ed := pub.X[:], pub.Ed[:]
	lowOrderX := make([]byte, 32)
	lowOrderX[0] = 1 // u = 1, a point of order 4
	identityPoint := make([]byte, 32)
	identityPoint[0] = 1 // the Ed25519 identity point, order 1
	p25519 := []byte{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	typo := []byte(good)
	typo[20] = base32Alphabet[(strings.IndexByte(base32Alphabet, typo[20])+1)%32]

	for _, tc := range []struct {
		name string
		in   string
		want []error
		hint string // the message must say this
	}{
		{"empty", "", []error{keys.ErrInvitePrefix}, "empty"},
		{"not an invite", "hello world", []error{keys.ErrInvitePrefix}, `start with "WSCHAT1-"`},
		{"age key", "AGE-SECRET-KEY-1QQQQ", []error{keys.ErrInvitePrefix}, `"WSCHAT1-"`},
		{"newer version", "WSCHAT2-" + body, []error{keys.ErrInviteVersion}, "upgrade wschat"},
		{"much newer version", "WSCHAT10-AAAA", []error{keys.ErrInviteVersion}, "version 10"},
		{"lower case", strings.ToLower(good), []error{keys.ErrInviteEncoding}, "exactly as printed"},
		{"lower-case body", keys.InvitePrefix + strings.ToLower(body), []error{keys.ErrInviteEncoding}, "upper case"},
		{"space inside", good[:30] + " " + good[30:], []error{keys.ErrInviteEncoding}, "column 31"},
		{"trailing newline", good + "\n", []error{keys.ErrInviteEncoding}, "white space"},
		{"leading space", " " + good, []error{keys.ErrInvitePrefix}, ""},
		{"zero for O", good[:30] + "0" + good[31:], []error{keys.ErrInviteEncoding}, `is it 'O'`},
		{"padding", good + "=", []error{keys.ErrInviteEncoding}, "column"},
		{"two invites", good + good, []error{keys.ErrInviteEncoding}, ""},
		{"far too long", keys.InvitePrefix + strings.Repeat("A", 2000), []error{keys.ErrInviteInvalid}, "copy only the invite"},
		{"prefix only", keys.InvitePrefix, []error{keys.ErrInviteTruncated}, "copy"},
		{"short", keys.InvitePrefix + "AAAAAAAA", []error{keys.ErrInviteTruncated}, "copy"},
		{"cut off", good[:len(good)-10], []error{keys.ErrInviteTruncated}, "copy the whole line"},
		{"cut mid-byte", good[:len(good)-1], []error{keys.ErrInviteTruncated}, ""},
		{"typo", string(typo), []error{keys.ErrInviteChecksum}, "mistyped"},
		{"low-order x25519", rawInvite(lowOrderX, ed, "eve", ""), []error{keys.ErrInviteInvalid, wire.ErrLowOrderKey}, "new invite"},
		{"small-order ed25519", rawInvite(x, identityPoint, "eve", ""), []error{keys.ErrInviteInvalid, wire.ErrSmallOrderKey}, ""},
		{"non-canonical x25519", rawInvite(p25519, ed, "eve", ""), []error{keys.ErrInviteInvalid, wire.ErrNonCanonicalKey}, ""},
		{"empty nick", rawInvite(x, ed, "", ""), []error{keys.ErrInviteInvalid, keys.ErrInvalidNick}, ""},
		{"long nick", rawInvite(x, ed, strings.Repeat("n", 65), ""), []error{keys.ErrInviteInvalid, keys.ErrInvalidNick}, ""},
		{"control in nick", rawInvite(x, ed, "a\x07", ""), []error{keys.ErrInviteInvalid, keys.ErrInvalidNick}, ""},
		{"bad relay", rawInvite(x, ed, "eve", "http://example.com/"), []error{keys.ErrInviteInvalid, wire.ErrRelayAddress}, ""},
		{"extra byte", encodePayload(append(append(append([]byte{}, x...), ed...), 3, 'e', 'v', 'e', 0, 0)), []error{keys.ErrInviteInvalid}, "do not add up"},
		{"length past end", encodePayload(append(append(append([]byte{}, x...), ed...), 3, 'e', 'v', 'e', 9)), []error{keys.ErrInviteTruncated}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := keys.ParseInvite(tc.in)
			if err == nil {
				t.Fatalf("accepted as %+v", inv)
			}
			wantErrs(t, err, tc.want...)
			if !strings.Contains(err.Error(), tc.hint) {
				t.Errorf("error %q does not say %q", err, tc.hint)
			}
		})
	}
}

// TestInviteTypos makes every single-character substitution and every
// truncation of an invite: none may be accepted, and a substitution in the
// keys must be reported as a checksum mismatch.
func TestInviteTypos(t *testing.T) {
	good := mustInvite(t, alice(t), "alice", testRelay(t)).String()
	keysEnd := len(keys.InvitePrefix) + 64*8/5 // characters that encode only key bytes
	for i := len(keys.InvitePrefix); i < len(good); i++ {
		for _, c := range []byte(base32Alphabet) {
			if c == good[i] {
				continue
			}
			s := good[:i] + string(c) + good[i+1:]
			_, err := keys.ParseInvite(s)
			switch {
			case err == nil:
				t.Fatalf("typo at %d accepted: %q", i, s)
			case i < keysEnd && !errors.Is(err, keys.ErrInviteChecksum):
				t.Fatalf("typo at %d in the keys: %v", i, err)
			case !errors.Is(err, keys.ErrInviteChecksum) && !errors.Is(err, keys.ErrInviteTruncated) &&
				!errors.Is(err, keys.ErrInviteEncoding):
				t.Fatalf("typo at %d: %v", i, err)
			}
		}
	}
	for n := range len(good) {
		if _, err := keys.ParseInvite(good[:n]); err == nil {
			t.Fatalf("truncation to %d accepted", n)
		}
	}
}

// TestInviteNonCanonicalBase32 sets the unused low bits of the last
// character, which a lax decoder would ignore.
func TestInviteNonCanonicalBase32(t *testing.T) {
	for _, nick := range []string{"a", "ab", "abc", "abcd", "abcde"} {
		inv := mustInvite(t, alice(t), nick, "")
		if len(keys.InvitePayload(inv))%5 == 0 {
			continue // no unused bits
		}
		s := inv.String()
		last := strings.IndexByte(base32Alphabet, s[len(s)-1])
		bad := s[:len(s)-1] + string(base32Alphabet[last|1])
		if bad == s {
			bad = s[:len(s)-1] + string(base32Alphabet[last&^1])
		}
		_, err := keys.ParseInvite(bad)
		wantErrs(t, err, keys.ErrInviteEncoding)
	}
}
