package relayd

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
)

// batchConn is the network connection under a client's WebSocket. While
// the connection's writer has a batch open, the WebSocket messages it
// writes collect in a buffer and leave in one write(2) at flush: a batch
// of frames and custody answers costs one system call instead of one each
// (the relay's main cost per frame). Outside a batch (the upgrade
// response, pings and close frames from other goroutines) writes go
// straight through. mu serialises both kinds.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool    // guarded by mu
	buf      *[]byte // guarded by mu: from batchPool while batching
}

// flushAt bounds a batch: past it, a write flushes what has collected.
const flushAt = 32 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, flushAt+8<<10); return &b }}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.batching {
		return b.Conn.Write(p)
	}
	*b.buf = append(*b.buf, p...)
	if len(*b.buf) >= flushAt {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// begin opens a batch.
func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.buf = batchPool.Get().(*[]byte)
	b.mu.Unlock()
}

// flush closes the batch and writes what collected.
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.batching {
		return nil
	}
	err := b.flushLocked()
	b.batching = false
	*b.buf = (*b.buf)[:0]
	batchPool.Put(b.buf)
	b.buf = nil
	return err
}

func (b *batchConn) flushLocked() error {
	if len(*b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	return err
}

// hijacker hands gorilla's Upgrade a batchConn instead of the raw
// connection.
type hijacker struct {
	http.ResponseWriter
	conn *batchConn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &batchConn{Conn: c}
	return h.conn, brw, nil
}
