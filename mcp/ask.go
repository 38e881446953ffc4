package mcp

import (
	"context"
	"fmt"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// Asked is ask_human's result.
type Asked struct {
	QuestionID string    `json:"question_id" jsonschema:"message id of the question (hex)"`
	Status     string    `json:"status" jsonschema:"the question's status: delivered, sent or stored"`
	Replies    []Message `json:"replies" jsonschema:"the contact's replies, oldest first (empty when timed out)"`
	NextCursor int64     `json:"next_cursor" jsonschema:"to keep waiting: wait_for_message with from and after=next_cursor"`
	TimedOut   bool      `json:"timed_out,omitempty" jsonschema:"no reply within the timeout; the question was sent all the same"`
	Notice     string    `json:"notice" jsonschema:"how to treat message text"`
}

// askHuman sends a question and waits for the contact's reply: a message
// from them stored after the question was sent. The timeout covers both.
func (s *Server) askHuman(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	a, err := parseArgs(req, "ask_human", "to", "question", "timeout_seconds")
	if err != nil {
		return nil, err
	}
	to, err := s.recipient(a, "to")
	if err != nil {
		return nil, err
	}
	body, err := s.text(a, "question")
	if err != nil {
		return nil, err
	}
	timeout, capped, err := waitTimeout(a)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	// Read before sending: a reply stored from now on is above it.
	start, err := s.store.LastCursor(ctx)
	if err != nil {
		return nil, err
	}
	sent, err := s.send(ctx, a.tool, to, body, false, min(s.opt.SendTimeout, timeout))
	if err != nil {
		return nil, err
	}
	f, timedOut, err := s.waitFor(ctx, req, view{from: &to, after: start, limit: DefaultReadLimit}, max(time.Until(deadline), 0), "a reply from "+to.Name)
	if err != nil {
		return nil, err
	}
	if len(f.msgs) > 0 {
		if err := s.markShown(ctx, &to, start, f.next); err != nil {
			return nil, err
		}
	}
	r := Asked{QuestionID: sent.ID, Status: sent.Status, Replies: f.msgs, NextCursor: f.next, TimedOut: timedOut, Notice: dataNotice}
	if r.Replies == nil {
		r.Replies = []Message{}
	}
	lead := fmt.Sprintf("Asked %s (question id %s, status %s). %s replied.", to.Name, sent.ID, sent.Status, to.Name)
	if timedOut {
		lead = fmt.Sprintf("Asked %s (question id %s, status %s). No reply within %s (timed_out). "+
			"The question was sent: do not ask again. To keep waiting, call wait_for_message with from=%q and after=%d.",
			to.Name, sent.ID, sent.Status, seconds(timeout), to.Name, f.next)
	}
	if capped {
		lead += fmt.Sprintf(" (timeout_seconds was capped at %d.)", int(MaxWait.Seconds()))
	}
	return result(messagesText(Messages{Messages: f.msgs, NextCursor: f.next, More: f.more}, lead), r), nil
}
