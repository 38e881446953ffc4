package bridge

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/wire"
)

// Timing of Run's connections.
const (
	// flushInterval: how often the flusher looks at the outbox when
	// nothing woke it (entries whose holder died, relays that were down).
	flushInterval = 5 * time.Second
	// idleClose: a connection to another relay closes after this long
	// with nothing to hand over.
	idleClose = time.Minute
	// finalFlush bounds the last hand-over of the outbox when Run ends.
	finalFlush = time.Second
	// DrainGrace is how long the client keeps collecting from a relay it
	// moved away from, at most: the relay's default time to live of a
	// stored frame.
	DrainGrace = 7 * 24 * time.Hour
)

// Run keeps the identity reachable until ctx ends: a receiving connection
// to its own relay, reconnecting with backoff; connections to the relays
// its outbox entries go to, which it hands them to (and closes when
// idle); and receiving connections to relays it moved away from, until
// they are empty (or DrainGrace has passed).
//
// changed, if not nil, is signalled whenever the store changes.
// connected, if not nil, hears of the own relay's connection coming up
// (nil) and of every relay problem (a *RelayError naming the relay); it
// is called from one goroutine at a time and must not block.
//
// Run returns ctx's error, or the first failure no retry can mend: a
// *StoreError, or a *RelayError wrapping ErrRelayAuth for the own relay.
func (c *Client) Run(ctx context.Context, changed chan<- struct{}, connected func(error)) error {
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var reportMu sync.Mutex
	report := func(err error) {
		if connected != nil {
			reportMu.Lock()
			connected(err)
			reportMu.Unlock()
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.receiveLoop(ctx, c.Relay(), false, report, cancel) })
	wg.Go(func() { c.flusher(ctx, report, cancel) })
	wg.Go(func() { c.drainer(ctx, report, cancel) })
	if changed != nil {
		wg.Go(func() {
			for {
				ch := c.Changed()
				select {
				case <-ch:
					select {
					case changed <- struct{}{}:
					default:
					}
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	if parent.Err() != nil {
		// Hand over what is still in the outbox (receipts for senders
		// on other relays, most likely) before the program exits.
		fctx, stop := context.WithTimeout(context.WithoutCancel(parent), finalFlush)
		c.Deliver(fctx)
		stop()
		return parent.Err()
	}
	return context.Cause(ctx)
}

func (c *Client) register(relay wire.RelayAddress, s *session) {
	c.mu.Lock()
	if old := c.sessions[relay]; old == nil || old.ended() || s.receive && !old.receive {
		c.sessions[relay] = s
	}
	c.mu.Unlock()
	c.broadcast()
}

func (c *Client) unregister(relay wire.RelayAddress, s *session) {
	c.mu.Lock()
	if c.sessions[relay] == s {
		delete(c.sessions, relay)
	}
	c.mu.Unlock()
	c.broadcast()
}

// Connected reports whether a receiving connection to the own relay is
// up now.
func (c *Client) Connected() bool { return c.session(c.Relay(), true) != nil }

// receiveLoop keeps a receiving connection to relay. With drain (a relay
// the identity moved away from) it stops once the relay has nothing left
// and every contact has acknowledged the move.
func (c *Client) receiveLoop(ctx context.Context, relay wire.RelayAddress, drain bool, report func(error), fatal context.CancelCauseFunc) {
	var b relayconn.Backoff
	for ctx.Err() == nil {
		s, err := c.dial(ctx, relay, true, false)
		if err == nil {
			b.Reset()
			c.register(relay, s)
			if !drain {
				report(nil)
			}
			c.wake()
			done := c.serveReceiving(ctx, s, drain)
			c.unregister(relay, s)
			if done {
				return
			}
			err = s.err
			if isStoreError(err) {
				fatal(err)
				return
			}
			if err != nil {
				err = &RelayError{Relay: relay, Err: err}
			}
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrRelayAuth) && !drain {
			fatal(err)
			return
		}
		if err != nil {
			report(err)
		}
		delay := b.Next()
		var re *ErrRestarting
		if errors.As(err, &re) {
			delay = re.RetryAfter + delay/4
		}
		c.log.Info("reconnecting", "relay", relay.URL, "after", delay.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// serveReceiving waits for s to end (closing it when ctx ends). For a
// relay being drained it reports true once the relay is empty (BacklogDone
// came: every frame it held was stored here and acknowledged, in order)
// and every move notice acknowledged, having removed the relay from the
// drain list.
func (c *Client) serveReceiving(ctx context.Context, s *session, drain bool) bool {
	empty := false
	for {
		changed := c.Changed()
		if drain && empty {
			undelivered, err := c.store.UndeliveredMoves(ctx)
			if err == nil && undelivered == 0 {
				s.close()
				c.store.RemoveDrain(context.WithoutCancel(ctx), s.relay.String())
				c.log.Info("the old relay is empty", "relay", s.relay.URL)
				return true
			}
		}
		select {
		case <-s.done:
			return false
		case <-ctx.Done():
			s.close()
			return false
		case <-s.backlog:
			empty = true
		case <-changed:
		}
	}
}

// flusher hands outbox entries to their relays whenever woken (a message
// queued, a connection up) and every flushInterval.
func (c *Client) flusher(ctx context.Context, report func(error), fatal context.CancelCauseFunc) {
	tick := time.NewTicker(flushInterval)
	defer tick.Stop()
	dialed := map[wire.RelayAddress]*session{}
	defer func() {
		for relay, s := range dialed {
			s.close()
			c.unregister(relay, s)
		}
	}()
	notBefore := map[string]time.Time{} // a relay that failed is not dialed again before
	backoff := map[string]*relayconn.Backoff{}
	for {
		select {
		case <-c.kick:
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		now := c.now()
		for relay, s := range dialed {
			if s.ended() || now.Sub(s.idleSince()) > idleClose {
				s.close()
				c.unregister(relay, s)
				delete(dialed, relay)
			}
		}
		names, err := c.store.OutboxRelays(ctx, c.owner, now)
		if err != nil {
			if isStoreError(err) {
				fatal(err)
			}
			continue
		}
		for _, name := range names {
			relay, err := c.resolve(name)
			if err != nil {
				continue
			}
			s := c.session(relay, false)
			if s == nil {
				if relay == c.Relay() || now.Before(notBefore[name]) {
					continue // the receiving connection flushes when it is up
				}
				if s, err = c.dial(ctx, relay, false, true); err != nil {
					if ctx.Err() != nil {
						return
					}
					if backoff[name] == nil {
						backoff[name] = &relayconn.Backoff{Min: time.Second, Max: 5 * time.Minute}
					}
					notBefore[name] = now.Add(backoff[name].Next())
					c.store.NoteRelayError(ctx, name, c.owner, now, err.Error())
					report(err)
					continue
				}
				delete(backoff, name)
				dialed[relay] = s
				c.register(relay, s)
			}
			ps, err := c.store.LeaseOutbox(ctx, name, c.lease(), now, 256, c.isInHand)
			if err != nil {
				if isStoreError(err) {
					fatal(err)
					return
				}
				continue
			}
			if len(ps) == 256 {
				c.wake() // more after these
			}
			s.hand(ps) // a failure ends the connection; the next round dials again
		}
	}
}

// drainer runs a receiving connection to every relay the identity moved
// away from, until it is drained.
func (c *Client) drainer(ctx context.Context, report func(error), fatal context.CancelCauseFunc) {
	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[string]bool{}
	var mu sync.Mutex
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		drains, err := c.store.Drains(ctx, c.now())
		if err != nil && isStoreError(err) {
			fatal(err)
			return
		}
		for _, d := range drains {
			relay, err := wire.ParseRelayAddress(d.Relay)
			mu.Lock()
			skip := err != nil || running[d.Relay] || relay == c.Relay()
			if !skip {
				running[d.Relay] = true
			}
			mu.Unlock()
			if skip {
				continue
			}
			until, stop := context.WithDeadline(ctx, d.Until)
			wg.Go(func() {
				defer stop()
				c.receiveLoop(until, relay, true, report, fatal)
				mu.Lock()
				delete(running, d.Relay)
				mu.Unlock()
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
