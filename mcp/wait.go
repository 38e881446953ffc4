package mcp

import (
	"context"
	"fmt"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// waitFor looks at the store until v selects a message or timeout passes.
// It wakes when this process stores something (Client.Changed) and every
// Recheck, since other wschat processes of the identity write the store
// too; it never sleeps in a loop. While it waits it sends progress
// notifications, if the request asked for them. On timeout it returns
// what the last look found: no messages and the cursor to wait after.
func (s *Server) waitFor(ctx context.Context, req mcpgo.CallToolRequest, v view, timeout time.Duration, what string) (fetched, bool, error) {
	start := time.Now()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	recheck := time.NewTicker(s.opt.Recheck)
	defer recheck.Stop()
	p := newProgress(ctx, req, timeout, what)
	var tick <-chan time.Time
	if p != nil {
		t := time.NewTicker(s.opt.ProgressInterval)
		defer t.Stop()
		tick = t.C
		p.send(0)
	}
	for {
		changed := s.client.Changed() // before looking, so no change is missed
		f, err := s.look(ctx, v)
		if err != nil || len(f.msgs) > 0 {
			return f, false, err
		}
		if !v.unread {
			v.after = f.next
		}
		select {
		case <-changed:
		case <-recheck.C:
		case <-tick:
			p.send(time.Since(start))
		case <-timer.C:
			return f, true, nil
		case <-ctx.Done():
			return f, false, ctx.Err()
		}
	}
}

// progress sends notifications/progress for one request.
type progress struct {
	ctx   context.Context
	srv   *server.MCPServer
	token mcpgo.ProgressToken
	total time.Duration
	what  string
	last  float64
}

// newProgress returns nil when the request did not ask for progress.
func newProgress(ctx context.Context, req mcpgo.CallToolRequest, total time.Duration, what string) *progress {
	srv := server.ServerFromContext(ctx)
	if req.Params.Meta == nil || req.Params.Meta.ProgressToken == nil || srv == nil {
		return nil
	}
	return &progress{ctx: ctx, srv: srv, token: req.Params.Meta.ProgressToken, total: total, what: what, last: -1}
}

func (p *progress) send(elapsed time.Duration) {
	v := elapsed.Seconds()
	if v <= p.last {
		v = p.last + 0.001 // progress must increase
	}
	p.last = v
	p.srv.SendNotificationToClient(p.ctx, string(mcpgo.MethodNotificationProgress), map[string]any{
		"progressToken": p.token,
		"progress":      v,
		"total":         p.total.Seconds(),
		"message":       fmt.Sprintf("waiting for %s: %.0f s of %.0f s", p.what, v, p.total.Seconds()),
	})
}
