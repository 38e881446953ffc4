package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mdp/qrterminal/v3"
	"github.com/spf13/cobra"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

func newKeygenCmd(e *env, h *homeFlags) *cobra.Command {
	var name string
	var force, offline bool
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Make this identity and print its invite",
		Long: `Make a new identity (an X25519 and an Ed25519 keypair from fresh randomness)
in the home directory, with a nickname and the relay it uses, and print its
invite: one line to hand to the people and agents you will talk with.
The key file is written 0600 and never overwritten without --force.

--relay is required: an invite without a relay reaches no one. keygen
registers the identity on that relay (a relay keeps messages only for
identities registered on it, for 90 days after their last wschat listen,
chat or mcp by default) and refuses a relay it cannot reach; --offline
skips that (and allows no relay).
Exit codes: 0 made, 1 the relay cannot be reached, 2 usage.`,
		Example: `  wschat keygen --name alice --relay 'ws://127.0.0.1:8443/#YFpy...'
  WSCHAT_HOME=~/.wschat-bot wschat keygen --name bot --relay "$RELAY"
  wschat keygen --name laptop --offline --relay "$RELAY"   # on a train`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := keys.CheckNick(name); err != nil {
				return usageError{fmt.Errorf("--name: %w", err)}
			}
			switch {
			case h.relay == "" && !offline:
				return withHint(usageError{errors.New("--relay ADDRESS is required")}, "pass the line 'wschat relay' prints, or --offline to make an identity without one")
			case h.relay != "":
				if _, err := wire.ParseRelayAddress(h.relay); err != nil {
					return usageError{fmt.Errorf("--relay: %w", err)}
				}
			}
			if _, err := os.Lstat(h.identityPath()); err == nil && !force {
				return withHint(fmt.Errorf("an identity already exists in %s", h.home), "keep it, or replace it (its contacts will need your new invite) with --force")
			}
			id, err := wire.NewIdentity(rand.Reader)
			if err != nil {
				return err
			}
			if h.relay != "" && !offline {
				if err := registerIdentity(cmd.Context(), h.relay, id); err != nil {
					return err
				}
			}
			f := &keys.IdentityFile{Identity: id, Name: name, Relay: h.relay}
			if err := keys.Save(h.identityPath(), f, keys.SaveOptions{Force: force}); err != nil {
				if errors.Is(err, keys.ErrExists) {
					return withHint(fmt.Errorf("an identity already exists in %s", h.home), "keep it, or replace it (its contacts will need your new invite) with --force")
				}
				return err
			}
			fmt.Fprintln(e.stderr, "wschat: made identity", id.Public().ID(), "in", h.home)
			fmt.Fprintln(e.stdout, f.Invite().String())
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", defaultNick(), "nickname shown to your contacts")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing identity")
	cmd.Flags().BoolVar(&offline, "offline", false, "do not register on the relay now (it stores messages for you only from your first wschat listen)")
	return cmd
}

// registerIdentity registers a new identity on its relay, so that
// messages can wait there for it before it first listens; a relay that
// cannot be reached is refused.
func registerIdentity(ctx context.Context, relay string, id *wire.Identity) error {
	addr, err := wire.ParseRelayAddress(relay)
	if err != nil {
		return usageError{fmt.Errorf("--relay: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := bridge.Register(ctx, addr, id, 10*time.Second); err != nil {
		if rerr := refusalError("", err); rerr != nil {
			return rerr
		}
		hint := "check the address (the line `wschat relay` printed) and that the relay is running; --offline makes the identity without registering"
		if errors.Is(err, bridge.ErrRelayAuth) {
			hint = "the key after # in the address is not this relay's: copy the whole line `wschat relay` printed"
		}
		return withHint(fmt.Errorf("could not register on the relay %s: %w", addr.URL, err), hint)
	}
	return nil
}

func defaultNick() string {
	if u := os.Getenv("USER"); u != "" && keys.CheckNick(u) == nil {
		return u
	}
	return "wschat"
}

func newInviteCmd(e *env, h *homeFlags) *cobra.Command {
	var qr, link bool
	cmd := &cobra.Command{
		Use:   "invite",
		Short: "Print this identity's invite again",
		Example: `  wschat invite
  wschat invite --qr      # as a QR code in the terminal
  wschat invite --link    # a link that opens the relay's web app on "add this contact?"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := h.loadIdentity()
			if err != nil {
				return err
			}
			if h.relay != "" {
				if _, err := wire.ParseRelayAddress(h.relay); err != nil {
					return usageError{fmt.Errorf("--relay: %w", err)}
				}
				f.Relay = h.relay
			}
			inv := f.Invite().String()
			if link {
				if f.Relay == "" {
					return withHint(errors.New("this identity names no relay, and the link opens the web app its relay serves"), "pass --relay ADDRESS")
				}
				a, err := wire.ParseRelayAddress(f.Relay)
				if err != nil {
					return err
				}
				inv = httpURL(a.URL) + "#invite=" + inv
			}
			if qr {
				qrterminal.GenerateWithConfig(inv, qrterminal.Config{Level: qrterminal.L, Writer: e.stdout, HalfBlocks: true,
					BlackChar: qrterminal.BLACK_BLACK, WhiteBlackChar: qrterminal.WHITE_BLACK, WhiteChar: qrterminal.WHITE_WHITE, BlackWhiteChar: qrterminal.BLACK_WHITE, QuietZone: 2})
			}
			fmt.Fprintln(e.stdout, inv)
			return nil
		},
	}
	cmd.Flags().BoolVar(&qr, "qr", false, "also draw the invite as a QR code")
	cmd.Flags().BoolVar(&link, "link", false, "print a link to the relay's web app that offers to add this identity")
	return cmd
}
