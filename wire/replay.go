package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Replay protection for peer messages. A receiver remembers the id and
// sent-at time of every message it accepted within ReplayHorizon and
// refuses the same id again; a message older than the horizon is refused
// outright, because its id may already be forgotten. The guard's state is
// saved with the message (MarshalBinary) before the message is shown, so a
// restart does not reopen the door.
const (
	// ReplayHorizon is how long accepted ids are remembered. Relays must
	// expire stored frames sooner than this.
	ReplayHorizon = 30 * 24 * time.Hour
	// MaxClockSkew is how far in the future a sent-at time may lie.
	MaxClockSkew = 24 * time.Hour
	// MaxReplayPerPeer bounds the ids remembered per sender. When it is
	// reached the oldest quarter is forgotten and the sender's floor rises
	// to their newest sent-at: nothing at or before the floor is accepted.
	MaxReplayPerPeer = 1 << 17
)

// Replay errors.
var (
	// ErrReplay: a message with this id from this sender was accepted
	// before.
	ErrReplay = errors.New("message already accepted (replay)")
	// ErrTooOld: the message was sent before the replay horizon (or the
	// sender's floor), so a replay could no longer be recognised.
	ErrTooOld = errors.New("message is older than the replay horizon")
	// ErrFromFuture: the sent-at time is more than MaxClockSkew ahead.
	ErrFromFuture = errors.New("message sent-at time is too far in the future")
	// ErrReplayState: a saved replay state that does not parse.
	ErrReplayState = errors.New("corrupt replay state")
)

// ReplayGuard remembers accepted message ids per sender. Safe for
// concurrent use.
type ReplayGuard struct {
	mu    sync.Mutex
	peers map[Fingerprint]*peerReplay // guarded by mu
}

type peerReplay struct {
	floor int64               // unix ms; sent-at ≤ floor is refused
	seen  map[MessageID]int64 // id -> sent-at, unix ms
}

// NewReplayGuard returns an empty guard.
func NewReplayGuard() *ReplayGuard {
	return &ReplayGuard{peers: make(map[Fingerprint]*peerReplay)}
}

// Check reports whether a message from sender with this id and sent-at
// time would be accepted now. It changes nothing.
func (g *ReplayGuard) Check(sender Fingerprint, id MessageID, sentAt, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.checkLocked(sender, id, sentAt.UnixMilli(), now)
}

func (g *ReplayGuard) checkLocked(sender Fingerprint, id MessageID, at int64, now time.Time) error {
	if at > now.Add(MaxClockSkew).UnixMilli() {
		return ErrFromFuture
	}
	if at <= now.Add(-ReplayHorizon).UnixMilli() {
		return ErrTooOld
	}
	p := g.peers[sender]
	if p == nil {
		return nil
	}
	if at <= p.floor {
		return ErrTooOld
	}
	if _, ok := p.seen[id]; ok {
		return ErrReplay
	}
	return nil
}

// Accept checks the message like Check and, if it passes, remembers it.
// Call it only for a message that Pair.Open accepted.
func (g *ReplayGuard) Accept(sender Fingerprint, id MessageID, sentAt, now time.Time) error {
	at := sentAt.UnixMilli()
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkLocked(sender, id, at, now); err != nil {
		return err
	}
	p := g.peers[sender]
	if p == nil {
		p = &peerReplay{seen: make(map[MessageID]int64)}
		g.peers[sender] = p
	}
	if len(p.seen) >= MaxReplayPerPeer {
		p.evictOldest(MaxReplayPerPeer / 4)
	}
	p.seen[id] = at
	return nil
}

func (p *peerReplay) evictOldest(n int) {
	ats := make([]int64, 0, len(p.seen))
	for _, at := range p.seen {
		ats = append(ats, at)
	}
	slices.Sort(ats)
	cut := ats[n-1]
	for id, at := range p.seen {
		if at <= cut {
			delete(p.seen, id)
		}
	}
	p.floor = max(p.floor, cut)
}

// Prune forgets ids older than the horizon; they are refused by age now.
func (g *ReplayGuard) Prune(now time.Time) {
	limit := now.Add(-ReplayHorizon).UnixMilli()
	g.mu.Lock()
	defer g.mu.Unlock()
	for fp, p := range g.peers {
		for id, at := range p.seen {
			if at <= limit {
				delete(p.seen, id)
			}
		}
		if len(p.seen) == 0 && p.floor <= limit {
			delete(g.peers, fp)
		}
	}
}

// Len is the number of remembered ids.
func (g *ReplayGuard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, p := range g.peers {
		n += len(p.seen)
	}
	return n
}

// Saved replay state:
//
//	"WSRP" ‖ version u8 (1) ‖ peers u32
//	per peer, by fingerprint ascending:
//	  fingerprint [32] ‖ floor i64 ‖ n u32 ‖ n × (message id [16] ‖ sent-at i64), by id ascending
var replayMagic = []byte("WSRP\x01")

const replayEntrySize = MessageIDSize + 8

// MarshalBinary saves the guard's state.
func (g *ReplayGuard) MarshalBinary() ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	le := binary.LittleEndian
	fps := make([]Fingerprint, 0, len(g.peers))
	size := len(replayMagic) + 4
	for fp, p := range g.peers {
		fps = append(fps, fp)
		size += KeySize + 8 + 4 + len(p.seen)*replayEntrySize
	}
	slices.SortFunc(fps, func(a, b Fingerprint) int { return bytes.Compare(a[:], b[:]) })
	b := make([]byte, 0, size)
	b = append(b, replayMagic...)
	b = le.AppendUint32(b, uint32(len(fps)))
	for _, fp := range fps {
		p := g.peers[fp]
		b = append(b, fp[:]...)
		b = le.AppendUint64(b, uint64(p.floor))
		ids := make([]MessageID, 0, len(p.seen))
		for id := range p.seen {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b MessageID) int { return bytes.Compare(a[:], b[:]) })
		b = le.AppendUint32(b, uint32(len(ids)))
		for _, id := range ids {
			b = append(b, id[:]...)
			b = le.AppendUint64(b, uint64(p.seen[id]))
		}
	}
	return b, nil
}

// UnmarshalBinary replaces the guard's state with a saved one. It is
// strict (sorted, no duplicates, counts that fit the data), so saving the
// result gives back the same bytes.
func (g *ReplayGuard) UnmarshalBinary(b []byte) error {
	le := binary.LittleEndian
	if !bytes.HasPrefix(b, replayMagic) || len(b) < len(replayMagic)+4 {
		return fmt.Errorf("%w: bad header", ErrReplayState)
	}
	b = b[len(replayMagic):]
	npeers := le.Uint32(b)
	b = b[4:]
	if uint64(npeers) > uint64(len(b)/(KeySize+12)) {
		return fmt.Errorf("%w: %d peers in %d bytes", ErrReplayState, npeers, len(b))
	}
	peers := make(map[Fingerprint]*peerReplay, npeers)
	var prev Fingerprint
	for i := uint32(0); i < npeers; i++ {
		if len(b) < KeySize+12 {
			return fmt.Errorf("%w: truncated", ErrReplayState)
		}
		var fp Fingerprint
		copy(fp[:], b)
		if i > 0 && bytes.Compare(prev[:], fp[:]) >= 0 {
			return fmt.Errorf("%w: peers out of order", ErrReplayState)
		}
		prev = fp
		p := &peerReplay{floor: int64(le.Uint64(b[KeySize:]))}
		n := le.Uint32(b[KeySize+8:])
		b = b[KeySize+12:]
		if n > MaxReplayPerPeer || uint64(n)*replayEntrySize > uint64(len(b)) {
			return fmt.Errorf("%w: %d ids in %d bytes", ErrReplayState, n, len(b))
		}
		p.seen = make(map[MessageID]int64, n)
		var prevID MessageID
		for j := uint32(0); j < n; j++ {
			var id MessageID
			copy(id[:], b)
			if j > 0 && bytes.Compare(prevID[:], id[:]) >= 0 {
				return fmt.Errorf("%w: ids out of order", ErrReplayState)
			}
			prevID = id
			p.seen[id] = int64(le.Uint64(b[MessageIDSize:]))
			b = b[replayEntrySize:]
		}
		peers[fp] = p
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrReplayState, len(b))
	}
	g.mu.Lock()
	g.peers = peers
	g.mu.Unlock()
	return nil
}
