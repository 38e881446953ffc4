// Package web serves the wschat web app: the human's side of wschat, a
// messenger that runs in a browser or from a phone's home screen and
// speaks the same end-to-end protocol as the CLI, with every key made and
// kept in the browser. `wschat relay` serves it on its listening address;
// `wschat web` serves the same files from the person's own binary.
//
// The files live in app/ and are embedded in the binary. Handler serves
// them with:
//
//   - content-hashed names (/js/app.3f9a1c2e5b7d.js) cached for a year.
//     The ES modules import each other by plain relative names in the
//     source; Handler rewrites each import to the hashed name of the
//     module it names, and hashes a module after its imports are
//     rewritten (a module's name changes when any module it imports
//     changes), so the page and the service worker load the very same
//     URLs and every deploy is fetched afresh;
//   - gzip bodies compressed once, on first request;
//   - a strict Content-Security-Policy: scripts only from the app's own
//     files, no inline script or style, no third-party origin,
//     connect-src the relay itself plus wss: for contacts on other relays.
//
// index.html, sw.js and manifest.webmanifest keep their names (a service
// worker and a manifest are found by URL) and are revalidated on every
// load.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
)

//go:embed app
var embedded embed.FS

// Options configure Handler.
type Options struct {
	// Relay is the relay address (PROTOCOL.md §2) the page uses by
	// default: its own relay when the relay serves the page. Empty for a
	// page that asks for one.
	Relay string
	// ServedBy is "relay" when the relay serves the page, "local" for
	// `wschat web`; the page tells the person which copy they run.
	ServedBy string
	// ConnectSrc are CSP connect-src sources beyond 'self' and wss:
	// (e.g. "ws:" on a relay without TLS, whose contacts' relays may be
	// plain ws:// too).
	ConnectSrc []string
	// VAPIDPublicKey is the relay's Web Push key (base64url), if it has one.
	VAPIDPublicKey string
}

// asset is one file as served, under one of its names.
type asset struct {
	path  string // "/js/app.js", or its hashed name
	typ   string
	body  []byte
	etag  string
	cache string // Cache-Control
	gz    *gzipped
}

// gzipped is a body compressed on first use; a file's plain and hashed
// names share one.
type gzipped struct {
	once sync.Once
	b    []byte // nil when compressing does not make it smaller
}

func (a *asset) gzipped() []byte {
	a.gz.once.Do(func() {
		if !compressible(a.typ) {
			return
		}
		var b bytes.Buffer
		w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		w.Write(a.body)
		w.Close()
		if b.Len() < len(a.body) {
			a.gz.b = b.Bytes()
		}
	})
	return a.gz.b
}

func compressible(typ string) bool {
	return strings.HasPrefix(typ, "text/") || strings.Contains(typ, "json") || strings.Contains(typ, "svg")
}

const (
	cacheImmutable   = "public, max-age=31536000, immutable"
	cacheRevalidate  = "no-cache"
	hashLen          = 12 // hex digits of SHA-256 in a hashed name
	indexPath        = "/index.html"
	serviceWorker    = "/sw.js"
	manifestPath     = "/manifest.webmanifest"
	preloadMarker    = "<!--modulepreload-->"
	configMarker     = "<!--config-->"
	assetsMarker     = "/*ASSETS*/"
	versionMarker    = "/*VERSION*/"
)

// Handler serves the app. It panics only if the embedded files are broken,
// which the package's tests rule out.
func Handler(opt Options) http.Handler {
	h, err := newHandler(embedded, opt)
	if err != nil {
		panic("web: " + err.Error())
	}
	return h
}

type handler struct {
	byPath map[string]*asset // plain and hashed paths, and "/" for index.html
	csp    string
}

func newHandler(fsys embed.FS, opt Options) (*handler, error) {
	root, err := fs.Sub(fsys, "app")
	if err != nil {
		return nil, err
	}
	h := &handler{byPath: map[string]*asset{}}
	hashed := map[string]string{} // plain path -> hashed path
	var templates []*asset
	files := map[string][]byte{} // the other files, by plain path
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		a := &asset{path: "/" + p, typ: contentType(p), body: body}
		switch a.path {
		case indexPath, serviceWorker, manifestPath:
			templates = append(templates, a)
		default:
			files[a.path] = body
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Modules after the modules they import: each is hashed with its
	// imports already rewritten to hashed names.
	order, err := moduleOrder(files)
	if err != nil {
		return nil, err
	}
	for _, p := range order {
		body := files[p]
		if path.Ext(p) == ".js" {
			if body, err = rewriteImports(p, body, hashed); err != nil {
				return nil, err
			}
		}
		sum := sha256.Sum256(body)
		hp := hashedName(p, hex.EncodeToString(sum[:])[:hashLen])
		hashed[p] = hp
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		typ, gz := contentType(p), &gzipped{}
		h.byPath[p] = &asset{path: p, typ: typ, body: body, etag: etag, cache: cacheRevalidate, gz: gz}
		h.byPath[hp] = &asset{path: hp, typ: typ, body: body, etag: etag, cache: cacheImmutable, gz: gz}
	}
	for _, a := range templates {
		switch a.path {
		case indexPath:
			a.body, err = renderIndex(a.body, hashed, opt)
		case serviceWorker:
			if a.body, err = rewriteImports(a.path, a.body, hashed); err == nil {
				a.body, err = renderServiceWorker(a.body, hashed)
			}
		case manifestPath:
			a.body = renderManifest(a.body, hashed)
		}
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(a.body)
		a.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
		a.cache = cacheRevalidate
		a.gz = &gzipped{}
		h.byPath[a.path] = a
	}
	if h.byPath[indexPath] == nil {
		return nil, fmt.Errorf("app has no %s", indexPath)
	}
	h.byPath["/"] = h.byPath[indexPath]
	connect := append([]string{"'self'", "wss:"}, opt.ConnectSrc...)
	h.csp = strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data: blob:",
		"media-src 'self' blob:",
		"connect-src " + strings.Join(connect, " "),
		"manifest-src 'self'",
		"worker-src 'self'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
	return h, nil
}

// hashedName puts hash before the extension: /js/app.js -> /js/app.<hash>.js.
func hashedName(p, hash string) string {
	ext := path.Ext(p)
	return strings.TrimSuffix(p, ext) + "." + hash + ext
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json":
		return "application/json"
	case ".webmanifest":
		return "application/manifest+json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// renderIndex fills index.html's markers: modulepreload links for every
// module, hashed stylesheet, script and icon links, and the page's
// configuration as meta tags (not inline script: the CSP allows none).
func renderIndex(tmpl []byte, hashed map[string]string, opt Options) ([]byte, error) {
	s := string(tmpl)
	for _, m := range []string{preloadMarker, configMarker} {
		if strings.Count(s, m) != 1 {
			return nil, fmt.Errorf("index.html must hold %s once", m)
		}
	}
	var modules []string
	for p, hp := range hashed {
		if strings.HasSuffix(p, ".js") {
			modules = append(modules, hp)
		}
	}
	slices.Sort(modules)
	var pre strings.Builder
	for _, m := range modules {
		fmt.Fprintf(&pre, `<link rel="modulepreload" href="%s">`+"\n", html.EscapeString(m))
	}
	var cfg strings.Builder
	meta := func(name, content string) {
		fmt.Fprintf(&cfg, `<meta name="%s" content="%s">`+"\n", name, html.EscapeString(content))
	}
	meta("wschat-relay", opt.Relay)
	meta("wschat-served-by", opt.ServedBy)
	meta("wschat-vapid", opt.VAPIDPublicKey)
	s = replaceRefs(s, hashed, `"`)
	s = strings.Replace(s, preloadMarker, pre.String(), 1)
	s = strings.Replace(s, configMarker, cfg.String(), 1)
	return []byte(s), nil
}

// importRE finds the specifier of a static import or re-export of a
// relative module: `import … from './x.js'` or `export … from '../y.js'`,
// across lines. The app's sources use single quotes and import nothing
// else (the tests check every import was rewritten).
var importRE = regexp.MustCompile(`(?m)^(?:import|export)\b[^;'"]*?\bfrom\s*'(\.{1,2}/[^']+)'`)

// moduleImports lists the modules (plain absolute paths) that the
// JavaScript file at p imports.
func moduleImports(p string, body []byte) []string {
	var deps []string
	for _, m := range importRE.FindAllSubmatch(body, -1) {
		deps = append(deps, path.Join(path.Dir(p), string(m[1])))
	}
	return deps
}

// moduleOrder sorts the files so that every module comes after the ones
// it imports; an import cycle or an import of a missing file is an error
// (hashes could not be computed).
func moduleOrder(files map[string][]byte) ([]string, error) {
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	slices.Sort(names)
	state := map[string]int{} // 1 visiting, 2 done
	var order []string
	var visit func(p string, from string) error
	visit = func(p string, from string) error {
		if _, ok := files[p]; !ok {
			return fmt.Errorf("%s imports %s, which is not in the app", from, p)
		}
		switch state[p] {
		case 1:
			return fmt.Errorf("import cycle through %s", p)
		case 2:
			return nil
		}
		state[p] = 1
		if path.Ext(p) == ".js" {
			for _, d := range moduleImports(p, files[p]) {
				if err := visit(d, p); err != nil {
					return err
				}
			}
		}
		state[p] = 2
		order = append(order, p)
		return nil
	}
	for _, p := range names {
		if err := visit(p, p); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// rewriteImports replaces every relative import specifier in the module
// at p with the hashed name of the module it names.
func rewriteImports(p string, body []byte, hashed map[string]string) ([]byte, error) {
	var err error
	out := importRE.ReplaceAllFunc(body, func(stmt []byte) []byte {
		m := importRE.FindSubmatch(stmt)
		dep := path.Join(path.Dir(p), string(m[1]))
		hp, ok := hashed[dep]
		if !ok {
			err = fmt.Errorf("%s imports %s before it is hashed", p, dep)
			return stmt
		}
		i := bytes.LastIndex(stmt, m[1])
		return append(append(append([]byte(nil), stmt[:i]...), hp...), stmt[i+len(m[1]):]...)
	})
	return out, err
}

// replaceRefs rewrites quoted references to plain asset paths.
func replaceRefs(s string, hashed map[string]string, quote string) string {
	keys := make([]string, 0, len(hashed))
	for p := range hashed {
		keys = append(keys, p)
	}
	// Longest first, so /icons/icon-192.png is not cut by a shorter path.
	slices.SortFunc(keys, func(a, b string) int { return len(b) - len(a) })
	for _, p := range keys {
		s = strings.ReplaceAll(s, quote+p+quote, quote+hashed[p]+quote)
	}
	return s
}

// renderServiceWorker gives the worker the list of files to keep for
// offline use and a version that changes with any of them, so that a new
// deploy installs a new worker.
func renderServiceWorker(tmpl []byte, hashed map[string]string) ([]byte, error) {
	s := string(tmpl)
	if strings.Count(s, assetsMarker) != 1 || strings.Count(s, versionMarker) != 1 {
		return nil, fmt.Errorf("sw.js must hold %s and %s once", assetsMarker, versionMarker)
	}
	list := make([]string, 0, len(hashed))
	for _, hp := range hashed {
		list = append(list, hp)
	}
	slices.Sort(list)
	j, err := json.Marshal(list)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(j)
	s = strings.Replace(s, assetsMarker, string(j), 1)
	s = strings.Replace(s, versionMarker, `"`+hex.EncodeToString(sum[:6])+`"`, 1)
	return []byte(s), nil
}

func renderManifest(tmpl []byte, hashed map[string]string) []byte {
	return []byte(replaceRefs(string(tmpl), hashed, `"`))
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a := h.byPath[r.URL.Path]
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	if a == nil {
		hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	// The policies govern documents and workers; on the other files they
	// would be bytes for nothing (there are some twenty of them).
	if a.path == indexPath || a.path == serviceWorker {
		hd.Set("Content-Security-Policy", h.csp)
		hd.Set("Permissions-Policy", "camera=(self), microphone=(), geolocation=(), payment=()")
	}
	hd.Set("Content-Type", a.typ)
	hd.Set("Cache-Control", a.cache)
	hd.Set("ETag", a.etag)
	hd.Set("Vary", "Accept-Encoding")
	if a.path == serviceWorker {
		hd.Set("Service-Worker-Allowed", "/")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatch(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if gz := a.gzipped(); gz != nil && acceptsGzip(r) {
		hd.Set("Content-Encoding", "gzip")
		body = gz
	}
	hd.Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

func etagMatch(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimSpace(t)
		if t == etag || t == "W/"+etag || t == "*" {
			return true
		}
	}
	return false
}

func acceptsGzip(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
