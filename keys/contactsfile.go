package keys

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/wschat/wschat/wire"
)

// The contacts file holds the pinned contacts. Like the identity file it is
// strict, canonical, line-based text, every line ending in "\n":
//
//	wschat-contacts v1                      magic and version
//	<contact line>                          0..MaxContacts, sorted by name
//	check: <16 lowercase hex digits>        first 8 bytes of BLAKE3
//	                                        derive_key(ContextContactsFileCheck,
//	                                        every byte before this line)
//
// A contact line has seven fields separated by one tab each:
//
//	name        CheckContactName rules; names strictly increase (bytewise)
//	x25519      public key, 43 base64url characters (no padding)
//	ed25519     public key, 43 base64url characters
//	added       when these keys were pinned, RFC 3339 UTC to the second
//	            (2006-01-02T15:04:05Z)
//	verified    when the safety number was confirmed, same form, or "-"
//	relay       canonical relay address, or "-"
//	nick        the nickname from the invite, CheckNick rules
//
// No two contacts share a routing id (so none share keys). marshalContacts
// of what parseContacts accepts gives back the same bytes.
const (
	contactsMagic = "wschat-contacts"
	// contactsVersion history:
	//	1 (2026-11) first version.
	contactsVersion = 1

	// ContextContactsFileCheck is the BLAKE3 derive_key context of the
	// contacts file's check line.
	ContextContactsFileCheck = "wschat v1 2026-11 contacts file checksum"

	// MaxContacts bounds the contact book.
	MaxContacts = 1000
	// MaxContactsFileSize bounds the contacts file; MaxContacts of the
	// longest lines fit.
	MaxContactsFileSize = 1 << 20

	timeLayout = "2006-01-02T15:04:05Z"
)

// marshalContacts encodes contacts, which must be valid and sorted by
// name (as Book keeps them and parseContacts returns them).
func marshalContacts(cs []Contact) []byte {
	b := make([]byte, 0, 64+len(cs)*256)
	b = fmt.Appendf(b, "%s v%d\n", contactsMagic, contactsVersion)
	for _, c := range cs {
		b = append(b, c.Name...)
		b = append(b, '\t')
		b = base64.RawURLEncoding.AppendEncode(b, c.Public.X[:])
		b = append(b, '\t')
		b = base64.RawURLEncoding.AppendEncode(b, c.Public.Ed[:])
		b = append(b, '\t')
		b = append(b, formatTime(c.AddedAt)...)
		b = append(b, '\t')
		if c.Verified {
			b = append(b, formatTime(c.VerifiedAt)...)
		} else {
			b = append(b, '-')
		}
		b = append(b, '\t')
		if c.Relay != "" {
			b = append(b, c.Relay...)
		} else {
			b = append(b, '-')
		}
		b = append(b, '\t')
		b = append(b, c.Nick...)
		b = append(b, '\n')
	}
	return appendCheckLine(b, ContextContactsFileCheck)
}

// parseContacts decodes the contacts file format, accepting only what
// marshalContacts writes. Errors wrap ErrCorrupt (naming the line) or
// ErrUnsupportedVersion.
func parseContacts(b []byte) ([]Contact, error) {
	if len(b) > MaxContactsFileSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrCorrupt, len(b), MaxContactsFileSize)
	}
	lines, err := splitChecked(b, contactsMagic, contactsVersion, ContextContactsFileCheck, "contacts file")
	if err != nil {
		return nil, err
	}
	if len(lines) > MaxContacts {
		return nil, fmt.Errorf("%w: %d contacts, more than the limit of %d", ErrCorrupt, len(lines), MaxContacts)
	}
	cs := make([]Contact, 0, len(lines))
	ids := make(map[wire.RoutingID]string, len(lines))
	for i, line := range lines {
		c, err := parseContactLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrCorrupt, i+2, err)
		}
		if i > 0 && c.Name <= cs[i-1].Name {
			return nil, fmt.Errorf("%w: line %d: contact %q is out of order or repeated", ErrCorrupt, i+2, c.Name)
		}
		if other, ok := ids[c.Public.ID()]; ok {
			return nil, fmt.Errorf("%w: line %d: contact %q has the routing id of %q", ErrCorrupt, i+2, c.Name, other)
		}
		ids[c.Public.ID()] = c.Name
		cs = append(cs, c)
	}
	return cs, nil
}

func parseContactLine(line string) (Contact, error) {
	var c Contact
	f := strings.Split(line, "\t")
	if len(f) != 7 {
		return c, fmt.Errorf("%d tab-separated fields, want 7", len(f))
	}
	if err := CheckContactName(f[0]); err != nil {
		return c, err
	}
	c.Name = f[0]
	var x, ed [wire.KeySize]byte
	if !decodeKey(x[:], f[1]) || !decodeKey(ed[:], f[2]) {
		return c, fmt.Errorf("contact %q: a key is not 43 base64url characters", c.Name)
	}
	pub, err := wire.NewPublicIdentity(x[:], ed[:])
	if err != nil {
		return c, fmt.Errorf("contact %q: %w", c.Name, err)
	}
	c.Public = pub
	if c.AddedAt, err = parseTime(f[3]); err != nil {
		return c, fmt.Errorf("contact %q: added: %w", c.Name, err)
	}
	if f[4] != "-" {
		if c.VerifiedAt, err = parseTime(f[4]); err != nil {
			return c, fmt.Errorf("contact %q: verified: %w", c.Name, err)
		}
		c.Verified = true
	}
	if f[5] != "-" {
		if f[5] == "" {
			return c, fmt.Errorf("contact %q: empty relay (write %q instead)", c.Name, "-")
		}
		if err := checkRelay(f[5]); err != nil {
			return c, fmt.Errorf("contact %q: %w", c.Name, err)
		}
		c.Relay = f[5]
	}
	if err := CheckNick(f[6]); err != nil {
		return c, fmt.Errorf("contact %q: %w", c.Name, err)
	}
	c.Nick = f[6]
	return c, nil
}

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// parseTime accepts only the form formatTime writes.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil || formatTime(t) != s {
		return time.Time{}, fmt.Errorf("time %q is not in the form %s", s, timeLayout)
	}
	return t, nil
}
