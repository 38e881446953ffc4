package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

type listenOptions struct {
	json    bool
	from    string
	count   int
	timeout time.Duration
	since   int64
	all     bool
	acks    bool
}

func newListenCmd(e *env, h *homeFlags) *cobra.Command {
	o := &listenOptions{}
	cmd := &cobra.Command{
		Use:   "listen [-- CMD ARGS...]",
		Short: "Print incoming messages, or run a command for each",
		Long: `Print incoming messages as they arrive: "name: text" for people, or with
--json one object per line for scripts:

  {"type":"message","id":"…","from":"alice","from_id":"…","text":"…",
   "sent_at":"…","received_at":"…","cursor":12}

Other events have their own type: "stranger" (a message from someone who is
not a contact; never shown as text), and with --acks "delivered" and "read"
for messages you sent. Consumers ignore unknown fields and types.

With -- CMD ARGS..., CMD runs once per message with the text on stdin and the
fields in WSCHAT_TYPE, WSCHAT_ID, WSCHAT_FROM, WSCHAT_FROM_ID, WSCHAT_TEXT,
WSCHAT_SENT_AT, WSCHAT_RECEIVED_AT and WSCHAT_CURSOR.

Messages are stored before they are acknowledged, and each is shown once even
when the network repeats it. A listen resumes after the last message the
previous one showed, so nothing is skipped across restarts; --since CURSOR
starts elsewhere, --all from the beginning.
Exit codes: 0 ok, 3 nothing arrived within --timeout.`,
		Example: `  wschat listen
  wschat listen --json | jq -r 'select(.type=="message") | .text'
  wschat listen --from alice --count 1 --timeout 5m --json
  wschat listen -- ./handle-message.sh`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.count < 0 || o.timeout < 0 {
				return usageError{fmt.Errorf("--count and --timeout must not be negative")}
			}
			ctx := cmd.Context()
			if o.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, o.timeout)
				defer cancel()
			}
			return runListen(ctx, cmd.Context(), e, h, o, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.json, "json", false, "one JSON object per event per line")
	f.StringVar(&o.from, "from", "", "only messages from this contact")
	f.IntVar(&o.count, "count", 0, "exit after this many messages from contacts")
	f.DurationVar(&o.timeout, "timeout", 0, "exit after this long (exit 3 if nothing arrived)")
	f.Int64Var(&o.since, "since", -1, "first show stored messages after this cursor")
	f.BoolVar(&o.all, "all", false, "first show every stored message")
	f.BoolVar(&o.acks, "acks", false, "also show delivery and read acknowledgements of what you sent")
	return cmd
}

// listenCursor names the cursor plain listens resume from. A listen with
// --from does not move it (the other contacts' messages are still unread).
const listenCursor = "listen"

type event struct {
	Type       string   `json:"type"`
	ID         string   `json:"id,omitempty"`
	From       string   `json:"from,omitempty"`
	FromID     string   `json:"from_id"`
	Text       *string  `json:"text,omitempty"`
	Acked      []string `json:"acked,omitempty"`
	Count      int      `json:"count,omitempty"`
	SentAt     string   `json:"sent_at,omitempty"`
	ReceivedAt string   `json:"received_at,omitempty"`
	Cursor     int64    `json:"cursor,omitempty"`
}

func runListen(ctx, parent context.Context, e *env, h *homeFlags, o *listenOptions, cmdArgs []string) error {
	client, book, closeAll, err := h.open(ctx, nil)
	if err != nil {
		return err
	}
	defer closeAll()
	var from keys.Contact
	if o.from != "" {
		if from, err = lookupContact(book, o.from); err != nil {
			return err
		}
	}
	store := client.Store()
	cursor := o.since
	if o.all {
		cursor = 0
	}
	if cursor < 0 {
		// Resume where the last listen stopped, so that nothing stored
		// while no listener ran (or taken in by another wschat process of
		// this identity) is skipped; the first listen starts from now.
		c, ok, err := store.SavedCursor(ctx, listenCursor)
		if err != nil {
			return err
		}
		if !ok {
			if c, err = store.LastCursor(ctx); err != nil {
				return err
			}
		}
		cursor = c
	}
	strangers := map[wire.RoutingID]int{}
	if list, err := store.Strangers(ctx); err == nil {
		for _, s := range list {
			strangers[s.ID] = s.Count
		}
	}
	changed := make(chan struct{}, 1)
	runCtx, stopRun := context.WithCancel(parent)
	ran := make(chan struct{})
	defer func() {
		// Let the connection finish the frame in hand (its delivery
		// acknowledgement is on its way) before the process exits.
		stopRun()
		select {
		case <-ran:
		case <-time.After(2 * time.Second):
		}
	}()
	connected := false
	go func() { defer close(ran); client.Run(runCtx, changed, connectedFn(e, &connected)) }()
	enc := json.NewEncoder(e.stdout)

	enc.SetEscapeHTML(false)
	shown := 0
	emit := func(ev event, text string) error {
		switch {
		case len(cmdArgs) > 0:
			return runHandler(parent, e, cmdArgs, ev, text)
		case o.json:
			return enc.Encode(ev)
		default:
			if ev.Type == "message" {
				fmt.Fprintln(e.stdout, plainLine(ev.From, text))
			} else if ev.Type == "stranger" {
				fmt.Fprintf(e.stdout, "(stranger %s: %d message(s) kept aside)\n", ev.FromID, ev.Count)
			} else {
				fmt.Fprintf(e.stdout, "(%s: %s %s)\n", ev.From, ev.Type, strings.Join(ev.Acked, " "))
			}
		}
		return nil
	}
	tick := time.NewTicker(250 * time.Millisecond) // other processes' writes to the store
	defer tick.Stop()
	store.Prune(ctx, time.Now())
	for {
		recs, err := store.After(ctx, cursor, bridge.DirIn, 256)
		if err != nil && ctx.Err() == nil {
			return err
		}
		for _, r := range recs {
			cursor = r.Cursor
			c, err := book.ByID(r.PeerID)
			if err != nil || c.Public.Fingerprint() != r.PeerFP {
				continue // removed or replaced contact
			}
			if o.from != "" && c.Name != from.Name {
				continue
			}
			ev := event{ID: r.ID.String(), From: c.Name, FromID: r.PeerID.String(),
				SentAt: r.SentAt.UTC().Format(time.RFC3339Nano), ReceivedAt: r.ReceivedAt.UTC().Format(time.RFC3339Nano), Cursor: r.Cursor}
			switch r.Type {
			case wire.TypeText:
				ev.Type = "message"
				text := string(r.Body)
				ev.Text = &text
				if err := emit(ev, text); err != nil {
					return err
				}
				shown++
			case wire.TypeDelivered, wire.TypeRead:
				if !o.acks {
					continue
				}
				ev.Type = map[wire.MessageType]string{wire.TypeDelivered: "delivered", wire.TypeRead: "read"}[r.Type]
				for _, id := range wire.AckIDs(r.Body) {
					ev.Acked = append(ev.Acked, id.String())
				}
				if err := emit(ev, ""); err != nil {
					return err
				}
			default:
				continue
			}
			if o.count > 0 && shown >= o.count {
				if o.from == "" {
					store.SaveCursor(ctx, listenCursor, cursor)
				}
				return nil
			}
		}
		if len(recs) > 0 {
			store.Forget(ctx, recs[0].Cursor-1, cursor)
			if o.from == "" {
				store.SaveCursor(ctx, listenCursor, cursor)
			}
			continue
		}
		if list, err := store.Strangers(ctx); err == nil {
			for _, s := range list {
				if s.Count > strangers[s.ID] {
					strangers[s.ID] = s.Count
					if err := emit(event{Type: "stranger", FromID: s.ID.String(), Count: s.Count}, ""); err != nil {
						return err
					}
				}
			}
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			if parent.Err() == nil && shown == 0 && o.timeout > 0 {
				return errTimedOut
			}
			return nil
		}
	}
}

// connectedFn reports connection changes on stderr.
func connectedFn(e *env, connected *bool) func(error) {
	return func(err error) {
		if err != nil {
			fmt.Fprintf(e.stderr, "wschat: relay unreachable, retrying: %v\n", err)
		} else if *connected {
			fmt.Fprintln(e.stderr, "wschat: reconnected")
		}
		*connected = true
	}
}

// plainLine is "name: text", continuation lines indented under the text.
func plainLine(name, text string) string {
	pad := "\n" + strings.Repeat(" ", len(name)+2)
	return name + ": " + strings.ReplaceAll(strings.TrimRight(text, "\n"), "\n", pad)
}

// runHandler runs the per-message command with the fields in the
// environment and the text on stdin.
func runHandler(ctx context.Context, e *env, args []string, ev event, text string) error {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = bytes.NewReader([]byte(text))
	cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
	cmd.Env = append(os.Environ(),
		"WSCHAT_TYPE="+ev.Type, "WSCHAT_ID="+ev.ID, "WSCHAT_FROM="+ev.From, "WSCHAT_FROM_ID="+ev.FromID,
		"WSCHAT_TEXT="+text, "WSCHAT_SENT_AT="+ev.SentAt, "WSCHAT_RECEIVED_AT="+ev.ReceivedAt,
		"WSCHAT_CURSOR="+strconv.FormatInt(ev.Cursor, 10))
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); ok {
			fmt.Fprintf(e.stderr, "wschat: handler for message %s: %v\n", ev.ID, err)
			return nil
		}
		return fmt.Errorf("running %s: %w", args[0], err)
	}
	return nil
}
