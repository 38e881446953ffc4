package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// sender finds the contact an incoming data frame is from: the one its
// header names or, for a frame the relay had stored (whose header is
// wire.UnnamedID: relays keep no sender ids), the one whose pair tag the
// envelope carries (PROTOCOL.md §7, "Finding the sender"). It costs a
// keyed hash per contact, and a key derivation per contact the first
// time. Error: keys.ErrUnknownContact.
func (c *Client) sender(in relayconn.Incoming) (keys.Contact, error) {
	if !in.Header.ID.IsUnnamed() {
		return c.book.ByID(in.Header.ID)
	}
	list, err := c.book.List()
	if err != nil {
		return keys.Contact{}, err
	}
	for _, k := range list {
		if p, err := c.pair(k.Public); err == nil && p.From(in.Body) {
			return k, nil
		}
	}
	return keys.Contact{}, fmt.Errorf("%w: a stored frame matches no contact", keys.ErrUnknownContact)
}

// frameFlags are the frame flags a message of type t travels with.
func frameFlags(t wire.MessageType) byte {
	if t.Receipt() {
		return wire.FlagReceipt
	}
	return 0
}

// Register registers id on the relay at addr. A relay stores messages only
// for identities registered on it: an identity registers with every
// receiving connection (listen, chat, mcp, the web app), and the
// registration lasts for the relay's registration TTL (90 days by
// default) after the last one. Register opens such a connection and
// closes it once the relay's Welcome has come, which the relay sends only
// once the registration is saved. A new identity has nothing stored, so
// the connection takes nothing from anyone.
func Register(ctx context.Context, addr wire.RelayAddress, id *wire.Identity, timeout time.Duration) error {
	c, err := relayconn.Dial(ctx, addr, id, relayconn.Options{Receive: true, Timeout: timeout})
	if err != nil {
		return &RelayError{Relay: addr, Err: err}
	}
	return c.Close()
}
