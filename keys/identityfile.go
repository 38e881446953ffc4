package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"lukechampine.com/blake3"

	"github.com/wschat/wschat/wire"
)

// The identity file holds one private identity. Its plaintext form is
// strict, canonical, line-based text; every line ends in "\n" (no CR, no
// trailing white space, no blank or comment lines), in this order:
//
//	wschat-identity v1                        magic and version
//	name: <nickname>                          CheckNick rules
//	relay: <relay address>                    optional; canonical ParseRelayAddress form
//	x25519: <43 base64url chars>              32-byte X25519 seed, unpadded
//	ed25519: <43 base64url chars>             32-byte RFC 8032 Ed25519 seed, unpadded
//	check: <16 lowercase hex digits>          first 8 bytes of BLAKE3
//	                                          derive_key(ContextIdentityFileCheck,
//	                                          every byte before this line)
//
// MarshalIdentity(ParseIdentity(b)) == b for every accepted b.
//
// A passphrase-protected file is that plaintext encrypted with age to an
// scrypt recipient and ASCII-armored, so it starts with
// "-----BEGIN AGE ENCRYPTED FILE-----".
const (
	identityMagic = "wschat-identity"
	// identityVersion history:
	//	1 (2026-11) first version.
	identityVersion = 1

	// ContextIdentityFileCheck is the BLAKE3 derive_key context of the
	// identity file's check line.
	ContextIdentityFileCheck = "wschat v1 2026-11 identity file checksum"

	// MaxIdentityFileSize bounds the plaintext identity file; the largest
	// valid one is about 500 bytes.
	MaxIdentityFileSize = 4 << 10
	// MaxEncryptedIdentityFileSize bounds the armored, encrypted form.
	MaxEncryptedIdentityFileSize = 8 << 10

	// DefaultWorkFactor is the scrypt work factor (log2 N) Save uses: about
	// a second and 256 MiB.
	DefaultWorkFactor = 18
	// MaxWorkFactor is the highest scrypt work factor Load accepts (about 4
	// seconds and 1 GiB), so a planted file cannot make it spin for minutes.
	MaxWorkFactor = 20

	checkLen = 8 // bytes of BLAKE3 output in a check line
)

// IdentityFile is the contents of an identity file.
type IdentityFile struct {
	Identity *wire.Identity
	Name     string // nickname, shown to others; CheckNick rules
	Relay    string // relay address this identity uses; may be empty
}

// Invite returns the invite that hands this identity's public half to
// someone else.
func (f *IdentityFile) Invite() Invite {
	return Invite{Public: f.Identity.Public(), Name: f.Name, Relay: f.Relay}
}

// SaveOptions control how Save writes an identity file.
type SaveOptions struct {
	// Force replaces an existing file. Without it Save returns ErrExists
	// and changes nothing.
	Force bool
	// Passphrase, if not nil, encrypts the file with age's scrypt
	// recipient. It must not be empty.
	Passphrase []byte
	// WorkFactor is the scrypt work factor (log2 N) for Passphrase: 0 means
	// DefaultWorkFactor; at most MaxWorkFactor, or Load would refuse the
	// file. Low values are for tests.
	WorkFactor int
}

// Save writes f to path atomically with mode 0600, creating the parent
// directory with mode 0700 if needed. It returns ErrExists (wrapped) if path
// exists and opt.Force is false; ErrInvalidNick or wire.ErrRelayAddress for
// bad fields; ErrWorkFactor for a work factor above MaxWorkFactor. On any
// error an existing file is left as it was.
func Save(path string, f *IdentityFile, opt SaveOptions) error {
	data, err := MarshalIdentity(f)
	if err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	defer clear(data)
	if !opt.Force {
		// Cheap early answer before any scrypt work; the link in
		// writeFileAtomic is what actually guarantees it.
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("saving identity: %q: %w", path, ErrExists)
		}
	}
	if opt.Passphrase != nil {
		enc, err := encryptIdentity(data, opt.Passphrase, opt.WorkFactor)
		if err != nil {
			return fmt.Errorf("saving identity: %w", err)
		}
		data = enc
	}
	if err := writeFileAtomic(path, data, opt.Force); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	return nil
}

func encryptIdentity(plain, passphrase []byte, workFactor int) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: the passphrase is empty", ErrPassphraseRequired)
	}
	if workFactor == 0 {
		workFactor = DefaultWorkFactor
	}
	if workFactor < 1 || workFactor > MaxWorkFactor {
		return nil, fmt.Errorf("%w: %d is not in 1..%d", ErrWorkFactor, workFactor, MaxWorkFactor)
	}
	r, err := age.NewScryptRecipient(string(passphrase))
	if err != nil {
		return nil, err
	}
	r.SetWorkFactor(workFactor)
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return nil, fmt.Errorf("encrypting: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("encrypting: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypting: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("encrypting: %w", err)
	}
	return buf.Bytes(), nil
}

// Load reads the identity file at path. passphrase is called only if the
// file is passphrase-protected, and Load clears the slice it returns after
// use; passphrase may be nil when the caller cannot ask.
//
// Errors, wrapped with the path: fs.ErrNotExist when there is no file;
// *InsecurePermissionsError when group or others have any access to it;
// ErrCorrupt; ErrUnsupportedVersion; ErrPassphraseRequired (protected and
// passphrase is nil or gives an empty passphrase); ErrWrongPassphrase;
// ErrWorkFactor (refused before any scrypt work); or passphrase's own error.
func Load(path string, passphrase func() ([]byte, error)) (*IdentityFile, error) {
	data, err := readFileLimited(path, MaxEncryptedIdentityFileSize, 0o077)
	if err != nil {
		var perr *InsecurePermissionsError
		if errors.As(err, &perr) || errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("identity file: %w", err)
		}
		return nil, fmt.Errorf("identity file %q: %w", path, err)
	}
	defer clear(data)
	if bytes.HasPrefix(data, []byte(armor.Header)) {
		plain, err := decryptIdentity(data, passphrase)
		if err != nil {
			return nil, fmt.Errorf("identity file %q: %w", path, err)
		}
		defer clear(plain)
		data = plain
	}
	f, err := ParseIdentity(data)
	if err != nil {
		return nil, fmt.Errorf("identity file %q: %w", path, err)
	}
	return f, nil
}

func decryptIdentity(data []byte, passphrase func() ([]byte, error)) ([]byte, error) {
	if passphrase == nil {
		return nil, ErrPassphraseRequired
	}
	raw, err := io.ReadAll(io.LimitReader(armor.NewReader(bytes.NewReader(data)), MaxEncryptedIdentityFileSize))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := checkAgeHeader(raw); err != nil {
		return nil, err
	}
	pw, err := passphrase()
	defer clear(pw)
	if err != nil {
		return nil, fmt.Errorf("reading passphrase: %w", err)
	}
	if len(pw) == 0 {
		return nil, fmt.Errorf("%w: the passphrase is empty", ErrPassphraseRequired)
	}
	id, err := age.NewScryptIdentity(string(pw))
	if err != nil {
		return nil, err
	}
	id.SetMaxWorkFactor(MaxWorkFactor)
	r, err := age.Decrypt(bytes.NewReader(raw), id)
	if errors.Is(err, age.ErrIncorrectIdentity) {
		return nil, ErrWrongPassphrase
	}
	if err != nil {
		return nil, fmt.Errorf("%w: decrypting: %v", ErrCorrupt, err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, MaxIdentityFileSize+1))
	if err != nil {
		clear(plain)
		return nil, fmt.Errorf("%w: decrypting: %v", ErrCorrupt, err)
	}
	return plain, nil
}

// checkAgeHeader makes sure an age file is encrypted to exactly one scrypt
// stanza whose work factor is at most MaxWorkFactor, before any scrypt work
// is done. Malformed headers are left for age to refuse.
func checkAgeHeader(raw []byte) error {
	const version = "age-encryption.org/v1\n"
	if !bytes.HasPrefix(raw, []byte(version)) {
		return fmt.Errorf("%w: not an age v1 file", ErrCorrupt)
	}
	var stanzas [][]string
	for line := range strings.SplitSeq(string(raw[len(version):]), "\n") {
		if strings.HasPrefix(line, "---") {
			break
		}
		if rest, ok := strings.CutPrefix(line, "-> "); ok {
			stanzas = append(stanzas, strings.Split(rest, " "))
		}
	}
	if len(stanzas) != 1 || stanzas[0][0] != "scrypt" {
		return fmt.Errorf("%w: encrypted, but not with a passphrase alone", ErrCorrupt)
	}
	// "-> scrypt <salt> <log2 N>"; age itself refuses other shapes.
	if args := stanzas[0]; len(args) == 3 && isDigits(args[2]) {
		if n, err := strconv.Atoi(args[2]); err != nil || n > MaxWorkFactor {
			return fmt.Errorf("%w: the file asks for 2^%.10s, this wschat allows at most 2^%d",
				ErrWorkFactor, args[2], MaxWorkFactor)
		}
	}
	return nil
}

// MarshalIdentity encodes f in the plaintext identity file format. It
// returns ErrInvalidNick or wire.ErrRelayAddress (wrapped) for bad fields.
// The result holds the secret seeds: clear it after use.
func MarshalIdentity(f *IdentityFile) ([]byte, error) {
	if f == nil || f.Identity == nil {
		return nil, errors.New("no identity")
	}
	if err := CheckNick(f.Name); err != nil {
		return nil, err
	}
	if err := checkRelay(f.Relay); err != nil {
		return nil, err
	}
	xs, es := f.Identity.Seeds()
	defer clear(xs[:])
	defer clear(es[:])
	b := make([]byte, 0, 512)
	b = fmt.Appendf(b, "%s v%d\n", identityMagic, identityVersion)
	b = append(b, "name: "+f.Name+"\n"...)
	if f.Relay != "" {
		b = append(b, "relay: "+f.Relay+"\n"...)
	}
	b = append(b, "x25519: "...)
	b = base64.RawURLEncoding.AppendEncode(b, xs[:])
	b = append(b, "\ned25519: "...)
	b = base64.RawURLEncoding.AppendEncode(b, es[:])
	b = append(b, '\n')
	return appendCheckLine(b, ContextIdentityFileCheck), nil
}

// appendCheckLine appends "check: <hex>\n" over b.
func appendCheckLine(b []byte, context string) []byte {
	return append(b, checkLine(b, context)...)
}

func checkLine(b []byte, context string) string {
	var sum [checkLen]byte
	blake3.DeriveKey(sum[:], context, b)
	return "check: " + hex.EncodeToString(sum[:]) + "\n"
}

// splitChecked splits a line-based file into its lines after verifying the
// magic line and the final check line. The lines returned exclude the magic
// and check lines and their "\n". what names the file in error messages.
func splitChecked(b []byte, magic string, version int, context, what string) ([]string, error) {
	first, _, _ := bytes.Cut(b, []byte("\n"))
	if want := fmt.Sprintf("%s v%d", magic, version); string(first) != want {
		if v, ok := strings.CutPrefix(string(first), magic+" v"); ok && isDigits(v) && v != strconv.Itoa(version) {
			return nil, fmt.Errorf("%w: %s version %.10s", ErrUnsupportedVersion, what, v)
		}
		return nil, fmt.Errorf("%w: not a wschat %s (the first line should be %q)", ErrCorrupt, what, want)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: truncated (no newline at the end)", ErrCorrupt)
	}
	body := b[:len(b)-1]
	i := bytes.LastIndexByte(body, '\n')
	last := body[i+1:]
	if !bytes.HasPrefix(last, []byte("check: ")) {
		return nil, fmt.Errorf("%w: truncated (the last line is not the check line)", ErrCorrupt)
	}
	if string(last)+"\n" != checkLine(b[:i+1], context) {
		return nil, fmt.Errorf("%w: check line does not match: the file was damaged or edited", ErrCorrupt)
	}
	lines := strings.Split(string(b[len(first)+1:i+1]), "\n")
	lines = lines[:len(lines)-1] // after the final "\n"
	for n, l := range lines {
		if strings.IndexByte(l, '\r') >= 0 {
			return nil, fmt.Errorf("%w: line %d has a carriage return", ErrCorrupt, n+2)
		}
	}
	return lines, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseIdentity decodes the plaintext identity file format. It accepts only
// the exact bytes MarshalIdentity writes. Errors wrap ErrCorrupt (with the
// line and reason, never a secret), ErrUnsupportedVersion, or
// ErrPassphraseRequired when b is the encrypted form.
func ParseIdentity(b []byte) (*IdentityFile, error) {
	if len(b) > MaxIdentityFileSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrCorrupt, len(b), MaxIdentityFileSize)
	}
	if bytes.HasPrefix(b, []byte(armor.Header)) {
		return nil, ErrPassphraseRequired
	}
	lines, err := splitChecked(b, identityMagic, identityVersion, ContextIdentityFileCheck, "identity file")
	if err != nil {
		return nil, err
	}
	n := 1 // line number of the last line consumed
	next := func(key string) (string, bool) {
		if len(lines) == 0 {
			return "", false
		}
		v, ok := strings.CutPrefix(lines[0], key+": ")
		if ok {
			lines = lines[1:]
			n++
		}
		return v, ok
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrCorrupt, n+1, fmt.Sprintf(format, args...))
	}
	var f IdentityFile
	name, ok := next("name")
	if !ok {
		return nil, bad("want %q", "name: ")
	}
	if err := CheckNick(name); err != nil {
		return nil, fmt.Errorf("%w: line %d: %w", ErrCorrupt, n, err)
	}
	f.Name = name
	if relay, ok := next("relay"); ok {
		if relay == "" {
			return nil, fmt.Errorf("%w: line %d: empty relay (leave the line out instead)", ErrCorrupt, n)
		}
		if err := checkRelay(relay); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrCorrupt, n, err)
		}
		f.Relay = relay
	}
	var seeds [2][wire.KeySize]byte
	defer clear(seeds[0][:])
	defer clear(seeds[1][:])
	for i, key := range []string{"x25519", "ed25519"} {
		v, ok := next(key)
		if !ok {
			return nil, bad("want %q", key+": ")
		}
		if !decodeKey(seeds[i][:], v) {
			// Never quote v: it is a secret.
			return nil, fmt.Errorf("%w: line %d: %s seed is not 43 base64url characters", ErrCorrupt, n, key)
		}
	}
	if len(lines) != 0 {
		return nil, bad("unexpected line after the keys")
	}
	id, err := wire.IdentityFromSeeds(seeds[0], seeds[1])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	f.Identity = id
	return &f, nil
}

// decodeKey decodes exactly 32 bytes of canonical unpadded base64url into
// dst and reports whether it could.
func decodeKey(dst []byte, s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(wire.KeySize) {
		return false
	}
	n, err := base64.RawURLEncoding.Strict().Decode(dst, []byte(s))
	return err == nil && n == wire.KeySize
}
