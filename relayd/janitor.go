package relayd

import (
	"time"

	"github.com/gorilla/websocket"

	"github.com/wschat/wschat/wire"
)

// compacter is a mailbox whose storage keeps what it deleted until it is
// rewritten (BoltMailbox).
type compacter interface {
	Changed() bool
	Compact() (CompactResult, error)
}

// janitor pings quiet connections, stores live deliveries that were not
// acknowledged in time, expires old frames and registrations, forgets
// full sender budgets, and compacts the mailbox on schedule.
func (s *Server) janitor() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastExpire := s.now()
	lastCompact := s.now()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		now := s.now()
		s.mu.Lock()
		conns := make([]*conn, 0, len(s.all))
		for c := range s.all {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		var late []*delivery
		for _, c := range conns {
			quiet := now.Sub(time.Unix(0, c.lastRead.Load()))
			if quiet >= s.limits.PingInterval && now.Sub(time.Unix(0, c.lastPing.Load())) >= s.limits.PingInterval {
				c.lastPing.Store(now.UnixNano())
				// WriteControl may run beside the writer goroutine.
				c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.limits.WriteTimeout))
			}
			c.mu.Lock()
			for _, d := range c.unacked {
				if now.Sub(d.at) >= s.limits.AckTimeout {
					late = append(late, d)
				}
			}
			c.mu.Unlock()
		}
		for _, d := range late {
			s.store(d) // no-op unless still live; the connection keeps it, so a late Ack deletes it
		}
		if now.Sub(lastExpire) >= time.Minute {
			lastExpire = now
			s.expire(now)
			s.budgets.prune(now)
		}
		if mc, ok := s.mailbox.(compacter); ok && now.Sub(lastCompact) >= s.limits.CompactEvery && mc.Changed() {
			lastCompact = now
			s.compact(mc)
		}
	}
}

// expire runs the mailbox's expiry; identities with a receiving
// connection online keep their registration.
func (s *Server) expire(now time.Time) {
	n, err := s.mailbox.Expire(now, s.online)
	if err != nil {
		s.logs.error("mailbox expiry failed", "err", err)
		return
	}
	s.metrics.expired(n)
}

// online reports whether id has a receiving connection now.
func (s *Server) online(id wire.RoutingID) bool {
	var buf [1]*conn
	rs := s.hub.Receivers(id, buf[:0])
	clear(rs)
	return len(rs) > 0
}

// compact rewrites the mailbox file on a goroutine of its own (it copies
// everything stored); the janitor goes on meanwhile. At most one runs.
func (s *Server) compact(mc compacter) {
	if !s.compacting.CompareAndSwap(false, true) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.compacting.Store(false)
		res, err := mc.Compact()
		if err != nil {
			s.logs.error("mailbox compaction failed", "err", err)
			return
		}
		s.metrics.compacted(res)
		s.log.Info("mailbox compacted", "before", res.Before, "after", res.After, "took", res.Took.Round(time.Millisecond), "writes_paused", res.Paused.Round(time.Microsecond))
	}()
}
