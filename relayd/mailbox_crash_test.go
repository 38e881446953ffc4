package relayd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wschat/wschat/wire"
)

// The crash test runs this test binary again as a child that stores frames
// in a bolt mailbox and prints each id once Put has returned, kills it with
// SIGKILL in the middle of the stream, and checks that every frame the
// child was told is stored is in the file.
const (
	crashChildEnv   = "WSCHAT_TEST_CRASH_MAILBOX" // the mailbox file; set only in the child
	crashRoundEnv   = "WSCHAT_TEST_CRASH_ROUND"
	crashWriters    = 8
	crashKillAfter  = 1500            // lines read before the kill
	crashKillTimer  = 3 * time.Second // kill by then in any case
	crashChildLimit = 6 * time.Second // the child stops by itself after this
)

var crashLimits = MailboxLimits{MaxFrames: 1 << 20, MaxBytes: 1 << 40}

// crashFrame is what the child stores as frame i of writer w in a round.
func crashFrame(round, w, i int) (to, from wire.RoutingID, body []byte) {
	to = wire.RoutingID{0xc0, byte(round), byte(w), byte(i % 5)}
	from = wire.RoutingID{0x5e, byte(round), byte(w)}
	body = make([]byte, (w*7919+i*104729)%3000)
	for j := range body {
		body[j] = byte(round*131 + w*31 + i*17 + j)
	}
	return to, from, body
}

// TestHelperCrashChild is the child of TestBoltMailboxCrash; alone it skips.
// It prints "put W I ID" after frame I of writer W is stored, and
// "del W I ID" after every fourth of them is deleted again.
func TestHelperCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("the child of TestBoltMailboxCrash")
	}
	round, err := strconv.Atoi(os.Getenv(crashRoundEnv))
	if err != nil {
		t.Fatal(err)
	}
	m, err := OpenBoltMailbox(path, crashLimits)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var ids []wire.RoutingID
	for w := range crashWriters {
		for i := range 5 {
			to, _, _ := crashFrame(round, w, i)
			ids = append(ids, to)
		}
	}
	registerBulk(t, m, ids)
	deadline := time.Now().Add(crashChildLimit)
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				to, _, body := crashFrame(round, w, i)
				id, err := put(m, to, body, t0)
				if err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				// One write(2) per line: lines from writers do not mix.
				os.Stdout.WriteString(fmt.Sprintf("put %d %d %d\n", w, i, id))
				if i%4 == 3 {
					if err := m.Delete(to, id); err != nil {
						t.Errorf("Delete: %v", err)
						return
					}
					os.Stdout.WriteString(fmt.Sprintf("del %d %d %d\n", w, i, id))
				}
			}
		})
	}
	wg.Wait()
}

// crashRecord is a frame the child reported.
type crashRecord struct {
	round, w, i int
	id          uint64
	deleted     bool
}

func TestBoltMailboxCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbox.db")
	var records []*crashRecord
	// Twice: the second child stores into the file the first one died on.
	for round := range 2 {
		got := runCrashChild(t, path, round)
		t.Logf("round %d: the child reported %d frames stored", round, len(got))
		if len(got) == 0 {
			t.Fatal("the child stored nothing")
		}
		for _, old := range records {
			for _, rec := range got {
				if rec.id <= old.id {
					t.Fatalf("round %d issued id %d, not above round %d's %d", round, rec.id, old.round, old.id)
				}
			}
		}
		records = append(records, got...)
		checkCrashFile(t, path, records)
	}
}

// runCrashChild runs one child until it is killed and returns what it
// reported.
func runCrashChild(t *testing.T, path string, round int) []*crashRecord {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path, crashRoundEnv+"="+strconv.Itoa(round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(crashKillTimer, func() { cmd.Process.Kill() })
	defer timer.Stop()

	byKey := make(map[[2]int]*crashRecord)
	var out []*crashRecord
	r := bufio.NewReader(stdout)
	lines := 0
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break // a line cut by the kill has no newline and is ignored
		}
		if err != nil {
			t.Fatal(err)
		}
		var op string
		var w, i int
		var id uint64
		if n, _ := fmt.Sscanf(line, "%s %d %d %d\n", &op, &w, &i, &id); n != 4 {
			continue // the test framework's own lines
		}
		switch op {
		case "put":
			rec := &crashRecord{round: round, w: w, i: i, id: id}
			byKey[[2]int{w, i}] = rec
			out = append(out, rec)
		case "del":
			if rec := byKey[[2]int{w, i}]; rec != nil && rec.id == id {
				rec.deleted = true
			} else {
				t.Fatalf("child deleted a frame it did not report: %q", line)
			}
		}
		if lines++; lines == crashKillAfter {
			cmd.Process.Kill()
		}
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Exited() {
		// Not killed: it finished (a slow machine), or failed.
		if err != nil {
			t.Fatalf("child failed: %v\n%s", err, stderr.Bytes())
		}
		t.Logf("the child finished before it was killed")
	}
	return out
}

// checkCrashFile checks the file a child was killed on: its counts agree
// with its frames, and it holds every frame the children reported stored
// and none they reported deleted.
func checkCrashFile(t *testing.T, path string, records []*crashRecord) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		sc, err := scanBolt(tx, boltFormat)
		if err == nil && !sc.consistent {
			err = fmt.Errorf("the stats do not match the frames after a crash")
		}
		return err
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	m, err := OpenBoltMailbox(path, crashLimits)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	type frame struct {
		body []byte
	}
	stored := make(map[wire.RoutingID]map[uint64]frame)
	total := 0
	for _, rec := range records {
		to, _, _ := crashFrame(rec.round, rec.w, rec.i)
		if stored[to] != nil {
			continue
		}
		stored[to] = make(map[uint64]frame)
		for _, f := range mustPending(t, m, to, 0, 1<<30, t0) {
			stored[to][f.ID] = frame{f.Body}
			total++
		}
	}
	lost, kept := 0, 0
	for _, rec := range records {
		to, _, body := crashFrame(rec.round, rec.w, rec.i)
		f, ok := stored[to][rec.id]
		switch {
		case rec.deleted && ok:
			kept++
		case rec.deleted:
		case !ok && rec.i%4 == 3:
			// Its Delete may have committed before the kill, unreported.
		case !ok:
			lost++
		case !bytes.Equal(f.body, body):
			t.Errorf("frame %d (round %d, writer %d, #%d) came back different", rec.id, rec.round, rec.w, rec.i)
		}
	}
	if lost > 0 || kept > 0 {
		t.Fatalf("%d frames reported stored are gone, %d reported deleted are there", lost, kept)
	}
	if s := mustStats(t, m); s.Frames != total {
		t.Fatalf("Stats counts %d frames, Pending finds %d", s.Frames, total)
	}
}
