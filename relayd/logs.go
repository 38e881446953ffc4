package relayd

import (
	"log/slog"
	"sync"
	"time"
)

// logLimiter keeps a repeated error from flooding the log (a full disk
// fails every Put): each message is logged at most logBurst times per
// logWindow; the rest are counted, and the count is logged with the next
// line of that message after the window. Error lines carry no routing id.
type logLimiter struct {
	log *slog.Logger // static
	now func() time.Time

	mu sync.Mutex
	m  map[string]*logCount // guarded by mu
}

type logCount struct {
	start      time.Time
	n          int
	suppressed int
}

const (
	logBurst  = 5
	logWindow = time.Minute
)

func newLogLimiter(log *slog.Logger, now func() time.Time) *logLimiter {
	return &logLimiter{log: log, now: now, m: make(map[string]*logCount)}
}

// error logs msg at level Error unless it was logged logBurst times in
// the current window.
func (l *logLimiter) error(msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	c := l.m[msg]
	if c == nil || now.Sub(c.start) >= logWindow {
		if c != nil && c.suppressed > 0 {
			args = append(args, "suppressed", c.suppressed)
		}
		c = &logCount{start: now}
		l.m[msg] = c
	}
	c.n++
	if c.n > logBurst {
		c.suppressed++
		l.mu.Unlock()
		return
	}
	if c.n == logBurst {
		args = append(args, "more", "further lines of this message are suppressed for a minute")
	}
	l.mu.Unlock()
	l.log.Error(msg, args...)
}
