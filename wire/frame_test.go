package wire

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func TestFramesBothWays(t *testing.T) {
	id := fixedIdentity(t, 1)
	cs, res := connect(t, id, fixedRelay(t), ConnReceive, rand.Reader)
	peer := fixedIdentity(t, 2).Public().ID()
	for i := 0; i < 100; i++ {
		// client -> relay: a data frame to peer, or a command.
		var wire []byte
		if i%3 == 0 {
			var err error
			if wire, _, err = cs.Send.AppendCommand(nil, &Command{Op: OpPing, Token: uint64(i)}); err != nil {
				t.Fatal(err)
			}
		} else {
			wire = append(make([]byte, FrameHeaderSize), bytes.Repeat([]byte{byte(i)}, 40)...)
			idx, err := cs.Send.SealHeader(wire, peer, FlagEphemeral*byte(i%2))
			if err != nil || idx != uint64(i) {
				t.Fatalf("frame %d: index %d, %v", i, idx, err)
			}
		}
		h, err := res.Session.Recv.OpenHeader(wire)
		if err != nil || h.Index != uint64(i) {
			t.Fatalf("frame %d: %+v, %v", i, h, err)
		}
		if i%3 == 0 {
			c, err := res.Session.Recv.OpenCommand(h, wire)
			if err != nil || c.Op != OpPing || c.Token != uint64(i) {
				t.Fatalf("frame %d: %+v, %v", i, c, err)
			}
			continue
		}
		if h.ID != peer || h.Flags != FlagEphemeral*byte(i%2) || wire[FrameHeaderSize] != byte(i) {
			t.Fatalf("frame %d: header %+v", i, h)
		}
		// relay -> client: forwarded with the sender's id, reblinded.
		fwd := bytes.Clone(wire)
		if _, err := res.Session.Send.SealHeader(fwd, id.Public().ID(), h.Flags); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(fwd[:FrameHeaderSize], wire[:FrameHeaderSize]) {
			t.Fatalf("frame %d: forwarded header equals the unblinded one", i)
		}
		g, err := cs.Recv.OpenHeader(fwd)
		if err != nil || g.ID != id.Public().ID() {
			t.Fatalf("frame %d forwarded: %+v, %v", i, g, err)
		}
	}
}

// Two connections of one client blind the same recipient differently.
func TestBlindingUnlinkable(t *testing.T) {
	id := fixedIdentity(t, 1)
	r := fixedRelay(t)
	peer := fixedIdentity(t, 2).Public().ID()
	headers := map[[FrameHeaderSize]byte]bool{}
	for conn := 0; conn < 4; conn++ {
		cs, _ := connect(t, id, r, 0, rand.Reader)
		for i := 0; i < 64; i++ {
			f := make([]byte, FrameHeaderSize+1)
			if _, err := cs.Send.SealHeader(f, peer, 0); err != nil {
				t.Fatal(err)
			}
			var h [FrameHeaderSize]byte
			copy(h[:], f)
			if headers[h] {
				t.Fatalf("connection %d frame %d repeats a blinded header", conn, i)
			}
			headers[h] = true
		}
	}
}

func TestFrameErrors(t *testing.T) {
	id := fixedIdentity(t, 1)
	cs, res := connect(t, id, fixedRelay(t), 0, rand.Reader)
	if _, err := cs.Send.SealHeader(make([]byte, FrameHeaderSize), RelayID, 0); !errors.Is(err, ErrFrameSize) {
		t.Fatalf("empty body: %v", err)
	}
	if _, err := cs.Send.SealHeader(make([]byte, MaxFrameSize+1), RelayID, 0); !errors.Is(err, ErrFrameSize) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := cs.Send.SealHeader(make([]byte, 20), RelayID, 0x04); !errors.Is(err, ErrFrameFlags) {
		t.Fatalf("unknown flag: %v", err)
	}
	if _, err := res.Session.Recv.OpenHeader(make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameSize) {
		t.Fatalf("oversized in: %v", err)
	}

	// A tampered, replayed or reordered command does not authenticate.
	c1, _, _ := cs.Send.AppendCommand(nil, &Command{Op: OpAck, Acks: []uint64{7}})
	c2, _, _ := cs.Send.AppendCommand(nil, &Command{Op: OpAck, Acks: []uint64{8}})
	bad := bytes.Clone(c1)
	bad[len(bad)-3] ^= 1
	h, err := res.Session.Recv.OpenHeader(bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.Session.Recv.OpenCommand(h, bad); !errors.Is(err, ErrCommandAuth) {
		t.Fatalf("tampered command: %v", err)
	}
	// c1 replayed in the place of c2: its header unblinds to garbage or
	// its nonce is wrong.
	h, err = res.Session.Recv.OpenHeader(bytes.Clone(c1))
	if err == nil {
		if _, err := res.Session.Recv.OpenCommand(h, c1); !errors.Is(err, ErrCommandAuth) {
			t.Fatalf("replayed command: %v", err)
		}
	}
	// A data frame never opens as a command.
	if _, err := res.Session.Recv.OpenCommand(Header{ID: RoutingID{1}}, c2); !errors.Is(err, ErrCommandAuth) {
		t.Fatalf("data header as command: %v", err)
	}
}

func TestCommandRoundTrip(t *testing.T) {
	cmds := []*Command{
		{Op: OpWelcome, Version: 1, ConnFlags: ConnReceive, Time: 1_790_000_000_000, MaxFrameSize: MaxFrameSize, ID: RoutingID{1, 2, 3, 4, 5, 6, 7, 8}},
		{Op: OpCustody, Custody: []CustodyEntry{{Index: 0, Status: StatusDelivered}, {Index: 1, Status: StatusStored}, {Index: 9, Status: StatusRefused, Reason: ReasonMailboxFull}}},
		{Op: OpAck, Acks: []uint64{0, 1, 1 << 40}},
		{Op: OpError, Reason: ReasonRateLimited, RetryAfter: 1500},
		{Op: OpPing, Token: 42},
		{Op: OpPong, Token: 42},
		{Op: OpRestarting, RetryAfter: 2000, TryFor: 60000},
		{Op: OpBacklogDone, Count: 12},
	}
	for _, c := range cmds {
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("%#x: %v", c.Op, err)
		}
		got, err := ParseCommand(b)
		if err != nil {
			t.Fatalf("%#x: %v", c.Op, err)
		}
		b2, _ := got.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatalf("%#x: %x re-encodes as %x", c.Op, b, b2)
		}
		if _, err := ParseCommand(b[:len(b)-1]); !errors.Is(err, ErrCommandMalformed) {
			t.Errorf("%#x truncated: %v", c.Op, err)
		}
		if _, err := ParseCommand(append(b, 0)); !errors.Is(err, ErrCommandMalformed) {
			t.Errorf("%#x extended: %v", c.Op, err)
		}
	}
	// One Command reused for every parse, as the relay's reader does: each
	// parse gives what a fresh ParseCommand gives.
	var reused Command
	for range 2 {
		for _, c := range cmds {
			b, _ := c.MarshalBinary()
			if err := reused.UnmarshalBinary(b); err != nil {
				t.Fatalf("%#x into a used Command: %v", c.Op, err)
			}
			b2, _ := reused.MarshalBinary()
			fresh, _ := ParseCommand(b)
			if !bytes.Equal(b, b2) || reused.Op != fresh.Op || reused.Token != fresh.Token || reused.Time != fresh.Time ||
				len(reused.Acks) != len(fresh.Acks) || len(reused.Custody) != len(fresh.Custody) {
				t.Fatalf("%#x into a used Command: %+v, want %+v", c.Op, reused, *fresh)
			}
		}
	}
	for _, bad := range []struct {
		b    []byte
		want error
	}{
		{nil, ErrCommandMalformed},
		{[]byte{0x7f}, ErrUnknownCommand},
		{[]byte{byte(OpAck), 0, 0}, ErrCommandMalformed},                                   // zero entries
		{[]byte{byte(OpCustody), 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0}, ErrCommandMalformed}, // bad status
		{[]byte{byte(OpCustody), 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 4}, ErrCommandMalformed}, // reason on success
	} {
		if _, err := ParseCommand(bad.b); !errors.Is(err, bad.want) {
			t.Errorf("%x: %v, want %v", bad.b, err, bad.want)
		}
	}
	if _, err := (&Command{Op: OpAck, Acks: make([]uint64, MaxCommandEntries+1)}).MarshalBinary(); !errors.Is(err, ErrCommandMalformed) {
		t.Errorf("too many acks: %v", err)
	}
	if ReasonMailboxFull.String() != "mailbox_full" || Reason(200).String() != "reason_200" {
		t.Error("reason labels")
	}
}

func TestReasonLabels(t *testing.T) {
	for r := ReasonNone; r < reasonCount; r++ {
		if got, ok := ParseReason(r.String()); !ok || got != r {
			t.Errorf("ParseReason(%q) = %v, %v", r.String(), got, ok)
		}
	}
	if _, ok := ParseReason("reason_200"); ok {
		t.Error("an unknown label parsed")
	}
}
