package bridge_test

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/relayd/relaytest"
	"github.com/wschat/wschat/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

// party is one identity with its home, as a process would open it.
type party struct {
	t      *testing.T
	id     *wire.Identity
	relay  wire.RelayAddress // where it receives
	book   *keys.Book
	store  *bridge.Store
	client *bridge.Client
	dir    string
}

func newParty(t *testing.T, name string, relay wire.RelayAddress) *party {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	id, _ := wire.NewIdentity(rand.Reader)
	book, err := keys.OpenBook(filepath.Join(dir, "contacts"))
	if err != nil {
		t.Fatal(err)
	}
	p := &party{t: t, id: id, relay: relay, book: book, dir: dir}
	p.open()
	// Registered, as wschat keygen makes it: a relay stores only for
	// registered identities. (Some tests' relays are down on purpose.)
	if relay.URL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		p.client.Probe(ctx, relay, true)
		cancel()
	}
	return p
}

// open (re)opens the party's store and client, as a new process would.
func (p *party) open() {
	p.t.Helper()
	store, err := bridge.OpenStore(filepath.Join(p.dir, "messages.db"), true)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { store.Close() })
	p.store = store
	p.client = bridge.NewClient(bridge.Config{Identity: p.id, Relay: p.relay, Book: p.book, Store: store, DialTimeout: 3 * time.Second})
}

// process is another process of the same identity: its own store
// connection and client on the same files.
func (p *party) process() *party {
	p.t.Helper()
	q := &party{t: p.t, id: p.id, relay: p.relay, book: p.book, dir: p.dir}
	q.open()
	return q
}

func (p *party) invite() keys.Invite {
	inv, _ := keys.NewInvite(p.id.Public(), "nick", p.relay.String())
	return inv
}

// befriend adds each to the other's book, with the relay each receives on.
func befriend(t *testing.T, a, b *party, an, bn string) {
	t.Helper()
	if _, err := a.book.Add(bn, b.invite()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.book.Add(an, a.invite()); err != nil {
		t.Fatal(err)
	}
}

func (p *party) contact(name string) keys.Contact {
	p.t.Helper()
	c, err := p.book.Get(name)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// deliver hands p's outbox over and waits for the relays' answers.
func deliver(t *testing.T, p *party) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := p.client.Deliver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// running runs p's Run until the test ends (or stop is called) and
// waits until its receiving connection is up.
func (p *party) running() (stop func() error) {
	p.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.client.Run(ctx, nil, nil) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	p.t.Cleanup(func() { stop() })
	deadline := time.Now().Add(5 * time.Second)
	for !p.client.Connected() {
		if time.Now().After(deadline) {
			p.t.Fatal("Run never connected")
		}
		select {
		case <-p.client.Changed():
		case <-time.After(50 * time.Millisecond):
		case err := <-done:
			p.t.Fatalf("Run ended: %v", err)
		}
	}
	return stop
}

// received waits until p's store holds at least n incoming records of
// type typ (Run must be running), and returns them.
func (p *party) received(n int, typ wire.MessageType, timeout time.Duration) []bridge.Record {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		changed := p.client.Changed()
		recs, err := p.store.After(context.Background(), 0, bridge.DirIn, 100000)
		if err != nil {
			p.t.Fatal(err)
		}
		var out []bridge.Record
		for _, r := range recs {
			if r.Type == typ {
				out = append(out, r)
			}
		}
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond): // another process's writes
		}
	}
}

// receive runs p's Run until n text messages are stored or the timeout
// passes, and returns them.
func (p *party) receive(n int, timeout time.Duration) []bridge.Record {
	p.t.Helper()
	stop := p.running()
	defer stop()
	return p.received(n, wire.TypeText, timeout)
}

// state is p's stored state of its message id to contact.
func (p *party) state(to keys.Contact, id wire.MessageID) bridge.State {
	st, err := p.store.State(context.Background(), to.Public.Fingerprint(), id)
	if err != nil {
		p.t.Fatal(err)
	}
	return st
}

// waitState waits until p's message id to contact reaches want.
func (p *party) waitState(to keys.Contact, id wire.MessageID, want bridge.State, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		changed := p.client.Changed()
		st := p.state(to, id)
		if st.Rank() >= want.Rank() {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("message %s is %q, want %q", id, st, want)
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func startRelay(t *testing.T) *relaytest.Relay { return relaytest.Start(t, relaytest.Options{}) }
