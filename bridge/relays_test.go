package bridge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/wire"
)

// gina receives on relay B, alice on relay A. A message to alice goes to
// A (her relay, from her invite), alice's receipt comes back through B,
// and gina's --wait delivered sees it. It used to sit on B forever.
func TestContactOnAnotherRelay(t *testing.T) {
	a, b := startRelay(t), startRelay(t)
	alice, gina := newParty(t, "alice", a.Addr), newParty(t, "gina", b.Addr)
	befriend(t, alice, gina, "alice", "gina")
	alice.running()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	toAlice := gina.contact("alice")
	id, st, err := gina.client.Send(ctx, toAlice, []byte("hello across relays"), true)
	if err != nil || !st.Delivered() {
		t.Fatalf("send, waiting for delivery: %q %v", st, err)
	}
	got := alice.received(1, wire.TypeText, time.Second)
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("alice got %+v", got)
	}
	if st, _ := b.Mailbox().Stats(); st.Frames != 0 {
		t.Fatalf("relay B keeps %d frames", st.Frames)
	}
	// And back: alice's answer goes to B, where gina receives.
	if _, _, err := alice.client.Send(ctx, alice.contact("gina"), []byte("hi gina"), false); err != nil {
		t.Fatal(err)
	}
	if got := gina.receive(1, 5*time.Second); len(got) != 1 || string(got[0].Body) != "hi gina" {
		t.Fatalf("gina got %+v", got)
	}
}

// A contact whose relay is down: the outbox keeps the message, Send says
// which relay, and Run's flusher hands it over once the relay is back.
func TestContactRelayDown(t *testing.T) {
	a, b := startRelay(t), startRelay(t)
	alice, gina := newParty(t, "alice", a.Addr), newParty(t, "gina", b.Addr)
	befriend(t, alice, gina, "alice", "gina")
	a.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	toAlice := gina.contact("alice")
	id, st, err := gina.client.Send(ctx, toAlice, []byte("while A is down"), false)
	var re *bridge.RelayError
	if !errors.As(err, &re) || re.Relay != a.Addr || st != bridge.StatePending {
		t.Fatalf("send with alice's relay down: %q %v", st, err)
	}
	a.Restart()
	gina.running() // the flusher dials A for the outbox
	gina.waitState(toAlice, id, bridge.StateStored, 10*time.Second)
	if got := alice.receive(1, 5*time.Second); len(got) != 1 || got[0].ID != id {
		t.Fatalf("alice got %+v", got)
	}
}

// alice moves from relay A to relay B. bob, offline, still writes to A;
// when he comes online his client applies alice's signed notice by itself
// (same keys: no trust change) and writes to B from then on. alice's
// client collects what bob left on A, then stops collecting there.
func TestRelayMoved(t *testing.T) {
	a, b := startRelay(t), startRelay(t)
	alice, bob := newParty(t, "alice", a.Addr), newParty(t, "bob", a.Addr)
	befriend(t, alice, bob, "alice", "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := alice.client.Probe(ctx, b.Addr, true); err != nil { // registers, as set-relay does
		t.Fatal(err)
	}
	n, err := alice.client.MoveTo(ctx, b.Addr)
	if err != nil || n != 1 {
		t.Fatalf("move: %d %v", n, err)
	}
	alice.relay = b.Addr
	if _, err := alice.client.Deliver(ctx); err != nil {
		t.Fatal(err)
	}
	toAlice := bob.contact("alice")
	before, _, err := bob.client.Send(ctx, toAlice, []byte("before the news"), false) // to A
	if err != nil {
		t.Fatal(err)
	}
	stop := bob.running()
	bob.received(1, wire.TypeRelayMoved, 5*time.Second)
	if c := bob.contact("alice"); c.Relay != b.Addr.String() || c.Public != toAlice.Public {
		t.Fatalf("bob's entry for alice: relay %q", c.Relay)
	}
	after, _, err := bob.client.Send(ctx, bob.contact("alice"), []byte("after the news"), false)
	if err != nil {
		t.Fatal(err)
	}
	// bob's receipt for the notice goes to alice's new relay.
	for out, _ := bob.store.Outbox(ctx); len(out) > 0; out, _ = bob.store.Outbox(ctx) {
		select {
		case <-bob.client.Changed():
		case <-ctx.Done():
			t.Fatalf("bob's outbox keeps %+v", out)
		}
	}
	stop()
	if st, _ := b.Mailbox().Stats(); st.Frames != 2 {
		t.Fatalf("relay B holds %d frames, want bob's second message and his receipt", st.Frames)
	}
	alice.running()
	got := alice.received(2, wire.TypeText, 10*time.Second)
	if len(got) != 2 || got[0].ID != before && got[1].ID != before || got[0].ID != after && got[1].ID != after {
		t.Fatalf("alice got %+v", got)
	}
	// The notice was delivered and A is empty: alice stops collecting there.
	deadline := time.Now().Add(10 * time.Second)
	for {
		drains, _ := alice.store.Drains(ctx, time.Now())
		if len(drains) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still draining %+v", drains)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// An old notice replayed under a new id changes nothing: the newest
	// notice wins (covered by the replay guard for the same id).
}
