package bridge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// Queue seals a message to a contact and puts it in the outbox (and the
// history); Run's flusher hands it to the contact's relay.
func (c *Client) Queue(ctx context.Context, to keys.Contact, typ wire.MessageType, body []byte) (wire.MessageID, error) {
	o, err := c.seal(to, typ, body)
	if err != nil {
		return wire.MessageID{}, err
	}
	if _, err := c.store.AddOutgoing(ctx, o, Lease{}, c.now()); err != nil {
		return o.Message.ID, err
	}
	c.wake()
	return o.Message.ID, nil
}

// seal makes the outbox entry for a message to a contact, not yet saved.
func (c *Client) seal(to keys.Contact, typ wire.MessageType, body []byte) (Outgoing, error) {
	p, err := c.pair(to.Public)
	if err != nil {
		return Outgoing{}, err
	}
	id, err := wire.NewMessageID(rand.Reader)
	if err != nil {
		return Outgoing{}, err
	}
	m := &wire.Message{ID: id, SentAt: c.now(), Type: typ, Body: body}
	env, err := p.Seal(nil, m, rand.Reader)
	if err != nil {
		return Outgoing{}, err
	}
	_, relay := c.relayOf(to)
	return Outgoing{Peer: to.Public, Message: m, Envelope: env, Flags: frameFlags(typ), Relay: relay, Record: true}, nil
}

// MarkRead tells a contact that a person has seen these messages (a read
// acknowledgement, through the outbox like any message).
func (c *Client) MarkRead(ctx context.Context, to keys.Contact, ids ...wire.MessageID) error {
	for len(ids) > 0 {
		n := min(len(ids), 1024)
		if _, err := c.Queue(ctx, to, wire.TypeRead, wire.AckBody(ids[:n]...)); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// Flush asks Run (if it runs) to hand the outbox over now; otherwise the
// outbox waits for the next connection.
func (c *Client) Flush(ctx context.Context) error {
	c.wake()
	return nil
}

// Send queues body for a contact as a text message and waits until the
// contact's relay has taken custody of it or, with waitDelivered, until
// the contact's client has acknowledged it. It returns the message id and
// its last known state. A message that no relay took stays in the outbox
// (the error says why: a *RelayError names the relay); one the relay
// refused for good does not (a *RefusedError).
//
// The message is in the store (history and outbox) before it goes out, so
// a process killed at any point leaves it pending or sent, never missing.
// It goes out over Run's connection to the contact's relay if there is
// one, else over a connection of its own, which first takes along older
// outbox entries for that relay that no other process holds.
func (c *Client) Send(ctx context.Context, to keys.Contact, body []byte, waitDelivered bool) (wire.MessageID, State, error) {
	op := &sendOp{c: c, to: to, wait: waitDelivered, state: StatePending}
	op.relay, _ = c.relayOf(to)
	err := op.run(ctx, body)
	return op.id, op.state, err
}

// sendOp is one Send, step by step:
//
//	queue    seal the message, commit it to the history and the outbox,
//	         leased to this client; meanwhile
//	connect  find or dial a connection to the contact's relay, and (to
//	         wait for delivery) a receiving one to the own relay
//	hand     send older outbox entries for that relay (leased while
//	         queueing), then the message
//	wait     for the relay's custody answer, then (if asked) for the
//	         contact's acknowledgement in the store
//	finish   close the connections it dialed (their unanswered entries'
//	         leases are given up), forget the wait
type sendOp struct {
	c     *Client
	to    keys.Contact
	relay wire.RelayAddress // the contact's
	wait  bool              // for the contact's acknowledgement

	id     wire.MessageID
	entry  Pending
	older  []Pending // older outbox entries for the same relay, leased
	answer *future[custodyAnswer]
	send   *session   // the connection the message goes out on
	own    []*session // connections this op dialed
	state  State      // last known
}

func (op *sendOp) run(ctx context.Context, body []byte) error {
	// The one latency trick of a one-shot send: the connection is dialed
	// while the message is sealed and committed (each is a millisecond
	// or more), not after. It buys ~1 ms at the median of a cold
	// `wschat send` (BenchmarkSendColdVsBase).
	dctx, cancelDial := context.WithCancel(ctx)
	defer cancelDial()
	connected := make(chan error, 1)
	go func() { connected <- op.connect(dctx) }()
	if err := op.queue(ctx, body); err != nil {
		cancelDial()
		<-connected
		op.closeOwn()
		return err
	}
	defer op.finish()
	if err := <-connected; err != nil {
		op.c.store.NoteRelayError(context.WithoutCancel(ctx), op.entry.Relay, op.c.owner, op.c.now(), err.Error())
		return err
	}
	if err := op.hand(ctx); err != nil {
		return &RelayError{Relay: op.relay, Err: err}
	}
	return op.waitFor(ctx)
}

func (op *sendOp) queue(ctx context.Context, body []byte) error {
	c := op.c
	o, err := c.seal(op.to, wire.TypeText, body)
	if err != nil {
		return err
	}
	op.id = o.Message.ID
	op.entry = Pending{ID: op.id, PeerFP: o.Peer.Fingerprint(), To: o.Peer.ID(), Relay: o.Relay, Envelope: o.Envelope, Flags: o.Flags}
	op.answer = c.await(op.id) // before the message can reach the relay
	if _, err := c.store.AddOutgoing(ctx, o, c.lease(), c.now()); err != nil {
		c.forget(op.id)
		return err
	}
	// Older entries for this relay that no process holds go first (the
	// relay answers in order).
	older, err := c.store.LeaseOutbox(ctx, op.entry.Relay, c.lease(), c.now(), 256, func(id wire.MessageID) bool {
		return id == op.id || c.isInHand(id)
	})
	op.older = older
	return err
}

func (op *sendOp) connect(ctx context.Context) error {
	c := op.c
	own := c.Relay()
	if s := c.session(op.relay, false); s != nil {
		op.send = s
	} else {
		s, err := c.dial(ctx, op.relay, op.wait && op.relay == own, true)
		if err != nil {
			return err
		}
		op.send, op.own = s, append(op.own, s)
	}
	if op.wait && !op.send.receive && c.session(own, true) == nil {
		s, err := c.dial(ctx, own, true, true)
		if err != nil {
			return err
		}
		op.own = append(op.own, s)
	}
	return nil
}

func (op *sendOp) hand(ctx context.Context) error {
	return op.send.hand(append(op.older, op.entry))
}

func (op *sendOp) waitFor(ctx context.Context) error {
	c := op.c
	fp := op.to.Public.Fingerprint()
	answer := op.answer.done
	for {
		var changed <-chan struct{}
		if op.wait && answer == nil {
			// The contact's acknowledgement is read from the store; the
			// channel is taken before looking, so no change is missed.
			changed = c.Changed()
			got, err := c.store.State(ctx, fp, op.id)
			if err != nil {
				return err
			}
			if got.Rank() > op.state.Rank() {
				op.state = got
			}
		}
		if op.state.InCustody() && (!op.wait || op.state.Delivered()) {
			return nil
		}
		select {
		case <-answer:
			answer = nil
			a := op.answer.v
			switch {
			case a.lost != nil:
				return &RelayError{Relay: op.relay, Err: a.lost}
			case a.state == "":
				op.state = StateRefused
				if temporaryRefusal(a.reason) {
					op.state = StatePending
				}
				return &RefusedError{ID: op.id, Relay: op.relay, Reason: a.reason}
			}
			if a.state.Rank() > op.state.Rank() {
				op.state = a.state
			}
			if a.saveErr != nil {
				return a.saveErr // in custody, not recorded here
			}
		case <-changed:
		case <-ctx.Done():
			return ErrNotConfirmed
		}
	}
}

func (op *sendOp) finish() {
	op.c.forget(op.id)
	op.closeOwn()
}

func (op *sendOp) closeOwn() {
	for _, s := range op.own {
		s.close()
	}
}

// SendLive sends a typing or presence message to a contact over an open
// connection of Run's to the contact's relay, delivered only if the
// contact is online now. It returns ErrOffline when there is none.
func (c *Client) SendLive(ctx context.Context, to keys.Contact, typ wire.MessageType, on bool) error {
	if !typ.Ephemeral() {
		return fmt.Errorf("%s is not an ephemeral message type", typ)
	}
	relay, _ := c.relayOf(to)
	s := c.session(relay, false)
	if s == nil {
		return ErrOffline
	}
	p, err := c.pair(to.Public)
	if err != nil {
		return err
	}
	id, err := wire.NewMessageID(rand.Reader)
	if err != nil {
		return err
	}
	var b byte
	if on {
		b = 1
	}
	env, err := p.Seal(nil, &wire.Message{ID: id, SentAt: c.now(), Type: typ, Body: []byte{b}}, rand.Reader)
	if err != nil {
		return err
	}
	_, err = s.conn.SendData(to.Public.ID(), wire.FlagEphemeral, env)
	return err
}

// Deliver hands the whole outbox over, relay by relay, over connections
// of its own (or Run's), and waits for the relays' answers: what a
// one-shot program does before it exits. It returns how many entries the
// relays took; a relay that could not be reached is a *RelayError (the
// others are still tried), entries for it stay in the outbox.
func (c *Client) Deliver(ctx context.Context) (int, error) {
	relays, err := c.store.OutboxRelays(ctx, c.owner, c.now())
	if err != nil {
		return 0, err
	}
	taken := 0
	var errs []error
	for _, name := range relays {
		n, err := c.deliverTo(ctx, name)
		taken += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return taken, errors.Join(errs...)
}

func (c *Client) deliverTo(ctx context.Context, name string) (int, error) {
	relay, err := c.resolve(name)
	if err != nil {
		return 0, err
	}
	s := c.session(relay, false)
	if s == nil {
		if s, err = c.dial(ctx, relay, false, true); err != nil {
			c.store.NoteRelayError(context.WithoutCancel(ctx), name, c.owner, c.now(), err.Error())
			return 0, err
		}
		defer s.close()
	}
	ps, err := c.store.LeaseOutbox(ctx, name, c.lease(), c.now(), 4096, c.isInHand)
	if err != nil {
		return 0, err
	}
	answers := make([]*future[custodyAnswer], len(ps))
	for i, p := range ps {
		answers[i] = c.await(p.ID)
		defer c.forget(p.ID)
	}
	if err := s.hand(ps); err != nil {
		return 0, &RelayError{Relay: relay, Err: err}
	}
	taken := 0
	var refused error
	for i, f := range answers {
		select {
		case <-f.done:
		case <-ctx.Done():
			return taken, ErrNotConfirmed
		}
		switch a := f.v; {
		case a.lost != nil:
			return taken, &RelayError{Relay: relay, Err: a.lost}
		case a.saveErr != nil:
			return taken, a.saveErr
		case a.state == "":
			refused = &RefusedError{ID: ps[i].ID, Relay: relay, Reason: a.reason}
		default:
			taken++
		}
	}
	return taken, refused
}
