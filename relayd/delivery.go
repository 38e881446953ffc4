package relayd

import (
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wschat/wschat/wire"
)

// delivery is one frame on its way to a recipient. A live delivery is
// written to every receiving connection of the recipient at once; the
// first Ack completes it. If no connection acknowledges it in time, or all
// of them go away first, it is stored. A delivery read from the mailbox is
// stored from the start; an Ack deletes it there.
type delivery struct {
	to, from wire.RoutingID // static
	flags    byte           // static
	body     []byte         // static; shared by every connection writing it
	at       time.Time      // static: when the relay took it

	mu       sync.Mutex
	state    deliveryState // guarded by mu
	storedID uint64        // guarded by mu: the mailbox id once stored
	holders  int           // guarded by mu: connections holding it unacknowledged
}

type deliveryState uint8

const (
	stateLive   deliveryState = iota // in memory, written or queued
	stateStored                      // in the mailbox
	stateAcked                       // done
)

// route takes a data frame from a client and answers with its custody.
// rcvs is scratch space for the recipient's connections.
func (s *Server) route(from *conn, h wire.Header, body []byte, now time.Time, rcvs []*conn) wire.CustodyEntry {
	e := wire.CustodyEntry{Index: h.Index}
	refuse := func(r wire.Reason) wire.CustodyEntry {
		s.metrics.refused(r)
		e.Status, e.Reason = wire.StatusRefused, r
		return e
	}
	if h.ID == from.id {
		return refuse(wire.ReasonBadRecipient)
	}
	if s.closing.Load() {
		return refuse(wire.ReasonShuttingDown)
	}
	d := &delivery{to: h.ID, from: from.id, flags: h.Flags, body: append([]byte(nil), body...), at: now}
	receivers := s.hub.Receivers(h.ID, rcvs)
	defer clear(receivers) // rcvs is pooled: keep no connection alive
	ephemeral := h.Flags&wire.FlagEphemeral != 0
	if !ephemeral {
		d.holders = len(receivers) // before any writer can see it
	}
	n := 0
	for _, rc := range receivers {
		if rc.enqueue(d) {
			n++
		} else if !ephemeral {
			s.released(d)
			s.metrics.refused(wire.ReasonSlowConsumer)
		}
	}
	switch {
	case n > 0:
		s.metrics.routed(wire.StatusDelivered)
		e.Status = wire.StatusDelivered
		return e
	case ephemeral:
		return refuse(wire.ReasonRecipientOffline)
	}
	// No receiving connection took it: released() above stored it if there
	// were receivers; otherwise store it now.
	if len(receivers) == 0 {
		if r := s.store(d); r != wire.ReasonNone {
			return refuse(r)
		}
	}
	d.mu.Lock()
	stored := d.state == stateStored
	d.mu.Unlock()
	if !stored {
		return refuse(wire.ReasonMailboxFull)
	}
	s.metrics.routed(wire.StatusStored)
	e.Status = wire.StatusStored
	return e
}

// store puts a live delivery in the mailbox, once.
func (s *Server) store(d *delivery) wire.Reason {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateLive {
		return wire.ReasonNone
	}
	id, err := s.mailbox.Put(d.to, d.from, d.body, d.at)
	if err != nil {
		if errors.Is(err, ErrMailboxFull) {
			s.metrics.dropped(wire.ReasonMailboxFull)
			return wire.ReasonMailboxFull
		}
		s.log.Error("mailbox write failed", "to", d.to, "err", err)
		s.metrics.dropped(wire.ReasonInternal)
		return wire.ReasonInternal
	}
	d.state, d.storedID = stateStored, id
	s.metrics.stored()
	// A receiving connection may be online (its queue was full, or it is
	// slow to acknowledge): tell it to read the mailbox.
	var rcvs [4]*conn
	for _, rc := range s.hub.Receivers(d.to, rcvs[:0]) {
		rc.poke()
	}
	return wire.ReasonNone
}

// acked completes deliveries to recipient that one Ack acknowledged; the
// stored ones leave the mailbox together.
func (s *Server) acked(recipient wire.RoutingID, ds []*delivery) {
	var stored []uint64
	for _, d := range ds {
		d.mu.Lock()
		state, id := d.state, d.storedID
		d.state = stateAcked
		d.mu.Unlock()
		switch state {
		case stateLive:
			s.metrics.delivered(false)
		case stateStored:
			stored = append(stored, id)
			s.metrics.delivered(true)
		}
	}
	if len(stored) > 0 {
		if err := s.mailbox.Delete(recipient, stored...); err != nil {
			s.log.Error("mailbox delete failed", "to", recipient, "err", err)
		}
	}
}

// released is called when a connection that held a delivery goes away (or
// could not take it) without acknowledging it. The last holder of a live
// delivery stores it.
func (s *Server) released(d *delivery) {
	if d.flags&wire.FlagEphemeral != 0 {
		return
	}
	d.mu.Lock()
	d.holders--
	last := d.holders <= 0 && d.state == stateLive
	d.mu.Unlock()
	if last {
		s.store(d)
	}
}

// janitor pings quiet connections, stores live deliveries that were not
// acknowledged in time, and expires old frames from the mailbox.
func (s *Server) janitor() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastExpire := s.now()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		now := s.now()
		s.mu.Lock()
		conns := make([]*conn, 0, len(s.all))
		for c := range s.all {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		var late []*delivery
		for _, c := range conns {
			quiet := now.Sub(time.Unix(0, c.lastRead.Load()))
			if quiet >= s.limits.PingInterval && now.Sub(time.Unix(0, c.lastPing.Load())) >= s.limits.PingInterval {
				c.lastPing.Store(now.UnixNano())
				// WriteControl may run beside the writer goroutine.
				c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.limits.WriteTimeout))
			}
			c.mu.Lock()
			for _, d := range c.unacked {
				if now.Sub(d.at) >= s.limits.AckTimeout {
					late = append(late, d)
				}
			}
			c.mu.Unlock()
		}
		for _, d := range late {
			s.store(d) // no-op unless still live; the connection keeps it, so a late Ack deletes it
		}
		if now.Sub(lastExpire) >= time.Minute {
			lastExpire = now
			if n, err := s.mailbox.Expire(now); err != nil {
				s.log.Error("mailbox expiry failed", "err", err)
			} else if n > 0 {
				s.metrics.expired(n)
			}
		}
	}
}
