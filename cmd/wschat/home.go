package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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

// open loads everything a messaging command needs. The contact book and
// the store open on a goroutine of their own while the identity loads
// (mostly key derivation): the three are independent, and a one-shot send
// would otherwise wait for each in turn. A home without an identity file
// gets the identity error alone, and no store is made in it.
// The returned function waits for the client's remaining work, closes the
// store, and reports the first failure of that work (see Client.Close).
//
// With ahead, the connection to the relay starts as soon as the identity
// is loaded, with those options, while the store still opens (see
// bridge.DialAhead): a one-shot send gains the store's opening time.
func (h *homeFlags) open(ctx context.Context, ahead *bridge.DialOptions) (*bridge.Client, *keys.Book, func() error, error) {
	type opened struct {
		book  *keys.Book
		store *bridge.Store
		err   error
	}
	openRest := func() (o opened) {
		if o.book, o.err = keys.OpenBook(h.contactsPath()); o.err == nil {
			o.store, o.err = bridge.OpenStore(h.storePath(), !h.noHistory)
		}
		return o
	}
	var rest chan opened
	if _, err := os.Lstat(h.identityPath()); err == nil {
		rest = make(chan opened, 1)
		go func() { rest <- openRest() }()
	}
	f, err := h.loadIdentity()
	var addr wire.RelayAddress
	if err == nil {
		addr, err = h.relayAddress(f)
	}
	var dialing *bridge.Dialing
	if err == nil && ahead != nil && rest != nil {
		dialing = bridge.DialAhead(ctx, addr, f.Identity, *ahead)
	}
	var o opened
	switch {
	case rest != nil:
		o = <-rest
	case err == nil:
		o = openRest()
	}
	if err == nil {
		err = o.err
	}
	if err != nil {
		if dialing != nil {
			dialing.Close()
		}
		if o.store != nil {
			o.store.Close()
		}
		return nil, nil, nil, err
	}
	c := bridge.NewClient(bridge.Config{Identity: f.Identity, Relay: addr, Book: o.book, Store: o.store, Dialing: dialing})
	closeAll := func() error {
		err := c.Close() // what Send left running uses the store
		o.store.Close()
		return err
	}
	return c, o.book, closeAll, nil
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
		return c, withHint(trustError{fmt.Errorf("unknown contact %q (known: %s)", name, known)}, "add them with: wschat contacts add NAME INVITE")
	}
	return c, err
}

// trustError marks a trust failure (exit 4).
type trustError struct{ err error }

func (e trustError) Error() string { return e.err.Error() }
func (e trustError) Unwrap() error { return e.err }
