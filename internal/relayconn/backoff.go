package relayconn

import (
	"crypto/rand"
	"math/big"
	"time"
)

// Backoff is exponential backoff with full jitter, for reconnecting.
type Backoff struct {
	Min, Max time.Duration // defaults 200 ms and 30 s
	n        int
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo == 0 {
		lo = 200 * time.Millisecond
	}
	if hi == 0 {
		hi = 30 * time.Second
	}
	d := lo << min(b.n, 20)
	if d > hi || d <= 0 {
		d = hi
	}
	b.n++
	j, _ := rand.Int(rand.Reader, big.NewInt(int64(d)))
	return d/2 + time.Duration(j.Int64())/2
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.n = 0 }
