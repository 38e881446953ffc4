package main

import (
	"errors"
	"fmt"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/wire"
)

// refusalError puts a relay's refusal of a message to contact `to`, or of
// the connection, into words with a hint that fits the reason. It returns
// nil for an error that is neither.
func refusalError(to string, err error) error {
	var re *bridge.RefusedError
	if errors.As(err, &re) {
		if re.Temporary() {
			return withHint(fmt.Errorf("the relay refused the message for now (%s); it stays in the outbox", re.Reason),
				"it goes out with the next wschat command that connects")
		}
		words, hint := refusalWords(to, re.Reason)
		return withHint(fmt.Errorf("%s; the message was not sent", words), hint)
	}
	var ce *bridge.ConnRefusedError
	if errors.As(err, &ce) {
		switch ce.Reason {
		case wire.ReasonTooManyConns:
			if ce.Status == 429 {
				return withHint(fmt.Errorf("too many connections from your address to the relay %s", ce.URL),
					"close other wschat processes on this network address, or ask the relay's operator to raise --max-conns-per-ip")
			}
			return withHint(fmt.Errorf("the relay %s is at its connection limit", ce.URL), "try again later, or tell the relay's operator (--max-conns)")
		case wire.ReasonShuttingDown:
			return withHint(fmt.Errorf("the relay %s is restarting", ce.URL), "try again in a few seconds")
		}
		return withHint(err, "check the relay address (the line `wschat relay` printed)")
	}
	return nil
}

// refusalWords says why the relay refused a message to `to`, and what to
// do.
func refusalWords(to string, r wire.Reason) (string, string) {
	switch r {
	case wire.ReasonUnknownRecipient:
		return fmt.Sprintf("%s is not registered on this relay", to),
			fmt.Sprintf("ask %s to run `wschat listen` once (a relay keeps messages only for identities that connect to it), or check the relay in their invite", to)
	case wire.ReasonMailboxFull:
		return fmt.Sprintf("%s's mailbox on the relay is full", to),
			fmt.Sprintf("%s collects it by running `wschat listen`; send again once they have", to)
	case wire.ReasonStorageFull:
		return "the relay's storage for offline recipients is full",
			fmt.Sprintf("send again while %s is online (live delivery still works), or tell the relay's operator (--max-storage)", to)
	case wire.ReasonSenderBudget:
		return "you have had the relay store too much for offline contacts lately",
			fmt.Sprintf("wait an hour, or send while %s is online", to)
	case wire.ReasonTooLarge:
		return "the message is larger than the relay accepts", "send a file's location, or split it"
	case wire.ReasonBadRecipient:
		return fmt.Sprintf("the relay will not deliver to %s's address", to), "check the contact: wschat contacts list"
	}
	return fmt.Sprintf("the relay refused the message (%s)", r), "see the relay's log, or ask its operator"
}
