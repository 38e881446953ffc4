package relayd_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/wire"
)

// clock is an injected clock a test moves by hand.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }

// startRelayCfg is startRelay with a whole Config.
func startRelayCfg(t testing.TB, cfg relayd.Config) *testRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := relayd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &testRelay{t: t, srv: srv, ln: ln, mb: cfg.Mailbox, done: make(chan error, 1)}
	r.addr = srv.Address("ws://" + ln.Addr().String() + "/")
	go func() { r.done <- srv.Serve(ln) }()
	return r
}

// waitGone returns once id has no receiving connection at r: an
// ephemeral frame to it is refused recipient_offline.
func waitGone(t testing.TB, r *testRelay, id *wire.Identity) {
	t.Helper()
	pc := dial(t, r, newIdentity(t), false)
	for i := 0; ; i++ {
		pc.SendData(id.Public().ID(), wire.FlagEphemeral, body(0))
		if e := custody(t, pc); e.Reason == wire.ReasonRecipientOffline {
			return
		} else if i == 200 {
			t.Fatalf("still online: %+v", e)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// custodies reads custody answers until it has n entries.
func custodies(t testing.TB, c *relayconn.Conn, n int) []wire.CustodyEntry {
	t.Helper()
	var out []wire.CustodyEntry
	for len(out) < n {
		in := read(t, c)
		if in.Command != nil && in.Command.Op == wire.OpCustody {
			out = append(out, in.Command.Custody...)
		}
	}
	return out
}

// A receiving connection registers its identity; frames for an identity
// that never did are refused and nothing is stored; a registration lasts
// the TTL after the last receiving connection, then it goes with the
// frames (injected clock).
func TestRegistration(t *testing.T) {
	clk := newClock()
	mb := relayd.NewMemoryMailbox(relayd.MailboxLimits{RegistrationTTL: 48 * time.Hour})
	r := startRelayCfg(t, relayd.Config{Identity: newRelayKey(t), Mailbox: mb, Now: clk.now})
	defer r.stop()
	alice, bob, carol := newIdentity(t), newIdentity(t), newIdentity(t)
	ac := dial(t, r, alice, false)
	ac.SendData(bob.Public().ID(), 0, body(1))
	if e := custody(t, ac); e.Status != wire.StatusRefused || e.Reason != wire.ReasonUnknownRecipient {
		t.Fatalf("to a never registered id: %+v", e)
	}
	if st, _ := mb.Stats(); st.Frames != 0 {
		t.Fatalf("%d frames stored", st.Frames)
	}
	// bob registers as wschat keygen does: a receiving connection, closed.
	if bc, err := relayconn.Dial(t.Context(), r.addr, bob, relayconn.Options{Receive: true}); err != nil {
		t.Fatal(err)
	} else {
		bc.Close()
	}
	waitGone(t, r, bob)
	ac.SendData(bob.Public().ID(), 0, body(2))
	if e := custody(t, ac); e.Status != wire.StatusStored {
		t.Fatalf("to a registered id: %+v", e)
	}
	// A send-only connection registers nothing.
	dial(t, r, carol, false).Close()
	ac.SendData(carol.Public().ID(), 0, body(3))
	if e := custody(t, ac); e.Reason != wire.ReasonUnknownRecipient {
		t.Fatalf("to an id with only a send-only connection: %+v", e)
	}
	// 47 hours on, the registration holds; 50 hours on it is gone, and
	// bob's frame with it.
	clk.add(47 * time.Hour)
	if n, _ := mb.Expire(clk.now(), nil); n.Registrations != 0 {
		t.Fatalf("expired early: %+v", n)
	}
	clk.add(3 * time.Hour)
	if n, _ := mb.Expire(clk.now(), nil); n.Registrations != 1 || n.Frames != 1 {
		t.Fatalf("Expire: %+v", n)
	}
	ac.SendData(bob.Public().ID(), 0, body(4))
	if e := custody(t, ac); e.Reason != wire.ReasonUnknownRecipient {
		t.Fatalf("after the registration expired: %+v", e)
	}
}

// A flood to random ids from many identities stores nothing.
func TestFloodToRandomIDsStoresNothing(t *testing.T) {
	mb := relayd.NewMemoryMailbox(relayd.MailboxLimits{})
	r := startRelay(t, newRelayKey(t), mb, relayd.Limits{RateBytes: 1 << 30, RateBurst: 1 << 30}, "")
	defer r.stop()
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range 8 {
		c := dial(t, r, newIdentity(t), false)
		wg.Go(func() {
			for i := range 100 {
				var to wire.RoutingID
				copy(to[:], newIdentity(t).Public().ID().String())
				to[0] = byte(i)
				c.SendData(to, 0, make([]byte, 16<<10))
			}
			for _, e := range custodies(t, c, 100) {
				if e.Reason == wire.ReasonUnknownRecipient {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if st, _ := mb.Stats(); st.Frames != 0 || st.Bytes != 0 || refused.Load() != 800 {
		t.Fatalf("stored %d frames (%d bytes); %d of 800 refused unknown_recipient", st.Frames, st.Bytes, refused.Load())
	}
}

// With the storage full, frames for offline recipients are refused
// storage_full while live delivery goes on; a sender over its budget is
// refused sender_budget, and others are not.
func TestStorageFullAndBudget(t *testing.T) {
	mb := relayd.NewMemoryMailbox(relayd.MailboxLimits{MaxStorage: 256 << 10, MaxFrames: 1 << 20, MaxBytes: 1 << 30})
	r := startRelay(t, newRelayKey(t), mb, relayd.Limits{SenderBudget: 150 << 10, RateBytes: 1 << 30, RateBurst: 1 << 30}, "")
	defer r.stop()
	alice, bob, carol, dave := newIdentity(t), newIdentity(t), newIdentity(t), newIdentity(t)
	register(t, r, bob)
	ac, dc := dial(t, r, alice, false), dial(t, r, dave, false)
	big := make([]byte, 16<<10)
	var reasons []wire.Reason
	for range 20 {
		ac.SendData(bob.Public().ID(), 0, big)
		reasons = append(reasons, custody(t, ac).Reason)
	}
	if reasons[0] != wire.ReasonNone || reasons[19] != wire.ReasonSenderBudget {
		t.Fatalf("alice's frames: %v", reasons)
	}
	reasons = reasons[:0]
	for range 20 {
		dc.SendData(bob.Public().ID(), 0, big)
		reasons = append(reasons, custody(t, dc).Reason)
	}
	if reasons[0] != wire.ReasonNone || reasons[19] != wire.ReasonStorageFull {
		t.Fatalf("dave's frames: %v", reasons)
	}
	cc := dial(t, r, carol, true)
	backlogDone(t, cc)
	ac.SendData(carol.Public().ID(), 0, big)
	if e := custody(t, ac); e.Status != wire.StatusDelivered {
		t.Fatalf("live delivery with the storage full: %+v", e)
	}
	readData(t, cc)
}

// failingMailbox fails every Put as a full disk does.
type failingMailbox struct {
	relayd.Mailbox
	puts atomic.Int64
}

func (m *failingMailbox) Put(relayd.Frame) (uint64, error) {
	m.puts.Add(1)
	return 0, errors.New("write /data/mailbox.db: no space left on device")
}

// lockedBuffer is a log sink for one test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A full disk: every frame for an offline recipient is refused (internal,
// so the sender's outbox keeps it), the relay keeps routing live frames,
// and the log gets a bounded number of lines, none with an id.
func TestDiskFullLogsBounded(t *testing.T) {
	mem := relayd.NewMemoryMailbox(relayd.MailboxLimits{})
	mb := &failingMailbox{Mailbox: mem}
	var logs lockedBuffer
	r := startRelayCfg(t, relayd.Config{Identity: newRelayKey(t), Mailbox: mb, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Limits: relayd.Limits{RateBytes: 1 << 30, RateBurst: 1 << 30}})
	defer r.stop()
	alice, bob := newIdentity(t), newIdentity(t)
	register(t, r, bob)
	ac := dial(t, r, alice, false)
	for range 500 {
		ac.SendData(bob.Public().ID(), 0, body(1))
	}
	for _, e := range custodies(t, ac, 500) {
		if e.Reason != wire.ReasonInternal {
			t.Fatalf("custody %+v", e)
		}
	}
	healthy(t, r)
	lines := strings.Count(logs.String(), "\n")
	if mb.puts.Load() < 500 || lines > 6 || strings.Contains(logs.String(), bob.Public().ID().String()) {
		t.Fatalf("%d Puts, %d log lines:\n%s", mb.puts.Load(), lines, logs.String())
	}
}

// At rest: after frames were stored and acknowledged and the mailbox
// compacted, no byte in the data directory holds the sender's id, and
// none holds the id of a recipient whose registration expired.
func TestNothingAtRest(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	mb, err := relayd.OpenBoltMailbox(filepath.Join(dir, "mailbox.db"), relayd.MailboxLimits{RegistrationTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	r := startRelayCfg(t, relayd.Config{Identity: newRelayKey(t), Mailbox: mb, Now: clk.now})
	defer r.stop()
	alice, bob, carol := newIdentity(t), newIdentity(t), newIdentity(t)
	register(t, r, bob, carol)
	ac := dial(t, r, alice, false) // alice only sends: she is not registered
	for i := range 200 {
		ac.SendData([]wire.RoutingID{bob.Public().ID(), carol.Public().ID()}[i%2], 0, body(i))
		if e := custody(t, ac); e.Status != wire.StatusStored {
			t.Fatalf("custody %+v", e)
		}
	}
	for _, id := range []*wire.Identity{bob, carol} {
		c := dial(t, r, id, true)
		for range 100 {
			ack(t, c, readData(t, c))
		}
		if n := backlogDone(t, c); n != 100 {
			t.Fatalf("BacklogDone %d", n)
		}
		ping(t, c)
		c.Close()
		waitGone(t, r, id)
	}
	if st, _ := mb.Stats(); st.Frames != 0 {
		t.Fatalf("%d frames left", st.Frames)
	}
	// carol's registration expires; bob connects again and keeps his.
	clk.add(3 * time.Hour)
	dial(t, r, bob, true).Close()
	waitGone(t, r, bob)
	if n, err := mb.Expire(clk.now(), nil); err != nil || n.Registrations != 1 {
		t.Fatalf("Expire: %+v %v", n, err)
	}
	res, err := mb.Compact()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after 200 frames stored and acknowledged: %d bytes on disk (%d before compaction)", res.After, res.Before)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		for name, id := range map[string]*wire.Identity{"sender": alice, "expired recipient": carol} {
			rid := id.Public().ID()
			if bytes.Contains(b, rid[:]) {
				t.Errorf("%s holds the %s's id %s", e.Name(), name, rid)
			}
		}
		if rid := bob.Public().ID(); !bytes.Contains(b, rid[:]) {
			t.Errorf("%s lost bob's registration", e.Name())
		}
	}
}

// Receipts stored for an identity that only sends reach its send-only
// connections, before the custody answer to the frame it sends right
// behind Auth; other frames do not; an acknowledged receipt is gone.
func TestReceiptsReachSendOnly(t *testing.T) {
	mb := relayd.NewMemoryMailbox(relayd.MailboxLimits{MaxReceipts: 3})
	r := startRelay(t, newRelayKey(t), mb, relayd.Limits{}, "")
	defer r.stop()
	cron, human := newIdentity(t), newIdentity(t)
	register(t, r, cron, human)
	hc := dial(t, r, human, false)
	hc.SendData(cron.Public().ID(), 0, body(1)) // a message: for cron's listen only
	for i := range 3 {
		hc.SendData(cron.Public().ID(), wire.FlagReceipt, body(10+i))
	}
	for _, e := range custodies(t, hc, 4) {
		if e.Status != wire.StatusStored {
			t.Fatalf("custody %+v", e)
		}
	}
	hc.SendData(cron.Public().ID(), wire.FlagReceipt, body(13))
	if e := custody(t, hc); e.Reason != wire.ReasonMailboxFull {
		t.Fatalf("a fourth receipt over a quota of 3: %+v", e)
	}
	for round := range 2 {
		cc, err := relayconn.Dial(t.Context(), r.addr, cron, relayconn.Options{Early: true})
		if err != nil {
			t.Fatal(err)
		}
		cc.SendData(human.Public().ID(), 0, body(20))
		var got []byte
		for {
			in := read(t, cc)
			if in.Command != nil && in.Command.Op == wire.OpCustody {
				break
			}
			if in.Command == nil {
				if in.Header.Flags != wire.FlagReceipt || !in.Header.ID.IsUnnamed() {
					t.Fatalf("send-only connection got %+v", in.Header)
				}
				got = append(got, in.Body[1])
				ack(t, cc, in)
			}
		}
		ping(t, cc)
		cc.Close()
		if round == 0 && string(got) != "\x0a\x0b\x0c" || round == 1 && len(got) != 0 {
			t.Fatalf("round %d: receipts %v before the custody answer", round, got)
		}
	}
	if left, _ := mb.Pending(cron.Public().ID(), 0, 10, false, time.Now()); len(left) != 1 || left[0].Receipt || left[0].Body[1] != 1 {
		t.Fatalf("left for cron: %+v; want the message alone", left)
	}
}
