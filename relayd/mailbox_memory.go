package relayd

import (
	"slices"
	"sync"
	"time"

	"github.com/wschat/wschat/wire"
)

// MemoryMailbox is a Mailbox in RAM, for relays that keep nothing on disk
// (`wschat relay --mailbox memory`): a restart loses every stored frame and
// every registration (identities register again with their next receiving
// connection). Create with NewMemoryMailbox.
type MemoryMailbox struct {
	limits MailboxLimits // static after construction

	mu     sync.Mutex
	boxes  map[wire.RoutingID]*memBox // guarded by mu; a recipient is here only while it has frames
	regs   map[wire.RoutingID]int64   // guarded by mu: registration stamps (MailboxLimits.regStamp)
	lastID uint64                     // guarded by mu: the last frame id issued, for any recipient
	frames int                        // guarded by mu: live frames in all boxes
	rcpts  int                        // guarded by mu: of frames, receipts
	bytes  int64                      // guarded by mu: bytes of their bodies
	closed bool                       // guarded by mu
}

// memBox is one recipient's frames.
type memBox struct {
	frames []memFrame  // by id ascending; deleted frames stay as tombstones until compacted
	live   int         // frames not deleted
	n      [2]memCount // messages, receipts
	oldest int64       // unix ms, at most the stored-at of every live frame (exact after Expire)
}

type memCount struct {
	frames int64
	bytes  int64
}

type memFrame struct {
	id      uint64
	at      int64  // stored at, unix ms
	body    []byte // nil once deleted
	receipt bool
	dead    bool
}

func kind(receipt bool) int {
	if receipt {
		return 1
	}
	return 0
}

var _ Mailbox = (*MemoryMailbox)(nil)

// NewMemoryMailbox returns an empty mailbox in RAM. Zero fields of limits
// take the defaults (DefaultMailboxMaxFrames, …).
func NewMemoryMailbox(limits MailboxLimits) *MemoryMailbox {
	return &MemoryMailbox{limits: limits.withDefaults(), boxes: make(map[wire.RoutingID]*memBox), regs: make(map[wire.RoutingID]int64)}
}

// usedLocked is what counts against MaxStorage.
func (m *MemoryMailbox) usedLocked() int64 {
	return m.bytes + int64(m.frames)*frameOverhead + int64(len(m.regs))*regOverhead
}

// Register implements Mailbox.
func (m *MemoryMailbox) Register(id wire.RoutingID, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrMailboxClosed
	}
	stamp := m.limits.regStamp(now)
	old, ok := m.regs[id]
	if !ok && m.usedLocked()+regOverhead > m.limits.softCap() {
		return ErrStorageFull
	}
	m.regs[id] = max(old, stamp)
	return nil
}

// Put implements Mailbox. It copies the body. Ids are issued from one
// counter for all recipients, so they grow per recipient even after every
// frame of a recipient was deleted.
func (m *MemoryMailbox) Put(f Frame) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrMailboxClosed
	}
	if _, ok := m.regs[f.Recipient]; !ok {
		return 0, ErrUnknownRecipient
	}
	b := m.boxes[f.Recipient]
	var c memCount
	if b != nil {
		c = b.n[kind(f.Receipt)]
	}
	if !m.limits.quota(f.Receipt, c.frames, c.bytes, len(f.Body)) {
		return 0, ErrMailboxFull
	}
	if !m.limits.fits(m.usedLocked(), len(f.Body), f.Held) {
		return 0, ErrStorageFull
	}
	at := f.At.UnixMilli()
	if b == nil {
		b = &memBox{oldest: at}
		m.boxes[f.Recipient] = b
	}
	m.lastID++
	b.frames = append(b.frames, memFrame{id: m.lastID, at: at, body: append([]byte{}, f.Body...), receipt: f.Receipt})
	b.live++
	k := &b.n[kind(f.Receipt)]
	k.frames++
	k.bytes += int64(len(f.Body))
	b.oldest = min(b.oldest, at)
	m.frames++
	if f.Receipt {
		m.rcpts++
	}
	m.bytes += int64(len(f.Body))
	return m.lastID, nil
}

// Pending implements Mailbox. The bodies it returns are shared with the
// mailbox: callers must not modify them.
func (m *MemoryMailbox) Pending(recipient wire.RoutingID, after uint64, max int, receiptsOnly bool, now time.Time) ([]StoredFrame, error) {
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
		if f.dead || receiptsOnly && !f.receipt || expired(f.at, nowMs, m.limits.TTL) {
			continue
		}
		if out == nil {
			out = make([]StoredFrame, 0, min(max, len(b.frames)-i))
		}
		out = append(out, StoredFrame{ID: f.id, Receipt: f.receipt, Body: f.body, StoredAt: time.UnixMilli(f.at)})
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
	k := &b.n[kind(f.receipt)]
	k.frames--
	k.bytes -= n
	if f.receipt {
		m.rcpts--
	}
	f.dead, f.body = true, nil
	b.live--
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
func (m *MemoryMailbox) Expire(now time.Time, online func(wire.RoutingID) bool) (Expired, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Expired{}, ErrMailboxClosed
	}
	var n Expired
	for id, stamp := range m.regs {
		if !m.limits.regExpired(stamp, now) || online != nil && online(id) {
			continue
		}
		delete(m.regs, id)
		n.Registrations++
		if b := m.boxes[id]; b != nil {
			for i := range b.frames {
				if !b.frames[i].dead {
					m.killLocked(b, i)
					n.Frames++
				}
			}
			delete(m.boxes, id)
		}
	}
	nowMs := now.UnixMilli()
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
				n.Frames++
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
	return MailboxStats{Frames: m.frames, Receipts: m.rcpts, Bytes: m.bytes, Recipients: len(m.boxes),
		Registrations: len(m.regs), Used: m.usedLocked()}, nil
}

// Close implements Mailbox: it drops every stored frame. Closing twice is
// not an error.
func (m *MemoryMailbox) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.boxes, m.regs = nil, nil
	m.frames, m.rcpts, m.bytes = 0, 0, 0
	return nil
}
