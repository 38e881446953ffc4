package mcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/wschat/wschat/mcp"
)

// stdioServer runs srv.ServeStdio on pipes; closing in ends it, and done
// is closed when it has returned.
type stdioServer struct {
	in   *io.PipeWriter // the client's side of the server's stdin
	out  *bufio.Reader  // the server's stdout
	done chan struct{}
	err  error // ServeStdio's result, once done is closed
}

func serveStdio(t *testing.T, p *party, opt mcp.Options) *stdioServer {
	t.Helper()
	if opt.ProgressInterval == 0 {
		opt.ProgressInterval = 20 * time.Millisecond
	}
	srv, err := mcp.New(mcp.Config{Client: p.client, Book: p.book, Self: p.self, Options: opt})
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &stdioServer{in: inW, out: bufio.NewReader(outR), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = srv.ServeStdio(context.Background(), inR, outW)
		outW.Close()
	}()
	t.Cleanup(func() {
		inW.Close()
		go io.Copy(io.Discard, outR) // answers still on their way
		<-s.done
	})
	return s
}

// send writes lines to the server's stdin.
func (s *stdioServer) send(t *testing.T, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(s.in, l+"\n"); err != nil {
			t.Fatal(err)
		}
	}
}

// next reads the server's next message.
func (s *stdioServer) next(t *testing.T) map[string]any {
	t.Helper()
	line, err := s.out.ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading the server's stdout: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil || m["jsonrpc"] != "2.0" {
		t.Fatalf("not protocol on stdout: %q", line)
	}
	return m
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

// Bad lines get an error answer and the server carries on; responses from
// the client are ignored; the end of stdin ends ServeStdio.
func TestStdioBadInput(t *testing.T) {
	w := newWorld(t)
	s := serveStdio(t, w.party("agent"), mcp.Options{})
	s.send(t, initialize)
	if m := s.next(t); m["id"] != 1.0 || m["result"] == nil {
		t.Fatalf("initialize: %v", m)
	}
	s.send(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, ``, `this is not json`)
	if m := s.next(t); m["id"] != nil || m["error"].(map[string]any)["code"] != float64(mcpgo.PARSE_ERROR) {
		t.Fatalf("bad json: %v", m)
	}
	s.send(t, `{"jsonrpc":"2.0","id":2,"method":"`+strings.Repeat("x", 2<<20)+`"}`)
	if m := s.next(t); m["id"] != nil || !strings.Contains(fmt.Sprint(m["error"]), "longer than") {
		t.Fatalf("long line: %v", m)
	}
	s.send(t, `{"jsonrpc":"2.0","id":77,"result":{}}`, `{"jsonrpc":"2.0","id":78,"error":{"code":1,"message":"no"}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami"}}`)
	if m := s.next(t); m["id"] != 3.0 || !strings.Contains(fmt.Sprint(m["result"]), "agent") {
		t.Fatalf("whoami: %v", m)
	}
	s.in.Close()
	select {
	case <-s.done:
		if s.err != nil {
			t.Fatal(s.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeStdio did not return at the end of its input")
	}
}

// Requests are served at once, beside a wait in progress (which sends its
// progress notifications); the end of stdin cancels the wait.
func TestStdioConcurrentRequests(t *testing.T) {
	w := newWorld(t)
	s := serveStdio(t, w.party("agent"), mcp.Options{})
	s.send(t, initialize)
	s.next(t)
	s.send(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"wait_for_message","arguments":{"timeout_seconds":40},"_meta":{"progressToken":"p"}}}`)
	seen := map[string]bool{}
	for !seen["progress"] {
		if s.next(t)["method"] == string(mcpgo.MethodNotificationProgress) {
			seen["progress"] = true
		}
	}
	s.send(t, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami"}}`)
	for {
		m := s.next(t)
		if m["id"] == 2.0 {
			t.Fatalf("the wait ended first: %v", m)
		}
		if m["id"] == 3.0 {
			break
		}
	}
	s.in.Close()
	for {
		m := s.next(t)
		if m["id"] == 2.0 {
			if !strings.Contains(fmt.Sprint(m["result"]), "cancelled") {
				t.Fatalf("the wait: %v", m)
			}
			break
		}
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeStdio did not return at the end of its input")
	}
}

// mcp-go's client drives ServeStdio: many calls at once, each answered
// once.
func TestStdioWithClient(t *testing.T) {
	w := newWorld(t)
	agent, bob := w.party("agent"), w.party("bob")
	befriend(t, agent, bob)
	bob.online(t)
	srv, err := mcp.New(mcp.Config{Client: agent.client, Book: agent.book, Self: agent.self})
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeStdio(ctx, inR, outW) }()
	c := client.NewClient(transport.NewIO(outR, inW, io.NopCloser(nil)))
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
		c.Close()
		inR.Close()
		outW.Close()
	}()
	var ireq mcpgo.InitializeRequest
	ireq.Params.ProtocolVersion = mcpgo.LATEST_PROTOCOL_VERSION
	if _, err := c.Initialize(ctx, ireq); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			var req mcpgo.CallToolRequest
			req.Params.Name = "send_message"
			req.Params.Arguments = map[string]any{"to": "bob", "text": fmt.Sprint("hello ", i)}
			r, err := c.CallTool(ctx, req)
			if err != nil || r.IsError {
				t.Errorf("send %d: %v %+v", i, err, r)
			}
		})
	}
	wg.Wait()
	for i := range 8 {
		bob.received(t, fmt.Sprint("hello ", i))
	}
}
