package wire_test

import (
	"crypto/rand"
	"fmt"
	"log"
	"time"

	"github.com/wschat/wschat/wire"
)

// A client connects to a relay, and the relay's Welcome proves it holds
// the key the client pinned.
func Example_handshake() {
	relay, _ := wire.NewRelayIdentity(rand.Reader)
	alice, _ := wire.NewIdentity(rand.Reader)

	// Relay: Hello. Client: Auth. Relay: checks it.
	rh, hello, _ := wire.NewRelayHandshake(relay, rand.Reader)
	auth, client, err := wire.ClientHandshake(alice, relay.Public(), wire.ConnReceive, hello, rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	res, err := rh.Finish(auth)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("relay authenticated the client:", res.Peer.Equal(alice.Public()), "receiving:", res.Receive)

	// Relay: Welcome. Client: opens it with the session keys.
	frame, _, _ := res.Session.Send.AppendCommand(nil, &wire.Command{Op: wire.OpWelcome, Version: wire.ProtocolVersion, ID: res.Peer.ID()})
	h, _ := client.Recv.OpenHeader(frame)
	welcome, err := client.Recv.OpenCommand(h, frame)
	fmt.Println("client authenticated the relay:", err == nil && welcome.ID == alice.Public().ID())
	// Output:
	// relay authenticated the client: true receiving: true
	// client authenticated the relay: true
}

// Alice seals a message for Bob; Bob opens it and records it so that a
// second delivery is refused.
func ExamplePair_Seal() {
	alice, _ := wire.NewIdentity(rand.Reader)
	bob, _ := wire.NewIdentity(rand.Reader)
	ab, _ := alice.Pair(bob.Public()) // once per peer
	ba, _ := bob.Pair(alice.Public())

	id, _ := wire.NewMessageID(rand.Reader)
	env, err := ab.Seal(nil, &wire.Message{ID: id, SentAt: time.Now(), Type: wire.TypeText, Body: []byte("hello, bob")}, rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("envelope bytes:", len(env))

	guard := wire.NewReplayGuard()
	for range 2 {
		m, err := ba.Open(env)
		if err != nil {
			log.Fatal(err)
		}
		if err := guard.Accept(alice.Public().Fingerprint(), m.ID, m.SentAt, time.Now()); err != nil {
			fmt.Println("second delivery:", err)
			continue
		}
		fmt.Printf("bob got %s: %q\n", m.Type, m.Body)
	}
	// Output:
	// envelope bytes: 177
	// bob got text: "hello, bob"
	// second delivery: message already accepted (replay)
}
