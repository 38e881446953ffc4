package bridge

import (
	"context"
	"fmt"

	"github.com/wschat/wschat/wire"
)

// MoveTo makes to the identity's own relay: from now on this client
// receives there, keeps collecting from the old one (until it is empty
// and every contact has acknowledged the move, or DrainGrace has passed),
// and queues a signed relay-moved notice (wire.TypeRelayMoved) for every
// contact, so that their clients send to the new relay. It returns how
// many notices it queued; Deliver (or Run) hands them over.
//
// The caller saves the new relay in the identity file first, so that
// every later process receives there too.
func (c *Client) MoveTo(ctx context.Context, to wire.RelayAddress) (int, error) {
	from := c.Relay()
	if from == to {
		return 0, nil
	}
	if from.URL != "" {
		if err := c.store.AddDrain(ctx, from.String(), c.now().Add(DrainGrace)); err != nil {
			return 0, err
		}
	}
	c.mu.Lock()
	c.relay = to
	c.mu.Unlock()
	if err := c.store.RemoveDrain(ctx, to.String()); err != nil { // moving back
		return 0, err
	}
	contacts, err := c.book.List()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, contact := range contacts {
		if _, err := c.Queue(ctx, contact, wire.TypeRelayMoved, []byte(to.String())); err != nil {
			return n, fmt.Errorf("telling %s: %w", contact.Name, err)
		}
		n++
	}
	return n, nil
}
