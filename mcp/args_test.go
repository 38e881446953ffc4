package mcp

import (
	"testing"
	"time"
)

// The cap keeps every wait under the ~60 s after which common clients
// give up on a request.
func TestCapWait(t *testing.T) {
	for _, tc := range []struct {
		secs   float64
		given  bool
		want   time.Duration
		capped bool
		err    bool
	}{
		{0, false, DefaultWait, false, false},
		{0.25, true, 250 * time.Millisecond, false, false},
		{30, true, 30 * time.Second, false, false},
		{50, true, MaxWait, false, false},
		{50.5, true, MaxWait, true, false},
		{3600, true, MaxWait, true, false},
		{0, true, 0, false, true},
		{-1, true, 0, false, true},
	} {
		d, capped, err := capWait(tc.secs, tc.given, "wait_for_message")
		if d != tc.want || capped != tc.capped || (err != nil) != tc.err {
			t.Errorf("capWait(%v, %v) = %v, %v, %v", tc.secs, tc.given, d, capped, err)
		}
	}
	if MaxWait >= 60*time.Second || DefaultWait > MaxWait {
		t.Fatal("waits must end before a 60 s client timeout")
	}
}

func TestAllowedHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost:8765": true, "LOCALHOST": true, "127.0.0.1:1": true, "127.1.2.3": true, "[::1]:80": true,
		"agent.lan:8765": true, // the listening host
		"evil.example":   false, "evil.example:8765": false, "": false, "10.0.0.1:8765": false, "localhost.evil.example": false,
	} {
		if got := allowedHost(host, []string{"agent.lan"}); got != want {
			t.Errorf("allowedHost(%q) = %v", host, got)
		}
	}
}

func TestBearer(t *testing.T) {
	for h, want := range map[string]string{"Bearer abc": "abc", "bearer abc ": "abc", "BEARER abc": "abc", "Basic abc": "", "Bearer": "", "": ""} {
		if got, _ := bearer(h); got != want {
			t.Errorf("bearer(%q) = %q", h, got)
		}
	}
}
