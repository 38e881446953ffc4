package web_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wschat/wschat/web"
)

func get(t *testing.T, h http.Handler, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		rd = z
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The page loads hashed modules whose imports name hashed modules, all the
// way down: every file a visit loads is cacheable for a year, and the page
// and the service worker share the URLs. The CSP allows no inline script.
func TestIndexHashedModulesAndCSP(t *testing.T) {
	h := web.Handler(web.Options{Relay: "ws://127.0.0.1:8443/#YFpyXSpK3-6xop4X7dYhwbdZPujNvESsbEq24vgF0jw", ServedBy: "relay"})
	r := get(t, h, "/")
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/html; charset=utf-8" || r.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("/: %d %q %q", r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Cache-Control"))
	}
	page := body(t, r)
	csp := r.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self'", "frame-ancestors 'none'", "connect-src 'self' wss:"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP lacks %q: %s", want, csp)
		}
	}
	if strings.Contains(csp, "unsafe-") || strings.Contains(csp, "sha256-") || strings.Contains(csp, "http:") {
		t.Errorf("CSP too open: %s", csp)
	}
	if strings.Count(page, "<script") != 1 || strings.Contains(page, "importmap") {
		t.Errorf("index.html has more than the one module script: %s", page)
	}
	if !strings.Contains(page, `<meta name="wschat-relay" content="ws://127.0.0.1:8443/#YFpyXSpK3-6xop4X7dYhwbdZPujNvESsbEq24vgF0jw">`) {
		t.Error("relay address not in the page's meta")
	}
	main := regexp.MustCompile(`<script type="module" src="(/js/main\.[0-9a-f]{12}\.js)"></script>`).FindStringSubmatch(page)
	if main == nil {
		t.Fatalf("no hashed main script in %s", page)
	}
	// Walk the module graph from main and from the service worker: every
	// import is hashed, immutable, named by its content's hash, and loads.
	specRE := regexp.MustCompile(`(?m)^(?:import|export)\b[^;'"]*?\bfrom\s*'([^']+)'`)
	seen := map[string]bool{}
	var walk func(p string)
	walk = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		r := get(t, h, p)
		b := body(t, r)
		if r.StatusCode != 200 || r.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" || r.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Errorf("%s: %d %q %q", p, r.StatusCode, r.Header.Get("Cache-Control"), r.Header.Get("Content-Type"))
		}
		s := sha256.Sum256([]byte(b))
		if !strings.Contains(p, "."+hex.EncodeToString(s[:])[:12]+".") {
			t.Errorf("%s is not named by its content hash", p)
		}
		if !strings.Contains(p, "vendor") && (strings.Contains(b, "innerHTML") || strings.Contains(b, "insertAdjacentHTML") || strings.Contains(b, "eval(")) {
			t.Errorf("%s writes markup or evaluates strings", p)
		}
		for _, m := range specRE.FindAllStringSubmatch(b, -1) {
			if !regexp.MustCompile(`^/[a-z/]+\.[0-9a-f]{12}\.js$`).MatchString(m[1]) {
				t.Errorf("%s imports %q, not a hashed module", p, m[1])
				continue
			}
			walk(m[1])
		}
	}
	walk(main[1])
	sw := body(t, get(t, h, "/sw.js"))
	for _, m := range specRE.FindAllStringSubmatch(sw, -1) {
		if !strings.HasPrefix(m[1], "/js/") {
			t.Errorf("sw.js imports %q, not a hashed module", m[1])
			continue
		}
		walk(m[1])
	}
	if len(seen) < 12 {
		t.Errorf("only %d modules reached", len(seen))
	}
	// Every module the page loads is preloaded, so the browser fetches them
	// at once instead of one import level at a time.
	for p := range seen {
		if !strings.Contains(page, `<link rel="modulepreload" href="`+p+`">`) {
			t.Errorf("%s is not preloaded", p)
		}
	}
	// A plain name serves the same rewritten module, revalidated.
	if pr := get(t, h, "/js/wire.js"); pr.StatusCode != 200 || pr.Header.Get("Cache-Control") != "no-cache" || strings.Contains(body(t, pr), "from './") {
		t.Errorf("/js/wire.js (plain name): %d %q", pr.StatusCode, pr.Header.Get("Cache-Control"))
	}
}

func TestCompressionAndRevalidation(t *testing.T) {
	h := web.Handler(web.Options{})
	r := get(t, h, "/vendor/vendor.js", "Accept-Encoding", "gzip, br")
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("no gzip: %v", r.Header)
	}
	zipped := r.Header.Get("Content-Length")
	plain := get(t, h, "/vendor/vendor.js")
	if plain.Header.Get("Content-Encoding") != "" || body(t, plain) != body(t, r) {
		t.Fatal("identity encoding differs")
	}
	if zipped >= plain.Header.Get("Content-Length") && len(zipped) >= len(plain.Header.Get("Content-Length")) {
		t.Errorf("gzip %s bytes, plain %s", zipped, plain.Header.Get("Content-Length"))
	}
	etag := plain.Header.Get("ETag")
	if nm := get(t, h, "/vendor/vendor.js", "If-None-Match", etag); nm.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", nm.StatusCode)
	}
	// PNGs are not compressed again.
	if p := get(t, h, "/icons/icon-192.png", "Accept-Encoding", "gzip"); p.Header.Get("Content-Encoding") != "" || p.Header.Get("Content-Type") != "image/png" {
		t.Errorf("png: %v", p.Header)
	}
	for path, typ := range map[string]string{"/manifest.webmanifest": "application/manifest+json", "/sw.js": "text/javascript; charset=utf-8", "/app.css": "text/css; charset=utf-8", "/icons/icon.svg": "image/svg+xml"} {
		if r := get(t, h, path); r.StatusCode != 200 || r.Header.Get("Content-Type") != typ || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d %v", path, r.StatusCode, r.Header)
		}
	}
	if r := get(t, h, "/nope.js"); r.StatusCode != 404 {
		t.Errorf("unknown path: %d", r.StatusCode)
	}
	req := httptest.NewRequest("POST", "/", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

// The service worker keeps every hashed file and changes with them; the
// manifest names hashed icons.
func TestServiceWorkerAndManifest(t *testing.T) {
	h := web.Handler(web.Options{})
	sw := body(t, get(t, h, "/sw.js"))
	m := regexp.MustCompile(`const ASSETS = (\[.*?\]);`).FindStringSubmatch(sw)
	if m == nil || strings.Contains(sw, "/*ASSETS*/") || strings.Contains(sw, "/*VERSION*/") {
		t.Fatalf("sw.js not filled in: %.300s", sw)
	}
	var assets []string
	if err := json.Unmarshal([]byte(m[1]), &assets); err != nil {
		t.Fatal(err)
	}
	for _, a := range assets {
		if r := get(t, h, a); r.StatusCode != 200 {
			t.Errorf("sw asset %s: %d", a, r.StatusCode)
		}
	}
	var man struct {
		Icons []struct{ Src, Sizes string }
	}
	if err := json.Unmarshal([]byte(body(t, get(t, h, "/manifest.webmanifest"))), &man); err != nil {
		t.Fatal(err)
	}
	sizes := map[string]bool{}
	for _, ic := range man.Icons {
		if r := get(t, h, ic.Src); r.StatusCode != 200 || !strings.Contains(ic.Src, ".") {
			t.Errorf("manifest icon %s: %d", ic.Src, r.StatusCode)
		}
		sizes[ic.Sizes] = true
	}
	if !sizes["192x192"] || !sizes["512x512"] {
		t.Errorf("manifest icon sizes %v", sizes)
	}
}

// The vendored third-party files are exactly the published ones listed in
// SHA256SUMS (scripts/vendor-web.sh wrote them), and nothing else is there.
func TestThirdPartyChecksums(t *testing.T) {
	f, err := os.Open("thirdparty/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]bool{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		b, err := os.ReadFile(filepath.Join("thirdparty", name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := sha256.Sum256(b)
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s changed: sha256 %x, published %s", name, got, sum)
		}
		listed[name] = true
	}
	if len(listed) < 20 {
		t.Fatalf("only %d files listed", len(listed))
	}
	fs.WalkDir(os.DirFS("thirdparty"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(p, "@") || strings.HasPrefix(p, "qrcode-generator/") {
			if !listed[p] {
				t.Errorf("%s is vendored but not in SHA256SUMS", p)
			}
		}
		return nil
	})
	// The bundle says which packages it holds.
	head, err := os.ReadFile("app/vendor/vendor.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"@noble/curves 2.4.0", "@noble/hashes 2.4.0", "@noble/ciphers 2.4.0", "qrcode-generator 2.0.4"} {
		if !bytes.Contains(head[:800], []byte(want)) {
			t.Errorf("vendor.js header lacks %q", want)
		}
	}
}
