package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Op is the first byte of a relay command's plaintext. The relay commands
// travel in frames to or from RelayID, sealed by Framer.AppendCommand.
// Multi-byte integers are little-endian.
type Op byte

const (
	// OpWelcome (relay -> client) is the relay's first frame on every
	// connection; that it opens proves the relay holds its pinned key.
	//
	//	version u8 ‖ conn flags u8 (as accepted) ‖ relay time u64 (unix ms)
	//	‖ max frame size u32 ‖ client routing id [8]
	OpWelcome Op = 0x01

	// OpCustody (relay -> client) answers data frames the client sent,
	// naming each by its frame index on this connection:
	//
	//	n u16 (1..MaxCommandEntries) ‖ n × (frame index u64 ‖ status u8 ‖ reason u8)
	OpCustody Op = 0x02

	// OpAck (client -> relay) acknowledges data frames the client has
	// stored, naming each by its index in the relay->client direction;
	// the relay may then delete its stored copy:
	//
	//	n u16 (1..MaxCommandEntries) ‖ n × frame index u64
	OpAck Op = 0x03

	// OpError (relay -> client) is reserved: this version never sends
	// it (a connection ends with a WebSocket close code, PROTOCOL.md §3),
	// and clients ignore it. Its layout, for a later version:
	//
	//	reason u8 ‖ retry after u32 (ms, 0 = not before a new attempt)
	OpError Op = 0x04

	// OpPing (either way) asks for an OpPong with the same token:
	//
	//	token u64
	OpPing Op = 0x05

	// OpPong (either way) answers an OpPing:
	//
	//	token u64
	OpPong Op = 0x06

	// OpRestarting (relay -> client): the relay is going down; reconnect
	// after the first delay, and keep trying for the second:
	//
	//	reconnect after u32 (ms) ‖ try for u32 (ms)
	OpRestarting Op = 0x07

	// OpBacklogDone (relay -> client): every frame the relay held in
	// storage for this identity when the connection opened has now been
	// sent on it:
	//
	//	count u32 (frames sent from storage)
	OpBacklogDone Op = 0x08

	// OpPushKey (relay -> client): the relay sends Web Push wake-ups; this
	// is its VAPID public key (RFC 8292), which a browser needs to
	// subscribe. Sent right after Welcome on receiving connections:
	//
	//	key [65] (uncompressed P-256 point)
	OpPushKey Op = 0x09

	// OpPushSubscribe (client -> relay): wake this identity with a Web
	// Push when a message is stored for it while it has no receiving
	// connection (PROTOCOL.md §6). The subscription is a browser's
	// (PushSubscription.toJSON()), its keys decoded:
	//
	//	p256dh [65] ‖ auth [16] ‖ endpoint length u16 (1..MaxPushEndpoint) ‖ endpoint
	OpPushSubscribe Op = 0x0a

	// OpPushUnsubscribe (client -> relay): forget the subscription with
	// this endpoint:
	//
	//	endpoint length u16 (1..MaxPushEndpoint) ‖ endpoint
	OpPushUnsubscribe Op = 0x0b

	// OpPushResult (relay -> client) answers each PushSubscribe and
	// PushUnsubscribe, in the order they came:
	//
	//	reason u8 (ReasonNone: done)
	OpPushResult Op = 0x0c
)

// Push subscription sizes.
const (
	PushKeySize     = 65   // an uncompressed P-256 public key
	PushAuthSize    = 16   // the subscription's auth secret
	MaxPushEndpoint = 1024 // bytes of an endpoint URL
)

// MaxCommandEntries bounds the entries of one Custody or Ack command.
const MaxCommandEntries = 4096

// Status is the relay's custody answer for one data frame.
type Status byte

const (
	// StatusDelivered: written to a receiving connection of the recipient
	// now; the relay keeps it until that connection acknowledges it, and
	// stores it if it does not in time.
	StatusDelivered Status = 1
	// StatusStored: no receiving connection was online; the frame is in the
	// relay's store until a receiving connection acknowledges it or it
	// expires.
	StatusStored Status = 2
	// StatusRefused: the relay did not take the frame; Reason says why.
	StatusRefused Status = 3
)

func (s Status) String() string {
	switch s {
	case StatusDelivered:
		return "delivered"
	case StatusStored:
		return "stored"
	case StatusRefused:
		return "refused"
	}
	return fmt.Sprintf("status(%d)", byte(s))
}

// Reason says why a frame was refused. The values are also the relay's
// metric labels (Reason.String). Reserved (never sent by this version):
// ReasonRateLimited, ReasonVersion, ReasonIdle, ReasonExpired. Relay-local
// (counted in the relay's metrics, never in a Custody entry):
// ReasonTooManyConns, ReasonHandshakeFailed, ReasonSlowConsumer.
type Reason byte

const (
	ReasonNone             Reason = 0
	ReasonMalformed        Reason = 1  // a frame or command did not parse
	ReasonTooLarge         Reason = 2  // larger than the relay's maximum
	ReasonRateLimited      Reason = 3  // over the connection's rate limit
	ReasonMailboxFull      Reason = 4  // recipient's storage quota reached
	ReasonRecipientOffline Reason = 5  // ephemeral frame, no receiving connection
	ReasonUnknownRecipient Reason = 6  // relay will not store for this id
	ReasonShuttingDown     Reason = 7  // relay is stopping
	ReasonInternal         Reason = 8  // relay-side failure (storage)
	ReasonTooManyConns     Reason = 9  // connection caps reached
	ReasonHandshakeFailed  Reason = 10 // handshake did not complete
	ReasonVersion          Reason = 11 // protocol version not supported
	ReasonIdle             Reason = 12 // keepalive not answered
	ReasonSlowConsumer     Reason = 13 // send queue overflowed
	ReasonExpired          Reason = 14 // stored frame reached its time to live
	ReasonBadRecipient     Reason = 15 // addressed to the relay id or to itself
	ReasonStorageFull      Reason = 16 // the relay's storage for offline recipients is full
	ReasonSenderBudget     Reason = 17 // the sender stored more for offline recipients than the relay allows for now
	ReasonBadEndpoint      Reason = 18 // a push endpoint the relay will not call
	reasonCount                   = 19
)

var reasonNames = [reasonCount]string{
	"none", "malformed", "too_large", "rate_limited", "mailbox_full",
	"recipient_offline", "unknown_recipient", "shutting_down", "internal",
	"too_many_connections", "handshake_failed", "version", "idle",
	"slow_consumer", "expired", "bad_recipient", "storage_full", "sender_budget",
	"bad_endpoint",
}

// ParseReason is the inverse of Reason.String for the known reasons.
func ParseReason(label string) (Reason, bool) {
	for i, n := range reasonNames {
		if n == label {
			return Reason(i), true
		}
	}
	return 0, false
}

// String is the snake_case label used in logs and metrics.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason_%d", byte(r))
}

// CustodyEntry is one frame's custody answer.
type CustodyEntry struct {
	Index  uint64 // the data frame's index, client -> relay
	Status Status
	Reason Reason // ReasonNone unless Status is StatusRefused
}

// Command is a decoded relay command. Op selects which fields are used.
type Command struct {
	Op Op

	// OpWelcome
	Version      byte
	ConnFlags    byte
	Time         uint64 // unix milliseconds
	MaxFrameSize uint32
	ID           RoutingID

	Custody []CustodyEntry // OpCustody
	Acks    []uint64       // OpAck

	Reason Reason // OpError

	Token uint64 // OpPing, OpPong

	// OpError (RetryAfter), OpRestarting (both), in milliseconds.
	RetryAfter uint32
	TryFor     uint32

	Count uint32 // OpBacklogDone

	// OpPushKey (PushKey), OpPushSubscribe (all three), OpPushUnsubscribe
	// (PushEndpoint). OpPushResult uses Reason.
	PushKey      []byte
	PushAuth     []byte
	PushEndpoint string
}

// Command parse errors.
var (
	// ErrCommandMalformed: a command of a known op with the wrong length or
	// an out-of-range field.
	ErrCommandMalformed = errors.New("malformed relay command")
	// ErrUnknownCommand: an op this version does not know. Receivers
	// ignore such commands, so a relay may add informational ones without
	// a version change.
	ErrUnknownCommand = errors.New("unknown relay command")
)

var commandFixedSize = map[Op]int{
	OpWelcome:     1 + 1 + 8 + 4 + RoutingIDSize,
	OpError:       1 + 4,
	OpPing:        8,
	OpPong:        8,
	OpRestarting:  4 + 4,
	OpBacklogDone: 4,
	OpPushKey:     PushKeySize,
	OpPushResult:  1,
}

func (c *Command) appendTo(b []byte) ([]byte, error) {
	b = append(b, byte(c.Op))
	le := binary.LittleEndian
	switch c.Op {
	case OpWelcome:
		b = append(b, c.Version, c.ConnFlags)
		b = le.AppendUint64(b, c.Time)
		b = le.AppendUint32(b, c.MaxFrameSize)
		b = append(b, c.ID[:]...)
	case OpCustody:
		if len(c.Custody) == 0 || len(c.Custody) > MaxCommandEntries {
			return nil, fmt.Errorf("%w: %d custody entries", ErrCommandMalformed, len(c.Custody))
		}
		b = le.AppendUint16(b, uint16(len(c.Custody)))
		for _, e := range c.Custody {
			b = le.AppendUint64(b, e.Index)
			b = append(b, byte(e.Status), byte(e.Reason))
		}
	case OpAck:
		if len(c.Acks) == 0 || len(c.Acks) > MaxCommandEntries {
			return nil, fmt.Errorf("%w: %d acks", ErrCommandMalformed, len(c.Acks))
		}
		b = le.AppendUint16(b, uint16(len(c.Acks)))
		for _, i := range c.Acks {
			b = le.AppendUint64(b, i)
		}
	case OpError:
		b = append(b, byte(c.Reason))
		b = le.AppendUint32(b, c.RetryAfter)
	case OpPing, OpPong:
		b = le.AppendUint64(b, c.Token)
	case OpRestarting:
		b = le.AppendUint32(b, c.RetryAfter)
		b = le.AppendUint32(b, c.TryFor)
	case OpBacklogDone:
		b = le.AppendUint32(b, c.Count)
	case OpPushKey:
		if len(c.PushKey) != PushKeySize {
			return nil, fmt.Errorf("%w: push key of %d bytes", ErrCommandMalformed, len(c.PushKey))
		}
		b = append(b, c.PushKey...)
	case OpPushSubscribe:
		if len(c.PushKey) != PushKeySize || len(c.PushAuth) != PushAuthSize {
			return nil, fmt.Errorf("%w: push keys of %d and %d bytes", ErrCommandMalformed, len(c.PushKey), len(c.PushAuth))
		}
		b = append(b, c.PushKey...)
		b = append(b, c.PushAuth...)
		fallthrough
	case OpPushUnsubscribe:
		if n := len(c.PushEndpoint); n == 0 || n > MaxPushEndpoint {
			return nil, fmt.Errorf("%w: push endpoint of %d bytes", ErrCommandMalformed, n)
		}
		b = le.AppendUint16(b, uint16(len(c.PushEndpoint)))
		b = append(b, c.PushEndpoint...)
	case OpPushResult:
		b = append(b, byte(c.Reason))
	default:
		return nil, fmt.Errorf("%w: op %#x", ErrUnknownCommand, byte(c.Op))
	}
	return b, nil
}

// parseEndpoint reads "length u16 ‖ endpoint", the whole of b.
func parseEndpoint(b []byte) (string, error) {
	if len(b) < 2 {
		return "", ErrCommandMalformed
	}
	n := int(binary.LittleEndian.Uint16(b))
	if n == 0 || n > MaxPushEndpoint || len(b) != 2+n {
		return "", fmt.Errorf("%w: push endpoint of %d bytes in %d", ErrCommandMalformed, n, len(b))
	}
	return string(b[2:]), nil
}

// MarshalBinary encodes the command's plaintext (op byte and fields).
func (c *Command) MarshalBinary() ([]byte, error) { return c.appendTo(nil) }

// ParseCommand decodes a command plaintext strictly: exact lengths, entry
// counts in range, known statuses. MarshalBinary of the result gives back
// the same bytes.
func ParseCommand(b []byte) (*Command, error) {
	c := new(Command)
	if err := c.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return c, nil
}

// UnmarshalBinary is ParseCommand into c, which it overwrites; it reuses
// the capacity of c's Acks and Custody, so a reader that parses every
// command into one Command allocates nothing for them. On error c holds
// no meaningful command.
func (c *Command) UnmarshalBinary(b []byte) error {
	*c = Command{Acks: c.Acks[:0], Custody: c.Custody[:0]}
	if len(b) == 0 {
		return ErrCommandMalformed
	}
	c.Op = Op(b[0])
	body := b[1:]
	le := binary.LittleEndian
	if n, ok := commandFixedSize[c.Op]; ok && len(body) != n {
		return fmt.Errorf("%w: op %#x is %d bytes, want %d", ErrCommandMalformed, b[0], len(body), n)
	}
	switch c.Op {
	case OpWelcome:
		c.Version, c.ConnFlags = body[0], body[1]
		c.Time = le.Uint64(body[2:])
		c.MaxFrameSize = le.Uint32(body[10:])
		copy(c.ID[:], body[14:])
	case OpCustody:
		n, err := entryCount(body, 10)
		if err != nil {
			return err
		}
		c.Custody = slices.Grow(c.Custody, n)[:n]
		for i := range c.Custody {
			e := body[2+10*i:]
			c.Custody[i] = CustodyEntry{Index: le.Uint64(e), Status: Status(e[8]), Reason: Reason(e[9])}
			switch c.Custody[i].Status {
			case StatusDelivered, StatusStored:
				if c.Custody[i].Reason != ReasonNone {
					return fmt.Errorf("%w: reason on a %s entry", ErrCommandMalformed, c.Custody[i].Status)
				}
			case StatusRefused:
			default:
				return fmt.Errorf("%w: custody status %d", ErrCommandMalformed, e[8])
			}
		}
	case OpAck:
		n, err := entryCount(body, 8)
		if err != nil {
			return err
		}
		c.Acks = slices.Grow(c.Acks, n)[:n]
		for i := range c.Acks {
			c.Acks[i] = le.Uint64(body[2+8*i:])
		}
	case OpError:
		c.Reason = Reason(body[0])
		c.RetryAfter = le.Uint32(body[1:])
	case OpPing, OpPong:
		c.Token = le.Uint64(body)
	case OpRestarting:
		c.RetryAfter = le.Uint32(body)
		c.TryFor = le.Uint32(body[4:])
	case OpBacklogDone:
		c.Count = le.Uint32(body)
	case OpPushKey:
		c.PushKey = append([]byte(nil), body...)
	case OpPushSubscribe:
		if len(body) < PushKeySize+PushAuthSize {
			return fmt.Errorf("%w: push subscription of %d bytes", ErrCommandMalformed, len(body))
		}
		c.PushKey = append([]byte(nil), body[:PushKeySize]...)
		c.PushAuth = append([]byte(nil), body[PushKeySize:PushKeySize+PushAuthSize]...)
		ep, err := parseEndpoint(body[PushKeySize+PushAuthSize:])
		if err != nil {
			return err
		}
		c.PushEndpoint = ep
	case OpPushUnsubscribe:
		ep, err := parseEndpoint(body)
		if err != nil {
			return err
		}
		c.PushEndpoint = ep
	case OpPushResult:
		c.Reason = Reason(body[0])
	default:
		return fmt.Errorf("%w: op %#x", ErrUnknownCommand, b[0])
	}
	return nil
}

func entryCount(body []byte, size int) (int, error) {
	if len(body) < 2 {
		return 0, ErrCommandMalformed
	}
	n := int(binary.LittleEndian.Uint16(body))
	if n == 0 || n > MaxCommandEntries || len(body) != 2+n*size {
		return 0, fmt.Errorf("%w: %d entries in %d bytes", ErrCommandMalformed, n, len(body))
	}
	return n, nil
}
