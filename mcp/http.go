package mcp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/server"
)

// HTTPOptions secure the streamable HTTP transport. A browser page must not
// be able to drive the agent's identity: every request needs the bearer
// token, a request with an Origin header must come from an allowed origin,
// and the Host header must name the server (DNS rebinding).
type HTTPOptions struct {
	Token   string   // required: clients send "Authorization: Bearer TOKEN"
	Origins []string // allowed Origin values (scheme://host[:port]); none by default
	Hosts   []string // allowed Host names besides loopback ones and the listening host
	Path    string   // endpoint path; default "/mcp"
}

// ErrNoToken: the HTTP transport was asked for without a bearer token.
var ErrNoToken = errors.New("mcp: the HTTP transport needs a bearer token")

// HTTPHandler is the streamable HTTP transport behind the checks of o.
// listenHost is the host the server listens on (allowed in Host headers).
func (s *Server) HTTPHandler(o HTTPOptions, listenHost string) (http.Handler, error) {
	if o.Token == "" {
		return nil, ErrNoToken
	}
	if o.Path == "" {
		o.Path = "/mcp"
	}
	want := sha256.Sum256([]byte(o.Token))
	hosts := append([]string{listenHost}, o.Hosts...)
	mcpHTTP := server.NewStreamableHTTPServer(s.mcp, server.WithEndpointPath(o.Path),
		server.WithHeartbeatInterval(25*time.Second))
	mux := http.NewServeMux()
	mux.Handle(o.Path, mcpHTTP)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowedHost(r.Host, hosts) {
			s.log.Warn("http: refused a request for another host", "host", r.Host)
			http.Error(w, "wschat mcp: forbidden host", http.StatusForbidden)
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !slices.Contains(o.Origins, origin) {
			s.log.Warn("http: refused a request from a web origin", "origin", origin)
			http.Error(w, "wschat mcp: forbidden origin", http.StatusForbidden)
			return
		}
		got, ok := bearer(r.Header.Get("Authorization"))
		sum := sha256.Sum256([]byte(got)) // equal lengths: the comparison takes constant time
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wschat"`)
			http.Error(w, "wschat mcp: missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		mux.ServeHTTP(w, r)
	}), nil
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header.
func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(h[len(scheme):]), true
}

// allowedHost says whether a Host header names this server: a loopback
// name or address, or one of hosts.
func allowedHost(hostport string, hosts []string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.Trim(h, "[]")
	if h == "" {
		return false
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, a := range hosts {
		if a != "" && strings.EqualFold(strings.Trim(a, "[]"), h) {
			return true
		}
	}
	return false
}

// ServeListener serves the streamable HTTP transport on ln until ctx
// ends, with the relay connection running.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener, o HTTPOptions) error {
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "" // 0.0.0.0 is no Host name; add real names with Hosts
	}
	h, err := s.HTTPHandler(o, host)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := s.runInBackground(ctx)
	defer ran.wait()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	srv.Shutdown(sctx)
	<-done
	return nil
}
