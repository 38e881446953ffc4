package web_test

// The browser harness: real headless Chromium driven by chromedp, the real
// wschat binary as relay and as the agent's CLI, everything on 127.0.0.1.
//
// Chromium comes from the system (.ci/run installs Debian's package). Where
// it is missing the browser tests skip with a message that says how to
// install it, except under CI (CI set), where they fail.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// chromiumPath finds the browser, or skips (fails under CI) the test.
func chromiumPath(t testing.TB) string {
	t.Helper()
	cands := []string{os.Getenv("WSCHAT_CHROMIUM"), "/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	msg := "no Chromium: install it (Debian/Ubuntu: apt-get install chromium) or set WSCHAT_CHROMIUM to its path; .ci/run installs it"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// wschatBin builds the real binary once for all tests.
func wschatBin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wschat-web-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "wschat")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/wschat/wschat/cmd/wschat").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// testOut is where screenshots go: test-output/web at the repo root
// (git-ignored), or $WSCHAT_TEST_OUT.
func testOut(t testing.TB) string {
	dir := os.Getenv("WSCHAT_TEST_OUT")
	if dir == "" {
		dir = filepath.Join("..", "test-output", "web")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// logWriter sends a process's lines to t.Logf.
type logWriter struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	buf    []byte
	done   bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		if !w.done {
			w.t.Logf("%s%s", w.prefix, w.buf[:i])
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *logWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// relayProc is a `wschat relay` process.
type relayProc struct {
	t      testing.TB
	data   string
	listen string
	addr   string // the address line
	cmd    *exec.Cmd
	logs   *logWriter
	args   []string
}

// startRelay runs a relay on a free loopback port; args are extra flags.
// Restarts keep the port, so its address stays the same.
func startRelay(t testing.TB, args ...string) *relayProc {
	t.Helper()
	return startRelayAt(t, freePort(t), args...)
}

func startRelayAt(t testing.TB, listen string, args ...string) *relayProc {
	t.Helper()
	r := &relayProc{t: t, data: t.TempDir(), listen: listen, args: args}
	r.start()
	t.Cleanup(r.stop)
	return r
}

// freePort is a loopback address whose port was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (r *relayProc) start() {
	r.t.Helper()
	args := append([]string{"relay", "--listen", r.listen, "--data", r.data, "--log-level", "debug"}, r.args...)
	cmd := exec.Command(wschatBin(r.t), args...)
	r.logs = &logWriter{t: r.t, prefix: "relay: "}
	cmd.Stderr = r.logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		r.t.Fatalf("relay printed no address: %v", err)
	}
	r.addr = strings.TrimSpace(line)
	r.cmd = cmd
}

// webURL is the page of the relay, with its key in the fragment.
func (r *relayProc) webURL() string {
	base, key, _ := strings.Cut(r.addr, "#")
	return strings.Replace(base, "ws://", "http://", 1) + "#" + key
}

func (r *relayProc) httpBase() string {
	base, _, _ := strings.Cut(r.addr, "#")
	return strings.Replace(base, "ws://", "http://", 1)
}

func (r *relayProc) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
	r.logs.stop()
	r.cmd = nil
}

func (r *relayProc) restart() {
	r.stop()
	r.start()
}

// cli runs the wschat binary with a home.
func cli(t testing.TB, home string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(wschatBin(t), append([]string{"--home", home}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("wschat %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func mustCLI(t testing.TB, home string, args ...string) string {
	t.Helper()
	out, err := cli(t, home, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// listenProc is `wschat listen --json` running in the background.
type listenProc struct {
	cmd     *exec.Cmd
	lines   chan map[string]any
	pending []map[string]any // read, not yet asked for
}

func startListen(t testing.TB, home string, args ...string) *listenProc {
	t.Helper()
	cmd := exec.Command(wschatBin(t), append([]string{"--home", home, "listen", "--json"}, args...)...)
	lw := &logWriter{t: t, prefix: "listen: "}
	cmd.Stderr = lw
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &listenProc{cmd: cmd, lines: make(chan map[string]any, 100)}
	go func() {
		s := bufio.NewScanner(out)
		s.Buffer(nil, 1<<20)
		for s.Scan() {
			var m map[string]any
			if json.Unmarshal(s.Bytes(), &m) == nil {
				l.lines <- m
			}
		}
		close(l.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		lw.stop()
	})
	return l
}

// next returns the next event of type typ, failing after d. Events of
// other types stay for later calls.
func (l *listenProc) next(t testing.TB, typ string, d time.Duration) map[string]any {
	t.Helper()
	for i, m := range l.pending {
		if m["type"] == typ {
			l.pending = append(l.pending[:i], l.pending[i+1:]...)
			return m
		}
	}
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-l.lines:
			if !ok {
				t.Fatalf("listen ended before a %q event", typ)
			}
			if m["type"] == typ {
				return m
			}
			l.pending = append(l.pending, m)
		case <-deadline:
			t.Fatalf("no %q event in %v (others: %v)", typ, d, l.pending)
		}
	}
}

// browser is one Chromium process with its own profile (so its own
// IndexedDB), and one tab.
type browser struct {
	t       testing.TB
	ctx     context.Context
	cancel  context.CancelFunc
	profile string
	mu      sync.Mutex
	errs    []string // uncaught exceptions and console errors
	closed  bool     // guarded by mu: no more logging (the test may be over)
}

func (b *browser) logf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.t.Logf(format, args...)
	}
}

type browserOpt func(*[]chromedp.ExecAllocatorOption)

func newBrowser(t testing.TB, opts ...browserOpt) *browser {
	t.Helper()
	exe := chromiumPath(t)
	profile := t.TempDir()
	aopts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.WindowSize(1280, 860),
	}
	for _, o := range opts {
		o(&aopts)
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), aopts...)
	b := &browser{t: t, profile: profile}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(func(string, ...any) {}), chromedp.WithErrorf(func(string, ...any) {}))
	b.ctx = ctx
	b.cancel = func() { cancel(); acancel() }
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *cdpruntime.EventExceptionThrown:
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			b.mu.Lock()
			b.errs = append(b.errs, "exception: "+msg)
			b.mu.Unlock()
			b.logf("page exception: %s", msg)
		case *cdpruntime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				if a.Value != nil {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			b.logf("page console.%s: %s", e.Type, strings.Join(parts, " "))
			if e.Type == "error" {
				b.mu.Lock()
				b.errs = append(b.errs, "console.error: "+strings.Join(parts, " "))
				b.mu.Unlock()
			}
		}
	}); err != nil {
		b.cancel()
		t.Fatalf("starting chromium: %v", err)
	}
	// Start the browser and make the page count as focused, as a person's
	// window would be (read receipts wait for focus).
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
		return err
	})); err != nil {
		b.cancel()
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(b.close)
	return b
}

func (b *browser) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	if b.cancel != nil {
		b.cancel()
		b.cancel = nil
	}
}

// do runs actions with a timeout.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failure-" + sanitize(b.t.Name()))
		b.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise).
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.shot("failure-" + sanitize(b.t.Name()))
		b.t.Fatalf("eval %.80q: %v", expr, err)
	}
	return v
}

// click waits for an element and clicks it from the page's side (the
// app re-renders lists, so a node found by the driver may be gone by the
// time it clicks).
func (b *browser) click(sel string) {
	b.t.Helper()
	b.waitJS(`!!document.querySelector(`+jsString(sel)+`)`, 10*time.Second)
	eval[chromedp.Void](b, `document.querySelector(`+jsString(sel)+`).click()`)
}

// waitJS waits until a JavaScript expression is truthy.
func (b *browser) waitJS(expr string, d time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.shot("failure-" + sanitize(b.t.Name()))
		b.t.Fatalf("waiting for %q: %v", expr, err)
	}
}

func (b *browser) shot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return
	}
	p := filepath.Join(testOut(b.t), name+".png")
	if err := os.WriteFile(p, png, 0o644); err == nil {
		b.t.Logf("screenshot: %s", p)
	}
}

// viewport sets the page size (phone 360x740, desktop 1280x860).
func (b *browser) viewport(w, h int64, mobile bool) {
	b.t.Helper()
	b.do(chromedp.EmulateViewport(w, h, func(p *emulation.SetDeviceMetricsOverrideParams, t *emulation.SetTouchEmulationEnabledParams) {
		p.Mobile = mobile
		if mobile {
			p.DeviceScaleFactor = 2
		}
		t.Enabled = mobile
	}))
}

func (b *browser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

func sanitize(s string) string {
	return regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(s, "_")
}

// jsString quotes s for a JavaScript expression.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cutProxy is a TCP proxy in front of the relay that can cut every
// connection through it and refuse new ones, as a dropped network does.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	down   int64 // guarded by mu: bytes from the target to clients
}

// downBytes is how many bytes went from the target to the clients.
func (p *cutProxy) downBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

func newCutProxy(t testing.TB, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.conns[up] = struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 && src == up {
					p.mu.Lock()
					p.down += int64(n)
					p.mu.Unlock()
				}
				if n > 0 {
					if _, werr := dst.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// setCut cuts (true) or restores (false) the network.
func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
	}
}
