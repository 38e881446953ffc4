package relayd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/wschat/wschat/internal/netbatch"
	"github.com/wschat/wschat/wire"
)

// conn is one client connection. Its reader goroutine (run) owns the
// receive side: c.recv, the read deadline. Its writer goroutine (writeLoop)
// runs only while there is something to send, so an idle connection costs
// one goroutine; at most one writer runs at a time (c.writing), and it owns
// the send side: c.send and every data write to ws.
type conn struct {
	s  *Server
	ws *websocket.Conn
	bc *netbatch.Conn // under ws; the running writer opens and flushes batches
	ip string         // static: the slot taken at the upgrade (proxied connections), or ""

	// Set by the handshake, then static.
	peer    wire.PublicIdentity
	id      wire.RoutingID
	receive bool
	recv    *wire.Framer // owned by the reader
	send    *wire.Framer // owned by the running writer

	lastRead atomic.Int64 // unix nanoseconds of the last frame or pong
	lastPing atomic.Int64 // unix nanoseconds of the last ping the janitor sent
	limiter  *rate.Limiter

	mu          sync.Mutex
	ready       bool                 // guarded by mu: the handshake is done (the fields above are set)
	writing     bool                 // guarded by mu: a writer goroutine runs
	closed      bool                 // guarded by mu
	queue       []*delivery          // guarded by mu: data frames to write
	custody     []wire.CustodyEntry  // guarded by mu: answers to send
	cmds        []*wire.Command      // guarded by mu: other commands to send
	unacked     map[uint64]*delivery // guarded by mu: written, awaiting Ack, by frame index
	backlog     bool                 // guarded by mu: the mailbox may hold more for us (receipts only, on a send-only connection)
	cursor      uint64               // guarded by mu: last stored id sent on this connection
	sentStored  uint32               // guarded by mu: stored frames sent, for BacklogDone
	backlogDone bool                 // guarded by mu: BacklogDone was queued
	closeAfter  bool                 // guarded by mu: close once everything is written
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		if s.web != nil {
			s.web.ServeHTTP(w, r) // the web app
		} else {
			s.servePage(w, r)
		}
		return
	}
	if s.closing.Load() {
		s.metrics.refused(wire.ReasonShuttingDown)
		refuseHTTP(w, http.StatusServiceUnavailable, wire.ReasonShuttingDown, "the relay is restarting; try again in a few seconds")
		return
	}
	if s.conns.Load() >= int64(s.limits.MaxConns) {
		s.metrics.refused(wire.ReasonTooManyConns)
		refuseHTTP(w, http.StatusServiceUnavailable, wire.ReasonTooManyConns, "the relay has as many connections as it takes; try again later")
		return
	}
	// A connection through a trusted proxy counts now, under the client
	// address the proxy names; any other was counted when it was accepted.
	ip := ""
	if ac := acceptedConn(r); ac == nil || ac.proxied {
		ip = s.forwardedFor(r)
		if ac == nil {
			ip, _, _ = net.SplitHostPort(r.RemoteAddr)
		}
		if !s.ips.acquire(ip) {
			s.metrics.refused(wire.ReasonTooManyConns)
			refuseHTTP(w, http.StatusTooManyRequests, wire.ReasonTooManyConns, "too many connections from your address")
			return
		}
	}
	release := func() {
		if ip != "" {
			s.ips.release(ip)
		}
	}
	// The connection's writer batches on the netbatch.Conn under ws.
	hj := &netbatch.Hijacker{ResponseWriter: w}
	ws, err := s.upgrade.Upgrade(hj, r, nil)
	if err != nil {
		if ws == nil && hj.Conn != nil {
			hj.Conn.Close()
		}
		release()
		s.metrics.refused(wire.ReasonHandshakeFailed)
		return
	}
	c := &conn{s: s, ws: ws, bc: hj.Conn, ip: ip}
	c.lastRead.Store(s.now().UnixNano())
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ws.Close()
		release()
		return
	}
	s.all[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.conns.Add(1)
	// The handler returns now, so net/http drops its buffers for this
	// connection; the reader runs on its own goroutine.
	go c.run()
}

// run does the handshake, then hands the connection to a new reader
// goroutine: the handshake's cryptography grows a goroutine's stack to
// 8 KiB and more, which an idle reader would keep for its whole life.
func (c *conn) run() {
	if err := c.handshake(); err != nil {
		c.s.metrics.refused(wire.ReasonHandshakeFailed)
		c.s.log.Debug("handshake failed", "addr", c.ws.RemoteAddr().String(), "err", err)
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "handshake failed"), time.Now().Add(time.Second))
		c.cleanup()
		c.s.wg.Done()
		return
	}
	go c.read() // inherits the wait-group slot
}

func (c *conn) read() {
	defer c.s.wg.Done()
	defer c.cleanup()
	c.s.metrics.connected(c.receive, +1)
	defer c.s.metrics.connected(c.receive, -1)
	c.s.log.Debug("connected", "id", c.id, "addr", c.ws.RemoteAddr().String(), "receive", c.receive)
	err := c.readLoop()
	c.s.log.Debug("disconnected", "id", c.id, "err", err)
}

func (c *conn) handshake() error {
	l := c.s.limits
	deadline := time.Now().Add(l.HandshakeTimeout)
	c.ws.SetReadDeadline(deadline)
	c.ws.SetWriteDeadline(deadline)
	c.ws.SetReadLimit(wire.AuthSize)
	rh, hello, err := wire.NewRelayHandshake(c.s.id, rand.Reader)
	if err != nil {
		return err
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, hello); err != nil {
		return err
	}
	mt, auth, err := c.ws.ReadMessage()
	if err != nil {
		return err
	}
	if mt != websocket.BinaryMessage {
		return errors.New("text message in handshake")
	}
	res, err := rh.Finish(auth)
	if err != nil {
		return err
	}
	c.peer, c.id, c.receive = res.Peer, res.Peer.ID(), res.Receive
	c.recv, c.send = res.Session.Recv, res.Session.Send
	if c.receive {
		// A receiving connection registers its identity (or renews the
		// registration) before the Welcome: a client that saw the
		// Welcome of one is registered (wschat keygen relies on it).
		c.s.register(c.id)
	}
	c.limiter = rate.NewLimiter(rate.Limit(l.RateBytes), l.RateBurst)
	c.ws.SetReadLimit(int64(l.MaxFrameSize))
	c.ws.SetWriteDeadline(time.Time{})
	c.ws.SetPongHandler(func(string) error {
		c.lastRead.Store(c.s.now().UnixNano())
		return c.ws.SetReadDeadline(time.Now().Add(l.IdleTimeout))
	})
	var flags byte
	if c.receive {
		flags = wire.ConnReceive
	}
	c.mu.Lock()
	c.ready = true
	c.cmds = append(c.cmds, &wire.Command{
		Op: wire.OpWelcome, Version: wire.ProtocolVersion, ConnFlags: flags,
		Time: uint64(c.s.now().UnixMilli()), MaxFrameSize: uint32(l.MaxFrameSize), ID: c.id,
	})
	// Every connection collects stored receipts; a receiving one the
	// rest of the backlog as well. A send-only connection reads its first
	// batch now, so that its writer sends it before the custody answer
	// to the frame that may follow Auth.
	c.backlog = true
	if !c.receive {
		c.mu.Unlock()
		receipts, _ := c.fetchBacklog()
		c.mu.Lock()
		c.queue = append(receipts, c.queue...)
	}
	if c.receive {
		// In the hub before the writer starts: once the client has read
		// BacklogDone, a frame for it must find this connection, not the
		// mailbox. (Lock order c.mu, then the hub's shard: the hub never
		// holds a shard while it locks a connection.)
		c.s.hub.Add(c)
	}
	c.kickLocked()
	c.mu.Unlock()
	return nil
}

// readLoop reads frames until the connection fails. Everything a client
// sends is checked before it costs the relay more than a read: the size by
// gorilla's read limit before the body, the rate by the token bucket
// (a connection over its rate is simply read more slowly), the header by
// the framer.
func (c *conn) readLoop() error {
	l := c.s.limits
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var deadline time.Time // the read deadline set last
	var debt int           // bytes read and not yet charged to the limiter
	now := c.s.now()       // one clock reading per frame (it costs as much as routing a frame's header)
	for {
		// Moving the deadline costs a timer update: do it when an eighth
		// of the idle timeout has passed, not for every frame. (now is
		// when the previous frame arrived: close enough.)
		if now.Add(l.IdleTimeout - l.IdleTimeout/8).After(deadline) {
			deadline = now.Add(l.IdleTimeout)
			c.ws.SetReadDeadline(deadline)
		}
		mt, r, err := c.ws.NextReader()
		if err != nil {
			return err
		}
		if mt != websocket.BinaryMessage {
			c.s.metrics.refused(wire.ReasonMalformed)
			c.closeWith(websocket.CloseUnsupportedData, "binary frames only")
			return errors.New("text frame")
		}
		rs := readPool.Get().(*readScratch)
		err = c.frame(ctx, r, rs, &debt, &now)
		rs.buf.Reset()
		if rs.small() {
			readPool.Put(rs)
		}
		if err != nil {
			return err
		}
	}
}

// readScratch is what the reader works with for one frame, pooled so
// that the reader allocates nothing per frame it only passes on and a
// connection keeps none of it while idle.
type readScratch struct {
	buf   bytes.Buffer
	cmd   wire.Command // the frame's command, for one addressed to the relay
	acked []*delivery  // the deliveries an Ack completes
	rcvs  [4]*conn     // the recipient's receiving connections (route)
}

var readPool = sync.Pool{New: func() any { return new(readScratch) }}

// small says whether rs is worth keeping in the pool: a client can make
// any of its parts large once (a big frame, a command of 4096 entries).
func (rs *readScratch) small() bool {
	return rs.buf.Cap() <= maxPooledRead && cap(rs.cmd.Acks) <= maxPooledEntries &&
		cap(rs.cmd.Custody) <= maxPooledEntries && cap(rs.acked) <= maxPooledEntries
}

const maxPooledEntries = 1024

// framePool holds the writers' frame buffers, for the same reason.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledFrame = 8 << 10

const maxPooledRead = 8 << 10

// rateChunk is how many bytes are read before they are charged to the
// rate limiter at once (one limiter call per frame would cost more than
// routing the frame).
const rateChunk = 16 << 10

// frame reads one frame and acts on it; *now becomes the time it arrived.
func (c *conn) frame(ctx context.Context, r io.Reader, rs *readScratch, debt *int, nowp *time.Time) error {
	buf := &rs.buf
	if _, err := buf.ReadFrom(r); err != nil {
		if errors.Is(err, websocket.ErrReadLimit) {
			c.s.metrics.refused(wire.ReasonTooLarge)
		}
		return err
	}
	frame := buf.Bytes()
	now := c.s.now()
	*nowp = now
	c.lastRead.Store(now.UnixNano())
	if *debt += len(frame); *debt >= rateChunk {
		if err := c.limiter.WaitN(ctx, min(*debt, c.s.limits.RateBurst)); err != nil {
			return err
		}
		*debt = 0
	}
	h, err := c.recv.OpenHeader(frame)
	if err != nil {
		c.s.metrics.refused(wire.ReasonMalformed)
		c.closeWith(websocket.ClosePolicyViolation, "bad frame")
		return err
	}
	if h.ID.IsRelay() {
		err := c.recv.OpenCommandInto(&rs.cmd, h, frame)
		if errors.Is(err, wire.ErrUnknownCommand) {
			return nil
		}
		if err != nil {
			c.s.metrics.refused(wire.ReasonMalformed)
			c.closeWith(websocket.ClosePolicyViolation, "bad command")
			return err
		}
		c.command(rs)
		return nil
	}
	c.s.metrics.frameIn(len(frame))
	// Start this connection's writer before routing starts the
	// recipients': the runtime runs the goroutine started last first, and
	// the frame to the recipient should leave before the custody answer.
	c.mu.Lock()
	c.kickLocked()
	c.mu.Unlock()
	e := c.s.route(c, h, frame[wire.FrameHeaderSize:], now, rs.rcvs[:0])
	c.mu.Lock()
	c.custody = append(c.custody, e)
	c.kickLocked()
	c.mu.Unlock()
	return nil
}

// command acts on rs.cmd, a command to the relay; it keeps nothing of it.
func (c *conn) command(rs *readScratch) {
	cmd := &rs.cmd
	switch cmd.Op {
	case wire.OpAck:
		acked := rs.acked[:0]
		defer func() { rs.acked = acked[:0] }()
		c.mu.Lock()
		for _, i := range cmd.Acks {
			if d, ok := c.unacked[i]; ok {
				delete(c.unacked, i)
				acked = append(acked, d)
			}
		}
		if len(acked) > 0 && c.backlog {
			c.kickLocked() // room for more of the backlog
		}
		c.mu.Unlock()
		c.s.acked(c.id, acked)
		clear(acked) // the pool must not keep deliveries alive
	case wire.OpPing:
		c.mu.Lock()
		c.cmds = append(c.cmds, &wire.Command{Op: wire.OpPong, Token: cmd.Token})
		c.kickLocked()
		c.mu.Unlock()
	case wire.OpPong:
		// lastRead is already updated.
	default:
		// Relay-bound commands this relay does not act on.
	}
}

// enqueue queues a data frame; false when the queue is full or the
// connection is closing.
func (c *conn) enqueue(d *delivery) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.closeAfter || len(c.queue) >= c.s.limits.SendQueue {
		return false
	}
	c.queue = append(c.queue, d)
	c.kickLocked()
	return true
}

// poke tells a receiving connection that the mailbox holds something new.
func (c *conn) poke() {
	c.mu.Lock()
	c.backlog = true
	c.kickLocked()
	c.mu.Unlock()
}

func (c *conn) kickLocked() {
	if c.writing || c.closed {
		return
	}
	c.writing = true
	c.s.wg.Add(1)
	go c.writeLoop()
}

// restart asks the client to reconnect later and closes the connection
// once that is written.
func (c *conn) restart(after time.Duration) {
	c.mu.Lock()
	if !c.ready {
		c.mu.Unlock()
		c.ws.Close() // mid-handshake: nothing to say yet
		return
	}
	c.cmds = append(c.cmds, &wire.Command{Op: wire.OpRestarting, RetryAfter: uint32(after.Milliseconds()), TryFor: uint32((5 * time.Minute).Milliseconds())})
	c.closeAfter = true
	c.kickLocked()
	c.mu.Unlock()
}

func (c *conn) closeWith(code int, reason string) {
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	c.ws.Close()
}

// cleanup runs when the reader ends: the connection leaves the hub, and
// every frame it held but had not had acknowledged goes back to the
// relay's custody (stored, unless another connection acknowledges it).
func (c *conn) cleanup() {
	if c.receive {
		c.s.hub.Remove(c)
		c.s.register(c.id) // the registration lasts from its last receiving connection
	}
	c.mu.Lock()
	c.closed = true
	queue, unacked := c.queue, c.unacked
	c.queue, c.unacked = nil, nil
	c.mu.Unlock()
	c.ws.Close()
	for _, d := range queue {
		c.s.released(d)
	}
	for _, d := range unacked {
		c.s.released(d)
	}
	c.s.mu.Lock()
	delete(c.s.all, c)
	c.s.mu.Unlock()
	if c.ip != "" {
		c.s.ips.release(c.ip)
	}
	c.s.conns.Add(-1)
}

// writeLoop writes what is queued and exits when nothing is left. A write
// error closes the connection (the reader then cleans up).
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	var pending []*delivery // taken from the queue, not yet written
	defer func() {
		for _, d := range pending {
			c.s.released(d)
		}
	}()
	fb := framePool.Get().(*[]byte) // a writer runs for every burst: it keeps no buffer between
	frame := *fb
	defer func() {
		if cap(frame) <= maxPooledFrame {
			*fb = frame[:0]
			framePool.Put(fb)
		}
	}()
	c.bc.Begin()
	defer c.bc.Flush()
	for {
		if err := c.bc.Flush(); err != nil {
			c.ws.Close()
			return
		}
		c.bc.Begin()
		c.mu.Lock()
		custody, cmds := c.custody, c.cmds
		c.custody, c.cmds = nil, nil
		pending, c.queue = c.queue, nil
		var after *wire.Command // BacklogDone, written after the backlog
		if len(custody)+len(cmds)+len(pending) == 0 && c.backlog && !c.closed && !c.closeAfter && len(c.unacked) < 4*c.s.limits.BacklogBatch {
			c.mu.Unlock()
			pending, after = c.fetchBacklog()
			c.mu.Lock()
		}
		if c.closed || len(custody)+len(cmds)+len(pending) == 0 && after == nil {
			closeNow := c.closeAfter && !c.closed
			c.writing = false
			c.mu.Unlock()
			if closeNow {
				c.bc.Flush() // the Restarting notice, before the close
				c.closeWith(websocket.CloseServiceRestart, "relay restarting")
			}
			return
		}
		c.mu.Unlock()

		c.ws.SetWriteDeadline(time.Now().Add(c.s.limits.WriteTimeout))
		writeCmd := func(cmd *wire.Command) bool {
			var err error
			if frame, _, err = c.send.AppendCommand(frame[:0], cmd); err != nil {
				c.ws.Close()
				return false
			}
			if err := c.ws.WriteMessage(websocket.BinaryMessage, frame); err != nil {
				c.ws.Close()
				return false
			}
			return true
		}
		for _, cmd := range cmds { // first: the Welcome comes before anything else
			if !writeCmd(cmd) {
				return
			}
		}
		writeCustody := func() bool {
			for len(custody) > 0 {
				n := min(len(custody), wire.MaxCommandEntries)
				if !writeCmd(&wire.Command{Op: wire.OpCustody, Custody: custody[:n]}) {
					return false
				}
				custody = custody[n:]
			}
			return true
		}
		// A send-only connection gets its stored receipts (fetched in the
		// handshake) before any custody answer: a one-shot sender that
		// closes at its answer has collected them by then.
		if c.receive && !writeCustody() {
			return
		}
		for len(pending) > 0 {
			d := pending[0]
			frame = append(append(frame[:0], make([]byte, wire.FrameHeaderSize)...), d.body...)
			idx, err := c.send.SealHeader(frame, d.from, d.flags)
			if err != nil {
				c.ws.Close()
				return
			}
			if d.flags&wire.FlagEphemeral == 0 {
				c.mu.Lock()
				if c.closed {
					c.mu.Unlock()
					return // the deferred release hands pending back
				}
				if c.unacked == nil {
					c.unacked = make(map[uint64]*delivery)
				}
				c.unacked[idx] = d
				c.mu.Unlock()
			}
			pending = pending[1:]
			if err := c.ws.WriteMessage(websocket.BinaryMessage, frame); err != nil {
				c.ws.Close()
				return
			}
			c.s.metrics.frameOut(len(frame), d.storedID != 0)
		}
		if !c.receive && !writeCustody() {
			return
		}
		if after != nil {
			var err error
			if frame, _, err = c.send.AppendCommand(frame[:0], after); err != nil {
				c.ws.Close()
				return
			}
			if err := c.ws.WriteMessage(websocket.BinaryMessage, frame); err != nil {
				c.ws.Close()
				return
			}
		}
	}
}

// fetchBacklog reads the next stored frames for this connection, and
// BacklogDone when they are the last (on a receiving connection; a
// send-only one collects receipts and gets no BacklogDone). Called by the
// writer without c.mu.
func (c *conn) fetchBacklog() ([]*delivery, *wire.Command) {
	c.mu.Lock()
	cursor := c.cursor
	c.mu.Unlock()
	frames, err := c.s.mailbox.Pending(c.id, cursor, c.s.limits.BacklogBatch, !c.receive, c.s.now())
	if err != nil {
		c.s.logs.error("mailbox read failed", "err", err)
		c.s.metrics.refused(wire.ReasonInternal)
		frames = nil
	}
	out := make([]*delivery, 0, len(frames))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range frames {
		var flags byte
		if f.Receipt {
			flags = wire.FlagReceipt
		}
		out = append(out, &delivery{to: c.id, from: wire.UnnamedID, flags: flags, body: f.Body, at: f.StoredAt, state: stateStored, storedID: f.ID})
		c.cursor = max(c.cursor, f.ID)
	}
	c.sentStored += uint32(len(frames))
	var done *wire.Command
	if len(frames) < c.s.limits.BacklogBatch {
		c.backlog = false
		if !c.backlogDone && c.receive {
			c.backlogDone = true
			done = &wire.Command{Op: wire.OpBacklogDone, Count: c.sentStored}
		}
	}
	return out, done
}

// register registers id on its receiving connection, or renews it.
func (s *Server) register(id wire.RoutingID) {
	if err := s.mailbox.Register(id, s.now()); err != nil {
		if errors.Is(err, ErrStorageFull) {
			s.metrics.refused(wire.ReasonStorageFull)
			return
		}
		if !errors.Is(err, ErrMailboxClosed) {
			s.logs.error("registration failed", "err", err)
		}
	}
}
