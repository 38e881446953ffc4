package relayd

// The bolt mailbox's methods: its writer goroutine, and the changes it
// makes in a transaction. The layout is in mailbox_bolt.go.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/wschat/wschat/wire"
)

// enter starts a method: it fails once the mailbox is closed or broken, and
// otherwise holds m.mu for reading, which the caller releases.
func (m *BoltMailbox) enter() error {
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return ErrMailboxClosed
	}
	if p := m.broken.Load(); p != nil {
		m.mu.RUnlock()
		return *p
	}
	return nil
}

// recovered turns a panic inside bbolt (or a fault on its memory map) into
// ErrMailboxCorrupt and breaks the mailbox. It must be deferred directly.
func (m *BoltMailbox) recovered(err *error) {
	p := recover()
	if p == nil {
		return
	}
	e := fmt.Errorf("mailbox %q: %w: bbolt failed: %v", m.path, ErrMailboxCorrupt, p)
	m.broken.CompareAndSwap(nil, &e)
	*err = e
}

func (m *BoltMailbox) view(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer m.recovered(&err)
	m.dbMu.RLock()
	defer m.dbMu.RUnlock()
	return m.db.View(fn)
}

// update runs a write transaction: in the writer goroutine, or before it
// starts.
func (m *BoltMailbox) update(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer m.recovered(&err)
	m.dbMu.RLock()
	defer m.dbMu.RUnlock()
	err = m.db.Update(fn)
	if err == nil {
		m.writes.Add(1)
	}
	return err
}

// submit hands r to the writer and waits for its outcome.
func (m *BoltMailbox) submit(r *boltReq) error {
	r.done = make(chan struct{})
	m.reqs <- r
	<-r.done
	return r.err
}

// Register implements Mailbox. It writes only when the identity's stamp
// is older than the current granule.
func (m *BoltMailbox) Register(id wire.RoutingID, now time.Time) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.mu.RUnlock()
	stamp := m.limits.regStamp(now)
	current := false
	err := m.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketReg).Get(id[:])
		current = len(v) == 8 && int64(binary.BigEndian.Uint64(v)) >= stamp
		return nil
	})
	if err != nil || current {
		return err
	}
	return m.submit(&boltReq{op: reqRegister, rid: id, id: uint64(stamp)})
}

// Put implements Mailbox. It returns once the frame is committed and
// fsynced. Ids are issued from one counter for all recipients.
func (m *BoltMailbox) Put(f Frame) (uint64, error) {
	if err := m.enter(); err != nil {
		return 0, err
	}
	defer m.mu.RUnlock()
	if int64(len(f.Body)) > m.limits.MaxBytes {
		return 0, ErrMailboxFull // would never fit
	}
	r := &boltReq{op: reqPut, frame: f}
	err := m.submit(r)
	if errors.Is(err, berrors.ErrMaxSizeReached) {
		err = ErrStorageFull // the file is at the cap (its free pages are too scattered)
	}
	return r.id, err
}

// Delete implements Mailbox. It waits for the commit, which it shares with
// other Puts and Deletes waiting at the same time.
func (m *BoltMailbox) Delete(recipient wire.RoutingID, ids ...uint64) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.mu.RUnlock()
	// Queued together, the writer commits them in one transaction.
	reqs := make([]boltReq, len(ids))
	for i, id := range ids {
		reqs[i] = boltReq{op: reqDelete, rid: recipient, id: id, done: make(chan struct{})}
		m.reqs <- &reqs[i]
	}
	var err error
	for i := range reqs {
		<-reqs[i].done
		err = cmp.Or(err, reqs[i].err)
	}
	return err
}

// writer commits the requests waiting in m.reqs, as many as are there (up to
// boltMaxBatch) in one transaction, until Close. A request that runs alone
// (reqTx, reqAlone) ends the batch before it.
func (m *BoltMailbox) writer() {
	defer close(m.done)
	batch := make([]*boltReq, 0, boltMaxBatch)
	var next *boltReq // taken from m.reqs, not yet in a batch
	for {
		if next == nil {
			select {
			case next = <-m.reqs:
			case <-m.quit:
				return
			}
		}
		if next.op == reqTx || next.op == reqAlone {
			m.alone(next)
			close(next.done)
			next = nil
			continue
		}
		batch = append(batch[:0], next)
		next = nil
	more:
		for len(batch) < boltMaxBatch {
			select {
			case r := <-m.reqs:
				if r.op == reqTx || r.op == reqAlone {
					next = r
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		m.commit(batch)
		for i, r := range batch {
			close(r.done)
			batch[i] = nil
		}
	}
}

// alone runs a request that has the writer to itself.
func (m *BoltMailbox) alone(r *boltReq) {
	if p := m.broken.Load(); p != nil {
		r.err = *p
		return
	}
	if r.op == reqAlone {
		r.excl()
		return
	}
	r.err = m.update(func(tx *bolt.Tx) error {
		t, err := m.openTx(tx)
		if err != nil {
			return err
		}
		if err := r.fn(t); err != nil {
			return err
		}
		return t.saveTotals()
	})
}

// commit applies a batch in one transaction. If the transaction fails (not
// a request refused with a quota or registration error, which changes
// nothing and does not fail it), each request is tried alone, so one bad
// request fails alone.
func (m *BoltMailbox) commit(batch []*boltReq) {
	if p := m.broken.Load(); p != nil {
		for _, r := range batch {
			r.id, r.err = 0, *p
		}
		return
	}
	err := m.update(func(tx *bolt.Tx) error { return m.apply(tx, batch) })
	if err == nil {
		return
	}
	if len(batch) > 1 && m.broken.Load() == nil {
		for _, r := range batch {
			m.commit([]*boltReq{r})
		}
		return
	}
	for _, r := range batch {
		r.id, r.err = 0, err
	}
}

// boltTx is the mailbox's buckets in one transaction.
type boltTx struct {
	m                      *BoltMailbox
	meta, stats, mail, reg *bolt.Bucket
	totals                 boltTotals
}

func (m *BoltMailbox) openTx(tx *bolt.Tx) (*boltTx, error) {
	t := &boltTx{m: m, meta: tx.Bucket(bucketMeta), stats: tx.Bucket(bucketStats), mail: tx.Bucket(bucketMail), reg: tx.Bucket(bucketReg)}
	if t.meta == nil || t.stats == nil || t.mail == nil || t.reg == nil {
		return nil, fmt.Errorf("%w: a mailbox bucket is missing", ErrMailboxCorrupt)
	}
	var err error
	t.totals, err = decodeTotals(t.meta.Get(keyTotals))
	return t, err
}

func (t *boltTx) saveTotals() error { return t.meta.Put(keyTotals, t.totals.encode()) }

// touch notes, for a Compact in progress, that rid's frames or stats
// changed. The writer goroutine only.
func (t *boltTx) touch(rid wire.RoutingID) {
	if t.m.dirty != nil {
		t.m.dirty[rid] = struct{}{}
	}
}

func (t *boltTx) touchReg(rid wire.RoutingID) {
	if t.m.dirtyReg != nil {
		t.m.dirtyReg[rid] = struct{}{}
	}
}

// stat returns a recipient's stats entry and whether there is one.
func (t *boltTx) stat(rid wire.RoutingID) (boltStat, bool, error) {
	v := t.stats.Get(rid[:])
	if v == nil {
		return boltStat{}, false, nil
	}
	st, err := decodeStat(v)
	return st, true, err
}

// apply runs a batch in tx, setting each request's outcome.
func (m *BoltMailbox) apply(tx *bolt.Tx, batch []*boltReq) error {
	t, err := m.openTx(tx)
	if err != nil {
		return err
	}
	for _, r := range batch {
		r.err = nil
		switch r.op {
		case reqPut:
			r.id = 0
			err = t.put(r)
		case reqDelete:
			err = t.delete(r.rid, r.id)
		case reqRegister:
			err = t.register(r)
		}
		if err != nil {
			return err
		}
	}
	return t.saveTotals()
}

// register records a registration stamp (in r.id), or refuses a new one
// with ErrStorageFull in r.err.
func (t *boltTx) register(r *boltReq) error {
	old := t.reg.Get(r.rid[:])
	if old == nil {
		if t.totals.used()+regOverhead > t.m.limits.softCap() {
			r.err = ErrStorageFull
			return nil
		}
		t.totals.regs++
	} else if len(old) == 8 && binary.BigEndian.Uint64(old) >= r.id {
		return nil
	}
	t.touchReg(r.rid)
	return t.reg.Put(r.rid[:], binary.BigEndian.AppendUint64(nil, r.id))
}

// put stores one frame, or refuses it with a Mailbox error in r.err.
func (t *boltTx) put(r *boltReq) error {
	f := &r.frame
	if t.reg.Get(f.Recipient[:]) == nil {
		r.err = ErrUnknownRecipient
		return nil
	}
	st, ok, err := t.stat(f.Recipient)
	if err != nil {
		return err
	}
	frames, bytes := st.msgs, st.msgBytes
	if f.Receipt {
		frames, bytes = st.rcpts, st.rcptBytes
	}
	if !t.m.limits.quota(f.Receipt, frames, bytes, len(f.Body)) {
		r.err = ErrMailboxFull
		return nil
	}
	if !t.m.limits.fits(t.totals.used(), len(f.Body), f.Held) {
		r.err = ErrStorageFull
		return nil
	}
	box, err := t.mail.CreateBucketIfNotExists(f.Recipient[:])
	if err != nil {
		return err
	}
	box.FillPercent = boltFillPercent // ids only grow: fill pages before splitting
	id, err := t.mail.NextSequence()
	if err != nil {
		return err
	}
	at := f.At.UnixMilli()
	if err := box.Put(frameKey(id), encodeFrame(at, f.Receipt, f.Body)); err != nil {
		return err
	}
	if !ok {
		st.oldest = at
		t.totals.recipients++
	}
	st.add(f.Receipt, len(f.Body))
	st.oldest = min(st.oldest, at)
	if err := t.stats.Put(f.Recipient[:], st.encode()); err != nil {
		return err
	}
	t.totals.frames++
	t.totals.bytes += int64(len(f.Body))
	if f.Receipt {
		t.totals.receipts++
	}
	t.touch(f.Recipient)
	r.id = id
	return nil
}

// delete deletes one frame if it is there.
func (t *boltTx) delete(rid wire.RoutingID, id uint64) error {
	box := t.mail.Bucket(rid[:])
	if box == nil {
		return nil
	}
	k := frameKey(id)
	v := box.Get(k)
	if v == nil {
		return nil // not there, or a bucket (which no frame id names)
	}
	f, ok := decodeFrame(v, boltFormat)
	if !ok {
		t.m.malformed.Add(1)
	}
	if err := box.Delete(k); err != nil {
		return err
	}
	st, _, err := t.stat(rid)
	if err != nil {
		return err
	}
	st.remove(f.Receipt, len(f.Body))
	t.totals.frames--
	t.totals.bytes -= int64(len(f.Body))
	if f.Receipt {
		t.totals.receipts--
	}
	t.touch(rid)
	return t.settle(rid, box, st)
}

// settle saves a recipient's stats after frames were deleted, or deletes
// the recipient's bucket and stats entry when it has no frames left.
func (t *boltTx) settle(rid wire.RoutingID, box *bolt.Bucket, st boltStat) error {
	if k, _ := box.Cursor().First(); k != nil {
		st.msgs, st.msgBytes = max(st.msgs, 0), max(st.msgBytes, 0)
		st.rcpts, st.rcptBytes = max(st.rcpts, 0), max(st.rcptBytes, 0)
		if st.msgs+st.rcpts == 0 {
			st.msgs = 1
		}
		return t.stats.Put(rid[:], st.encode())
	}
	if err := t.mail.DeleteBucket(rid[:]); err != nil {
		return err
	}
	if t.stats.Get(rid[:]) != nil {
		if err := t.stats.Delete(rid[:]); err != nil {
			return err
		}
		t.totals.recipients--
	}
	return nil
}

// Pending implements Mailbox. A stored value too short to hold the frame
// header is skipped and counted (Malformed); Expire deletes it.
func (m *BoltMailbox) Pending(recipient wire.RoutingID, after uint64, max int, receiptsOnly bool, now time.Time) ([]StoredFrame, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	if max <= 0 || after == ^uint64(0) {
		return nil, nil
	}
	nowMs := now.UnixMilli()
	var out []StoredFrame
	err := m.view(func(tx *bolt.Tx) error {
		mail := tx.Bucket(bucketMail)
		if mail == nil {
			return fmt.Errorf("%w: the mail bucket is missing", ErrMailboxCorrupt)
		}
		box := mail.Bucket(recipient[:])
		if box == nil {
			return nil
		}
		if receiptsOnly {
			if st, err := decodeStat(tx.Bucket(bucketStats).Get(recipient[:])); err == nil && st.rcpts == 0 {
				return nil // no receipts: no need to read the messages
			}
		}
		c := box.Cursor()
		for k, v := c.Seek(frameKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			f, ok := decodeFrame(v, boltFormat)
			if len(k) != 8 || !ok {
				m.malformed.Add(1)
				continue
			}
			if receiptsOnly && !f.Receipt || expired(f.StoredAt.UnixMilli(), nowMs, m.limits.TTL) {
				continue
			}
			if out == nil {
				out = make([]StoredFrame, 0, min(max, 64))
			}
			f.ID = binary.BigEndian.Uint64(k)
			f.Body = bytes.Clone(f.Body) // v lives only as long as tx
			out = append(out, f)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Expire implements Mailbox. It reads only the stats of recipients whose
// frames cannot have expired, and deletes in transactions of a few thousand
// frames so that Puts are not held up for long. Malformed values are deleted
// too, and counted in the result. It looks at the registrations once per
// granule of their times, at most.
func (m *BoltMailbox) Expire(now time.Time, online func(wire.RoutingID) bool) (Expired, error) {
	if err := m.enter(); err != nil {
		return Expired{}, err
	}
	defer m.mu.RUnlock()
	nowMs := now.UnixMilli()
	sweep := nowMs-m.regSwept.Load() >= m.limits.regGranule().Milliseconds()

	var due, gone []wire.RoutingID
	err := m.view(func(tx *bolt.Tx) error {
		t, err := m.openTx(tx)
		if err != nil {
			return err
		}
		if sweep {
			err := t.reg.ForEach(func(k, v []byte) error {
				if len(k) == wire.RoutingIDSize && len(v) == 8 && m.limits.regExpired(int64(binary.BigEndian.Uint64(v)), now) &&
					(online == nil || !online(wire.RoutingID(k))) {
					gone = append(gone, wire.RoutingID(k))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return t.stats.ForEach(func(k, v []byte) error {
			st, err := decodeStat(v)
			if len(k) == wire.RoutingIDSize && (err != nil || expired(st.oldest, nowMs, m.limits.TTL)) {
				due = append(due, wire.RoutingID(k))
			}
			return nil
		})
	})
	if err != nil {
		return Expired{}, err
	}
	if sweep {
		m.regSwept.Store(nowMs)
	}

	var total Expired
	for len(gone) > 0 {
		n := min(len(gone), boltExpireChunk/16)
		var k Expired
		err := m.submit(&boltReq{op: reqTx, fn: func(t *boltTx) error {
			k = Expired{}
			for _, id := range gone[:n] {
				frames, err := t.unregister(id, now)
				if err != nil {
					return err
				}
				k.Frames += frames
				if frames >= 0 {
					k.Registrations++
				}
			}
			return nil
		}})
		if err != nil {
			return total, err
		}
		total.Frames += max(k.Frames, 0)
		total.Registrations += k.Registrations
		gone = gone[n:]
	}
	for len(due) > 0 {
		var n, done int
		err := m.submit(&boltReq{op: reqTx, fn: func(t *boltTx) error {
			n, done = 0, 0
			for done < len(due) && n < boltExpireChunk {
				k, err := t.expire(due[done], nowMs)
				if err != nil {
					return err
				}
				n += k
				done++
			}
			return nil
		}})
		if err != nil {
			return total, err
		}
		total.Frames += n
		due = due[done:]
	}
	return total, nil
}

// unregister deletes an expired registration and every frame of its
// identity, and returns how many frames; -1 if the registration was
// renewed meanwhile.
func (t *boltTx) unregister(id wire.RoutingID, now time.Time) (int, error) {
	v := t.reg.Get(id[:])
	if len(v) == 8 && !t.m.limits.regExpired(int64(binary.BigEndian.Uint64(v)), now) {
		return -1, nil
	}
	if v != nil {
		if err := t.reg.Delete(id[:]); err != nil {
			return 0, err
		}
		t.totals.regs--
	}
	t.touchReg(id)
	n := 0
	if box := t.mail.Bucket(id[:]); box != nil {
		n = box.Stats().KeyN
		if err := t.mail.DeleteBucket(id[:]); err != nil {
			return 0, err
		}
		t.touch(id)
	}
	if st, ok, err := t.stat(id); ok {
		if err == nil {
			t.totals.add(st, -1)
		} else {
			t.totals.recipients--
		}
		if err := t.stats.Delete(id[:]); err != nil {
			return 0, err
		}
		t.touch(id)
	}
	return n, nil
}

// expire deletes a recipient's expired and malformed frames and makes its
// stats exact.
func (t *boltTx) expire(rid wire.RoutingID, nowMs int64) (int, error) {
	old, had, err := t.stat(rid)
	if err != nil {
		old = boltStat{} // rebuilt below
	}
	st := boltStat{oldest: boltMaxTimestamp}
	var dead [][]byte
	box := t.mail.Bucket(rid[:])
	if box != nil {
		c := box.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			f, ok := decodeFrame(v, boltFormat)
			switch {
			case !ok:
				t.m.malformed.Add(1)
				dead = append(dead, bytes.Clone(k))
			case expired(f.StoredAt.UnixMilli(), nowMs, t.m.limits.TTL):
				dead = append(dead, bytes.Clone(k))
			default:
				st.add(f.Receipt, len(f.Body))
				st.oldest = min(st.oldest, f.StoredAt.UnixMilli())
			}
		}
		// Deleting behind a bbolt cursor can make it skip keys: delete after.
		for _, k := range dead {
			if err := box.Delete(k); err != nil {
				if !errors.Is(err, berrors.ErrIncompatibleValue) {
					return 0, err
				}
				if err := box.DeleteBucket(k); err != nil { // a bucket where a frame belongs
					return 0, err
				}
			}
		}
	}
	if len(dead) > 0 || !had || err != nil {
		t.touch(rid)
	}
	if had {
		t.totals.add(old, -1)
	}
	if st.msgs+st.rcpts > 0 {
		t.totals.add(st, 1)
		return len(dead), t.stats.Put(rid[:], st.encode())
	}
	if box != nil {
		if err := t.mail.DeleteBucket(rid[:]); err != nil {
			return 0, err
		}
	}
	if had {
		if err := t.stats.Delete(rid[:]); err != nil {
			return 0, err
		}
	}
	return len(dead), nil
}

// Stats implements Mailbox. It reads the totals kept with the frames.
func (m *BoltMailbox) Stats() (MailboxStats, error) {
	if err := m.enter(); err != nil {
		return MailboxStats{}, err
	}
	defer m.mu.RUnlock()
	var s MailboxStats
	err := m.view(func(tx *bolt.Tx) error {
		t, err := m.openTx(tx)
		if err != nil {
			return err
		}
		s = MailboxStats{Frames: int(t.totals.frames), Receipts: int(t.totals.receipts), Bytes: t.totals.bytes,
			Recipients: int(t.totals.recipients), Registrations: int(t.totals.regs), Used: t.totals.used()}
		return nil
	})
	return s, err
}

// Malformed reports how many times a stored value that cannot be a frame
// (shorter than its header) was found and skipped since the mailbox was
// opened, for metrics. Such values appear only through damage.
func (m *BoltMailbox) Malformed() uint64 { return m.malformed.Load() }

// Path returns the mailbox file's path.
func (m *BoltMailbox) Path() string { return m.path }

// Close implements Mailbox: it waits for the methods running to return,
// stops the writer and closes the file. Closing twice is not an error.
func (m *BoltMailbox) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	close(m.quit)
	<-m.done
	if err := m.db.Close(); err != nil {
		return fmt.Errorf("close mailbox %q: %w", m.path, err)
	}
	return nil
}
