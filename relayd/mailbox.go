package relayd

import (
	"errors"
	"time"

	"github.com/wschat/wschat/wire"
)

// Mailbox holds frames for registered recipients with no receiving
// connection online, until a receiving connection acknowledges them or
// they expire. A frame is in custody once Put returns: the relay answers
// "stored" only then.
//
// A mailbox stores only for registered identities: an identity registers
// by opening a receiving connection (Register), and its registration lasts
// RegistrationTTL after the last one. It keeps no sender ids: what it
// holds per frame is the recipient, whether the frame is a receipt, when
// it was stored, and the opaque body.
//
// Implementations are safe for concurrent use.
// They are MemoryMailbox (RAM only) and BoltMailbox (one file, crash-safe).
type Mailbox interface {
	// Register records that id has a receiving connection at now; frames
	// for id are stored from then until RegistrationTTL after its last
	// registration. It is durable when it returns, and cheap when id
	// registered recently (nothing is written). ErrStorageFull: no room
	// for a new registration.
	Register(id wire.RoutingID, now time.Time) error

	// Put stores f and returns its id, which grows with every Put. It is
	// durable when Put returns (for the disk mailbox: fsynced). Errors:
	// ErrUnknownRecipient (not registered), ErrMailboxFull (the
	// recipient's quota for frames of f's kind), ErrStorageFull (the
	// mailbox's total cap).
	Put(f Frame) (uint64, error)

	// Pending returns up to max frames stored for recipient with an id
	// greater than after, oldest first, skipping expired ones; with
	// receiptsOnly, only receipts (what a send-only connection collects).
	Pending(recipient wire.RoutingID, after uint64, max int, receiptsOnly bool, now time.Time) ([]StoredFrame, error)

	// Delete removes stored frames of recipient (acknowledged in one Ack:
	// the disk mailbox commits them together). Deleting a frame that is
	// not there is not an error (a second Ack for the same frame).
	Delete(recipient wire.RoutingID, ids ...uint64) error

	// Expire deletes every frame stored longer than the TTL, and every
	// registration older than the registration TTL with the frames of its
	// identity, except those of identities for which online reports a
	// receiving connection now (their registration is renewed when it
	// ends).
	Expire(now time.Time, online func(wire.RoutingID) bool) (Expired, error)

	// Stats reports what the mailbox holds, for metrics.
	Stats() (MailboxStats, error)

	// Close flushes and releases the storage.
	Close() error
}

// Frame is what Put stores.
type Frame struct {
	Recipient wire.RoutingID
	Receipt   bool // a frame marked wire.FlagReceipt: counted under its own quota
	Body      []byte
	At        time.Time // when the relay took it
	// Held: the relay has already answered for this frame (it was
	// delivered live and not acknowledged), so it may use the part of the
	// storage cap kept for such frames (see MailboxLimits.MaxStorage).
	Held bool
}

// StoredFrame is one frame in a mailbox.
type StoredFrame struct {
	ID       uint64
	Receipt  bool
	Body     []byte
	StoredAt time.Time
}

// Expired counts what Expire deleted.
type Expired struct {
	Frames        int // frames past the TTL, and frames of expired registrations
	Registrations int
}

// MailboxStats counts what a mailbox holds.
type MailboxStats struct {
	Frames        int   // messages and receipts
	Receipts      int   // of Frames
	Bytes         int64 // bytes of the bodies
	Recipients    int   // identities with frames stored
	Registrations int
	Used          int64 // what counts against MaxStorage
}

// MailboxLimits are the per-recipient quotas, the total cap and the times
// to live. Zero or negative fields take the defaults.
type MailboxLimits struct {
	MaxFrames   int           // messages stored per recipient
	MaxBytes    int64         // bytes stored per recipient, for messages and for receipts each
	MaxReceipts int           // receipts stored per recipient, a quota of their own
	TTL         time.Duration // how long a frame is kept; well under wire.ReplayHorizon

	// MaxStorage caps everything the mailbox holds: frames, counted with
	// an overhead each (frameOverhead), and registrations (regOverhead).
	// New frames and registrations are refused (ErrStorageFull) once
	// three quarters are used, held frames once seven eighths are: the
	// disk mailbox needs the rest for copy-on-write pages, so that an
	// Ack can always be committed, and its file never grows beyond
	// MaxStorage.
	MaxStorage int64

	// RegistrationTTL is how long a registration lasts after the
	// identity's last receiving connection.
	RegistrationTTL time.Duration
}

// Default mailbox limits.
const (
	DefaultMailboxMaxFrames   = 10000
	DefaultMailboxMaxBytes    = 64 << 20
	DefaultMailboxMaxReceipts = 4096
	DefaultMailboxTTL         = 7 * 24 * time.Hour
	DefaultMaxStorage         = 10 << 30
	DefaultRegistrationTTL    = 90 * 24 * time.Hour
)

// What a frame and a registration count against MaxStorage besides the
// body: keys, headers and page slack in the disk mailbox, allocation and
// map overhead in the memory mailbox.
const (
	frameOverhead = 64
	regOverhead   = 64
)

// Mailbox errors.
var (
	// ErrMailboxFull: the recipient's quota is reached; the sender is
	// told (reason mailbox_full) and may retry once the recipient has
	// collected its frames.
	ErrMailboxFull = errors.New("recipient's mailbox is full")
	// ErrUnknownRecipient: the recipient is not registered (reason
	// unknown_recipient): it never opened a receiving connection here, or
	// not within the registration TTL.
	ErrUnknownRecipient = errors.New("recipient is not registered on this relay")
	// ErrStorageFull: the mailbox's total cap is reached (reason
	// storage_full); live delivery goes on.
	ErrStorageFull = errors.New("relay storage is full")
	// ErrMailboxClosed is returned by every method of a mailbox after
	// Close.
	ErrMailboxClosed = errors.New("mailbox is closed")
)

// withDefaults gives every zero or negative limit its default, so that
// MailboxLimits{} means the defaults and MailboxLimits{MaxFrames: 3} changes
// only the frame quota.
func (l MailboxLimits) withDefaults() MailboxLimits {
	if l.MaxFrames <= 0 {
		l.MaxFrames = DefaultMailboxMaxFrames
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMailboxMaxBytes
	}
	if l.MaxReceipts <= 0 {
		l.MaxReceipts = DefaultMailboxMaxReceipts
	}
	if l.TTL <= 0 {
		l.TTL = DefaultMailboxTTL
	}
	if l.MaxStorage <= 0 {
		l.MaxStorage = DefaultMaxStorage
	}
	if l.RegistrationTTL <= 0 {
		l.RegistrationTTL = DefaultRegistrationTTL
	}
	return l
}

// softCap is what new frames and registrations may use, holdCap what held
// frames may use (see MaxStorage).
func (l MailboxLimits) softCap() int64 { return l.MaxStorage / 4 * 3 }
func (l MailboxLimits) holdCap() int64 { return l.MaxStorage / 8 * 7 }

// fits reports whether a frame of n body bytes fits beside used bytes.
func (l MailboxLimits) fits(used int64, n int, held bool) bool {
	limit := l.softCap()
	if held {
		limit = l.holdCap()
	}
	return used+int64(n)+frameOverhead <= limit
}

// quota checks a recipient's quota for one more frame of n bytes of the
// kind whose counts are frames and bytes.
func (l MailboxLimits) quota(receipt bool, frames int64, bytes int64, n int) bool {
	max := int64(l.MaxFrames)
	if receipt {
		max = int64(l.MaxReceipts)
	}
	return frames+1 <= max && bytes+int64(n) <= l.MaxBytes
}

// regGranule is the resolution of registration times: a registration
// records the start of the granule of its last receiving connection, so a
// mailbox keeps no finer time of anyone's connections, and writes a
// registration at most once per granule. A day, or less for a short TTL.
func (l MailboxLimits) regGranule() time.Duration {
	return min(24*time.Hour, max(l.RegistrationTTL/32, time.Millisecond))
}

// regStamp is the registration time recorded for a connection at now
// (unix ms, the start of now's granule).
func (l MailboxLimits) regStamp(now time.Time) int64 {
	g := l.regGranule().Milliseconds()
	ms := now.UnixMilli()
	return ms - ms%g
}

// regExpired reports whether a registration stamped stamp has expired at
// now: its last connection was before stamp plus a granule, and the TTL
// has passed since then.
func (l MailboxLimits) regExpired(stamp int64, now time.Time) bool {
	return now.UnixMilli() > stamp+l.regGranule().Milliseconds()+l.RegistrationTTL.Milliseconds()
}

// expired reports whether a frame stored at storedMs has been stored longer
// than ttl at nowMs (unix milliseconds). A frame exactly ttl old is still
// delivered. Both mailboxes keep stored-at times to the millisecond and use
// this one rule, so they expire the same frames.
func expired(storedMs, nowMs int64, ttl time.Duration) bool {
	return nowMs-storedMs > ttl.Milliseconds()
}
