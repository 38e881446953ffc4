package bridge_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/wire"
)

// A one-shot program: send one message, then Close before the store, as
// Send leaves the saving of the relay's answer running.
func ExampleClient_Send() {
	// A relay on loopback, keeping frames for offline recipients in memory.
	rid, _ := wire.NewRelayIdentity(rand.Reader)
	srv, _ := relayd.New(relayd.Config{Identity: rid, Mailbox: relayd.NewMemoryMailbox(relayd.MailboxLimits{})})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background(), 0)
	relay := srv.Address("ws://" + ln.Addr().String() + "/")

	dir, _ := os.MkdirTemp("", "wschat-example")
	defer os.RemoveAll(dir)
	me, _ := wire.NewIdentity(rand.Reader)
	alice, _ := wire.NewIdentity(rand.Reader)
	book, _ := keys.OpenBook(filepath.Join(dir, "contacts"))
	toAlice, _ := book.Add("alice", keys.Invite{Public: alice.Public(), Name: "alice"})
	// The relay stores only for identities registered on it: alice's
	// first receiving connection (or her wschat keygen) registered her.
	if err := bridge.Register(context.Background(), relay, alice, 0); err != nil {
		fmt.Println(err)
		return
	}
	store, err := bridge.OpenStore(filepath.Join(dir, "messages.db"), true)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	client := bridge.NewClient(bridge.Config{Identity: me, Relay: relay, Book: book, Store: store})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, state, err := client.Send(ctx, toAlice, []byte("backup finished"), false)
	if err != nil {
		fmt.Println("not sent:", err)
		return
	}
	fmt.Println("relay has it:", state) // alice is offline: stored for her
	if err := client.Close(); err != nil {
		fmt.Println("not recorded here:", err)
	}
	// Output: relay has it: stored
}
