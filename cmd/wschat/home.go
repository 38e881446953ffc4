package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// homeFlags are the settings every identity command shares.
type homeFlags struct {
	home      string
	relay     string
	noHistory bool
}

func (h *homeFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&h.home, "home", defaultHome(), "directory of this identity (key, contacts, message store)")
	cmd.PersistentFlags().StringVar(&h.relay, "relay", "", "relay address (the line 'wschat relay' printed); default: the one saved by keygen")
	cmd.PersistentFlags().BoolVar(&h.noHistory, "no-history", false, "keep no message text on disk once it has been shown (ids are kept to recognise repeats)")
}

func defaultHome() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ".wschat"
	}
	return filepath.Join(dir, "wschat")
}

// The files of a home (PROTOCOL.md §9).
func (h *homeFlags) identityPath() string { return filepath.Join(h.home, "identity") }
func (h *homeFlags) contactsPath() string { return filepath.Join(h.home, "contacts") }
func (h *homeFlags) storePath() string    { return filepath.Join(h.home, "messages.db") }

// loadIdentity reads the identity, with hints for the usual mistakes.
func (h *homeFlags) loadIdentity() (*keys.IdentityFile, error) {
	f, err := keys.Load(h.identityPath(), nil)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, withHint(fmt.Errorf("no identity in %s", h.home), "make one with: wschat keygen --name NAME --relay ADDRESS")
	case errors.Is(err, keys.ErrInsecurePermissions):
		return nil, withHint(err, "the key must be readable by you alone")
	case errors.Is(err, keys.ErrPassphraseRequired):
		return nil, withHint(err, "this version reads passphrase-protected identities only through the keys package")
	case err != nil:
		return nil, err
	}
	return f, nil
}

// relayAddress is --relay, else the identity's saved relay.
func (h *homeFlags) relayAddress(f *keys.IdentityFile) (wire.RelayAddress, error) {
	s := h.relay
	if s == "" {
		s = f.Relay
	}
	if s == "" {
		return wire.RelayAddress{}, withHint(errors.New("no relay address"), "pass --relay ADDRESS (the line `wschat relay` prints) or set WSCHAT_RELAY")
	}
	a, err := wire.ParseRelayAddress(s)
	if err != nil {
		return a, usageError{err}
	}
	return a, nil
}

// home is an opened identity home. It is the one way commands open one:
// the identity (always), the contact book (always), and, when asked, the
// message store and a client over them.
type home struct {
	file   *keys.IdentityFile
	book   *keys.Book
	relay  wire.RelayAddress // set with a client
	store  *bridge.Store     // nil unless opened
	client *bridge.Client    // nil unless opened
	path   string            // the home directory
}

// homeOptions say what a command needs of the home.
type homeOptions struct {
	client bool         // open the store and make a client (needs a relay address)
	logger *slog.Logger // the client's log; nil: none
	// background: return before the store is open (its methods wait for
	// it; an error opening it comes from the first): a one-shot send
	// dials its relay meanwhile.
	background bool
}

// open opens the home for a command. Close what it returns.
//
// The store opens on a goroutine of its own while the identity loads
// (mostly key derivation): they are independent, and a one-shot send
// would otherwise wait for each in turn (it buys ~1 ms of a cold send,
// BenchmarkSendColdVsBase). A home without an identity file gets the
// identity error alone, and no store is made in it.
func (h *homeFlags) open(opt homeOptions) (*home, error) {
	var store *bridge.Store
	if _, err := os.Lstat(h.identityPath()); err == nil && opt.client {
		store = bridge.OpenStoreInBackground(h.storePath(), !h.noHistory)
	}
	hm := &home{path: h.home, store: store}
	err := hm.load(h, opt)
	if err == nil && opt.client && store == nil {
		err = errors.New("no store") // the identity file appeared meanwhile
	}
	if err == nil && store != nil && !opt.background {
		err = storeHint(store.Err())
	}
	if err != nil {
		hm.Close()
		return nil, err
	}
	if opt.client {
		hm.client = bridge.NewClient(bridge.Config{Identity: hm.file.Identity, Relay: hm.relay, Book: hm.book, Store: hm.store, Logger: opt.logger})
	}
	return hm, nil
}

// load reads the identity, the relay address (for a client) and the book.
func (hm *home) load(h *homeFlags, opt homeOptions) error {
	f, err := h.loadIdentity()
	if err != nil {
		return err
	}
	hm.file = f
	if opt.client {
		if hm.relay, err = h.relayAddress(f); err != nil {
			return err
		}
	}
	hm.book, err = keys.OpenBook(h.contactsPath())
	return err
}

// Close closes the client, then the store.
func (hm *home) Close() error {
	var err error
	if hm.client != nil {
		err = hm.client.Close()
	}
	if hm.store != nil {
		err = errors.Join(err, hm.store.Close())
	}
	return err
}

// storeHint adds what to do to a store failure.
func storeHint(err error) error {
	var se *bridge.StoreError
	if !errors.As(err, &se) {
		return err
	}
	switch {
	case errors.Is(err, bridge.ErrStoreEmpty):
		return withHint(err, "restore "+se.Path+" from a backup, or remove it to start an empty history")
	case errors.Is(err, bridge.ErrNotStore):
		return withHint(err, "this file is not wschat's; move it away, or point --home elsewhere")
	case errors.Is(err, bridge.ErrStoreNewer):
		return withHint(err, "upgrade wschat")
	}
	return withHint(err, "run 'wschat doctor' to check the home, or restore "+se.Path+" from a backup")
}

// lookupContact turns a name into a contact, or a trust failure.
func lookupContact(book *keys.Book, name string) (keys.Contact, error) {
	c, err := book.Get(name)
	if errors.Is(err, keys.ErrUnknownContact) {
		known := "none yet"
		if list, _ := book.List(); len(list) > 0 {
			known = ""
			for i, k := range list {
				if i > 0 {
					known += ", "
				}
				known += k.Name
			}
		}
		hint := "add them with: wschat contacts add NAME INVITE"
		if near := nearest(book, name); near != "" {
			hint = "did you mean " + near + "?"
		}
		return c, withHint(trustError{fmt.Errorf("unknown contact %q (known: %s)", name, known)}, hint)
	}
	return c, err
}

// nearest is the contact name closest to name, if one is close (at most
// two edits, and fewer than half the name), for "did you mean".
func nearest(book *keys.Book, name string) string {
	list, _ := book.List()
	best, bestD := "", 3
	for _, c := range list {
		if d := editDistance(strings.ToLower(name), strings.ToLower(c.Name)); d < bestD && d*2 < max(len(name), len(c.Name)) {
			best, bestD = c.Name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// trustError marks a trust failure (exit 4).
type trustError struct{ err error }

func (e trustError) Error() string { return e.err.Error() }
func (e trustError) Unwrap() error { return e.err }

// background is the client's connection (bridge.Client.Run) running
// while a command works: the one way listen and chat run it. Connection
// problems are reported on stderr (not once the command is done); a
// failure Run cannot mend ends it, and err says which.
type background struct {
	changed chan struct{} // signalled when the store changes
	done    chan struct{} // closed when Run has returned
	err     error         // Run's error, once done is closed; nil when stopped
	stop    context.CancelFunc
}

func runBackground(ctx context.Context, e *env, c *bridge.Client) *background {
	ctx, cancel := context.WithCancel(ctx)
	b := &background{changed: make(chan struct{}, 1), done: make(chan struct{}), stop: cancel}
	up := false
	report := func(err error) {
		switch {
		case ctx.Err() != nil:
		case err == nil && up:
			fmt.Fprintln(e.stderr, "wschat: reconnected")
		case err != nil:
			fmt.Fprintf(e.stderr, "wschat: %v; retrying\n", err)
		}
		if err == nil {
			up = true
		}
	}
	go func() {
		defer close(b.done)
		err := c.Run(ctx, b.changed, report)
		if ctx.Err() == nil {
			b.err = runError(err)
		}
	}()
	return b
}

// close stops Run and lets the connection finish the frame in hand (its
// delivery acknowledgement is on its way) before the process exits.
func (b *background) close() {
	b.stop()
	<-b.done
}

// runError adds what to do to a failure of the client's connection.
func runError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bridge.ErrRelayAuth):
		return withHint(err, "check the relay address: its key must be the one 'wschat relay' printed")
	}
	return storeHint(err)
}
