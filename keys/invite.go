package keys

import (
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"lukechampine.com/blake3"

	"github.com/wschat/wschat/wire"
)

// An invite is one line of text that hands a public identity to someone:
//
//	WSCHAT1-<payload in RFC 4648 base32, upper case, no padding>
//
// The whole string uses only QR-code alphanumeric characters. The payload:
//
//	x25519  [32]        X25519 public key
//	ed25519 [32]        Ed25519 public key
//	nlen    [1]         nickname length, 1..MaxNickLen
//	nick    [nlen]      nickname, CheckNick rules
//	rlen    [1]         relay address length, 0..wire.MaxRelayAddressLen
//	relay   [rlen]      canonical relay address, or nothing
//	check   [4]         BLAKE3 derive_key(ContextInviteChecksum, all bytes above)
//
// The "1" in the prefix is the invite version; its history:
//
//	1 (2026-11) first version.
const (
	// InvitePrefix starts every version 1 invite.
	InvitePrefix = "WSCHAT1-"
	// ContextInviteChecksum is the BLAKE3 derive_key context of the
	// invite checksum.
	ContextInviteChecksum = "wschat v1 2026-11 invite checksum"

	inviteChecksumLen = 4
	inviteMinPayload  = 2*wire.KeySize + 1 + 1 + inviteChecksumLen
	inviteMaxPayload  = 2*wire.KeySize + 1 + MaxNickLen + 1 + wire.MaxRelayAddressLen + inviteChecksumLen
	// MaxInviteLen is the length of the longest valid invite.
	MaxInviteLen = len(InvitePrefix) + (inviteMaxPayload*8+4)/5
)

// ParseInvite errors. Every error ParseInvite returns wraps exactly one of
// them and says what to do in its message.
var (
	// ErrInvitePrefix: the text is not a wschat invite at all.
	ErrInvitePrefix = errors.New("not a wschat invite")
	// ErrInviteVersion: an invite of a version this wschat does not read
	// (made by a newer wschat).
	ErrInviteVersion = errors.New("invite from a newer wschat")
	// ErrInviteEncoding: characters that never appear in an invite (lower
	// case, white space, the digits 0, 1, 8 and 9, punctuation).
	ErrInviteEncoding = errors.New("invite has invalid characters")
	// ErrInviteTruncated: the invite ends early: it is shorter than any
	// invite, or its length fields run past its end.
	ErrInviteTruncated = errors.New("invite is incomplete")
	// ErrInviteChecksum: the checksum does not match: a typo, or a changed
	// invite.
	ErrInviteChecksum = errors.New("invite checksum mismatch")
	// ErrInviteInvalid: the invite is intact (its checksum matches, or it is
	// longer than any invite) but its content is not acceptable: keys that
	// fail wire.NewPublicIdentity (the wire error is wrapped too, e.g.
	// wire.ErrLowOrderKey), a bad nickname or relay address, or length
	// fields that do not add up.
	ErrInviteInvalid = errors.New("invalid invite")
)

var inviteEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Invite is what one identity hands to another so they can talk: its public
// keys, the nickname it calls itself and the relay it can be reached
// through. Invites are not secret.
type Invite struct {
	Public wire.PublicIdentity
	Name   string // nickname the identity calls itself; CheckNick rules
	Relay  string // canonical relay address; empty if not known
}

// NewInvite checks the fields and returns the invite they make.
func NewInvite(pub wire.PublicIdentity, nick, relay string) (Invite, error) {
	if pub.IsZero() {
		return Invite{}, fmt.Errorf("%w: no public identity", ErrInviteInvalid)
	}
	if err := CheckNick(nick); err != nil {
		return Invite{}, fmt.Errorf("%w: %w", ErrInviteInvalid, err)
	}
	if err := checkRelay(relay); err != nil {
		return Invite{}, fmt.Errorf("%w: %w", ErrInviteInvalid, err)
	}
	return Invite{Public: pub, Name: nick, Relay: relay}, nil
}

// String is the one-line form, which ParseInvite reads back. An Invite not
// made by NewInvite or ParseInvite may give a string ParseInvite refuses.
func (inv Invite) String() string {
	return InvitePrefix + inviteEncoding.EncodeToString(inv.payload())
}

func (inv Invite) payload() []byte {
	nick, relay := clip255(inv.Name), clip255(inv.Relay)
	b := make([]byte, 0, 2*wire.KeySize+2+len(nick)+len(relay)+inviteChecksumLen)
	b = append(b, inv.Public.X[:]...)
	b = append(b, inv.Public.Ed[:]...)
	b = append(b, byte(len(nick)))
	b = append(b, nick...)
	b = append(b, byte(len(relay)))
	b = append(b, relay...)
	return append(b, inviteChecksum(b)...)
}

func clip255(s string) string { return s[:min(len(s), 255)] }

func inviteChecksum(b []byte) []byte {
	var sum [inviteChecksumLen]byte
	blake3.DeriveKey(sum[:], ContextInviteChecksum, b)
	return sum[:]
}

// ParseInvite parses the exact form String writes: callers trim
// surrounding white space, nothing else is forgiven. Errors wrap one of the
// ErrInvite values above.
func ParseInvite(s string) (Invite, error) {
	body, err := cutInvitePrefix(s)
	if err != nil {
		return Invite{}, err
	}
	if len(s) > MaxInviteLen {
		return Invite{}, fmt.Errorf("%w: %d characters, longer than any invite (at most %d); copy only the invite",
			ErrInviteInvalid, len(s), MaxInviteLen)
	}
	for i := 0; i < len(body); i++ {
		if c := body[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return Invite{}, badInviteChar(body[i:], len(InvitePrefix)+i+1)
		}
	}
	switch len(body) % 8 {
	case 1, 3, 6: // no whole number of bytes ends here
		return Invite{}, fmt.Errorf("%w: it was cut off or has a stray character; copy the whole line again",
			ErrInviteTruncated)
	}
	p, err := inviteEncoding.DecodeString(body)
	if err != nil {
		return Invite{}, fmt.Errorf("%w: %v; copy the invite again", ErrInviteEncoding, err)
	}
	// A cut-off invite often ends in a character that cannot end one; say
	// it is incomplete rather than mistyped.
	if _, err := inviteLength(p); err != nil {
		return Invite{}, err
	}
	if inviteEncoding.EncodeToString(p) != body {
		return Invite{}, fmt.Errorf("%w: the last character cannot end an invite; it was mistyped or cut off, copy it again",
			ErrInviteEncoding)
	}
	return parseInvitePayload(p)
}

// cutInvitePrefix returns what follows InvitePrefix, or an error saying
// what the text looks like instead.
func cutInvitePrefix(s string) (string, error) {
	if body, ok := strings.CutPrefix(s, InvitePrefix); ok {
		return body, nil
	}
	if s == "" {
		return "", fmt.Errorf("%w: the invite is empty", ErrInvitePrefix)
	}
	const magic = "WSCHAT"
	if len(s) > len(magic) && strings.EqualFold(s[:len(magic)], magic) {
		rest := s[len(magic):]
		n := 0
		for n < len(rest) && n < 8 && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n > 0 && n < len(rest) && rest[n] == '-' {
			if s[:len(magic)] != magic || rest[:n] == "1" {
				return "", fmt.Errorf("%w: it is in lower case; use the invite exactly as printed", ErrInviteEncoding)
			}
			return "", fmt.Errorf("%w: it is version %s, this wschat reads version 1; upgrade wschat",
				ErrInviteVersion, rest[:n])
		}
	}
	return "", fmt.Errorf("%w: it should start with %q, not %q", ErrInvitePrefix, InvitePrefix, shortPrefix(s))
}

// shortPrefix is the start of s, cut at a character boundary, for messages.
func shortPrefix(s string) string {
	const n = 12
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

// badInviteChar explains the first character of rest, at 1-based column col,
// which is not in the invite alphabet.
func badInviteChar(rest string, col int) error {
	r, _ := utf8.DecodeRuneInString(rest)
	switch {
	case r >= 'a' && r <= 'z':
		return fmt.Errorf("%w: lower-case %q at column %d; use the invite exactly as printed (upper case)",
			ErrInviteEncoding, r, col)
	case r == ' ' || r == '\t' || r == '\n' || r == '\r':
		return fmt.Errorf("%w: white space at column %d; an invite is one line without spaces, copy it again",
			ErrInviteEncoding, col)
	}
	if i := strings.IndexRune("018", r); i >= 0 {
		return fmt.Errorf("%w: %q at column %d never appears in an invite (is it %q?)",
			ErrInviteEncoding, r, col, "OIB"[i])
	}
	return fmt.Errorf("%w: %q at column %d never appears in an invite; copy it again", ErrInviteEncoding, r, col)
}

// inviteLength returns the payload length p's length fields call for,
// and ErrInviteTruncated if that (or the shortest invite) is more than p
// holds.
func inviteLength(p []byte) (int, error) {
	if len(p) < inviteMinPayload {
		return 0, fmt.Errorf("%w: it is too short to be an invite; copy the whole line", ErrInviteTruncated)
	}
	rlenAt := 2*wire.KeySize + 1 + int(p[2*wire.KeySize])
	want := rlenAt + 1 + inviteChecksumLen
	if rlenAt < len(p) {
		want += int(p[rlenAt])
	}
	if want > len(p) {
		return 0, fmt.Errorf("%w: it ends early (or was mistyped); copy the whole line again", ErrInviteTruncated)
	}
	return want, nil
}

// parseInvitePayload checks and decodes the base32-decoded payload.
func parseInvitePayload(p []byte) (Invite, error) {
	if len(p) > inviteMaxPayload {
		return Invite{}, fmt.Errorf("%w: longer than any invite; copy only the invite", ErrInviteInvalid)
	}
	want, err := inviteLength(p)
	if err != nil {
		return Invite{}, err
	}
	sumAt := len(p) - inviteChecksumLen
	if string(inviteChecksum(p[:sumAt])) != string(p[sumAt:]) {
		return Invite{}, fmt.Errorf("%w: the invite was mistyped or changed; copy it again", ErrInviteChecksum)
	}
	if want != len(p) {
		return Invite{}, fmt.Errorf("%w: its length fields do not add up; ask for a new invite", ErrInviteInvalid)
	}
	const nlenAt = 2 * wire.KeySize
	rlenAt := nlenAt + 1 + int(p[nlenAt])
	pub, err := wire.NewPublicIdentity(p[:wire.KeySize], p[wire.KeySize:nlenAt])
	if err != nil {
		return Invite{}, fmt.Errorf("%w: %w; ask for a new invite", ErrInviteInvalid, err)
	}
	nick := string(p[nlenAt+1 : rlenAt])
	if err := CheckNick(nick); err != nil {
		return Invite{}, fmt.Errorf("%w: %w; ask for a new invite", ErrInviteInvalid, err)
	}
	relay := string(p[rlenAt+1 : sumAt])
	if err := checkRelay(relay); err != nil {
		return Invite{}, fmt.Errorf("%w: %w; ask for a new invite", ErrInviteInvalid, err)
	}
	return Invite{Public: pub, Name: nick, Relay: relay}, nil
}
