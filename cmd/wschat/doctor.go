package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

func newDoctorCmd(e *env, h *homeFlags) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the home (permissions, identity, contacts, store, relays) and say what to do",
		Long: `Check this identity's home: the directory's permissions, the identity file,
the contact book, the message store (SQLite's quick_check, its schema, the
outbox), and whether the own relay and every contact's relay answer. One line
per check, "ok" or "FAIL" with a hint.
Exit codes: 0 all is well, 1 something needs doing.`,
		Example: "  wschat doctor\n  wschat --home ~/.wschat-bot doctor",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			d := &doctor{e: e}
			d.run(ctx, h)
			if d.failed > 0 {
				return fmt.Errorf("%d problem(s) found", d.failed)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 20*time.Second, "give up on the relays after this long")
	return cmd
}

type doctor struct {
	e      *env
	failed int
}

func (d *doctor) ok(what, format string, args ...any) {
	fmt.Fprintf(d.e.stdout, "ok    %s: %s\n", what, fmt.Sprintf(format, args...))
}

func (d *doctor) fail(what string, err error, hint string) {
	d.failed++
	fmt.Fprintf(d.e.stdout, "FAIL  %s: %v\n", what, err)
	var he hintError
	if hint == "" && errors.As(err, &he) {
		hint = he.hint
	}
	if hint != "" {
		fmt.Fprintf(d.e.stdout, "      hint: %s\n", hint)
	}
}

func (d *doctor) run(ctx context.Context, h *homeFlags) {
	fi, err := os.Stat(h.home)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.fail("home", fmt.Errorf("%s does not exist", h.home), "make an identity with: wschat keygen --name NAME --relay ADDRESS")
		return
	case err != nil:
		d.fail("home", err, "")
		return
	case fi.Mode().Perm()&0o077 != 0:
		d.fail("home", fmt.Errorf("%s is %v: others can list it", h.home, fi.Mode().Perm()), "chmod 700 "+shellQuote(h.home))
	default:
		d.ok("home", "%s (%v)", h.home, fi.Mode().Perm())
	}
	f, err := h.loadIdentity()
	if err != nil {
		d.fail("identity", err, "")
		return
	}
	d.ok("identity", "%s, routing id %s", f.Name, f.Identity.Public().ID())
	book, err := keys.OpenBook(h.contactsPath())
	if err != nil {
		d.fail("contacts", err, "fix or move "+h.contactsPath()+"; each contact can be added again from their invite")
		return
	}
	contacts, _ := book.List()
	d.ok("contacts", "%d", len(contacts))
	store, err := bridge.OpenStore(h.storePath(), true)
	if err != nil {
		d.fail("store", storeHint(err), "")
	} else {
		d.store(ctx, store)
		defer store.Close()
	}
	relay, err := h.relayAddress(f)
	if err != nil {
		d.fail("relay", err, "")
		return
	}
	c := bridge.NewClient(bridge.Config{Identity: f.Identity, Relay: relay, Book: book, Store: store})
	d.relay(ctx, c, "relay", relay)
	seen := map[wire.RelayAddress]bool{relay: true}
	for _, ct := range contacts {
		a, err := wire.ParseRelayAddress(ct.Relay)
		if ct.Relay == "" || err != nil || seen[a] {
			continue
		}
		seen[a] = true
		d.relay(ctx, c, "relay of "+ct.Name, a)
	}
}

func (d *doctor) store(ctx context.Context, s *bridge.Store) {
	if err := s.Check(ctx); err != nil {
		d.fail("store", err, "restore "+s.Path()+" from a backup; or move it away (history and outbox are lost) and wschat makes a new one")
		return
	}
	out, err := s.Outbox(ctx)
	if err != nil {
		d.fail("store", err, "")
		return
	}
	d.ok("store", "%s sound (schema %d), %d message(s) in the outbox", s.Path(), bridge.SchemaVersion, len(out))
	for _, p := range out {
		if p.LastError != "" {
			d.fail("outbox", fmt.Errorf("message %s waits since %s: %s", p.ID, p.CreatedAt.Format(time.RFC3339), p.LastError), "it goes out when its relay answers")
			break
		}
	}
}

func (d *doctor) relay(ctx context.Context, c *bridge.Client, what string, a wire.RelayAddress) {
	took, err := c.Probe(ctx, a, false)
	if err != nil {
		hint := "is the relay running? is the address right?"
		if errors.Is(err, bridge.ErrRelayAuth) {
			hint = "the key in the address does not match the relay's; get the address again"
		}
		d.fail(what, err, hint)
		return
	}
	d.ok(what, "%s answers (%v)", a.URL, took.Round(time.Millisecond))
}

// shellQuote quotes s for a shell command in a hint.
func shellQuote(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '.' || r == '_' || r == '-') {
			return "'" + s + "'"
		}
	}
	return s
}
