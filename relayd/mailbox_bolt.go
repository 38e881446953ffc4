package relayd

// The bolt mailbox keeps stored frames and registrations in one bbolt
// file (go.etcd.io/bbolt: pure Go, one file, copy-on-write B+trees, fsync
// on every commit).
//
// On-disk layout, format 2. Integers are big-endian, so that frame keys sort
// in id order; times are unix milliseconds. No sender id is kept.
//
//	bucket "meta"
//	    "format" → u32 2
//	    "totals" → frames u64 ‖ bytes u64 ‖ recipients u64 ‖ receipts u64 ‖ registrations u64
//	bucket "reg"        one entry per registered identity
//	    id [8] → stamp u64 (the start of the day, or shorter granule, of its last receiving connection)
//	bucket "stats"      one entry per recipient that has frames stored
//	    recipient [8] → messages u64 ‖ message bytes u64 ‖ receipts u64 ‖ receipt bytes u64 ‖ oldest u64
//	bucket "mail"       its bucket sequence is the last frame id issued
//	    bucket recipient [8]
//	        frame id u64 → stored at u64 ‖ kind u8 (0 message, 1 receipt) ‖ body
//
// Format 1 (until 2026-12) kept the sender's id in every value (stored at ‖
// sender [8] ‖ body) and no registrations; Open rewrites such a file into
// format 2 (mailbox_bolt_rewrite.go), registering the recipients it holds
// frames for.
//
// Frame ids come from one counter for all recipients (the "mail" bucket's
// sequence, committed with the frame), so they grow per recipient across
// restarts and after every frame of a recipient was deleted, and a recipient
// with no frames leaves nothing behind: its bucket and its stats entry are
// deleted with its last frame. "bytes" counts bodies only (the quotas are on
// bodies). "oldest" is at most the stored-at time of every frame of the
// recipient; it is exact after Expire looked at the recipient, and lets
// Expire skip recipients that cannot hold an expired frame without reading
// their frames.
//
// Stats and totals change in the same transaction as the frames they count,
// so they are never out of step with them, even after a crash; Open checks
// this anyway and rebuilds them from the frames if they are not.
//
// bbolt never overwrites a page it frees: deleted frames and the ids in old
// copies of changed pages stay in free pages until they are reused.
// Compact rewrites the file with only what it holds (mailbox_bolt_rewrite.go),
// and the relay runs it on a schedule (Limits.CompactEvery).
//
// Writes go through one writer goroutine that commits whatever Puts and
// Deletes are waiting in one transaction: under load many Puts share one
// commit (two fdatasyncs), and a lone Put does not wait for company.
// bbolt's DB.Batch is not used: it holds every batch for MaxBatchDelay
// (10 ms) unless 1000 calls are waiting. Side by side on the same machine
// (2 cores, ext4), the same one-bucket writes took 11 ms alone and reached
// 5.8k/s from 64 goroutines through DB.Batch, against 0.3 ms and 67k/s
// through a writer like this one. DB.Batch also re-runs the rest of a batch
// each time one call fails, which refusals (ErrMailboxFull) would make
// quadratic in the batch size. Every other change (Expire's, Compact's)
// goes through the writer too, so that Compact sees every change made
// while it copies.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/wschat/wschat/wire"
)

// ErrMailboxLocked: another process has the mailbox file open, usually a
// second relay started on the same data directory.
var ErrMailboxLocked = errors.New("mailbox file is in use by another process")

// ErrMailboxCorrupt: the mailbox file is damaged or is not a mailbox. Open
// returns it when the file fails its checks; any method returns it if
// damage shows up later, and from then on the mailbox refuses all work
// (writing to a damaged file could spread the damage) until it is reopened.
var ErrMailboxCorrupt = errors.New("mailbox file is damaged or not a mailbox")

const (
	boltFormat       = 2
	boltLockTimeout  = time.Second // how long Open waits for another process's lock
	boltMaxBatch     = 1024        // requests committed in one transaction at most
	boltExpireChunk  = 4096        // frames Expire deletes in one transaction, about
	boltHeaderSize   = 8 + 1       // stored at ‖ kind
	boltStatSize     = 5 * 8
	boltTotalsSize   = 5 * 8
	boltFileMode     = 0o600
	boltDirMode      = 0o700
	boltMaxTimestamp = 1<<63 - 1
	boltFillPercent  = 0.95
	kindMessage      = 0
	kindReceipt      = 1
)

var (
	bucketMeta  = []byte("meta")
	bucketStats = []byte("stats")
	bucketMail  = []byte("mail")
	bucketReg   = []byte("reg")
	keyFormat   = []byte("format")
	keyTotals   = []byte("totals")
)

// BoltMailbox is a Mailbox in one bbolt file: a frame is on disk (fsynced)
// when Put returns, and survives a restart or a crash of the relay. Create
// with OpenBoltMailbox.
type BoltMailbox struct {
	path   string        // static after construction
	limits MailboxLimits // static after construction

	dbMu sync.RWMutex // held for reading by every transaction; for writing by the writer to swap db
	db   *bolt.DB     // guarded by dbMu

	reqs chan *boltReq // read by the writer goroutine only
	quit chan struct{} // closed by Close once no method is running
	done chan struct{} // closed by the writer goroutine when it returns

	mu     sync.RWMutex // held for reading by every method while it runs
	closed bool         // guarded by mu (written with it held for writing)

	broken    atomic.Pointer[error] // set once, when damage shows up
	malformed atomic.Uint64         // stored values that failed validation
	writes    atomic.Uint64         // committed write transactions, for Compact
	regSwept  atomic.Int64          // unix ms of Expire's last look at the registrations

	// Owned by the writer goroutine: while Compact copies the file, the
	// recipients and registrations changed since it began.
	dirty    map[wire.RoutingID]struct{}
	dirtyReg map[wire.RoutingID]struct{}
}

// boltReq is one change for the writer goroutine.
type boltReq struct {
	op    reqOp
	frame Frame          // put: the body is the caller's, copied in the transaction
	rid   wire.RoutingID // delete, register: the identity
	id    uint64         // put: the id issued; delete: the frame
	fn    func(*boltTx) error
	excl  func()        // reqAlone: runs in the writer goroutine, outside any transaction
	err   error         // the outcome, set by the writer
	done  chan struct{} // closed by the writer when id and err are set
}

type reqOp uint8

const (
	reqPut      reqOp = iota
	reqDelete         // batched with puts
	reqRegister       // batched with puts
	reqTx             // fn, in a transaction of its own
	reqAlone          // excl, with no other write running
)

var _ Mailbox = (*BoltMailbox)(nil)

// OpenBoltMailbox opens the mailbox file at path, creating it (0600, in a
// directory created 0700 if it is missing) when it does not exist. Zero
// fields of limits take the defaults. An existing file readable by others is
// made 0600. A file of format 1 is rewritten in format 2 (its sender ids
// dropped) before it is used.
//
// Only one process may have the file open: if another does (another relay
// on the same data directory), OpenBoltMailbox gives up after a second with
// ErrMailboxLocked. It reads the whole file before returning, checking the
// B+trees (bbolt's Tx.Check), every stored value and the counts kept for
// quotas, and returns ErrMailboxCorrupt when the file is damaged or is not a
// mailbox. That costs a read of the file, once per start (70 ms for 200k
// frames in 240 MB in the page cache). Panics inside
// bbolt and faults on its memory map are recovered and reported as
// ErrMailboxCorrupt, here and in every method; this guards against damage
// from a crash or a failing disk, not against a file crafted to harm the
// relay.
func OpenBoltMailbox(path string, limits MailboxLimits) (*BoltMailbox, error) {
	if err := os.MkdirAll(filepath.Dir(path), boltDirMode); err != nil {
		return nil, fmt.Errorf("open mailbox: %w", err)
	}
	fi, err := os.Stat(path)
	created := errors.Is(err, fs.ErrNotExist)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return nil, fmt.Errorf("open mailbox %q: not a regular file", path)
	case err != nil && !created:
		return nil, fmt.Errorf("open mailbox: %w", err)
	}
	limits = limits.withDefaults()
	db, err := openBolt(path, limits)
	if err != nil {
		return nil, err
	}
	m := &BoltMailbox{
		db:     db,
		path:   path,
		limits: limits,
		reqs:   make(chan *boltReq, boltMaxBatch),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if err := m.prepare(created, fi); err != nil {
		m.db.Close()
		return nil, err
	}
	go m.writer()
	return m, nil
}

// openBolt opens and locks the file, classifying the errors. The file may
// not grow beyond the storage cap.
func openBolt(path string, limits MailboxLimits) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("open mailbox %q: %w: bbolt failed reading it: %v", path, ErrMailboxCorrupt, p)
		}
	}()
	db, err = bolt.Open(path, boltFileMode, &bolt.Options{
		Timeout:      boltLockTimeout,
		FreelistType: bolt.FreelistMapType,
		MaxSize:      int(limits.MaxStorage),
	})
	switch {
	case err == nil:
		// The file grows in steps of at most 1/64 of the cap, so that the
		// last step does not overshoot it.
		db.AllocSize = int(min(16<<20, max(64<<10, limits.MaxStorage/64)))
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open mailbox %q: %w (is another relay using the same data directory?)", path, ErrMailboxLocked)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("open mailbox %q: %w: %v", path, ErrMailboxCorrupt, err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open mailbox: %w", err) // the error names the path
	}
	return nil, fmt.Errorf("open mailbox %q: %w", path, err)
}

// prepare checks the file, creates the layout in a new one, rewrites one
// of format 1 and fixes the permissions of an old one.
func (m *BoltMailbox) prepare(created bool, fi fs.FileInfo) error {
	fail := func(err error) error { return fmt.Errorf("open mailbox %q: %w", m.path, err) }

	var fresh bool
	var format uint32
	var sc boltScan
	err := m.view(func(tx *bolt.Tx) error {
		fi, err := os.Stat(m.path)
		if err != nil {
			return err
		}
		if tx.Size() > fi.Size() {
			return fmt.Errorf("%w: the file is truncated (%d bytes, its pages need %d)", ErrMailboxCorrupt, fi.Size(), tx.Size())
		}
		if k, _ := tx.Cursor().First(); k == nil {
			fresh = true // no buckets at all: a new file
			return nil
		}
		if format, err = checkFormat(tx); err != nil {
			return err
		}
		// Walk every page in this goroutine first, where a fault is
		// recovered: Tx.Check runs in a goroutine of its own.
		if sc, err = scanBolt(tx, format); err != nil {
			return err
		}
		var first []error
		n := 0
		for err := range tx.Check() {
			if n < 3 {
				first = append(first, err)
			}
			n++
		}
		if n > 0 {
			return fmt.Errorf("%w: %d consistency errors: %w", ErrMailboxCorrupt, n, errors.Join(first...))
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	switch {
	case fresh:
		err = m.update(createLayout)
	case format == 1:
		err = m.migrate1(time.Now())
	case !sc.consistent:
		err = m.update(sc.rewrite)
	}
	if err != nil {
		return fail(err)
	}
	if created {
		syncDir(m.path) // make the new file's name durable too
	} else if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(m.path, boltFileMode); err != nil {
			return fmt.Errorf("open mailbox: %w", err)
		}
	}
	return nil
}

// createLayout makes the buckets of an empty mailbox in tx.
func createLayout(tx *bolt.Tx) error {
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	for _, b := range [][]byte{bucketStats, bucketMail, bucketReg} {
		if _, err := tx.CreateBucket(b); err != nil {
			return err
		}
	}
	if err := meta.Put(keyFormat, binary.BigEndian.AppendUint32(nil, boltFormat)); err != nil {
		return err
	}
	return meta.Put(keyTotals, boltTotals{}.encode())
}

// syncDir fsyncs the directory of path, so that a file created or renamed
// there keeps its name after a crash.
func syncDir(path string) {
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
}

// checkFormat checks that tx holds a mailbox of a format this code reads
// (1 or 2) and returns the format.
func checkFormat(tx *bolt.Tx) (uint32, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil || tx.Bucket(bucketStats) == nil || tx.Bucket(bucketMail) == nil {
		return 0, fmt.Errorf("%w: a bbolt file without the mailbox buckets", ErrMailboxCorrupt)
	}
	v := meta.Get(keyFormat)
	if len(v) != 4 {
		return 0, fmt.Errorf("%w: no format number", ErrMailboxCorrupt)
	}
	f := binary.BigEndian.Uint32(v)
	switch {
	case f == 1:
	case f != boltFormat:
		return 0, fmt.Errorf("%w: format %d, this relay reads formats 1 and %d", ErrMailboxCorrupt, f, boltFormat)
	case tx.Bucket(bucketReg) == nil:
		return 0, fmt.Errorf("%w: a format %d file without the registrations bucket", ErrMailboxCorrupt, f)
	}
	return f, nil
}

// boltScan is what scanBolt found.
type boltScan struct {
	stats      map[wire.RoutingID]boltStat // recomputed from the frames
	totals     boltTotals                  // recomputed from the frames
	consistent bool                        // the stored stats and totals match
}

// scanBolt reads every frame and registration and recomputes the stats and
// totals. It fails only on damage bbolt itself reports (by panicking,
// recovered by the caller); a malformed value is counted as a message with
// an empty body. A format 1 file is only read (it is rewritten after).
func scanBolt(tx *bolt.Tx, format uint32) (boltScan, error) {
	sc := boltScan{stats: make(map[wire.RoutingID]boltStat), consistent: true}
	mail := tx.Bucket(bucketMail)
	err := mail.ForEachBucket(func(k []byte) error {
		if len(k) != wire.RoutingIDSize {
			return fmt.Errorf("%w: a mail bucket named %x", ErrMailboxCorrupt, k)
		}
		st := boltStat{oldest: boltMaxTimestamp}
		c := mail.Bucket(k).Cursor()
		for fk, v := c.First(); fk != nil; fk, v = c.Next() {
			f, ok := decodeFrame(v, format)
			if !ok {
				st.msgs++
				st.oldest = 0 // Expire deletes malformed values
				continue
			}
			st.add(f.Receipt, len(f.Body))
			st.oldest = min(st.oldest, f.StoredAt.UnixMilli())
		}
		if st.msgs+st.rcpts > 0 {
			sc.stats[wire.RoutingID(k)] = st
			sc.totals.add(st, 1)
		}
		return nil
	})
	if err != nil || format == 1 {
		return sc, err
	}
	err = tx.Bucket(bucketReg).ForEach(func(k, v []byte) error {
		if len(k) == wire.RoutingIDSize && len(v) == 8 {
			sc.totals.regs++
		} else {
			sc.consistent = false // rewrite drops it
		}
		return nil
	})
	if err != nil {
		return sc, err
	}
	stats := tx.Bucket(bucketStats)
	n := 0
	err = stats.ForEach(func(k, v []byte) error {
		n++
		st, err := decodeStat(v)
		if len(k) != wire.RoutingIDSize || err != nil {
			sc.consistent = false
			return nil
		}
		want, ok := sc.stats[wire.RoutingID(k)]
		if !ok || st.msgs != want.msgs || st.msgBytes != want.msgBytes || st.rcpts != want.rcpts ||
			st.rcptBytes != want.rcptBytes || st.oldest > want.oldest {
			sc.consistent = false
		}
		return nil
	})
	if err != nil {
		return sc, err
	}
	tot, err := decodeTotals(tx.Bucket(bucketMeta).Get(keyTotals))
	if n != len(sc.stats) || err != nil || tot != sc.totals {
		sc.consistent = false
	}
	return sc, nil
}

// rewrite replaces the stats and totals with the recomputed ones, and
// drops malformed registrations.
func (sc boltScan) rewrite(tx *bolt.Tx) error {
	if err := tx.DeleteBucket(bucketStats); err != nil {
		return err
	}
	stats, err := tx.CreateBucket(bucketStats)
	if err != nil {
		return err
	}
	for rid, st := range sc.stats {
		if err := stats.Put(bytes.Clone(rid[:]), st.encode()); err != nil {
			return err
		}
	}
	reg := tx.Bucket(bucketReg)
	var bad [][]byte
	reg.ForEach(func(k, v []byte) error {
		if len(k) != wire.RoutingIDSize || len(v) != 8 {
			bad = append(bad, bytes.Clone(k))
		}
		return nil
	})
	for _, k := range bad {
		if err := reg.Delete(k); err != nil {
			if err := reg.DeleteBucket(k); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(bucketMeta).Put(keyTotals, sc.totals.encode())
}

// decodeFrame reads a stored value of the given format; false if it is too
// short to be one.
func decodeFrame(v []byte, format uint32) (StoredFrame, bool) {
	if format == 1 {
		if len(v) < 8+wire.RoutingIDSize {
			return StoredFrame{}, false
		}
		return StoredFrame{Body: v[8+wire.RoutingIDSize:], StoredAt: time.UnixMilli(int64(binary.BigEndian.Uint64(v)))}, true
	}
	if len(v) < boltHeaderSize || v[8] > kindReceipt {
		return StoredFrame{}, false
	}
	return StoredFrame{Receipt: v[8] == kindReceipt, Body: v[boltHeaderSize:], StoredAt: time.UnixMilli(int64(binary.BigEndian.Uint64(v)))}, true
}

func encodeFrame(at int64, receipt bool, body []byte) []byte {
	v := make([]byte, boltHeaderSize+len(body)) // bbolt keeps it until the commit
	binary.BigEndian.PutUint64(v, uint64(at))
	if receipt {
		v[8] = kindReceipt
	}
	copy(v[boltHeaderSize:], body)
	return v
}

// boltStat is a recipient's entry in the stats bucket.
type boltStat struct {
	msgs, msgBytes   int64
	rcpts, rcptBytes int64
	oldest           int64 // unix ms
}

func (s *boltStat) add(receipt bool, n int) {
	if receipt {
		s.rcpts++
		s.rcptBytes += int64(n)
	} else {
		s.msgs++
		s.msgBytes += int64(n)
	}
}

func (s *boltStat) remove(receipt bool, n int) {
	if receipt {
		s.rcpts--
		s.rcptBytes -= int64(n)
	} else {
		s.msgs--
		s.msgBytes -= int64(n)
	}
}

func (s boltStat) encode() []byte {
	b := make([]byte, 0, boltStatSize)
	for _, x := range []int64{s.msgs, s.msgBytes, s.rcpts, s.rcptBytes, s.oldest} {
		b = binary.BigEndian.AppendUint64(b, uint64(x))
	}
	return b
}

func decodeStat(v []byte) (boltStat, error) {
	if len(v) != boltStatSize {
		return boltStat{}, fmt.Errorf("%w: a stats entry of %d bytes", ErrMailboxCorrupt, len(v))
	}
	u := func(i int) int64 { return int64(binary.BigEndian.Uint64(v[8*i:])) }
	return boltStat{msgs: u(0), msgBytes: u(1), rcpts: u(2), rcptBytes: u(3), oldest: u(4)}, nil
}

// boltTotals is the "totals" entry in the meta bucket.
type boltTotals struct {
	frames, bytes, recipients, receipts, regs int64
}

// add adds (sign 1) or removes (sign -1) a recipient's stats.
func (t *boltTotals) add(st boltStat, sign int64) {
	t.frames += sign * (st.msgs + st.rcpts)
	t.bytes += sign * (st.msgBytes + st.rcptBytes)
	t.receipts += sign * st.rcpts
	t.recipients += sign
}

// used is what counts against MaxStorage.
func (t boltTotals) used() int64 {
	return t.bytes + t.frames*frameOverhead + t.regs*regOverhead
}

func (t boltTotals) encode() []byte {
	b := make([]byte, 0, boltTotalsSize)
	for _, x := range []int64{t.frames, t.bytes, t.recipients, t.receipts, t.regs} {
		b = binary.BigEndian.AppendUint64(b, uint64(x))
	}
	return b
}

func decodeTotals(v []byte) (boltTotals, error) {
	if len(v) != boltTotalsSize {
		return boltTotals{}, fmt.Errorf("%w: totals of %d bytes", ErrMailboxCorrupt, len(v))
	}
	u := func(i int) int64 { return int64(binary.BigEndian.Uint64(v[8*i:])) }
	return boltTotals{frames: u(0), bytes: u(1), recipients: u(2), receipts: u(3), regs: u(4)}, nil
}

func frameKey(id uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), id) }
