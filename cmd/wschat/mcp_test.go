package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/relayd/relaytest"
	"github.com/wschat/wschat/wire"
)

// mcpWorld is the real binary, a relay in this process, and homes made
// with the binary.
type mcpWorld struct {
	tb    testing.TB
	bin   string
	dir   string
	relay wire.RelayAddress
}

func newMCPWorld(tb testing.TB) *mcpWorld {
	tb.Helper()
	dir := tb.TempDir()
	bin := filepath.Join(dir, "wschat")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return &mcpWorld{tb: tb, bin: bin, dir: dir, relay: startTestRelay(tb)}
}

// startTestRelay runs a relay with a memory mailbox on 127.0.0.1 until the
// test ends.
func startTestRelay(tb testing.TB) wire.RelayAddress {
	tb.Helper()
	return relaytest.Start(tb, relaytest.Options{
		MailboxLimits: relayd.MailboxLimits{MaxFrames: 1 << 20, MaxBytes: 1 << 32},
		Limits:        relayd.Limits{RateBytes: 1 << 30, RateBurst: 1 << 30}}).Addr
}

// home makes an identity with `wschat keygen` and returns its home.
func (w *mcpWorld) home(name string) string {
	w.tb.Helper()
	h := filepath.Join(w.dir, name)
	w.run("--home", h, "keygen", "--name", name, "--relay", w.relay.String())
	return h
}

func (w *mcpWorld) run(args ...string) string {
	w.tb.Helper()
	out, err := exec.Command(w.bin, args...).Output()
	if err != nil {
		w.tb.Fatalf("wschat %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// befriend adds a and b to each other's contacts under their home names.
func (w *mcpWorld) befriend(a, b string) {
	w.tb.Helper()
	w.run("--home", a, "contacts", "add", filepath.Base(b), w.run("--home", b, "invite"))
	w.run("--home", b, "contacts", "add", filepath.Base(a), w.run("--home", a, "invite"))
}

// answerer plays a person on another identity, in this process: it
// replies to every text message with "got it: TEXT".
func (w *mcpWorld) answerer(home string) {
	w.tb.Helper()
	f, err := keys.Load(filepath.Join(home, "identity"), nil)
	if err != nil {
		w.tb.Fatal(err)
	}
	book, err := keys.OpenBook(filepath.Join(home, "contacts"))
	if err != nil {
		w.tb.Fatal(err)
	}
	store, err := bridge.OpenStore(filepath.Join(home, "messages.db"), true)
	if err != nil {
		w.tb.Fatal(err)
	}
	c := bridge.NewClient(bridge.Config{Identity: f.Identity, Relay: w.relay, Book: book, Store: store})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	w.tb.Cleanup(func() { cancel(); wg.Wait(); store.Close() })
	wg.Add(2)
	go func() { defer wg.Done(); c.Run(ctx, nil, nil) }()
	go func() {
		defer wg.Done()
		cursor, _ := store.LastCursor(ctx)
		for {
			changed := c.Changed()
			recs, _ := store.After(ctx, cursor, bridge.DirIn, 100)
			for _, r := range recs {
				cursor = r.Cursor
				if r.Type != wire.TypeText {
					continue
				}
				if from, err := book.ByID(r.PeerID); err == nil {
					c.Send(ctx, from, []byte("got it: "+string(r.Body)), false)
				}
			}
			select {
			case <-changed:
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	}()
}

// startMCP runs `wschat mcp` as a subprocess driven by mcp-go's stdio
// client, initialized.
func (w *mcpWorld) startMCP(stderr *syncBuffer, args ...string) *client.Client {
	w.tb.Helper()
	c, err := client.NewStdioMCPClientWithOptions(w.bin, os.Environ(), append([]string{}, args...), transport.WithCommandStderrWriter(stderr))
	if err != nil {
		w.tb.Fatal(err)
	}
	w.tb.Cleanup(func() { c.Close() })
	var req mcpgo.InitializeRequest
	req.Params.ProtocolVersion = mcpgo.LATEST_PROTOCOL_VERSION
	req.Params.ClientInfo = mcpgo.Implementation{Name: "wschat-test", Version: "1"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Initialize(ctx, req); err != nil {
		w.tb.Fatalf("initialize: %v\nstderr:\n%s", err, stderr)
	}
	return c
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func callTool(tb testing.TB, c *client.Client, name string, args map[string]any) (map[string]any, string) {
	tb.Helper()
	var req mcpgo.CallToolRequest
	req.Params.Name = name
	req.Params.Arguments = args
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := c.CallTool(ctx, req)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	text := ""
	if len(r.Content) > 0 {
		if tc, ok := mcpgo.AsTextContent(r.Content[0]); ok {
			text = tc.Text
		}
	}
	if r.IsError {
		tb.Fatalf("%s(%v): %s", name, args, text)
	}
	var m map[string]any
	raw := r.RawStructuredContent
	if len(raw) == 0 {
		raw, _ = json.Marshal(r.StructuredContent)
	}
	json.Unmarshal(raw, &m)
	return m, text
}

// TestMCPEndToEnd: `wschat mcp` over stdio against a real relay, talking
// with a second identity that answers.
func TestMCPEndToEnd(t *testing.T) {
	w := newMCPWorld(t)
	agent, alice := w.home("agent"), w.home("alice")
	w.befriend(agent, alice)
	w.answerer(alice)
	stderr := &syncBuffer{}
	c := w.startMCP(stderr, "--home", agent, "mcp")

	tools, err := c.ListTools(context.Background(), mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"ask_human", "list_contacts", "read_messages", "send_message", "wait_for_message", "whoami"}) {
		t.Fatalf("tools %v", names)
	}
	me, _ := callTool(t, c, "whoami", nil)
	if me["name"] != "agent" || me["invite"] != w.run("--home", agent, "invite") {
		t.Fatalf("whoami %v", me)
	}
	sent, _ := callTool(t, c, "send_message", map[string]any{"to": "alice", "text": "ping"})
	if sent["status"] == "" || sent["id"] == "" {
		t.Fatalf("send_message %v", sent)
	}
	got, text := callTool(t, c, "wait_for_message", map[string]any{"from": "alice", "timeout_seconds": 20})
	msgs, _ := got["messages"].([]any)
	if len(msgs) != 1 || msgs[0].(map[string]any)["text"] != "got it: ping" || !strings.Contains(text, "<message from=\"alice\"") {
		t.Fatalf("wait_for_message %v\n%s", got, text)
	}
	asked, _ := callTool(t, c, "ask_human", map[string]any{"to": "alice", "question": "ready?", "timeout_seconds": 20})
	replies, _ := asked["replies"].([]any)
	if len(replies) != 1 || replies[0].(map[string]any)["text"] != "got it: ready?" {
		t.Fatalf("ask_human %v", asked)
	}
}

// Nothing but protocol on stdout, even for bad input; logs go to stderr.
func TestMCPStdoutIsProtocol(t *testing.T) {
	w := newMCPWorld(t)
	agent := w.home("agent")
	// A relay that is not there: the server answers all the same, and
	// says so on stderr.
	_, key, _ := strings.Cut(w.relay.String(), "#")
	cmd := exec.Command(w.bin, "--home", agent, "mcp", "--relay", "ws://127.0.0.1:1/#"+key)
	requests := strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
		`this is not json`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"send_message","arguments":{"to":"nobody","text":"x"}}}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"read_messages"}}`,
	}, "\n") + "\n"
	// Requests are handled concurrently: keep stdin open until every answer
	// is in (a client that closes stdin at once may lose the last ones).
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, requests)
	var outb strings.Builder
	ids := map[float64]bool{}
	s := bufio.NewScanner(pipe)
	s.Buffer(nil, 1<<20)
	timer := time.AfterFunc(20*time.Second, func() { stdin.Close() })
	defer timer.Stop()
	for !(ids[1] && ids[2] && ids[3] && ids[4]) && s.Scan() {
		outb.WriteString(s.Text() + "\n")
		var m struct {
			JSONRPC string  `json:"jsonrpc"`
			ID      float64 `json:"id"`
		}
		if err := json.Unmarshal(s.Bytes(), &m); err != nil || m.JSONRPC != "2.0" {
			t.Fatalf("not protocol on stdout: %q", s.Text())
		}
		ids[m.ID] = true
	}
	stdin.Close()
	for s.Scan() {
		outb.WriteString(s.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	out := outb.String()
	if !ids[1] || !ids[2] || !ids[3] || !ids[4] {
		t.Fatalf("answers %v; stdout:\n%s", ids, out)
	}
	if !strings.Contains(out, `unknown contact 'nobody'`) {
		t.Fatalf("stdout:\n%s", out)
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if l != "" && !strings.HasPrefix(l, "wschat: ") {
			t.Fatalf("stderr:\n%s", stderr.String())
		}
	}
}

func TestMCPUsageErrors(t *testing.T) {
	w := newMCPWorld(t)
	agent := w.home("agent")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"mcp", "--allow", "bob"}, "unknown contact"},
		{[]string{"mcp", "--max-text", "0"}, "--max-text"},
		{[]string{"mcp", "--send-rate", "0"}, "--send-rate"},
		{[]string{"mcp", "--http", "nonsense"}, "--http"},
	} {
		cmd := exec.Command(w.bin, append([]string{"--home", agent}, tc.args...)...)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		ee, isExit := err.(*exec.ExitError)
		if !isExit || ee.ExitCode() != exitUsage || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: %v %s", tc.args, err, out)
		}
	}
}

// BenchmarkMCPSendMessage: send_message tool calls over stdio to `wschat
// mcp`, against a relay on loopback, to an offline contact (the relay
// stores the message; target p50 ≤ 0.5 ms, p99 ≤ 2 ms). "raw" is a
// minimal JSON-RPC client writing and reading lines; "mcp-go" is mcp-go's
// stdio client, which adds its own cost.
func BenchmarkMCPSendMessage(b *testing.B) {
	w := newMCPWorld(b)
	bob := w.home("bob")
	// Each client gets an agent of its own, with an empty history.
	agentArgs := func(name string) []string {
		agent := w.home(name)
		w.befriend(agent, bob)
		return []string{"--home", agent, "mcp", "--send-rate", "1e9", "--send-burst", "1000000"}
	}
	text := strings.Repeat("x", 200)
	const runs = 2000
	report := func(b *testing.B, d []time.Duration) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.Run("raw", func(b *testing.B) {
		cmd := exec.Command(w.bin, agentArgs("agent")...)
		in, _ := cmd.StdinPipe()
		outPipe, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { in.Close(); cmd.Wait() }()
		out := bufio.NewReader(outPipe)
		id := 0
		call := func(method, params string) []byte {
			id++
			fmt.Fprintf(in, `{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`+"\n", id, method, params)
			want := fmt.Sprintf(`"id":%d,`, id)
			for {
				line, err := out.ReadBytes('\n')
				if err != nil {
					b.Fatal(err)
				}
				if bytes.Contains(line, []byte(want)) {
					return line
				}
			}
		}
		call("initialize", `{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}`)
		fmt.Fprintln(in, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		params := fmt.Sprintf(`{"name":"send_message","arguments":{"to":"bob","text":%q}}`, text)
		for i := 0; i < 50; i++ { // the relay connection is up
			call("tools/call", params)
		}
		for b.Loop() {
			d := make([]time.Duration, 0, runs)
			for i := 0; i < runs; i++ {
				start := time.Now()
				r := call("tools/call", params)
				d = append(d, time.Since(start))
				if bytes.Contains(r, []byte(`"isError":true`)) || !bytes.Contains(r, []byte(`"status":"stored"`)) {
					b.Fatalf("%s", r)
				}
			}
			report(b, d)
		}
	})
	b.Run("mcp-go", func(b *testing.B) {
		c := w.startMCP(&syncBuffer{}, agentArgs("agent2")...)
		for i := 0; i < 50; i++ {
			callTool(b, c, "send_message", map[string]any{"to": "bob", "text": "warm up"})
		}
		for b.Loop() {
			d := make([]time.Duration, 0, runs)
			for i := 0; i < runs; i++ {
				var req mcpgo.CallToolRequest
				req.Params.Name = "send_message"
				req.Params.Arguments = map[string]any{"to": "bob", "text": text}
				start := time.Now()
				r, err := c.CallTool(context.Background(), req)
				d = append(d, time.Since(start))
				if err != nil || r.IsError {
					b.Fatalf("%v %+v", err, r)
				}
			}
			report(b, d)
		}
	})
}

// BenchmarkMCPStartup: from starting `wschat mcp` to its answer to
// tools/list (after initialize), p50 (target ≤ 20 ms).
func BenchmarkMCPStartup(b *testing.B) {
	w := newMCPWorld(b)
	agent, bob := w.home("agent"), w.home("bob")
	w.befriend(agent, bob)
	const runs = 30
	for b.Loop() {
		d := make([]time.Duration, 0, runs)
		for i := 0; i < runs; i++ {
			start := time.Now()
			c, err := client.NewStdioMCPClient(w.bin, os.Environ(), "--home", agent, "mcp")
			if err != nil {
				b.Fatal(err)
			}
			var req mcpgo.InitializeRequest
			req.Params.ProtocolVersion = mcpgo.LATEST_PROTOCOL_VERSION
			if _, err := c.Initialize(context.Background(), req); err != nil {
				b.Fatal(err)
			}
			if _, err := c.ListTools(context.Background(), mcpgo.ListToolsRequest{}); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(start))
			c.Close()
		}
		slices.Sort(d)
		b.ReportMetric(float64(d[runs/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(d[runs*9/10].Microseconds())/1000, "p90-ms")
	}
}

// fakeClaude stands in for `claude mcp add NAME [-e K=V]... -- CMD
// ARGS...`: it checks the syntax and records the server it would run, one
// field per line, for the test to start as a client would.
const fakeClaude = `#!/bin/sh
set -e
[ "$1" = mcp ] && [ "$2" = add ] && [ -n "$3" ] || { echo "fake claude: want: claude mcp add NAME [-e K=V]... -- CMD ARGS..." >&2; exit 2; }
shift 2
{ echo "NAME $1"; shift
  while [ "$1" != "--" ]; do
    case "$1" in
      -e|--env) echo "ENV $2"; shift 2 ;;
      *) echo "fake claude: unknown option $1" >&2; exit 2 ;;
    esac
  done
  shift
  command -v "$1" >/dev/null || { echo "fake claude: $1 is not on PATH" >&2; exit 2; }
  for a in "$@"; do echo "ARG $a"; done
  echo END
} >> "$CLAUDE_LOG"
`

// registered is one `claude mcp add` the guide ran.
type registered struct {
	name string
	env  []string
	args []string
}

func readRegistered(t *testing.T, path string) []registered {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []registered
	var r registered
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, " ")
		switch k {
		case "NAME":
			r = registered{name: v}
		case "ENV":
			r.env = append(r.env, v)
		case "ARG":
			r.args = append(r.args, v)
		case "END":
			out = append(out, r)
		}
	}
	return out
}

var (
	fenced    = regexp.MustCompile("(?ms)^```(\\w+)\\n(.*?)^```")
	inlineCmd = regexp.MustCompile("`((?:wschat|go install) [^`]*)`")
)

// TestClaudeMD runs every command in CLAUDE.md, in order, as the agent
// and the human it describes would: `go install`, the sh blocks (those
// starting "# the human:" in the human's home), the registered MCP
// server (driven through the waiting pattern the guide describes, with
// the human answering), the cron line's command, and `--help` for every
// wschat command quoted inline.
func TestClaudeMD(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	guide, err := os.ReadFile(filepath.Join(root, "CLAUDE.md"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	binDir, home := filepath.Join(tmp, "bin"), filepath.Join(tmp, "home")
	os.MkdirAll(home, 0o700)
	inline := inlineCmd.FindAllStringSubmatch(fenced.ReplaceAllString(string(guide), ""), -1)
	installed := false
	for _, m := range inline {
		if strings.HasPrefix(m[1], "go install ") {
			cmd := exec.Command("sh", "-c", m[1])
			cmd.Dir, cmd.Env = root, append(os.Environ(), "GOBIN="+binDir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", m[1], err, out)
			}
			installed = true
		}
	}
	if !installed {
		t.Fatal("CLAUDE.md does not say how to install wschat")
	}
	if err := os.WriteFile(filepath.Join(binDir, "claude"), []byte(fakeClaude), 0o755); err != nil {
		t.Fatal(err)
	}
	w := &mcpWorld{tb: t, bin: filepath.Join(binDir, "wschat"), dir: tmp, relay: startTestRelay(t)}
	claudeLog := filepath.Join(tmp, "claude.log")
	agentHome, humanHome := filepath.Join(home, ".wschat-agent"), filepath.Join(tmp, "human")
	base := []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "RELAY=" + w.relay.String(), "CLAUDE_LOG=" + claudeLog}
	invite := func(h string) string {
		if _, err := os.Stat(filepath.Join(h, "identity")); err != nil {
			return ""
		}
		return w.run("--home", h, "invite")
	}
	answering := false
	sh := func(script string, env []string) string {
		t.Helper()
		cmd := exec.Command("sh", "-e", "-c", script)
		cmd.Dir = tmp
		cmd.Env = append(base, env...)
		cmd.Env = append(cmd.Env, "AGENT_INVITE="+invite(agentHome), "HUMAN_INVITE="+invite(humanHome))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("CLAUDE.md command failed: %v\n%s\noutput:\n%s", err, script, out)
		}
		t.Logf("ran:\n%s\n%s", strings.TrimSpace(script), out)
		return string(out)
	}
	agentEnv := []string{"WSCHAT_HOME=" + agentHome}
	ran := 0
	blocks := fenced.FindAllStringSubmatch(string(guide), -1)
	for _, b := range blocks {
		lang, body := b[1], b[2]
		switch lang {
		case "sh":
			if strings.HasPrefix(body, "# the human") {
				sh(body, []string{"WSCHAT_HOME=" + humanHome})
				continue
			}
			if !answering && invite(humanHome) != "" {
				if _, err := os.Stat(filepath.Join(humanHome, "contacts")); err == nil {
					w.answerer(humanHome) // the human answers from here on
					answering = true
				}
			}
			out := sh(body, agentEnv)
			if strings.Contains(body, "wschat listen") && !strings.Contains(out, `"text":"got it: `) {
				t.Fatalf("listen did not show the human's answer:\n%s", out)
			}
			for _, r := range readRegistered(t, claudeLog)[ran:] {
				driveRegistered(t, w, base, r)
				ran++
			}
		case "cron":
			for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
				rest := strings.TrimSpace(line)
				for i := 0; i < 5; i++ { // minute hour day month weekday
					_, rest, _ = strings.Cut(strings.TrimSpace(rest), " ")
				}
				sh(rest, nil)
			}
		default:
			t.Fatalf("CLAUDE.md has a %q block the test does not run", lang)
		}
	}
	if ran == 0 || !answering {
		t.Fatalf("CLAUDE.md registered %d MCP servers; the human answered: %v", ran, answering)
	}
	for _, m := range inline {
		if !strings.HasPrefix(m[1], "wschat ") {
			continue
		}
		sh(m[1]+" --help >/dev/null", agentEnv)
		if args := strings.Fields(m[1]); args[1] == "mcp" && !slices.Contains(args, "--http") {
			// The variants of the server: start them and look at their tools.
			checkVariant(t, append(append(os.Environ(), base...), agentEnv...), args)
		}
	}
}

// checkVariant starts `wschat mcp` with options from the guide and checks
// that they do what the guide says.
func checkVariant(t *testing.T, env, args []string) {
	t.Helper()
	c, err := client.NewStdioMCPClient(args[0], env, args[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var req mcpgo.InitializeRequest
	req.Params.ProtocolVersion = mcpgo.LATEST_PROTOCOL_VERSION
	if _, err := c.Initialize(context.Background(), req); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	list, err := c.ListTools(context.Background(), mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	sends := slices.ContainsFunc(list.Tools, func(tool mcpgo.Tool) bool { return tool.Name == "send_message" })
	if sends == slices.Contains(args, "--read-only") {
		t.Fatalf("%v: send_message offered: %v", args, sends)
	}
	contacts, _ := callTool(t, c, "list_contacts", nil)
	alice := contacts["contacts"].([]any)[0].(map[string]any)
	if alice["name"] != "alice" || alice["can_message"] != sends {
		t.Fatalf("%v: %v", args, contacts)
	}
}

// driveRegistered starts a server the guide registered, as the client
// would, and follows the guide's waiting pattern with it.
func driveRegistered(t *testing.T, w *mcpWorld, base []string, r registered) {
	t.Helper()
	stderr := &syncBuffer{}
	env := append(append(os.Environ(), base...), r.env...)
	c, err := client.NewStdioMCPClientWithOptions(r.args[0], env, r.args[1:], transport.WithCommandStderrWriter(stderr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var req mcpgo.InitializeRequest
	req.Params.ProtocolVersion = mcpgo.LATEST_PROTOCOL_VERSION
	if _, err := c.Initialize(context.Background(), req); err != nil {
		t.Fatalf("%s: %v\n%s", r.name, err, stderr)
	}
	me, _ := callTool(t, c, "whoami", nil)
	if me["name"] != "agent" {
		t.Fatalf("%s: whoami %v", r.name, me)
	}
	// 1. ask_human; 2. on timeout, wait_for_message after next_cursor;
	// 3. read_messages between tasks.
	asked, _ := callTool(t, c, "ask_human", map[string]any{"to": "alice", "question": "Tests pass. Merge to main?", "timeout_seconds": 50})
	if replies, _ := asked["replies"].([]any); len(replies) != 1 || asked["timed_out"] == true {
		t.Fatalf("ask_human: %v", asked)
	}
	more, _ := callTool(t, c, "wait_for_message", map[string]any{"from": "alice", "after": asked["next_cursor"], "timeout_seconds": 0.5})
	if more["timed_out"] != true {
		t.Fatalf("wait_for_message: %v", more)
	}
	callTool(t, c, "read_messages", nil)
}
