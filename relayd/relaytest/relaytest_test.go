package relaytest_test

import (
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/relayd/relaytest"
	"github.com/wschat/wschat/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A relay restarts on the same port with the same key and mailbox, and a
// proxy passes a whole exchange through; a dropped message desynchronises
// the connection, which the relay then closes.
func TestRelayAndProxy(t *testing.T) {
	r := relaytest.Start(t, relaytest.Options{})
	var drop atomic.Bool
	p := relaytest.NewProxy(t, r.Addr, func(d relaytest.Direction, n int) relaytest.Action {
		if drop.Load() && d == relaytest.ToRelay && n == relaytest.Handshake[d] {
			return relaytest.Drop
		}
		return relaytest.Pass
	})
	alice, _ := wire.NewIdentity(rand.Reader)
	bob, _ := wire.NewIdentity(rand.Reader)
	if bc, err := relayconn.Dial(context.Background(), r.Addr, bob, relayconn.Options{Receive: true}); err != nil { // registers bob
		t.Fatal(err)
	} else {
		bc.Close()
	}
	send := func(addr wire.RelayAddress) error {
		c, err := relayconn.Dial(context.Background(), addr, alice, relayconn.Options{})
		if err != nil {
			return err
		}
		defer c.Close()
		c.SendData(bob.Public().ID(), 0, make([]byte, wire.MinEnvelopeSize))
		c.SendData(bob.Public().ID(), 0, make([]byte, wire.MinEnvelopeSize))
		for n := 0; n < 2; {
			in, err := c.Read()
			if err != nil {
				return err
			}
			if in.Command != nil && in.Command.Op == wire.OpCustody {
				n += len(in.Command.Custody)
			}
		}
		return nil
	}
	if err := send(p.Addr); err != nil {
		t.Fatal(err)
	}
	r.Restart()
	if err := send(r.Addr); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	if st, _ := r.Mailbox().Stats(); st.Frames != 4 {
		t.Fatalf("mailbox holds %d frames, want 4 (it outlives restarts)", st.Frames)
	}
	drop.Store(true)
	if err := send(p.Addr); err == nil {
		t.Fatal("a dropped frame went unnoticed")
	}
	if r.Accepted() < 3 {
		t.Fatalf("accepted %d connections", r.Accepted())
	}
}
