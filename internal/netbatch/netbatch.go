// Package netbatch coalesces the writes of a connection: while a batch is
// open, what is written collects in a buffer and leaves in one write(2) at
// Flush. A WebSocket library writes every message with its own system call;
// under a batch, a burst of small frames costs one. Both the relay and the
// client library sit their WebSocket connections on a Conn.
package netbatch

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// Conn is a net.Conn whose writes can be batched. Outside a batch, writes
// go straight through (a WebSocket's control frames from other goroutines,
// for example); mu serialises both kinds.
type Conn struct {
	net.Conn
	mu       sync.Mutex
	batching bool    // guarded by mu
	buf      *[]byte // guarded by mu: from pool while batching

	dmu      sync.Mutex
	deadline time.Time // guarded by dmu: the write deadline set last
}

// FlushAt bounds a batch: past it, a write sends what has collected.
const FlushAt = 32 << 10

var pool = sync.Pool{New: func() any { b := make([]byte, 0, FlushAt+8<<10); return &b }}

// New wraps c.
func New(c net.Conn) *Conn { return &Conn{Conn: c} }

func (b *Conn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.batching {
		return b.Conn.Write(p)
	}
	*b.buf = append(*b.buf, p...)
	if len(*b.buf) >= FlushAt {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// SetWriteDeadline passes a new deadline on, and skips one that is set
// already: a WebSocket library sets the deadline for every message it
// writes, and under a batch they are all the same (each costs a timer
// update in the runtime).
func (b *Conn) SetWriteDeadline(t time.Time) error {
	b.dmu.Lock()
	defer b.dmu.Unlock()
	if t.Equal(b.deadline) {
		return nil
	}
	if err := b.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	b.deadline = t
	return nil
}

// SetDeadline sets both deadlines.
func (b *Conn) SetDeadline(t time.Time) error {
	b.dmu.Lock()
	defer b.dmu.Unlock()
	if err := b.Conn.SetDeadline(t); err != nil {
		return err
	}
	b.deadline = t
	return nil
}

// Begin opens a batch; it is a no-op when one is open.
func (b *Conn) Begin() {
	b.mu.Lock()
	if !b.batching {
		b.batching = true
		b.buf = pool.Get().(*[]byte)
	}
	b.mu.Unlock()
}

// Flush closes the batch and writes what collected. The connection keeps
// no buffer outside a batch.
func (b *Conn) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.batching {
		return nil
	}
	err := b.flushLocked()
	b.batching = false
	*b.buf = (*b.buf)[:0]
	pool.Put(b.buf)
	b.buf = nil
	return err
}

func (b *Conn) flushLocked() error {
	if len(*b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	return err
}

// Dialer returns a NetDialContext for a WebSocket dialer: it dials TCP,
// wraps the connection in a Conn and hands that to got before the
// WebSocket library sees it.
func Dialer(got func(*Conn)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		b := New(c)
		got(b)
		return b, nil
	}
}

// Hijacker hands a WebSocket upgrader a Conn instead of the raw
// connection: give the upgrader a Hijacker around the ResponseWriter, and
// find the Conn in it after the upgrade.
type Hijacker struct {
	http.ResponseWriter
	Conn *Conn // set by Hijack
}

// Hijack takes over the connection, as http.Hijacker does, and wraps it.
func (h *Hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.Conn = New(c)
	return h.Conn, brw, nil
}
