package web_test

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// serveRepoFiles serves the web folder (app and testdata) on loopback for
// tests that import the app's modules directly.
func serveRepoFiles(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/blank", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<!doctype html><title>test</title><p>test page</p>"))
	})
	mux.Handle("/", http.FileServer(http.Dir(".")))
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

type vectorResult struct {
	Checks   []string `json:"checks"`
	Failures []string `json:"failures"`
}

func runBrowserVectors(t *testing.T, b *browser, golden string, keyVectors map[string]string) vectorResult {
	t.Helper()
	kv, _ := json.Marshal(keyVectors)
	structured := readFile(t, "../wire/testdata/golden-v1-structured.txt")
	return eval[vectorResult](b, `import('/testdata/vectors.js').then(m => m.runVectors({golden: `+jsString(golden)+`, keyVectors: `+string(kv)+`, structured: `+jsString(structured)+`}))`)
}

// TestGoldenVectorsInChromium runs wire's and keys' golden vectors through
// the web app's protocol code in real Chromium: the handshake's Auth, the
// frames and the envelope must come out byte for byte as Go makes them, and
// every keys/testdata vector must decode (or be refused) as in Go. A
// tampered vector must fail there too.
func TestGoldenVectorsInChromium(t *testing.T) {
	base := serveRepoFiles(t)
	b := newBrowser(t)
	b.do(chromedp.Navigate(base + "/blank"))
	golden := readFile(t, "../wire/testdata/golden-v1.txt")
	keyVectors := map[string]string{}
	files, _ := filepath.Glob("../keys/testdata/*.txt")
	for _, f := range files {
		keyVectors[filepath.Base(f)] = readFile(t, f)
	}
	if len(keyVectors) < 15 {
		t.Fatalf("only %d key vectors found", len(keyVectors))
	}
	res := runBrowserVectors(t, b, golden, keyVectors)
	t.Logf("%d checks in Chromium", len(res.Checks))
	for _, f := range res.Failures {
		t.Error(f)
	}
	if len(res.Checks) < 60 {
		t.Errorf("only %d checks ran", len(res.Checks))
	}
	for _, name := range []string{"auth (client handshake) byte for byte", "envelope byte for byte", "keys/testdata/invite_typo.txt", "keys/testdata/safety_alice_bob.txt", "structured approval_request: envelope byte for byte", "push subscribe byte for byte"} {
		found := false
		for _, c := range res.Checks {
			found = found || c == name
		}
		if !found {
			t.Errorf("check %q did not run", name)
		}
	}

	// The same code must notice a changed vector.
	tamperedGolden := strings.Replace(golden, "envelope_alice_to_bob: 01", "envelope_alice_to_bob: 02", 1)
	tamperedKeys := map[string]string{}
	for k, v := range keyVectors {
		tamperedKeys[k] = v
	}
	// An ok invite with one character changed is no longer ok.
	inv := keyVectors["invite_alice.txt"]
	i := strings.LastIndex(inv, "WSCHAT1-") + 20
	tamperedKeys["invite_alice.txt"] = inv[:i] + flip(inv[i]) + inv[i+1:]
	res = runBrowserVectors(t, b, tamperedGolden, tamperedKeys)
	var envFailed, invFailed bool
	for _, f := range res.Failures {
		envFailed = envFailed || strings.HasPrefix(f, "bob opens the envelope") || strings.HasPrefix(f, "data frame")
		invFailed = invFailed || strings.HasPrefix(f, "keys/testdata/invite_alice.txt")
	}
	if !envFailed || !invFailed {
		t.Errorf("tampered vectors passed (envelope failed %v, invite failed %v): %q", envFailed, invFailed, res.Failures)
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}
