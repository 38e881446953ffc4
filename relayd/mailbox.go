package relayd

import (
	"errors"
	"time"

	"github.com/wschat/wschat/wire"
)

// Mailbox holds frames for recipients with no receiving connection online,
// until a receiving connection acknowledges them or they expire. A frame is
// in custody once Put returns: the relay answers "stored" only then.
//
// Implementations are safe for concurrent use.
// They are MemoryMailbox (RAM only) and BoltMailbox (one file, crash-safe).
type Mailbox interface {
	// Put stores a frame body (the peer envelope, opaque) for recipient and
	// returns its id, which grows with every Put for that recipient. It is
	// durable when Put returns (for the disk mailbox: fsynced). It returns
	// ErrMailboxFull when the recipient's quota would be exceeded.
	Put(recipient wire.RoutingID, sender wire.RoutingID, body []byte, now time.Time) (uint64, error)

	// Pending returns up to max frames stored for recipient with an id
	// greater than after, oldest first, skipping expired ones.
	Pending(recipient wire.RoutingID, after uint64, max int, now time.Time) ([]StoredFrame, error)

	// Delete removes stored frames of recipient (acknowledged in one Ack:
	// the disk mailbox commits them together). Deleting a frame that is
	// not there is not an error (a second Ack for the same frame).
	Delete(recipient wire.RoutingID, ids ...uint64) error

	// Expire deletes every frame stored longer than the TTL and returns
	// how many it deleted.
	Expire(now time.Time) (int, error)

	// Stats reports what the mailbox holds, for metrics.
	Stats() (MailboxStats, error)

	// Close flushes and releases the storage.
	Close() error
}

// StoredFrame is one frame in a mailbox.
type StoredFrame struct {
	ID       uint64
	Sender   wire.RoutingID
	Body     []byte
	StoredAt time.Time
}

// MailboxStats counts what a mailbox holds.
type MailboxStats struct {
	Frames     int
	Bytes      int64
	Recipients int
}

// MailboxLimits are the per-recipient quota and the time to live.
type MailboxLimits struct {
	MaxFrames int           // frames stored per recipient
	MaxBytes  int64         // bytes of bodies stored per recipient
	TTL       time.Duration // how long a frame is kept; well under wire.ReplayHorizon
}

// Default mailbox limits.
const (
	DefaultMailboxMaxFrames = 10000
	DefaultMailboxMaxBytes  = 64 << 20
	DefaultMailboxTTL       = 7 * 24 * time.Hour
)

// ErrMailboxFull: the recipient's quota is reached; the sender is told
// (reason mailbox_full) and may retry later.
var ErrMailboxFull = errors.New("recipient's mailbox is full")
