package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/wschat/wschat/bridge"
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

A message that could not be handed over stays in the outbox and goes out
with the next wschat command that connects. At most %d bytes.
A message the relay refuses (the contact is not registered there, their
mailbox is full, ...) leaves the outbox: the error says why, and it is not
sent again by itself.
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
				b, err := io.ReadAll(io.LimitReader(e.stdin, wire.MaxBodySize+1))
				if err != nil {
					return fmt.Errorf("reading stdin: %w", err)
				}
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
	// Send dials as the relay connection's options below say: Early,
	// receiving only to wait for the contact's acknowledgement.
	client, book, closeAll, err := h.open(ctx, &bridge.DialOptions{Receive: waitDelivered, Early: true})
	if err != nil {
		return err
	}
	defer closeAll()
	contact, err := lookupContact(book, to)
	if err != nil {
		return err
	}
	id, _, err := client.Send(ctx, contact, body, waitDelivered)
	switch {
	case err == nil:
		fmt.Fprintln(e.stdout, id)
		if err := closeAll(); err != nil {
			// The relay has the message: it is sent, only this side's
			// copy is missing. Custody is what exit 0 promises.
			fmt.Fprintf(e.stderr, "wschat: warning: sent, but not recorded here: %s\n", err)
		}
		return nil
	case errors.Is(err, bridge.ErrNotConfirmed), ctx.Err() != nil:
		return errTimedOut
	default:
		if rerr := refusalError(to, err); rerr != nil {
			return rerr
		}
		return withHint(fmt.Errorf("%w (the message stays in the outbox)", err), "it goes out with the next wschat command that connects; is the relay running?")
	}
}
