package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wschat/wschat/wire"
)

// Contact book errors.
var (
	// ErrUnknownContact: no contact has that name (or routing id).
	ErrUnknownContact = errors.New("unknown contact")
	// ErrKeyChanged: a contact name is pinned to other keys than the ones
	// offered. The pin is kept. Returned as a *KeyChangedError.
	ErrKeyChanged = errors.New("contact's keys changed")
	// ErrDuplicateContact: the offered keys (or their routing id) are
	// already pinned under another name.
	ErrDuplicateContact = errors.New("already a contact under another name")
	// ErrBookFull: the book already holds MaxContacts contacts.
	ErrBookFull = errors.New("contact book is full")
)

// KeyChangedError is the trust-on-first-use alarm: the name is pinned to
// one identity and an invite for another one was offered under it. It
// carries both fingerprints (shown only in short form). errors.Is(err,
// ErrKeyChanged) holds for it.
type KeyChangedError struct {
	Name    string
	Pinned  wire.Fingerprint
	Offered wire.Fingerprint
}

func (e *KeyChangedError) Error() string {
	return fmt.Sprintf("contact %q: keys changed: pinned %s, offered %s; the pinned keys were kept "+
		"(if %s really has a new identity, compare safety numbers with them, then replace the pin)",
		e.Name, e.Pinned.Short(), e.Offered.Short(), e.Name)
}

// Unwrap makes errors.Is(err, ErrKeyChanged) hold.
func (e *KeyChangedError) Unwrap() error { return ErrKeyChanged }

// Contact is a pinned identity under a local name.
type Contact struct {
	Name       string              // local name, CheckContactName rules; unique in the book
	Public     wire.PublicIdentity // the pinned keys
	Nick       string              // the nickname from the contact's invite
	Relay      string              // relay address from the invite; may be empty
	Verified   bool                // the safety number was confirmed with the contact
	AddedAt    time.Time           // when these keys were pinned (UTC, whole seconds)
	VerifiedAt time.Time           // when Verify was last called; zero unless Verified
}

// Invite returns the contact's public identity as an invite.
func (c Contact) Invite() Invite {
	return Invite{Public: c.Public, Name: c.Nick, Relay: c.Relay}
}

// Book is the contact book: a contacts file shared by every wschat process
// of one home. Each call reads the file afresh, so changes made by other
// Books and processes are seen at once; changes are read-modify-write under
// an exclusive flock on "<path>.lock" and published atomically. A Book is
// safe for concurrent use once Now is set.
type Book struct {
	path string // static after construction

	mu     sync.Mutex
	cached []Contact   // guarded by mu: the file's contacts when it had key cacheAt
	cacheK fileVersion // guarded by mu

	// Now is the clock for AddedAt and VerifiedAt; nil means time.Now. Set
	// it before first use.
	Now func() time.Time
}

// OpenBook opens the contact book stored at path. A missing file is an
// empty book (the file and its directory are made on the first change). It
// reads the file once, so a corrupt or insecure file is reported here.
func OpenBook(path string) (*Book, error) {
	b := &Book{path: path}
	if _, err := b.read(); err != nil {
		return nil, err
	}
	return b, nil
}

// Path is the contacts file's path.
func (b *Book) Path() string { return b.path }

func (b *Book) now() time.Time {
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	return now().UTC().Truncate(time.Second)
}

// read returns the contacts, sorted by name. Writers replace the file by
// rename, so a reader needs no lock to see one whole version.
func (b *Book) read() ([]Contact, error) {
	// Writers replace the file by rename, so an unchanged version (inode,
	// size, modification time) means unchanged contents: a lookup per
	// incoming message costs a stat, not a parse.
	v, vok := statVersion(b.path)
	if vok {
		b.mu.Lock()
		if b.cached != nil && b.cacheK == v {
			cs := slices.Clone(b.cached)
			b.mu.Unlock()
			return cs, nil
		}
		b.mu.Unlock()
	}
	cs, err := b.readFile()
	if err == nil && vok {
		b.mu.Lock()
		b.cached, b.cacheK = slices.Clone(cs), v
		if b.cached == nil {
			b.cached = []Contact{}
		}
		b.mu.Unlock()
	}
	return cs, err
}

// fileVersion tells one version of a file from another.
type fileVersion struct {
	ino, size, mtime int64
	mode             os.FileMode // a chmod must be seen (the permission check)
}

func statVersion(path string) (fileVersion, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileVersion{}, false
	}
	v := fileVersion{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
	v.ino = fileIno(fi)
	return v, true
}

func (b *Book) readFile() ([]Contact, error) {
	data, err := readFileLimited(b.path, MaxContactsFileSize, 0o022)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var perr *InsecurePermissionsError
	if errors.As(err, &perr) {
		return nil, fmt.Errorf("contacts file: %w", err)
	}
	if err == nil {
		var cs []Contact
		if cs, err = parseContacts(data); err == nil {
			return cs, nil
		}
		return nil, fmt.Errorf("contacts file %q: %w (the file was left as it is)", b.path, err)
	}
	return nil, fmt.Errorf("contacts file %q: %w", b.path, err)
}

// update runs change on the current contacts under the exclusive lock and
// writes the contacts it returns if it reports a change. A file that does
// not parse is never written.
func (b *Book) update(change func(cs []Contact) ([]Contact, bool, error)) error {
	if err := os.MkdirAll(filepath.Dir(b.path), dirMode); err != nil {
		return fmt.Errorf("contacts: %w", err)
	}
	unlock, err := lockFile(b.path + ".lock")
	if err != nil {
		return fmt.Errorf("contacts: %w", err)
	}
	defer unlock()
	cs, err := b.read()
	if err != nil {
		return err
	}
	cs, changed, err := change(cs)
	if err != nil || !changed {
		return err
	}
	if err := writeFileAtomic(b.path, marshalContacts(cs), true); err != nil {
		return fmt.Errorf("writing contacts: %w", err)
	}
	return nil
}

func find(cs []Contact, name string) (int, bool) {
	return slices.BinarySearchFunc(cs, name, func(c Contact, name string) int {
		return strings.Compare(c.Name, name)
	})
}

// pinnedElsewhere returns the name of a contact other than name whose
// routing id is pub's, if any.
func pinnedElsewhere(cs []Contact, name string, pub wire.PublicIdentity) (string, bool) {
	for _, c := range cs {
		if c.Name != name && c.Public.ID() == pub.ID() {
			return c.Name, true
		}
	}
	return "", false
}

func checkInvite(inv Invite) error {
	if _, err := NewInvite(inv.Public, inv.Name, inv.Relay); err != nil {
		return err
	}
	return nil
}

// Add pins inv's keys under name (trust on first use) and returns the
// contact. Adding the same keys under the same name again only refreshes
// the nickname and relay (and keeps verification). Errors:
// ErrInvalidContactName; ErrInviteInvalid for an invite with bad fields;
// *KeyChangedError if name is pinned to other keys (the pin is kept);
// ErrDuplicateContact if the keys are pinned under another name;
// ErrBookFull.
func (b *Book) Add(name string, inv Invite) (Contact, error) {
	if err := CheckContactName(name); err != nil {
		return Contact{}, err
	}
	if err := checkInvite(inv); err != nil {
		return Contact{}, err
	}
	var out Contact
	err := b.update(func(cs []Contact) ([]Contact, bool, error) {
		i, ok := find(cs, name)
		if ok {
			c := &cs[i]
			if !c.Public.Equal(inv.Public) {
				return nil, false, &KeyChangedError{Name: name, Pinned: c.Public.Fingerprint(), Offered: inv.Public.Fingerprint()}
			}
			changed := refresh(c, inv)
			out = *c
			return cs, changed, nil
		}
		if other, ok := pinnedElsewhere(cs, name, inv.Public); ok {
			return nil, false, fmt.Errorf("%w (%q); use that name, or remove it first", ErrDuplicateContact, other)
		}
		if len(cs) >= MaxContacts {
			return nil, false, fmt.Errorf("%w: it holds %d contacts; remove some first", ErrBookFull, len(cs))
		}
		out = Contact{Name: name, Public: inv.Public, Nick: inv.Name, Relay: inv.Relay, AddedAt: b.now()}
		return slices.Insert(cs, i, out), true, nil
	})
	return out, err
}

// refresh updates c's nickname and relay from an invite for the same keys
// and reports whether anything changed. An invite without a relay keeps
// the known one.
func refresh(c *Contact, inv Invite) bool {
	changed := false
	if c.Nick != inv.Name {
		c.Nick, changed = inv.Name, true
	}
	if inv.Relay != "" && c.Relay != inv.Relay {
		c.Relay, changed = inv.Relay, true
	}
	return changed
}

// Replace re-pins name to inv's keys: the explicit answer to
// ErrKeyChanged, after the user has checked the new keys with the contact.
// New keys start unverified, with AddedAt now; the same keys only refresh
// the nickname and relay. Errors: ErrInvalidContactName, ErrInviteInvalid,
// ErrUnknownContact, ErrDuplicateContact.
func (b *Book) Replace(name string, inv Invite) (Contact, error) {
	if err := CheckContactName(name); err != nil {
		return Contact{}, err
	}
	if err := checkInvite(inv); err != nil {
		return Contact{}, err
	}
	var out Contact
	err := b.update(func(cs []Contact) ([]Contact, bool, error) {
		i, ok := find(cs, name)
		if !ok {
			return nil, false, unknown(name)
		}
		c := &cs[i]
		if c.Public.Equal(inv.Public) {
			changed := refresh(c, inv)
			out = *c
			return cs, changed, nil
		}
		if other, ok := pinnedElsewhere(cs, name, inv.Public); ok {
			return nil, false, fmt.Errorf("%w (%q); use that name, or remove it first", ErrDuplicateContact, other)
		}
		relay := inv.Relay
		if relay == "" {
			relay = c.Relay
		}
		*c = Contact{Name: name, Public: inv.Public, Nick: inv.Name, Relay: relay, AddedAt: b.now()}
		out = *c
		return cs, true, nil
	})
	return out, err
}

// Verify records that the user compared the safety number with the
// contact, and returns the contact. Errors: ErrInvalidContactName,
// ErrUnknownContact.
func (b *Book) Verify(name string) (Contact, error) {
	if err := CheckContactName(name); err != nil {
		return Contact{}, err
	}
	var out Contact
	err := b.update(func(cs []Contact) ([]Contact, bool, error) {
		i, ok := find(cs, name)
		if !ok {
			return nil, false, unknown(name)
		}
		cs[i].Verified, cs[i].VerifiedAt = true, b.now()
		out = cs[i]
		return cs, true, nil
	})
	return out, err
}

// Remove deletes the contact. Errors: ErrInvalidContactName,
// ErrUnknownContact.
func (b *Book) Remove(name string) error {
	if err := CheckContactName(name); err != nil {
		return err
	}
	return b.update(func(cs []Contact) ([]Contact, bool, error) {
		i, ok := find(cs, name)
		if !ok {
			return nil, false, unknown(name)
		}
		return slices.Delete(cs, i, i+1), true, nil
	})
}

// Get returns the contact called name. Errors: ErrInvalidContactName,
// ErrUnknownContact.
func (b *Book) Get(name string) (Contact, error) {
	if err := CheckContactName(name); err != nil {
		return Contact{}, err
	}
	cs, err := b.read()
	if err != nil {
		return Contact{}, err
	}
	i, ok := find(cs, name)
	if !ok {
		return Contact{}, unknown(name)
	}
	return cs[i], nil
}

// ByID returns the contact with routing id id, to name the sender of an
// incoming message. Error: ErrUnknownContact.
func (b *Book) ByID(id wire.RoutingID) (Contact, error) {
	cs, err := b.read()
	if err != nil {
		return Contact{}, err
	}
	for _, c := range cs {
		if c.Public.ID() == id {
			return c, nil
		}
	}
	return Contact{}, fmt.Errorf("%w: no contact has routing id %s", ErrUnknownContact, id)
}

// List returns every contact, sorted by name.
func (b *Book) List() ([]Contact, error) {
	return b.read()
}

func unknown(name string) error {
	return fmt.Errorf("%w: no contact is named %q", ErrUnknownContact, name)
}

// SetRelay records that the contact called name, pinned to pub, now
// receives on relay (a canonical relay address): what a contact's signed
// relay-moved notice says. The keys stay, and so does verification.
// Errors: ErrUnknownContact (also when name is now pinned to other keys),
// ErrInviteInvalid for a bad relay address.
func (b *Book) SetRelay(name string, pub wire.PublicIdentity, relay string) (Contact, error) {
	if err := checkRelay(relay); err != nil || relay == "" {
		return Contact{}, fmt.Errorf("%w: relay %q: %v", ErrInviteInvalid, relay, err)
	}
	var out Contact
	err := b.update(func(cs []Contact) ([]Contact, bool, error) {
		i, ok := find(cs, name)
		if !ok || !cs[i].Public.Equal(pub) {
			return nil, false, unknown(name)
		}
		changed := cs[i].Relay != relay
		cs[i].Relay = relay
		out = cs[i]
		return cs, changed, nil
	})
	return out, err
}
