package relayd

// Rewriting the mailbox file: Compact, which copies what the file holds
// into a new file while the mailbox keeps working, and the one-time
// migration of a format 1 file.
//
// bbolt frees pages but never clears them: a deleted frame, a recipient id
// in an old copy of a stats page or a bucket name stays readable in the
// file until bbolt happens to reuse the page. Compact is how the relay
// bounds how long that lasts. It copies a snapshot of the file into
// "<path>.compact" while the writer goes on committing to the old file and
// notes which recipients and registrations it changed; then, in the writer
// goroutine with no other write running, it copies those again, renames the
// new file over the old one and switches to it. Puts wait only for that
// last step, which is proportional to what changed during the copy.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/wschat/wschat/wire"
)

// CompactResult is what one Compact did.
type CompactResult struct {
	Before, After int64         // file sizes in bytes
	Took          time.Duration // the whole copy
	Paused        time.Duration // the part during which writes waited
}

// Changed reports whether anything was written since the last Compact (or
// the open), that is whether free pages may hold what was deleted or
// replaced.
func (m *BoltMailbox) Changed() bool { return m.writes.Load() > 0 }

// Compact rewrites the mailbox file with only what it holds, and resets
// Changed. It needs room for a second file as large as what the mailbox
// holds. The mailbox keeps working meanwhile; writes wait only while the
// changes made during the copy are copied too.
func (m *BoltMailbox) Compact() (CompactResult, error) {
	if err := m.enter(); err != nil {
		return CompactResult{}, err
	}
	defer m.mu.RUnlock()
	start := time.Now()
	var res CompactResult
	if fi, err := os.Stat(m.path); err == nil {
		res.Before = fi.Size()
	}
	tmp := m.path + ".compact"
	os.Remove(tmp) // left by a crash during an earlier Compact
	dst, err := openBolt(tmp, m.limits)
	if err != nil {
		return res, fmt.Errorf("compact mailbox: %w", err)
	}
	abort := func(err error) (CompactResult, error) {
		dst.Close()
		os.Remove(tmp)
		m.submit(&boltReq{op: reqAlone, excl: func() { m.dirty, m.dirtyReg = nil, nil }})
		return res, fmt.Errorf("compact mailbox %q: %w", m.path, err)
	}
	// From here on the writer notes every recipient and registration it
	// changes; the snapshot the copy reads is taken after, so nothing
	// changed after it escapes the notes.
	m.submit(&boltReq{op: reqAlone, excl: func() {
		m.dirty, m.dirtyReg = map[wire.RoutingID]struct{}{}, map[wire.RoutingID]struct{}{}
		m.writes.Store(0)
	}})
	if err := m.copyAll(dst); err != nil {
		return abort(err)
	}
	var ferr error
	var paused time.Duration
	m.submit(&boltReq{op: reqAlone, excl: func() {
		t := time.Now()
		ferr = m.finishCompact(dst, tmp)
		paused = time.Since(t)
	}})
	if ferr != nil {
		return abort(ferr)
	}
	res.Took, res.Paused = time.Since(start), paused
	if fi, err := os.Stat(m.path); err == nil {
		res.After = fi.Size()
	}
	return res, nil
}

// copyAll copies a snapshot of the whole file into dst, in transactions
// of at most 16 MiB.
func (m *BoltMailbox) copyAll(dst *bolt.DB) (err error) {
	defer m.recovered(&err)
	m.dbMu.RLock()
	defer m.dbMu.RUnlock()
	return bolt.Compact(dst, m.db, 16<<20)
}

// finishCompact copies what changed during the copy, puts the new file in
// place and switches to it. It runs in the writer goroutine, with no other
// write running.
func (m *BoltMailbox) finishCompact(dst *bolt.DB, tmp string) (err error) {
	defer m.recovered(&err)
	dirty, dirtyReg := m.dirty, m.dirtyReg
	m.dirty, m.dirtyReg = nil, nil
	err = dst.Update(func(dtx *bolt.Tx) error {
		return m.view(func(stx *bolt.Tx) error { return copyChanged(dtx, stx, dirty, dirtyReg) })
	})
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, m.path); err != nil {
		return err
	}
	syncDir(m.path)
	m.dbMu.Lock()
	old := m.db
	m.db = dst
	m.dbMu.Unlock()
	m.writes.Store(0)
	return old.Close()
}

// copyChanged brings dtx up to date with stx for the recipients and
// registrations named, and for the meta bucket and the frame id sequence.
func copyChanged(dtx, stx *bolt.Tx, dirty, dirtyReg map[wire.RoutingID]struct{}) error {
	get := func(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
		if b := tx.Bucket(name); b != nil {
			return b, nil
		}
		return nil, fmt.Errorf("%w: bucket %q is missing", ErrMailboxCorrupt, name)
	}
	var db, sb [4]*bolt.Bucket
	for i, name := range [][]byte{bucketMeta, bucketStats, bucketMail, bucketReg} {
		var err error
		if db[i], err = get(dtx, name); err != nil {
			return err
		}
		if sb[i], err = get(stx, name); err != nil {
			return err
		}
	}
	dMeta, dStats, dMail, dReg := db[0], db[1], db[2], db[3]
	sMeta, sStats, sMail, sReg := sb[0], sb[1], sb[2], sb[3]
	for rid := range dirty {
		k := bytes.Clone(rid[:])
		if err := dMail.DeleteBucket(k); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		if src := sMail.Bucket(k); src != nil {
			b, err := dMail.CreateBucket(k)
			if err != nil {
				return err
			}
			if err := copyBucket(b, src); err != nil {
				return err
			}
		}
		if err := copyKey(dStats, sStats, k); err != nil {
			return err
		}
	}
	for id := range dirtyReg {
		if err := copyKey(dReg, sReg, bytes.Clone(id[:])); err != nil {
			return err
		}
	}
	if err := copyBucket(dMeta, sMeta); err != nil {
		return err
	}
	return dMail.SetSequence(sMail.Sequence())
}

// copyKey makes dst's value of k what src's is (or deletes it).
func copyKey(dst, src *bolt.Bucket, k []byte) error {
	if v := src.Get(k); v != nil {
		return dst.Put(k, bytes.Clone(v))
	}
	return dst.Delete(k)
}

// copyBucket copies src's keys and nested buckets into dst, overwriting.
func copyBucket(dst, src *bolt.Bucket) error {
	dst.FillPercent = 1
	return src.ForEach(func(k, v []byte) error {
		k = bytes.Clone(k)
		if v != nil {
			return dst.Put(k, bytes.Clone(v))
		}
		s := src.Bucket(k)
		d, err := dst.CreateBucketIfNotExists(k)
		if err != nil {
			return err
		}
		if err := d.SetSequence(s.Sequence()); err != nil {
			return err
		}
		return copyBucket(d, s)
	})
}

// migrate1 rewrites a format 1 file (sender ids in every value, no
// registrations) in format 2, before the writer starts: the sender ids
// are dropped, malformed values too, and every recipient with frames is
// registered as of now. One transaction per recipient, so that memory
// stays bounded by one recipient's quota.
func (m *BoltMailbox) migrate1(now time.Time) error {
	tmp := m.path + ".format2"
	os.Remove(tmp)
	dst, err := openBolt(tmp, m.limits)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("rewriting format 1: %w", err)
	}
	if err := dst.Update(createLayout); err != nil {
		return fail(err)
	}
	var rids [][]byte
	var seq uint64
	err = m.view(func(tx *bolt.Tx) error {
		mail := tx.Bucket(bucketMail)
		seq = mail.Sequence()
		return mail.ForEachBucket(func(k []byte) error {
			rids = append(rids, bytes.Clone(k))
			return nil
		})
	})
	if err != nil {
		return fail(err)
	}
	stamp := m.limits.regStamp(now)
	for _, rid := range rids {
		err := dst.Update(func(dtx *bolt.Tx) error {
			t, err := m.openTx(dtx)
			if err != nil {
				return err
			}
			st := boltStat{oldest: boltMaxTimestamp}
			err = m.view(func(stx *bolt.Tx) error {
				src := stx.Bucket(bucketMail).Bucket(rid)
				box, err := t.mail.CreateBucket(rid)
				if err != nil {
					return err
				}
				box.FillPercent = 1
				c := src.Cursor()
				for k, v := c.First(); k != nil; k, v = c.Next() {
					f, ok := decodeFrame(v, 1)
					if !ok || len(k) != 8 {
						continue
					}
					at := f.StoredAt.UnixMilli()
					if err := box.Put(bytes.Clone(k), encodeFrame(at, false, f.Body)); err != nil {
						return err
					}
					st.add(false, len(f.Body))
					st.oldest = min(st.oldest, at)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if st.msgs == 0 {
				return t.mail.DeleteBucket(rid)
			}
			if err := t.stats.Put(rid, st.encode()); err != nil {
				return err
			}
			if err := t.reg.Put(rid, binary.BigEndian.AppendUint64(nil, uint64(stamp))); err != nil {
				return err
			}
			t.totals.add(st, 1)
			t.totals.regs++
			return t.saveTotals()
		})
		if err != nil {
			return fail(err)
		}
	}
	if err := dst.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMail).SetSequence(seq) }); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, m.path); err != nil {
		return fail(err)
	}
	syncDir(m.path)
	old := m.db
	m.db = dst
	return old.Close()
}
