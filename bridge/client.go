// Package bridge is the wschat client library: one identity's contacts,
// its message store and outbox, and its connections to relays. A message
// to a contact goes to that contact's relay (named in their invite); the
// identity receives only on its own relay. Programs use it without the
// CLI; `wschat` is one of them.
//
// One concern per file:
//
//	client.go         Client and Config; per-peer keys; which relay reaches a contact
//	session.go        one connection to one relay: custody answers and incoming frames
//	send.go           Send (a small state machine), Queue, MarkRead, SendLive
//	run.go            Run: the receiving connection, the outbox flusher, old relays
//	live.go           what a user interface listens to: Changed, Live
//	store*.go, state.go  the SQLite store and the states of a message
package bridge

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// Config configures a Client.
type Config struct {
	Identity *wire.Identity
	Relay    wire.RelayAddress // the identity's own relay: it receives there
	Book     *keys.Book
	Store    *Store
	Logger   *slog.Logger     // nil: discard
	Now      func() time.Time // nil: time.Now

	DialTimeout time.Duration // one relay connection, connect to Welcome; 0: 10 s
	TLS         *tls.Config   // for wss:// relays; nil: the system's roots
}

// Client is one identity's view of wschat. Safe for concurrent use.
type Client struct {
	// Static after NewClient.
	id          *wire.Identity
	book        *keys.Book
	store       *Store
	log         *slog.Logger
	now         func() time.Time
	owner       [16]byte // names this client's outbox leases
	dialTimeout time.Duration
	tls         *tls.Config
	kick        chan struct{} // wakes Run's flusher; buffered 1

	mu       sync.Mutex                                // guards the fields below
	relay    wire.RelayAddress                         // the own relay
	pairs    map[wire.Fingerprint]*wire.Pair           // derived once per peer
	sessions map[wire.RelayAddress]*session            // Run's open connections, by relay
	awaiting map[wire.MessageID]*future[custodyAnswer] // Sends waiting for the relay's answer
	inHand   map[wire.MessageID]bool                   // entries handed to a connection of this client, not yet answered
	changed  chan struct{}                             // closed and replaced when the store changes
	onLive   func(Live)                                // receives typing and presence
}

// NewClient makes a client; it connects only when asked.
func NewClient(cfg Config) *Client {
	c := &Client{
		id: cfg.Identity, relay: cfg.Relay, book: cfg.Book, store: cfg.Store, log: cfg.Logger, now: cfg.Now,
		dialTimeout: cfg.DialTimeout, tls: cfg.TLS, kick: make(chan struct{}, 1),
		pairs: map[wire.Fingerprint]*wire.Pair{}, sessions: map[wire.RelayAddress]*session{},
		awaiting: map[wire.MessageID]*future[custodyAnswer]{}, inHand: map[wire.MessageID]bool{}, changed: make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	rand.Read(c.owner[:])
	return c
}

// Store is the client's store.
func (c *Client) Store() *Store { return c.store }

// Relay is the identity's own relay.
func (c *Client) Relay() wire.RelayAddress {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.relay
}

// Close ends nothing by itself (Run ends with its context, Send before it
// returns); it is kept so that a program closes the client before the
// store, which it owns. It closes neither the store nor the book.
func (c *Client) Close() error { return nil }

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

// relayOf is the relay that reaches contact: the one in their contact
// entry, or the identity's own when the entry names none.
func (c *Client) relayOf(contact keys.Contact) (wire.RelayAddress, string) {
	if contact.Relay != "" {
		if a, err := wire.ParseRelayAddress(contact.Relay); err == nil {
			return a, contact.Relay
		}
	}
	return c.Relay(), ""
}

// resolve turns an outbox entry's relay ("" for the own) into an address.
func (c *Client) resolve(relay string) (wire.RelayAddress, error) {
	if relay == "" {
		return c.Relay(), nil
	}
	return wire.ParseRelayAddress(relay)
}

// RelayError: a relay could not be reached, or refused the connection.
// Messages for it stay in the outbox.
type RelayError struct {
	Relay wire.RelayAddress
	Err   error
}

func (e *RelayError) Error() string {
	if errors.Is(e.Err, relayconn.ErrRelayAuth) {
		return fmt.Sprintf("relay %s: %v", e.Relay.URL, e.Err)
	}
	return fmt.Sprintf("relay %s unreachable: %v", e.Relay.URL, e.Err)
}
func (e *RelayError) Unwrap() error { return e.Err }

// ErrRelayAuth: the relay did not prove it holds the key the address
// pins (or is not a wschat relay).
var ErrRelayAuth = relayconn.ErrRelayAuth

// ErrOffline: no connection to the contact's relay is up.
var ErrOffline = errors.New("not connected to the relay")

// ErrNotConfirmed: the wait ended before the relay took custody (or, when
// asked, before the contact acknowledged). A message not yet in custody
// stays in the outbox.
var ErrNotConfirmed = errors.New("not confirmed in time")

// future is a value that one goroutine sets once and others wait for.
type future[T any] struct {
	once sync.Once
	done chan struct{} // closed by set
	v    T             // set before done closes
}

func newFuture[T any]() *future[T] { return &future[T]{done: make(chan struct{})} }

func (f *future[T]) set(v T) { f.once.Do(func() { f.v = v; close(f.done) }) }

// custodyAnswer is the relay's answer about one outbox entry, or why
// none will come.
type custodyAnswer struct {
	state   State       // StateSent or StateStored; "" when refused or lost
	reason  wire.Reason // why the relay refused it
	lost    error       // the connection ended before an answer
	saveErr error       // the answer could not be saved in the store
}

// await registers a Send waiting for the relay's answer about message
// id. Register before the message can reach the relay.
func (c *Client) await(id wire.MessageID) *future[custodyAnswer] {
	f := newFuture[custodyAnswer]()
	c.mu.Lock()
	c.awaiting[id] = f
	c.mu.Unlock()
	return f
}

func (c *Client) forget(id wire.MessageID) {
	c.mu.Lock()
	delete(c.awaiting, id)
	c.mu.Unlock()
}

// answer passes the relay's answer about message id to the Send waiting
// for it, if any (on whichever connection of this client it came), and
// marks the entry as no longer in hand.
func (c *Client) answer(id wire.MessageID, a custodyAnswer) {
	c.mu.Lock()
	f := c.awaiting[id]
	delete(c.awaiting, id)
	delete(c.inHand, id)
	c.mu.Unlock()
	if f != nil {
		f.set(a)
	}
}

// take marks an outbox entry as in hand, unless it already is.
func (c *Client) take(id wire.MessageID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inHand[id] {
		return false
	}
	c.inHand[id] = true
	return true
}

func (c *Client) isInHand(id wire.MessageID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inHand[id]
}

func (c *Client) lease() Lease {
	return Lease{Owner: c.owner, Until: c.now().Add(LeaseTTL)}
}

// wake asks Run's flusher to look at the outbox.
func (c *Client) wake() { signal(c.kick) }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// dial opens a connection to relay and starts serving it. With early it
// returns as soon as the handshake is written (frames may follow at once,
// PROTOCOL.md §4) and the session ends with ErrRelayAuth if the relay
// then fails to prove its key; without, it returns once it has.
func (c *Client) dial(ctx context.Context, relay wire.RelayAddress, receive, early bool) (*session, error) {
	conn, err := relayconn.Dial(ctx, relay, c.id, relayconn.Options{Receive: receive, Timeout: c.dialTimeout, TLS: c.tls, Early: early})
	if err != nil {
		return nil, &RelayError{Relay: relay, Err: err}
	}
	s := newSession(c, relay, conn, receive)
	go s.serve()
	return s, nil
}

// session returns Run's open connection to relay, if there is one (and,
// with receive, only a receiving one).
func (c *Client) session(relay wire.RelayAddress, receive bool) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[relay]
	if s == nil || receive && !s.receive || s.ended() {
		return nil
	}
	return s
}

// Probe connects to relay as this identity (receiving, with receive: on
// a relay that registers identities, that registers it) and waits for the
// Welcome, which proves the relay holds the pinned key; it returns how
// long that took, or a *RelayError.
func (c *Client) Probe(ctx context.Context, relay wire.RelayAddress, receive bool) (time.Duration, error) {
	start := time.Now()
	conn, err := relayconn.Dial(ctx, relay, c.id, relayconn.Options{Receive: receive, Timeout: c.dialTimeout, TLS: c.tls})
	if err != nil {
		return 0, &RelayError{Relay: relay, Err: err}
	}
	d := time.Since(start)
	conn.Close()
	return d, nil
}
