package web_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestWebOfflineShellAndInstall: with the relay down, the app still opens
// from the service worker's copy and keeps a message for later; the page is
// installable.
func TestWebOfflineShellAndInstall(t *testing.T) {
	p := newPairing(t, startRelay(t))
	b := p.b
	b.waitJS(`navigator.serviceWorker.getRegistration().then(r => !!(r && r.active) && !!navigator.serviceWorker.controller)`, 20*time.Second)
	var errs []*page.InstallabilityError
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := chromedp.Call(ctx, page.GetInstallabilityErrors, cdp.Empty{})
		errs = res.InstallabilityErrors
		return err
	}))
	for _, e := range errs {
		t.Errorf("not installable: %s", e.ErrorID)
	}

	p.r.stop()
	b.do(chromedp.Reload())
	b.waitJS(`!!document.documentElement.dataset.ready && !!document.querySelector('button.conv')`, 15*time.Second)
	b.click(`button.conv`)
	b.waitJS(`!!document.querySelector('#compose')`, 5*time.Second)
	b.waitJS(`['offline','connecting'].includes(document.querySelector('#status')?.dataset.state)`, 15*time.Second)
	b.do(chromedp.SendKeys(`#compose`, "written with the relay down"), chromedp.Click(`#send`))
	b.waitJS(`document.querySelector('#messages .msg.out:last-child')?.dataset.state === 'pending'`, 5*time.Second)
	b.shot("desktop-relay-down")
	p.r.start()
	l := startListen(t, p.agent)
	b.do(chromedp.Evaluate[chromedp.Void](`window.dispatchEvent(new Event('online'))`))
	if m := l.next(t, "message", 40*time.Second); m["text"] != "written with the relay down" {
		t.Fatalf("listen got %v", m)
	}
}

// TestWebIdentityFileBothWays: an identity made by the CLI is imported in
// the page; one made in the page is exported and the CLI reads it: the same
// bytes, the same invite.
func TestWebIdentityFileBothWays(t *testing.T) {
	r := startRelay(t)
	cliHome := t.TempDir()
	cliInv := mustCLI(t, cliHome, "keygen", "--name", "bob", "--relay", r.addr)
	b := newBrowser(t)
	b.do(chromedp.Navigate(r.webURL()), chromedp.WaitVisible(`#nick`))
	b.do(chromedp.SetUploadFiles(`#import-file`, []string{filepath.Join(cliHome, "identity")}))
	b.waitJS(`document.documentElement.dataset.ready && !!document.querySelector('#open-me')`, 15*time.Second)
	b.click(`#open-me`)
	b.waitJS(`!!document.querySelector('#invite-text')`, 5*time.Second)
	if got := eval[string](b, `document.querySelector('#invite-text').textContent`); got != cliInv {
		t.Fatalf("imported identity's invite %q, CLI's %q", got, cliInv)
	}
	// Export it again: the page writes the CLI's exact file.
	dl := t.TempDir()
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl})
		return err
	}))
	b.click(`#export`)
	b.click(`dialog[open] button.primary`)
	got := waitFile(t, dl, "wschat-identity-bob.txt")
	want, err := os.ReadFile(filepath.Join(cliHome, "identity"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("exported file differs from the CLI's:\n%s\nwant\n%s", got, want)
	}

	// A page identity, exported, runs the CLI.
	b2 := newBrowser(t)
	pageInv := setUp(t, b2, r, "Carla")
	b2.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl})
		return err
	}))
	b2.click(`#export`)
	b2.click(`dialog[open] button.primary`)
	file := waitFile(t, dl, "wschat-identity-Carla.txt")
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "identity"), file, 0o600); err != nil {
		t.Fatal(err)
	}
	if inv := mustCLI(t, home, "invite"); inv != pageInv {
		t.Fatalf("CLI reads the page's identity as %q, the page shows %q", inv, pageInv)
	}
}

func waitFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil && len(b) > 0 {
			return b
		}
		time.Sleep(50 * time.Millisecond)
	}
	entries, _ := os.ReadDir(dir)
	t.Fatalf("no %s downloaded (have %v)", name, entries)
	return nil
}

// TestWebPassphrase: a passphrase on the stored identity is asked for when
// the app opens; a wrong one is refused with a clear message.
func TestWebPassphrase(t *testing.T) {
	r := startRelay(t)
	b := newBrowser(t)
	inv := setUp(t, b, r, "Dana")
	b.do(chromedp.SendKeys(`#new-passphrase`, "correct horse battery"), chromedp.SendKeys(`#new-passphrase2`, "correct horse battery"))
	b.click(`#set-passphrase`)
	b.waitJS(`[...document.querySelectorAll('.toast')].some(e => e.textContent.includes('Passphrase set'))`, 20*time.Second)
	stored := eval[[]string](b, `(async () => { const { Store } = await import('/js/store.js'); const s = await Store.open(); const r = await s.getMeta('identity'); s.close(); return Object.keys(r).sort(); })()`)
	if strings.Join(stored, " ") != "locked name pub relay" {
		t.Fatalf("the stored identity has %q: its seeds must be only inside locked", stored)
	}
	b.do(chromedp.Reload())
	b.waitJS(`!!document.querySelector('#passphrase')`, 10*time.Second)
	b.do(chromedp.SendKeys(`#passphrase`, "wrong one\n"))
	b.waitJS(`document.querySelector('.error')?.textContent.includes('does not open it')`, 20*time.Second)
	b.shot("desktop-unlock")
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('#passphrase').value = ''`), chromedp.SendKeys(`#passphrase`, "correct horse battery\n"))
	b.waitJS(`!!document.querySelector('#open-me')`, 20*time.Second)
	b.click(`#open-me`)
	b.waitJS(`document.querySelector('#invite-text')?.textContent === `+jsString(inv), 10*time.Second)
}

// TestWebRelayKeyMismatch: a link whose key is not the relay's is refused
// before anything is made.
func TestWebRelayKeyMismatch(t *testing.T) {
	r := startRelay(t)
	b := newBrowser(t)
	base, _, _ := strings.Cut(r.webURL(), "#")
	b.do(chromedp.Navigate(base + "#YFpyXSpK3-6xop4X7dYhwbdZPujNvESsbEq24vgF0jw"))
	b.waitJS(`document.querySelector('.fatal h1')?.textContent.includes('does not match')`, 10*time.Second)
	if n := eval[int](b, `document.querySelectorAll('#nick').length`); n != 0 {
		t.Fatal("the setup screen is shown despite the mismatch")
	}
	b.shot("desktop-key-mismatch")
}

// TestWschatWeb: the page served by `wschat web` from the person's own
// binary offers the home's relay and talks to it (another origin).
func TestWschatWeb(t *testing.T) {
	r := startRelay(t)
	home := t.TempDir()
	mustCLI(t, home, "keygen", "--name", "me-on-cli", "--relay", r.addr)
	cmd := exec.Command(wschatBin(t), "--home", home, "web", "--listen", freePort(t))
	cmd.Stderr = &logWriter{t: t, prefix: "web: "}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	url, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/\n$`).MatchString(url) {
		t.Fatalf("wschat web printed %q, %v", url, err)
	}
	b := newBrowser(t)
	b.do(chromedp.Navigate(strings.TrimSpace(url)), chromedp.WaitVisible(`#nick`))
	relayURL, key, _ := strings.Cut(r.addr, "#")
	if got := eval[string](b, `document.querySelector('#relay-key').textContent`); got != key {
		t.Fatalf("page offers relay key %q, want %q", got, key)
	}
	b.do(chromedp.SendKeys(`#nick`, "Eve"), chromedp.Click(`#create`))
	b.waitJS(`document.querySelector('#status')?.dataset.state === 'online' || document.querySelector('#status')?.hidden`, 15*time.Second)
	b.waitJS(`!!document.querySelector('#invite-link')`, 5*time.Second)
	if link := eval[string](b, `document.querySelector('#invite-link').textContent`); !strings.HasPrefix(link, strings.Replace(relayURL, "ws://", "http://", 1)+"#invite=WSCHAT1-") {
		t.Fatalf("invite link %q", link)
	}
	// Served locally: the page says so.
	if !eval[bool](b, `document.body.textContent.includes('from your own wschat binary')`) {
		t.Error("the page does not say it is served by wschat web")
	}
}

// TestWebLongMessageAndRemove: a message of the largest size arrives whole
// and stays in its bubble; removing a contact keeps its history out of the
// list and refuses nothing silently.
func TestWebLongMessageAndRemove(t *testing.T) {
	p := newPairing(t, startRelay(t))
	b := p.b
	long := strings.Repeat("line of a long paste, with some words in it\n", 1480) + "end"
	if len(long) > 65442 {
		long = long[:65442]
	}
	cmd := exec.Command(wschatBin(t), "--home", p.agent, "send", "--to", "ana")
	cmd.Stdin = strings.NewReader(long)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	b.waitJS(`[...document.querySelectorAll('#messages .msg.in .text')].some(e => e.textContent.length > 60000)`, 20*time.Second)
	got := eval[int](b, `[...document.querySelectorAll('#messages .msg.in .text')].find(e => e.textContent.length > 60000).textContent.length`)
	if got != len([]rune(long)) {
		t.Errorf("the long message shows %d characters, sent %d", got, len(long))
	}
	if h := eval[float64](b, `document.querySelector('#messages .msg.in .bubble').getBoundingClientRect().height / innerHeight`); h > 0.95 {
		t.Errorf("the long message's bubble is %.0f%% of the window", h*100)
	}
	// A paste of many lines from the page.
	b.do(chromedp.SetValue(`#compose`, "pasted\nover\nthree lines"))
	b.click(`#send`)
	if m := startListen(t, p.agent).next(t, "message", 15*time.Second); m["text"] != "pasted\nover\nthree lines" {
		t.Fatalf("listen got %v", m)
	}
	b.shot("desktop-long-message")

	// Remove the contact: asked first, then gone from the list.
	b.click(`#conv-info`)
	b.click(`#remove`)
	b.waitJS(`!!document.querySelector('dialog[open] button.danger')`, 5*time.Second)
	b.click(`dialog[open] button.danger`)
	b.waitJS(`document.querySelectorAll('button.conv').length === 0`, 5*time.Second)
	// Adding the same keys again brings the history back.
	addByLink(t, b, mustCLI(t, p.agent, "invite", "--link"))
	waitText(t, b, "pasted\nover\nthree lines")
}

// TestWebDamagedStore: a browser database that is not wschat's gives a
// clear screen, not a blank page.
func TestWebDamagedStore(t *testing.T) {
	r := startRelay(t)
	b := newBrowser(t)
	b.do(chromedp.Navigate(r.httpBase() + "nope"))
	eval[chromedp.Void](b, `new Promise((resolve, reject) => {
		const q = indexedDB.open('wschat', 1);
		q.onupgradeneeded = () => q.result.createObjectStore('something-else');
		q.onsuccess = () => { q.result.close(); resolve(); };
		q.onerror = () => reject(q.error);
	})`)
	b.do(chromedp.Navigate(r.webURL()))
	b.waitJS(`document.querySelector('.fatal h1')?.textContent.includes('cannot open its storage')`, 10*time.Second)
	if txt := eval[string](b, `document.querySelector('.fatal').textContent`); !strings.Contains(txt, "damaged") {
		t.Errorf("the screen does not say what is wrong: %q", txt)
	}
	b.shot("desktop-damaged-store")
}

// TestWebContactMovesRelay: the agent moves to another relay (wschat
// set-relay); the page shows the notice, follows it by itself, and its
// next message reaches the agent on the new relay.
func TestWebContactMovesRelay(t *testing.T) {
	p := newPairing(t, startRelay(t))
	b := p.b
	r2 := startRelay(t)
	mustCLI(t, p.agent, "set-relay", r2.addr)
	b.waitJS(`[...document.querySelectorAll('#messages .notice')].some(e => e.textContent.includes('moved to another relay'))`, 20*time.Second)
	b.shot("desktop-relay-moved")
	l := startListen(t, p.agent)
	b.do(chromedp.SendKeys(`#compose`, "sent after the move"), chromedp.Click(`#send`))
	if m := l.next(t, "message", 20*time.Second); m["text"] != "sent after the move" {
		t.Fatalf("listen on the new relay got %v", m)
	}
	b.click(`#conv-info`)
	b.waitJS(`document.body.textContent.includes(`+jsString(strings.Split(r2.addr, "#")[0])+`)`, 5*time.Second)
}
