package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wschat/wschat/internal/relayconn"
	"github.com/wschat/wschat/wire"
)

// buildWschat builds the real binary once per test run.
func buildWschat(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wschat")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

type relayProc struct {
	cmd  *exec.Cmd
	addr wire.RelayAddress
	err  *strings.Builder
}

// startRelayProc runs `wschat relay` and reads the address it prints first.
func startRelayProc(t *testing.T, bin string, args ...string) *relayProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"relay"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		for s.Scan() {
			t.Errorf("relay printed more on stdout: %q", s.Text())
		}
	}()
	select {
	case l, ok := <-line:
		if !ok {
			t.Fatalf("relay printed nothing; stderr:\n%s", stderr)
		}
		a, err := wire.ParseRelayAddress(l)
		if err != nil {
			t.Fatalf("first line %q: %v", l, err)
		}
		return &relayProc{cmd: cmd, addr: a, err: stderr}
	case <-time.After(20 * time.Second):
		t.Fatalf("relay did not start; stderr:\n%s", stderr)
	}
	return nil
}

func dialProc(t *testing.T, addr wire.RelayAddress, id *wire.Identity, receive bool) *relayconn.Conn {
	t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		var c *relayconn.Conn
		if c, err = relayconn.Dial(context.Background(), addr, id, relayconn.Options{Receive: receive}); err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("dial: %v", err)
	return nil
}

// registerGone registers id on the relay at addr (a receiving connection,
// closed again) and returns once the relay has seen that connection go:
// an ephemeral frame to id is refused recipient_offline.
func registerGone(t *testing.T, addr wire.RelayAddress, id *wire.Identity) {
	t.Helper()
	c := dialProc(t, addr, id, true)
	c.Close()
	probe, _ := wire.NewIdentity(rand.Reader)
	pc := dialProc(t, addr, probe, false)
	for i := 0; ; i++ {
		pc.SendData(id.Public().ID(), wire.FlagEphemeral, make([]byte, wire.MinEnvelopeSize))
		if e := nextCustody(t, pc); e.Reason == wire.ReasonRecipientOffline {
			return
		} else if i == 100 {
			t.Fatalf("the relay still delivers to a closed connection: %+v", e)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func nextData(t *testing.T, c *relayconn.Conn) relayconn.Incoming {
	t.Helper()
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		in, err := c.Read()
		if err != nil {
			t.Fatal(err)
		}
		if in.Command == nil {
			return in
		}
	}
}

func nextCustody(t *testing.T, c *relayconn.Conn) wire.CustodyEntry {
	t.Helper()
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		in, err := c.Read()
		if err != nil {
			t.Fatal(err)
		}
		if in.Command != nil && in.Command.Op == wire.OpCustody {
			return in.Command.Custody[0]
		}
	}
}

// The relay binary: the address comes first on stdout, the key is made
// once and reused, stored frames survive kill -9, SIGTERM exits 0 after
// telling clients to reconnect.
func TestRelayBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildWschat(t)
	data := t.TempDir()
	r := startRelayProc(t, bin, "--listen", "127.0.0.1:0", "--data", data)
	if fi, err := os.Stat(filepath.Join(data, "relay.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("relay key: %v %v", fi, err)
	}
	_, port, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(r.addr.URL, "ws://"), "/"))
	if port == "0" || port == "" {
		t.Fatalf("address %s shows no real port", r.addr)
	}

	alice, _ := wire.NewIdentity(rand.Reader)
	bob, _ := wire.NewIdentity(rand.Reader)
	registerGone(t, r.addr, bob)
	ac := dialProc(t, r.addr, alice, false)
	for i := 0; i < 3; i++ {
		if _, err := ac.SendData(bob.Public().ID(), 0, make([]byte, wire.MinEnvelopeSize)); err != nil {
			t.Fatal(err)
		}
		if e := nextCustody(t, ac); e.Status != wire.StatusStored {
			t.Fatalf("custody %+v", e)
		}
	}
	// kill -9, then the same data directory and port.
	r.cmd.Process.Signal(syscall.SIGKILL)
	r.cmd.Wait()
	r2 := startRelayProc(t, bin, "--listen", "127.0.0.1:"+port, "--data", data)
	if r2.addr != r.addr {
		t.Fatalf("restarted relay has address %s, was %s", r2.addr, r.addr)
	}
	bc := dialProc(t, r2.addr, bob, true)
	for i := 0; i < 3; i++ {
		in := nextData(t, bc)
		if !in.Header.ID.IsUnnamed() {
			t.Fatalf("stored frame names sender %s", in.Header.ID)
		}
		bc.SendCommand(&wire.Command{Op: wire.OpAck, Acks: []uint64{in.Header.Index}})
	}
	// SIGTERM: Restarting notice, then exit 0.
	r2.cmd.Process.Signal(syscall.SIGTERM)
	sawRestart := false
	for {
		bc.SetReadDeadline(time.Now().Add(10 * time.Second))
		in, err := bc.Read()
		if err != nil {
			break
		}
		if in.Command != nil && in.Command.Op == wire.OpRestarting {
			sawRestart = true
		}
	}
	if !sawRestart {
		t.Error("no Restarting notice before the close")
	}
	err := r2.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("relay exited %d after SIGTERM; stderr:\n%s", ee.ExitCode(), r2.err)
	}
	if strings.Contains(r2.err.String(), "panic") {
		t.Fatalf("stderr:\n%s", r2.err)
	}
}

func TestRelayUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"relay", "--mailbox", "tape"},
		{"relay", "--tls-cert", "x"},
		{"relay", "--ttl", "900h"},
		{"relay", "extra"},
		{"relay", "--no-such-flag"},
	} {
		var out, errb strings.Builder
		if code := Main(args, strings.NewReader(""), &out, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr %q", args, code, exitUsage, errb.String())
		}
		if !strings.HasPrefix(errb.String(), "wschat: ") || out.Len() != 0 {
			t.Errorf("%v: stdout %q stderr %q", args, out.String(), errb.String())
		}
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns a pool
// that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "wschat test relay"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// The relay serves wss with --tls-cert/--tls-key, and its address says so.
func TestRelayBinaryTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildWschat(t)
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	r := startRelayProc(t, bin, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--tls-cert", cert, "--tls-key", key, "--mailbox", "memory")
	if !strings.HasPrefix(r.addr.URL, "wss://127.0.0.1:") {
		t.Fatalf("address %s", r.addr)
	}
	alice, _ := wire.NewIdentity(rand.Reader)
	bob, _ := wire.NewIdentity(rand.Reader)
	bc, err := relayconn.Dial(context.Background(), r.addr, bob, relayconn.Options{Receive: true, TLS: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	ac, err := relayconn.Dial(context.Background(), r.addr, alice, relayconn.Options{TLS: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ac.SendData(bob.Public().ID(), 0, make([]byte, wire.MinEnvelopeSize))
	if in := nextData(t, bc); in.Header.ID != alice.Public().ID() {
		t.Fatalf("frame from %s", in.Header.ID)
	}
	// A client that does not trust the certificate does not connect.
	if _, err := relayconn.Dial(context.Background(), r.addr, alice, relayconn.Options{}); err == nil {
		t.Fatal("connected without trusting the certificate")
	}
}
