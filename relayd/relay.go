// Package relayd is the wschat relay: it authenticates each connection once
// (the wire handshake), routes end-to-end encrypted frames between
// identities by their blinded routing ids, and keeps frames for recipients
// that are offline until they come back and acknowledge them. It never sees
// a plaintext, a nickname or a contact list, and it never checks a
// per-frame signature.
//
// The command-line wrapper is `wschat relay` in cmd/wschat.
package relayd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wschat/wschat/wire"
)

// Limits are the relay's defences. Every field has a default (DefaultLimits)
// and a flag in `wschat relay`.
type Limits struct {
	MaxFrameSize     int           // largest frame read; checked before the body is read
	HandshakeTimeout time.Duration // upgrade to Welcome
	PingInterval     time.Duration // a WebSocket ping after this much silence
	IdleTimeout      time.Duration // close after this much silence (pings unanswered)
	WriteTimeout     time.Duration // one write to a client
	SendQueue        int           // frames queued per connection; beyond it frames are stored or refused
	RateBytes        float64       // bytes per second a connection may send
	RateBurst        int           // bucket size in bytes; at least MaxFrameSize
	MaxConnsPerIP    int
	MaxConns         int
	AckTimeout       time.Duration // a live frame not acknowledged by then is stored
	BacklogBatch     int           // stored frames read from the mailbox at a time
	AllowedOrigins   []string      // if set, the only browser origins allowed besides the relay's own host
	SenderBudget     int64         // bytes per hour one identity may have stored for offline recipients (and the burst)
	CompactEvery     time.Duration // how often a disk mailbox that changed is rewritten (freed pages keep old data until then)

	// TrustedProxies are the addresses of reverse proxies (Caddy, nginx)
	// in front of the relay. A connection from one is not counted against
	// the per-address cap when it is accepted but at the WebSocket
	// upgrade, under the client address the proxy names last in
	// X-Forwarded-For.
	TrustedProxies []netip.Prefix
}

// DefaultLimits are the named defaults.
var DefaultLimits = Limits{
	MaxFrameSize:     wire.MaxFrameSize,
	HandshakeTimeout: 10 * time.Second,
	PingInterval:     30 * time.Second,
	IdleTimeout:      75 * time.Second,
	WriteTimeout:     10 * time.Second,
	SendQueue:        256,
	RateBytes:        1 << 20,
	RateBurst:        4 << 20,
	MaxConnsPerIP:    64,
	MaxConns:         200_000,
	AckTimeout:       15 * time.Second,
	BacklogBatch:     64,
	SenderBudget:     256 << 20,
	CompactEvery:     6 * time.Hour,
}

// Config configures a Server.
type Config struct {
	Identity *wire.RelayIdentity // required
	Mailbox  Mailbox             // required: NewMemoryMailbox or OpenBoltMailbox
	Limits   Limits              // zero fields take DefaultLimits
	Logger   *slog.Logger        // nil: discard
	Now      func() time.Time    // nil: time.Now
	// Registry receives the relay's metrics; nil: a private registry.
	// MetricsHandler serves it (wschat relay --metrics, on a listener of
	// its own).
	Registry *prometheus.Registry
	// Web, if not nil, serves what is not the relay's own: the web app
	// (package web) at / for requests that are not a WebSocket upgrade,
	// and its assets.
	Web http.Handler
}

// Server is a relay. Create with New, serve with Serve, stop with Shutdown.
type Server struct {
	id      *wire.RelayIdentity // static after construction
	mailbox Mailbox
	limits  Limits
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	reg     *prometheus.Registry
	web     http.Handler // static after construction; nil: no web app
	hub     Hub
	upgrade websocket.Upgrader
	ips     ipLimiter
	budgets *budgets
	logs    *logLimiter

	conns      atomic.Int64 // open connections
	closing    atomic.Bool
	compacting atomic.Bool    // a mailbox compaction runs
	wg         sync.WaitGroup // connection goroutines and the janitor
	stop       chan struct{}  // closed by Shutdown
	stopOnce   sync.Once

	mu      sync.Mutex
	all     map[*conn]struct{} // guarded by mu: every connection past the upgrade
	servers []*http.Server     // guarded by mu
}

// New makes a relay from cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Identity == nil || cfg.Mailbox == nil {
		return nil, errors.New("relay: identity and mailbox are required")
	}
	l := cfg.Limits
	d := DefaultLimits
	setDefault(&l.MaxFrameSize, d.MaxFrameSize)
	setDefault(&l.HandshakeTimeout, d.HandshakeTimeout)
	setDefault(&l.PingInterval, d.PingInterval)
	setDefault(&l.IdleTimeout, d.IdleTimeout)
	setDefault(&l.WriteTimeout, d.WriteTimeout)
	setDefault(&l.SendQueue, d.SendQueue)
	setDefault(&l.RateBytes, d.RateBytes)
	setDefault(&l.RateBurst, d.RateBurst)
	setDefault(&l.MaxConnsPerIP, d.MaxConnsPerIP)
	setDefault(&l.MaxConns, d.MaxConns)
	setDefault(&l.AckTimeout, d.AckTimeout)
	setDefault(&l.BacklogBatch, d.BacklogBatch)
	setDefault(&l.SenderBudget, d.SenderBudget)
	setDefault(&l.CompactEvery, d.CompactEvery)
	if l.MaxFrameSize > wire.MaxFrameSize {
		l.MaxFrameSize = wire.MaxFrameSize
	}
	if l.RateBurst < l.MaxFrameSize {
		l.RateBurst = l.MaxFrameSize
	}
	if l.IdleTimeout <= l.PingInterval {
		return nil, fmt.Errorf("relay: idle timeout %v must exceed the ping interval %v", l.IdleTimeout, l.PingInterval)
	}
	s := &Server{
		id:      cfg.Identity,
		mailbox: cfg.Mailbox,
		limits:  l,
		log:     cfg.Logger,
		now:     cfg.Now,
		reg:     cfg.Registry,
		web:     cfg.Web,
		stop:    make(chan struct{}),
		all:     make(map[*conn]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	s.logs = newLogLimiter(s.log, s.now)
	s.budgets = newBudgets(l.SenderBudget)
	s.metrics = newMetrics(s.reg, s)
	s.hub = newLocalHub()
	s.ips = ipLimiter{max: l.MaxConnsPerIP, n: make(map[string]int)}
	s.upgrade = websocket.Upgrader{
		ReadBufferSize:    1024,
		WriteBufferSize:   4096,
		WriteBufferPool:   &sync.Pool{},
		HandshakeTimeout:  l.HandshakeTimeout,
		CheckOrigin:       s.checkOrigin,
		EnableCompression: false,
		Subprotocols:      []string{wire.Subprotocol},
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			refuseHTTP(w, status, wire.ReasonHandshakeFailed, reason.Error())
		},
	}
	s.wg.Add(1)
	go s.janitor()
	return s, nil
}

func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Address is the relay address clients are given for a base URL such as
// ws://127.0.0.1:8443/.
func (s *Server) Address(baseURL string) wire.RelayAddress {
	return wire.RelayAddress{URL: baseURL, Key: s.id.Public()}
}

// Handler serves the WebSocket endpoint at /, and /healthz. A GET of /
// without an upgrade (a browser opening the relay's address) and other
// GETs go to Config.Web (the web app and its assets), or get a short
// page without it. Connections past the per-address cap (see Serve) are
// answered 429 whatever they ask.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.serveWS)
	if s.web != nil {
		mux.Handle("GET /", s.web)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if s.closing.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := acceptedConn(r); c != nil && c.over {
			s.metrics.refused(wire.ReasonTooManyConns)
			refuseHTTP(w, http.StatusTooManyRequests, wire.ReasonTooManyConns, "too many connections from your address")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// MetricsHandler serves the relay's Prometheus metrics. Serve it on a
// listener of its own, not one the public reaches (wschat relay
// --metrics ADDR).
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
}

// Serve accepts connections on l until Shutdown. It returns nil after a
// Shutdown. Every connection counts against the per-address cap from the
// moment it is accepted (CountingListener); give Serve a listener from
// CountingListener to put TLS over the counting, else it counts l's
// connections itself.
func (s *Server) Serve(l net.Listener) error {
	if _, ok := l.(*countingListener); !ok {
		l = s.CountingListener(l)
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext:       withAcceptedConn,
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.servers = append(s.servers, hs)
	s.mu.Unlock()
	err := hs.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, tells every client to reconnect after
// reconnectAfter, stores every frame that was delivered live but not yet
// acknowledged, closes the connections and waits for their goroutines. It
// does not close the mailbox (the caller owns it).
func (s *Server) Shutdown(ctx context.Context, reconnectAfter time.Duration) error {
	s.closing.Store(true)
	s.stopOnce.Do(func() { close(s.stop) })
	s.mu.Lock()
	servers := s.servers
	conns := make([]*conn, 0, len(s.all))
	for c := range s.all {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var err error
	for _, hs := range servers {
		if e := hs.Shutdown(ctx); e != nil && err == nil {
			err = e
		}
	}
	for _, c := range conns {
		c.restart(reconnectAfter)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range conns {
			c.ws.Close()
		}
		<-done
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// checkOrigin allows clients that send no Origin (CLI and library
// clients) and, by default, browsers on any page: the protocol
// authenticates every connection by its keys, never by cookies or other
// ambient credentials, so a page on another origin can do nothing that a
// script could not (and a person who runs the web app from their own
// binary, `wschat web`, is on another origin). With AllowedOrigins set,
// browsers are held to those origins and the relay's own host.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(s.limits.AllowedOrigins) == 0 {
		return true
	}
	for _, o := range s.limits.AllowedOrigins {
		if o == origin {
			return true
		}
	}
	// Same host: what gorilla does by default.
	return origin == "http://"+r.Host || origin == "https://"+r.Host
}
