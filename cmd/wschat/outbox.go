package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

func newOutboxCmd(e *env, h *homeFlags) *cobra.Command {
	var asJSON bool
	var expire time.Duration
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "Messages not yet in a relay's custody: list, cancel, expire",
		Long: `List the messages (and receipts) that no relay has taken yet: to whom, how old,
how many times they were handed over, and why the last attempt failed. They
go out by themselves with the next wschat command that reaches their relay;
'wschat outbox cancel ID' takes one out (its history says cancelled), and
--expire DUR takes out every one older than DUR.

On a terminal the list is a table; in a pipe, tab-separated with a header
line; with --json, one object per entry per line.`,
		Example: `  wschat outbox
  wschat outbox --json | jq -r .id
  wschat outbox --expire 24h      # give up on what a day could not deliver
  wschat outbox cancel 3f2a...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expire < 0 {
				return usageError{fmt.Errorf("--expire must not be negative")}
			}
			return runOutbox(cmd.Context(), e, h, asJSON, expire)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per entry per line")
	cmd.Flags().DurationVar(&expire, "expire", 0, "first take out every entry older than this (0: none)")
	cmd.AddCommand(&cobra.Command{
		Use:     "cancel ID",
		Short:   "Take a message out of the outbox (it is not sent)",
		Example: "  wschat outbox cancel 3f2a9c0e5b1d4a7f8e6c2b0a9d8f7e6c",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := wire.ParseMessageID(args[0])
			if err != nil {
				return withHint(usageError{err}, "the ids are in the first column of: wschat outbox")
			}
			hm, err := h.open(homeOptions{client: true})
			if err != nil {
				return err
			}
			defer hm.Close()
			found, err := hm.store.Cancel(cmd.Context(), id)
			if err != nil {
				return storeHint(err)
			}
			if !found {
				return withHint(fmt.Errorf("no message %s in the outbox", id), "it may have gone out already: wschat outbox lists what waits")
			}
			fmt.Fprintf(e.stderr, "wschat: cancelled %s\n", id)
			return nil
		},
	})
	return cmd
}

type outboxJSON struct {
	ID        string `json:"id"`
	To        string `json:"to"`
	Kind      string `json:"kind"` // message, receipt, relay_moved
	Relay     string `json:"relay"`
	CreatedAt string `json:"created_at"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
}

func runOutbox(ctx context.Context, e *env, h *homeFlags, asJSON bool, expire time.Duration) error {
	hm, err := h.open(homeOptions{client: true})
	if err != nil {
		return err
	}
	defer hm.Close()
	out, err := hm.store.Outbox(ctx)
	if err != nil {
		return storeHint(err)
	}
	now := time.Now()
	if expire > 0 {
		kept := out[:0]
		n := 0
		for _, p := range out {
			if now.Sub(p.CreatedAt) <= expire {
				kept = append(kept, p)
				continue
			}
			if _, err := hm.store.Cancel(ctx, p.ID); err != nil {
				return storeHint(err)
			}
			n++
		}
		out = kept
		fmt.Fprintf(e.stderr, "wschat: took %d %s older than %v out of the outbox\n", n, plural(n, "entry", "entries"), expire)
	}
	kinds := outboxKinds(ctx, hm.store, out)
	rows := make([]outboxJSON, len(out))
	for i, p := range out {
		relay := hm.relay.URL
		if a, err := wire.ParseRelayAddress(p.Relay); err == nil {
			relay = a.URL
		}
		rows[i] = outboxJSON{ID: p.ID.String(), To: contactName(hm.book, p.PeerFP), Kind: kinds[p.ID], Relay: relay,
			CreatedAt: p.CreatedAt.UTC().Format(time.RFC3339), Attempts: p.Attempts, LastError: p.LastError}
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		for _, r := range rows {
			enc.Encode(r)
		}
		return nil
	}
	_, tty := terminal(e.stdout)
	t := newTable(e.stdout, tty, "ID", "TO", "KIND", "AGE", "ATTEMPTS", "RELAY", "LAST ERROR")
	for i, r := range rows {
		t.row(r.ID, r.To, r.Kind, age(now.Sub(out[i].CreatedAt)), fmt.Sprint(r.Attempts), r.Relay, orDash(r.LastError))
	}
	return t.flush()
}

// outboxKinds tells messages from receipts (which have no history row).
func outboxKinds(ctx context.Context, s *bridge.Store, out []bridge.Pending) map[wire.MessageID]string {
	kinds := map[wire.MessageID]string{}
	for _, p := range out {
		kinds[p.ID] = "receipt"
		if st, err := s.State(ctx, p.PeerFP, p.ID); err == nil && st != "" {
			kinds[p.ID] = "message"
		}
	}
	return kinds
}

// contactName is the name of the contact with fingerprint fp, or its
// short fingerprint.
func contactName(book *keys.Book, fp wire.Fingerprint) string {
	if list, err := book.List(); err == nil {
		for _, c := range list {
			if c.Public.Fingerprint() == fp {
				return c.Name
			}
		}
	}
	return fp.Short()
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// table prints rows: aligned columns on a terminal, tab-separated (with
// the header line) in a pipe.
type table struct {
	w   io.Writer
	tw  *tabwriter.Writer // on a terminal
	err error
}

func newTable(w io.Writer, tty bool, header ...string) *table {
	t := &table{w: w}
	if tty {
		t.tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	line := ""
	for i, c := range cells {
		if i > 0 {
			line += "\t"
		}
		line += c
	}
	if t.tw != nil {
		_, t.err = fmt.Fprintln(t.tw, line)
	} else {
		_, t.err = fmt.Fprintln(t.w, line)
	}
}

func (t *table) flush() error {
	if t.tw != nil {
		if err := t.tw.Flush(); err != nil {
			return err
		}
	}
	return t.err
}
