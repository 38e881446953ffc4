package mcp_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/wschat/wschat/mcp"
)

// serveHTTP runs the streamable HTTP transport on 127.0.0.1 and returns
// its URL.
func serveHTTP(t *testing.T, p *party, o mcp.HTTPOptions) string {
	t.Helper()
	srv, err := mcp.New(mcp.Config{Client: p.client, Book: p.book, Self: p.self})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	background(t, func(ctx context.Context) {
		if err := srv.ServeListener(ctx, ln, o); err != nil {
			t.Error(err)
		}
	})
	return "http://" + ln.Addr().String() + "/mcp"
}

func TestHTTP(t *testing.T) {
	w := newWorld(t)
	agent := w.party("agent")
	url := serveHTTP(t, agent, mcp.HTTPOptions{Token: "s3cret-token", Origins: []string{"http://localhost:5173"}})

	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	post := func(mod func(*http.Request)) int {
		req, _ := http.NewRequest("POST", url, strings.NewReader(init))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer s3cret-token")
		mod(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, tc := range map[string]struct {
		mod  func(*http.Request)
		want int
	}{
		"ok":             {func(*http.Request) {}, http.StatusOK},
		"lowercase":      {func(r *http.Request) { r.Header.Set("Authorization", "bearer s3cret-token") }, http.StatusOK},
		"allowed origin": {func(r *http.Request) { r.Header.Set("Origin", "http://localhost:5173") }, http.StatusOK},
		"no token":       {func(r *http.Request) { r.Header.Del("Authorization") }, http.StatusUnauthorized},
		"wrong token":    {func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret-tokem") }, http.StatusUnauthorized},
		"basic auth":     {func(r *http.Request) { r.SetBasicAuth("x", "s3cret-token") }, http.StatusUnauthorized},
		"web page":       {func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, http.StatusForbidden},
		"rebinding":      {func(r *http.Request) { r.Host = "evil.example:80" }, http.StatusForbidden},
	} {
		if got := post(tc.mod); got != tc.want {
			t.Errorf("%s: status %d, want %d", name, got, tc.want)
		}
	}

	// A real client with the token: the tools work.
	c, err := client.NewStreamableHttpClient(url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer s3cret-token"}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var ireq mcpgo.InitializeRequest
	ireq.Params.ProtocolVersion = mcpgo.LATEST_PROTOCOL_VERSION
	if _, err := c.Initialize(ctx, ireq); err != nil {
		t.Fatal(err)
	}
	me, _ := ok[mcp.Identity](t, c, "whoami", nil)
	if me.Name != "agent" {
		t.Fatalf("whoami %+v", me)
	}
}

func TestHTTPNeedsToken(t *testing.T) {
	w := newWorld(t)
	agent := w.party("agent")
	srv, err := mcp.New(mcp.Config{Client: agent.client, Book: agent.book, Self: agent.self})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.HTTPHandler(mcp.HTTPOptions{}, "127.0.0.1"); !errors.Is(err, mcp.ErrNoToken) {
		t.Fatalf("err %v", err)
	}
}
