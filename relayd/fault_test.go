package relayd_test

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/wire"
)

// faultProxy sits between clients and the relay on 127.0.0.1 and can cut
// a connection after so many client bytes, or turn it into a black hole
// (nothing forwarded either way, nothing closed: a half-open connection).
type faultProxy struct {
	ln       net.Listener
	target   string
	cutAfter atomic.Int64 // client->relay bytes to forward before cutting; 0 = never
	hole     atomic.Bool  // forward nothing from now on
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn // guarded by mu
}

func startProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(s, c, true)
			go p.pipe(c, s, false)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) pipe(dst, src net.Conn, fromClient bool) {
	defer p.wg.Done()
	buf := make([]byte, 4096)
	var sent int64
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		if p.hole.Load() {
			continue // swallowed; neither side hears anything
		}
		if cut := p.cutAfter.Load(); fromClient && cut > 0 && sent+int64(n) > cut {
			dst.Write(buf[:cut-sent])
			src.Close()
			dst.Close()
			return
		}
		sent += int64(n)
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}

func (p *faultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *faultProxy) addr(r *testRelay) wire.RelayAddress {
	return wire.RelayAddress{URL: "ws://" + p.ln.Addr().String() + "/", Key: r.addr.Key}
}

// numbered makes an opaque body that carries n.
func numbered(n int) []byte {
	b := make([]byte, wire.MinEnvelopeSize)
	binary.LittleEndian.PutUint32(b[4:], uint32(n))
	return b
}

func number(b []byte) int { return int(binary.LittleEndian.Uint32(b[4:])) }

// A client cut in the middle of a frame: the partial frame is dropped,
// the relay carries on, nothing leaks.
func TestClientCutMidFrame(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	p := startProxy(t, r.ln.Addr().String())
	alice, bob := newIdentity(t), newIdentity(t)
	bc := dial(t, r, bob, true)
	backlogDone(t, bc)
	c, err := relayconn.Dial(context.Background(), p.addr(r), alice, relayconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.cutAfter.Store(2000) // the handshake is ~400 bytes; the frame is 64 KiB
	c.SendData(bob.Public().ID(), 0, make([]byte, wire.MaxEnvelopeSize))
	bc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if in, err := bc.Read(); err == nil {
		t.Fatalf("bob got part of a cut frame: %+v", in.Header)
	}
	p.cutAfter.Store(0)
	healthy(t, r)
}

// A half-open receiving connection (the network silently drops everything)
// is closed after the idle timeout, and the frame that went into it is
// not lost: it is stored and comes on the next connection.
func TestHalfOpenConnection(t *testing.T) {
	limits := relayd.Limits{PingInterval: 200 * time.Millisecond, IdleTimeout: 1500 * time.Millisecond, AckTimeout: time.Hour}
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), limits, "")
	defer r.stop()
	p := startProxy(t, r.ln.Addr().String())
	alice, bob := newIdentity(t), newIdentity(t)
	bc, err := relayconn.Dial(context.Background(), p.addr(r), bob, relayconn.Options{Receive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	backlogDone(t, bc)
	p.hole.Store(true)
	ac := dial(t, r, alice, false)
	ac.SendData(bob.Public().ID(), 0, numbered(7))
	if e := custody(t, ac); e.Status != wire.StatusDelivered {
		t.Fatalf("custody %+v", e) // written into the black hole
	}
	// After the idle timeout the relay gives up on the connection and
	// stores the frame; bob's next connection gets it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := r.mb.Stats()
		if st.Frames == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the frame in the dead connection was never stored")
		}
		time.Sleep(50 * time.Millisecond)
	}
	bc2 := dial(t, r, bob, true)
	if in := readData(t, bc2); number(in.Body) != 7 {
		t.Fatalf("got %d", number(in.Body))
	}
}

// A receiver that stops reading: frames beyond its queue are stored, the
// relay cuts it after the write timeout, and every frame arrives later,
// none lost.
func TestSlowConsumer(t *testing.T) {
	limits := relayd.Limits{SendQueue: 16, WriteTimeout: 500 * time.Millisecond, AckTimeout: time.Hour, RateBytes: 1 << 30, RateBurst: 1 << 30}
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), limits, "")
	defer r.stop()
	alice, bob := newIdentity(t), newIdentity(t)
	slow := dial(t, r, bob, true)
	backlogDone(t, slow) // and then never reads again
	ac := dial(t, r, alice, false)
	const n = 3000
	big := make([]byte, 8<<10)
	go func() {
		for in, err := ac.Read(); err == nil; in, err = ac.Read() {
			_ = in // custody answers
		}
	}()
	for i := 0; i < n; i++ {
		b := append(numbered(i), big...)
		if _, err := ac.SendData(bob.Public().ID(), 0, b); err != nil {
			t.Fatal(err)
		}
	}
	// Other clients are served meanwhile.
	healthy(t, r)
	// Before the slow client goes away the relay has already stored what
	// did not fit its queue (or it cut the client after the write timeout).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, _ := r.mb.Stats(); st.Frames > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing was stored for a receiver that does not read")
		}
		time.Sleep(20 * time.Millisecond)
	}
	slow.Close()
	got := map[int]bool{}
	deadline = time.Now().Add(30 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		bc := dial(t, r, bob, true)
		for len(got) < n {
			bc.SetReadDeadline(time.Now().Add(2 * time.Second))
			in, err := bc.Read()
			if err != nil {
				break
			}
			if in.Command != nil {
				continue
			}
			got[number(in.Body)] = true
			bc.SendCommand(&wire.Command{Op: wire.OpAck, Acks: []uint64{in.Header.Index}})
		}
		bc.Close()
	}
	if len(got) != n {
		t.Fatalf("%d of %d frames arrived", len(got), n)
	}
}
