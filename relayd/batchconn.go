package relayd

import (
	"bufio"
	"errors"
	"net"
	"net/http"

	"github.com/wschat/wschat/internal/netbatch"
)

// hijacker hands gorilla's Upgrade a netbatch.Conn instead of the raw
// connection: the connection's writer opens a batch, writes the frames and
// custody answers it has, and flushes them in one system call (the relay's
// main cost per frame).
type hijacker struct {
	http.ResponseWriter
	conn *netbatch.Conn
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
	h.conn = netbatch.New(c)
	return h.conn, brw, nil
}
