package wire

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Structured message types (protocol 1, 2027-01). Their bodies are laid out
// here; envelope.go checks them through checkStructured, so Seal refuses to
// send a malformed one and Open refuses to accept one.
//
//	question (TypeQuestion), 1 + Σ(1 + len choice) + len text bytes:
//	  0  1   n: the number of choices, 0..MaxChoices
//	  1  …   n × (len u8 1..MaxChoiceLen ‖ choice, UTF-8), distinct
//	  …  …   the question, UTF-8, at least 1 byte (the rest of the body)
//
//	reply (TypeReply), 17 + len text bytes:
//	  0  16  reply_to: the message id of the message it answers
//	  16 1   choice: 0 none, 1..MaxChoices the chosen option of a question
//	  17 …   text, UTF-8 (the rest); at least 1 byte when choice is 0
//
//	approval_request (TypeApprovalRequest):
//	  0  5   request id: RequestIDLen letters a–z without l
//	  5  8   expires at, unix milliseconds, u64 LE (1..2^53)
//	  13 1   t: tool name length, 1..255
//	  14 t   tool name, UTF-8
//	  …  2   d: description length, u16 LE, 0..MaxApprovalText
//	  …  d   description, UTF-8
//	  …  …   input preview, UTF-8, 0..MaxApprovalText bytes (the rest)
//
//	approval_answer (TypeApprovalAnswer), exactly 22 bytes:
//	  0  16  the message id of the approval_request it answers
//	  16 5   its request id
//	  21 1   behavior: 1 allow, 2 deny
//
// Integers are little-endian like everything else in the envelope.
const (
	MaxChoices       = 8    // choices in one question
	MaxChoiceLen     = 64   // bytes of one choice
	RequestIDLen     = 5    // letters of an approval request id
	MaxApprovalText  = 4096 // bytes of an approval request's description, and of its input preview
	maxToolNameLen   = 255
	replyHeaderSize  = MessageIDSize + 1
	answerSize       = MessageIDSize + RequestIDLen + 1
	approvalFixedLen = RequestIDLen + 8 + 1 + 2 // with an empty tool name, description and preview
)

// ErrStructured wraps every refusal of a structured body; errors.Is on
// ErrInnerMalformed holds too (an envelope carrying one is malformed).
var ErrStructured = fmt.Errorf("%w: structured body", ErrInnerMalformed)

func structuredErr(t MessageType, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrStructured, t, fmt.Sprintf(format, args...))
}

// Question asks a person something, optionally with choices to pick from.
type Question struct {
	Text    string   // the question; not empty
	Choices []string // at most MaxChoices, each 1..MaxChoiceLen bytes, distinct
}

// MarshalBinary lays out a TypeQuestion body.
func (q Question) MarshalBinary() ([]byte, error) {
	b := []byte{byte(len(q.Choices))}
	for _, c := range q.Choices {
		b = append(b, byte(len(c)))
		b = append(b, c...)
	}
	b = append(b, q.Text...)
	if _, err := ParseQuestion(b); err != nil {
		return nil, err
	}
	return b, nil
}

// ParseQuestion reads a TypeQuestion body strictly.
func ParseQuestion(b []byte) (Question, error) {
	var q Question
	if len(b) < 2 {
		return q, structuredErr(TypeQuestion, "%d bytes", len(b))
	}
	n := int(b[0])
	if n > MaxChoices {
		return q, structuredErr(TypeQuestion, "%d choices, at most %d", n, MaxChoices)
	}
	rest := b[1:]
	for i := 0; i < n; i++ {
		if len(rest) < 1 {
			return q, structuredErr(TypeQuestion, "truncated choice %d", i+1)
		}
		l := int(rest[0])
		if l < 1 || l > MaxChoiceLen || len(rest) < 1+l {
			return q, structuredErr(TypeQuestion, "choice %d: length %d", i+1, l)
		}
		c := string(rest[1 : 1+l])
		if !utf8.ValidString(c) {
			return q, structuredErr(TypeQuestion, "choice %d is not UTF-8", i+1)
		}
		if slices.Contains(q.Choices, c) {
			return q, structuredErr(TypeQuestion, "choice %d repeats choice %q", i+1, c)
		}
		q.Choices = append(q.Choices, c)
		rest = rest[1+l:]
	}
	if len(rest) == 0 || !utf8.Valid(rest) {
		return q, structuredErr(TypeQuestion, "the question is empty or not UTF-8")
	}
	q.Text = string(rest)
	return q, nil
}

// Reply answers an earlier message (any type; typically a question).
type Reply struct {
	To     MessageID // the message it answers
	Choice int       // 0: none; 1..MaxChoices: the option chosen (1 is the first)
	Text   string    // not empty when Choice is 0
}

// MarshalBinary lays out a TypeReply body.
func (r Reply) MarshalBinary() ([]byte, error) {
	if r.Choice < 0 || r.Choice > MaxChoices {
		return nil, structuredErr(TypeReply, "choice %d", r.Choice)
	}
	b := make([]byte, 0, replyHeaderSize+len(r.Text))
	b = append(b, r.To[:]...)
	b = append(b, byte(r.Choice))
	b = append(b, r.Text...)
	if _, err := ParseReply(b); err != nil {
		return nil, err
	}
	return b, nil
}

// ParseReply reads a TypeReply body strictly.
func ParseReply(b []byte) (Reply, error) {
	var r Reply
	if len(b) < replyHeaderSize {
		return r, structuredErr(TypeReply, "%d bytes", len(b))
	}
	copy(r.To[:], b)
	r.Choice = int(b[MessageIDSize])
	text := b[replyHeaderSize:]
	switch {
	case r.Choice > MaxChoices:
		return r, structuredErr(TypeReply, "choice %d, at most %d", r.Choice, MaxChoices)
	case !utf8.Valid(text):
		return r, structuredErr(TypeReply, "text is not UTF-8")
	case r.Choice == 0 && len(text) == 0:
		return r, structuredErr(TypeReply, "neither a choice nor text")
	}
	r.Text = string(text)
	return r, nil
}

// ValidRequestID reports whether s is an approval request id: RequestIDLen
// lower-case letters a–z other than l (Claude Code's permission request
// ids; l is left out because it reads like 1 or I).
func ValidRequestID(s string) bool {
	if len(s) != RequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 'a' || c > 'z' || c == 'l' {
			return false
		}
	}
	return true
}

// ApprovalRequest asks a person to allow or deny one tool use of an agent.
type ApprovalRequest struct {
	RequestID    string    // ValidRequestID
	ExpiresAt    time.Time // after this the answer is refused; millisecond precision
	Tool         string    // the tool's name, 1..255 bytes
	Description  string    // what the call does, 0..MaxApprovalText bytes
	InputPreview string    // the call's arguments (often JSON, truncated), 0..MaxApprovalText bytes
}

// MarshalBinary lays out a TypeApprovalRequest body.
func (a ApprovalRequest) MarshalBinary() ([]byte, error) {
	ms := a.ExpiresAt.UnixMilli()
	if ms <= 0 || ms > 1<<53 {
		return nil, structuredErr(TypeApprovalRequest, "expiry %v", a.ExpiresAt)
	}
	if len(a.Tool) > maxToolNameLen || len(a.Description) > MaxApprovalText {
		return nil, structuredErr(TypeApprovalRequest, "tool name or description too long")
	}
	b := make([]byte, 0, approvalFixedLen+len(a.Tool)+len(a.Description)+len(a.InputPreview))
	b = append(b, a.RequestID...)
	b = binary.LittleEndian.AppendUint64(b, uint64(ms))
	b = append(b, byte(len(a.Tool)))
	b = append(b, a.Tool...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(a.Description)))
	b = append(b, a.Description...)
	b = append(b, a.InputPreview...)
	if _, err := ParseApprovalRequest(b); err != nil {
		return nil, err
	}
	return b, nil
}

// ParseApprovalRequest reads a TypeApprovalRequest body strictly.
func ParseApprovalRequest(b []byte) (ApprovalRequest, error) {
	var a ApprovalRequest
	t := TypeApprovalRequest
	if len(b) < approvalFixedLen+1 {
		return a, structuredErr(t, "%d bytes", len(b))
	}
	if !ValidRequestID(string(b[:RequestIDLen])) {
		return a, structuredErr(t, "request id %q", b[:RequestIDLen])
	}
	a.RequestID = string(b[:RequestIDLen])
	ms := binary.LittleEndian.Uint64(b[RequestIDLen:])
	if ms == 0 || ms > 1<<53 {
		return a, structuredErr(t, "expiry %d", ms)
	}
	a.ExpiresAt = time.UnixMilli(int64(ms))
	rest := b[RequestIDLen+8:]
	tl := int(rest[0])
	if tl < 1 || len(rest) < 1+tl+2 {
		return a, structuredErr(t, "tool name length %d", tl)
	}
	a.Tool = string(rest[1 : 1+tl])
	rest = rest[1+tl:]
	dl := int(binary.LittleEndian.Uint16(rest))
	if dl > MaxApprovalText || len(rest) < 2+dl {
		return a, structuredErr(t, "description length %d", dl)
	}
	a.Description = string(rest[2 : 2+dl])
	a.InputPreview = string(rest[2+dl:])
	switch {
	case len(a.InputPreview) > MaxApprovalText:
		return a, structuredErr(t, "input preview of %d bytes, at most %d", len(a.InputPreview), MaxApprovalText)
	case !utf8.ValidString(a.Tool) || !utf8.ValidString(a.Description) || !utf8.ValidString(a.InputPreview):
		return a, structuredErr(t, "text is not UTF-8")
	}
	return a, nil
}

// ApprovalAnswer is a person's verdict on one approval request. The
// envelope's signature binds it to the person; Request binds it to the
// request message they were sent.
type ApprovalAnswer struct {
	Request   MessageID // the approval_request message answered
	RequestID string    // its request id
	Allow     bool      // allow (true) or deny
}

// Approval behaviors on the wire.
const (
	behaviorAllow = 1
	behaviorDeny  = 2
)

// MarshalBinary lays out a TypeApprovalAnswer body.
func (a ApprovalAnswer) MarshalBinary() ([]byte, error) {
	if !ValidRequestID(a.RequestID) {
		return nil, structuredErr(TypeApprovalAnswer, "request id %q", a.RequestID)
	}
	b := make([]byte, 0, answerSize)
	b = append(b, a.Request[:]...)
	b = append(b, a.RequestID...)
	if a.Allow {
		return append(b, behaviorAllow), nil
	}
	return append(b, behaviorDeny), nil
}

// ParseApprovalAnswer reads a TypeApprovalAnswer body strictly.
func ParseApprovalAnswer(b []byte) (ApprovalAnswer, error) {
	var a ApprovalAnswer
	if len(b) != answerSize {
		return a, structuredErr(TypeApprovalAnswer, "%d bytes, want %d", len(b), answerSize)
	}
	copy(a.Request[:], b)
	a.RequestID = string(b[MessageIDSize : MessageIDSize+RequestIDLen])
	if !ValidRequestID(a.RequestID) {
		return a, structuredErr(TypeApprovalAnswer, "request id %q", a.RequestID)
	}
	switch b[answerSize-1] {
	case behaviorAllow:
		a.Allow = true
	case behaviorDeny:
	default:
		return a, structuredErr(TypeApprovalAnswer, "behavior %d", b[answerSize-1])
	}
	return a, nil
}

// Behavior is "allow" or "deny", as Claude Code names the verdicts.
func (a ApprovalAnswer) Behavior() string {
	if a.Allow {
		return "allow"
	}
	return "deny"
}

// checkStructured enforces the body rules of the structured types; other
// types pass.
func checkStructured(t MessageType, b []byte) error {
	var err error
	switch t {
	case TypeQuestion:
		_, err = ParseQuestion(b)
	case TypeReply:
		_, err = ParseReply(b)
	case TypeApprovalRequest:
		_, err = ParseApprovalRequest(b)
	case TypeApprovalAnswer:
		_, err = ParseApprovalAnswer(b)
	}
	return err
}

// ReplyTo is the message a message answers: a reply's reply_to, an
// approval answer's request. ok is false for other types (and for a body
// that does not parse).
func ReplyTo(t MessageType, body []byte) (MessageID, bool) {
	switch t {
	case TypeReply:
		if r, err := ParseReply(body); err == nil {
			return r.To, true
		}
	case TypeApprovalAnswer:
		if a, err := ParseApprovalAnswer(body); err == nil {
			return a.Request, true
		}
	}
	return MessageID{}, false
}
