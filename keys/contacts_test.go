package keys_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// clock is a fake clock that moves one minute per reading.
type clock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Minute)
	return c.t
}

func openBook(t *testing.T, path string, c *clock) *keys.Book {
	t.Helper()
	b, err := keys.OpenBook(path)
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		b.Now = c.Now
	}
	return b
}

func TestBookTOFU(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home", "contacts")
	clk := newClock()
	b := openBook(t, path, clk)
	relay := testRelay(t)
	aliceInv := mustInvite(t, alice(t), "alice", relay)
	bobInv := mustInvite(t, bob(t), "bob", "")

	if cs, err := b.List(); err != nil || len(cs) != 0 {
		t.Fatalf("new book: %v %v", cs, err)
	}
	c, err := b.Add("alice", aliceInv)
	if err != nil {
		t.Fatal(err)
	}
	added := c.AddedAt
	if !c.Public.Equal(aliceInv.Public) || c.Nick != "alice" || c.Relay != relay || c.Verified ||
		!added.Equal(time.Date(2026, 11, 1, 12, 1, 0, 0, time.UTC)) {
		t.Fatalf("added %+v", c)
	}
	for p, want := range map[string]fs.FileMode{path: 0o600, path + ".lock": 0o600, filepath.Dir(path): fs.ModeDir | 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: %v %v, want mode %v", p, fi.Mode(), err, want)
		}
	}

	// Same name, same keys: idempotent; a new nick is taken, an absent
	// relay keeps the known one.
	before, _ := os.ReadFile(path)
	if c, err = b.Add("alice", aliceInv); err != nil || !c.AddedAt.Equal(added) {
		t.Fatalf("re-add: %+v %v", c, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("an idempotent Add rewrote the file")
	}
	renamed := mustInvite(t, alice(t), "Alice A.", "")
	if c, err = b.Add("alice", renamed); err != nil || c.Nick != "Alice A." || c.Relay != relay || !c.AddedAt.Equal(added) {
		t.Fatalf("refresh: %+v %v", c, err)
	}

	// Same name, other keys: refused, pin kept.
	_, err = b.Add("alice", bobInv)
	wantErrs(t, err, keys.ErrKeyChanged)
	var kc *keys.KeyChangedError
	if !errors.As(err, &kc) || kc.Name != "alice" || kc.Pinned != aliceInv.Public.Fingerprint() ||
		kc.Offered != bobInv.Public.Fingerprint() {
		t.Fatalf("error %#v", err)
	}
	for _, short := range []string{kc.Pinned.Short(), kc.Offered.Short()} {
		if !strings.Contains(err.Error(), short) {
			t.Errorf("error %q lacks fingerprint %s", err, short)
		}
	}
	if c, err = b.Get("alice"); err != nil || !c.Public.Equal(aliceInv.Public) {
		t.Fatalf("after a refused change: %+v %v", c, err)
	}

	// Same keys, another name.
	_, err = b.Add("alice2", aliceInv)
	wantErrs(t, err, keys.ErrDuplicateContact)

	// Verify, look up, list.
	if c, err = b.Verify("alice"); err != nil || !c.Verified || !c.VerifiedAt.After(added) {
		t.Fatalf("verify: %+v %v", c, err)
	}
	if _, err = b.Add("bob", bobInv); err != nil {
		t.Fatal(err)
	}
	if c, err = b.ByID(bobInv.Public.ID()); err != nil || c.Name != "bob" {
		t.Fatalf("ByID: %+v %v", c, err)
	}
	cs, err := b.List()
	if err != nil || len(cs) != 2 || cs[0].Name != "alice" || cs[1].Name != "bob" || !cs[0].Verified {
		t.Fatalf("List: %+v %v", cs, err)
	}

	// Replace: bob's keys are pinned, so they cannot be moved to alice.
	_, err = b.Replace("alice", bobInv)
	wantErrs(t, err, keys.ErrDuplicateContact)
	if err := b.Remove("bob"); err != nil {
		t.Fatal(err)
	}
	if c, err = b.Replace("alice", bobInv); err != nil || !c.Public.Equal(bobInv.Public) || c.Verified ||
		c.Nick != "bob" || c.Relay != relay || !c.AddedAt.After(added) {
		t.Fatalf("replace: %+v %v", c, err)
	}
	if c, err = b.Get("alice"); err != nil || !c.Public.Equal(bobInv.Public) {
		t.Fatalf("after replace: %+v %v", c, err)
	}

	// Unknown names and ids.
	_, err = b.Get("carol")
	wantErrs(t, err, keys.ErrUnknownContact)
	_, err = b.ByID(aliceInv.Public.ID())
	wantErrs(t, err, keys.ErrUnknownContact)
	wantErrs(t, b.Remove("carol"), keys.ErrUnknownContact)
	_, err = b.Verify("carol")
	wantErrs(t, err, keys.ErrUnknownContact)
	_, err = b.Replace("carol", aliceInv)
	wantErrs(t, err, keys.ErrUnknownContact)

	if err := b.Remove("alice"); err != nil {
		t.Fatal(err)
	}
	if cs, err := b.List(); err != nil || len(cs) != 0 {
		t.Fatalf("after removing all: %v %v", cs, err)
	}
}

func TestBookInvalidInput(t *testing.T) {
	b := openBook(t, filepath.Join(t.TempDir(), "contacts"), nil)
	inv := mustInvite(t, alice(t), "alice", "")
	for _, name := range []string{"", "-rf", ".hidden", "a b", "tab\there", "ünï", "a/b", "$(x)", strings.Repeat("a", 65)} {
		_, err := b.Add(name, inv)
		wantErrs(t, err, keys.ErrInvalidContactName)
		_, err = b.Get(name)
		wantErrs(t, err, keys.ErrInvalidContactName)
	}
	for _, name := range []string{"a", "Alice", "bob.smith", "ci_bot-2", strings.Repeat("a", 64)} {
		if err := keys.CheckContactName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	_, err := b.Add("zero", keys.Invite{})
	wantErrs(t, err, keys.ErrInviteInvalid)
	_, err = b.Add("badnick", keys.Invite{Public: inv.Public, Name: "\x1b[31m"})
	wantErrs(t, err, keys.ErrInvalidNick)
}

func TestBookSharedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "contacts")
	one, two := openBook(t, path, nil), openBook(t, path, nil)
	if _, err := one.Add("alice", mustInvite(t, alice(t), "alice", "")); err != nil {
		t.Fatal(err)
	}
	if c, err := two.Get("alice"); err != nil || c.Nick != "alice" {
		t.Fatalf("second book: %+v %v", c, err)
	}
	if _, err := two.Add("bob", mustInvite(t, bob(t), "bob", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := two.Verify("alice"); err != nil {
		t.Fatal(err)
	}
	if c, err := one.Get("alice"); err != nil || !c.Verified {
		t.Fatalf("first book does not see the verification: %+v %v", c, err)
	}
	if cs, err := one.List(); err != nil || len(cs) != 2 {
		t.Fatalf("first book: %v %v", cs, err)
	}
}

func TestBookConcurrentAdds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "contacts")
	const n = 24
	invs := make([]keys.Invite, n)
	for i := range invs {
		invs[i] = mustInvite(t, peer(t, i), fmt.Sprintf("peer %d", i), "")
	}
	shared := openBook(t, path, nil)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			b := shared
			if i%2 == 0 { // half through their own Book, like another process
				var err error
				if b, err = keys.OpenBook(path); err != nil {
					errs <- err
					return
				}
			}
			_, err := b.Add(fmt.Sprintf("peer%02d", i), invs[i])
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	cs, err := shared.List()
	if err != nil || len(cs) != n {
		t.Fatalf("%d contacts after %d concurrent adds (%v)", len(cs), n, err)
	}
	for i, c := range cs {
		if !c.Public.Equal(invs[i].Public) {
			t.Errorf("contact %s has the wrong keys", c.Name)
		}
	}
}

func TestBookCorruptFileKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "contacts")
	b := openBook(t, path, nil)
	if _, err := b.Add("alice", mustInvite(t, alice(t), "alice", "")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	damaged := bytes.Replace(data, []byte("alice"), []byte("mallory"), 1)
	if err := os.WriteFile(path, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := keys.OpenBook(path)
	wantErrs(t, err, keys.ErrCorrupt)
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	_, err = b.Add("bob", mustInvite(t, bob(t), "bob", ""))
	wantErrs(t, err, keys.ErrCorrupt)
	wantErrs(t, b.Remove("alice"), keys.ErrCorrupt)
	_, err = b.Get("alice")
	wantErrs(t, err, keys.ErrCorrupt)
	if after, _ := os.ReadFile(path); !bytes.Equal(after, damaged) {
		t.Fatal("a corrupt contacts file was overwritten")
	}
}

func TestBookPermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "contacts")
	b := openBook(t, path, nil)
	if _, err := b.Add("alice", mustInvite(t, alice(t), "alice", "")); err != nil {
		t.Fatal(err)
	}
	// Readable by others is fine (public keys); writable is not.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get("alice"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o664); err != nil {
		t.Fatal(err)
	}
	_, err := b.Get("alice")
	wantErrs(t, err, keys.ErrInsecurePermissions)
	if !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("error %q lacks the chmod hint", err)
	}
}

func TestContactsFileFormat(t *testing.T) {
	a, err := wire.IdentityFromSeeds(seed(0), seed(32))
	if err != nil {
		t.Fatal(err)
	}
	c := keys.Contact{Name: "alice", Public: a.Public(), Nick: "Alice", AddedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	good := keys.MarshalContacts([]keys.Contact{c})
	if _, err := keys.ParseContacts(good); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(good), "\n")
	line := lines[1]
	recheck := func(body string) []byte {
		return keys.AppendCheckLine([]byte(body), keys.ContextContactsFileCheck)
	}
	many := lines[0] + strings.Repeat(line, keys.MaxContacts+1)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty book", recheck(lines[0]), nil},
		{"newer version", recheck("wschat-contacts v2\n" + line), keys.ErrUnsupportedVersion},
		{"duplicate", recheck(lines[0] + line + line), keys.ErrCorrupt},
		{"same keys twice", recheck(lines[0] + line + strings.Replace(line, "alice", "alicf", 1)), keys.ErrCorrupt},
		{"unsorted", recheck(lines[0] + strings.Replace(line, "alice", "zed", 1) + strings.Replace(line, "alice", "bob", 1)), keys.ErrCorrupt},
		{"six fields", recheck(lines[0] + strings.Replace(line, "\tAlice", "", 1)), keys.ErrCorrupt},
		{"empty relay", recheck(lines[0] + strings.Replace(line, "\t-\tAlice", "\t\tAlice", 1)), keys.ErrCorrupt},
		{"local time", recheck(lines[0] + strings.Replace(line, "00:00:00Z", "01:00:00+01:00", 1)), keys.ErrCorrupt},
		{"bad name", recheck(lines[0] + strings.Replace(line, "alice", "-alice", 1)), keys.ErrInvalidContactName},
		{"too many", recheck(many), keys.ErrCorrupt},
		{"bit flip", []byte(strings.Replace(string(good), "Alice", "Alicf", 1)), keys.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := keys.ParseContacts(tc.in)
			if tc.want == nil {
				if err != nil || !bytes.Equal(keys.MarshalContacts(cs), tc.in) {
					t.Fatalf("%v %v", cs, err)
				}
				return
			}
			wantErrs(t, err, tc.want)
		})
	}
}
