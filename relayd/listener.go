package relayd

import (
	"context"
	"crypto/tls"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wschat/wschat/wire"
)

// Connections count against the per-address cap (Limits.MaxConnsPerIP)
// from the moment they are accepted, before any byte is read, so that
// sockets that never finish their request or upgrade (slowloris) are
// capped too. A connection beyond the cap is still read, for up to
// overDeadline, so that it can be told why it is refused (429, "too many
// connections from your address"); beyond twice the cap a connection is
// closed at once, with no answer.

// overDeadline bounds the life of a connection accepted over the cap.
const overDeadline = 5 * time.Second

// CountingListener wraps a TCP listener so that every connection it
// accepts counts against the per-address cap until it is closed. Put TLS
// over it (tls.NewListener(s.CountingListener(ln), cfg)) and give the
// result to Serve.
func (s *Server) CountingListener(l net.Listener) net.Listener {
	return &countingListener{Listener: l, s: s}
}

type countingListener struct {
	net.Listener
	s *Server // static
}

// countedConn is an accepted connection and its slot in the cap.
type countedConn struct {
	net.Conn
	s       *Server // static
	ip      string  // static: the remote address, without the port
	over    bool    // static: accepted beyond the cap; answered 429
	proxied bool    // static: from a trusted proxy; counted at the upgrade instead
	closed  atomic.Bool
}

func (l *countingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		ip := ap.Addr().Unmap()
		if l.s.trusted(ip) {
			return &countedConn{Conn: c, s: l.s, proxied: true}, nil
		}
		key := ip.String()
		switch n := l.s.ips.add(key); {
		case n > 2*l.s.limits.MaxConnsPerIP:
			l.s.ips.release(key)
			l.s.metrics.refused(wire.ReasonTooManyConns)
			c.Close()
			continue
		case n > l.s.limits.MaxConnsPerIP:
			c.SetDeadline(time.Now().Add(overDeadline))
			return &countedConn{Conn: c, s: l.s, ip: key, over: true}, nil
		}
		return &countedConn{Conn: c, s: l.s, ip: key}, nil
	}
}

// Close closes the connection and gives its slot back, once.
func (c *countedConn) Close() error {
	if !c.closed.Swap(true) && !c.proxied {
		c.s.ips.release(c.ip)
	}
	return c.Conn.Close()
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.limits.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

type acceptedKey struct{}

// withAcceptedConn is the http.Server's ConnContext: it keeps the
// countedConn under a request's context.
func withAcceptedConn(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if cc, ok := c.(*countedConn); ok {
		return context.WithValue(ctx, acceptedKey{}, cc)
	}
	return ctx
}

func acceptedConn(r *http.Request) *countedConn {
	c, _ := r.Context().Value(acceptedKey{}).(*countedConn)
	return c
}

// forwardedFor is the client address a trusted proxy named: the last
// entry of X-Forwarded-For that is not itself a trusted proxy.
func (s *Server) forwardedFor(r *http.Request) string {
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if ip = ip.Unmap(); !s.trusted(ip) {
			return ip.String()
		}
	}
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	return ap.Addr().Unmap().String() // the proxy named no one: count it as itself
}

// refuseHTTP answers a refused connection with a status and a body whose
// first word is the reason's label (PROTOCOL.md §4, "Refused
// connections"): clients turn it into words.
func refuseHTTP(w http.ResponseWriter, status int, r wire.Reason, words string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Connection", "close")
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "10")
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s: %s\n", r, words)
}

// servePage answers a browser that opens the relay's address without a
// WebSocket upgrade.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	key := s.id.Public().String()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	fmt.Fprintf(w, pageHTML, html.EscapeString(key))
}

const pageHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>wschat relay</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}code{word-break:break-all}</style>
</head><body>
<h1>wschat relay</h1>
<p>This is a wschat relay: it passes end-to-end encrypted messages between
wschat identities and keeps them for recipients who are offline. It never
sees a message's text.</p>
<p>To use it, give <code>wschat keygen --relay</code> the relay address its
operator printed (this URL with the relay's key after a <code>#</code>).
This relay's key is <code>%s</code>.</p>
</body></html>
`

// ipLimiter counts concurrent connections per remote address.
type ipLimiter struct {
	max int
	mu  sync.Mutex
	n   map[string]int // guarded by mu
}

// add counts one more connection from ip and returns the count.
func (l *ipLimiter) add(ip string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[ip]++
	return l.n[ip]
}

// acquire counts one more connection from ip if it stays within the cap.
func (l *ipLimiter) acquire(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[ip] >= l.max {
		return false
	}
	l.n[ip]++
	return true
}

func (l *ipLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[ip]--; l.n[ip] <= 0 {
		delete(l.n, ip)
	}
}
