package relayd

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wschat/wschat/wire"
)

// t0 is the clock of the mailbox tests: every time is explicit.
var t0 = time.UnixMilli(1_790_000_000_000)

var (
	alice = wire.RoutingID{0xa1, 1, 2, 3, 4, 5, 6, 7}
	bob   = wire.RoutingID{0xb0, 1, 2, 3, 4, 5, 6, 7}
	carol = wire.RoutingID{0xca, 1, 2, 3, 4, 5, 6, 7}
)

// mailboxImpl opens one implementation of Mailbox for the conformance
// suite; persistent ones can be reopened from path.
type mailboxImpl struct {
	name       string
	persistent bool
	open       func(t testing.TB, path string, lim MailboxLimits) Mailbox
}

var mailboxImpls = []mailboxImpl{
	{"memory", false, func(t testing.TB, _ string, lim MailboxLimits) Mailbox {
		return NewMemoryMailbox(lim)
	}},
	{"bolt", true, func(t testing.TB, path string, lim MailboxLimits) Mailbox {
		t.Helper()
		m, err := OpenBoltMailbox(path, lim)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}},
}

// TestMailbox runs the same tests on every Mailbox implementation.
func TestMailbox(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, impl mailboxImpl, path string)
	}{
		{"Order", testMailboxOrder},
		{"IDsGrow", testMailboxIDsGrow},
		{"PutCopiesBody", testMailboxPutCopiesBody},
		{"Edges", testMailboxEdges},
		{"QuotaFrames", testMailboxQuotaFrames},
		{"QuotaBytes", testMailboxQuotaBytes},
		{"TTL", testMailboxTTL},
		{"Stats", testMailboxStats},
		{"ConcurrentPuts", testMailboxConcurrentPuts},
		{"Closed", testMailboxClosed},
		{"Reopen", testMailboxReopen},
	}
	for _, impl := range mailboxImpls {
		t.Run(impl.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					tt.run(t, impl, filepath.Join(t.TempDir(), "data", "mailbox.db"))
				})
			}
		})
	}
}

// openMailbox opens impl, registers alice, bob and carol, and closes it at
// the end of the test.
func openMailbox(t *testing.T, impl mailboxImpl, path string, lim MailboxLimits) Mailbox {
	t.Helper()
	m := impl.open(t, path, lim)
	t.Cleanup(func() { m.Close() })
	registerAll(t, m)
	return m
}

// registerAll registers alice, bob and carol at t0.
func registerAll(t testing.TB, m Mailbox) {
	t.Helper()
	for _, id := range []wire.RoutingID{alice, bob, carol} {
		if err := m.Register(id, t0); err != nil {
			t.Fatalf("Register(%s): %v", id, err)
		}
	}
}

// put stores a message for to.
func put(m Mailbox, to wire.RoutingID, body []byte, now time.Time) (uint64, error) {
	return m.Put(Frame{Recipient: to, Body: body, At: now})
}

// registerBulk registers many identities at t0; in one transaction for
// the disk mailbox.
func registerBulk(t testing.TB, m Mailbox, ids []wire.RoutingID) {
	t.Helper()
	bm, ok := m.(*BoltMailbox)
	if !ok {
		for _, id := range ids {
			if err := m.Register(id, t0); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	err := bm.submit(&boltReq{op: reqTx, fn: func(tx *boltTx) error {
		for _, id := range ids {
			if err := tx.register(&boltReq{rid: id, id: uint64(bm.limits.regStamp(t0))}); err != nil {
				return err
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// expireFrames runs Expire with nobody online and returns the frames it
// deleted.
func expireFrames(m Mailbox, now time.Time) (int, error) {
	n, err := m.Expire(now, nil)
	return n.Frames, err
}

// frameStats is what Stats says about frames: without registrations and
// the storage they use.
func frameStats(t testing.TB, m Mailbox) MailboxStats {
	t.Helper()
	s := mustStats(t, m)
	s.Registrations, s.Used = 0, 0
	return s
}

func mustPut(t testing.TB, m Mailbox, to, from wire.RoutingID, body string, now time.Time) uint64 {
	t.Helper()
	id, err := put(m, to, []byte(body), now)
	if err != nil {
		t.Fatalf("Put(%s, %q): %v", to, body, err)
	}
	if id == 0 {
		t.Fatalf("Put(%s, %q) gave id 0", to, body)
	}
	return id
}

func mustPending(t testing.TB, m Mailbox, to wire.RoutingID, after uint64, max int, now time.Time) []StoredFrame {
	t.Helper()
	fs, err := m.Pending(to, after, max, false, now)
	if err != nil {
		t.Fatalf("Pending(%s, %d, %d): %v", to, after, max, err)
	}
	return fs
}

func mustStats(t testing.TB, m Mailbox) MailboxStats {
	t.Helper()
	s, err := m.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

// bodies gives the bodies of frames, for comparing.
func bodies(fs []StoredFrame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f.Body)
	}
	return out
}

func wantBodies(t testing.TB, fs []StoredFrame, want ...string) {
	t.Helper()
	if got := bodies(fs); fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
		t.Fatalf("bodies = %q, want %q", got, want)
	}
}

func testMailboxOrder(t *testing.T, impl mailboxImpl, path string) {
	m := openMailbox(t, impl, path, MailboxLimits{})
	id1 := mustPut(t, m, alice, bob, "one", t0)
	id2 := mustPut(t, m, alice, carol, "two", t0.Add(time.Millisecond))
	idB := mustPut(t, m, bob, alice, "for bob", t0)
	id3 := mustPut(t, m, alice, bob, "three", t0.Add(2*time.Millisecond+500*time.Microsecond))
	if !(id1 < id2 && id2 < id3) {
		t.Fatalf("ids %d, %d, %d do not grow", id1, id2, id3)
	}

	fs := mustPending(t, m, alice, 0, 10, t0)
	wantBodies(t, fs, "one", "two", "three")
	want := []StoredFrame{
		{ID: id1, StoredAt: t0},
		{ID: id2, StoredAt: t0.Add(time.Millisecond)},
		{ID: id3, StoredAt: t0.Add(2 * time.Millisecond)}, // kept to the millisecond
	}
	for i, f := range fs {
		if f.ID != want[i].ID || f.Receipt || !f.StoredAt.Equal(want[i].StoredAt) {
			t.Errorf("frame %d = {%d %v %s}, want {%d false %s}", i, f.ID, f.Receipt, f.StoredAt, want[i].ID, want[i].StoredAt)
		}
	}
	wantBodies(t, mustPending(t, m, alice, id1, 10, t0), "two", "three")
	wantBodies(t, mustPending(t, m, alice, 0, 2, t0), "one", "two")
	wantBodies(t, mustPending(t, m, alice, id3, 10, t0))
	wantBodies(t, mustPending(t, m, bob, 0, 10, t0), "for bob")
	if fs := mustPending(t, m, bob, 0, 10, t0); fs[0].ID != idB {
		t.Fatalf("bob's frame has id %d, Put said %d", fs[0].ID, idB)
	}

	if err := m.Delete(alice, id2); err != nil {
		t.Fatal(err)
	}
	wantBodies(t, mustPending(t, m, alice, 0, 10, t0), "one", "three")
	wantBodies(t, mustPending(t, m, alice, id1, 1, t0), "three")
	// Deleting what is not there is not an error.
	for _, d := range []struct {
		to wire.RoutingID
		id uint64
	}{{alice, id2}, {alice, 12345}, {carol, id1}, {bob, id1}} {
		if err := m.Delete(d.to, d.id); err != nil {
			t.Errorf("Delete(%s, %d) = %v, want nil", d.to, d.id, err)
		}
	}
	wantBodies(t, mustPending(t, m, alice, 0, 10, t0), "one", "three")
	wantBodies(t, mustPending(t, m, bob, 0, 10, t0), "for bob")
}

func testMailboxIDsGrow(t *testing.T, impl mailboxImpl, path string) {
	m := openMailbox(t, impl, path, MailboxLimits{})
	last := uint64(0)
	for i := range 5 {
		id := mustPut(t, m, alice, bob, fmt.Sprint(i), t0)
		if id <= last {
			t.Fatalf("id %d after %d", id, last)
		}
		// Emptying the mailbox does not restart the ids.
		if err := m.Delete(alice, id); err != nil {
			t.Fatal(err)
		}
		last = id
	}
	if s := frameStats(t, m); s != (MailboxStats{}) {
		t.Fatalf("empty mailbox has stats %+v", s)
	}
}

func testMailboxPutCopiesBody(t *testing.T, impl mailboxImpl, path string) {
	m := openMailbox(t, impl, path, MailboxLimits{})
	body := []byte("original")
	if _, err := put(m, alice, body, t0); err != nil {
		t.Fatal(err)
	}
	copy(body, "XXXXXXXX")
	wantBodies(t, mustPending(t, m, alice, 0, 1, t0), "original")
}

func testMailboxEdges(t *testing.T, impl mailboxImpl, path string) {
	m := openMailbox(t, impl, path, MailboxLimits{})
	id := mustPut(t, m, alice, bob, "", t0) // an empty body is a frame too
	wantBodies(t, mustPending(t, m, alice, 0, 10, t0), "")
	wantBodies(t, mustPending(t, m, alice, 0, 0, t0))
	wantBodies(t, mustPending(t, m, alice, 0, -1, t0))
	wantBodies(t, mustPending(t, m, alice, math.MaxUint64, 10, t0))
	wantBodies(t, mustPending(t, m, carol, 0, 10, t0))
	if s := frameStats(t, m); s != (MailboxStats{Frames: 1, Bytes: 0, Recipients: 1}) {
		t.Fatalf("stats %+v", s)
	}
	if err := m.Delete(alice, id); err != nil {
		t.Fatal(err)
	}
}

func testMailboxQuotaFrames(t *testing.T, impl mailboxImpl, path string) {
	m := openMailbox(t, impl, path, MailboxLimits{MaxFrames: 3})
	var ids []uint64
	for i := range 3 {
		ids = append(ids, mustPut(t, m, alice, bob, fmt.Sprint(i), t0))
	}
	if _, err := put(m, alice, []byte("3"), t0); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("fourth Put: %v, want ErrMailboxFull", err)
	}
	mustPut(t, m, bob, alice, "another recipient has room", t0)
	if err := m.Delete(alice, ids[1]); err != nil {
		t.Fatal(err)
	}
	mustPut(t, m, alice, bob, "room again", t0)
	if _, err := put(m, alice, []byte("full again"), t0); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("Put: %v, want ErrMailboxFull", err)
	}
	wantBodies(t, mustPending(t, m, alice, 0, 10, t0), "0", "2", "room again")
}

func testMailboxQuotaBytes(t *testing.T, impl mailboxImpl, path string) {
	m := openMailbox(t, impl, path, MailboxLimits{MaxBytes: 100})
	b := func(n int) string { return strings.Repeat("x", n) }
	if _, err := put(m, alice, []byte(b(101)), t0); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("Put of 101 bytes: %v, want ErrMailboxFull", err)
	}
	id60 := mustPut(t, m, alice, bob, b(60), t0)
	if _, err := put(m, alice, []byte(b(41)), t0); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("Put of 60+41 bytes: %v, want ErrMailboxFull", err)
	}
	mustPut(t, m, alice, bob, b(40), t0) // exactly 100
	if _, err := put(m, alice, []byte("x"), t0); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("Put of 101st byte: %v, want ErrMailboxFull", err)
	}
	mustPut(t, m, alice, bob, "", t0) // an empty body costs no bytes
	mustPut(t, m, carol, bob, b(100), t0)
	if s := frameStats(t, m); s != (MailboxStats{Frames: 4, Bytes: 200, Recipients: 2}) {
		t.Fatalf("stats %+v", s)
	}
	if err := m.Delete(alice, id60); err != nil {
		t.Fatal(err)
	}
	mustPut(t, m, alice, bob, b(60), t0)
}

func testMailboxTTL(t *testing.T, impl mailboxImpl, path string) {
	m := openMailbox(t, impl, path, MailboxLimits{TTL: time.Hour, MaxFrames: 3})
	mustPut(t, m, alice, bob, "at 30m", t0.Add(30*time.Minute))
	mustPut(t, m, alice, bob, "at 0", t0) // stored later, but older: ids are not times
	mustPut(t, m, alice, bob, "at 1h", t0.Add(time.Hour))
	mustPut(t, m, bob, alice, "bob at 0", t0)

	// A frame exactly TTL old is still delivered; a millisecond later it is not.
	wantBodies(t, mustPending(t, m, alice, 0, 10, t0.Add(time.Hour)), "at 30m", "at 0", "at 1h")
	wantBodies(t, mustPending(t, m, alice, 0, 10, t0.Add(time.Hour+time.Millisecond)), "at 30m", "at 1h")
	wantBodies(t, mustPending(t, m, alice, 0, 1, t0.Add(90*time.Minute+time.Millisecond)), "at 1h")
	// Pending does not delete: an earlier clock still sees the frame.
	wantBodies(t, mustPending(t, m, alice, 0, 10, t0), "at 30m", "at 0", "at 1h")
	if _, err := put(m, alice, []byte("full"), t0); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("Put: %v, want ErrMailboxFull (expired frames count until Expire)", err)
	}

	n, err := expireFrames(m, t0.Add(time.Hour))
	if err != nil || n != 0 {
		t.Fatalf("Expire at TTL = %d, %v; want 0", n, err)
	}
	n, err = expireFrames(m, t0.Add(time.Hour+time.Millisecond))
	if err != nil || n != 2 {
		t.Fatalf("Expire = %d, %v; want 2 (alice's and bob's frames at 0)", n, err)
	}
	if s := frameStats(t, m); s != (MailboxStats{Frames: 2, Bytes: int64(len("at 30m") + len("at 1h")), Recipients: 1}) {
		t.Fatalf("stats after Expire %+v", s)
	}
	wantBodies(t, mustPending(t, m, alice, 0, 10, t0), "at 30m", "at 1h")
	wantBodies(t, mustPending(t, m, bob, 0, 10, t0))
	if n, err := expireFrames(m, t0.Add(time.Hour+time.Millisecond)); err != nil || n != 0 {
		t.Fatalf("second Expire = %d, %v; want 0", n, err)
	}
	mustPut(t, m, alice, bob, "room again", t0.Add(time.Hour))

	n, err = expireFrames(m, t0.Add(3*time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("Expire of everything = %d, %v; want 3", n, err)
	}
	if s := frameStats(t, m); s != (MailboxStats{}) {
		t.Fatalf("stats after expiring everything %+v", s)
	}
	if id := mustPut(t, m, alice, bob, "new", t0.Add(3*time.Hour)); id <= 5 {
		t.Fatalf("id %d after expiry; ids must keep growing", id)
	}
}

func testMailboxStats(t *testing.T, impl mailboxImpl, path string) {
	m := openMailbox(t, impl, path, MailboxLimits{})
	if s := frameStats(t, m); s != (MailboxStats{}) {
		t.Fatalf("new mailbox has stats %+v", s)
	}
	a1 := mustPut(t, m, alice, bob, "12345", t0)
	a2 := mustPut(t, m, alice, bob, "123", t0)
	b1 := mustPut(t, m, bob, alice, "1234567", t0)
	if s := frameStats(t, m); s != (MailboxStats{Frames: 3, Bytes: 15, Recipients: 2}) {
		t.Fatalf("stats %+v", s)
	}
	for _, d := range []struct {
		to   wire.RoutingID
		id   uint64
		want MailboxStats
	}{
		{alice, a1, MailboxStats{Frames: 2, Bytes: 10, Recipients: 2}},
		{alice, a1, MailboxStats{Frames: 2, Bytes: 10, Recipients: 2}},
		{bob, b1, MailboxStats{Frames: 1, Bytes: 3, Recipients: 1}},
		{alice, a2, MailboxStats{}},
	} {
		if err := m.Delete(d.to, d.id); err != nil {
			t.Fatal(err)
		}
		if s := frameStats(t, m); s != d.want {
			t.Fatalf("after Delete(%s, %d): stats %+v, want %+v", d.to, d.id, s, d.want)
		}
	}
}

func testMailboxConcurrentPuts(t *testing.T, impl mailboxImpl, path string) {
	const workers, each = 32, 40
	m := openMailbox(t, impl, path, MailboxLimits{})
	recipients := []wire.RoutingID{alice, bob, carol}
	ids := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				to := recipients[(w+i)%len(recipients)]
				id, err := put(m, to, fmt.Appendf(nil, "%d/%d", w, i), t0)
				if err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				ids[w] = append(ids[w], id)
			}
		})
	}
	wg.Wait()
	seen := make(map[uint64]bool)
	for w := range workers {
		if len(ids[w]) != each {
			t.Fatalf("worker %d stored %d frames", w, len(ids[w]))
		}
		for i, id := range ids[w] {
			if seen[id] {
				t.Fatalf("id %d issued twice", id)
			}
			seen[id] = true
			if i > 0 && id <= ids[w][i-1] {
				t.Fatalf("worker %d: id %d after %d", w, id, ids[w][i-1])
			}
		}
	}
	got := make(map[string]uint64)
	for _, to := range recipients {
		for _, f := range mustPending(t, m, to, 0, workers*each, t0) {
			got[string(f.Body)] = f.ID
		}
	}
	for w := range workers {
		for i, id := range ids[w] {
			if b := fmt.Sprintf("%d/%d", w, i); got[b] != id {
				t.Fatalf("frame %q: id %d stored, Put said %d", b, got[b], id)
			}
		}
	}
	if s := mustStats(t, m); s.Frames != workers*each || s.Recipients != len(recipients) {
		t.Fatalf("stats %+v", s)
	}
}

func testMailboxClosed(t *testing.T, impl mailboxImpl, path string) {
	m := impl.open(t, path, MailboxLimits{})
	registerAll(t, m)
	mustPut(t, m, alice, bob, "x", t0)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := put(m, alice, []byte("y"), t0); !errors.Is(err, ErrMailboxClosed) {
		t.Errorf("Put after Close: %v", err)
	}
	if _, err := m.Pending(alice, 0, 1, false, t0); !errors.Is(err, ErrMailboxClosed) {
		t.Errorf("Pending after Close: %v", err)
	}
	if err := m.Delete(alice, 1); !errors.Is(err, ErrMailboxClosed) {
		t.Errorf("Delete after Close: %v", err)
	}
	if _, err := expireFrames(m, t0); !errors.Is(err, ErrMailboxClosed) {
		t.Errorf("Expire after Close: %v", err)
	}
	if _, err := m.Stats(); !errors.Is(err, ErrMailboxClosed) {
		t.Errorf("Stats after Close: %v", err)
	}
}

func testMailboxReopen(t *testing.T, impl mailboxImpl, path string) {
	if !impl.persistent {
		t.Skip("not persistent")
	}
	lim := MailboxLimits{TTL: time.Hour, MaxFrames: 4}
	m := impl.open(t, path, lim)
	registerAll(t, m)
	mustPut(t, m, alice, bob, "old", t0)
	a2 := mustPut(t, m, alice, carol, "new", t0.Add(time.Hour))
	b1 := mustPut(t, m, bob, alice, "bob", t0)
	if err := m.Delete(bob, b1); err != nil {
		t.Fatal(err)
	}
	before := mustStats(t, m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m = openMailbox(t, impl, path, lim)
	if s := mustStats(t, m); s != before {
		t.Fatalf("stats after reopen %+v, want %+v", s, before)
	}
	fs := mustPending(t, m, alice, 0, 10, t0)
	wantBodies(t, fs, "old", "new")
	if fs[1].ID != a2 || fs[1].Receipt || !fs[1].StoredAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("frame after reopen %+v", fs[1])
	}
	wantBodies(t, mustPending(t, m, alice, 0, 10, t0.Add(time.Hour+time.Millisecond)), "new")
	if id := mustPut(t, m, bob, alice, "bob again", t0); id <= b1 {
		t.Fatalf("id %d after reopen, not above %d", id, b1)
	}
	// The quota counts what was stored before the reopen.
	mustPut(t, m, alice, bob, "3", t0)
	mustPut(t, m, alice, bob, "4", t0)
	if _, err := put(m, alice, []byte("5"), t0); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("Put: %v, want ErrMailboxFull", err)
	}
	if n, err := expireFrames(m, t0.Add(time.Hour+time.Millisecond)); err != nil || n != 4 {
		t.Fatalf("Expire after reopen = %d, %v; want 4", n, err)
	}
}

// ---- the bolt mailbox only ----

func TestBoltMailboxFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "relay")
	path := filepath.Join(dir, "mailbox.db")
	m, err := OpenBoltMailbox(path, MailboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	// A file others can read is made private.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err = OpenBoltMailbox(path, MailboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("reopened file has mode %v", fi.Mode().Perm())
	}
}

func TestBoltMailboxLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbox.db")
	m, err := OpenBoltMailbox(path, MailboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	registerAll(t, m)
	mustPut(t, m, alice, bob, "x", t0)
	start := time.Now()
	m2, err := OpenBoltMailbox(path, MailboxLimits{})
	if err == nil {
		m2.Close()
		t.Fatal("second open of the same file succeeded")
	}
	if !errors.Is(err, ErrMailboxLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second open: %v; want ErrMailboxLocked naming the file", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second open took %v to fail", d)
	}
	t.Logf("second open: %v", err)
	// The first is unharmed, and once it is closed the file opens.
	wantBodies(t, mustPending(t, m, alice, 0, 10, t0), "x")
	m.Close()
	m, err = OpenBoltMailbox(path, MailboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}

// TestBoltMailboxNotAMailbox: files that are not mailboxes are refused with
// ErrMailboxCorrupt and a message that says what is wrong, and are left as
// they were.
func TestBoltMailboxNotAMailbox(t *testing.T) {
	rnd := make([]byte, 64<<10)
	for i := range rnd {
		rnd[i] = byte(rand.N(256))
	}
	cases := []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"garbage", func(t *testing.T, path string) { writeFile(t, path, rnd) }, "invalid database"},
		{"tiny", func(t *testing.T, path string) { writeFile(t, path, []byte("hello\n")) }, "invalid database"},
		{"text", func(t *testing.T, path string) {
			writeFile(t, path, bytes.Repeat([]byte("not a database\n"), 1000))
		}, "invalid database"},
		{"other bolt file", func(t *testing.T, path string) {
			rawBolt(t, path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("something"))
				if err != nil {
					return err
				}
				return b.Put([]byte("k"), []byte("v"))
			})
		}, "without the mailbox buckets"},
		{"future format", func(t *testing.T, path string) {
			newBoltFile(t, path)
			rawBolt(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keyFormat, []byte{0, 0, 0, 3})
			})
		}, "format 3"},
		{"truncated", func(t *testing.T, path string) {
			fillBoltFile(t, path, 200)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, "truncated|bbolt failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mailbox.db")
			c.make(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := OpenBoltMailbox(path, MailboxLimits{})
			if err == nil {
				m.Close()
				t.Fatal("opened")
			}
			msg := strings.ReplaceAll(err.Error(), path, "PATH")
			if !errors.Is(err, ErrMailboxCorrupt) || !regexp.MustCompile(c.want).MatchString(msg) || !strings.Contains(msg, "PATH") {
				t.Fatalf("error %q; want ErrMailboxCorrupt naming the file and saying %q", err, c.want)
			}
			t.Logf("%v", err)
			if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
				t.Fatal("a refused file was changed")
			}
		})
	}
}

// TestBoltMailboxDamage overwrites parts of a mailbox file with garbage: the
// mailbox must refuse it or work, never panic.
func TestBoltMailboxDamage(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	fillBoltFile(t, good, 300)
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	pages := len(orig) / pageSize
	rng := rand.New(rand.NewPCG(1, 2))
	refused, opened := 0, 0
	for trial := range 60 {
		data := bytes.Clone(orig)
		switch trial % 3 {
		case 0: // a whole page
			p := 2 + rng.IntN(pages-2)
			for i := range pageSize {
				data[p*pageSize+i] = byte(rng.Uint32())
			}
		case 1: // a page header
			p := 2 + rng.IntN(pages-2)
			for i := range 16 {
				data[p*pageSize+i] = byte(rng.Uint32())
			}
		case 2: // a few bytes anywhere past the meta pages
			for range 8 {
				data[2*pageSize+rng.IntN(len(data)-2*pageSize)] = byte(rng.Uint32())
			}
		}
		path := filepath.Join(dir, fmt.Sprintf("damaged%d.db", trial))
		writeFile(t, path, data)
		m, err := OpenBoltMailbox(path, MailboxLimits{})
		if err != nil {
			if !errors.Is(err, ErrMailboxCorrupt) {
				t.Fatalf("trial %d: %v; want ErrMailboxCorrupt", trial, err)
			}
			refused++
			continue
		}
		opened++
		// Damage the checks did not see (inside values): every method
		// works or fails with an error.
		for _, to := range []wire.RoutingID{alice, bob, carol} {
			m.Pending(to, 0, 1000, false, t0)
			put(m, to, []byte("after damage"), t0)
		}
		expireFrames(m, t0.Add(365*24*time.Hour))
		m.Stats()
		m.Close()
	}
	t.Logf("%d damaged files refused, %d opened", refused, opened)
	if refused == 0 {
		t.Fatal("no damaged file was refused")
	}
}

// TestBoltMailboxMalformedValue: a stored value too short to be a frame is
// skipped and counted by Pending, and deleted by Expire.
func TestBoltMailboxMalformedValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbox.db")
	m, err := OpenBoltMailbox(path, MailboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	registerAll(t, m)
	mustPut(t, m, alice, bob, "one", t0)
	id2 := mustPut(t, m, alice, bob, "two", t0)
	mustPut(t, m, alice, bob, "three", t0)
	m.Close()
	rawBolt(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMail).Bucket(alice[:]).Put(frameKey(id2), []byte("short"))
	})
	m, err = OpenBoltMailbox(path, MailboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	wantBodies(t, mustPending(t, m, alice, 0, 10, t0), "one", "three")
	if n := m.Malformed(); n != 1 {
		t.Fatalf("Malformed() = %d, want 1", n)
	}
	// Open rebuilt the counts from the frames: the bad value is counted
	// until Expire deletes it, even though it has not expired.
	if s := frameStats(t, m); s != (MailboxStats{Frames: 3, Bytes: 8, Recipients: 1}) {
		t.Fatalf("stats %+v", s)
	}
	if n, err := expireFrames(m, t0); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1", n, err)
	}
	if s := frameStats(t, m); s != (MailboxStats{Frames: 2, Bytes: 8, Recipients: 1}) {
		t.Fatalf("stats after Expire %+v", s)
	}
	wantBodies(t, mustPending(t, m, alice, 0, 10, t0), "one", "three")
	if n := m.Malformed(); n != 2 {
		t.Fatalf("Malformed() = %d, want 2 (Pending, then Expire)", n)
	}
}

// TestBoltMailboxStatsRebuilt: counts that disagree with the frames are
// rebuilt from the frames by Open.
func TestBoltMailboxStatsRebuilt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbox.db")
	m, err := OpenBoltMailbox(path, MailboxLimits{MaxFrames: 2})
	if err != nil {
		t.Fatal(err)
	}
	registerAll(t, m)
	mustPut(t, m, alice, bob, "12345", t0)
	mustPut(t, m, bob, bob, "1", t0)
	m.Close()
	rawBolt(t, path, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(keyTotals, []byte("bad")); err != nil {
			return err
		}
		if err := tx.Bucket(bucketStats).Put(alice[:], boltStat{msgs: 2, msgBytes: 999}.encode()); err != nil {
			return err
		}
		return tx.Bucket(bucketStats).Put(carol[:], boltStat{msgs: 1}.encode())
	})
	m, err = OpenBoltMailbox(path, MailboxLimits{MaxFrames: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if s := frameStats(t, m); s != (MailboxStats{Frames: 2, Bytes: 6, Recipients: 2}) {
		t.Fatalf("stats %+v", s)
	}
	mustPut(t, m, alice, bob, "quota has room", t0)
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rawBolt changes a bbolt file directly.
func rawBolt(t testing.TB, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func newBoltFile(t testing.TB, path string) {
	t.Helper()
	m, err := OpenBoltMailbox(path, MailboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}

// fillBoltFile makes a mailbox of n frames of various sizes, some large
// enough to need overflow pages, for three recipients.
func fillBoltFile(t testing.TB, path string, n int) {
	t.Helper()
	m, err := OpenBoltMailbox(path, MailboxLimits{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	registerAll(t, m)
	for i := range n {
		to := []wire.RoutingID{alice, bob, carol}[i%3]
		size := 50 + i*37%400
		if i%50 == 0 {
			size = 9000
		}
		mustPut(t, m, to, bob, strings.Repeat(string(rune('a'+i%26)), size), t0.Add(time.Duration(i)*time.Second))
	}
}

// ---- benchmarks ----

// benchBody is a 256-byte frame body, the size of the relay's benchmarks.
var benchBody = bytes.Repeat([]byte{0x5a}, 256)

var benchLimits = MailboxLimits{MaxFrames: math.MaxInt32, MaxBytes: math.MaxInt64}

// benchPuts has 64 goroutines (many connections storing at once) Put
// frames, each goroutine to its own share of spread recipients, in turn.
func benchPuts(b *testing.B, m Mailbox, spread int) {
	ids := make([]wire.RoutingID, spread)
	for r := range ids {
		ids[r] = wire.RoutingID{1, byte(r), byte(r >> 8), byte(r >> 16)}
	}
	registerBulk(b, m, ids)
	var next atomic.Uint32
	b.SetBytes(int64(len(benchBody)))
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := next.Add(1)
		per := max(1, spread/64)
		for i := 0; pb.Next(); i++ {
			r := (int(g)*per + i%per) % spread
			to := wire.RoutingID{1, byte(r), byte(r >> 8), byte(r >> 16)}
			if _, err := put(m, to, benchBody, t0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// benchSpreads are how many recipients the Puts of a benchmark go to: one
// per connection, or 1024 per connection, when every Put changes other
// pages of the B+trees.
var benchSpreads = []int{64, 65536}

func BenchmarkBoltPut(b *testing.B) {
	for _, spread := range benchSpreads {
		b.Run(fmt.Sprintf("recipients=%d", spread), func(b *testing.B) {
			m, err := OpenBoltMailbox(filepath.Join(b.TempDir(), "mailbox.db"), benchLimits)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			benchPuts(b, m, spread)
		})
	}
}

// BenchmarkBoltPutSerial is one connection storing one frame at a time: the
// latency of a Put, which is the latency of an fsynced commit.
func BenchmarkBoltPutSerial(b *testing.B) {
	m, err := OpenBoltMailbox(filepath.Join(b.TempDir(), "mailbox.db"), benchLimits)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	var ids []wire.RoutingID
	for i := range 256 {
		ids = append(ids, wire.RoutingID{1, byte(i)})
	}
	registerBulk(b, m, ids)
	b.SetBytes(int64(len(benchBody)))
	for i := 0; b.Loop(); i++ {
		if _, err := put(m, wire.RoutingID{1, byte(i)}, benchBody, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

func BenchmarkMemoryPut(b *testing.B) {
	for _, spread := range benchSpreads {
		b.Run(fmt.Sprintf("recipients=%d", spread), func(b *testing.B) {
			benchPuts(b, NewMemoryMailbox(benchLimits), spread)
		})
	}
}
