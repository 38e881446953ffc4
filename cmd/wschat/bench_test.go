package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// benchSetup starts a relay in this process and makes two homes, alice
// and bob, that know each other; it returns the binary and the homes.
func benchSetup(b *testing.B) (bin, alice, bob string, relay wire.RelayAddress) {
	b.Helper()
	dir := b.TempDir()
	bin = filepath.Join(dir, "wschat")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	relay = startTestRelay(b)
	alice, bob = filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	invites := map[string]string{}
	for _, h := range []string{alice, bob} {
		out, err := exec.Command(bin, "--home", h, "keygen", "--name", filepath.Base(h), "--relay", relay.String()).Output()
		if err != nil {
			b.Fatal(err)
		}
		invites[h] = strings.TrimSpace(string(out))
	}
	for _, p := range [][3]string{{alice, "bob", invites[bob]}, {bob, "alice", invites[alice]}} {
		if out, err := exec.Command(bin, "--home", p[0], "contacts", "add", p[1], p[2]).CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, out)
		}
	}
	return bin, alice, bob, relay
}

// BenchmarkSendColdProcess: `wschat send` as a fresh process on loopback,
// from exec to relay custody (the message id on stdout, printed when the
// relay's answer is in; target p50 ≤ 10 ms), and to process exit (which
// adds closing the store: the last connection folds the log into the
// database, with fsyncs).
func BenchmarkSendColdProcess(b *testing.B) {
	bin, alice, _, _ := benchSetup(b)
	const runs = 100
	for b.Loop() {
		var custody, exit []time.Duration
		for i := 0; i < runs; i++ {
			cmd := exec.Command(bin, "--home", alice, "send", "--to", "bob", fmt.Sprintf("cold %d", i))
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			custody = append(custody, time.Since(start))
			if err != nil || len(line) != 33 {
				b.Fatalf("send printed %q: %v", line, err)
			}
			if err := cmd.Wait(); err != nil {
				b.Fatal(err)
			}
			exit = append(exit, time.Since(start))
		}
		slices.Sort(custody)
		slices.Sort(exit)
		b.ReportMetric(float64(custody[runs/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(custody[runs*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(exit[runs/2].Microseconds())/1000, "exit-p50-ms")
	}
}

// BenchmarkListenBacklog: `wschat listen --json` draining a backlog of 10k
// stored messages (messages/s, from process start to the last line).
func BenchmarkListenBacklog(b *testing.B) {
	bin, alice, bob, relay := benchSetup(b)
	const n = 10000
	for b.Loop() {
		// Alice queues n messages and hands them to the relay in one go.
		f, err := keys.Load(filepath.Join(alice, "identity"), nil)
		if err != nil {
			b.Fatal(err)
		}
		book, _ := keys.OpenBook(filepath.Join(alice, "contacts"))
		store, err := bridge.OpenStore(filepath.Join(alice, "messages.db"), true)
		if err != nil {
			b.Fatal(err)
		}
		c := bridge.NewClient(bridge.Config{Identity: f.Identity, Relay: relay, Book: book, Store: store})
		to, _ := book.Get("bob")
		ctx := context.Background()
		for i := 0; i < n; i++ {
			if _, err := c.Queue(ctx, to, wire.TypeText, []byte(fmt.Sprintf("backlog %d", i))); err != nil {
				b.Fatal(err)
			}
		}
		if n, err := c.Deliver(ctx); err != nil || n != 10000 {
			b.Fatalf("delivered %d: %v", n, err)
		}
		store.Close()

		start := time.Now()
		cmd := exec.Command(bin, "--home", bob, "listen", "--json", "--count", fmt.Sprint(n), "--timeout", "5m")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		if got := strings.Count(string(out), "\n"); got != n {
			b.Fatalf("%d lines, want %d", got, n)
		}
		b.ReportMetric(float64(n)/d.Seconds(), "msgs/s")
		b.ReportMetric(d.Seconds(), "s")
	}
}

// BenchmarkSendColdVsBase compares `wschat send` as a fresh process, start
// to exit, with the binary built from another commit, in one run:
// WSCHAT_BENCH_BASE=<commit> go test -run '^$' -bench SendColdVsBase
// ./cmd/wschat. The two alternate run by run (WSCHAT_BENCH_RUNS each,
// default 300), against one relay in this process, each with its own
// home, so that the machine's noise falls on both alike; it reports both
// medians and their difference. Skipped without WSCHAT_BENCH_BASE.
func BenchmarkSendColdVsBase(b *testing.B) {
	base := os.Getenv("WSCHAT_BENCH_BASE")
	if base == "" {
		b.Skip("set WSCHAT_BENCH_BASE to a commit to compare with")
	}
	runs := 300
	if n, err := strconv.Atoi(os.Getenv("WSCHAT_BENCH_RUNS")); err == nil && n > 0 {
		runs = n
	}
	bin, alice, _, relay := benchSetup(b)
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	if out, err := exec.Command("git", "worktree", "add", "--detach", src, base).CombinedOutput(); err != nil {
		b.Fatalf("git worktree add: %v\n%s", err, out)
	}
	b.Cleanup(func() { exec.Command("git", "worktree", "remove", "--force", src).Run() })
	baseBin := filepath.Join(dir, "wschat-base")
	build := exec.Command("go", "build", "-o", baseBin, "./cmd/wschat")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", base, err, out)
	}
	// The base binary's own homes, made and paired by it.
	bA, bB := filepath.Join(dir, "base-alice"), filepath.Join(dir, "base-bob")
	inv := map[string]string{}
	for _, h := range []string{bA, bB} {
		out, err := exec.Command(baseBin, "--home", h, "keygen", "--name", filepath.Base(h), "--relay", relay.String()).Output()
		if err != nil {
			b.Fatal(err)
		}
		inv[h] = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command(baseBin, "--home", bA, "contacts", "add", "bob", inv[bB]).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	run := func(bin, home string, i int) time.Duration {
		start := time.Now()
		if out, err := exec.Command(bin, "--home", home, "send", "--to", "bob", fmt.Sprintf("cold %d", i)).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v %s", bin, err, out)
		}
		return time.Since(start)
	}
	for b.Loop() {
		var cur, old []time.Duration
		for i := range runs {
			if i%2 == 0 { // who goes first alternates too
				cur = append(cur, run(bin, alice, i))
				old = append(old, run(baseBin, bA, i))
			} else {
				old = append(old, run(baseBin, bA, i))
				cur = append(cur, run(bin, alice, i))
			}
		}
		slices.Sort(cur)
		slices.Sort(old)
		mc, mo := cur[runs/2], old[runs/2]
		b.ReportMetric(float64(mc.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(mo.Microseconds())/1000, "base-p50-ms")
		b.ReportMetric(float64((mc-mo).Microseconds())/1000, "diff-ms")
		b.ReportMetric(float64(mc)/float64(mo), "ratio")
	}
}
