package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

func newSetRelayCmd(e *env, h *homeFlags) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "set-relay ADDRESS",
		Short: "Move this identity to another relay and tell every contact",
		Long: fmt.Sprintf(`Move this identity to the relay at ADDRESS (the line 'wschat relay' prints).
wschat checks that the relay answers (and registers there), saves it in the
identity file, and sends every contact a signed notice that their wschat
applies by itself: your keys stay the same, so nothing needs verifying
again. Your new invite is printed on stdout.

Contacts who have not heard yet still write to the old relay: wschat keeps
collecting from it until it is empty and every contact has acknowledged the
move, for at most %s. Notices that cannot be handed over now stay in the
outbox and go out with the next wschat command that connects.
Exit codes: 0 moved, 1 the new relay does not answer (nothing changed).`, bridge.DrainGrace),
		Example: `  wschat set-relay 'wss://relay.example.com/#YFpyXSpK3-6xop4X7dYhwbdZPujNvESsbEq24vgF0jw'`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			to, err := wire.ParseRelayAddress(args[0])
			if err != nil {
				return usageError{err}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return runSetRelay(ctx, e, h, to)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

func runSetRelay(ctx context.Context, e *env, h *homeFlags, to wire.RelayAddress) error {
	hm, err := h.open(homeOptions{client: true})
	if err != nil {
		return err
	}
	defer hm.Close()
	if hm.relay == to {
		fmt.Fprintln(e.stderr, "wschat: this identity already uses", to.URL)
		fmt.Fprintln(e.stdout, hm.file.Invite().String())
		return nil
	}
	if _, err := hm.client.Probe(ctx, to, true); err != nil {
		return withHint(fmt.Errorf("%w; nothing was changed", err), "check the address: it is the line 'wschat relay' printed")
	}
	f := *hm.file
	f.Relay = to.String()
	if err := keys.Save(h.identityPath(), &f, keys.SaveOptions{Force: true}); err != nil {
		return err
	}
	n, err := hm.client.MoveTo(ctx, to)
	if err != nil {
		return storeHint(fmt.Errorf("moved, but telling the contacts failed: %w", err))
	}
	fmt.Fprintln(e.stdout, f.Invite().String())
	taken, err := hm.client.Deliver(ctx)
	fmt.Fprintf(e.stderr, "wschat: moved to %s; told %d of %d contact(s)\n", to.URL, min(taken, n), n)
	var re *bridge.RelayError
	if errors.As(err, &re) || errors.Is(err, bridge.ErrNotConfirmed) {
		return warning{withHint(fmt.Errorf("some notices wait in the outbox: %w", err), "they go out with the next wschat command that reaches those relays")}
	}
	if err != nil {
		return warning{storeHint(err)}
	}
	return nil
}
