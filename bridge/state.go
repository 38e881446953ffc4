package bridge

import (
	"fmt"
	"strings"
)

// State is where an outgoing message stands. States only move forward,
// in the order of the table below (sent and stored are the same step:
// the relay has it).
type State string

// The states of an outgoing message.
const (
	StatePending   State = "pending"   // in the outbox, not yet in a relay's custody
	StateRefused   State = "refused"   // a relay refused it for good (the reason is kept); out of the outbox
	StateStored    State = "stored"    // the relay holds it for the recipient
	StateSent      State = "sent"      // the relay handed it to a receiving connection
	StateDelivered State = "delivered" // the recipient's client acknowledged it
	StateRead      State = "read"      // a person saw it
)

// stateOrder is the one ordering of states, used by Go (State.Rank) and
// by SQL (rankSQL): a state moves only to one of a higher rank.
var stateOrder = []struct {
	state State
	rank  int
}{
	{StatePending, 0},
	{StateRefused, 1},
	{StateStored, 1},
	{StateSent, 1},
	{StateDelivered, 2},
	{StateRead, 3},
}

// Rank orders states; -1 for a state this version does not know.
func (s State) Rank() int {
	for _, o := range stateOrder {
		if o.state == s {
			return o.rank
		}
	}
	return -1
}

// InCustody reports whether a relay has taken the message (or more).
func (s State) InCustody() bool { return s.Rank() >= 1 && s != StateRefused }

// Delivered reports whether the recipient's client has it.
func (s State) Delivered() bool { return s.Rank() >= 2 }

// rankSQL is the SQL expression of State.Rank for the column or
// parameter x.
func rankSQL(x string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "(CASE %s", x)
	for _, o := range stateOrder {
		fmt.Fprintf(&b, " WHEN '%s' THEN %d", o.state, o.rank)
	}
	b.WriteString(" ELSE -1 END)")
	return b.String()
}
