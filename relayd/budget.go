package relayd

import (
	"sync"
	"time"

	"github.com/wschat/wschat/wire"
)

// budgets hold each sender to a budget of bytes it may have the relay
// store for offline recipients: a token bucket per sending identity,
// filled at SenderBudget bytes per hour up to SenderBudget. It lives in
// memory only (no sender id reaches the disk) and a sender's bucket is
// forgotten once it is full again, so it holds only the senders that
// stored something within the last hour or so. A relay restart forgives
// everyone.
type budgets struct {
	size float64 // static: bytes per hour, and the bucket size

	mu sync.Mutex
	m  map[wire.RoutingID]*bucket // guarded by mu
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newBudgets(perHour int64) *budgets {
	return &budgets{size: float64(perHour), m: make(map[wire.RoutingID]*bucket)}
}

// fillLocked brings b up to now.
func (bs *budgets) fillLocked(b *bucket, now time.Time) {
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(bs.size, b.tokens+bs.size*dt.Hours())
		b.last = now
	}
}

// take charges n bytes to sender; false when its budget does not have them.
func (bs *budgets) take(sender wire.RoutingID, n int, now time.Time) bool {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.m[sender]
	if b == nil {
		b = &bucket{tokens: bs.size, last: now}
	}
	bs.fillLocked(b, now)
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	bs.m[sender] = b
	return true
}

// refund gives back what take charged for a frame that was not stored.
func (bs *budgets) refund(sender wire.RoutingID, n int) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b := bs.m[sender]; b != nil {
		b.tokens = min(bs.size, b.tokens+float64(n))
	}
}

// prune forgets the senders whose buckets are full again.
func (bs *budgets) prune(now time.Time) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for id, b := range bs.m {
		if bs.fillLocked(b, now); b.tokens >= bs.size {
			delete(bs.m, id)
		}
	}
}

// len is how many senders are held, for metrics.
func (bs *budgets) len() int {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return len(bs.m)
}
