package mcp

import (
	"encoding/json"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// FuzzParseArgs: whatever JSON a client sends as tool arguments, parsing
// and every accessor return a value or an argument error, never panic;
// accepted names are only the tool's own.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{`{"to":"alice","text":"hi","wait_delivered":true}`, `{"after":12,"limit":5}`,
		`{"timeout_seconds":1e400}`, `{"after":-1}`, `null`, `[1]`, `{"from":null}`, `{"after":"12"}`} {
		f.Add([]byte(s))
	}
	names := []string{"to", "text", "wait_delivered", "after", "limit", "timeout_seconds", "from"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req mcpgo.CallToolRequest
		req.Params.Name = "fuzz"
		req.Params.Arguments = json.RawMessage(raw)
		a, err := parseArgs(req, "fuzz", names...)
		if err != nil {
			return
		}
		for k := range a.m {
			known := false
			for _, n := range names {
				known = known || k == n
			}
			if !known {
				t.Fatalf("accepted unknown argument %q", k)
			}
		}
		a.str("to")
		a.boolean("wait_delivered")
		a.number("timeout_seconds")
		a.integer("limit")
		a.cursor()
	})
}
