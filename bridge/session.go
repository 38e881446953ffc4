package bridge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// session is one connection to one relay, with the bookkeeping that
// matches custody answers to outbox entries and, on a receiving
// connection, stores what arrives before acknowledging it. Its reader
// goroutine (serve) owns the connection's read side; hand may be called
// from any goroutine.
type session struct {
	c       *Client
	relay   wire.RelayAddress // static
	conn    *relayconn.Conn   // static
	receive bool              // static

	closing atomic.Bool   // close was called: a read error is the end, not a failure
	done    chan struct{} // closed when serve returns
	err     error         // why serve returned; set before done closes
	backlog chan uint32   // BacklogDone's count; buffered 1

	handMu    sync.Mutex         // one hand-over at a time, so entries go out in order
	mu        sync.Mutex         // guards the fields below
	inCustody map[uint64]Pending // frame index -> entry awaiting the relay's answer
	restart   *wire.Command      // the relay's Restarting notice, if any
	lastUse   time.Time          // last hand-over or answer
}

func newSession(c *Client, relay wire.RelayAddress, conn *relayconn.Conn, receive bool) *session {
	return &session{c: c, relay: relay, conn: conn, receive: receive, done: make(chan struct{}), backlog: make(chan uint32, 1),
		inCustody: map[uint64]Pending{}, lastUse: c.now()}
}

func (s *session) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// close ends the connection gracefully: the frame in hand is finished
// (stored, its receipt sent, acknowledged to the relay), no other is
// read; then it closes and waits for serve, returning its error.
func (s *session) close() error {
	s.closing.Store(true)
	s.conn.SetReadDeadline(time.Now())
	select {
	case <-s.done:
	case <-time.After(2 * time.Second): // a store stuck on a lock
	}
	s.conn.Close()
	<-s.done
	return s.err
}

func (s *session) idleSince() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.inCustody) > 0 {
		return s.c.now()
	}
	return s.lastUse
}

// hand sends outbox entries, in order, skipping those this client has in
// hand on some connection already. The entries' leases are the caller's.
func (s *session) hand(ps []Pending) error {
	s.handMu.Lock()
	defer s.handMu.Unlock()
	for i, p := range ps {
		if !s.c.take(p.ID) {
			continue
		}
		// Under mu, so that the answer (read by serve) finds the entry.
		s.mu.Lock()
		idx, err := s.conn.SendData(p.To, p.Flags, p.Envelope)
		if err == nil {
			s.inCustody[idx] = p
			s.lastUse = s.c.now()
		}
		s.mu.Unlock()
		if err != nil {
			// The reader knows better why (the relay closed the
			// connection, perhaps because it could not read Auth).
			select {
			case <-s.done:
				if s.err != nil {
					err = s.err
				}
			case <-time.After(time.Second):
			}
			s.c.answer(p.ID, custodyAnswer{lost: err})
			s.release(ps[i:], err)
			return err
		}
	}
	return nil
}

// release gives up the leases of entries that will get no answer here.
func (s *session) release(ps []Pending, why error) {
	if len(ps) == 0 {
		return
	}
	ids := make([]wire.MessageID, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	s.c.store.Release(context.Background(), s.c.owner, fmt.Sprintf("connection to %s lost: %v", s.relay.URL, why), ids...)
}

// serve reads the connection until it fails or is closed: incoming
// messages are stored, then acknowledged to the relay; custody answers
// update the outbox. A store that cannot be written ends it with a
// *StoreError (the relay keeps what was not acknowledged).
func (s *session) serve() {
	err := s.read()
	s.mu.Lock()
	left := make([]Pending, 0, len(s.inCustody))
	for _, p := range s.inCustody {
		left = append(left, p)
	}
	clear(s.inCustody)
	if s.restart != nil && !isStoreError(err) {
		err = &ErrRestarting{RetryAfter: time.Duration(s.restart.RetryAfter) * time.Millisecond}
	}
	s.mu.Unlock()
	for _, p := range left {
		s.c.answer(p.ID, custodyAnswer{lost: err})
	}
	s.release(left, err)
	s.err = err
	close(s.done)
	s.c.broadcast()
}

func isStoreError(err error) bool {
	var se *StoreError
	return errors.As(err, &se)
}

func (s *session) read() error {
	for {
		in, err := s.conn.Read()
		if err != nil {
			if s.closing.Load() {
				return errClosed
			}
			return err
		}
		if in.Command != nil {
			err = s.command(in.Command)
		} else {
			err = s.incoming(in)
		}
		if err != nil {
			s.conn.Close()
			return err
		}
	}
}

// errClosed: the connection was closed on purpose.
var errClosed = errors.New("connection closed")

// ErrRestarting: the relay said it is restarting; RetryAfter says when to
// come back.
type ErrRestarting struct{ RetryAfter time.Duration }

func (e *ErrRestarting) Error() string {
	return fmt.Sprintf("relay is restarting (reconnect after %v)", e.RetryAfter)
}

func (s *session) command(cmd *wire.Command) error {
	switch cmd.Op {
	case wire.OpCustody:
		var fatal error
		for _, e := range cmd.Custody {
			s.mu.Lock()
			p, ok := s.inCustody[e.Index]
			delete(s.inCustody, e.Index)
			s.lastUse = s.c.now()
			s.mu.Unlock()
			if !ok {
				continue // a receipt handed without bookkeeping
			}
			a := s.custody(p, e)
			if a.saveErr != nil && fatal == nil {
				fatal = a.saveErr
			}
			s.c.answer(p.ID, a)
		}
		s.c.broadcast()
		return fatal
	case wire.OpBacklogDone:
		select {
		case s.backlog <- cmd.Count:
		default:
		}
	case wire.OpRestarting:
		s.mu.Lock()
		s.restart = cmd
		s.mu.Unlock()
	case wire.OpPing:
		s.conn.SendCommand(&wire.Command{Op: wire.OpPong, Token: cmd.Token})
	}
	return nil
}

// custody saves the relay's answer about p.
func (s *session) custody(p Pending, e wire.CustodyEntry) custodyAnswer {
	ctx := context.Background()
	var a custodyAnswer
	switch e.Status {
	case wire.StatusDelivered:
		a.state = StateSent
	case wire.StatusStored:
		a.state = StateStored
	default: // refused (the decoder lets no other status through)
		a.reason = e.Reason
		a.saveErr = s.c.store.Refused(ctx, p.PeerFP, p.ID, e.Reason)
		return a
	}
	a.saveErr = s.c.store.Custody(ctx, p.PeerFP, p.ID, a.state)
	return a
}

// incoming handles a data frame: verify, store, then acknowledge to the
// relay. A frame that cannot be verified is acknowledged too (dropped): the
// relay would otherwise offer it again forever. A frame that could not be
// stored is not acknowledged, and the store's error ends the connection.
func (s *session) incoming(in relayconn.Incoming) error {
	c := s.c
	ctx := context.Background()
	ack := func() error {
		if in.Header.Flags&wire.FlagEphemeral != 0 {
			return nil
		}
		return s.conn.SendCommand(&wire.Command{Op: wire.OpAck, Acks: []uint64{in.Header.Index}})
	}
	contact, err := c.sender(in)
	if errors.Is(err, keys.ErrUnknownContact) {
		c.log.Info("message from a stranger kept aside", "from_id", in.Header.ID)
		if err := c.store.AddStranger(ctx, in.Header.ID, c.now()); err != nil {
			return err
		}
		c.broadcast()
		return ack()
	}
	if err != nil {
		return err // the contact book cannot be read
	}
	p, err := c.pair(contact.Public)
	if err != nil {
		return ack()
	}
	m, err := p.Open(in.Body)
	if err != nil {
		c.log.Warn("dropped a frame that does not verify", "from", contact.Name, "err", err)
		return ack()
	}
	now := c.now()
	if m.SentAt.Before(now.Add(-wire.ReplayHorizon)) || m.SentAt.After(now.Add(wire.MaxClockSkew)) {
		c.log.Warn("dropped a message outside the replay horizon", "from", contact.Name, "sent_at", m.SentAt)
		return ack()
	}
	fp := contact.Public.Fingerprint()
	switch m.Type {
	case wire.TypeTyping, wire.TypePresence:
		c.mu.Lock()
		f := c.onLive
		c.mu.Unlock()
		if f != nil {
			f(Live{From: contact, Type: m.Type, On: len(m.Body) == 1 && m.Body[0] == 1})
		}
		return ack() // a no-op for ephemeral frames, as these should be
	case wire.TypeDelivered, wire.TypeRead:
		state := StateDelivered
		if m.Type == wire.TypeRead {
			state = StateRead
		}
		if _, err := c.store.SetState(ctx, fp, state, wire.AckIDs(m.Body)...); err != nil {
			return err
		}
	case wire.TypeRelayMoved:
		if contact, err = s.moved(ctx, contact, m); err != nil {
			return err
		}
	}
	if _, err := c.store.AddIncoming(ctx, contact.Public, m, now); err != nil && !errors.Is(err, ErrDuplicate) {
		return err
	}
	if m.Type == wire.TypeText || m.Type == wire.TypeRelayMoved {
		// The sender may be waiting for this; a redelivery is acknowledged
		// again, in case the first acknowledgement was lost. Before the
		// relay's Ack: a crash in between brings a redelivery, not silence.
		if err := s.receipt(ctx, contact, m.ID); err != nil {
			return err
		}
	}
	c.broadcast()
	return ack()
}

// moved applies a contact's relay-moved notice, unless a newer one was
// applied before, and returns the contact as it is now.
func (s *session) moved(ctx context.Context, contact keys.Contact, m *wire.Message) (keys.Contact, error) {
	c := s.c
	last, err := c.store.LastMove(ctx, contact.Public.Fingerprint(), m.ID)
	if err != nil {
		return contact, err
	}
	if !m.SentAt.After(last) {
		return contact, nil
	}
	relay := string(m.Body) // checked canonical by Open
	updated, err := c.book.SetRelay(contact.Name, contact.Public, relay)
	if err != nil {
		c.log.Warn("could not record a contact's new relay", "from", contact.Name, "err", err)
		return contact, nil
	}
	if err := c.store.Redirect(ctx, contact.Public.Fingerprint(), relay); err != nil {
		return contact, err
	}
	c.log.Info("contact moved to another relay", "contact", contact.Name, "relay", relay)
	c.wake()
	return updated, nil
}

// receipt tells the sender of message id that it is stored here: at once
// on this connection if the sender receives on this relay, else through
// the outbox, which Run's flusher hands to the sender's relay.
func (s *session) receipt(ctx context.Context, to keys.Contact, id wire.MessageID) error {
	c := s.c
	p, err := c.pair(to.Public)
	if err != nil {
		return nil
	}
	mid, err := wire.NewMessageID(rand.Reader)
	if err != nil {
		return err
	}
	m := &wire.Message{ID: mid, SentAt: c.now(), Type: wire.TypeDelivered, Body: wire.AckBody(id)}
	env, err := p.Seal(nil, m, rand.Reader)
	if err != nil {
		return err
	}
	relay, name := c.relayOf(to)
	if relay == s.relay {
		s.conn.SendData(to.Public.ID(), frameFlags(m.Type), env) // a lost receipt comes again with the redelivery
		return nil
	}
	if _, err := c.store.AddOutgoing(ctx, Outgoing{Peer: to.Public, Message: m, Envelope: env, Flags: frameFlags(m.Type), Relay: name}, Lease{}, c.now()); err != nil {
		return err
	}
	c.wake()
	return nil
}
