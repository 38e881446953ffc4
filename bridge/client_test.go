package bridge_test

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"database/sql"
	"encoding/base64"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/wire"
)

// world is a relay on 127.0.0.1 and named identities with their homes.
type world struct {
	t     *testing.T
	relay wire.RelayAddress
	mb    relayd.Mailbox
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldLimits(t, relayd.MailboxLimits{})
}

// newWorldLimits is newWorld with the relay's mailbox limited.
func newWorldLimits(t *testing.T, limits relayd.MailboxLimits) *world {
	t.Helper()
	rid, _ := wire.NewRelayIdentity(rand.Reader)
	mb := relayd.NewMemoryMailbox(limits)
	srv, err := relayd.New(relayd.Config{Identity: rid, Mailbox: mb})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx, 0)
		<-done
	})
	return &world{t: t, relay: srv.Address("ws://" + ln.Addr().String() + "/"), mb: mb}
}

type party struct {
	id     *wire.Identity
	book   *keys.Book
	store  *bridge.Store
	client *bridge.Client
	dir    string
}

func (w *world) party(name string) *party {
	w.t.Helper()
	dir := filepath.Join(w.t.TempDir(), name)
	id, _ := wire.NewIdentity(rand.Reader)
	book, err := keys.OpenBook(filepath.Join(dir, "contacts"))
	if err != nil {
		w.t.Fatal(err)
	}
	p := &party{id: id, book: book, dir: dir}
	p.open(w)
	// Registered, as its first receiving connection would make it: the
	// relay stores only for registered identities.
	if w.mb == nil {
		return p // no relay
	}
	if err := w.mb.Register(id.Public().ID(), time.Now()); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// open (re)opens the party's store and client, as a new process would.
func (p *party) open(w *world) {
	store, err := bridge.OpenStore(filepath.Join(p.dir, "messages.db"), true)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { store.Close() })
	p.store = store
	p.client = bridge.NewClient(bridge.Config{Identity: p.id, Relay: w.relay, Book: p.book, Store: store})
}

func (p *party) invite() keys.Invite {
	inv, _ := keys.NewInvite(p.id.Public(), "nick", "")
	return inv
}

func befriend(t *testing.T, a, b *party, an, bn string) {
	t.Helper()
	if _, err := a.book.Add(bn, b.invite()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.book.Add(an, a.invite()); err != nil {
		t.Fatal(err)
	}
}

// flush connects send-only, hands the outbox over and waits for custody.
func flush(t *testing.T, p *party) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := p.client.Connect(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go s.Serve(ctx, nil)
	if _, err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for s.Awaiting() > 0 {
		select {
		case <-s.CustodySignal():
		case <-ctx.Done():
			t.Fatal("no custody answer")
		}
	}
}

// receive runs a receiving connection until the store holds n incoming
// rows or the timeout passes, and returns them.
func receive(t *testing.T, p *party, n int, timeout time.Duration) []bridge.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	changed := make(chan struct{}, 1)
	go p.client.Run(ctx, changed, nil)
	for {
		recs, err := p.store.After(context.Background(), 0, bridge.DirIn, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) >= n {
			return recs
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return recs
		}
	}
}

func TestSendReceive(t *testing.T) {
	w := newWorld(t)
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	c, _ := alice.book.Get("bob")
	id, err := alice.client.Queue(context.Background(), c, wire.TypeText, []byte("hi bob"), false)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, alice)
	if st, _ := alice.store.State(context.Background(), c.Public.Fingerprint(), id); st != bridge.StateStored {
		t.Fatalf("state %q after custody with bob offline", st)
	}
	recs := receive(t, bob, 1, 5*time.Second)
	if len(recs) != 1 || string(recs[0].Body) != "hi bob" || recs[0].ID != id {
		t.Fatalf("bob has %+v", recs)
	}
	// Bob's client acknowledged it end to end; alice sees that on her
	// next receiving connection.
	deadline := time.Now().Add(5 * time.Second)
	for {
		receive(t, alice, 1, 300*time.Millisecond)
		st, _ := alice.store.State(context.Background(), c.Public.Fingerprint(), id)
		if st == bridge.StateDelivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %q, want delivered", st)
		}
	}
}

// A message that arrives twice (a retry after a lost custody answer, or a
// duplicate on the network) is stored and shown once.
func TestDuplicateShownOnce(t *testing.T) {
	w := newWorld(t)
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	c, _ := alice.book.Get("bob")
	alice.client.Queue(context.Background(), c, wire.TypeText, []byte("once"), false)
	out, err := alice.store.Outbox(context.Background())
	if err != nil || len(out) != 1 {
		t.Fatalf("outbox %v %v", out, err)
	}
	flush(t, alice)
	// The same envelope again, as a retrying sender would send it.
	conn, err := bridge.Dial(context.Background(), w.relay, alice.id, bridge.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conn.SendData(out[0].To, 0, out[0].Envelope)
	conn.SendData(out[0].To, 0, out[0].Envelope)
	time.Sleep(100 * time.Millisecond)
	conn.Close()
	recs := receive(t, bob, 2, time.Second)
	if len(recs) != 1 {
		t.Fatalf("bob stored %d copies", len(recs))
	}
	// And every copy was acknowledged to the relay: none is left there for
	// bob. (What is there is bob's delivery acknowledgement for alice,
	// once per copy, so that a sender whose first one was lost hears.)
	if left, _ := w.mb.Pending(bob.id.Public().ID(), 0, 10, false, time.Now()); len(left) != 0 {
		t.Fatalf("%d frames left at the relay for bob", len(left))
	}
}

// Frames from strangers are counted, never stored as messages; frames that
// do not verify are dropped; neither stays at the relay.
func TestStrangersAndForgeries(t *testing.T) {
	w := newWorld(t)
	alice, bob, carol := w.party("alice"), w.party("bob"), w.party("carol")
	befriend(t, alice, bob, "alice", "bob")
	cc, err := bridge.Dial(context.Background(), w.relay, carol.id, bridge.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cc.SendData(bob.id.Public().ID(), 0, make([]byte, wire.MinEnvelopeSize))
	ac, err := bridge.Dial(context.Background(), w.relay, alice.id, bridge.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ac.SendData(bob.id.Public().ID(), 0, make([]byte, wire.MinEnvelopeSize)) // forged: does not verify
	time.Sleep(100 * time.Millisecond)
	cc.Close()
	ac.Close()
	recs := receive(t, bob, 1, time.Second)
	if len(recs) != 0 {
		t.Fatalf("stored %+v", recs)
	}
	// Both were stored (bob was offline), and the relay keeps no sender
	// ids: neither envelope carries a contact's pair tag, so both count
	// as from an unnamed stranger.
	s, _ := bob.store.Strangers(context.Background())
	if len(s) != 1 || !s[0].ID.IsUnnamed() || s[0].Count != 2 {
		t.Fatalf("strangers %+v", s)
	}
	if st, _ := w.mb.Stats(); st.Frames != 0 {
		t.Fatalf("%d frames left at the relay", st.Frames)
	}
}

// The outbox survives the process: a message queued while the relay was
// unreachable goes out with the next process's connection.
func TestOutboxSurvivesRestart(t *testing.T) {
	w := newWorld(t)
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	c, _ := alice.book.Get("bob")
	alice.client.Queue(context.Background(), c, wire.TypeText, []byte("queued"), false)
	alice.store.Close()
	alice.open(w) // a new process
	flush(t, alice)
	recs := receive(t, bob, 1, 5*time.Second)
	if len(recs) != 1 || string(recs[0].Body) != "queued" {
		t.Fatalf("bob has %+v", recs)
	}
}

// Typing goes live to an online contact and is never stored; a read
// acknowledgement moves the sender's message to "read".
func TestLiveAndRead(t *testing.T) {
	w := newWorld(t)
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	live := make(chan bridge.Live, 4)
	bob.client.OnLive(func(l bridge.Live) { live <- l })
	for _, p := range []*party{alice, bob} {
		go p.client.Run(ctx, make(chan struct{}, 1), nil)
	}
	toBob, _ := alice.book.Get("bob")
	toAlice, _ := bob.book.Get("alice")
	// Wait until both are connected (SendLive needs a connection; a
	// typing notice reaches only a contact online).
	waitConnected(t, bob, toAlice)
	deadline := time.Now().Add(5 * time.Second)
	for alice.client.SendLive(ctx, toBob, wire.TypeTyping, true) != nil {
		if time.Now().After(deadline) {
			t.Fatal("alice never connected")
		}
		time.Sleep(20 * time.Millisecond)
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
	id, _, err := alice.client.Send(ctx, toBob, []byte("read me"), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.client.MarkRead(ctx, toAlice, id); err != nil {
		t.Fatal(err)
	}
	for {
		st, _ := alice.store.State(ctx, toBob.Public.Fingerprint(), id)
		if st == bridge.StateRead {
			break
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("state %q, want read", st)
		}
		select {
		case <-alice.client.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if recs, _ := bob.store.After(ctx, 0, bridge.DirIn, 100); len(recs) != 1 {
		t.Fatalf("bob stored %d records, want the text only", len(recs))
	}
}

// A refusal on Run's connection reaches Send at once (not at its timeout).
func TestSendRefusedOnRunConnection(t *testing.T) {
	w := newWorldLimits(t, relayd.MailboxLimits{MaxFrames: 1})
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go alice.client.Run(ctx, make(chan struct{}, 1), nil)
	toBob, _ := alice.book.Get("bob")
	deadline := time.Now().Add(5 * time.Second)
	for alice.client.SendLive(ctx, toBob, wire.TypePresence, true) != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // until Run is connected
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if _, st, err := alice.client.Send(sctx, toBob, []byte("one"), false); err != nil || st != bridge.StateStored {
		t.Fatalf("first: %q %v", st, err)
	}
	start := time.Now()
	_, _, err := alice.client.Send(sctx, toBob, []byte("two"), false)
	if err == nil || !strings.Contains(err.Error(), "mailbox_full") || time.Since(start) > 5*time.Second {
		t.Fatalf("second, over the quota: %v after %v", err, time.Since(start))
	}
}

// closedAsStored closes p's client, which waits for what its Sends left
// running, then checks that the store has every id as stored and that
// the outbox is empty.
func closedAsStored(t *testing.T, p *party, to keys.Contact, ids ...wire.MessageID) {
	t.Helper()
	if err := p.client.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	ctx := context.Background()
	for _, id := range ids {
		if got, _ := p.store.State(ctx, to.Public.Fingerprint(), id); got != bridge.StateStored {
			t.Errorf("message %s: store says %q after Close, want stored", id, got)
		}
	}
	if out, _ := p.store.Outbox(ctx); len(out) != 0 {
		t.Errorf("outbox still holds %d entries", len(out))
	}
}

// Send over its own connection returns once the relay has custody, and
// once Close has returned the store says so too, even though Send's
// context ended at once (as a CLI's does): the process may exit then.
func TestSendOwnConnectionSavesState(t *testing.T) {
	w := newWorld(t)
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	toBob, _ := alice.book.Get("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	id, st, err := alice.client.Send(ctx, toBob, []byte("hi"), false)
	cancel()
	if err != nil || st != bridge.StateStored {
		t.Fatalf("send: %q %v", st, err)
	}
	closedAsStored(t, alice, toBob, id)
}

// Send does not wait for the outbox commit: with the store's write lock
// held by another process, the relay's answer still comes back. Once the
// lock is free, Close waits for the commit and for saving the answer.
func TestSendOverlapsCommit(t *testing.T) {
	w := newWorld(t)
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	toBob, _ := alice.book.Get("bob")
	other, err := sql.Open("sqlite", "file:"+filepath.Join(alice.dir, "messages.db")+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lock, err := other.Begin() // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, st, err := alice.client.Send(ctx, toBob, []byte("hi"), false)
	if err != nil || st != bridge.StateStored {
		lock.Rollback()
		t.Fatalf("send while the store is locked: %q %v", st, err)
	}
	lock.Rollback()
	closedAsStored(t, alice, toBob, id)
}

// A Send over its own connection takes what the outbox held along, ahead
// of its own message, and the answers for all of them are saved.
func TestSendTakesOlderOutbox(t *testing.T) {
	w := newWorld(t)
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	toBob, _ := alice.book.Get("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := alice.client.Queue(ctx, toBob, wire.TypeText, []byte("first"), false)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := alice.client.Send(ctx, toBob, []byte("second"), false)
	if err != nil {
		t.Fatal(err)
	}
	closedAsStored(t, alice, toBob, first, second)
	got := receive(t, bob, 2, 5*time.Second)
	if len(got) != 2 || string(got[0].Body) != "first" || string(got[1].Body) != "second" {
		t.Fatalf("bob got %+v, want first then second", got)
	}
}

// countingListener counts the connections the relay accepts.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// A connection dialed ahead (before the client was made) serves the first
// Send that wants its options; one that wants others dials its own, and
// Close closes the unused one.
func TestSendTakesDialAhead(t *testing.T) {
	rid, _ := wire.NewRelayIdentity(rand.Reader)
	mb := relayd.NewMemoryMailbox(relayd.MailboxLimits{})
	srv, err := relayd.New(relayd.Config{Identity: rid, Mailbox: mb})
	if err != nil {
		t.Fatal(err)
	}
	inner, _ := net.Listen("tcp", "127.0.0.1:0")
	ln := &countingListener{Listener: inner}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background(), 0)
	w := &world{t: t, relay: srv.Address("ws://" + ln.Addr().String() + "/"), mb: mb}
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	toBob, _ := alice.book.Get("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		ahead   bridge.DialOptions
		accepts int32
	}{
		{bridge.DialOptions{Early: true}, 1},                // what Send wants
		{bridge.DialOptions{Early: true, Receive: true}, 2}, // not: Send dials its own
	} {
		ln.n.Store(0)
		d := bridge.DialAhead(ctx, w.relay, alice.id, tc.ahead)
		c := bridge.NewClient(bridge.Config{Identity: alice.id, Relay: w.relay, Book: alice.book, Store: alice.store, Dialing: d})
		if _, st, err := c.Send(ctx, toBob, []byte("hi"), false); err != nil || st != bridge.StateStored {
			t.Fatalf("%+v: send: %q %v", tc.ahead, st, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if got := ln.n.Load(); got != tc.accepts {
			t.Errorf("%+v: the relay accepted %d connections, want %d", tc.ahead, got, tc.accepts)
		}
	}
}

// Send over Run's connection returns on the relay's custody answer; the
// store follows (Awaiting() == 0 means it is saved and out of the outbox).
func TestSendOnRunConnection(t *testing.T) {
	w := newWorld(t)
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan struct{})
	go func() { defer close(ran); alice.client.Run(ctx, nil, nil) }()
	defer func() { cancel(); <-ran }()
	toBob, _ := alice.book.Get("bob")
	waitConnected(t, alice, toBob)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	var ids []wire.MessageID
	for i := range 20 {
		id, st, err := alice.client.Send(sctx, toBob, []byte{'m', byte('a' + i)}, false)
		if err != nil || st != bridge.StateStored {
			t.Fatalf("send %d: %q %v", i, st, err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		for {
			saved, _ := alice.store.State(sctx, toBob.Public.Fingerprint(), id)
			if saved == bridge.StateStored {
				break
			}
			select {
			case <-alice.client.Changed():
			case <-sctx.Done():
				t.Fatalf("store says %q", saved)
			}
		}
	}
	if out, _ := alice.store.Outbox(sctx); len(out) != 0 {
		t.Fatalf("outbox still holds %d entries", len(out))
	}
	if recs := receive(t, bob, 20, 5*time.Second); len(recs) != 20 {
		t.Fatalf("bob got %d messages", len(recs))
	}
}

// Two processes of one identity: one keeps Run's connection (as `wschat
// mcp` does) and sends on it, the other sends on connections of its own
// (as a cron `wschat send`), at the same time, on the same store file.
// Every Send hears its own answer; bob gets each message once.
func TestSendTwoClientsOneIdentity(t *testing.T) {
	w := newWorld(t)
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	cron := &party{id: alice.id, book: alice.book, dir: alice.dir}
	cron.open(w)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan struct{})
	go func() { defer close(ran); alice.client.Run(ctx, nil, nil) }()
	defer func() { cancel(); <-ran }()
	toBob, _ := alice.book.Get("bob")
	waitConnected(t, alice, toBob)
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	defer scancel()
	const n = 10
	errs := make(chan error, 2*n)
	for _, p := range []*party{alice, cron} {
		go func() {
			for i := range n {
				_, st, err := p.client.Send(sctx, toBob, []byte{'x', byte('a' + i)}, false)
				if err == nil && st != bridge.StateStored {
					err = errors.New("state " + st)
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
	if recs := receive(t, bob, 2*n, 5*time.Second); len(recs) != 2*n {
		t.Fatalf("bob got %d messages, want %d", len(recs), 2*n)
	}
	if out, _ := cron.store.Outbox(sctx); len(out) != 0 {
		t.Fatalf("outbox still holds %d entries", len(out))
	}
}

// A refusal reaches a Send on its own connection at once, too; the
// refused message leaves the outbox with the refusal recorded, so that it
// is not refused again on every connection.
func TestSendRefusedOnOwnConnection(t *testing.T) {
	w := newWorldLimits(t, relayd.MailboxLimits{MaxFrames: 1})
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	toBob, _ := alice.book.Get("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, st, err := alice.client.Send(ctx, toBob, []byte("one"), false); err != nil || st != bridge.StateStored {
		t.Fatalf("first: %q %v", st, err)
	}
	start := time.Now()
	id, _, err := alice.client.Send(ctx, toBob, []byte("two"), false)
	if err == nil || !strings.Contains(err.Error(), "mailbox_full") || time.Since(start) > 5*time.Second {
		t.Fatalf("second, over the quota: %v after %v", err, time.Since(start))
	}
	var re *bridge.RefusedError
	if !errors.As(err, &re) || re.Reason != wire.ReasonMailboxFull || re.Temporary() {
		t.Fatalf("second: %#v", err)
	}
	if st, _ := alice.store.State(ctx, toBob.Public.Fingerprint(), id); st != bridge.StateRefused {
		t.Fatalf("refused message is %q, want %q", st, bridge.StateRefused)
	}
	if r, ok, err := alice.store.Refusal(ctx, toBob.Public.Fingerprint(), id); !ok || r != wire.ReasonMailboxFull || err != nil {
		t.Fatalf("recorded refusal %v %v %v", r, ok, err)
	}
	if out, _ := alice.store.Outbox(ctx); len(out) != 0 {
		t.Fatalf("the outbox still holds %d entries", len(out))
	}
}

// waitConnected waits until p's Run has its connection up.
func waitConnected(t *testing.T, p *party, to keys.Contact) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.client.SendLive(context.Background(), to, wire.TypePresence, true) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Run never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A Send that cannot reach the relay leaves the message in the outbox.
func TestSendRelayDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	rid, _ := wire.NewRelayIdentity(rand.Reader)
	addr := wire.RelayAddress{URL: "ws://" + ln.Addr().String() + "/", Key: rid.Public()}
	ln.Close()
	w := &world{t: t, relay: addr}
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	toBob, _ := alice.book.Get("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, st, err := alice.client.Send(ctx, toBob, []byte("later"), false)
	if err == nil || st != bridge.StatePending {
		t.Fatalf("send with the relay down: %q %v", st, err)
	}
	if out, _ := alice.store.Outbox(ctx); len(out) != 1 || out[0].ID != id {
		t.Fatalf("outbox holds %+v, want the message", out)
	}
}

// A Send whose message cannot be stored returns at once, even while the
// connection it was dialing is stuck before the handshake.
func TestSendStoreFailsDropsDial(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	rid, _ := wire.NewRelayIdentity(rand.Reader)
	w := &world{t: t, relay: wire.RelayAddress{URL: "ws://" + ln.Addr().String() + "/", Key: rid.Public()}}
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	toBob, _ := alice.book.Get("bob")
	alice.store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel() // ends the stuck dial when the test is done
	start := time.Now()
	if _, _, err := alice.client.Send(ctx, toBob, []byte("lost?"), false); err == nil {
		t.Fatal("send with a closed store succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("send took %v", d)
	}
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(time.Second):
	}
}

// A Dial stuck in the handshake (the relay upgraded the connection and
// went quiet) ends when its context is cancelled, not at its timeout.
func TestDialCancelledInHandshake(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Answer the upgrade, then say nothing.
			buf := make([]byte, 4096)
			c.Read(buf)
			c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: " + acceptKey(buf) + "\r\nSec-WebSocket-Protocol: " + bridge.Subprotocol + "\r\n\r\n"))
			defer c.Close()
		}
	}()
	rid, _ := wire.NewRelayIdentity(rand.Reader)
	addr := wire.RelayAddress{URL: "ws://" + ln.Addr().String() + "/", Key: rid.Public()}
	id, _ := wire.NewIdentity(rand.Reader)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := bridge.Dial(ctx, addr, id, bridge.DialOptions{Timeout: 10 * time.Second})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("dial: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("dial took %v after its context was cancelled", d)
	}
}

// acceptKey answers the Sec-WebSocket-Key of a raw upgrade request.
func acceptKey(req []byte) string {
	for _, line := range strings.Split(string(req), "\r\n") {
		if k, ok := strings.CutPrefix(line, "Sec-WebSocket-Key: "); ok {
			h := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			return base64.StdEncoding.EncodeToString(h[:])
		}
	}
	return ""
}

// A Send to a relay that does not hold the pinned key fails (its frame
// went out right behind Auth, and nowhere else) and keeps the message in
// the outbox.
func TestSendWrongRelayKey(t *testing.T) {
	w := newWorld(t)
	wrong, _ := wire.NewRelayIdentity(rand.Reader)
	w.relay.Key = wrong.Public()
	alice, bob := w.party("alice"), w.party("bob")
	befriend(t, alice, bob, "alice", "bob")
	toBob, _ := alice.book.Get("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, st, err := alice.client.Send(ctx, toBob, []byte("to an impostor?"), false)
	if err == nil || st != bridge.StatePending {
		t.Fatalf("send with the wrong relay key: %q %v", st, err)
	}
	t.Logf("error: %v", err)
	if out, _ := alice.store.Outbox(ctx); len(out) != 1 || out[0].ID != id {
		t.Fatalf("outbox holds %+v, want the message", out)
	}
}
