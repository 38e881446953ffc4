package relayd

import (
	"encoding/binary"
	"sync"

	"github.com/wschat/wschat/wire"
)

// Hub knows which receiving connections each identity has. It is the seam
// where a clustered backend (several relays sharing routing through an
// engine such as NATS) would plug in; the connection code only uses this
// interface.
type Hub interface {
	// Add registers a receiving connection.
	Add(c *conn)
	// Remove unregisters it.
	Remove(c *conn)
	// Receivers appends the receiving connections of id to buf.
	Receivers(id wire.RoutingID, buf []*conn) []*conn
}

const hubShards = 64

// localHub is the in-process Hub: a sharded map, so that routing on many
// cores does not serialise on one lock.
type localHub struct {
	shards [hubShards]struct {
		mu sync.RWMutex
		m  map[wire.RoutingID][]*conn // guarded by mu
	}
}

func newLocalHub() *localHub {
	h := &localHub{}
	for i := range h.shards {
		h.shards[i].m = make(map[wire.RoutingID][]*conn)
	}
	return h
}

func (h *localHub) shard(id wire.RoutingID) int {
	// Routing ids are hash outputs already.
	return int(binary.LittleEndian.Uint64(id[:]) % hubShards)
}

func (h *localHub) Add(c *conn) {
	sh := &h.shards[h.shard(c.id)]
	sh.mu.Lock()
	sh.m[c.id] = append(sh.m[c.id], c)
	sh.mu.Unlock()
}

func (h *localHub) Remove(c *conn) {
	sh := &h.shards[h.shard(c.id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.m[c.id]
	for i, x := range list {
		if x == c {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(sh.m, c.id)
	} else {
		sh.m[c.id] = list
	}
}

func (h *localHub) Receivers(id wire.RoutingID, buf []*conn) []*conn {
	sh := &h.shards[h.shard(id)]
	sh.mu.RLock()
	buf = append(buf, sh.m[id]...)
	sh.mu.RUnlock()
	return buf
}
