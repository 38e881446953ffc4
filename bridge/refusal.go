package bridge

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gorilla/websocket"

	"github.com/wschat/wschat/wire"
)

// ConnRefusedError: the relay answered the connection with an HTTP
// refusal instead of upgrading it (PROTOCOL.md §4, "Refused
// connections"): too many connections from this address, or the relay is
// at its limit or restarting.
type ConnRefusedError struct {
	URL    string
	Status int         // the HTTP status, such as 429
	Reason wire.Reason // from the body's label; ReasonNone if it had none
	Text   string      // the relay's words, at most 200 bytes, printable ASCII only
}

func (e *ConnRefusedError) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("relay %s refused the connection: %s", e.URL, e.Text)
	}
	return fmt.Sprintf("relay %s refused the connection (HTTP %d)", e.URL, e.Status)
}

// dialError turns a failed WebSocket dial into an error that says what
// the relay answered, if it answered.
func dialError(url string, resp *http.Response, err error) error {
	if resp == nil || !errors.Is(err, websocket.ErrBadHandshake) {
		return fmt.Errorf("connecting to %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	e := &ConnRefusedError{URL: url, Status: resp.StatusCode}
	line, _, _ := strings.Cut(string(b), "\n")
	if label, words, ok := strings.Cut(line, ": "); ok {
		if r, known := wire.ParseReason(label); known {
			e.Reason, line = r, words
		}
	}
	e.Text = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1 // the relay's words reach a terminal: nothing but printable ASCII
		}
		return r
	}, line)
	return e
}

// RefusedError: the relay refused a message (a Custody answer with status
// refused). Unless the refusal is Temporary, the message has left the
// outbox and its refusal is recorded (Store.Refusal): it is not offered
// again on every connection.
type RefusedError struct {
	ID     wire.MessageID
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
