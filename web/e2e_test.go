package web_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// page-level helpers for the app.

// setUp opens the relay's page and makes an identity named nick.
func setUp(t *testing.T, b *browser, r *relayProc, nick string) string {
	t.Helper()
	b.do(chromedp.Navigate(r.webURL()), chromedp.WaitVisible(`#nick`))
	b.do(chromedp.SendKeys(`#nick`, nick), chromedp.Click(`#create`))
	b.waitJS(`!!document.querySelector('#invite-text')`, 15*time.Second)
	inv := eval[string](b, `document.querySelector('#invite-text').textContent`)
	if !strings.HasPrefix(inv, "WSCHAT1-") {
		t.Fatalf("page shows invite %q", inv)
	}
	return inv
}

// addByLink opens an invite link and adds the contact under its
// suggested name.
func addByLink(t *testing.T, b *browser, link string) {
	t.Helper()
	b.do(chromedp.Navigate(link))
	b.waitJS(`!!document.querySelector('#add') && !document.querySelector('#add').disabled`, 15*time.Second)
	b.click(`#add`)
	b.waitJS(`!!document.querySelector('#compose')`, 10*time.Second)
}

func waitOnline(b *browser) {
	b.waitJS(`document.querySelector('#status')?.dataset.state === 'online'`, 15*time.Second)
}

func TestWebEndToEnd(t *testing.T) {
	r := startRelay(t)
	agent := t.TempDir()
	mustCLI(t, agent, "keygen", "--name", "agent", "--relay", r.addr)
	b := newBrowser(t)

	// 1. The page makes an identity and shows its invite.
	inv := setUp(t, b, r, "Ana")
	b.shot("desktop-first-run")
	out := mustCLI(t, agent, "contacts", "add", "ana", inv)
	t.Logf("contacts add: %s", out)

	// 2. The agent's invite link lands on "add this contact?".
	link := mustCLI(t, agent, "invite", "--link")
	if !strings.HasPrefix(link, r.httpBase()+"#invite=WSCHAT1-") {
		t.Fatalf("invite --link printed %q", link)
	}
	addByLink(t, b, link)
	waitOnline(b)

	// 3. CLI send -> the page shows it.
	mustCLI(t, agent, "send", "--to", "ana", "hello from the agent")
	b.waitJS(`[...document.querySelectorAll('#messages .msg.in .text')].some(e => e.textContent === 'hello from the agent')`, 10*time.Second)

	// 4. The page sends -> the CLI's listen shows it with the page's name.
	l := startListen(t, agent, "--acks")
	b.do(chromedp.SendKeys(`#compose`, "hi agent, from the browser"), chromedp.Click(`#send`))
	m := l.next(t, "message", 15*time.Second)
	if m["from"] != "ana" || m["text"] != "hi agent, from the browser" {
		t.Fatalf("listen got %v", m)
	}
	// Delivered: the CLI stored it and acknowledged end to end.
	b.waitJS(`document.querySelector('#messages .msg.out:last-child')?.dataset.state === 'delivered'`, 10*time.Second)
	// The page saw the agent's message: the agent hears "read".
	rd := l.next(t, "read", 10*time.Second)
	t.Logf("read ack: %v", rd)
	b.shot("desktop-conversation")
	if errs := b.errors(); len(errs) > 0 {
		t.Fatalf("page errors: %q", errs)
	}
}

// pair sets up a relay, a CLI agent and a page that are each other's
// contacts, with the page in the conversation.
type pairing struct {
	r     *relayProc
	agent string // the CLI's home
	b     *browser
	inv   string // the page's invite
}

func newPairing(t *testing.T, r *relayProc) *pairing {
	t.Helper()
	p := &pairing{r: r, agent: t.TempDir()}
	mustCLI(t, p.agent, "keygen", "--name", "agent", "--relay", r.addr)
	p.b = newBrowser(t)
	p.inv = setUp(t, p.b, r, "Ana")
	mustCLI(t, p.agent, "contacts", "add", "ana", p.inv)
	addByLink(t, p.b, mustCLI(t, p.agent, "invite", "--link"))
	waitOnline(p.b)
	return p
}

// countText counts the bubbles in the open conversation whose text is s.
func countText(b *browser, s string) int {
	return eval[int](b, `[...document.querySelectorAll('#messages .msg .text')].filter(e => e.textContent === `+jsString(s)+`).length`)
}

func waitText(t *testing.T, b *browser, s string) {
	t.Helper()
	b.waitJS(`[...document.querySelectorAll('#messages .msg .text')].some(e => e.textContent === `+jsString(s)+`)`, 20*time.Second)
}

// TestWebReloadRestartOffline: history survives a reload; a relay
// restart and a dropped network lose nothing and show nothing twice.
func TestWebReloadRestartOffline(t *testing.T) {
	relayAt := freePort(t)
	proxy := newCutProxy(t, relayAt)
	r := startRelayAt(t, relayAt, "--url", "ws://"+proxy.addr()+"/")
	p := newPairing(t, r)
	b := p.b
	l := startListen(t, p.agent)

	mustCLI(t, p.agent, "send", "--to", "ana", "before the reload")
	waitText(t, b, "before the reload")
	b.do(chromedp.SendKeys(`#compose`, "from the page, before"), chromedp.Click(`#send`))
	if m := l.next(t, "message", 15*time.Second); m["text"] != "from the page, before" {
		t.Fatalf("listen got %v", m)
	}

	// Reload: the history is still there, once.
	b.do(chromedp.Reload())
	b.click(`button.conv`)
	waitText(t, b, "before the reload")
	waitText(t, b, "from the page, before")
	waitOnline(b)

	// The relay restarts: the page reconnects and a message sent meanwhile
	// by the CLI arrives once.
	r.restart()
	mustCLI(t, p.agent, "send", "--to", "ana", "after the restart")
	waitText(t, b, "after the restart")
	waitOnline(b)

	// The network drops: the page goes offline, the person types and
	// sends, the network comes back and the message goes out, once.
	proxy.setCut(true)
	b.waitJS(`document.querySelector('#status')?.dataset.state === 'offline'`, 40*time.Second)
	b.do(chromedp.SendKeys(`#compose`, "typed while offline"), chromedp.Click(`#send`))
	b.waitJS(`document.querySelector('#messages .msg.out:last-child')?.dataset.state === 'pending'`, 5*time.Second)
	b.shot("desktop-offline")
	proxy.setCut(false)
	b.do(chromedp.Evaluate[chromedp.Void](`window.dispatchEvent(new Event('online'))`))
	if m := l.next(t, "message", 40*time.Second); m["text"] != "typed while offline" {
		t.Fatalf("listen got %v", m)
	}
	b.waitJS(`['delivered','read'].includes(document.querySelector('#messages .msg.out:last-child')?.dataset.state)`, 20*time.Second)
	mustCLI(t, p.agent, "send", "--to", "ana", "after the network came back")
	waitText(t, b, "after the network came back")
	for _, s := range []string{"before the reload", "from the page, before", "after the restart", "typed while offline", "after the network came back"} {
		if n := countText(b, s); n != 1 {
			t.Errorf("%q shown %d times", s, n)
		}
	}
	// The CLI saw the page's messages once each.
	select {
	case m := <-l.lines:
		if m["type"] == "message" {
			t.Errorf("listen got an extra message %v", m)
		}
	case <-time.After(500 * time.Millisecond):
	}
}

// TestWebInjectionIsInert: a contact's markup, bidi overrides, control
// characters and 10,000 combining marks change nothing but their bubble.
func TestWebInjectionIsInert(t *testing.T) {
	p := newPairing(t, startRelay(t))
	b := p.b
	mustCLI(t, p.agent, "send", "--to", "ana", "first, plain")
	waitText(t, b, "first, plain")
	attack := `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>` + "\u202eevil\u202c \x1b[2K\rforged" + "a" + strings.Repeat("\u0301", 10000)
	mustCLI(t, p.agent, "send", "--to", "ana", attack)
	b.waitJS(`document.querySelectorAll('#messages .msg.in').length === 2`, 15*time.Second)
	mustCLI(t, p.agent, "send", "--to", "ana", "last, plain")
	waitText(t, b, "last, plain")
	type result struct {
		Pwned     bool
		Elements  int
		Text      string
		Height    float64
		ViewH     float64
		LastLeft  float64
		FirstLeft float64
	}
	res := eval[result](b, `(() => {
		const bubbles = [...document.querySelectorAll('#messages .msg.in .bubble')];
		const mid = bubbles[1];
		return {
			pwned: window.__pwned !== undefined,
			elements: document.querySelectorAll('#messages img, #messages script').length,
			text: mid.querySelector('.text').textContent,
			height: mid.getBoundingClientRect().height,
			viewH: window.innerHeight,
			lastLeft: bubbles[2].getBoundingClientRect().left,
			firstLeft: bubbles[0].getBoundingClientRect().left,
		};
	})()`)
	if res.Pwned || res.Elements != 0 {
		t.Fatalf("markup ran: %+v", res)
	}
	if !strings.HasPrefix(res.Text, `<img src=x onerror="window.__pwned=1">`) {
		t.Errorf("markup not shown as text: %.80q", res.Text)
	}
	for _, want := range []string{"⟨U+202E⟩evil⟨U+202C⟩", "⟨U+001B⟩[2K⟨U+000D⟩forged"} {
		if !strings.Contains(res.Text, want) {
			t.Errorf("control characters not shown inert: want %q in %.200q", want, res.Text)
		}
	}
	if strings.Count(res.Text, "\u0301") > 8 {
		t.Errorf("%d combining marks shown", strings.Count(res.Text, "\u0301"))
	}
	if res.Height > res.ViewH || res.LastLeft != res.FirstLeft {
		t.Errorf("the bubble changed the layout: %+v", res)
	}
	b.shot("desktop-injection")
}

// TestWebSafetyNumberAndScreens: the page's safety number is the CLI's;
// marking it verified sticks; the main screens at phone and desktop size.
func TestWebSafetyNumberAndScreens(t *testing.T) {
	p := newPairing(t, startRelay(t))
	b := p.b
	out := mustCLI(t, p.agent, "contacts", "list", "--json")
	startListen(t, p.agent)
	mustCLI(t, p.agent, "send", "--to", "ana", "Here is the plan: 1) back up, 2) migrate, 3) verify. Shall I go ahead? 👍🏽")
	waitText(t, b, "Here is the plan: 1) back up, 2) migrate, 3) verify. Shall I go ahead? 👍🏽")
	b.do(chromedp.SendKeys(`#compose`, "Yes, go ahead 🚀"), chromedp.Click(`#send`))
	b.waitJS(`document.querySelector('#messages .msg.out:last-child')?.dataset.state === 'delivered'`, 15*time.Second)
	b.shot("desktop-conversation-2")
	b.click(`#conv-info`)
	b.waitJS(`!!document.querySelector('#safety-number')`, 5*time.Second)
	page := eval[string](b, `document.querySelector('#safety-number').getAttribute('aria-label')`)
	cliNum := regexp.MustCompile(`safety number: ([0-9 ]{35})`).FindStringSubmatch(mustCLI(t, p.agent, "contacts", "add", "ana", p.inv))
	if cliNum == nil || page != "Safety number "+cliNum[1] {
		t.Fatalf("page %q, CLI %q (%s)", page, cliNum, out)
	}
	b.click(`#verify`)
	b.waitJS(`!!document.querySelector('dialog[open] button.primary')`, 5*time.Second)
	b.shot("desktop-verify-dialog")
	b.click(`dialog[open] button.primary`)
	b.waitJS(`document.querySelector('#verified-state').textContent.includes('Verified')`, 5*time.Second)
	b.shot("desktop-contact")

	// Phone size.
	b.viewport(360, 740, true)
	b.do(chromedp.NavigateBack())
	b.waitJS(`!!document.querySelector('#compose')`, 5*time.Second)
	b.shot("phone-conversation")
	b.do(chromedp.NavigateBack())
	b.waitJS(`!!document.querySelector('button.conv') && getComputedStyle(document.querySelector('.pane-list')).display !== 'none'`, 5*time.Second)
	b.shot("phone-list")
	b.click(`#open-me`)
	b.waitJS(`!!document.querySelector('#invite-text')`, 5*time.Second)
	b.shot("phone-me")
	b.do(chromedp.NavigateBack())
	b.click(`#add-contact`)
	b.waitJS(`!!document.querySelector('#invite')`, 5*time.Second)
	b.shot("phone-add-contact")
	// Dark mode, by the system preference.
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}))
	b.do(chromedp.NavigateBack())
	b.click(`button.conv`)
	b.waitJS(`!!document.querySelector('#compose')`, 5*time.Second)
	if bg := eval[string](b, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(15, 20, 26)" {
		t.Errorf("dark mode background %q", bg)
	}
	b.shot("phone-conversation-dark")
	if errs := b.errors(); len(errs) > 0 {
		t.Fatalf("page errors: %q", errs)
	}
}
