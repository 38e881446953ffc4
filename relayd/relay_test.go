package relayd_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/wire"
)

// testRelay is a relay on 127.0.0.1 for one test.
type testRelay struct {
	t    testing.TB
	srv  *relayd.Server
	addr wire.RelayAddress
	ln   net.Listener
	mb   relayd.Mailbox
	done chan error
}

func startRelay(t testing.TB, id *wire.RelayIdentity, mb relayd.Mailbox, limits relayd.Limits, listen string) *testRelay {
	t.Helper()
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := relayd.New(relayd.Config{Identity: id, Mailbox: mb, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	r := &testRelay{t: t, srv: srv, ln: ln, mb: mb, done: make(chan error, 1)}
	r.addr = srv.Address("ws://" + ln.Addr().String() + "/")
	go func() { r.done <- srv.Serve(ln) }()
	return r
}

func (r *testRelay) stop() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx, 100*time.Millisecond); err != nil {
		r.t.Fatalf("shutdown: %v", err)
	}
	if err := <-r.done; err != nil {
		r.t.Fatalf("serve: %v", err)
	}
}

func newRelayKey(t testing.TB) *wire.RelayIdentity {
	r, err := wire.NewRelayIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newIdentity(t testing.TB) *wire.Identity {
	id, err := wire.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func dial(t testing.TB, r *testRelay, id *wire.Identity, receive bool) *relayconn.Conn {
	t.Helper()
	c, err := relayconn.Dial(context.Background(), r.addr, id, relayconn.Options{Receive: receive})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// register registers ids in r's mailbox, as their first receiving
// connection would (TestRegistration tests that path).
func register(t testing.TB, r *testRelay, ids ...*wire.Identity) {
	t.Helper()
	for _, id := range ids {
		if err := r.mb.Register(id.Public().ID(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// body makes a distinct opaque body (the relay never opens it).
func body(n int) []byte {
	b := make([]byte, wire.MinEnvelopeSize)
	b[0], b[1], b[2] = 1, byte(n), byte(n>>8)
	return b
}

// read returns the next frame within 5 seconds.
func read(t testing.TB, c *relayconn.Conn) relayconn.Incoming {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	in, err := c.Read()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return in
}

// readData skips relay commands (recording BacklogDone) until a data frame.
func readData(t testing.TB, c *relayconn.Conn) relayconn.Incoming {
	t.Helper()
	for {
		if in := read(t, c); in.Command == nil {
			return in
		}
	}
}

func custody(t testing.TB, c *relayconn.Conn) wire.CustodyEntry {
	t.Helper()
	for {
		in := read(t, c)
		if in.Command != nil && in.Command.Op == wire.OpCustody {
			return in.Command.Custody[0]
		}
	}
}

func backlogDone(t testing.TB, c *relayconn.Conn) uint32 {
	t.Helper()
	for {
		in := read(t, c)
		if in.Command != nil && in.Command.Op == wire.OpBacklogDone {
			return in.Command.Count
		}
		if in.Command == nil {
			t.Fatalf("data frame before BacklogDone")
		}
	}
}

func ack(t testing.TB, c *relayconn.Conn, in relayconn.Incoming) {
	t.Helper()
	if err := c.SendCommand(&wire.Command{Op: wire.OpAck, Acks: []uint64{in.Header.Index}}); err != nil {
		t.Fatal(err)
	}
}

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		runChild(mode) // a benchmark's relay or bare forwarder
	}
	goleak.VerifyTestMain(m)
}

func TestLiveDelivery(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	alice, bob := newIdentity(t), newIdentity(t)
	bc := dial(t, r, bob, true)
	if n := backlogDone(t, bc); n != 0 {
		t.Fatalf("empty mailbox: BacklogDone %d", n)
	}
	ac := dial(t, r, alice, false)
	for i := 0; i < 10; i++ {
		idx, err := ac.SendData(bob.Public().ID(), 0, body(i))
		if err != nil {
			t.Fatal(err)
		}
		if e := custody(t, ac); e.Index != idx || e.Status != wire.StatusDelivered {
			t.Fatalf("custody %+v for frame %d", e, idx)
		}
		in := readData(t, bc)
		if in.Header.ID != alice.Public().ID() || in.Body[1] != byte(i) {
			t.Fatalf("bob got %+v", in.Header)
		}
		ack(t, bc, in)
	}
}

func TestStoreAndForward(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	alice, bob := newIdentity(t), newIdentity(t)
	register(t, r, bob)
	ac := dial(t, r, alice, false)
	for i := 0; i < 5; i++ {
		if _, err := ac.SendData(bob.Public().ID(), 0, body(i)); err != nil {
			t.Fatal(err)
		}
		if e := custody(t, ac); e.Status != wire.StatusStored {
			t.Fatalf("bob offline: custody %+v", e)
		}
	}
	// A send-only connection of bob's never gets them.
	bs := dial(t, r, bob, false)
	bs.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if in, err := bs.Read(); err == nil {
		t.Fatalf("send-only connection received %+v", in)
	}
	// Bob's receiving connection gets them in order, then BacklogDone.
	bc := dial(t, r, bob, true)
	for i := 0; i < 5; i++ {
		in := readData(t, bc)
		if in.Body[1] != byte(i) || !in.Header.ID.IsUnnamed() {
			t.Fatalf("frame %d: %+v (a stored frame names no sender)", i, in)
		}
		if i < 3 {
			ack(t, bc, in)
		}
	}
	if n := backlogDone(t, bc); n != 5 {
		t.Fatalf("BacklogDone %d, want 5", n)
	}
	ping(t, bc) // the relay has read the acks
	bc.Close()
	// The two unacknowledged ones come again; the acknowledged ones do not.
	bc2 := dial(t, r, bob, true)
	for _, want := range []byte{3, 4} {
		in := readData(t, bc2)
		if in.Body[1] != want {
			t.Fatalf("redelivered %d, want %d", in.Body[1], want)
		}
		ack(t, bc2, in)
	}
	if n := backlogDone(t, bc2); n != 2 {
		t.Fatalf("BacklogDone %d, want 2", n)
	}
	// Acks are processed in order with later frames; a Ping round trip
	// proves the relay has read them.
	ping(t, bc2)
	if st, _ := r.mb.Stats(); st.Frames != 0 {
		t.Fatalf("mailbox holds %d frames after every ack", st.Frames)
	}
}

// A burst from SendBatch arrives whole and in order, to live receivers
// and to the mailbox alike, with one custody answer per frame under the
// indexes SendBatch reported.
func TestSendBatch(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	alice, bob, carol := newIdentity(t), newIdentity(t), newIdentity(t)
	register(t, r, carol)
	bc := dial(t, r, bob, true)
	backlogDone(t, bc)
	ac := dial(t, r, alice, false)
	const n = 300 // more than one write's worth of 256-byte frames
	var burst []relayconn.OutFrame
	for i := range n {
		to := bob.Public().ID()
		if i%3 == 2 {
			to = carol.Public().ID() // offline: stored
		}
		burst = append(burst, relayconn.OutFrame{To: to, Body: append(body(i), make([]byte, 200)...)})
	}
	first, err := ac.SendBatch(burst)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]wire.Status{}
	for len(seen) < n {
		in := read(t, ac)
		if in.Command == nil || in.Command.Op != wire.OpCustody {
			continue
		}
		for _, e := range in.Command.Custody {
			seen[e.Index] = e.Status
		}
	}
	for i := range n {
		want := wire.StatusDelivered
		if i%3 == 2 {
			want = wire.StatusStored
		}
		if got, ok := seen[first+uint64(i)]; !ok || got != want {
			t.Fatalf("frame %d (index %d): custody %v, want %v", i, first+uint64(i), got, want)
		}
	}
	for i := range n {
		if i%3 == 2 {
			continue
		}
		in := readData(t, bc)
		if got := int(in.Body[1]) | int(in.Body[2])<<8; got != i {
			t.Fatalf("bob got frame %d, want %d", got, i)
		}
		ack(t, bc, in)
	}
	cc := dial(t, r, carol, true)
	for i := 2; i < n; i += 3 {
		in := readData(t, cc)
		if got := int(in.Body[1]) | int(in.Body[2])<<8; got != i {
			t.Fatalf("carol got frame %d, want %d", got, i)
		}
		ack(t, cc, in)
	}
}

func ping(t testing.TB, c *relayconn.Conn) {
	t.Helper()
	if err := c.SendCommand(&wire.Command{Op: wire.OpPing, Token: 77}); err != nil {
		t.Fatal(err)
	}
	for {
		in := read(t, c)
		if in.Command != nil && in.Command.Op == wire.OpPong && in.Command.Token == 77 {
			return
		}
	}
}

// A live frame whose receiving connection goes away unacknowledged is
// stored and delivered on the next connection.
func TestLiveUnackedIsStored(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	alice, bob := newIdentity(t), newIdentity(t)
	bc := dial(t, r, bob, true)
	backlogDone(t, bc)
	ac := dial(t, r, alice, false)
	ac.SendData(bob.Public().ID(), 0, body(42))
	if e := custody(t, ac); e.Status != wire.StatusDelivered {
		t.Fatalf("custody %+v", e)
	}
	readData(t, bc) // not acknowledged
	bc.Close()
	bc2 := dial(t, r, bob, true)
	if in := readData(t, bc2); in.Body[1] != 42 {
		t.Fatalf("got %d", in.Body[1])
	}
}

// Every receiving connection of an identity gets live frames; a
// send-only one does not.
func TestSeveralConnectionsPerIdentity(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	alice, bob := newIdentity(t), newIdentity(t)
	register(t, r, alice)
	b1, b2 := dial(t, r, bob, true), dial(t, r, bob, true)
	backlogDone(t, b1)
	backlogDone(t, b2)
	bsend := dial(t, r, bob, false)
	ac := dial(t, r, alice, false)
	ac.SendData(bob.Public().ID(), 0, body(7))
	custody(t, ac)
	for _, c := range []*relayconn.Conn{b1, b2} {
		if in := readData(t, c); in.Body[1] != 7 {
			t.Fatal("wrong frame")
		}
	}
	// bob's cron send works beside his listeners.
	bsend.SendData(alice.Public().ID(), 0, body(8))
	if e := custody(t, bsend); e.Status != wire.StatusStored {
		t.Fatalf("bob's send: %+v", e)
	}
}

func TestEphemeralAndBadRecipient(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	alice, bob := newIdentity(t), newIdentity(t)
	ac := dial(t, r, alice, false)
	ac.SendData(bob.Public().ID(), wire.FlagEphemeral, body(1))
	if e := custody(t, ac); e.Status != wire.StatusRefused || e.Reason != wire.ReasonRecipientOffline {
		t.Fatalf("ephemeral to offline: %+v", e)
	}
	ac.SendData(alice.Public().ID(), 0, body(1))
	if e := custody(t, ac); e.Reason != wire.ReasonBadRecipient {
		t.Fatalf("to self: %+v", e)
	}
	bc := dial(t, r, bob, true)
	backlogDone(t, bc)
	ac.SendData(bob.Public().ID(), wire.FlagEphemeral, body(2))
	if e := custody(t, ac); e.Status != wire.StatusDelivered {
		t.Fatalf("ephemeral to online: %+v", e)
	}
	if in := readData(t, bc); in.Header.Flags != wire.FlagEphemeral {
		t.Fatalf("flags %#x", in.Header.Flags)
	}
	// Nothing was stored: a new connection gets no backlog.
	bc.Close()
	if n := backlogDone(t, dial(t, r, bob, true)); n != 0 {
		t.Fatalf("ephemeral frame was stored (%d)", n)
	}
}

func TestQuota(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{MaxFrames: 3}), relayd.Limits{}, "")
	defer r.stop()
	alice, bob := newIdentity(t), newIdentity(t)
	register(t, r, bob)
	ac := dial(t, r, alice, false)
	for i := 0; i < 4; i++ {
		ac.SendData(bob.Public().ID(), 0, body(i))
		e := custody(t, ac)
		if i < 3 && e.Status != wire.StatusStored || i == 3 && e.Reason != wire.ReasonMailboxFull {
			t.Fatalf("frame %d: %+v", i, e)
		}
	}
}

func TestWrongRelayKey(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	addr := r.addr
	addr.Key = newRelayKey(t).Public()
	_, err := relayconn.Dial(context.Background(), addr, newIdentity(t), relayconn.Options{})
	if !errors.Is(err, relayconn.ErrRelayAuth) {
		t.Fatalf("dial with the wrong key: %v", err)
	}
}

// An early Dial sends its frame right behind Auth: the relay routes it,
// and the first Read checks the Welcome. With the wrong relay key the
// dial itself succeeds, the frame goes nowhere, and that first Read fails.
func TestEarlyDial(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	alice, bob := newIdentity(t), newIdentity(t)
	register(t, r, bob)
	ac, err := relayconn.Dial(context.Background(), r.addr, alice, relayconn.Options{Early: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if ac.Welcome() != nil {
		t.Fatal("early dial waited for the welcome")
	}
	idx, err := ac.SendData(bob.Public().ID(), 0, body(5))
	if err != nil || idx != 0 {
		t.Fatalf("first frame: index %d, %v", idx, err)
	}
	if e := custody(t, ac); e.Index != idx || e.Status != wire.StatusStored {
		t.Fatalf("custody %+v", e)
	}
	if w := ac.Welcome(); w == nil || w.ID != alice.Public().ID() {
		t.Fatalf("welcome after the first read: %+v", w)
	}
	bc := dial(t, r, bob, true)
	if in := readData(t, bc); in.Body[1] != 5 || !in.Header.ID.IsUnnamed() {
		t.Fatalf("bob got %+v", in.Header)
	}

	addr := r.addr
	addr.Key = newRelayKey(t).Public()
	wc, err := relayconn.Dial(context.Background(), addr, alice, relayconn.Options{Early: true})
	if err != nil {
		t.Fatalf("early dial with the wrong key: %v (the relay's answer comes later)", err)
	}
	defer wc.Close()
	wc.SendData(bob.Public().ID(), 0, body(6))
	wc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if in, err := wc.Read(); err == nil {
		t.Fatalf("read from a relay that could not read Auth: %+v", in)
	}
	bc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if in, err := bc.Read(); err == nil && in.Command == nil {
		t.Fatalf("the frame behind a bad Auth was routed: %+v", in)
	}
}

// A relay restart loses nothing it stored or had delivered unacknowledged.
func TestRestartKeepsFrames(t *testing.T) {
	dir := t.TempDir()
	key := newRelayKey(t)
	mb, err := relayd.OpenBoltMailbox(filepath.Join(dir, "mailbox.db"), relayd.MailboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	r := startRelay(t, key, mb, relayd.Limits{}, "")
	alice, bob := newIdentity(t), newIdentity(t)
	bc := dial(t, r, bob, true)
	backlogDone(t, bc)
	ac := dial(t, r, alice, false)
	ac.SendData(bob.Public().ID(), 0, body(1)) // live, will not be acked
	custody(t, ac)
	readData(t, bc)
	bc.Close()
	ac.SendData(bob.Public().ID(), 0, body(2)) // stored
	custody(t, ac)
	// bob reconnects and is told to go away.
	bc = dial(t, r, bob, true)
	readData(t, bc)
	readData(t, bc)
	listen := r.ln.Addr().String()
	r.stop()
	// The client is told to come back.
	for {
		in, err := bc.Read()
		if err != nil {
			t.Fatal("closed without a Restarting notice")
		}
		if in.Command != nil && in.Command.Op == wire.OpRestarting {
			break
		}
	}
	if err := mb.Close(); err != nil {
		t.Fatal(err)
	}
	mb2, err := relayd.OpenBoltMailbox(filepath.Join(dir, "mailbox.db"), relayd.MailboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	defer mb2.Close()
	r2 := startRelay(t, key, mb2, relayd.Limits{}, listen)
	defer r2.stop()
	bc2 := dial(t, r2, bob, true)
	got := map[byte]bool{}
	for i := 0; i < 2; i++ {
		in := readData(t, bc2)
		got[in.Body[1]] = true
		ack(t, bc2, in)
	}
	if !got[1] || !got[2] {
		t.Fatalf("after restart got %v", got)
	}
}

// /healthz answers on the public listener, /metrics only through
// MetricsHandler (a listener of its own), and a browser that opens the
// relay's address without upgrading gets a short page, not an error.
func TestHealthzMetricsAndPage(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	base := "http://" + r.ln.Addr().String()
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := get(base + "/healthz"); code != 200 || b != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, b)
	}
	if code, _ := get(base + "/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on the public listener: %d", code)
	}
	code, page := get(base + "/")
	if code != 200 || !strings.Contains(page, "wschat relay") || !strings.Contains(page, r.addr.Key.String()) {
		t.Fatalf("GET /: %d %q", code, page)
	}
	ms := httptest.NewServer(r.srv.MetricsHandler())
	defer ms.Close()
	if code, b := get(ms.URL); code != 200 || !strings.Contains(b, "wschat_relay_registrations") {
		t.Fatalf("metrics: %d %.200q", code, b)
	}
}

// Concurrency smoke test: many pairs at once under the race detector.
func TestManyPairs(t *testing.T) {
	r := startRelay(t, newRelayKey(t), relayd.NewMemoryMailbox(relayd.MailboxLimits{}), relayd.Limits{}, "")
	defer r.stop()
	var wg sync.WaitGroup
	for p := 0; p < 8; p++ {
		alice, bob := newIdentity(t), newIdentity(t)
		bc := dial(t, r, bob, true)
		backlogDone(t, bc)
		ac := dial(t, r, alice, false)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				ac.SendData(bob.Public().ID(), 0, body(i))
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				bc.SetReadDeadline(time.Now().Add(5 * time.Second))
				in, err := bc.Read()
				if err != nil {
					t.Error(err)
					return
				}
				if in.Command != nil {
					i--
					continue
				}
				bc.SendCommand(&wire.Command{Op: wire.OpAck, Acks: []uint64{in.Header.Index}})
			}
		}()
	}
	wg.Wait()
}
