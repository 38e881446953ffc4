package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/wire"
)

// TestNginxSnippet runs the nginx block of README.md ("Run a relay on a
// server") in front of a relay on loopback: the relay's page and a
// WebSocket session pass through it, and the relay counts the client the
// proxy names, not the proxy. It needs nginx (apt-get install nginx-light);
// without it the test is skipped.
func TestNginxSnippet(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx is not installed (apt-get install nginx-light)")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- nginx-snippet -->\n```nginx\n")
	snippet, _, ok2 := strings.Cut(rest, "```\n<!-- /nginx-snippet -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no nginx snippet")
	}
	// The relay, on the address the snippet names.
	rln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	snippet = strings.ReplaceAll(snippet, "127.0.0.1:8443", rln.Addr().String())
	rid, _ := wire.NewRelayIdentity(rand.Reader)
	mb := relayd.NewMemoryMailbox(relayd.MailboxLimits{})
	srv, err := relayd.New(relayd.Config{Identity: rid, Mailbox: mb, Limits: relayd.Limits{
		MaxConnsPerIP: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(rln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx, 0)
		<-done
	}()
	// nginx in front, in a prefix of its own.
	pln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := pln.Addr().(*net.TCPAddr).Port
	pln.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf(`daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
    server {
        listen 127.0.0.1:%[2]d;
        server_name localhost;
%[3]s
    }
}
`, dir, port, snippet)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	base := fmt.Sprintf("127.0.0.1:%d", port)
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = http.Get("http://" + base + "/"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("nginx did not come up: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "wschat relay") {
		t.Fatalf("the relay's page through nginx: %d %q", resp.StatusCode, page)
	}
	// A session through the proxy: bob receives what alice sends.
	addr := wire.RelayAddress{URL: "ws://" + base + "/", Key: rid.Public()}
	alice, _ := wire.NewIdentity(rand.Reader)
	bob, _ := wire.NewIdentity(rand.Reader)
	bc, err := relayconn.Dial(context.Background(), addr, bob, relayconn.Options{Receive: true})
	if err != nil {
		t.Fatalf("dial through nginx: %v", err)
	}
	defer bc.Close()
	ac, err := relayconn.Dial(context.Background(), addr, alice, relayconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ac.SendData(bob.Public().ID(), 0, make([]byte, wire.MinEnvelopeSize))
	if in := nextData(t, bc); in.Header.ID != alice.Public().ID() {
		t.Fatalf("frame from %s", in.Header.ID)
	}
	// The relay counts the client nginx names (127.0.0.1, here too): a
	// third connection over a cap of 2 is refused in words.
	_, err = relayconn.Dial(context.Background(), addr, alice, relayconn.Options{})
	if re, ok := err.(*relayconn.ConnRefusedError); !ok || re.Reason != wire.ReasonTooManyConns {
		t.Fatalf("third connection: %v", err)
	}
}
