package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

func newSendCmd(e *env, h *homeFlags) *cobra.Command {
	var to, wait string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "send --to NAME [TEXT...]",
		Short: "Send one message and exit",
		Long: fmt.Sprintf(`Send TEXT (or all of stdin when no TEXT is given) to a contact as one message.
It returns once the relay has taken custody of it (delivered live, or stored
for when the contact comes back); with --wait delivered, once the contact's
client has acknowledged it. The message id is printed on stdout.

Read from stdin, the message loses one trailing newline (what echo and
most programs end with); on a terminal, end it with Ctrl+D.

A message that could not be handed over stays in the outbox and goes out
with the next wschat command that reaches the contact's relay. At most %d
bytes. A message the relay refuses (the contact is not registered there,
their mailbox is full, ...) leaves the outbox: the error says why, and it
is not sent again by itself.
Exit codes: 0 sent, 1 error (relay unreachable, refused), 3 not confirmed
within --timeout, 4 unknown contact.`, wire.MaxBodySize),
		Example: `  wschat send --to alice "backup finished"
  df -h | wschat send --to alice
  wschat send --to alice --wait delivered --timeout 1m "deploy?"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usageError{errors.New("--to NAME is required")}
			}
			if wait != "" && wait != "custody" && wait != "delivered" {
				return usageError{fmt.Errorf("--wait %q: want custody or delivered", wait)}
			}
			var body []byte
			if len(args) > 0 {
				body = []byte(strings.Join(args, " "))
			} else {
				if _, tty := terminal(e.stdin); tty {
					fmt.Fprintln(e.stderr, "wschat: reading the message from stdin; Ctrl+D to send")
				}
				b, err := io.ReadAll(io.LimitReader(e.stdin, wire.MaxBodySize+2))
				if err != nil {
					return fmt.Errorf("reading stdin: %w", err)
				}
				// echo and most programs end their output with one newline:
				// it is not part of the message.
				b = bytes.TrimSuffix(b, []byte("\n"))
				b = bytes.TrimSuffix(b, []byte("\r"))
				body = b
			}
			if len(body) > wire.MaxBodySize {
				return withHint(usageError{fmt.Errorf("message too large: more than %d bytes", wire.MaxBodySize)}, "send a file's location, or split it")
			}
			if len(body) == 0 {
				return usageError{errors.New("empty message")}
			}
			if !utf8.Valid(body) {
				return usageError{errors.New("message is not UTF-8 text")}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return runSend(ctx, e, h, to, body, wait == "delivered")
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "contact name")
	cmd.Flags().StringVar(&wait, "wait", "custody", "what to wait for: custody (the relay has it) or delivered (the contact's client has it)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up (exit 3) after this long")
	return cmd
}

func runSend(ctx context.Context, e *env, h *homeFlags, to string, body []byte, waitDelivered bool) error {
	// The store opens while Send dials the contact's relay.
	hm, err := h.open(homeOptions{client: true, background: true})
	if err != nil {
		return err
	}
	defer hm.Close()
	contact, err := lookupContact(hm.book, to)
	if err != nil {
		return err
	}
	id, state, err := hm.client.Send(ctx, contact, body, waitDelivered)
	if state.InCustody() {
		fmt.Fprintln(e.stdout, id)
	}
	return sendError(contact, state, err)
}

// sendError says what became of a message Send did not confirm, and
// what to do.
func sendError(to keys.Contact, state bridge.State, err error) error {
	var re *bridge.RelayError
	var se *bridge.StoreError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && state.InCustody():
		// The relay has the message: it is sent, only this side's copy
		// of its state is missing. Custody is what exit 0 promises.
		return warning{storeHint(fmt.Errorf("sent, but not recorded here: %w", err))}
	case errors.Is(err, bridge.ErrNotConfirmed) && state.InCustody():
		return withHint(fmt.Errorf("%w: the relay has the message, %s has not acknowledged it yet", errTimedOut, to.Name), "it is delivered when they next connect")
	case errors.Is(err, bridge.ErrNotConfirmed):
		return withHint(fmt.Errorf("%w: no relay took the message yet (it stays in the outbox)", errTimedOut), "it goes out with the next wschat command that reaches "+to.Name+"'s relay")
	case errors.As(err, &re) && errors.Is(err, bridge.ErrRelayAuth):
		return withHint(fmt.Errorf("%w (the message stays in the outbox)", err), "the key in "+to.Name+"'s relay address does not match the relay; ask them for a new invite")
	}
	if rerr := refusalError(to.Name, err); rerr != nil {
		return rerr
	}
	if errors.As(err, &re) {
		return withHint(fmt.Errorf("%w (the message stays in the outbox)", err), "it goes out with the next wschat command that reaches that relay; is it running?")
	}
	return storeHint(err)
}
