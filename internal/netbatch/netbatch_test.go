package netbatch

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// recorder is a net.Conn that records each Write and deadline call.
type recorder struct {
	net.Conn
	mu        sync.Mutex
	writes    [][]byte
	deadlines int
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recorder) SetDeadline(time.Time) error { return nil }

func (r *recorder) SetWriteDeadline(time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deadlines++
	return nil
}

func TestBatch(t *testing.T) {
	r := &recorder{}
	c := New(r)
	c.Write([]byte("a")) // outside a batch: straight through
	c.Begin()
	c.Begin() // already open: no-op
	c.Write([]byte("bc"))
	c.Write([]byte("d"))
	if len(r.writes) != 1 {
		t.Fatalf("writes inside a batch reached the connection: %q", r.writes)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil { // closed already: no-op
		t.Fatal(err)
	}
	c.Write([]byte("e"))
	want := []string{"a", "bcd", "e"}
	if len(r.writes) != len(want) {
		t.Fatalf("writes %q, want %q", r.writes, want)
	}
	for i, w := range want {
		if string(r.writes[i]) != w {
			t.Fatalf("write %d = %q, want %q", i, r.writes[i], w)
		}
	}
}

func TestBatchBound(t *testing.T) {
	r := &recorder{}
	c := New(r)
	c.Begin()
	chunk := bytes.Repeat([]byte("x"), 1000)
	total := 0
	for total < 3*FlushAt {
		c.Write(chunk)
		total += len(chunk)
	}
	c.Flush()
	got := 0
	for _, w := range r.writes {
		if len(w) > FlushAt+len(chunk) {
			t.Errorf("one write of %d bytes, bound %d", len(w), FlushAt)
		}
		got += len(w)
	}
	if got != total || len(r.writes) < 3 {
		t.Fatalf("%d bytes in %d writes, want %d bytes in at least 3", got, len(r.writes), total)
	}
}

func TestWriteDeadlineOnce(t *testing.T) {
	r := &recorder{}
	c := New(r)
	d := time.Now().Add(time.Second)
	for range 10 {
		c.SetWriteDeadline(d)
	}
	c.SetWriteDeadline(d.Add(time.Millisecond))
	c.SetWriteDeadline(time.Time{})
	c.SetWriteDeadline(time.Time{})
	if r.deadlines != 3 {
		t.Fatalf("%d deadline updates reached the connection, want 3", r.deadlines)
	}
	// SetDeadline sets the write deadline too: the same one after it is
	// skipped, another is not.
	c.SetDeadline(d)
	c.SetWriteDeadline(d)
	c.SetWriteDeadline(time.Time{})
	if r.deadlines != 4 {
		t.Fatalf("%d deadline updates reached the connection, want 4", r.deadlines)
	}
}

// TestConcurrent writes from a batching writer and from another goroutine
// (as a WebSocket's control frames do) over a real pipe: every byte
// arrives, and a write is never split.
func TestConcurrent(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	c := New(a)
	got := make(chan []byte)
	go func() {
		var all []byte
		buf := make([]byte, 4096)
		for {
			n, err := b.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				got <- all
				return
			}
		}
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 100 {
			c.Begin()
			c.Write([]byte("[batch]"))
			c.Write([]byte("[batch]"))
			c.Flush()
		}
	}()
	go func() {
		defer wg.Done()
		for range 100 {
			c.Write([]byte("<ctl>"))
		}
	}()
	wg.Wait()
	a.Close()
	all := <-got
	if n := bytes.Count(all, []byte("[batch]")); n != 200 {
		t.Errorf("%d batch writes arrived, want 200", n)
	}
	if n := bytes.Count(all, []byte("<ctl>")); n != 100 {
		t.Errorf("%d control writes arrived, want 100", n)
	}
}

// A Hijacker gives the server a Conn, and Dialer the client: a batch the
// server writes arrives whole at the client.
func TestHijackerAndDialer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &Hijacker{ResponseWriter: w}
		c, _, err := hj.Hijack()
		if err != nil || c != hj.Conn {
			t.Errorf("hijack: %v", err)
			return
		}
		defer c.Close()
		hj.Conn.Begin()
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"))
		c.Write([]byte("ok"))
		if err := hj.Conn.Flush(); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	var got *Conn
	client := &http.Client{Transport: &http.Transport{DialContext: Dialer(func(c *Conn) { got = c })}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" || got == nil {
		t.Fatalf("body %q, dialed conn %v", body, got)
	}
	if _, _, err := (&Hijacker{ResponseWriter: httptest.NewRecorder()}).Hijack(); err == nil {
		t.Fatal("hijacked a writer that cannot be hijacked")
	}
}
