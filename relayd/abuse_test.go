package relayd_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/wire"
)

func wsURL(r *testRelay) string { return r.addr.URL }

// rawDial opens a WebSocket to the relay without a handshake.
func rawDial(t testing.TB, r *testRelay) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(r), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// expectClosed reads until the relay closes the connection.
func expectClosed(t testing.TB, ws *websocket.Conn) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("relay did not close the connection")
			}
			return
		}
	}
}

// healthy checks that the relay still serves honest clients.
func healthy(t testing.TB, r *testRelay) {
	t.Helper()
	alice, bob := newIdentity(t), newIdentity(t)
	bc := dial(t, r, bob, true)
	backlogDone(t, bc)
	ac := dial(t, r, alice, false)
	ac.SendData(bob.Public().ID(), 0, body(1))
	if e := custody(t, ac); e.Status != wire.StatusDelivered {
		t.Fatalf("honest client after abuse: %+v", e)
	}
	readData(t, bc)
}

func TestGarbageBeforeHandshake(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	for _, junk := range [][]byte{nil, {0x02}, bytes.Repeat([]byte{0xff}, wire.AuthSize), bytes.Repeat([]byte{0x02, 0x01}, 10000)} {
		ws := rawDial(t, r)
		ws.ReadMessage() // Hello
		ws.WriteMessage(websocket.BinaryMessage, junk)
		expectClosed(t, ws)
	}
	ws := rawDial(t, r)
	ws.ReadMessage()
	ws.WriteMessage(websocket.TextMessage, []byte("hello?"))
	expectClosed(t, ws)
	healthy(t, r)
}

func TestSlowlorisHandshake(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{HandshakeTimeout: 300 * time.Millisecond}, "")
	defer r.stop()
	ws := rawDial(t, r)
	start := time.Now()
	expectClosed(t, ws) // says nothing after Hello
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
	// A half-open TCP connection that never upgrades is cut by the HTTP
	// header timeout; meanwhile the relay serves others.
	c, err := net.Dial("tcp", r.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	healthy(t, r)
}

func TestOversizedAndBadFrames(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	id := newIdentity(t)
	for name, send := range map[string]func(c *relayconn.Conn) error{
		"oversized": func(c *relayconn.Conn) error { return c.SendRaw(make([]byte, wire.MaxFrameSize+1)) },
		"short":     func(c *relayconn.Conn) error { return c.SendRaw(make([]byte, 3)) },
		"garbage":   func(c *relayconn.Conn) error { return c.SendRaw(bytes.Repeat([]byte{0x5a}, 300)) },
	} {
		c := dial(t, r, id, false)
		if err := send(c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, err := c.Read(); err != nil {
				break // closed, as it should be
			}
		}
	}
	healthy(t, r)
}

// Every connection from one address counts from the moment it is
// accepted: past the cap the relay answers 429 with words a client shows,
// past twice the cap it closes at once; the slots come back.
func TestConnectionCapPerIP(t *testing.T) {
	const limit = 20
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{MaxConnsPerIP: limit}, "")
	defer r.stop()
	// Sockets that never send a request hold slots too (slowloris).
	var raw []net.Conn
	for range limit / 2 {
		c, err := net.Dial("tcp", r.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, c)
	}
	var mu sync.Mutex
	var conns []*websocket.Conn
	answered, dropped := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws, resp, err := websocket.DefaultDialer.Dial(wsURL(r), nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				conns = append(conns, ws)
			case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
				b, _ := io.ReadAll(resp.Body)
				if !strings.HasPrefix(string(b), "too_many_connections: too many connections from your address") {
					t.Errorf("429 body %q", b)
				}
				answered++
			default:
				dropped++
			}
		}()
	}
	wg.Wait()
	if len(conns) != limit-len(raw) || answered == 0 || len(conns)+answered+dropped != 200 {
		t.Fatalf("%d accepted, %d answered 429, %d dropped; want %d accepted", len(conns), answered, dropped, limit-len(raw))
	}
	// A client hears the refusal in words.
	_, err := relayconn.Dial(context.Background(), r.addr, newIdentity(t), relayconn.Options{})
	var re *relayconn.ConnRefusedError
	if !errors.As(err, &re) || re.Reason != wire.ReasonTooManyConns {
		t.Fatalf("dial over the cap: %v", err)
	}
	for _, c := range conns {
		c.Close()
	}
	for _, c := range raw {
		c.Close()
	}
	// The slots come back once the connections are gone.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := relayconn.Dial(context.Background(), r.addr, newIdentity(t), relayconn.Options{})
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after closing: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Browsers may connect from any page by default: connections are
// authenticated by their keys, not by anything a browser adds on its own.
// With --allow-origin, only those origins and the relay's own host.
func TestOriginChecked(t *testing.T) {
	open := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer open.stop()
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(open), http.Header{"Origin": {"http://127.0.0.1:9999"}})
	if err != nil {
		t.Fatalf("another origin, no allow list: %v", err)
	}
	ws.Close()

	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{AllowedOrigins: []string{"https://app.example"}}, "")
	defer r.stop()
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(r), http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v", err, resp)
	}
	for _, origin := range []string{"https://app.example", "http://" + strings.TrimSuffix(strings.TrimPrefix(wsURL(r), "ws://"), "/")} {
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(r), http.Header{"Origin": {origin}})
		if err != nil {
			t.Fatalf("allowed origin %s: %v", origin, err)
		}
		ws.Close()
	}
}

// A flood from one client is slowed to its rate; others are unaffected.
func TestFloodIsRateLimited(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{MaxFrames: 1 << 20}), relayd.Limits{RateBytes: 64 << 10, RateBurst: wire.MaxFrameSize}, "")
	defer r.stop()
	flooder := dial(t, r, newIdentity(t), false)
	victim := newIdentity(t).Public().ID()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	sent := 0
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := flooder.SendData(victim, 0, make([]byte, 16<<10)); err != nil {
				return
			}
			sent++
		}
	}()
	start := time.Now()
	healthy(t, r)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("honest client took %v beside a flood", d)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	flooder.Close()
	wg.Wait()
	st, _ := r.mb.Stats()
	// 64 KiB/s plus one burst over ~0.5-1 s: far fewer than were written.
	if st.Bytes > 400<<10 {
		t.Fatalf("relay accepted %d bytes from a client limited to 64 KiB/s", st.Bytes)
	}
}

// FuzzRelayPreAuth sends arbitrary first messages to a live relay: it must
// refuse each (close the connection) and keep serving.
func FuzzRelayPreAuth(f *testing.F) {
	r := startRelay(f, newRelayKey(f), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{MaxConnsPerIP: 1 << 20}, "")
	defer r.stop()
	f.Add([]byte{wire.MsgAuth, wire.ProtocolVersion})
	f.Add(bytes.Repeat([]byte{1}, wire.AuthSize))
	f.Fuzz(func(t *testing.T, msg []byte) {
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(r), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		ws.WriteMessage(websocket.BinaryMessage, msg)
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := ws.ReadMessage(); err == nil {
			t.Fatal("relay answered a forged Auth")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("relay kept a connection with a forged Auth open")
		}
	})
}

func TestTotalConnectionCap(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{MaxConns: 3}, "")
	defer r.stop()
	for i := 0; i < 3; i++ {
		dial(t, r, newIdentity(t), false)
	}
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(r), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("fourth connection over a cap of 3: %v %v", err, resp)
	}
}
