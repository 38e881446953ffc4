package mcp_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/mcp"
)

func TestWaitForMessage(t *testing.T) {
	w := newWorld(t)
	agent, alice, bob := w.party("agent"), w.party("alice"), w.party("bob")
	befriend(t, agent, alice)
	befriend(t, agent, bob)
	_, c := serve(t, agent, mcp.Options{})

	// Nothing comes: timed out, with a cursor to wait after.
	got, text := ok[mcp.Messages](t, c, "wait_for_message", map[string]any{"timeout_seconds": 0.3})
	if !got.TimedOut || len(got.Messages) != 0 || !strings.Contains(text, "timed_out") || !strings.Contains(text, "after=") {
		t.Fatalf("timeout: %+v %q", got, text)
	}
	// A message comes while it waits: returned at once, not at the timeout.
	go func() {
		time.Sleep(200 * time.Millisecond)
		bob.say(t, "agent", "bob here")
	}()
	start := time.Now()
	got, _ = ok[mcp.Messages](t, c, "wait_for_message", map[string]any{"after": got.NextCursor, "timeout_seconds": 20})
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("took %v", took)
	}
	if got.TimedOut || slices.Compare(texts(got.Messages), []string{"bob here"}) != 0 || got.Messages[0].From != "bob" {
		t.Fatalf("message: %+v", got)
	}
	// Waiting for alice does not return bob's messages.
	bob.say(t, "agent", "bob again")
	alice.say(t, "agent", "alice at last")
	got, _ = ok[mcp.Messages](t, c, "wait_for_message", map[string]any{"from": "alice", "after": got.NextCursor, "timeout_seconds": 10})
	if slices.Compare(texts(got.Messages), []string{"alice at last"}) != 0 {
		t.Fatalf("from alice: %v", texts(got.Messages))
	}
	// Without after: the unread ones, at once. "bob here" was shown
	// by the wait above.
	got, _ = ok[mcp.Messages](t, c, "wait_for_message", map[string]any{"timeout_seconds": 10})
	if slices.Compare(texts(got.Messages), []string{"bob again"}) != 0 {
		t.Fatalf("unread: %v", texts(got.Messages))
	}
	got, _ = ok[mcp.Messages](t, c, "read_messages", nil)
	if len(got.Messages) != 0 {
		t.Fatalf("still unread: %v", texts(got.Messages))
	}
}

func TestWaitArgumentErrors(t *testing.T) {
	w := newWorld(t)
	agent, alice := w.party("agent"), w.party("alice")
	befriend(t, agent, alice)
	_, c := serve(t, agent, mcp.Options{})
	for _, tool := range []string{"wait_for_message", "ask_human"} {
		for _, tc := range []struct {
			timeout any
			want    string
		}{
			{0, "timeout_seconds must be above 0 (default 30, at most 50)"},
			{-5, "timeout_seconds must be above 0"},
			{"soon", `"timeout_seconds" must be a number`},
		} {
			args := map[string]any{"timeout_seconds": tc.timeout}
			if tool == "ask_human" {
				args["to"], args["question"] = "alice", "ok?"
			}
			if got := fails(t, c, tool, args); !strings.Contains(got, tc.want) {
				t.Errorf("%s %v: %q, want %q", tool, tc.timeout, got, tc.want)
			}
		}
	}
	if got := fails(t, c, "wait_for_message", map[string]any{"from": "bob"}); !strings.Contains(got, "unknown contact 'bob'; known: alice") {
		t.Errorf("%q", got)
	}
	if got := fails(t, c, "ask_human", map[string]any{"question": "?"}); !strings.Contains(got, `"to" is required`) {
		t.Errorf("%q", got)
	}
	if got := fails(t, c, "ask_human", map[string]any{"to": "alice"}); !strings.Contains(got, `"question" is required`) {
		t.Errorf("%q", got)
	}
	// The question was not sent for any of these.
	if recs, _ := agent.store.After(context.Background(), 0, bridge.DirOut, 10); len(recs) != 0 {
		t.Fatalf("%d messages sent", len(recs))
	}
}

// While it waits, the server sends progress notifications for the
// request's token, with increasing progress.
func TestWaitProgress(t *testing.T) {
	w := newWorld(t)
	agent := w.party("agent")
	_, c := serve(t, agent, mcp.Options{ProgressInterval: 30 * time.Millisecond})
	var mu sync.Mutex
	var progress []float64
	c.OnNotification(func(n mcpgo.JSONRPCNotification) {
		if n.Method != string(mcpgo.MethodNotificationProgress) || n.Params.AdditionalFields["progressToken"] != "wait-1" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		p, _ := n.Params.AdditionalFields["progress"].(float64)
		progress = append(progress, p)
	})
	var req mcpgo.CallToolRequest
	req.Params.Name = "wait_for_message"
	req.Params.Arguments = map[string]any{"timeout_seconds": 0.5}
	req.Params.Meta = &mcpgo.Meta{ProgressToken: "wait-1"}
	r, err := c.CallTool(context.Background(), req)
	if err != nil || r.IsError {
		t.Fatal(err, r)
	}
	// Notifications travel beside the result; give them a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(progress)
		p := slices.Clone(progress)
		mu.Unlock()
		if n >= 5 {
			for i := 1; i < len(p); i++ {
				if p[i] <= p[i-1] {
					t.Fatalf("progress not increasing: %v", p)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d progress notifications: %v", n, p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAskHuman(t *testing.T) {
	w := newWorld(t)
	agent, alice := w.party("agent"), w.party("alice")
	befriend(t, agent, alice)
	alice.say(t, "agent", "an old message, not the answer")
	alice.answer(t, func(q string) string { return "answer to: " + q })
	_, c := serve(t, agent, mcp.Options{})
	agent.received(t, "old message")

	got, text := ok[mcp.Asked](t, c, "ask_human", map[string]any{"to": "alice", "question": "deploy now?", "timeout_seconds": 20})
	if got.TimedOut || len(got.Replies) != 1 || got.Replies[0].Text != "answer to: deploy now?" || got.Replies[0].From != "alice" {
		t.Fatalf("ask: %+v", got)
	}
	if got.QuestionID == "" || got.Status == "" || !strings.Contains(text, "<message from=\"alice\"") || !strings.Contains(text, "not instructions") {
		t.Fatalf("ask: %+v\n%s", got, text)
	}
	alice.received(t, "deploy now?")
	// The old message is still unread; the answer is not shown twice...
	// unless asked for: the old one came first, so nothing was marked.
	unread, _ := ok[mcp.Messages](t, c, "read_messages", map[string]any{"from": "alice"})
	if slices.Compare(texts(unread.Messages), []string{"an old message, not the answer", "answer to: deploy now?"}) != 0 {
		t.Fatalf("unread %v", texts(unread.Messages))
	}
	// Now that alice's are all read, the next answer is marked read.
	ok[mcp.Asked](t, c, "ask_human", map[string]any{"to": "alice", "question": "sure?", "timeout_seconds": 20})
	unread, _ = ok[mcp.Messages](t, c, "read_messages", nil)
	if len(unread.Messages) != 0 {
		t.Fatalf("unread after a shown reply: %v", texts(unread.Messages))
	}
}

// The person answers after ask_human gave up: wait_for_message with its
// cursor gets the answer, and the question is not sent twice.
func TestAskHumanTimesOutThenWait(t *testing.T) {
	w := newWorld(t)
	agent, bob := w.party("agent"), w.party("bob")
	befriend(t, agent, bob)
	bob.online(t)
	_, c := serve(t, agent, mcp.Options{})
	got, text := ok[mcp.Asked](t, c, "ask_human", map[string]any{"to": "bob", "question": "are you there?", "timeout_seconds": 0.3})
	if !got.TimedOut || len(got.Replies) != 0 || !strings.Contains(text, "do not ask again") || !strings.Contains(text, `wait_for_message with from="bob"`) {
		t.Fatalf("%+v\n%s", got, text)
	}
	bob.received(t, "are you there?")
	bob.say(t, "agent", "sorry, here now")
	later, _ := ok[mcp.Messages](t, c, "wait_for_message", map[string]any{"from": "bob", "after": got.NextCursor, "timeout_seconds": 10})
	if slices.Compare(texts(later.Messages), []string{"sorry, here now"}) != 0 {
		t.Fatalf("%v", texts(later.Messages))
	}
	if recs, _ := agent.store.After(context.Background(), 0, bridge.DirOut, 10); len(recs) != 1 {
		t.Fatalf("%d messages sent", len(recs))
	}
}

// Another wschat process of the same identity stores a message (its own
// receiving connection took it): the waiting server sees it in the
// shared store without being told.
func TestWaitSeesOtherProcesses(t *testing.T) {
	w := newWorld(t)
	agent, alice := w.party("agent"), w.party("alice")
	befriend(t, agent, alice)
	srv, err := mcp.New(mcp.Config{Client: agent.client, Book: agent.book, Self: agent.self, Options: mcp.Options{Recheck: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	// The server's own relay connection is not running; another
	// "process" (its own store handle and client) receives instead.
	c := connect(t, srv)
	other, err := bridge.OpenStore(filepath.Join(agent.dir, "messages.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	oc := bridge.NewClient(bridge.Config{Identity: agent.self.Identity, Relay: w.relay, Book: agent.book, Store: other})
	background(t, func(ctx context.Context) { oc.Run(ctx, nil, nil) })
	go func() {
		time.Sleep(100 * time.Millisecond)
		alice.say(t, "agent", "via the other process")
	}()
	got, _ := ok[mcp.Messages](t, c, "wait_for_message", map[string]any{"timeout_seconds": 20})
	if slices.Compare(texts(got.Messages), []string{"via the other process"}) != 0 {
		t.Fatalf("%+v", got)
	}
}
