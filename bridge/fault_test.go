package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/relayd/relaytest"
	"github.com/wschat/wschat/wire"
)

// Hundreds of messages between two clients through a network that drops,
// duplicates, reorders and delays WebSocket messages, with the relay
// restarting halfway: every message is stored by the recipient exactly
// once, and every one that Send confirmed arrives. (Any fault
// desynchronises a connection's blinding, so this exercises detection,
// reconnects, leases and resending from the outbox.)
func TestFaultyNetworkExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	r := startRelay(t)
	var faulty atomic.Bool
	faulty.Store(true)
	random := relaytest.Random(1, 0.03, 0.03, 0.03, 0.05)
	p := relaytest.NewProxy(t, r.Addr, func(d relaytest.Direction, n int) relaytest.Action {
		if !faulty.Load() {
			return relaytest.Pass
		}
		return random(d, n)
	})
	p.DelayBy = 5 * time.Millisecond
	alice, bob := newParty(t, "alice", p.Addr), newParty(t, "bob", p.Addr)
	befriend(t, alice, bob, "alice", "bob")
	go bob.client.Run(t.Context(), nil, nil)
	toBob := alice.contact("bob")
	const n = 200
	confirmed := map[wire.MessageID]bool{}
	var failed int
	for i := range n {
		if i == n/2 {
			r.Restart()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		id, _, err := alice.client.Send(ctx, toBob, fmt.Appendf(nil, "message %d", i), false)
		cancel()
		switch {
		case err == nil:
			confirmed[id] = true
		case errors.Is(err, bridge.ErrNotConfirmed), errors.As(err, new(*bridge.RelayError)), errors.As(err, new(*bridge.RefusedError)):
			failed++
		default:
			t.Fatalf("send %d: %v", i, err)
		}
	}
	t.Logf("%d confirmed, %d left in the outbox by a fault", len(confirmed), failed)
	faulty.Store(false)
	alice.running() // its flusher hands the rest over
	got := bob.received(n, wire.TypeText, 30*time.Second)
	seen := map[wire.MessageID]bool{}
	bodies := map[string]bool{}
	for _, rec := range got {
		if seen[rec.ID] || bodies[string(rec.Body)] {
			t.Fatalf("message %s (%q) stored twice", rec.ID, rec.Body)
		}
		seen[rec.ID], bodies[string(rec.Body)] = true, true
	}
	for id := range confirmed {
		if !seen[id] {
			t.Errorf("confirmed message %s never arrived", id)
		}
	}
	if len(got) != n {
		t.Fatalf("bob stored %d messages, want %d", len(got), n)
	}
}

// The relay takes a message but its custody answer never reaches the
// sender (the connection is cut): Send fails, and the message is in the
// sender's history and outbox, not missing; the next hand-over sends it
// again and the recipient shows it once.
func TestCutAfterCustody(t *testing.T) {
	r := startRelay(t)
	var cut atomic.Bool
	p := relaytest.NewProxy(t, r.Addr, func(d relaytest.Direction, n int) relaytest.Action {
		// ToClient: hello, welcome, then the custody answer.
		if cut.Load() && d == relaytest.ToClient && n == 2 {
			return relaytest.Cut
		}
		return relaytest.Pass
	})
	alice, bob := newParty(t, "alice", p.Addr), newParty(t, "bob", p.Addr)
	befriend(t, alice, bob, "alice", "bob")
	toBob := alice.contact("bob")
	cut.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, st, err := alice.client.Send(ctx, toBob, []byte("did it go?"), false)
	if err == nil || st != bridge.StatePending {
		t.Fatalf("send with the answer cut off: %q %v", st, err)
	}
	if out, _ := alice.store.Outbox(ctx); len(out) != 1 || out[0].ID != id {
		t.Fatalf("outbox %+v", out)
	}
	if recs, _ := alice.store.After(ctx, 0, bridge.DirOut, 10); len(recs) != 1 || recs[0].ID != id {
		t.Fatalf("history %+v", recs)
	}
	cut.Store(false)
	deliver(t, alice)
	if st := alice.state(toBob, id); st != bridge.StateStored {
		t.Fatalf("state %q after the second hand-over", st)
	}
	stop := bob.running()
	got := bob.received(2, wire.TypeText, time.Second)
	stop()
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("bob has %+v", got)
	}
}
