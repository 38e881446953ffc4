package bridge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// Client is one identity's view of wschat: its contacts, its store, and
// connections to its relay. Safe for concurrent use.
type Client struct {
	id    *wire.Identity
	relay wire.RelayAddress
	book  *keys.Book
	store *Store
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	pairs    map[wire.Fingerprint]*wire.Pair         // guarded by mu: derived once per peer
	active   *Session                                // guarded by mu: Run's receiving connection, if up
	changed  chan struct{}                           // closed and replaced (under mu) when the store changes
	onLive   func(Live)                              // guarded by mu: receives typing and presence
	awaiting map[wire.MessageID]chan<- custodyAnswer // guarded by mu: Sends waiting for the relay's answer, by message

	dialing   *Dialing       // static: Config.Dialing; its take is once only
	finishing sync.WaitGroup // what Sends left running when they returned; Close waits
	finishErr error          // guarded by mu: the first failure of that work
}

// custodyAnswer is the relay's answer about one message, as a Session
// passes it to the Send waiting for it.
type custodyAnswer struct {
	state  string      // StateSent or StateStored; "" when refused
	reason wire.Reason // why the relay refused it
}

// Live is an ephemeral message from a contact (typing, presence): shown
// now or never, not stored.
type Live struct {
	From keys.Contact
	Type wire.MessageType
	On   bool // typing / online
}

// OnLive sets the function that receives typing and presence messages.
// It runs on the connection's goroutine and must not block.
func (c *Client) OnLive(f func(Live)) {
	c.mu.Lock()
	c.onLive = f
	c.mu.Unlock()
}

// SendLive sends a typing or presence message to a contact over Run's
// connection, delivered only if the contact is online now. It returns
// ErrOffline when Run has no connection up.
func (c *Client) SendLive(ctx context.Context, to keys.Contact, typ wire.MessageType, on bool) error {
	if !typ.Ephemeral() {
		return fmt.Errorf("%s is not an ephemeral message type", typ)
	}
	c.mu.Lock()
	s := c.active
	c.mu.Unlock()
	if s == nil {
		return ErrOffline
	}
	p, err := c.pair(to.Public)
	if err != nil {
		return err
	}
	id, _ := wire.NewMessageID(rand.Reader)
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

// ErrOffline: no connection to the relay is up.
var ErrOffline = errors.New("not connected to the relay")

// MarkRead tells a contact that a person has seen these messages (a read
// acknowledgement, through the outbox like any message).
func (c *Client) MarkRead(ctx context.Context, to keys.Contact, ids ...wire.MessageID) error {
	for len(ids) > 0 {
		n := min(len(ids), 1024)
		if _, err := c.Queue(ctx, to, wire.TypeRead, wire.AckBody(ids[:n]...), false); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return c.Flush(ctx)
}

// Flush hands the outbox to Run's connection, if one is up; otherwise the
// outbox waits for the next connection.
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	s := c.active
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	_, err := s.Flush(ctx)
	return err
}

// Config configures a Client.
type Config struct {
	Identity *wire.Identity
	Relay    wire.RelayAddress
	Book     *keys.Book
	Store    *Store
	Logger   *slog.Logger     // nil: discard
	Now      func() time.Time // nil: time.Now

	// Dialing, if not nil, is a connection to Relay as Identity begun
	// before the client was made (DialAhead). The client's first
	// connection that wants the same options (Send's: Early, and Receive
	// only to wait for delivery) takes it instead of dialing. The client
	// owns it: Close closes it if it went unused.
	Dialing *Dialing
}

// NewClient makes a client; it connects only when asked.
func NewClient(cfg Config) *Client {
	c := &Client{id: cfg.Identity, relay: cfg.Relay, book: cfg.Book, store: cfg.Store, log: cfg.Logger, now: cfg.Now, dialing: cfg.Dialing,
		pairs: make(map[wire.Fingerprint]*wire.Pair), changed: make(chan struct{}), awaiting: make(map[wire.MessageID]chan<- custodyAnswer)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Store is the client's store.
func (c *Client) Store() *Store { return c.store }

func (c *Client) pair(peer wire.PublicIdentity) (*wire.Pair, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pairs[peer.Fingerprint()]; ok {
		return p, nil
	}
	p, err := c.id.Pair(peer)
	if err != nil {
		return nil, err
	}
	c.pairs[peer.Fingerprint()] = p
	return p, nil
}

// Queue seals a message to a contact and puts it in the outbox (and the
// history). It goes out on the next connection that flushes the outbox.
func (c *Client) Queue(ctx context.Context, to keys.Contact, typ wire.MessageType, body []byte, waitAck bool) (wire.MessageID, error) {
	p, err := c.queue(ctx, to, typ, body, waitAck)
	return p.ID, err
}

// queue is Queue, returning the outbox entry.
func (c *Client) queue(ctx context.Context, to keys.Contact, typ wire.MessageType, body []byte, waitAck bool) (Pending, error) {
	p, m, err := c.seal(to, typ, body, waitAck)
	if err != nil {
		return Pending{}, err
	}
	if _, err := c.store.AddOutgoing(ctx, to.Public, m, p.Envelope, p.Flags, waitAck, m.SentAt); err != nil {
		return Pending{}, err
	}
	return p, nil
}

// seal makes the outbox entry for a message, not yet saved.
func (c *Client) seal(to keys.Contact, typ wire.MessageType, body []byte, waitAck bool) (Pending, *wire.Message, error) {
	p, err := c.pair(to.Public)
	if err != nil {
		return Pending{}, nil, err
	}
	id, err := wire.NewMessageID(rand.Reader)
	if err != nil {
		return Pending{}, nil, err
	}
	m := &wire.Message{ID: id, SentAt: c.now(), Type: typ, Body: body}
	env, err := p.Seal(nil, m, rand.Reader)
	if err != nil {
		return Pending{}, nil, err
	}
	return Pending{ID: id, PeerFP: to.Public.Fingerprint(), To: to.Public.ID(), Envelope: env, Flags: frameFlags(typ), WaitAck: waitAck}, m, nil
}

// saving is an outbox entry being committed on a goroutine of its own.
type saving struct {
	done chan struct{} // closed by the saving goroutine once err is set
	err  error
}

// saveAhead starts committing p (sealed from m) to the outbox and marks
// p as being saved. The commit outlives ctx's cancellation: a message
// that may be on its way must not vanish from the outbox.
func (c *Client) saveAhead(ctx context.Context, to wire.PublicIdentity, m *wire.Message, p *Pending) *saving {
	sv := &saving{done: make(chan struct{})}
	p.saved = sv.done
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer close(sv.done)
		_, sv.err = c.store.AddOutgoing(ctx, to, m, p.Envelope, 0, p.WaitAck, m.SentAt)
	}()
	return sv
}

// Session is one connection to the relay, with the bookkeeping that
// matches custody answers to outbox entries. Its methods are called from
// the goroutine that reads it (Serve), except Flush.
type Session struct {
	c    *Client
	conn *Conn

	flushMu sync.Mutex // held by Flush
	mu      sync.Mutex
	inCusto map[uint64]Pending // guarded by mu: frame index -> outbox entry awaiting custody
	notify  chan struct{}      // signalled when the store gains rows or states change
	custody chan struct{}      // signalled on every custody answer
	restart *wire.Command      // guarded by mu: the relay's Restarting notice, if any
}

// Connect dials the relay. receive says whether this connection takes the
// identity's incoming messages.
func (c *Client) Connect(ctx context.Context, receive bool) (*Session, error) {
	return c.connect(ctx, DialOptions{Receive: receive})
}

func (c *Client) connect(ctx context.Context, opt DialOptions) (*Session, error) {
	conn, ok := c.dialing.take(ctx, opt)
	if !ok {
		// Also when the early dial failed: it may have waited long
		// enough for the relay to give up on it.
		var err error
		if conn, err = Dial(ctx, c.relay, c.id, opt); err != nil {
			return nil, err
		}
	}
	return &Session{c: c, conn: conn, inCusto: map[uint64]Pending{}, notify: make(chan struct{}, 1), custody: make(chan struct{}, 1)}, nil
}

// dialing is a Connect running on a goroutine of its own, so that other
// work can go on meanwhile.
type dialing struct {
	cancel context.CancelFunc
	done   chan struct{} // closed by the dialing goroutine when s and err are set
	s      *Session
	err    error
}

// connectAhead starts Connect; wait or abandon must follow.
func (c *Client) connectAhead(ctx context.Context, receive bool) *dialing {
	ctx, cancel := context.WithCancel(ctx)
	d := &dialing{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		// Early: Send's Flush goes out right behind Auth, a round trip
		// sooner; Serve's first Read checks the relay's Welcome.
		s, err := c.connect(ctx, DialOptions{Receive: receive, Early: true})
		if err == nil && ctx.Err() != nil {
			s.Close() // abandoned while the handshake ran
			s, err = nil, ctx.Err()
		}
		d.s, d.err = s, err
	}()
	return d
}

// wait returns Connect's result.
func (d *dialing) wait() (*Session, error) {
	<-d.done
	d.cancel()
	return d.s, d.err
}

// abandon gives the dial up without waiting for it: cancelling ends the
// handshake (Dial closes the connection under it), and the dialing
// goroutine closes what it may still get.
func (d *dialing) abandon() { d.cancel() }

// Close closes the connection.
func (s *Session) Close() error { return s.conn.Close() }

// Notify is signalled (without blocking) when the store changed.
func (s *Session) Notify() <-chan struct{} { return s.notify }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Changed returns a channel that is closed at the next change to the
// store made through this client (a message in, a state moved).
func (c *Client) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *Client) broadcast() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Flush hands every outbox entry to the relay. Custody answers arrive
// through Serve.
func (s *Session) Flush(ctx context.Context) (int, error) {
	out, err := s.c.store.Outbox(ctx)
	if err != nil {
		return 0, err
	}
	s.flushMu.Lock() // one flush at a time, so no entry goes out twice
	defer s.flushMu.Unlock()
	for _, p := range out {
		if err := s.hand(p); err != nil {
			return 0, err
		}
	}
	return len(out), nil
}

// hand sends one outbox entry unless it is already on its way here.
func (s *Session) hand(p Pending) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight(p.ID) {
		return nil
	}
	idx, err := s.conn.SendData(p.To, p.Flags, p.Envelope)
	if err == nil {
		s.inCusto[idx] = p
	}
	return err
}

func (s *Session) inFlight(id wire.MessageID) bool {
	for _, p := range s.inCusto {
		if p.ID == id {
			return true
		}
	}
	return false
}

// Awaiting is the number of frames still waiting for a custody answer.
func (s *Session) Awaiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inCusto)
}

// CustodySignal is signalled on every custody answer.
func (s *Session) CustodySignal() <-chan struct{} { return s.custody }

// ErrRestarting: the relay said it is restarting; RetryAfter says when to
// come back.
type ErrRestarting struct{ RetryAfter time.Duration }

func (e *ErrRestarting) Error() string {
	return fmt.Sprintf("relay is restarting (reconnect after %v)", e.RetryAfter)
}

// Refused reports a frame the relay refused.
type Refused struct {
	ID     wire.MessageID
	Reason wire.Reason
}

// Serve reads the connection until it fails or ctx ends: incoming
// messages are stored, then acknowledged to the relay; custody answers
// and end-to-end acknowledgements update the outbox. refused, if not nil,
// receives the relay's refusals.
func (s *Session) Serve(ctx context.Context, refused func(Refused)) error {
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		in, err := s.conn.Read()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.mu.Lock()
			r := s.restart
			s.mu.Unlock()
			if r != nil {
				return &ErrRestarting{RetryAfter: time.Duration(r.RetryAfter) * time.Millisecond}
			}
			return err
		}
		if in.Command != nil {
			s.command(ctx, in.Command, refused)
			continue
		}
		s.incoming(ctx, in)
	}
}

func (s *Session) command(ctx context.Context, cmd *wire.Command, refused func(Refused)) {
	switch cmd.Op {
	case wire.OpCustody:
		for _, e := range cmd.Custody {
			s.mu.Lock()
			p, ok := s.inCusto[e.Index]
			s.mu.Unlock()
			if !ok {
				continue
			}
			var a custodyAnswer
			switch e.Status {
			case wire.StatusDelivered:
				a.state = StateSent
			case wire.StatusStored:
				a.state = StateStored
			default: // refused (the decoder lets no other status through)
				a.reason = e.Reason
			}
			// The waiting Send hears first; the store follows at once. Its
			// outbox row stays until then, so a crash in between sends
			// the message again (shown once), never loses it.
			s.c.answer(p.ID, a)
			if p.saved != nil {
				<-p.saved // Send's commit of the entry may still be running
			}
			if a.state != "" {
				s.c.store.SetState(ctx, p.PeerFP, p.ID, a.state)
			} else {
				if !temporaryRefusal(e.Reason) { // it leaves the outbox, and says why
					s.c.store.Refuse(ctx, p.PeerFP, p.ID, e.Reason, s.c.now())
				}
				if refused != nil {
					refused(Refused{ID: p.ID, Reason: e.Reason})
				}
			}
			// Only now, so that Awaiting() == 0 means the states are saved.
			s.mu.Lock()
			delete(s.inCusto, e.Index)
			s.mu.Unlock()
		}
		signal(s.custody)
		signal(s.notify)
		s.c.broadcast()
	case wire.OpRestarting:
		s.mu.Lock()
		s.restart = cmd
		s.mu.Unlock()
	case wire.OpPing:
		s.conn.SendCommand(&wire.Command{Op: wire.OpPong, Token: cmd.Token})
	}
}

// incoming handles a data frame: verify, store, then acknowledge to the
// relay. A frame that cannot be verified is acknowledged too (dropped): the
// relay would otherwise offer it again forever.
func (s *Session) incoming(ctx context.Context, in Incoming) {
	c := s.c
	ack := func() {
		if in.Header.Flags&wire.FlagEphemeral == 0 {
			s.conn.SendCommand(&wire.Command{Op: wire.OpAck, Acks: []uint64{in.Header.Index}})
		}
	}
	contact, err := c.sender(in)
	if err != nil {
		c.log.Info("message from a stranger kept aside", "from_id", in.Header.ID)
		if err := c.store.AddStranger(ctx, in.Header.ID, c.now()); err != nil {
			return // not stored: do not acknowledge
		}
		ack()
		signal(s.notify)
		return
	}
	p, err := c.pair(contact.Public)
	if err != nil {
		ack()
		return
	}
	m, err := p.Open(in.Body)
	if err != nil {
		c.log.Warn("dropped a frame that does not verify", "from", contact.Name, "err", err)
		ack()
		return
	}
	now := c.now()
	if m.SentAt.Before(now.Add(-wire.ReplayHorizon)) || m.SentAt.After(now.Add(wire.MaxClockSkew)) {
		c.log.Warn("dropped a message outside the replay horizon", "from", contact.Name, "sent_at", m.SentAt)
		ack()
		return
	}
	switch m.Type {
	case wire.TypeTyping, wire.TypePresence:
		c.mu.Lock()
		f := c.onLive
		c.mu.Unlock()
		if f != nil {
			f(Live{From: contact, Type: m.Type, On: len(m.Body) == 1 && m.Body[0] == 1})
		}
		ack() // a no-op for ephemeral frames, as these should be
		return
	case wire.TypeDelivered, wire.TypeRead:
		state := StateDelivered
		if m.Type == wire.TypeRead {
			state = StateRead
		}
		for _, id := range wire.AckIDs(m.Body) {
			c.store.SetState(ctx, contact.Public.Fingerprint(), id, state)
		}
	}
	_, err = c.store.AddIncoming(ctx, contact.Public, m, now)
	if err != nil && !errors.Is(err, ErrDuplicate) {
		c.log.Error("store write failed; the relay will offer the message again", "err", err)
		return
	}
	if m.Type == wire.TypeText {
		// The sender may be waiting for this; a redelivery is acknowledged
		// again, in case the first acknowledgement was lost. Before the
		// relay's Ack: a crash in between brings a redelivery, not silence.
		s.sendAck(ctx, contact, m.ID, wire.TypeDelivered)
	}
	ack()
	signal(s.notify)
	c.broadcast()
}

func (s *Session) sendAck(ctx context.Context, to keys.Contact, id wire.MessageID, typ wire.MessageType) {
	p, err := s.c.pair(to.Public)
	if err != nil {
		return
	}
	mid, _ := wire.NewMessageID(rand.Reader)
	env, err := p.Seal(nil, &wire.Message{ID: mid, SentAt: s.c.now(), Type: typ, Body: wire.AckBody(id)}, rand.Reader)
	if err != nil {
		return
	}
	s.conn.SendData(to.Public.ID(), frameFlags(typ), env)
}

// Backoff is exponential backoff with full jitter, for reconnecting.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo == 0 {
		lo = 200 * time.Millisecond
	}
	if hi == 0 {
		hi = 30 * time.Second
	}
	d := lo << min(b.n, 20)
	if d > hi || d <= 0 {
		d = hi
	}
	b.n++
	j, _ := rand.Int(rand.Reader, big.NewInt(int64(d)))
	return d/2 + time.Duration(j.Int64())/2
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.n = 0 }

// Run keeps a receiving connection open, reconnecting with backoff, until
// ctx ends. changed is signalled whenever the store gains rows.
func (c *Client) Run(ctx context.Context, changed chan<- struct{}, connected func(error)) error {
	var b Backoff
	for {
		s, err := c.Connect(ctx, true)
		if err == nil {
			b.Reset()
			// Active before anyone hears of the connection: a callback
			// that sends at once (presence) must find it.
			c.mu.Lock()
			c.active = s
			c.mu.Unlock()
			if connected != nil {
				connected(nil)
			}
			done := make(chan struct{})
			go func() {
				for {
					select {
					case <-s.notify:
						select {
						case changed <- struct{}{}:
						default:
						}
					case <-done:
						return
					}
				}
			}()
			s.Flush(ctx)
			err = s.Serve(ctx, nil)
			c.mu.Lock()
			c.active = nil
			c.mu.Unlock()
			close(done)
			s.Close()
		} else if connected != nil {
			connected(err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		delay := b.Next()
		var re *ErrRestarting
		if errors.As(err, &re) {
			delay = re.RetryAfter + delay/4
		}
		c.log.Info("reconnecting", "after", delay.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// await registers a Send waiting for the relay's answer about message
// id; forget ends the wait. Register before the message can reach the
// relay, so that no answer comes before its listener.
func (c *Client) await(id wire.MessageID) <-chan custodyAnswer {
	ch := make(chan custodyAnswer, 1)
	c.mu.Lock()
	c.awaiting[id] = ch
	c.mu.Unlock()
	return ch
}

func (c *Client) forget(id wire.MessageID) {
	c.mu.Lock()
	delete(c.awaiting, id)
	c.mu.Unlock()
}

// answer passes the relay's answer about message id to the Send waiting
// for it, if any (on whichever connection of this client it came).
func (c *Client) answer(id wire.MessageID, a custodyAnswer) {
	c.mu.Lock()
	ch := c.awaiting[id]
	delete(c.awaiting, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- a // buffered, and taken out of the map: never blocks
	}
}

// ErrNotConfirmed: the wait ended before the relay took custody (or, when
// asked, before the contact acknowledged). The message stays in the outbox.
var ErrNotConfirmed = errors.New("not confirmed in time")

// rankOf orders the states of an outgoing message; they only move
// forward.
func rankOf(st string) int {
	switch st {
	case StatePending:
		return 0
	case StateSent, StateStored:
		return 1
	case StateDelivered:
		return 2
	case StateRead:
		return 3
	}
	return -1
}

// Send queues body for a contact as a text message and waits until the
// relay has taken custody of it or, with waitDelivered, until the
// contact's client has acknowledged it. It sends over Run's connection if
// one is up, and otherwise over a connection of its own (receiving only
// when it must wait for the acknowledgement). It returns the message id
// and its last known state; on ErrNotConfirmed or a connection error the
// message stays in the outbox for the next connection.
//
// The message goes to the relay while it is committed to the outbox, so
// the commit's syncs and the round trip overlap. A failing Send returns
// only once the outbox has the message (or with the error that kept it
// out). A Send that succeeds returns as soon as the relay's answer is in
// and leaves the rest running: the commit, then saving the answer, then
// closing its own connection. Close waits for that work.
//
// The relay's custody answer (or refusal) reaches Send directly from the
// connection that got it, which saves the new state in the store right
// after; the contact's acknowledgement is read from the store.
func (c *Client) Send(ctx context.Context, to keys.Contact, body []byte, waitDelivered bool) (wire.MessageID, string, error) {
	// Without Run's connection, dial while the message is sealed: the
	// handshake takes about a millisecond.
	var dial *dialing
	c.mu.Lock()
	if c.active == nil {
		dial = c.connectAhead(ctx, waitDelivered)
	}
	c.mu.Unlock()
	p, m, err := c.seal(to, wire.TypeText, body, waitDelivered)
	var older []Pending // what the outbox held before, for the own connection
	if err == nil && dial != nil {
		// Read now: the commit below holds the store's one connection.
		older, err = c.store.Outbox(ctx)
	}
	if err != nil {
		if dial != nil {
			dial.abandon()
		}
		return p.ID, "", err
	}
	id := p.ID
	answered := c.await(id) // before the message can reach the relay
	defer c.forget(id)
	saved := c.saveAhead(ctx, to.Public, m, &p)

	var own *Session         // the connection Send opened, if it did
	var served chan struct{} // closed when own's Serve has returned
	var serveErr error       // Serve's error, once served is closed
	// finish waits for the commit, then closes the own connection: Serve
	// first saves the answer it holds, which needs the committed entry.
	finish := func() error {
		<-saved.done
		if own != nil {
			own.Close()
			<-served
		}
		if saved.err != nil {
			return fmt.Errorf("saving message %s: %w", id, saved.err)
		}
		return nil
	}
	fail := func(st string, err error) (wire.MessageID, string, error) {
		if ferr := finish(); ferr != nil {
			return id, "", ferr // not in the outbox after all
		}
		return id, st, err
	}

	c.mu.Lock()
	s := c.active
	var changed <-chan struct{} = c.changed // taken before the hand-over: its answer cannot be missed
	c.mu.Unlock()
	if s != nil {
		if dial != nil {
			dial.abandon() // Run's connection came up meanwhile
		}
		// Run's connection flushed the outbox when it came up; hand over
		// just this message (older entries wait for the next flush).
		if err := s.hand(p); err != nil {
			return fail(StatePending, err)
		}
	} else {
		if dial == nil {
			dial = c.connectAhead(ctx, waitDelivered) // Run's connection went down meanwhile
		}
		if own, err = dial.wait(); err != nil {
			return fail(StatePending, err)
		}
		served = make(chan struct{})
		sctx := context.WithoutCancel(ctx) // finish ends Serve, after the answer is saved
		go func() {
			defer close(served)
			serveErr = own.Serve(sctx, nil)
		}()
		// The older entries first, in order: the relay answers in order,
		// so their answers are saved before this message's.
		for _, o := range append(older, p) {
			if err = own.hand(o); err != nil {
				break
			}
		}
		if err != nil {
			// The frames went out behind Auth: a relay that could not
			// read it has closed the connection, and Serve knows why.
			own.Close()
			<-served
			if errors.Is(serveErr, ErrRelayAuth) {
				err = serveErr
			}
			return fail(StatePending, err)
		}
	}
	fp := to.Public.Fingerprint()
	st := StatePending // just queued
	for {
		done := st != StatePending
		if waitDelivered {
			done = st == StateDelivered || st == StateRead
		}
		if done {
			c.finishing.Go(func() {
				if err := finish(); err != nil {
					c.mu.Lock()
					if c.finishErr == nil {
						c.finishErr = err
					}
					c.mu.Unlock()
				}
			})
			return id, st, nil
		}
		var storeChanged <-chan struct{}
		if waitDelivered {
			storeChanged = changed // only the contact's acknowledgement needs the store
		}
		select {
		case a := <-answered:
			answered = nil
			if a.state == "" {
				return fail(st, &RefusedError{ID: id, Reason: a.reason})
			}
			if rankOf(a.state) > rankOf(st) {
				st = a.state
			}
		case <-storeChanged:
			changed = c.Changed()
			got, err := c.store.State(ctx, fp, id)
			if err != nil {
				return fail(st, err)
			}
			if rankOf(got) > rankOf(st) {
				st = got
			}
		case <-served:
			if ctx.Err() != nil {
				return fail(st, ErrNotConfirmed)
			}
			return fail(st, fmt.Errorf("connection to the relay lost: %w", serveErr))
		case <-ctx.Done():
			return fail(st, ErrNotConfirmed)
		}
	}
}

// Close waits for the work that Sends left running when they returned
// (see Send) and reports the first failure of it: a message the relay
// took that could not be saved here. It closes neither the store nor
// the book, which belong to the caller, who closes them after.
func (c *Client) Close() error {
	c.finishing.Wait()
	if c.dialing != nil {
		c.dialing.Close()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finishErr
}
