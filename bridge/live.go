package bridge

import (
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// Live is an ephemeral message from a contact (typing, presence): shown
// now or never, not stored.
type Live struct {
	From keys.Contact
	Type wire.MessageType
	On   bool // typing / online
}

// OnLive sets the function that receives typing and presence messages.
// It runs on a connection's goroutine and must not block.
func (c *Client) OnLive(f func(Live)) {
	c.mu.Lock()
	c.onLive = f
	c.mu.Unlock()
}

// Changed returns a channel that is closed at the next change to the
// store made through this client (a message in, a state moved) or to its
// connections.
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
