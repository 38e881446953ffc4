package mcp_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/mcptest"
	"go.uber.org/goleak"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/mcp"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/relayd/relaytest"
	"github.com/wschat/wschat/wire"
)

func TestMain(m *testing.M) {
	// mcp-go's client transport logs its pipes closing at the end of
	// each test.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

// world is a relay on 127.0.0.1 and the identities that use it.
type world struct {
	t     testing.TB
	relay wire.RelayAddress
	mb    relayd.Mailbox
	r     *relaytest.Relay
}

func newWorld(t testing.TB) *world {
	t.Helper()
	r := relaytest.Start(t, relaytest.Options{})
	return &world{t: t, relay: r.Addr, mb: r.Mailbox(), r: r}
}

// party is one identity with its home: contacts, store, client.
type party struct {
	name   string
	self   *keys.IdentityFile
	book   *keys.Book
	store  *bridge.Store
	client *bridge.Client
	dir    string
}

func (w *world) party(name string) *party {
	w.t.Helper()
	dir := filepath.Join(w.t.TempDir(), name)
	id, _ := wire.NewIdentity(rand.Reader)
	book, err := keys.OpenBook(filepath.Join(dir, "contacts"))
	if err != nil {
		w.t.Fatal(err)
	}
	store, err := bridge.OpenStore(filepath.Join(dir, "messages.db"), true)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { store.Close() })
	// Registered, as its first receiving connection would make it.
	if err := w.mb.Register(id.Public().ID(), time.Now()); err != nil {
		w.t.Fatal(err)
	}
	return &party{name: name, self: &keys.IdentityFile{Identity: id, Name: name, Relay: w.relay.String()}, book: book, store: store, dir: dir,
		client: bridge.NewClient(bridge.Config{Identity: id, Relay: w.relay, Book: book, Store: store})}
}

// befriend makes a and b contacts of each other, under their own names.
func befriend(t testing.TB, a, b *party) {
	t.Helper()
	if _, err := a.book.Add(b.name, b.self.Invite()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.book.Add(a.name, a.self.Invite()); err != nil {
		t.Fatal(err)
	}
}

// background runs f until the test ends, and waits for it.
func background(t testing.TB, f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// online keeps p's receiving connection up until the test ends.
func (p *party) online(t testing.TB) {
	background(t, func(ctx context.Context) { p.client.Run(ctx, nil, nil) })
}

// say sends a text message from p to its contact called to.
func (p *party) say(t testing.TB, to, text string) {
	t.Helper()
	c, err := p.book.Get(to)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := p.client.Send(ctx, c, []byte(text), false); err != nil {
		t.Fatal(err)
	}
}

// answer makes p (online) reply to every text message it receives from
// now on with reply(text), as a person at the other end would.
func (p *party) answer(t testing.TB, reply func(string) string) {
	p.online(t)
	cursor, err := p.store.LastCursor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	background(t, func(ctx context.Context) {
		for {
			changed := p.client.Changed()
			recs, _ := p.store.After(ctx, cursor, bridge.DirIn, 100)
			for _, r := range recs {
				cursor = r.Cursor
				if r.Type != wire.TypeText {
					continue
				}
				if c, err := p.book.ByID(r.PeerID); err == nil {
					p.client.Send(ctx, c, []byte(reply(string(r.Body))), false)
				}
			}
			select {
			case <-changed:
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	})
}

// received waits until p's store holds a text message containing text.
func (p *party) received(t testing.TB, text string) bridge.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		changed := p.client.Changed()
		recs, _ := p.store.After(context.Background(), 0, bridge.DirIn, 1000)
		for _, r := range recs {
			if r.Type == wire.TypeText && strings.Contains(string(r.Body), text) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never received %q", p.name, text)
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// serve starts an MCP server for p (with its relay connection) and an
// in-memory client for it.
func serve(t *testing.T, p *party, opt mcp.Options) (*mcp.Server, *client.Client) {
	t.Helper()
	if opt.ProgressInterval == 0 {
		opt.ProgressInterval = 20 * time.Millisecond
	}
	srv, err := mcp.New(mcp.Config{Client: p.client, Book: p.book, Self: p.self, Options: opt})
	if err != nil {
		t.Fatal(err)
	}
	background(t, srv.Run)
	return srv, connect(t, srv)
}

// connect serves srv's tools to an in-memory client (over mcp-go's stdio
// transport on pipes).
func connect(t *testing.T, srv *mcp.Server) *client.Client {
	t.Helper()
	ts := mcptest.NewUnstartedServer(t)
	ts.AddTools(srv.Tools()...)
	if err := ts.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.Close)
	return ts.Client()
}

// call calls a tool and wants a result (error or not).
func call(t *testing.T, c *client.Client, tool string, args map[string]any) *mcpgo.CallToolResult {
	t.Helper()
	var req mcpgo.CallToolRequest
	req.Params.Name = tool
	req.Params.Arguments = args
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("%s: protocol error %v", tool, err)
	}
	return r
}

// ok calls a tool that must succeed and decodes its structured content.
func ok[T any](t *testing.T, c *client.Client, tool string, args map[string]any) (T, string) {
	t.Helper()
	r := call(t, c, tool, args)
	text := textOf(t, r)
	if r.IsError {
		t.Fatalf("%s(%v): error %s", tool, args, text)
	}
	var v T
	raw := r.RawStructuredContent
	if len(raw) == 0 {
		raw, _ = json.Marshal(r.StructuredContent)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: structured content %s: %v", tool, raw, err)
	}
	return v, text
}

// fails calls a tool that must fail and returns the error text.
func fails(t *testing.T, c *client.Client, tool string, args map[string]any) string {
	t.Helper()
	r := call(t, c, tool, args)
	text := textOf(t, r)
	if !r.IsError {
		t.Fatalf("%s(%v) succeeded: %s", tool, args, text)
	}
	return text
}

func textOf(t *testing.T, r *mcpgo.CallToolResult) string {
	t.Helper()
	if len(r.Content) == 0 {
		t.Fatal("no content")
	}
	tc, isText := mcpgo.AsTextContent(r.Content[0])
	if !isText {
		t.Fatalf("content %T", r.Content[0])
	}
	return tc.Text
}

func texts(ms []mcp.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}
