package relayd

import (
	"cmp"
	"errors"
	"sync"
	"time"

	"github.com/wschat/wschat/wire"
)

// delivery is one frame on its way to a recipient. A live delivery is
// written to every receiving connection of the recipient at once; the
// first Ack completes it. If no connection acknowledges it in time, or all
// of them go away first, it is stored. A delivery read from the mailbox is
// stored from the start; an Ack deletes it there. A stored delivery names
// no sender (wire.UnnamedID): the mailbox keeps none.
type delivery struct {
	to, from wire.RoutingID // static
	flags    byte           // static
	body     []byte         // static; shared by every connection writing it
	at       time.Time      // static: when the relay took it

	mu       sync.Mutex
	state    deliveryState // guarded by mu
	storedID uint64        // guarded by mu: the mailbox id once stored
	holders  int           // guarded by mu: connections holding it unacknowledged
	answered bool          // static once published: the sender is told "delivered" (there were receivers)
	refusal  wire.Reason   // guarded by mu: why the last attempt to store it failed
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
	if h.ID == from.id || h.ID.IsUnnamed() {
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
		// Written before any writer can see it, so no lock per frame: with
		// receivers the answer will be "delivered" (or, when every queue
		// is full, "stored" after released() stored it as held, which
		// only lets it use the reserve).
		d.answered = len(receivers) > 0
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
	// No receiving connection took it: released() above tried to store it
	// if there were receivers; otherwise store it now, within the
	// sender's budget.
	if len(receivers) == 0 {
		if !s.budgets.take(from.id, len(body), now) {
			return refuse(wire.ReasonSenderBudget)
		}
		if r := s.store(d); r != wire.ReasonNone {
			s.budgets.refund(from.id, len(body))
			return refuse(r)
		}
	}
	d.mu.Lock()
	stored, why := d.state == stateStored, d.refusal
	d.mu.Unlock()
	if !stored {
		return refuse(cmp.Or(why, wire.ReasonInternal))
	}
	s.metrics.routed(wire.StatusStored)
	e.Status = wire.StatusStored
	return e
}

// store puts a live delivery in the mailbox, once, and returns why it
// could not. A frame the sender was told was delivered may use the
// storage kept for held frames; one that cannot be stored then is
// dropped, and counted.
func (s *Server) store(d *delivery) wire.Reason {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateLive {
		return wire.ReasonNone
	}
	id, err := s.mailbox.Put(Frame{Recipient: d.to, Receipt: d.flags&wire.FlagReceipt != 0, Body: d.body, At: d.at, Held: d.answered})
	if err != nil {
		r := storeReason(err)
		d.refusal = r
		if d.answered {
			s.metrics.dropped(r)
		}
		if r == wire.ReasonInternal {
			s.logs.error("mailbox write failed", "err", err)
		}
		return r
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

// storeReason is the reason a sender is given for a mailbox error.
func storeReason(err error) wire.Reason {
	switch {
	case errors.Is(err, ErrMailboxFull):
		return wire.ReasonMailboxFull
	case errors.Is(err, ErrUnknownRecipient):
		return wire.ReasonUnknownRecipient
	case errors.Is(err, ErrStorageFull):
		return wire.ReasonStorageFull
	case errors.Is(err, ErrMailboxClosed):
		return wire.ReasonShuttingDown
	}
	return wire.ReasonInternal
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
			s.logs.error("mailbox delete failed", "err", err)
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
