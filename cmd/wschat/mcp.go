package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/spf13/cobra"

	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/mcp"
	"github.com/wschat/wschat/wire"
)

type mcpOptions struct {
	http     string
	token    string
	origins  []string
	allow    []string
	readOnly bool
	maxText  int
	rate     float64
	burst    int
}

func newMCPCmd(e *env, h *homeFlags) *cobra.Command {
	o := &mcpOptions{}
	cmd := &cobra.Command{
		Use:   "mcp [--http ADDR]",
		Short: "MCP tool server: lets an AI agent message people and wait for answers",
		Long: fmt.Sprintf(`Serve this identity to an AI agent over the Model Context Protocol, on
stdin/stdout (nothing else is written to stdout; logs go to stderr) or with
--http ADDR as streamable HTTP (loopback unless ADDR names another host).

Tools: whoami, list_contacts, send_message, read_messages, wait_for_message,
ask_human. Waits last at most %d s (default %d s), so that clients do not
give up first; a cursor lets the agent wait again without missing anything.

Safety: message text reaches the agent as data from a named contact, never
as instructions. The agent cannot add contacts or change trust. --allow
limits whom it may message, --read-only takes sending away, and each
session may send at most --send-rate messages a minute, of at most
--max-text bytes each.

Over HTTP every request needs "Authorization: Bearer TOKEN" (--token or
WSCHAT_TOKEN; otherwise a random token is printed on stderr once), and
requests from web pages (an Origin header not listed with --http-origin) or for
other host names are refused.`, int(mcp.MaxWait.Seconds()), int(mcp.DefaultWait.Seconds())),
		Example: `  claude mcp add wschat -- wschat mcp
  claude mcp add wschat -- wschat mcp --allow alice
  wschat mcp --read-only
  WSCHAT_TOKEN=$(cat ~/.wschat-token) wschat mcp --http 127.0.0.1:8765`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.maxText < 1 || o.maxText > wire.MaxBodySize {
				return usageError{fmt.Errorf("--max-text %d: want 1 to %d bytes", o.maxText, wire.MaxBodySize)}
			}
			if !(o.rate > 0) || o.burst < 1 {
				return usageError{errors.New("--send-rate and --send-burst must be above 0")}
			}
			return runMCP(cmd, e, h, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.http, "http", "", "serve streamable HTTP on ADDR (host:port; :port means 127.0.0.1) instead of stdio")
	f.StringVar(&o.token, "token", "", "bearer token HTTP clients must send (prefer WSCHAT_TOKEN: argv is visible to other users)")
	f.StringSliceVar(&o.origins, "http-origin", nil, "allow HTTP requests from this web origin (scheme://host:port; repeatable)")
	f.StringSliceVar(&o.allow, "allow", nil, "the agent may message only this contact (repeatable, or comma-separated)")
	f.BoolVar(&o.readOnly, "read-only", false, "no sending: only whoami, list_contacts, read_messages, wait_for_message")
	f.IntVar(&o.maxText, "max-text", mcp.DefaultMaxText, "largest message the agent may send, in bytes")
	f.Float64Var(&o.rate, "send-rate", mcp.DefaultSendRate, "messages the agent may send per minute, per session")
	f.IntVar(&o.burst, "send-burst", mcp.DefaultSendBurst, "messages the agent may send at once before --send-rate applies")
	return cmd
}

func runMCP(cmd *cobra.Command, e *env, h *homeFlags, o *mcpOptions) error {
	ctx := cmd.Context()
	log := slog.New(slog.NewTextHandler(&prefixWriter{w: e.stderr}, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey || (a.Key == slog.LevelKey && a.Value.Any() == slog.LevelInfo) {
			return slog.Attr{}
		}
		return a
	}}))
	hm, err := h.open(homeOptions{client: true, logger: log}) // a logger: stdout is the protocol's
	if err != nil {
		return err
	}
	defer hm.Close() // the client before the store
	f, book, client := hm.file, hm.book, hm.client
	f.Relay = hm.relay.String() // the invite names the relay in use
	srv, err := mcp.New(mcp.Config{Client: client, Book: book, Self: f, Logger: log, Version: version,
		Options: mcp.Options{Allow: o.allow, ReadOnly: o.readOnly, MaxText: o.maxText, SendRate: o.rate, SendBurst: o.burst}})
	if errors.Is(err, keys.ErrUnknownContact) || errors.Is(err, keys.ErrInvalidContactName) {
		return withHint(usageError{fmt.Errorf("--%w", err)}, "--allow takes names from 'wschat contacts list'")
	}
	if err != nil {
		return err
	}
	if o.http == "" {
		return srv.ServeStdio(ctx, e.stdin, e.stdout)
	}
	host, port, err := net.SplitHostPort(o.http)
	if err != nil {
		return usageError{fmt.Errorf("--http %q: want host:port or :port", o.http)}
	}
	if host == "" {
		host = "127.0.0.1"
	}
	token := o.token
	if cmd.Flags().Changed("token") && os.Getenv(envName("token")) == "" {
		fmt.Fprintln(e.stderr, "wschat: warning: --token on the command line is visible to other users of this machine")
		fmt.Fprintln(e.stderr, "hint: set WSCHAT_TOKEN instead")
	}
	if token == "" {
		b := make([]byte, 32)
		rand.Read(b)
		token = base64.RawURLEncoding.EncodeToString(b)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Fprintf(e.stderr, "wschat: MCP over streamable HTTP at http://%s/mcp\n", ln.Addr())
	if o.token == "" {
		fmt.Fprintf(e.stderr, "wschat: bearer token (shown once; set WSCHAT_TOKEN to choose your own): %s\n", token)
	}
	return srv.ServeListener(ctx, ln, mcp.HTTPOptions{Token: token, Origins: o.origins})
}

// prefixWriter puts "wschat: " before each log line.
type prefixWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.w.Write(append([]byte("wschat: "), bytes.TrimPrefix(b, []byte("msg="))...))
	return len(b), err
}
