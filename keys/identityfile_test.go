package keys_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age/armor"

	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// testWorkFactor keeps scrypt fast in tests.
const testWorkFactor = 4

func passphrase(s string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(s), nil }
}

func sameIdentity(t *testing.T, got, want *keys.IdentityFile) {
	t.Helper()
	gx, ge := got.Identity.Seeds()
	wx, we := want.Identity.Seeds()
	if gx != wx || ge != we || got.Name != want.Name || got.Relay != want.Relay {
		t.Fatalf("loaded %q %q %v, want %q %q %v", got.Name, got.Relay, got.Identity.Public(),
			want.Name, want.Relay, want.Identity.Public())
	}
}

func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	path := filepath.Join(dir, "identity")
	f := aliceFile(t)
	if err := keys.Save(path, f, keys.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{dir: 0o700 | fs.ModeDir, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the identity file", len(ents))
	}
	got, err := keys.Load(path, func() ([]byte, error) {
		t.Error("passphrase asked for a plaintext file")
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameIdentity(t, got, f)
	if inv := got.Invite(); !inv.Public.Equal(f.Identity.Public()) || inv.Name != "alice" || inv.Relay != f.Relay {
		t.Errorf("Invite() = %+v", inv)
	}
}

func TestSaveRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity")
	first := aliceFile(t)
	if err := keys.Save(path, first, keys.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	second := &keys.IdentityFile{Identity: bob(t), Name: "bob"}
	err := keys.Save(path, second, keys.SaveOptions{})
	wantErrs(t, err, keys.ErrExists)
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("Save without Force changed the file")
	}
	// Passphrase protection must not get past the check either.
	err = keys.Save(path, second, keys.SaveOptions{Passphrase: []byte("pw"), WorkFactor: testWorkFactor})
	wantErrs(t, err, keys.ErrExists)

	if err := keys.Save(path, second, keys.SaveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	got, err := keys.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameIdentity(t, got, second)
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
}

func TestSaveFailedWriteKeepsOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity")
	if err := keys.Save(path, aliceFile(t), keys.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	diskFull := errors.New("no space left on device")
	restore := keys.SetWriteTemp(func(f *os.File, b []byte) error {
		f.Write(b[:len(b)/2])
		return diskFull
	})
	defer restore()
	err := keys.Save(path, &keys.IdentityFile{Identity: bob(t), Name: "bob"}, keys.SaveOptions{Force: true})
	wantErrs(t, err, diskFull)
	restore()
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a failed Save changed the file")
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
}

func TestSaveInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *keys.IdentityFile
		want error
	}{
		{"empty nick", &keys.IdentityFile{Identity: alice(t)}, keys.ErrInvalidNick},
		{"newline in nick", &keys.IdentityFile{Identity: alice(t), Name: "a\nb"}, keys.ErrInvalidNick},
		{"bad relay", &keys.IdentityFile{Identity: alice(t), Name: "a", Relay: "http://x/"}, wire.ErrRelayAddress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "identity")
			wantErrs(t, keys.Save(path, tc.f, keys.SaveOptions{}), tc.want)
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a file was written: %v", err)
			}
		})
	}
}

func TestLoadInsecurePermissions(t *testing.T) {
	data, err := keys.MarshalIdentity(aliceFile(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o601, 0o610, 0o666} {
		path := writeFile(t, "identity", data, mode)
		_, err := keys.Load(path, nil)
		wantErrs(t, err, keys.ErrInsecurePermissions)
		var perr *keys.InsecurePermissionsError
		if !errors.As(err, &perr) || perr.Path != path || perr.Mode != mode {
			t.Fatalf("mode %o: error %#v", mode, err)
		}
		if hint := "run: chmod 600 " + path; !strings.Contains(err.Error(), hint) {
			t.Errorf("error %q lacks the hint %q", err, hint)
		}
	}
	for _, mode := range []fs.FileMode{0o600, 0o400} {
		if _, err := keys.Load(writeFile(t, "identity", data, mode), nil); err != nil {
			t.Errorf("mode %o: %v", mode, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := keys.Load(filepath.Join(dir, "missing"), nil)
	wantErrs(t, err, fs.ErrNotExist)

	_, err = keys.Load(dir, nil)
	wantErrs(t, err, keys.ErrCorrupt)

	// A huge file is refused from its size, before it is read.
	huge := filepath.Join(dir, "huge")
	f, err := os.OpenFile(huge, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(10 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = keys.Load(huge, nil)
	wantErrs(t, err, keys.ErrCorrupt)
}

// withCheck replaces or adds the check line so that the body is what is
// tested.
func withCheck(body string) []byte {
	if i := strings.LastIndex(body, "check: "); i >= 0 {
		body = body[:i]
	}
	return keys.AppendCheckLine([]byte(body), keys.ContextIdentityFileCheck)
}

func TestParseIdentity(t *testing.T) {
	good, err := keys.MarshalIdentity(aliceFile(t))
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	lines := strings.SplitAfter(s, "\n")
	xSeed, _ := alice(t).Seeds()
	xLine := "x25519: " + base64.RawURLEncoding.EncodeToString(xSeed[:]) + "\n"
	if !strings.Contains(s, xLine) {
		t.Fatalf("no %q in\n%s", xLine, s)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error // nil: accepted
	}{
		{"good", good, nil},
		{"no relay", withCheck(strings.Replace(s, lines[2], "", 1)), nil},
		{"empty", nil, keys.ErrCorrupt},
		{"not ours", []byte("hello\n"), keys.ErrCorrupt},
		{"newer version", withCheck(strings.Replace(s, " v1\n", " v2\n", 1)), keys.ErrUnsupportedVersion},
		{"truncated", good[:len(good)-1], keys.ErrCorrupt},
		{"no check line", []byte(strings.Join(lines[:len(lines)-2], "")), keys.ErrCorrupt},
		{"extra line", append(bytes.Clone(good), "name: x\n"...), keys.ErrCorrupt},
		{"extra line, rechecked", withCheck(strings.Join(lines[:5], "") + "extra: x\n"), keys.ErrCorrupt},
		{"blank line, rechecked", withCheck(strings.Join(lines[:5], "") + "\n"), keys.ErrCorrupt},
		{"edited name", []byte(strings.Replace(s, "alice", "alicf", 1)), keys.ErrCorrupt},
		{"upper-case check", []byte(strings.Replace(s, lines[5], strings.ToUpper(lines[5]), 1)), keys.ErrCorrupt},
		{"CRLF", withCheck(strings.ReplaceAll(s, "\n", "\r\n")), keys.ErrCorrupt},
		{"CR in a line", withCheck(strings.Replace(s, "alice\n", "alice\r\n", 1)), keys.ErrCorrupt},
		{"trailing space", withCheck(strings.Replace(s, "alice\n", "alice \n", 1)), keys.ErrCorrupt},
		{"lines swapped", withCheck(lines[0] + lines[2] + lines[1] + lines[3] + lines[4]), keys.ErrCorrupt},
		{"empty relay", withCheck(strings.Replace(s, lines[2], "relay: \n", 1)), keys.ErrCorrupt},
		{"bad relay", withCheck(strings.Replace(s, lines[2], "relay: ws://x/\n", 1)), wire.ErrRelayAddress},
		{"bad nick", withCheck(strings.Replace(s, "name: alice", "name: \x1b[2J", 1)), keys.ErrInvalidNick},
		{"padded seed", withCheck(strings.Replace(s, xLine, xLine[:len(xLine)-1]+"=\n", 1)), keys.ErrCorrupt},
		{"short seed", withCheck(strings.Replace(s, xLine, xLine[:len(xLine)-2]+"\n", 1)), keys.ErrCorrupt},
		{"missing seed", withCheck(strings.Replace(s, xLine, "", 1)), keys.ErrCorrupt},
		{"encrypted", []byte(armor.Header + "\n"), keys.ErrPassphraseRequired},
		{"too large", append(bytes.Repeat([]byte("x"), keys.MaxIdentityFileSize), good...), keys.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := keys.ParseIdentity(tc.in)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if out, err := keys.MarshalIdentity(f); err != nil || !bytes.Equal(out, tc.in) {
					t.Fatalf("re-encoded differently (%v):\n%s", err, out)
				}
				return
			}
			wantErrs(t, err, tc.want)
			if strings.Contains(err.Error(), xLine[8:len(xLine)-1]) {
				t.Fatalf("error %q holds the secret seed", err)
			}
		})
	}
}

// TestParseIdentityDamage flips every bit and truncates at every length:
// none of it may be accepted, and nothing may panic.
func TestParseIdentityDamage(t *testing.T) {
	good, err := keys.MarshalIdentity(aliceFile(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range good {
		for bit := range 8 {
			b := bytes.Clone(good)
			b[i] ^= 1 << bit
			if _, err := keys.ParseIdentity(b); !errors.Is(err, keys.ErrCorrupt) && !errors.Is(err, keys.ErrUnsupportedVersion) {
				t.Fatalf("flipping bit %d of byte %d: %v", bit, i, err)
			}
		}
	}
	for n := range good {
		if _, err := keys.ParseIdentity(good[:n]); !errors.Is(err, keys.ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
}

func TestPassphrase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity")
	f := aliceFile(t)
	pw := []byte("correct horse battery staple")
	if err := keys.Save(path, f, keys.SaveOptions{Passphrase: pw, WorkFactor: testWorkFactor}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte(armor.Header+"\n")) || bytes.Contains(data, []byte("alice")) {
		t.Fatalf("not an armored age file:\n%s", data)
	}

	got, err := keys.Load(path, passphrase(string(pw)))
	if err != nil {
		t.Fatal(err)
	}
	sameIdentity(t, got, f)

	_, err = keys.Load(path, passphrase("wrong"))
	wantErrs(t, err, keys.ErrWrongPassphrase)
	_, err = keys.Load(path, nil)
	wantErrs(t, err, keys.ErrPassphraseRequired)
	_, err = keys.Load(path, passphrase(""))
	wantErrs(t, err, keys.ErrPassphraseRequired)
	cancelled := errors.New("cancelled")
	_, err = keys.Load(path, func() ([]byte, error) { return nil, cancelled })
	wantErrs(t, err, cancelled)

	// Damage inside the armor is corruption, not a wrong passphrase.
	i := bytes.Index(data, []byte("\n")) + 40
	damaged := bytes.Clone(data)
	damaged[i] ^= 'A' ^ 'B'
	_, err = keys.Load(writeFile(t, "damaged", damaged, 0o600), passphrase(string(pw)))
	if !errors.Is(err, keys.ErrCorrupt) && !errors.Is(err, keys.ErrWrongPassphrase) {
		t.Fatalf("damaged armor: %v", err)
	}
	tail := bytes.Clone(data[:len(data)-20])
	_, err = keys.Load(writeFile(t, "cut", tail, 0o600), passphrase(string(pw)))
	wantErrs(t, err, keys.ErrCorrupt)
}

func TestPassphraseSaveErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity")
	err := keys.Save(path, aliceFile(t), keys.SaveOptions{Passphrase: []byte{}})
	wantErrs(t, err, keys.ErrPassphraseRequired)
	err = keys.Save(path, aliceFile(t), keys.SaveOptions{Passphrase: []byte("pw"), WorkFactor: keys.MaxWorkFactor + 1})
	wantErrs(t, err, keys.ErrWorkFactor)
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a file was written: %v", err)
	}
}

// withWorkFactor rewrites the scrypt work factor in an armored age file.
// The header MAC no longer matches, but a reader must refuse the work
// factor before it gets that far.
func withWorkFactor(t *testing.T, armored []byte, logN string) []byte {
	t.Helper()
	raw, err := io.ReadAll(armor.NewReader(bytes.NewReader(armored)))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^(-> scrypt \S+) \d+$`)
	if !re.Match(raw) {
		t.Fatalf("no scrypt stanza in\n%q", raw)
	}
	raw = re.ReplaceAll(raw, []byte("$1 "+logN))
	var out bytes.Buffer
	w := armor.NewWriter(&out)
	w.Write(raw)
	w.Close()
	return out.Bytes()
}

func TestExcessiveWorkFactor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity")
	if err := keys.Save(path, aliceFile(t), keys.SaveOptions{Passphrase: []byte("pw"), WorkFactor: testWorkFactor}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	for _, logN := range []string{"30", "21", "99999999999999999999"} {
		hostile := writeFile(t, "identity", withWorkFactor(t, data, logN), 0o600)
		asked := false
		_, err := keys.Load(hostile, func() ([]byte, error) { asked = true; return []byte("pw"), nil })
		wantErrs(t, err, keys.ErrWorkFactor)
		if asked {
			t.Errorf("work factor %s: asked for the passphrase before refusing", logN)
		}
	}
	// A work factor within the limit gets past the check (and then fails to
	// decrypt, as the key it derives is another one).
	_, err := keys.Load(writeFile(t, "identity", withWorkFactor(t, data, "5"), 0o600), passphrase("pw"))
	if errors.Is(err, keys.ErrWorkFactor) || err == nil {
		t.Fatalf("work factor 5: %v", err)
	}
}
