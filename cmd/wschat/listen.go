package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wschat/wschat/internal/safetext"

	"github.com/spf13/cobra"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

type listenOptions struct {
	handler handlerOptions
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
not a contact; never shown as text), "relay_moved" (a contact now receives on
another relay, named in "relay"; wschat sends there from now on), and with
--acks "delivered" and "read" for messages you sent. Consumers ignore unknown fields and types.

` + handlerHelp + `

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
			if o.count < 0 || o.timeout < 0 || o.handler.retries < 0 || o.handler.timeout < 0 {
				return usageError{fmt.Errorf("--count, --timeout, --retries and --handler-timeout must not be negative")}
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
	f.IntVar(&o.handler.retries, "retries", 3, "with -- CMD: try a failing handler this many more times")
	f.DurationVar(&o.handler.timeout, "handler-timeout", 10*time.Minute, "with -- CMD: kill a handler run after this long (0: never)")
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
	Verified   *bool    `json:"verified,omitempty"` // a contact's: whether its safety number was verified
	Relay      string   `json:"relay,omitempty"`    // relay_moved: where the contact receives now
	Error      string   `json:"error,omitempty"`    // handler_failed: why
}

func runListen(ctx, parent context.Context, e *env, h *homeFlags, o *listenOptions, cmdArgs []string) error {
	hm, err := h.open(homeOptions{client: true})
	if err != nil {
		return err
	}
	defer hm.Close()
	var from *keys.Contact
	if o.from != "" {
		c, err := lookupContact(hm.book, o.from)
		if err != nil {
			return err
		}
		from = &c
	}
	store := hm.client.Store()
	cursor, err := startCursor(ctx, store, o)
	if err != nil {
		return storeHint(err)
	}
	bg := runBackground(parent, e, hm.client)
	defer bg.close()
	l := &listener{e: e, o: o, book: hm.book, store: store, from: from, cursor: cursor, handler: cmdArgs, parent: parent,
		enc: json.NewEncoder(e.stdout), strangers: map[wire.RoutingID]int{}}
	l.enc.SetEscapeHTML(false)
	if list, err := store.Strangers(ctx); err == nil {
		for _, s := range list {
			l.strangers[s.ID] = s.Count
		}
	}
	if err := store.Prune(ctx, time.Now()); err != nil {
		return storeHint(err)
	}
	return l.loop(ctx, bg)
}

// startCursor is where a listen starts: --all, --since, or where the last
// listen stopped, so that nothing stored while no listener ran (or taken
// in by another wschat process of this identity) is skipped; the first
// listen starts from now.
func startCursor(ctx context.Context, store *bridge.Store, o *listenOptions) (int64, error) {
	switch {
	case o.all:
		return 0, nil
	case o.since >= 0:
		return o.since, nil
	}
	c, ok, err := store.SavedCursor(ctx, listenCursor)
	if err != nil || ok {
		return c, err
	}
	return store.LastCursor(ctx)
}

// listener shows what arrives, one event at a time.
type listener struct {
	e         *env
	o         *listenOptions
	book      *keys.Book
	store     *bridge.Store
	from      *keys.Contact // --from, or nil
	cursor    int64         // the last record looked at
	handler   []string      // -- CMD ARGS, or nil
	parent    context.Context
	enc       *json.Encoder
	strangers map[wire.RoutingID]int // counts already shown
	shown     int                    // contacts' messages shown
}

// loop shows records as they are stored until --count, --timeout or the
// end of ctx.
func (l *listener) loop(ctx context.Context, bg *background) error {
	tick := time.NewTicker(250 * time.Millisecond) // other processes' writes to the store
	defer tick.Stop()
	for {
		recs, err := l.store.After(ctx, l.cursor, bridge.DirIn, 256)
		if err != nil && ctx.Err() == nil {
			return storeHint(err)
		}
		first := l.cursor
		for _, r := range recs {
			l.cursor = r.Cursor
			if err := l.record(r); err != nil {
				return err
			}
			if l.o.count > 0 && l.shown >= l.o.count {
				return l.save(ctx, first)
			}
		}
		if len(recs) > 0 {
			if err := l.save(ctx, first); err != nil {
				return err
			}
			continue
		}
		if err := l.newStrangers(ctx); err != nil {
			return err
		}
		select {
		case <-bg.changed:
		case <-tick.C:
		case <-bg.done:
			if bg.err != nil {
				return bg.err
			}
		case <-ctx.Done():
			if l.parent.Err() == nil && l.shown == 0 && l.o.timeout > 0 {
				return errTimedOut
			}
			return nil
		}
	}
}

// save records that the records after first up to the cursor were handed
// out (a listen with --from does not move the shared cursor: the other
// contacts' messages are still unread).
func (l *listener) save(ctx context.Context, first int64) error {
	ctx = context.WithoutCancel(ctx)
	if err := l.store.Forget(ctx, first, l.cursor); err != nil {
		return storeHint(err)
	}
	if l.from == nil {
		if err := l.store.SaveCursor(ctx, listenCursor, l.cursor); err != nil {
			return storeHint(err)
		}
	}
	return nil
}

// record shows one stored record, if it is for this listen.
func (l *listener) record(r bridge.Record) error {
	c, err := l.book.ByID(r.PeerID)
	if err != nil || c.Public.Fingerprint() != r.PeerFP {
		return nil // removed or replaced contact
	}
	if l.from != nil && c.Name != l.from.Name {
		return nil
	}
	verified := c.Verified
	ev := event{ID: r.ID.String(), From: c.Name, FromID: r.PeerID.String(), Verified: &verified,
		SentAt: r.SentAt.UTC().Format(time.RFC3339Nano), ReceivedAt: r.ReceivedAt.UTC().Format(time.RFC3339Nano), Cursor: r.Cursor}
	switch r.Type {
	case wire.TypeText:
		ev.Type = "message"
		text := string(r.Body)
		ev.Text = &text
		l.shown++
		return l.emit(ev, text)
	case wire.TypeRelayMoved:
		ev.Type = "relay_moved"
		ev.Relay = string(r.Body)
		return l.emit(ev, "")
	case wire.TypeDelivered, wire.TypeRead:
		if !l.o.acks {
			return nil
		}
		ev.Type = r.Type.String()
		for _, id := range wire.AckIDs(r.Body) {
			ev.Acked = append(ev.Acked, id.String())
		}
		return l.emit(ev, "")
	}
	return nil
}

// newStrangers shows a "stranger" event for every identity that wrote
// more since the last look.
func (l *listener) newStrangers(ctx context.Context) error {
	list, err := l.store.Strangers(ctx)
	if err != nil {
		return nil
	}
	for _, s := range list {
		if s.Count > l.strangers[s.ID] {
			l.strangers[s.ID] = s.Count
			if err := l.emit(event{Type: "stranger", FromID: s.ID.String(), Count: s.Count}, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// emit formats one event: to the handler, as JSON, or as a line.
func (l *listener) emit(ev event, text string) error {
	e := l.e
	switch {
	case len(l.handler) > 0:
		err := runHandler(l.parent, e, l.handler, l.o.handler, ev, text)
		if errors.Is(err, errHandlerFailed) {
			fmt.Fprintf(e.stderr, "wschat: %v\n", err)
			if l.o.json {
				return l.enc.Encode(event{Type: "handler_failed", ID: ev.ID, From: ev.From, FromID: ev.FromID, Cursor: ev.Cursor, Error: err.Error()})
			}
			return nil
		}
		return err
	case l.o.json:
		return l.enc.Encode(ev)
	}
	switch ev.Type {
	case "message":
		fmt.Fprintln(e.stdout, plainLine(ev.From, safetext.Text(text)))
	case "stranger":
		fmt.Fprintf(e.stdout, "(stranger %s: %d message(s) kept aside)\n", ev.FromID, ev.Count)
	case "relay_moved":
		fmt.Fprintf(e.stdout, "(%s moved to relay %s)\n", ev.From, ev.Relay)
	default:
		fmt.Fprintf(e.stdout, "(%s: %s %s)\n", ev.From, ev.Type, strings.Join(ev.Acked, " "))
	}
	return nil
}

// plainLine is "name: text", continuation lines indented under the text.
func plainLine(name, text string) string {
	pad := "\n" + strings.Repeat(" ", len(name)+2)
	return name + ": " + strings.ReplaceAll(strings.TrimRight(text, "\n"), "\n", pad)
}
