package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wschat/wschat/internal/safetext"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/chat"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

type chatOptions struct {
	logFile string
	lines   bool
	linger  time.Duration
}

// lineSendTimeout: in line mode, how long one line may take to reach the
// relay before it is left in the outbox (send's default).
const lineSendTimeout = 30 * time.Second

func newChatCmd(e *env, h *homeFlags) *cobra.Command {
	o := &chatOptions{}
	cmd := &cobra.Command{
		Use:   "chat [NAME]",
		Short: "Converse with a contact in the terminal",
		Long: `A full-screen conversation with a contact: the recent history, each message's
state (sending, sent or stored at the relay, delivered, read), whether the
contact is online and typing, and a notice when another contact writes.
Without NAME it opens the list of contacts with their unread counts.

Keys:
  Enter                 send
  Alt+Enter, Ctrl+J     new line (Shift+Enter too, where the terminal reports it)
  PgUp, PgDn            scroll (PgUp at the top loads older messages)
  Ctrl+S, F2            the contact's safety number and verified state
  Ctrl+R                retry what was not sent
  Ctrl+N                switch to the next conversation with unread messages
  Ctrl+O                the contact list
  Ctrl+L                redraw the screen
  Esc, Ctrl+C           quit

Messages not handed to the relay when you quit stay in the outbox and go out
with the next wschat command of this identity that connects. Read receipts go
out when a message is on screen. Logs go to --log FILE, never to the screen;
NO_COLOR turns colors off.

When stdin or stdout is not a terminal (or with --lines), chat works line by
line: each line of stdin is sent to NAME as a message, and NAME's messages are
printed as "name: text" lines until stdin ends and --linger passes.
Exit codes: 0 ok, 1 error (a line not handed to the relay), 2 usage,
4 unknown contact.`,
		Example: `  wschat chat alice
  wschat chat                      # choose from the contact list
  NO_COLOR=1 wschat chat alice --log /tmp/wschat.log
  echo "deploy finished" | wschat chat alice --linger 30s`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			if o.linger < 0 {
				return usageError{errors.New("--linger must not be negative")}
			}
			return runChat(cmd.Context(), e, h, o, name)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.logFile, "log", "", "append the connection's log to this file (default: no log)")
	f.BoolVar(&o.lines, "lines", false, "line mode even on a terminal: lines in, \"name: text\" lines out")
	f.DurationVar(&o.linger, "linger", 2*time.Second, "line mode: after stdin ends, keep printing replies this long")
	return cmd
}

// terminal returns the file behind r or w if it is a terminal.
func terminal(x any) (*os.File, bool) {
	f, ok := x.(*os.File)
	return f, ok && term.IsTerminal(int(f.Fd()))
}

func runChat(ctx context.Context, e *env, h *homeFlags, o *chatOptions, name string) error {
	in, inTTY := terminal(e.stdin)
	out, outTTY := terminal(e.stdout)
	lineMode := o.lines || !inTTY || !outTTY
	if lineMode && name == "" {
		return usageError{errors.New("line mode (stdin or stdout is not a terminal) needs a contact: wschat chat NAME")}
	}
	logger, closeLog, err := openLog(o.logFile)
	if err != nil {
		return err
	}
	defer closeLog()
	hm, err := h.open(homeOptions{client: true, logger: logger})
	if err != nil {
		return err
	}
	defer hm.Close()
	client, book := hm.client, hm.book
	var contact keys.Contact
	if name != "" {
		if contact, err = lookupContact(book, name); err != nil {
			return err
		}
	}
	if lineMode {
		return runChatLines(ctx, e, client, book, contact, o, outTTY)
	}
	return chat.Run(ctx, chat.Config{
		Client: client, Book: book, Self: hm.file.Identity.Public(), SelfName: hm.file.Name,
		Contact: name, NoHistory: h.noHistory, NoColor: os.Getenv("NO_COLOR") != "",
	}, in, out)
}

// openLog opens the log file (0600, appending), or discards the log.
func openLog(path string) (*slog.Logger, func(), error) {
	if path == "" {
		return nil, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	return slog.New(slog.NewTextHandler(f, nil)), func() { f.Close() }, nil
}

// runChatLines is chat without a terminal: stdin's lines go to the contact
// one message each, the contact's messages come out as "name: text" lines.
// It ends when stdin has ended, everything read has reached the relay, and
// o.linger has passed (or ctx ends).
func runChatLines(ctx context.Context, e *env, client *bridge.Client, book *keys.Book, contact keys.Contact, o *chatOptions, markRead bool) error {
	store := client.Store()
	cursor, err := store.LastCursor(ctx)
	if err != nil {
		return err
	}
	bg := runBackground(ctx, e, client)
	defer bg.close()
	runDone := bg.done

	// The sender: one line at a time, in order, each until the relay has it.
	failed := 0
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		sc := bufio.NewScanner(e.stdin)
		sc.Buffer(make([]byte, 64*1024), wire.MaxBodySize+1)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			switch {
			case strings.TrimSpace(line) == "":
				continue
			case !utf8.ValidString(line):
				fmt.Fprintln(e.stderr, "wschat: a line that is not UTF-8 text was not sent")
				failed++
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, lineSendTimeout)
			_, _, err := client.Send(sctx, contact, []byte(line), false)
			cancel()
			if err != nil {
				fmt.Fprintf(e.stderr, "wschat: %q not handed to the relay yet (it stays in the outbox): %v\n", truncateText(line, 40), err)
				failed++
			}
			if ctx.Err() != nil {
				return
			}
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintf(e.stderr, "wschat: reading stdin: %v\n", err)
			failed++
		}
	}()

	fp := contact.Public.Fingerprint()
	tick := time.NewTicker(250 * time.Millisecond) // other processes' writes
	defer tick.Stop()
	var drain <-chan time.Time
	sentDone := sent
	others := map[wire.RoutingID]bool{}
	for {
		recs, err := store.After(ctx, cursor, bridge.DirIn, 256)
		if err != nil && ctx.Err() == nil {
			return err
		}
		var seen []wire.MessageID
		for _, r := range recs {
			cursor = r.Cursor
			if r.Type != wire.TypeText {
				continue
			}
			if r.PeerFP != fp {
				noteOther(e, book, r, others)
				continue
			}
			fmt.Fprintln(e.stdout, plainLine(contact.Name, safetext.Text(string(r.Body))))
			seen = append(seen, r.ID)
		}
		if markRead && len(seen) > 0 {
			// On a terminal a person reads along: read receipts, and
			// the chat view counts these as read.
			if client.MarkRead(ctx, contact, seen...) == nil {
				store.SaveCursor(ctx, bridge.ReadCursorName(fp), cursor)
			}
		}
		if len(recs) > 0 {
			continue
		}
		select {
		case <-bg.changed:
		case <-runDone:
			if bg.err != nil {
				return bg.err
			}
			runDone = nil
		case <-client.Changed():
		case <-tick.C:
		case <-sentDone:
			sentDone = nil
			drain = time.After(o.linger)
		case <-drain:
			if failed > 0 {
				return withHint(fmt.Errorf("%d message(s) not handed to the relay (they stay in the outbox)", failed),
					"they go out with the next wschat command that connects; is the relay running?")
			}
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// noteOther says once per sender, on stderr, that another contact wrote.
func noteOther(e *env, book *keys.Book, r bridge.Record, noted map[wire.RoutingID]bool) {
	if noted[r.PeerID] {
		return
	}
	noted[r.PeerID] = true
	if c, err := book.ByID(r.PeerID); err == nil && c.Public.Fingerprint() == r.PeerFP {
		fmt.Fprintf(e.stderr, "wschat: %s wrote too; read it with: wschat chat %s\n", c.Name, c.Name)
	}
}

func truncateText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
