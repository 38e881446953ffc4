package mcp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/wschat/wschat/keys"
)

// argError is a mistake in a tool call's arguments, worded for the model.
type argError struct{ msg string }

func (e argError) Error() string { return e.msg }

func argErrorf(format string, a ...any) error { return argError{fmt.Sprintf(format, a...)} }

// args are one tool call's arguments. Numbers are kept as json.Number so
// that large cursors keep their precision.
type args struct {
	tool string
	m    map[string]any
}

// parseArgs decodes the arguments of a call to tool and refuses names the
// tool does not take (a model's typo should not be silently ignored).
func parseArgs(req mcpgo.CallToolRequest, tool string, names ...string) (args, error) {
	a := args{tool: tool, m: map[string]any{}}
	raw := req.Params.RawArguments
	if len(raw) == 0 && req.Params.Arguments != nil {
		b, err := json.Marshal(req.Params.Arguments)
		if err != nil {
			return a, argErrorf("%s: arguments: %v", tool, err)
		}
		raw = b
	}
	if len(bytes.TrimSpace(raw)) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&a.m); err != nil {
			return a, argErrorf("%s: the arguments must be a JSON object (%v)", tool, err)
		}
	}
	for k, v := range a.m {
		if v == nil {
			delete(a.m, k) // null is the same as absent
			continue
		}
		known := false
		for _, n := range names {
			known = known || n == k
		}
		if !known {
			takes := "no arguments"
			if len(names) > 0 {
				takes = strings.Join(names, ", ")
			}
			return a, argErrorf("%s: unknown argument %q; it takes: %s", tool, k, takes)
		}
	}
	return a, nil
}

// str returns a string argument and whether it was given.
func (a args) str(name string) (string, bool, error) {
	v, ok := a.m[name]
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", true, argErrorf("%s: %q must be a string", a.tool, name)
	}
	return s, true, nil
}

// boolean returns a boolean argument (false when absent).
func (a args) boolean(name string) (bool, error) {
	v, ok := a.m[name]
	if !ok {
		return false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, argErrorf("%s: %q must be true or false", a.tool, name)
	}
	return b, nil
}

// number returns a numeric argument and whether it was given.
func (a args) number(name string) (float64, bool, error) {
	v, ok := a.m[name]
	if !ok {
		return 0, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, true, argErrorf("%s: %q must be a number", a.tool, name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, true, argErrorf("%s: %q must be a number", a.tool, name)
	}
	return f, true, nil
}

// integer returns a whole-number argument and whether it was given.
func (a args) integer(name string) (int64, bool, error) {
	v, ok := a.m[name]
	if !ok {
		return 0, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, true, argErrorf("%s: %q must be a whole number", a.tool, name)
	}
	i, err := n.Int64()
	if err != nil {
		// 12.0 is fine; 12.5 is not.
		f, ferr := n.Float64()
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, true, argErrorf("%s: %q must be a whole number", a.tool, name)
		}
		i = int64(f)
	}
	return i, true, nil
}

// cursor returns the "after" argument: a cursor from an earlier result.
func (a args) cursor() (int64, bool, error) {
	c, ok, err := a.integer("after")
	if err == nil && ok && c < 0 {
		err = argErrorf("%s: \"after\" must be a cursor from an earlier result (0 or more), not %d", a.tool, c)
	}
	return c, ok, err
}

// waitTimeout is how long a waiting tool waits: timeout_seconds when
// given (above 0; capped at MaxWait so the client does not give up
// first), else DefaultWait. capped says the request asked for more.
func waitTimeout(a args) (d time.Duration, capped bool, err error) {
	secs, ok, err := a.number("timeout_seconds")
	if err != nil {
		return 0, false, err
	}
	return capWait(secs, ok, a.tool)
}

func capWait(secs float64, given bool, tool string) (time.Duration, bool, error) {
	if !given {
		return DefaultWait, false, nil
	}
	if !(secs > 0) {
		return 0, false, argErrorf("%s: timeout_seconds must be above 0 (default %d, at most %d); got %v",
			tool, int(DefaultWait.Seconds()), int(MaxWait.Seconds()), secs)
	}
	if secs >= MaxWait.Seconds() {
		return MaxWait, secs > MaxWait.Seconds(), nil
	}
	return time.Duration(secs * float64(time.Second)), false, nil
}

// contact looks up a contact by name, with the known names in the error.
func (s *Server) contact(tool, name string) (keys.Contact, error) {
	c, err := s.book.Get(name)
	if err == nil {
		return c, nil
	}
	known := "none yet (the human adds contacts with `wschat contacts add NAME INVITE`)"
	if list, lerr := s.book.List(); lerr == nil && len(list) > 0 {
		names := make([]string, len(list))
		for i, k := range list {
			names[i] = k.Name
		}
		known = strings.Join(names, ", ")
	}
	return c, argErrorf("%s: unknown contact '%s'; known: %s", tool, name, known)
}

// recipient is the contact named by argument arg, which the agent must be
// allowed to message.
func (s *Server) recipient(a args, arg string) (keys.Contact, error) {
	name, ok, err := a.str(arg)
	if err != nil {
		return keys.Contact{}, err
	}
	if !ok || name == "" {
		return keys.Contact{}, argErrorf("%s: %q is required: the name of a contact (see list_contacts)", a.tool, arg)
	}
	c, err := s.contact(a.tool, name)
	if err != nil {
		return c, err
	}
	if !s.mayMessage(c.Name) {
		return c, argErrorf("%s: this server may not message '%s'; it may message only: %s",
			a.tool, c.Name, strings.Join(s.allowedNames(), ", "))
	}
	return c, nil
}

// text is a message text argument, within the size limit.
func (s *Server) text(a args, arg string) ([]byte, error) {
	t, ok, err := a.str(arg)
	if err != nil {
		return nil, err
	}
	if !ok || strings.TrimSpace(t) == "" {
		return nil, argErrorf("%s: %q is required and must not be empty", a.tool, arg)
	}
	if len(t) > s.opt.MaxText {
		return nil, argErrorf("%s: %q is %d bytes; the limit is %d: shorten it or split it into several messages",
			a.tool, arg, len(t), s.opt.MaxText)
	}
	return []byte(t), nil
}

// from is the optional "from" filter.
func (s *Server) from(a args) (*keys.Contact, error) {
	name, ok, err := a.str("from")
	if err != nil || !ok || name == "" {
		return nil, err
	}
	c, err := s.contact(a.tool, name)
	if err != nil {
		return nil, err
	}
	return &c, nil
}
