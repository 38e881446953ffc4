// Package keys keeps what a wschat user owns and trusts on disk: the private
// identity file, the one-line invites that hand a public identity to someone
// else, the contact book that pins the keys of the people you talk to, and
// the safety numbers two people compare to check those pins.
//
// Everything here is local: no network, no printing, no flags. The files are
// written atomically with mode 0600, refused when other users can read (or
// change) them, and parsed strictly: a damaged file is an error naming what
// is wrong, never a panic and never silently rewritten. Every foreign public
// key enters through wire.NewPublicIdentity.
//
// # Files and formats
//
//	identity file   identityfile.go  line-based text, optionally age-encrypted
//	invite          invite.go        WSCHAT1-<base32 of keys ‖ nick ‖ relay ‖ checksum>
//	contacts file   contactsfile.go  line-based text, one tab-separated pin per line
//	safety number   safety.go        6 groups of 5 digits
//
// Each format carries a version and a BLAKE3 checksum under a versioned
// context, so a truncated, mistyped or bit-flipped copy is refused.
package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wschat/wschat/wire"
)

// Errors about stored files. Each is returned wrapped with the file's path.
var (
	// ErrExists: Save without Force found a file at the path; nothing was
	// written.
	ErrExists = errors.New("file already exists")
	// ErrCorrupt: a stored file (identity or contacts) is truncated, edited,
	// damaged or not a wschat file. The wrapping error names the line and
	// the reason. The file is left exactly as it was.
	ErrCorrupt = errors.New("file is corrupt")
	// ErrUnsupportedVersion: a stored file was written by a newer wschat.
	ErrUnsupportedVersion = errors.New("file format is newer than this wschat; upgrade wschat")
	// ErrInsecurePermissions: a file is open to other users. Returned as an
	// *InsecurePermissionsError.
	ErrInsecurePermissions = errors.New("file permissions are too open")
)

// Errors about passphrase-protected identity files.
var (
	// ErrPassphraseRequired: the identity file is passphrase-protected and
	// no passphrase (or an empty one) was given.
	ErrPassphraseRequired = errors.New("file is passphrase-protected; a passphrase is required")
	// ErrWrongPassphrase: the passphrase does not decrypt the identity file.
	ErrWrongPassphrase = errors.New("wrong passphrase")
	// ErrWorkFactor: the file asks for more scrypt work than MaxWorkFactor
	// (or Save was asked to write such a file). Load refuses it before doing
	// any of that work.
	ErrWorkFactor = errors.New("scrypt work factor is above the limit")
)

// Errors about names.
var (
	// ErrInvalidNick: a nickname is empty, longer than MaxNickLen bytes, not
	// UTF-8, has control, line-separator or bidi-override characters, or
	// starts or ends with white space.
	ErrInvalidNick = errors.New("invalid nickname")
	// ErrInvalidContactName: a contact name is not 1..MaxContactNameLen bytes
	// of ASCII letters, digits, '-', '_' and '.', or starts with '-' or '.'.
	ErrInvalidContactName = errors.New("invalid contact name")
)

// InsecurePermissionsError reports a file that other users can read (an
// identity file) or change (a contacts file). errors.Is(err,
// ErrInsecurePermissions) holds for it.
type InsecurePermissionsError struct {
	Path string
	Mode fs.FileMode // permission bits as found
}

func (e *InsecurePermissionsError) Error() string {
	return fmt.Sprintf("%q has permissions %04o, open to other users; run: chmod 600 %s",
		e.Path, uint32(e.Mode.Perm()), shellQuote(e.Path))
}

// Unwrap makes errors.Is(err, ErrInsecurePermissions) hold.
func (e *InsecurePermissionsError) Unwrap() error { return ErrInsecurePermissions }

// shellQuote quotes s for a hint line a user can paste into a POSIX shell.
func shellQuote(s string) string {
	safe := s != ""
	for i := 0; i < len(s) && safe; i++ {
		c := s[i]
		safe = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("/._-+,:@%", c) >= 0
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Name limits.
const (
	// MaxNickLen bounds a nickname in bytes (it travels in invites).
	MaxNickLen = 64
	// MaxContactNameLen bounds a contact name in bytes.
	MaxContactNameLen = 64
)

// CheckNick reports whether s can be a nickname: the name an identity calls
// itself, shown to people and carried in invites. A nickname is 1 to
// MaxNickLen bytes of UTF-8; it may have spaces and any script, but no
// control characters, line or paragraph separators or bidi overrides (which
// could fake or hide text in a terminal), and no white space at either end.
// The error wraps ErrInvalidNick.
func CheckNick(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", ErrInvalidNick)
	case len(s) > MaxNickLen:
		return fmt.Errorf("%w %q: longer than %d bytes", ErrInvalidNick, s, MaxNickLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w %q: not UTF-8", ErrInvalidNick, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp, unicode.Bidi_Control) {
			return fmt.Errorf("%w %q: has control character %U", ErrInvalidNick, s, r)
		}
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return fmt.Errorf("%w %q: starts or ends with white space", ErrInvalidNick, s)
	}
	return nil
}

// CheckContactName reports whether s can name a contact. Contact names
// appear in argv (--to NAME) and in environment variables, so they are
// plain: 1 to MaxContactNameLen bytes of ASCII letters, digits, '-', '_'
// and '.', not starting with '-' (it would read as a flag) or '.'. Names are
// case-sensitive. The error wraps ErrInvalidContactName.
func CheckContactName(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidContactName)
	}
	if len(s) > MaxContactNameLen {
		return fmt.Errorf("%w %q: longer than %d bytes", ErrInvalidContactName, s, MaxContactNameLen)
	}
	if s[0] == '-' || s[0] == '.' {
		return fmt.Errorf("%w %q: must not start with %q", ErrInvalidContactName, s, s[0])
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w %q: use only letters, digits, '-', '_' and '.'", ErrInvalidContactName, s)
		}
	}
	return nil
}

// checkRelay accepts "" (no relay known) or a canonical relay address. The
// error wraps wire.ErrRelayAddress.
func checkRelay(s string) error {
	if s == "" {
		return nil
	}
	a, err := wire.ParseRelayAddress(s)
	if err != nil {
		return err
	}
	if a.String() != s {
		return fmt.Errorf("%w %q: not in canonical form", wire.ErrRelayAddress, s)
	}
	return nil
}
