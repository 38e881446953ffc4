package bridge

import (
	"fmt"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/wire"
)

// ConnRefusedError: the relay answered the connection with an HTTP
// refusal instead of upgrading it (too many connections from this
// address, or the relay is at its limit or restarting).
type ConnRefusedError = relayconn.ConnRefusedError

// RefusedError: the relay refused a message (a Custody answer with status
// refused). Unless the refusal is Temporary, the message has left the
// outbox and its refusal is recorded (Store.Refusal): it is not offered
// again on every connection.
type RefusedError struct {
	ID     wire.MessageID
	Relay  wire.RelayAddress // the relay that refused it
	Reason wire.Reason
}

func (e *RefusedError) Error() string {
	if e.Temporary() {
		return fmt.Sprintf("the relay refused the message for now (%s); it stays in the outbox", e.Reason)
	}
	return fmt.Sprintf("the relay refused the message (%s)", e.Reason)
}

// Temporary reports whether the refusal is the relay's passing state (it
// is stopping, over a rate, or its storage failed): the message stays in
// the outbox and goes out on the next connection.
func (e *RefusedError) Temporary() bool { return temporaryRefusal(e.Reason) }

func temporaryRefusal(r wire.Reason) bool {
	switch r {
	case wire.ReasonShuttingDown, wire.ReasonInternal, wire.ReasonRateLimited, wire.ReasonSlowConsumer:
		return true
	}
	return false
}
