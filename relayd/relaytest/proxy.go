package relaytest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wschat/wschat/wire"
)

// Action is what a Proxy does with one WebSocket message.
type Action int

const (
	Pass      Action = iota // forward it
	Drop                    // forward nothing
	Duplicate               // forward it twice
	Reorder                 // forward it after the next message in the same direction
	Delay                   // forward it after Proxy.DelayBy
	Cut                     // close both sides of the connection
)

// Direction of a message through the proxy.
type Direction int

const (
	ToRelay  Direction = iota // client to relay
	ToClient                  // relay to client
)

// Policy picks the action for the n-th data message (counted from 0 per
// connection and direction, the handshake included). Control messages
// (close, ping, pong) always pass.
type Policy func(dir Direction, n int) Action

// Handshake is the number of messages each direction of a connection
// starts with before its first frame: Auth to the relay; Hello and the
// Welcome to the client.
var Handshake = map[Direction]int{ToRelay: 1, ToClient: 2}

// Random is a Policy that drops, duplicates, reorders and delays each
// message with the given probabilities, from a fixed seed; the handshake
// passes.
func Random(seed uint64, drop, dup, reorder, delay float64) Policy {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func(dir Direction, n int) Action {
		if n < Handshake[dir] {
			return Pass
		}
		mu.Lock()
		x := r.Float64()
		mu.Unlock()
		switch {
		case x < drop:
			return Drop
		case x < drop+dup:
			return Duplicate
		case x < drop+dup+reorder:
			return Reorder
		case x < drop+dup+reorder+delay:
			return Delay
		}
		return Pass
	}
}

// Proxy sits between clients and a relay on 127.0.0.1 and applies a
// Policy to every WebSocket message, so tests can see what a lossy,
// duplicating, reordering or slow network does to the protocol. (Frames
// are blinded with a keystream position per frame, so any drop, copy or
// swap desynchronises the connection: the side that notices closes it,
// and the clients must recover by reconnecting and resending.)
type Proxy struct {
	Addr    wire.RelayAddress // where clients connect: the proxy, with the relay's key
	DelayBy time.Duration     // for Delay; default 20 ms

	ln     net.Listener
	target string
	policy Policy

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu
}

// NewProxy starts a proxy in front of relay until the test ends.
func NewProxy(t testing.TB, relay wire.RelayAddress, policy Policy) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := relay.URL[len("ws://") : len(relay.URL)-1]
	p := &Proxy{ln: ln, target: host, policy: policy, DelayBy: 20 * time.Millisecond, conns: map[net.Conn]struct{}{}}
	p.Addr = wire.RelayAddress{URL: "ws://" + ln.Addr().String() + "/", Key: relay.Key}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, s) {
			return
		}
		p.wg.Add(2)
		go p.pump(s, c, ToRelay)
		go p.pump(c, s, ToClient)
	}
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// CutAll closes every connection through the proxy now.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Close stops the proxy and waits for its goroutines.
func (p *Proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// pump copies src to dst: the HTTP upgrade as it is, then WebSocket
// messages through the policy.
func (p *Proxy) pump(dst, src net.Conn, dir Direction) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	r := bufio.NewReader(src)
	head, err := readHead(r)
	if err != nil {
		return
	}
	if _, err := dst.Write(head); err != nil {
		return
	}
	msgs := make(chan []byte)
	go func() {
		defer close(msgs)
		for {
			m, err := readMessage(r)
			if err != nil {
				return
			}
			msgs <- m
		}
	}()
	defer func() {
		src.Close()
		for range msgs { // let the reader finish
		}
	}()
	var held []byte // a message being reordered: it goes after the next one
	n := 0
	for {
		var flush <-chan time.Time
		if held != nil {
			flush = time.After(4 * p.DelayBy) // no next message: let it go anyway
		}
		var m []byte
		select {
		case m = <-msgs:
			if m == nil {
				return
			}
		case <-flush:
			if _, err := dst.Write(held); err != nil {
				return
			}
			held = nil
			continue
		}
		if control(m) {
			if _, err := dst.Write(m); err != nil {
				return
			}
			continue
		}
		act := p.policy(dir, n)
		n++
		var out [][]byte
		switch act {
		case Drop:
		case Duplicate:
			out = [][]byte{m, m}
		case Reorder:
			if held == nil {
				held = m
				continue
			}
			out = [][]byte{m}
		case Delay:
			time.Sleep(p.DelayBy)
			out = [][]byte{m}
		case Cut:
			return
		default:
			out = [][]byte{m}
		}
		if held != nil {
			out, held = append(out, held), nil
		}
		for _, b := range out {
			if _, err := dst.Write(b); err != nil {
				return
			}
		}
	}
}

// readHead reads an HTTP head, up to and including the blank line.
func readHead(r *bufio.Reader) ([]byte, error) {
	var b bytes.Buffer
	for {
		line, err := r.ReadSlice('\n')
		b.Write(line)
		if err != nil {
			return nil, err
		}
		if string(line) == "\r\n" || string(line) == "\n" {
			return b.Bytes(), nil
		}
		if b.Len() > 16<<10 {
			return nil, errors.New("relaytest: HTTP head too long")
		}
	}
}

// readMessage reads one WebSocket message, its frames as they came
// (fragments included), and returns their bytes.
func readMessage(r *bufio.Reader) ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return nil, err
		}
		frame := append([]byte(nil), h[:]...)
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var x [2]byte
			if _, err := io.ReadFull(r, x[:]); err != nil {
				return nil, err
			}
			frame = append(frame, x[:]...)
			n = uint64(binary.BigEndian.Uint16(x[:]))
		case 127:
			var x [8]byte
			if _, err := io.ReadFull(r, x[:]); err != nil {
				return nil, err
			}
			frame = append(frame, x[:]...)
			n = binary.BigEndian.Uint64(x[:])
		}
		if h[1]&0x80 != 0 {
			n += 4 // the mask key
		}
		if n > 1<<20 {
			return nil, errors.New("relaytest: WebSocket frame too large")
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, err
		}
		frame = append(frame, body...)
		msg = append(msg, frame...)
		if h[0]&0x80 != 0 || h[0]&0x0f >= 8 { // FIN, or a control frame
			return msg, nil
		}
	}
}

// control reports whether m starts with a control frame.
func control(m []byte) bool { return m[0]&0x0f >= 8 }
