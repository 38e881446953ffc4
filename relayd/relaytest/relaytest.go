// Package relaytest runs wschat relays for tests, in the manner of
// net/http/httptest: a relay on 127.0.0.1 with a fresh key, shut down
// when the test ends, that can be stopped, restarted on the same port
// with the same key and mailbox, and put behind a fault proxy.
package relaytest

import (
	"context"
	"crypto/rand"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/wire"
)

// Options configure a test relay. The zero value is a relay with a fresh
// key, an in-memory mailbox with the default limits, and the default
// relay limits.
type Options struct {
	Identity      *wire.RelayIdentity  // nil: a fresh key
	Mailbox       relayd.Mailbox       // nil: NewMemoryMailbox(MailboxLimits); the caller closes one it passes
	MailboxLimits relayd.MailboxLimits // for the default mailbox
	Limits        relayd.Limits
	Listen        string // nil: 127.0.0.1:0
}

// Relay is a running test relay.
type Relay struct {
	t    testing.TB
	opt  Options           // static: with Identity and Mailbox set
	Addr wire.RelayAddress // static: where clients connect, with the relay's key
	mu   sync.Mutex        // guards srv, done, ln
	srv  *relayd.Server    // guarded by mu; nil while stopped
	done chan error        // guarded by mu: Serve's result
	ln   *countingListener // guarded by mu
	n    atomic.Int64      // connections accepted, over every start
}

// Start runs a relay until the test ends.
func Start(t testing.TB, opt Options) *Relay {
	t.Helper()
	if opt.Identity == nil {
		id, err := wire.NewRelayIdentity(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		opt.Identity = id
	}
	if opt.Mailbox == nil {
		opt.Mailbox = relayd.NewMemoryMailbox(opt.MailboxLimits)
	}
	if opt.Listen == "" {
		opt.Listen = "127.0.0.1:0"
	}
	r := &Relay{t: t, opt: opt}
	r.start(opt.Listen)
	r.Addr = wire.RelayAddress{URL: "ws://" + r.ln.Addr().String() + "/", Key: opt.Identity.Public()}
	t.Cleanup(func() { r.Stop() })
	return r
}

func (r *Relay) start(listen string) {
	r.t.Helper()
	var inner net.Listener
	var err error
	for i := 0; ; i++ {
		// After a stop the old socket may still be closing.
		if inner, err = net.Listen("tcp", listen); err == nil || i == 50 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	srv, err := relayd.New(relayd.Config{Identity: r.opt.Identity, Mailbox: r.opt.Mailbox, Limits: r.opt.Limits})
	if err != nil {
		inner.Close()
		r.t.Fatal(err)
	}
	ln := &countingListener{Listener: inner, n: &r.n}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	r.mu.Lock()
	r.srv, r.done, r.ln = srv, done, ln
	r.mu.Unlock()
}

// Server is the running relayd.Server (nil while stopped).
func (r *Relay) Server() *relayd.Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.srv
}

// Mailbox is the relay's mailbox; it outlives restarts.
func (r *Relay) Mailbox() relayd.Mailbox { return r.opt.Mailbox }

// Accepted is the number of TCP connections the relay accepted so far.
func (r *Relay) Accepted() int64 { return r.n.Load() }

// Stop shuts the relay down gracefully (clients are told to come back
// after 50 ms). Stopping a stopped relay does nothing.
func (r *Relay) Stop() {
	r.mu.Lock()
	srv, done := r.srv, r.done
	r.srv = nil
	r.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx, 50*time.Millisecond); err != nil {
		r.t.Errorf("relaytest: shutdown: %v", err)
	}
	if err := <-done; err != nil {
		r.t.Errorf("relaytest: serve: %v", err)
	}
}

// Restart stops the relay and starts it again on the same port, with the
// same key and mailbox: what clients see of a relay restart.
func (r *Relay) Restart() {
	r.t.Helper()
	r.Stop()
	r.start(r.Addr.URL[len("ws://") : len(r.Addr.URL)-1])
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// Unreachable returns a relay address where nothing listens (a port that
// was free a moment ago), with a fresh key.
func Unreachable(t testing.TB) wire.RelayAddress {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	id, _ := wire.NewRelayIdentity(rand.Reader)
	return wire.RelayAddress{URL: "ws://" + addr + "/", Key: id.Public()}
}

// Silent returns a relay address that accepts TCP connections and never
// answers, as a hung relay would; it closes when the test ends.
func Silent(t testing.TB) wire.RelayAddress {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	id, _ := wire.NewRelayIdentity(rand.Reader)
	return wire.RelayAddress{URL: "ws://" + ln.Addr().String() + "/", Key: id.Public()}
}
