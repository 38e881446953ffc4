// Package relayconn is one authenticated connection to a wschat relay:
// the WebSocket dial, the relay handshake (PROTOCOL.md §4), and frames in
// and out (§5, §6). It knows nothing of stores, outboxes or contacts; the
// client library (bridge) builds those on it, and relayd's tests and
// benchmarks use it to play clients.
package relayconn

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wschat/wschat/internal/netbatch"
	"github.com/wschat/wschat/wire"
)

// DefaultTimeout bounds a Dial, from TCP connect to the relay's Welcome.
const DefaultTimeout = 10 * time.Second

// ErrRelayAuth: the relay did not prove it holds the pinned key (or is not
// a wschat relay).
var ErrRelayAuth = errors.New("the relay's key does not match the address (or it is not a wschat relay)")

// Conn is one authenticated connection to a relay. Send methods may be
// called from several goroutines; Read from one.
type Conn struct {
	ws   *websocket.Conn // static after Dial
	self wire.PublicIdentity
	nc   *netbatch.Conn // under ws: batches for SendBatch; static after Dial

	welcome *wire.Command // owned by the reader: set by Dial, or by the first Read after an early Dial
	recv    *wire.Framer  // owned by the reader

	wmu     sync.Mutex   // guards send, scratch and writes to ws
	send    *wire.Framer // guarded by wmu
	scratch []byte       // guarded by wmu: the frame being written
}

// Options tune Dial. The zero value is fine.
type Options struct {
	Receive bool          // receive the identity's incoming frames on this connection
	Timeout time.Duration // for the whole handshake; default DefaultTimeout
	Header  http.Header   // extra HTTP headers (tests)
	TLS     *tls.Config   // for wss:// relays; nil: the system's roots

	// Early returns as soon as Auth is written, without waiting for the
	// relay's Welcome: a frame sent at once saves a round trip
	// (PROTOCOL.md §4). The first Read checks the Welcome and fails with
	// ErrRelayAuth if the relay did not prove its key; until then nothing
	// from the relay is trusted, and frames sent go nowhere else (only the
	// holder of the relay key can unblind them).
	Early bool
}

// Dial connects to the relay at addr, runs the handshake as id, and waits
// for the relay's Welcome, which proves the relay holds addr's key (unless
// opt.Early). A cancelled ctx ends a dial stuck anywhere in between.
func Dial(ctx context.Context, addr wire.RelayAddress, id *wire.Identity, opt Options) (*Conn, error) {
	if opt.Timeout == 0 {
		opt.Timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	d := websocket.Dialer{
		HandshakeTimeout: opt.Timeout,
		Subprotocols:     []string{wire.Subprotocol},
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		Proxy:            http.ProxyFromEnvironment,
		TLSClientConfig:  opt.TLS,
	}
	var nc *netbatch.Conn
	d.NetDialContext = netbatch.Dialer(func(c *netbatch.Conn) { nc = c })
	ws, resp, err := d.DialContext(ctx, addr.URL, opt.Header)
	if err != nil {
		return nil, dialError(addr.URL, resp, err)
	}
	// The handshake's reads and writes have ctx's deadline; a cancelled
	// ctx (a signal, an abandoned dial) closes the connection under them.
	stop := context.AfterFunc(ctx, func() { ws.NetConn().Close() })
	c, err := handshake(ctx, ws, id, addr.Key, opt.Receive, opt.Early)
	if !stop() && ctx.Err() != nil {
		err = fmt.Errorf("relay handshake with %s: %w", addr.URL, context.Cause(ctx))
	}
	if err != nil {
		ws.Close()
		return nil, err
	}
	c.nc = nc
	return c, nil
}

// ConnRefusedError: the relay answered the connection with an HTTP
// refusal instead of upgrading it (PROTOCOL.md §4, "Refused
// connections"): too many connections from this address, or the relay is
// at its limit or restarting.
type ConnRefusedError struct {
	URL    string
	Status int         // the HTTP status, such as 429
	Reason wire.Reason // from the body's label; ReasonNone if it had none
	Text   string      // the relay's words, at most 200 bytes, printable ASCII only
}

func (e *ConnRefusedError) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("relay %s refused the connection: %s", e.URL, e.Text)
	}
	return fmt.Sprintf("relay %s refused the connection (HTTP %d)", e.URL, e.Status)
}

// dialError turns a failed WebSocket dial into an error that says what
// the relay answered, if it answered.
func dialError(url string, resp *http.Response, err error) error {
	if resp == nil || !errors.Is(err, websocket.ErrBadHandshake) {
		return fmt.Errorf("connecting to %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	e := &ConnRefusedError{URL: url, Status: resp.StatusCode}
	line, _, _ := strings.Cut(string(b), "\n")
	if label, words, ok := strings.Cut(line, ": "); ok {
		if r, known := wire.ParseReason(label); known {
			e.Reason, line = r, words
		}
	}
	e.Text = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1 // the relay's words reach a terminal: nothing but printable ASCII
		}
		return r
	}, line)
	return e
}

func handshake(ctx context.Context, ws *websocket.Conn, id *wire.Identity, key wire.RelayKey, receive, early bool) (*Conn, error) {
	deadline, _ := ctx.Deadline()
	ws.SetReadDeadline(deadline)
	ws.SetWriteDeadline(deadline)
	ws.SetReadLimit(wire.HelloSize)
	mt, hello, err := ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("relay hello: %w", err)
	}
	if mt != websocket.BinaryMessage {
		return nil, fmt.Errorf("relay hello: %w", wire.ErrHandshakeMalformed)
	}
	var flags byte
	if receive {
		flags = wire.ConnReceive
	}
	auth, sess, err := wire.ClientHandshake(id, key, flags, hello, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("relay hello: %w", err)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, auth); err != nil {
		return nil, fmt.Errorf("sending auth: %w", err)
	}
	ws.SetReadLimit(wire.MaxFrameSize)
	c := &Conn{ws: ws, self: id.Public(), send: sess.Send, recv: sess.Recv}
	if !early {
		if err := c.readWelcome(); err != nil {
			return nil, err
		}
	}
	ws.SetReadDeadline(time.Time{})
	ws.SetWriteDeadline(time.Time{})
	return c, nil
}

// readWelcome reads the relay's first frame, which must be a Welcome
// that opens under the session keys and names our routing id.
func (c *Conn) readWelcome() error {
	_, frame, err := c.ws.ReadMessage()
	if err != nil {
		// A relay that cannot read Auth (another key) closes the connection.
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code == websocket.ClosePolicyViolation {
			return ErrRelayAuth
		}
		return fmt.Errorf("waiting for the relay's welcome: %w", err)
	}
	h, err := c.recv.OpenHeader(frame)
	if err != nil || !h.ID.IsRelay() {
		return ErrRelayAuth
	}
	w, err := c.recv.OpenCommand(h, frame)
	if err != nil || w.Op != wire.OpWelcome {
		return ErrRelayAuth
	}
	if w.ID != c.self.ID() {
		return fmt.Errorf("relay computed routing id %s, want %s", w.ID, c.self.ID())
	}
	c.welcome = w
	return nil
}

// Welcome is the relay's Welcome command (its clock, its frame limit).
// After an early Dial it is nil until the first Read; call it from the
// reader.
func (c *Conn) Welcome() *wire.Command { return c.welcome }

// SendData sends a data frame to a peer and returns its index, which the
// relay's Custody answer names.
func (c *Conn) SendData(to wire.RoutingID, flags byte, body []byte) (uint64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sendDataLocked(to, flags, body)
}

func (c *Conn) sendDataLocked(to wire.RoutingID, flags byte, body []byte) (uint64, error) {
	c.scratch = append(append(c.scratch[:0], make([]byte, wire.FrameHeaderSize)...), body...)
	i, err := c.send.SealHeader(c.scratch, to, flags)
	if err != nil {
		return 0, err
	}
	err = c.ws.WriteMessage(websocket.BinaryMessage, c.scratch)
	if cap(c.scratch) > maxScratch {
		c.scratch = nil
	}
	return i, err
}

// maxScratch is the largest frame buffer a Conn keeps between sends.
const maxScratch = 4 << 10

// OutFrame is one data frame for SendBatch.
type OutFrame struct {
	To    wire.RoutingID
	Flags byte
	Body  []byte
}

// SendBatch sends frames in order, coalesced into as few writes to the
// network as their size allows (one for a burst of small frames), and
// returns the index of the first: frame i has index first+i. On an error
// some of the frames may have been sent; the connection is then broken.
func (c *Conn) SendBatch(frames []OutFrame) (first uint64, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	first = c.send.Next()
	if c.nc != nil {
		c.nc.Begin()
	}
	for _, f := range frames {
		if _, err = c.sendDataLocked(f.To, f.Flags, f.Body); err != nil {
			break
		}
	}
	if c.nc != nil {
		if ferr := c.nc.Flush(); err == nil {
			err = ferr
		}
	}
	return first, err
}

// SendRaw writes bytes as one WebSocket message, bypassing the framer:
// for tests that play a hostile client.
func (c *Conn) SendRaw(msg []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.BinaryMessage, msg)
}

// SendCommand sends a relay command (Ack, Ping).
func (c *Conn) SendCommand(cmd *wire.Command) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	frame, _, err := c.send.AppendCommand(nil, cmd)
	if err != nil {
		return err
	}
	return c.ws.WriteMessage(websocket.BinaryMessage, frame)
}

// Incoming is one frame from the relay: a relay command, or a data frame
// from a peer (Body is the envelope, not yet opened).
type Incoming struct {
	Header  wire.Header
	Command *wire.Command // set for frames from the relay
	Body    []byte        // set for data frames
}

// Read returns the next frame. A frame that does not authenticate, or any
// read error, ends the connection. Commands of ops this version does not
// know are skipped (PROTOCOL.md §6).
func (c *Conn) Read() (Incoming, error) {
	if c.welcome == nil {
		if err := c.readWelcome(); err != nil {
			return Incoming{}, err
		}
	}
	for {
		mt, frame, err := c.ws.ReadMessage()
		if err != nil {
			return Incoming{}, err
		}
		if mt != websocket.BinaryMessage {
			return Incoming{}, errors.New("relay sent a text message")
		}
		h, err := c.recv.OpenHeader(frame)
		if err != nil {
			return Incoming{}, err
		}
		if !h.ID.IsRelay() {
			return Incoming{Header: h, Body: frame[wire.FrameHeaderSize:]}, nil
		}
		cmd, err := c.recv.OpenCommand(h, frame)
		if errors.Is(err, wire.ErrUnknownCommand) {
			continue
		}
		if err != nil {
			return Incoming{}, err
		}
		return Incoming{Header: h, Command: cmd}, nil
	}
}

// SetReadDeadline bounds the next Read.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// Close closes the connection.
func (c *Conn) Close() error {
	// WriteControl may run beside a blocked data write.
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return c.ws.Close()
}
