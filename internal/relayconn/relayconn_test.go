package relayconn_test

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/relayd/relaytest"
	"github.com/wschat/wschat/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A Dial stuck in the handshake (the relay upgraded the connection and
// went quiet) ends when its context is cancelled, not at its timeout.
func TestDialCancelledInHandshake(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		// Answer the upgrade, then say nothing.
		buf := make([]byte, 4096)
		c.Read(buf)
		c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(buf) + "\r\nSec-WebSocket-Protocol: " + wire.Subprotocol + "\r\n\r\n"))
		accepted <- c
	}()
	rid, _ := wire.NewRelayIdentity(rand.Reader)
	addr := wire.RelayAddress{URL: "ws://" + ln.Addr().String() + "/", Key: rid.Public()}
	id, _ := wire.NewIdentity(rand.Reader)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := relayconn.Dial(ctx, addr, id, relayconn.Options{Timeout: 10 * time.Second})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("dial: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("dial took %v after its context was cancelled", d)
	}
	(<-accepted).Close()
}

// acceptKey answers the Sec-WebSocket-Key of a raw upgrade request.
func acceptKey(req []byte) string {
	for _, line := range strings.Split(string(req), "\r\n") {
		if k, ok := strings.CutPrefix(line, "Sec-WebSocket-Key: "); ok {
			h := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			return base64.StdEncoding.EncodeToString(h[:])
		}
	}
	return ""
}

// A relay whose key is not the pinned one cannot read Auth: Dial says so
// in words, early or not.
func TestDialWrongKey(t *testing.T) {
	r := relaytest.Start(t, relaytest.Options{})
	addr := r.Addr
	addr.Key = relaytest.Unreachable(t).Key
	id, _ := wire.NewIdentity(rand.Reader)
	if _, err := relayconn.Dial(context.Background(), addr, id, relayconn.Options{}); !errors.Is(err, relayconn.ErrRelayAuth) {
		t.Fatalf("dial: %v", err)
	}
	c, err := relayconn.Dial(context.Background(), addr, id, relayconn.Options{Early: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Read(); !errors.Is(err, relayconn.ErrRelayAuth) {
		t.Fatalf("first read after an early dial: %v", err)
	}
}
