package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// The stdio transport: one JSON-RPC message per line in each direction.
// mcp-go's StdioServer passes each line through three goroutines and
// decodes it five times before the server sees it (80 µs of a 0.45 ms
// send_message call). Here one goroutine at a time reads; the one that
// reads a request serves it, and hands the reading on to a new goroutine
// first, so that the request goes on without a goroutine switch.
const (
	maxStdioLine     = 1 << 20 // bytes of one message; longer lines are answered with an error and skipped
	maxStdioRequests = 64      // requests served at once; the reader waits for a free slot
	stdioNoteQueue   = 64      // notifications waiting to be written (mcp-go drops what does not fit)
)

// stdioSessions numbers the stdio sessions of this process.
var stdioSessions atomic.Int64

// stdioSession is the one client of a ServeStdio call.
type stdioSession struct {
	id          string                         // static after construction
	notes       chan mcpgo.JSONRPCNotification // written by the server; read by ServeStdio's note writer
	initialized atomic.Bool
}

func (s *stdioSession) SessionID() string                                     { return s.id }
func (s *stdioSession) NotificationChannel() chan<- mcpgo.JSONRPCNotification { return s.notes }
func (s *stdioSession) Initialize()                                           { s.initialized.Store(true) }
func (s *stdioSession) Initialized() bool                                     { return s.initialized.Load() }

// stdioWriter writes whole messages, one a line, from several goroutines.
type stdioWriter struct {
	mu  sync.Mutex
	w   io.Writer // guarded by mu
	err error     // guarded by mu: the first write error; later writes are dropped
}

func (w *stdioWriter) write(msg any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	_, w.err = w.w.Write(append(b, '\n'))
	return w.err
}

// serveStdio serves the client on in and out until in ends or ctx does;
// then it cancels the requests in hand and waits for them.
func (s *Server) serveStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	sess := &stdioSession{id: fmt.Sprintf("stdio-%d", stdioSessions.Add(1)), notes: make(chan mcpgo.JSONRPCNotification, stdioNoteQueue)}
	if err := s.mcp.RegisterSession(ctx, sess); err != nil {
		return err
	}
	defer s.mcp.UnregisterSession(context.WithoutCancel(ctx), sess.id)
	ctx, cancel := context.WithCancel(s.mcp.WithContext(ctx, sess))
	w := &stdioWriter{w: out}
	work := &stdioWork{slots: make(chan struct{}, maxStdioRequests)}
	defer work.stop(cancel)
	work.wg.Go(func() {
		for {
			select {
			case n := <-sess.notes:
				if err := w.write(n); err != nil {
					s.log.Warn("mcp stdio: writing a notification", "err", err)
				}
			case <-ctx.Done():
				return
			}
		}
	})

	// The reader is not one of work's goroutines: a blocked read ends
	// only when in does (os.Stdin from a pipe takes no deadline). When
	// ctx ends first, it is left to discard what it still reads.
	read := make(chan error, 1)
	go s.readStdio(ctx, bufio.NewReaderSize(in, 64<<10), w, work, read)
	select {
	case err := <-read:
		return err
	case <-ctx.Done():
		return nil
	}
}

// stdioWork is what serveStdio waits for before it returns: the note
// writer and the requests in hand.
type stdioWork struct {
	wg      sync.WaitGroup
	slots   chan struct{} // static after construction: one per request served at once
	mu      sync.Mutex
	stopped bool // guarded by mu: no more work starts
}

// enter counts one more goroutine at work, unless stop has been called;
// it reports whether it did. The goroutine calls wg.Done when it is done.
func (w *stdioWork) enter() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return false
	}
	w.wg.Add(1)
	return true
}

// stop cancels the work in hand and waits for it.
func (w *stdioWork) stop(cancel context.CancelFunc) {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	cancel()
	w.wg.Wait()
}

// readStdio reads messages until in ends, and then sends why on done. It
// serves notifications itself, in order; at a request it starts the next
// reader and serves the request itself.
func (s *Server) readStdio(ctx context.Context, r *bufio.Reader, w *stdioWriter, work *stdioWork, done chan<- error) {
	for {
		line, err := readLine(r)
		if errors.Is(err, errLineTooLong) {
			w.write(jsonrpcError(nil, mcpgo.INVALID_REQUEST, fmt.Sprintf("message longer than %d bytes", maxStdioLine)))
			continue
		}
		if err != nil || ctx.Err() != nil {
			if err == io.EOF || ctx.Err() != nil {
				err = nil
			}
			done <- err
			return
		}
		if len(line) == 0 {
			continue
		}
		var head struct {
			Method string          `json:"method"`
			ID     json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			w.write(jsonrpcError(nil, mcpgo.PARSE_ERROR, "Parse error"))
			continue
		}
		switch {
		case head.Method == "":
			// A response: this server sends the client no requests.
		case head.ID == nil || string(head.ID) == "null":
			// A notification, in order with what follows; no answer.
			if !work.enter() {
				done <- nil
				return
			}
			s.handleStdio(ctx, line, nil)
			work.wg.Done()
		default:
			select {
			case work.slots <- struct{}{}:
			case <-ctx.Done():
				done <- nil
				return
			}
			if !work.enter() {
				<-work.slots
				done <- nil
				return
			}
			go s.readStdio(ctx, r, w, work, done)
			s.handleStdio(ctx, line, w)
			<-work.slots
			work.wg.Done()
			return
		}
	}
}

// handleStdio runs one message through mcp-go and writes the answer, if
// any, to w (nil for notifications).
func (s *Server) handleStdio(ctx context.Context, msg []byte, w *stdioWriter) {
	var resp mcpgo.JSONRPCMessage
	func() {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("mcp stdio: handler panicked", "panic", r)
				resp = jsonrpcError(requestID(msg), mcpgo.INTERNAL_ERROR, "internal error")
			}
		}()
		resp = s.mcp.HandleMessage(ctx, msg)
	}()
	if resp == nil || w == nil {
		return
	}
	if err := w.write(resp); err != nil {
		s.log.Warn("mcp stdio: writing an answer", "err", err)
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its end, in a buffer of its own.
// A line longer than maxStdioLine is skipped to its end and reported as
// errLineTooLong.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > maxStdioLine+2 {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return nil, err
			}
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF && len(line) > 0 {
			err = nil // a last line without its newline
		}
		return bytes.TrimSpace(line), err
	}
}

// requestID is msg's id, or nil.
func requestID(msg []byte) any {
	var head struct {
		ID any `json:"id"`
	}
	json.Unmarshal(msg, &head)
	return head.ID
}

func jsonrpcError(id any, code int, message string) mcpgo.JSONRPCMessage {
	return mcpgo.JSONRPCError{JSONRPC: mcpgo.JSONRPC_VERSION, ID: mcpgo.NewRequestId(id), Error: mcpgo.NewJSONRPCErrorDetails(code, message, nil)}
}
