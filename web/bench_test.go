package web_test

// BenchmarkWebApp measures the web app's figures in real headless
// Chromium against a real relay, and prints them with their yardsticks:
//
//	go test ./web -run '^$' -bench BenchmarkWebApp -benchtime 1x
//
//	first-visit-KB     everything the first visit transfers (HTTP bytes
//	                   from the relay, counted by a proxy in front of it,
//	                   until the service worker has kept its files)
//	ready-ms           navigation to the first usable screen, first visit
//	                   and return visit (performance.now() at the app's
//	                   "ready" mark)
//	seal-us-browser    seal and sign one 100-byte text in the page
//	seal-us-go         the same in Go (wire.Pair.Seal), same machine
//	seal-ratio         the two divided
//	open-10k-ms        opening a conversation of 10,000 messages
//	longtask-max-ms    the longest task Chromium saw while that
//	                   conversation opened, scrolled to its first message
//	                   and back (PerformanceObserver "longtask": ≥ 50 ms)

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wschat/wschat/wire"
)

func BenchmarkWebApp(b *testing.B) {
	r := startRelay(b)
	proxy := newCutProxy(b, r.listen)
	_, key, _ := strings.Cut(r.addr, "#")
	pageURL := "http://" + proxy.addr() + "/#" + key
	br := newBrowser(b)

	// First visit, fresh profile.
	br.do(chromedp.Navigate(pageURL))
	br.waitJS(`!!document.documentElement.dataset.ready`, 20*time.Second)
	readyFirst := eval[float64](br, `+document.documentElement.dataset.ready`)
	b.Logf("first visit ready in %.0f ms", readyFirst)
	// A first visit ends with the app set up: the identity made, the
	// service worker installed with its files kept.
	br.do(chromedp.SendKeys(`#nick`, "Ana"), chromedp.Click(`#create`))
	br.waitJS(`!!document.querySelector('#invite-text')`, 20*time.Second)
	br.waitJS(`navigator.serviceWorker.getRegistration().then(r => !!(r && r.active))`, 20*time.Second)
	time.Sleep(300 * time.Millisecond) // let the worker's last fetches finish
	firstKB := float64(proxy.downBytes()) / 1000
	b.Logf("first visit %.1f KB", firstKB)

	// Return visit: the service worker serves the shell.
	br.do(chromedp.Reload())
	br.waitJS(`!!document.documentElement.dataset.ready`, 20*time.Second)
	readyReturn := eval[float64](br, `+document.documentElement.dataset.ready`)

	// Seal and sign in the page, and in Go.
	sealBrowser := eval[float64](br, `(async () => {
		const wire = await import('/js/wire.js');
		const a = wire.Identity.generate(), c = wire.Identity.generate();
		const p = new wire.Pair(a, c.pub);
		const body = new TextEncoder().encode('x'.repeat(100));
		const m = () => ({ id: crypto.getRandomValues(new Uint8Array(16)), sentAt: Date.now(), type: 1, body });
		for (let i = 0; i < 50; i++) p.seal(m());
		const n = 300, t0 = performance.now();
		for (let i = 0; i < n; i++) p.seal(m());
		return (performance.now() - t0) * 1000 / n;
	})()`)
	b.Logf("seal in the browser %.0f µs", sealBrowser)
	// What native Ed25519 costs here (WebCrypto has pure Ed25519 only, not
	// the protocol's Ed25519ctx): the yardstick for a protocol that signed
	// with pure Ed25519 over a context-prefixed message.
	webcryptoSign := eval[float64](br, `(async () => {
		const k = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign']);
		const msg = new Uint8Array(65 + 130);
		for (let i = 0; i < 50; i++) await crypto.subtle.sign('Ed25519', k.privateKey, msg);
		const n = 300, t0 = performance.now();
		for (let i = 0; i < n; i++) await crypto.subtle.sign('Ed25519', k.privateKey, msg);
		return (performance.now() - t0) * 1000 / n;
	})()`)
	sealGo := goSealMicros(b)

	// A conversation of 10,000 messages.
	open10k, longMax, longN := tenThousand(b, br)

	b.ReportMetric(firstKB, "first-visit-KB")
	b.ReportMetric(readyFirst, "ready-first-ms")
	b.ReportMetric(readyReturn, "ready-return-ms")
	b.ReportMetric(sealBrowser, "seal-us-browser")
	b.ReportMetric(sealGo, "seal-us-go")
	b.ReportMetric(sealBrowser/sealGo, "seal-ratio")
	b.ReportMetric(webcryptoSign, "webcrypto-ed25519-sign-us")
	b.ReportMetric(open10k, "open-10k-ms")
	b.ReportMetric(longMax, "longtask-max-ms")
	b.ReportMetric(longN, "longtasks")
	b.Logf("first visit %.1f KB (target ≤ 150); ready %.0f ms first, %.0f ms return (target ≤ 500); seal %.0f µs in Chromium, %.1f µs in Go: %.1f× (target ≤ 3; WebCrypto's native pure Ed25519 sign alone: %.0f µs); 10k conversation opens in %.0f ms, longest task %.0f ms over %d long tasks (target: none over 100)",
		firstKB, readyFirst, readyReturn, sealBrowser, sealGo, sealBrowser/sealGo, webcryptoSign, open10k, longMax, int(longN))
}

func goSealMicros(b *testing.B) float64 {
	a, err := wire.NewIdentity(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	c, err := wire.NewIdentity(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	p, err := a.Pair(c.Public())
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(strings.Repeat("x", 100))
	seal := func(n int) time.Duration {
		start := time.Now()
		for range n {
			m := &wire.Message{SentAt: time.Now(), Type: wire.TypeText, Body: body}
			rand.Read(m.ID[:])
			if _, err := p.Seal(nil, m, rand.Reader); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	seal(200) // warm up
	const n = 3000
	return float64(seal(n).Microseconds()) / n
}

// tenThousand fills the page's store with a contact and 10,000 messages,
// reloads, opens the conversation and scrolls to its first message. It
// returns the time to open it, and the longest task and the number of long
// tasks while it opened and scrolled.
func tenThousand(b *testing.B, br *browser) (openMs, longMax, longN float64) {
	b.Helper()
	eval[chromedp.Void](br, `(async () => {
		const { Store } = await import('/js/store.js');
		const wire = await import('/js/wire.js');
		const { b64url, hex } = await import('/js/bytes.js');
		const s = await Store.open();
		const peer = wire.Identity.generate().pub;
		await s.putContact({ fp: peer.fpHex, name: 'bulk', nick: 'bulk', x: b64url(peer.x), ed: b64url(peer.ed), relay: '', addedAt: Date.now(), verifiedAt: null });
		const start = Date.now() - 10000 * 60000;
		for (let batch = 0; batch < 20; batch++) {
			await s.tx(['meta', 'messages', 'seen', 'convs'], 'readwrite', async (st) => {
				for (let i = batch * 500; i < (batch + 1) * 500; i++) {
					const id = hex(crypto.getRandomValues(new Uint8Array(16)));
					const dir = i % 3 === 0 ? 'out' : 'in';
					const t = start + i * 60000;
					const seq = await s.nextSeq(st);
					const text = 'message ' + i + ' ' + 'lorem ipsum dolor sit amet '.repeat(1 + (i % 5));
					st.messages.put({ key: dir + ':' + peer.fpHex + ':' + id, seq, dir, peer: peer.fpHex, id, type: 1, text, sentAt: t, receivedAt: t, state: dir === 'out' ? 'read' : 'read' });
					if (i === 9999) st.convs.put({ peer: peer.fpHex, lastText: text, lastAt: t, lastDir: dir, lastSeq: seq, unread: 0 });
				}
			});
		}
		s.close();
	})()`)
	br.do(chromedp.Reload())
	br.waitJS(`!!document.documentElement.dataset.ready && [...document.querySelectorAll('button.conv')].some(b => b.textContent.includes('bulk'))`, 20*time.Second)
	eval[chromedp.Void](br, `(() => {
		window.__long = [];
		new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); }).observe({ type: 'longtask' });
	})()`)
	openMs = eval[float64](br, `(async () => {
		const t0 = performance.now();
		[...document.querySelectorAll('button.conv')].find(b => b.textContent.includes('bulk')).click();
		while (document.querySelectorAll('#messages .msg').length < 50) await new Promise(r => setTimeout(r, 5));
		await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
		return performance.now() - t0;
	})()`)
	shown := eval[int](br, `(async () => {
		const list = document.querySelector('#messages');
		for (let i = 0; i < 400 && document.querySelector('#load-older'); i++) {
			list.scrollTop = 0;
			list.dispatchEvent(new Event('scroll'));
			await new Promise(r => setTimeout(r, 30));
		}
		await new Promise(r => setTimeout(r, 200));
		return document.querySelectorAll('#messages .msg').length;
	})()`)
	if shown > 300 {
		b.Errorf("%d messages in the page: the window does not move", shown)
	}
	first := eval[string](br, `document.querySelector('#messages .msg .text').textContent`)
	if !strings.HasPrefix(first, "message 0 ") {
		b.Errorf("scrolled to the top, the first message shown is %.40q", first)
	}
	// And back down to the newest.
	last := eval[string](br, `(async () => {
		const list = document.querySelector('#messages');
		for (let i = 0; i < 400; i++) {
			list.scrollTop = list.scrollHeight;
			list.dispatchEvent(new Event('scroll'));
			await new Promise(r => setTimeout(r, 30));
			const m = [...list.querySelectorAll('.msg .text')].pop();
			if (m && m.textContent.startsWith('message 9999 ')) break;
		}
		return [...list.querySelectorAll('.msg .text')].pop().textContent;
	})()`)
	if !strings.HasPrefix(last, "message 9999 ") {
		b.Errorf("scrolled to the bottom, the last message shown is %.40q", last)
	}
	longs := eval[[]float64](br, `window.__long`)
	for _, d := range longs {
		longMax = max(longMax, d)
	}
	return openMs, longMax, float64(len(longs))
}
