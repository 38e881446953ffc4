package web_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/wire"
)

// swRegistration enables the ServiceWorker domain and returns the app's
// registration id, for delivering pushes to it.
func swRegistration(t *testing.T, b *browser, scope string) serviceworker.RegistrationID {
	t.Helper()
	var mu sync.Mutex
	var id serviceworker.RegistrationID
	chromedp.Listen(b.ctx, func(ev any) {
		if e, ok := ev.(*serviceworker.EventWorkerRegistrationUpdated); ok {
			for _, r := range e.Registrations {
				if r.ScopeURL == scope && !r.IsDeleted {
					mu.Lock()
					id = r.RegistrationID
					mu.Unlock()
				}
			}
		}
	})
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, serviceworker.Enable, cdp.Empty{})
		return err
	}))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		got := id
		mu.Unlock()
		if got != "" {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no service worker registration for %s", scope)
	return ""
}

func grantNotifications(t *testing.T, b *browser, origin string) {
	t.Helper()
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"},
			Setting:    cdpbrowser.PermissionSettingGranted,
			Origin:     origin,
		})
		return err
	}))
}

// TestWebPushWakesServiceWorker: with the app closed, a push (delivered
// through the DevTools protocol, as a push service would) makes the
// service worker collect the stored message from the relay, store it and
// show a notification built on the device; the agent hears "delivered" but
// not "read"; the app, opened later, shows the message once and only then
// sends "read".
func TestWebPushWakesServiceWorker(t *testing.T) {
	p := newPairing(t, startRelay(t))
	b := p.b
	origin := strings.TrimSuffix(p.r.httpBase(), "/")
	b.waitJS(`navigator.serviceWorker.getRegistration().then(r => !!(r && r.active))`, 20*time.Second)
	grantNotifications(t, b, origin)
	reg := swRegistration(t, b, origin+"/")

	// Close the app: a page of the same origin that is not the app, so no
	// receiving connection is online and the relay stores the message.
	b.do(chromedp.Navigate(origin + "/not-the-app"))
	b.waitJS(`document.readyState === 'complete'`, 5*time.Second)
	l := startListen(t, p.agent, "--acks")
	mustCLI(t, p.agent, "send", "--to", "ana", "are you there? <b>bold</b>")
	eval[chromedp.Void](b, `(() => {
		window.__pushDone = null;
		navigator.serviceWorker.addEventListener('message', (e) => { if (e.data && e.data.kind === 'push-done') window.__pushDone = e.data; });
		navigator.serviceWorker.startMessages();
	})()`)
	start := time.Now()
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{Origin: origin, RegistrationID: reg, Data: `{"wschat":1,"n":1}`})
		return err
	}))
	b.waitJS(`!!window.__pushDone`, 30*time.Second)
	t.Logf("push handled in %v: %s", time.Since(start).Round(time.Millisecond), eval[string](b, `JSON.stringify(window.__pushDone)`))
	type note struct{ Title, Body, Tag string }
	notes := eval[[]note](b, `navigator.serviceWorker.getRegistration().then(r => r.getNotifications()).then(ns => ns.map(n => ({title: n.title, body: n.body, tag: n.tag})))`)
	if len(notes) != 1 || notes[0].Title != "agent" || notes[0].Body != "are you there? <b>bold</b>" {
		t.Fatalf("notifications %+v", notes)
	}
	// The worker stored it and told the sender: delivered, not read.
	if d := l.next(t, "delivered", 15*time.Second); d["from"] != "ana" {
		t.Fatalf("delivered %v", d)
	}
	select {
	case m := <-l.lines:
		if m["type"] == "read" {
			t.Fatalf("read sent before the person opened the conversation: %v", m)
		}
	case <-time.After(300 * time.Millisecond):
	}

	// Opened later (as the notification's tap does): shown once, then read.
	b.do(chromedp.Navigate(origin + "/#conv=" + eval[string](b, `navigator.serviceWorker.getRegistration().then(r => r.getNotifications()).then(ns => ns[0].data.peer)`)))
	waitText(t, b, "are you there? <b>bold</b>")
	if n := countText(b, "are you there? <b>bold</b>"); n != 1 {
		t.Fatalf("shown %d times", n)
	}
	l.next(t, "read", 15*time.Second)
}

// TestWebPushSubscribeTimesOut: this machine's Chromium never settles
// pushManager.subscribe() (browser-facts.md); the app gives up after its
// timeout and says so, and notifications stay off.
func TestWebPushSubscribeTimesOut(t *testing.T) {
	r := startRelay(t)
	b := newBrowser(t)
	setUp(t, b, r, "Fay")
	origin := strings.TrimSuffix(r.httpBase(), "/")
	b.waitJS(`navigator.serviceWorker.getRegistration().then(r => !!(r && r.active))`, 20*time.Second)
	grantNotifications(t, b, origin)
	// The relay's VAPID key, as its PushKey would have brought it (a P-256
	// point: the generator).
	eval[chromedp.Void](b, `(async () => {
		const { Store } = await import('/js/store.js');
		const s = await Store.open();
		await s.setMeta('pushKey', { relay: '', key: 'BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU' });
		s.close();
	})()`)
	b.do(chromedp.Reload())
	b.click(`#open-me`)
	b.waitJS(`document.querySelector('#push-toggle') && !document.querySelector('#push-toggle').hidden && document.querySelector('#push-toggle').textContent.includes('Turn on')`, 10*time.Second)
	start := time.Now()
	b.click(`#push-toggle`)
	b.waitJS(`document.querySelector('#push-error')?.textContent.includes('did not answer')`, 30*time.Second)
	took := time.Since(start)
	if took < 9*time.Second {
		t.Errorf("gave up after %v, before its timeout", took)
	}
	if s := eval[string](b, `document.querySelector('#push-state').textContent`); s != "Off." {
		t.Errorf("state after the timeout: %q", s)
	}
	eval[chromedp.Void](b, `document.querySelector('#notifications').scrollIntoView()`)
	b.shot("desktop-push-timeout")
}

// TestWebApprovalFromNotification: an approval request that waits while
// the app is closed gets a notification of its own with Allow and Deny;
// tapping Allow sends the answer from the service worker.
func TestWebApprovalFromNotification(t *testing.T) {
	p := newPairing(t, startRelay(t))
	b := p.b
	origin := strings.TrimSuffix(p.r.httpBase(), "/")
	b.waitJS(`navigator.serviceWorker.getRegistration().then(r => !!(r && r.active))`, 20*time.Second)
	grantNotifications(t, b, origin)
	reg := swRegistration(t, b, origin+"/")
	b.do(chromedp.Navigate(origin + "/not-the-app"))
	b.waitJS(`document.readyState === 'complete'`, 5*time.Second)

	agent := openAgent(t, p.agent)
	ab, err := wire.ApprovalRequest{RequestID: "qwert", ExpiresAt: time.Now().Add(10 * time.Minute), Tool: "Write", Description: "Write config.yaml"}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	rid := agent.queue("ana", wire.TypeApprovalRequest, ab)
	mustCLI(t, p.agent, "send", "--to", "ana", "see the request")
	eval[chromedp.Void](b, `(() => {
		window.__sw = [];
		navigator.serviceWorker.addEventListener('message', (e) => window.__sw.push(e.data));
		navigator.serviceWorker.startMessages();
	})()`)
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{Origin: origin, RegistrationID: reg, Data: `{"wschat":1,"n":2}`})
		return err
	}))
	b.waitJS(`window.__sw.some(m => m.kind === 'push-done')`, 30*time.Second)
	type note struct {
		Title, Tag string
		Actions    []string
	}
	notes := eval[[]note](b, `navigator.serviceWorker.getRegistration().then(r => r.getNotifications()).then(ns => ns.map(n => ({title: n.title, tag: n.tag, actions: n.actions.map(a => a.action)})))`)
	var approval *note
	for i := range notes {
		if strings.HasPrefix(notes[i].Tag, "wschat-approval-") {
			approval = &notes[i]
		}
	}
	if approval == nil || approval.Title != "agent (not verified) asks to use Write" || strings.Join(approval.Actions, ",") != "allow,deny" || len(notes) != 2 {
		t.Fatalf("notifications %+v", notes)
	}
	// Tap Allow: the worker gets the click as the browser would give it.
	sw := swTarget(t, b)
	defer sw.cancel()
	if _, err := chromedp.Run(sw.ctx, chromedp.Evaluate[chromedp.Void](`self.registration.getNotifications({tag: `+jsString(approval.Tag)+`}).then(ns => { self.dispatchEvent(new NotificationEvent('notificationclick', {notification: ns[0], action: 'allow'})); })`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	b.waitJS(`window.__sw.some(m => m.kind === 'answered')`, 30*time.Second)
	if e := eval[string](b, `JSON.stringify(window.__sw.find(m => m.kind === 'answered'))`); strings.Contains(e, "error") {
		t.Fatalf("answering failed: %s", e)
	}
	startListen(t, p.agent) // the agent collects what came
	ans := agent.waitFor(wire.TypeApprovalAnswer, func(bridge.Record) bool { return true })
	aa, err := wire.ParseApprovalAnswer(ans.Body)
	if err != nil || aa.Request != rid || !aa.Allow {
		t.Fatalf("answer %+v, %v", aa, err)
	}
}

type swCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// swTarget attaches to the app's service worker, for what only its scope
// can do.
func swTarget(t *testing.T, b *browser) swCtx {
	t.Helper()
	targets, err := chromedp.Targets(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Type == "service_worker" {
			ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(tg.TargetID))
			return swCtx{ctx, cancel}
		}
	}
	t.Fatal("no service worker target")
	return swCtx{}
}
