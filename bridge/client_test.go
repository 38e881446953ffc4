package bridge_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/relayd/relaytest"
	"github.com/wschat/wschat/wire"
)

func TestSendReceive(t *testing.T) {
	r := startRelay(t)
	alice, bob := newParty(t, "alice", r.Addr), newParty(t, "bob", r.Addr)
	befriend(t, alice, bob, "alice", "bob")
	toBob := alice.contact("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, st, err := alice.client.Send(ctx, toBob, []byte("hi bob"), false)
	if err != nil || st != bridge.StateStored || alice.state(toBob, id) != bridge.StateStored {
		t.Fatalf("send with bob offline: %q %v (stored %q)", st, err, alice.state(toBob, id))
	}
	if out, _ := alice.store.Outbox(ctx); len(out) != 0 {
		t.Fatalf("outbox holds %d entries after custody", len(out))
	}
	recs := bob.receive(1, 5*time.Second)
	if len(recs) != 1 || string(recs[0].Body) != "hi bob" || recs[0].ID != id {
		t.Fatalf("bob has %+v", recs)
	}
	// Bob's client acknowledged it end to end; alice sees that on her
	// next receiving connection.
	alice.running()
	alice.waitState(toBob, id, bridge.StateDelivered, 5*time.Second)
}

// A message that arrives twice (a retry after a lost custody answer, or a
// duplicate on the network) is stored and shown once, and every copy is
// acknowledged to the relay.
func TestDuplicateShownOnce(t *testing.T) {
	r := startRelay(t)
	alice, bob := newParty(t, "alice", r.Addr), newParty(t, "bob", r.Addr)
	befriend(t, alice, bob, "alice", "bob")
	alice.client.Queue(context.Background(), alice.contact("bob"), wire.TypeText, []byte("once"))
	out, err := alice.store.Outbox(context.Background())
	if err != nil || len(out) != 1 {
		t.Fatalf("outbox %v %v", out, err)
	}
	deliver(t, alice)
	conn, err := relayconn.Dial(context.Background(), r.Addr, alice.id, relayconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		conn.SendData(out[0].To, 0, out[0].Envelope)
	}
	for n := 0; n < 2; {
		in, err := conn.Read()
		if err != nil {
			t.Fatal(err)
		}
		if in.Command != nil && in.Command.Op == wire.OpCustody {
			n += len(in.Command.Custody)
		}
	}
	conn.Close()
	stop := bob.running()
	recs := bob.received(2, wire.TypeText, time.Second)
	stop()
	if len(recs) != 1 {
		t.Fatalf("bob stored %d copies", len(recs))
	}
	if left, _ := r.Mailbox().Pending(bob.id.Public().ID(), 0, 10, false, time.Now()); len(left) != 0 {
		t.Fatalf("%d frames left at the relay for bob", len(left))
	}
}

// Frames from strangers are counted, never stored as messages; frames that
// do not verify are dropped; neither stays at the relay.
func TestStrangersAndForgeries(t *testing.T) {
	r := startRelay(t)
	alice, bob, carol := newParty(t, "alice", r.Addr), newParty(t, "bob", r.Addr), newParty(t, "carol", r.Addr)
	befriend(t, alice, bob, "alice", "bob")
	for _, p := range []*party{carol, alice} { // carol: a stranger; alice: a forgery
		c, err := relayconn.Dial(context.Background(), r.Addr, p.id, relayconn.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c.SendData(bob.id.Public().ID(), 0, make([]byte, wire.MinEnvelopeSize))
		if in, err := c.Read(); err != nil || in.Command == nil || in.Command.Op != wire.OpCustody {
			t.Fatalf("custody: %+v %v", in, err)
		}
		c.Close()
	}
	stop := bob.running()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if st, _ := r.Mailbox().Stats(); st.Frames == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("frames left at the relay")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if recs, _ := bob.store.After(context.Background(), 0, bridge.DirIn, 10); len(recs) != 0 {
		t.Fatalf("stored %+v", recs)
	}
	// Both were stored (bob was offline), and the relay keeps no sender
	// ids: neither envelope carries a contact's pair tag, so both count as
	// from an unnamed stranger.
	s, _ := bob.store.Strangers(context.Background())
	if len(s) != 1 || !s[0].ID.IsUnnamed() || s[0].Count != 2 {
		t.Fatalf("strangers %+v", s)
	}
}

// The outbox survives the process: a message queued while the relay was
// unreachable goes out with the next process's connection.
func TestOutboxSurvivesRestart(t *testing.T) {
	r := startRelay(t)
	alice, bob := newParty(t, "alice", r.Addr), newParty(t, "bob", r.Addr)
	befriend(t, alice, bob, "alice", "bob")
	alice.client.Queue(context.Background(), alice.contact("bob"), wire.TypeText, []byte("queued"))
	alice.store.Close()
	alice.open() // a new process
	if n := deliver(t, alice); n != 1 {
		t.Fatalf("delivered %d", n)
	}
	recs := bob.receive(1, 5*time.Second)
	if len(recs) != 1 || string(recs[0].Body) != "queued" {
		t.Fatalf("bob has %+v", recs)
	}
}

// Typing goes live to an online contact and is never stored; a read
// acknowledgement moves the sender's message to "read".
func TestLiveAndRead(t *testing.T) {
	r := startRelay(t)
	alice, bob := newParty(t, "alice", r.Addr), newParty(t, "bob", r.Addr)
	befriend(t, alice, bob, "alice", "bob")
	live := make(chan bridge.Live, 4)
	bob.client.OnLive(func(l bridge.Live) { live <- l })
	alice.running()
	bob.running()
	ctx := context.Background()
	toBob, toAlice := alice.contact("bob"), bob.contact("alice")
	if err := alice.client.SendLive(ctx, toBob, wire.TypeTyping, true); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-live:
		if l.From.Name != "alice" || l.Type != wire.TypeTyping || !l.On {
			t.Fatalf("live %+v", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no typing notice")
	}
	if err := alice.client.SendLive(ctx, toBob, wire.TypeText, true); err == nil {
		t.Fatal("text sent as live")
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	id, st, err := alice.client.Send(sctx, toBob, []byte("read me"), true)
	if err != nil || !st.Delivered() {
		t.Fatalf("send, waiting for delivery: %q %v", st, err)
	}
	if err := bob.client.MarkRead(ctx, toAlice, id); err != nil {
		t.Fatal(err)
	}
	alice.waitState(toBob, id, bridge.StateRead, 5*time.Second)
	if recs, _ := bob.store.After(ctx, 0, bridge.DirIn, 100); len(recs) != 1 {
		t.Fatalf("bob stored %d records, want the text only", len(recs))
	}
}

// A lasting refusal reaches Send at once (not at its timeout), on Run's
// connection and on Send's own, and takes the message out of the outbox
// with the reason in the history: it is not refused again on every
// connection.
func TestSendRefused(t *testing.T) {
	for _, viaRun := range []bool{false, true} {
		r := relaytest.Start(t, relaytest.Options{MailboxLimits: relayd.MailboxLimits{MaxFrames: 1}})
		alice, bob := newParty(t, "alice", r.Addr), newParty(t, "bob", r.Addr)
		befriend(t, alice, bob, "alice", "bob")
		if viaRun {
			alice.running()
		}
		toBob := alice.contact("bob")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, st, err := alice.client.Send(ctx, toBob, []byte("one"), false); err != nil || st != bridge.StateStored {
			t.Fatalf("first: %q %v", st, err)
		}
		start := time.Now()
		id, st, err := alice.client.Send(ctx, toBob, []byte("two"), false)
		var rf *bridge.RefusedError
		if !errors.As(err, &rf) || rf.Reason != wire.ReasonMailboxFull || st != bridge.StateRefused || time.Since(start) > 5*time.Second {
			t.Fatalf("run=%v: second, over the quota: %q %v after %v", viaRun, st, err, time.Since(start))
		}
		recs, _ := alice.store.After(ctx, 0, bridge.DirOut, 10)
		if last := recs[len(recs)-1]; last.ID != id || last.State != bridge.StateRefused || last.Refusal != "mailbox_full" {
			t.Fatalf("history: %+v", last)
		}
		if out, _ := alice.store.Outbox(ctx); len(out) != 0 {
			t.Fatalf("refused message still in the outbox: %+v", out)
		}
	}
}

// A Send over its own connection takes what the outbox held along, ahead
// of its own message, and the answers for all of them are saved.
func TestSendTakesOlderOutbox(t *testing.T) {
	r := startRelay(t)
	alice, bob := newParty(t, "alice", r.Addr), newParty(t, "bob", r.Addr)
	befriend(t, alice, bob, "alice", "bob")
	toBob := alice.contact("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := alice.client.Queue(ctx, toBob, wire.TypeText, []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := alice.client.Send(ctx, toBob, []byte("second"), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []wire.MessageID{first, second} {
		if st := alice.state(toBob, id); st != bridge.StateStored {
			t.Errorf("%s: %q", id, st)
		}
	}
	got := bob.receive(2, 5*time.Second)
	if len(got) != 2 || string(got[0].Body) != "first" || string(got[1].Body) != "second" {
		t.Fatalf("bob got %+v, want first then second", got)
	}
}

// Two processes of one identity: one keeps Run's connection (as `wschat
// mcp` does) and sends on it, the other sends on connections of its own
// (as a cron `wschat send`), at the same time, on the same store file.
// Every Send hears its own answer; bob gets each message once.
func TestSendTwoProcessesOneIdentity(t *testing.T) {
	r := startRelay(t)
	alice, bob := newParty(t, "alice", r.Addr), newParty(t, "bob", r.Addr)
	befriend(t, alice, bob, "alice", "bob")
	cron := alice.process()
	alice.running()
	toBob := alice.contact("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 10
	errs := make(chan error, 2*n)
	for _, p := range []*party{alice, cron} {
		go func() {
			for i := range n {
				_, st, err := p.client.Send(ctx, toBob, []byte{'x', byte('a' + i)}, false)
				if err == nil && st != bridge.StateStored {
					err = errors.New("state " + string(st))
				}
				errs <- err
			}
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if recs := bob.receive(2*n, 5*time.Second); len(recs) != 2*n {
		t.Fatalf("bob got %d messages, want %d", len(recs), 2*n)
	}
	if out, _ := cron.store.Outbox(ctx); len(out) != 0 {
		t.Fatalf("outbox still holds %d entries", len(out))
	}
}

// Twenty one-shot sends of one identity at once, recipient offline: each
// entry is handed over by one process (its lease), so the relay stores
// one frame per message (it stored 5.65 per message before leases).
func TestConcurrentSendsDoNotAmplify(t *testing.T) {
	r := startRelay(t)
	alice, bob := newParty(t, "alice", r.Addr), newParty(t, "bob", r.Addr)
	befriend(t, alice, bob, "alice", "bob")
	toBob := alice.contact("bob")
	const procs, each = 20, 3
	var wg sync.WaitGroup
	errs := make(chan error, procs*each)
	for range procs {
		p := alice.process()
		wg.Go(func() {
			for i := range each {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, _, err := p.client.Send(ctx, toBob, []byte{'m', byte('a' + i)}, false)
				cancel()
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st, _ := r.Mailbox().Stats()
	ratio := float64(st.Frames) / (procs * each)
	t.Logf("relay stores %d frames for %d messages (%.2f per message)", st.Frames, procs*each, ratio)
	if ratio > 1.05 {
		t.Fatalf("%.2f frames stored per message, want at most 1.05", ratio)
	}
}

// A Send that cannot reach the relay leaves the message in the outbox,
// says which relay, and notes why on the entry.
func TestSendRelayDown(t *testing.T) {
	down := relaytest.Unreachable(t)
	alice, bob := newParty(t, "alice", down), newParty(t, "bob", down)
	befriend(t, alice, bob, "alice", "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, st, err := alice.client.Send(ctx, alice.contact("bob"), []byte("later"), false)
	var re *bridge.RelayError
	if !errors.As(err, &re) || re.Relay != down || st != bridge.StatePending {
		t.Fatalf("send with the relay down: %q %v", st, err)
	}
	out, _ := alice.store.Outbox(ctx)
	if len(out) != 1 || out[0].ID != id || !strings.Contains(out[0].LastError, down.URL) {
		t.Fatalf("outbox holds %+v, want the message with the error", out)
	}
}

// A relay that accepts TCP and never answers costs one dial timeout, not
// two.
func TestSendSilentRelayOneTimeout(t *testing.T) {
	silent := relaytest.Silent(t)
	alice, bob := newParty(t, "alice", silent), newParty(t, "bob", silent)
	befriend(t, alice, bob, "alice", "bob")
	alice.client = bridge.NewClient(bridge.Config{Identity: alice.id, Relay: silent, Book: alice.book, Store: alice.store, DialTimeout: 500 * time.Millisecond})
	start := time.Now()
	_, st, err := alice.client.Send(context.Background(), alice.contact("bob"), []byte("hello?"), false)
	d := time.Since(start)
	if err == nil || st != bridge.StatePending {
		t.Fatalf("send to a silent relay: %q %v", st, err)
	}
	if d > 900*time.Millisecond {
		t.Fatalf("send took %v with a dial timeout of 500 ms", d)
	}
}

// A Send to a relay that does not hold the pinned key fails (its frame
// went out right behind Auth, and nowhere else) and keeps the message in
// the outbox.
func TestSendWrongRelayKey(t *testing.T) {
	r := startRelay(t)
	wrong := r.Addr
	wrong.Key = relaytest.Unreachable(t).Key
	alice, bob := newParty(t, "alice", wrong), newParty(t, "bob", wrong)
	befriend(t, alice, bob, "alice", "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, st, err := alice.client.Send(ctx, alice.contact("bob"), []byte("to an impostor?"), false)
	if !errors.Is(err, bridge.ErrRelayAuth) || st != bridge.StatePending {
		t.Fatalf("send with the wrong relay key: %q %v", st, err)
	}
	if out, _ := alice.store.Outbox(ctx); len(out) != 1 || out[0].ID != id {
		t.Fatalf("outbox holds %+v, want the message", out)
	}
}
