package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"

	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/wire"
)

// TestChatTerminal drives `wschat chat` in pseudo-terminals against a real
// relay, while bob answers with send and listen (and later his own chat):
// what alice types arrives, what bob sends appears on her screen, her
// message goes from sending (relay down) to stored, delivered and read,
// presence and typing show, NO_COLOR holds, and quitting restores the
// terminal.
func TestChatTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	bin, err := exec.LookPath("wschat") // this test binary, put on PATH by testscript.Main
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	alice, bob := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")

	// The relay's address is known before it serves: alice starts with it
	// down.
	var seed [32]byte
	copy(seed[:], "chat terminal test relay key....")
	rid, err := wire.RelayIdentityFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	mb := relayd.NewMemoryMailbox(relayd.MailboxLimits{})
	srv, err := relayd.New(relayd.Config{Identity: rid, Mailbox: mb})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostport := ln.Addr().String()
	ln.Close()
	relayAddr := srv.Address(fmt.Sprintf("ws://%s/", hostport)).String()

	ws := func(wantCode int, home string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--home", home}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("wschat %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, &stdout, &stderr)
		}
		return strings.TrimSpace(stdout.String())
	}
	// The relay is down: keygen makes the identities without registering
	// them; bob is registered as his first listen would have.
	invA := ws(0, alice, "keygen", "--offline", "--name", "alice", "--relay", relayAddr)
	invB := ws(0, bob, "keygen", "--offline", "--name", "bob", "--relay", relayAddr)
	if inv, err := keys.ParseInvite(invB); err != nil || mb.Register(inv.Public.ID(), time.Now()) != nil {
		t.Fatalf("registering bob: %v", err)
	}
	ws(0, alice, "contacts", "add", "bob", invB)
	ws(0, bob, "contacts", "add", "alice", invA)

	a := startChat(t, bin, alice, "bob", nil)
	a.waitRow("relay down", " bob", "offline, retrying")
	a.write("hi bob\r")
	a.waitRow("sending while the relay is down", "hi bob", "sending")

	// The relay comes up: alice's connection hands it over.
	for i := 0; ; i++ {
		if ln, err = net.Listen("tcp", hostport); err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx, 0)
		<-served
		mb.Close()
	})
	a.waitRow("stored at the relay", "hi bob", "stored")

	// bob reads it with listen: delivered.
	if got := ws(0, bob, "listen", "--count", "1", "--timeout", "20s"); got != "alice: hi bob" {
		t.Fatalf("bob's listen: %q", got)
	}
	a.waitRow("delivered", "hi bob", "delivered")

	// bob answers with send: it appears on alice's screen, which
	// acknowledges it as read.
	id := ws(0, bob, "send", "--to", "alice", "hello from bob")
	a.waitRow("bob's reply", "bob", "hello from bob")
	acks := ws(3, bob, "listen", "--acks", "--timeout", "3s")
	if !strings.Contains(acks, "(alice: read "+id+")") {
		t.Fatalf("no read acknowledgement for bob's message %s:\n%s", id, acks)
	}

	// bob opens his own chat (without color): alice's message is on his
	// screen, so it is read; each sees the other online; bob types.
	b := startChat(t, bin, bob, "alice", []string{"NO_COLOR=1"})
	b.waitRow("alice's message on bob's screen", "alice", "hi bob")
	a.waitRow("read", "hi bob", "read")
	a.waitRow("bob online", " bob", "online")
	b.waitRow("alice online", " alice", "online")
	b.write("typing something")
	a.waitRow("bob typing", " bob", "typing…")

	// A resize redraws cleanly.
	a.resize(30, 72)
	a.waitRow("after resize", "hi bob", "read")
	a.waitRow("after resize", " bob", "connected")

	a.write("\x03") // Ctrl+C
	b.write("\x1b") // Esc, with a draft: it asks first
	b.waitRow("Esc with a draft", "Esc again", "drop the draft")
	b.write("\x1b")
	for _, c := range []*ptyChat{a, b} {
		if err := c.wait(); err != nil {
			t.Fatalf("%s's chat: %v\n%s", c.name, err, c.screen.text())
		}
		raw := c.screen.rawBytes()
		on, off := bytes.LastIndex(raw, []byte("\x1b[?1049h")), bytes.LastIndex(raw, []byte("\x1b[?1049l"))
		if on < 0 || off < on || bytes.LastIndex(raw, []byte("\x1b[?25h")) < on {
			t.Errorf("%s's terminal not restored (alternate screen, cursor): %q", c.name, raw[max(0, len(raw)-80):])
		}
		if strings.Contains(c.screen.text(), "wschat:") {
			t.Errorf("%s's screen shows diagnostics:\n%s", c.name, c.screen.text())
		}
	}
	if !colorSGR.Match(a.screen.rawBytes()) {
		t.Error("alice's chat (TERM=xterm-256color) shows no color at all")
	}
	if m := colorSGR.Find(b.screen.rawBytes()); m != nil {
		t.Errorf("bob's chat under NO_COLOR writes color: %q", m)
	}
}

// colorSGR matches an SGR sequence that sets a color.
var colorSGR = regexp.MustCompile(`\x1b\[([0-9;]*;)?(3[0-9]|4[0-9]|9[0-7]|10[0-7])(;[0-9;]*)?m`)

// ptyChat is one `wschat chat` on a pseudo-terminal.
type ptyChat struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	pty    *os.File
	screen *vt
	copied chan struct{}
}

func startChat(t *testing.T, bin, home, contact string, env []string) *ptyChat {
	t.Helper()
	cmd := exec.Command(bin, "--home", home, "chat", contact)
	// termenv takes any CI variable to mean "not a terminal", and CLICOLOR
	// can turn color off or on: CI runners set them, a person's terminal
	// does not.
	cmd.Env = append(withoutEnv(os.Environ(), "NO_COLOR", "TERM", "COLORTERM", "CI", "CLICOLOR", "CLICOLOR_FORCE"), "TERM=xterm-256color")
	cmd.Env = append(cmd.Env, env...)
	const rows, cols = 24, 100
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	c := &ptyChat{t: t, name: filepath.Base(home), cmd: cmd, pty: f, screen: newVT(rows, cols), copied: make(chan struct{})}
	c.screen.reply = func(b []byte) { f.Write(b) }
	go func() {
		defer close(c.copied)
		io.Copy(c.screen, f) // ends with EIO when the process is gone
	}()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
		f.Close()
		<-c.copied
	})
	return c
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

func (c *ptyChat) write(s string) {
	c.t.Helper()
	if _, err := c.pty.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *ptyChat) resize(rows, cols int) {
	c.t.Helper()
	c.screen.resize(rows, cols)
	if err := pty.Setsize(c.pty, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)}); err != nil {
		c.t.Fatal(err)
	}
}

// waitRow waits until one row of the screen holds all of parts, in order.
func (c *ptyChat) waitRow(what string, parts ...string) {
	c.t.Helper()
	start := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, row := range strings.Split(c.screen.text(), "\n") {
			i, ok := 0, true
			for _, p := range parts {
				j := strings.Index(row[i:], p)
				if j < 0 {
					ok = false
					break
				}
				i += j + len(p)
			}
			if ok {
				c.t.Logf("%s: %s after %v", c.name, what, time.Since(start).Round(time.Millisecond))
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s's screen: waiting for %s (%q):\n%s", c.name, what, parts, c.screen.text())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits for the process to exit by itself.
func (c *ptyChat) wait() error {
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		return fmt.Errorf("did not exit: %v", <-done)
	}
}

// vt is the little of a terminal that bubbletea's renderer uses: printing,
// CR and LF, cursor moves, erasing, the alternate screen. It keeps the raw
// bytes too.
type vt struct {
	mu         sync.Mutex
	rows, cols int
	cells      [][]rune
	r, c       int
	raw        []byte
	pending    []byte       // an escape sequence or UTF-8 rune not complete yet
	reply      func([]byte) // answers the terminal's queries
}

func newVT(rows, cols int) *vt {
	v := &vt{}
	v.resize(rows, cols)
	return v
}

func (v *vt) resize(rows, cols int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rows, v.cols = rows, cols
	v.cells = make([][]rune, rows)
	for i := range v.cells {
		v.cells[i] = []rune(strings.Repeat(" ", cols))
	}
	v.r, v.c = min(v.r, rows-1), min(v.c, cols-1)
}

func (v *vt) text() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var b strings.Builder
	for _, row := range v.cells {
		b.WriteString(strings.TrimRight(string(row), " "))
		b.WriteByte('\n')
	}
	return b.String()
}

func (v *vt) rawBytes() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return bytes.Clone(v.raw)
}

func (v *vt) Write(p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.raw = append(v.raw, p...)
	buf := append(v.pending, p...)
	v.pending = nil
	for len(buf) > 0 {
		n := v.step(buf)
		if n == 0 { // incomplete: wait for more
			v.pending = bytes.Clone(buf)
			break
		}
		buf = buf[n:]
	}
	return len(p), nil
}

var csiRE = regexp.MustCompile(`^\x1b\[([0-9;?>=]*)[ -/]*([@-~])`)

// step consumes one rune or control sequence from b and returns its
// length, or 0 if b ends before it does.
func (v *vt) step(b []byte) int {
	switch b[0] {
	case '\x1b':
		if len(b) < 2 {
			return 0
		}
		switch b[1] {
		case '[':
			m := csiRE.FindSubmatch(b)
			if m == nil {
				if len(b) > 64 {
					return 1 // not a sequence we know: skip the ESC
				}
				return 0
			}
			v.csi(string(m[1]), m[2][0])
			return len(m[0])
		case ']': // OSC, ended by BEL or ST
			for i := 2; i < len(b); i++ {
				end := 0
				if b[i] == '\a' {
					end = i + 1
				} else if b[i] == '\x1b' && i+1 < len(b) && b[i+1] == '\\' {
					end = i + 2
				}
				if end > 0 {
					if bytes.HasPrefix(b, []byte("\x1b]11;?")) && v.reply != nil {
						v.reply([]byte("\x1b]11;rgb:0000/0000/0000\x1b\\")) // the background: black
					}
					return end
				}
			}
			return 0
		case '(', ')':
			if len(b) < 3 {
				return 0
			}
			return 3
		}
		return 2
	case '\r':
		v.c = 0
	case '\n':
		v.lineFeed()
	case '\b':
		v.c = max(0, v.c-1)
	default:
		if b[0] < 0x20 || b[0] == 0x7f {
			return 1
		}
		if !utf8.FullRune(b) {
			return 0
		}
		r, n := utf8.DecodeRune(b)
		if v.c >= v.cols { // the pending wrap
			v.c = 0
			v.lineFeed()
		}
		v.cells[v.r][v.c] = r
		v.c++
		return n
	}
	return 1
}

func (v *vt) lineFeed() {
	if v.r < v.rows-1 {
		v.r++
		return
	}
	copy(v.cells, v.cells[1:])
	v.cells[v.rows-1] = []rune(strings.Repeat(" ", v.cols))
}

func (v *vt) csi(params string, final byte) {
	private := strings.HasPrefix(params, "?")
	params = strings.TrimLeft(params, "?>=")
	var ps []int
	for _, s := range strings.Split(params, ";") {
		n, _ := strconv.Atoi(s)
		ps = append(ps, n)
	}
	arg := func(i, def int) int {
		if i < len(ps) && ps[i] > 0 {
			return ps[i]
		}
		return def
	}
	clear := func(r, from, to int) {
		for c := max(0, from); c < min(to, v.cols); c++ {
			v.cells[r][c] = ' '
		}
	}
	switch final {
	case 'H', 'f':
		v.r, v.c = min(arg(0, 1), v.rows)-1, min(arg(1, 1), v.cols)-1
	case 'A':
		v.r = max(0, v.r-arg(0, 1))
	case 'B':
		v.r = min(v.rows-1, v.r+arg(0, 1))
	case 'C':
		v.c = min(v.cols-1, v.c+arg(0, 1))
	case 'D':
		v.c = max(0, v.c-arg(0, 1))
	case 'G':
		v.c = min(arg(0, 1), v.cols) - 1
	case 'K':
		switch arg(0, 0) {
		case 0:
			clear(v.r, v.c, v.cols)
		case 1:
			clear(v.r, 0, v.c+1)
		case 2:
			clear(v.r, 0, v.cols)
		}
	case 'J':
		switch arg(0, 0) {
		case 0:
			clear(v.r, v.c, v.cols)
			for r := v.r + 1; r < v.rows; r++ {
				clear(r, 0, v.cols)
			}
		case 1:
			for r := 0; r < v.r; r++ {
				clear(r, 0, v.cols)
			}
			clear(v.r, 0, v.c+1)
		case 2, 3:
			for r := range v.rows {
				clear(r, 0, v.cols)
			}
		}
	case 'n':
		if params == "6" && v.reply != nil { // where is the cursor?
			v.reply(fmt.Appendf(nil, "\x1b[%d;%dR", v.r+1, v.c+1))
		}
	case 'h', 'l':
		if private && arg(0, 0) == 1049 {
			for r := range v.rows {
				clear(r, 0, v.cols)
			}
		}
	}
}
