package relayd

import (
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/wschat/wschat/wire"
)

// ErrMailboxClosed is returned by every method of a mailbox after Close.
var ErrMailboxClosed = errors.New("mailbox is closed")

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
	if l.TTL <= 0 {
		l.TTL = DefaultMailboxTTL
	}
	return l
}

// expired reports whether a frame stored at storedMs has been stored longer
// than ttl at nowMs (unix milliseconds). A frame exactly ttl old is still
// delivered. Both mailboxes keep stored-at times to the millisecond and use
// this one rule, so they expire the same frames.
func expired(storedMs, nowMs int64, ttl time.Duration) bool {
	return nowMs-storedMs > ttl.Milliseconds()
}

// MemoryMailbox is a Mailbox in RAM, for relays that keep nothing on disk
// (`wschat relay --mailbox memory`): a restart loses every stored frame.
// Create with NewMemoryMailbox.
type MemoryMailbox struct {
	limits MailboxLimits // static after construction

	mu     sync.Mutex
	boxes  map[wire.RoutingID]*memBox // guarded by mu; a recipient is here only while it has frames
	lastID uint64                     // guarded by mu: the last frame id issued, for any recipient
	frames int                        // guarded by mu: live frames in all boxes
	bytes  int64                      // guarded by mu: bytes of their bodies
	closed bool                       // guarded by mu
}

// memBox is one recipient's frames.
type memBox struct {
	frames []memFrame // by id ascending; deleted frames stay as tombstones until compacted
	live   int        // frames not deleted
	bytes  int64      // bytes of their bodies
	oldest int64      // unix ms, at most the stored-at of every live frame (exact after expireLocked)
}

type memFrame struct {
	id     uint64
	sender wire.RoutingID
	at     int64  // stored at, unix ms
	body   []byte // nil once deleted
	dead   bool
}

var _ Mailbox = (*MemoryMailbox)(nil)

// NewMemoryMailbox returns an empty mailbox in RAM. Zero fields of limits
// take the defaults (DefaultMailboxMaxFrames, …).
func NewMemoryMailbox(limits MailboxLimits) *MemoryMailbox {
	return &MemoryMailbox{limits: limits.withDefaults(), boxes: make(map[wire.RoutingID]*memBox)}
}

// Put implements Mailbox. It copies body. Ids are issued from one counter
// for all recipients, so they grow per recipient even after every frame of
// a recipient was deleted.
func (m *MemoryMailbox) Put(recipient, sender wire.RoutingID, body []byte, now time.Time) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrMailboxClosed
	}
	b := m.boxes[recipient]
	var live int
	var bytes int64
	if b != nil {
		live, bytes = b.live, b.bytes
	}
	if live+1 > m.limits.MaxFrames || bytes+int64(len(body)) > m.limits.MaxBytes {
		return 0, ErrMailboxFull
	}
	at := now.UnixMilli()
	if b == nil {
		b = &memBox{oldest: at}
		m.boxes[recipient] = b
	}
	m.lastID++
	b.frames = append(b.frames, memFrame{id: m.lastID, sender: sender, at: at, body: append([]byte{}, body...)})
	b.live++
	b.bytes += int64(len(body))
	b.oldest = min(b.oldest, at)
	m.frames++
	m.bytes += int64(len(body))
	return m.lastID, nil
}

// Pending implements Mailbox. The bodies it returns are shared with the
// mailbox: callers must not modify them.
func (m *MemoryMailbox) Pending(recipient wire.RoutingID, after uint64, max int, now time.Time) ([]StoredFrame, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrMailboxClosed
	}
	b := m.boxes[recipient]
	if b == nil || max <= 0 {
		return nil, nil
	}
	nowMs := now.UnixMilli()
	i, _ := slices.BinarySearchFunc(b.frames, after+1, cmpFrameID)
	if after == ^uint64(0) {
		i = len(b.frames)
	}
	var out []StoredFrame
	for ; i < len(b.frames) && len(out) < max; i++ {
		f := &b.frames[i]
		if f.dead || expired(f.at, nowMs, m.limits.TTL) {
			continue
		}
		if out == nil {
			out = make([]StoredFrame, 0, min(max, len(b.frames)-i))
		}
		out = append(out, StoredFrame{ID: f.id, Sender: f.sender, Body: f.body, StoredAt: time.UnixMilli(f.at)})
	}
	return out, nil
}

func cmpFrameID(f memFrame, id uint64) int {
	switch {
	case f.id < id:
		return -1
	case f.id > id:
		return 1
	}
	return 0
}

// Delete implements Mailbox.
func (m *MemoryMailbox) Delete(recipient wire.RoutingID, ids ...uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrMailboxClosed
	}
	for _, id := range ids {
		b := m.boxes[recipient]
		if b == nil {
			return nil
		}
		i, ok := slices.BinarySearchFunc(b.frames, id, cmpFrameID)
		if !ok || b.frames[i].dead {
			continue
		}
		m.killLocked(b, i)
		m.tidyLocked(recipient, b)
	}
	return nil
}

// killLocked deletes frame i of b.
func (m *MemoryMailbox) killLocked(b *memBox, i int) {
	f := &b.frames[i]
	n := int64(len(f.body))
	f.dead, f.body = true, nil
	b.live--
	b.bytes -= n
	m.frames--
	m.bytes -= n
}

// tidyLocked drops tombstones from the front of b, compacts b when most of
// it is tombstones, and forgets b when it is empty.
func (m *MemoryMailbox) tidyLocked(recipient wire.RoutingID, b *memBox) {
	if b.live == 0 {
		delete(m.boxes, recipient)
		return
	}
	for len(b.frames) > 0 && b.frames[0].dead {
		b.frames[0] = memFrame{}
		b.frames = b.frames[1:]
	}
	if dead := len(b.frames) - b.live; dead > 16 && dead > b.live {
		b.frames = slices.DeleteFunc(b.frames, func(f memFrame) bool { return f.dead })
	}
}

// Expire implements Mailbox.
func (m *MemoryMailbox) Expire(now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrMailboxClosed
	}
	nowMs := now.UnixMilli()
	n := 0
	for rid, b := range m.boxes {
		if !expired(b.oldest, nowMs, m.limits.TTL) {
			continue // nothing in b can have expired
		}
		oldest := int64(1<<63 - 1)
		for i := range b.frames {
			f := &b.frames[i]
			switch {
			case f.dead:
			case expired(f.at, nowMs, m.limits.TTL):
				m.killLocked(b, i)
				n++
			default:
				oldest = min(oldest, f.at)
			}
		}
		b.oldest = oldest
		m.tidyLocked(rid, b)
	}
	return n, nil
}

// Stats implements Mailbox.
func (m *MemoryMailbox) Stats() (MailboxStats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return MailboxStats{}, ErrMailboxClosed
	}
	return MailboxStats{Frames: m.frames, Bytes: m.bytes, Recipients: len(m.boxes)}, nil
}

// Close implements Mailbox: it drops every stored frame. Closing twice is
// not an error.
func (m *MemoryMailbox) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.boxes = nil
	m.frames, m.bytes = 0, 0
	return nil
}
