package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/wire"
)

// An identity that only sends (a cron job) sends twice its quota of
// messages, one `wschat send` each, to a contact that listens. Each
// receipt waits at the relay for the next send, which collects it: the
// quota never fills, nothing is refused, and every message is delivered
// on the sender's side by the time it asks (send --wait delivered).
func TestReceiptsOfASendOnlyIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const quota = 4
	bin := buildWschat(t)
	rid, _ := wire.NewRelayIdentity(rand.Reader)
	mb := relayd.NewMemoryMailbox(relayd.MailboxLimits{MaxFrames: quota, MaxReceipts: quota})
	srv, err := relayd.New(relayd.Config{Identity: rid, Mailbox: mb})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx, 0)
		<-done
	})
	relay := srv.Address("ws://" + ln.Addr().String() + "/").String()
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		var stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("wschat %v: %v\n%s", args, err, &stderr)
		}
		return strings.TrimSpace(string(out))
	}
	cron, human := filepath.Join(dir, "cron"), filepath.Join(dir, "human")
	invC := run("--home", cron, "keygen", "--name", "cron", "--relay", relay)
	invH := run("--home", human, "keygen", "--name", "human", "--relay", relay)
	run("--home", cron, "contacts", "add", "human", invH)
	run("--home", human, "contacts", "add", "cron", invC)

	const n = 2 * quota
	listen := exec.Command(bin, "--home", human, "listen", "--count", "9", "--timeout", "60s")
	var heard bytes.Buffer
	listen.Stdout = &heard
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	defer listen.Process.Kill()
	for i := range n {
		run("--home", cron, "send", "--to", "human", "note "+string(rune('a'+i)))
	}
	run("--home", cron, "send", "--to", "human", "--wait", "delivered", "--timeout", "20s", "last")
	if err := listen.Wait(); err != nil {
		t.Fatalf("listen: %v\n%s", err, &heard)
	}

	store, err := bridge.OpenStore(filepath.Join(cron, "messages.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	recs, err := store.After(context.Background(), 0, bridge.DirOut, 100)
	if err != nil {
		t.Fatal(err)
	}
	var states []bridge.State
	for _, r := range recs {
		if r.Type == wire.TypeText {
			states = append(states, r.State)
		}
	}
	if len(states) != n+1 {
		t.Fatalf("%d messages in the sender's history, want %d", len(states), n+1)
	}
	for i, st := range states {
		if st != bridge.StateDelivered && st != bridge.StateRead {
			t.Fatalf("message %d is %q: %v", i, st, states)
		}
	}
	// Nothing waits at the relay for the sender but, perhaps, the receipt
	// of the last message: send --wait delivered returns when it has
	// saved it, and may close before the relay reads its Ack (the next
	// connection collects it; it is shown once).
	left, _ := mb.Pending(mustKeyID(t, invC), 0, 100, false, time.Now())
	if len(left) > 1 || len(left) == 1 && !left[0].Receipt {
		t.Fatalf("%d frames left at the relay for the sender: %+v", len(left), left)
	}
}

// mustKeyID is the routing id of an invite.
func mustKeyID(t *testing.T, invite string) wire.RoutingID {
	t.Helper()
	inv, err := keys.ParseInvite(invite)
	if err != nil {
		t.Fatal(err)
	}
	return inv.Public.ID()
}
