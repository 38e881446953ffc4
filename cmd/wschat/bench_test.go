package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
