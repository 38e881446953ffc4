package mcp_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/wschat/wschat/mcp"
)

// BenchmarkSendMessageInProcess: one send_message tool call through
// mcp-go's client and Server.ServeStdio on pipes, to an offline contact
// (the relay stores it). The figure for the real process over stdio is
// cmd/wschat's BenchmarkMCPSendMessage.
func BenchmarkSendMessageInProcess(b *testing.B) {
	w := newWorld(b)
	agent, bob := w.party("agent"), w.party("bob")
	befriend(b, agent, bob)
	srv, err := mcp.New(mcp.Config{Client: agent.client, Book: agent.book, Self: agent.self, Options: mcp.Options{SendRate: 1e9, SendBurst: 1e6}})
	if err != nil {
		b.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	background(b, func(ctx context.Context) { srv.ServeStdio(ctx, inR, outW) })
	c := client.NewClient(transport.NewIO(outR, inW, io.NopCloser(nil)))
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); inR.Close(); outW.Close() })
	var ireq mcpgo.InitializeRequest
	ireq.Params.ProtocolVersion = mcpgo.LATEST_PROTOCOL_VERSION
	if _, err := c.Initialize(ctx, ireq); err != nil {
		b.Fatal(err)
	}
	var req mcpgo.CallToolRequest
	req.Params.Name = "send_message"
	req.Params.Arguments = map[string]any{"to": "bob", "text": "benchmark message of a few words"}
	time.Sleep(200 * time.Millisecond) // the relay connection is up
	for b.Loop() {
		r, err := c.CallTool(ctx, req)
		if err != nil || r.IsError {
			b.Fatal(err, r)
		}
	}
}
