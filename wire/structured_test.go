package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestStructuredRoundTrip(t *testing.T) {
	exp := time.UnixMilli(fixedTime.UnixMilli() + 600_000)
	cases := []struct {
		typ  MessageType
		body func() ([]byte, error)
	}{
		{TypeQuestion, Question{Text: "Merge to main?", Choices: []string{"yes", "no", "later"}}.MarshalBinary},
		{TypeQuestion, Question{Text: "What next?"}.MarshalBinary},
		{TypeQuestion, Question{Text: "max", Choices: []string{"1", "2", "3", "4", "5", "6", "7", strings.Repeat("é", 32)}}.MarshalBinary},
		{TypeReply, Reply{To: MessageID{1}, Choice: 2, Text: "no"}.MarshalBinary},
		{TypeReply, Reply{To: MessageID{1}, Choice: 1}.MarshalBinary},
		{TypeReply, Reply{To: MessageID{1}, Text: "free text"}.MarshalBinary},
		{TypeApprovalRequest, ApprovalRequest{RequestID: "abcde", ExpiresAt: exp, Tool: "Bash", Description: "list files", InputPreview: `{"command":"ls"}`}.MarshalBinary},
		{TypeApprovalRequest, ApprovalRequest{RequestID: "zzzzz", ExpiresAt: exp, Tool: "T"}.MarshalBinary},
		{TypeApprovalAnswer, ApprovalAnswer{Request: MessageID{9}, RequestID: "abcde", Allow: true}.MarshalBinary},
		{TypeApprovalAnswer, ApprovalAnswer{Request: MessageID{9}, RequestID: "kmnop"}.MarshalBinary},
	}
	alice, bob := fixedIdentity(t, 1), fixedIdentity(t, 2)
	ab, _ := alice.Pair(bob.Public())
	ba, _ := bob.Pair(alice.Public())
	for i, c := range cases {
		b, err := c.body()
		if err != nil {
			t.Fatalf("%d %s: %v", i, c.typ, err)
		}
		if err := checkStructured(c.typ, b); err != nil {
			t.Fatalf("%d %s: %v", i, c.typ, err)
		}
		// Re-encoding the parsed body gives back the same bytes.
		var again []byte
		switch c.typ {
		case TypeQuestion:
			q, _ := ParseQuestion(b)
			again, err = q.MarshalBinary()
		case TypeReply:
			r, _ := ParseReply(b)
			again, err = r.MarshalBinary()
		case TypeApprovalRequest:
			a, _ := ParseApprovalRequest(b)
			again, err = a.MarshalBinary()
		case TypeApprovalAnswer:
			a, _ := ParseApprovalAnswer(b)
			again, err = a.MarshalBinary()
		}
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%d %s: re-encodes as %x, %v", i, c.typ, again, err)
		}
		// And it travels in an envelope.
		env, err := ab.Seal(nil, &Message{SentAt: fixedTime, Type: c.typ, Body: b}, detRand("structured"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := ba.Open(env)
		if err != nil || m.Type != c.typ || !bytes.Equal(m.Body, b) {
			t.Fatalf("%d %s: opened %+v, %v", i, c.typ, m, err)
		}
		if !c.typ.Acknowledged() || c.typ.Receipt() || c.typ.Ephemeral() {
			t.Fatalf("%s: acknowledged %v", c.typ, c.typ.Acknowledged())
		}
	}
}

func TestStructuredRefused(t *testing.T) {
	exp := fixedTime.Add(time.Minute)
	req := func(a ApprovalRequest) []byte {
		if a.RequestID == "" {
			a.RequestID = "abcde"
		}
		if a.ExpiresAt.IsZero() {
			a.ExpiresAt = exp
		}
		if a.Tool == "" {
			a.Tool = "Bash"
		}
		// Laid out by hand, so that bodies the encoder refuses can be made.
		b := append([]byte(a.RequestID), make([]byte, 8)...)
		for i := 0; i < 8; i++ {
			b[len(a.RequestID)+i] = byte(uint64(a.ExpiresAt.UnixMilli()) >> (8 * i))
		}
		b = append(b, byte(len(a.Tool)))
		b = append(b, a.Tool...)
		b = append(b, byte(len(a.Description)), byte(len(a.Description)>>8))
		b = append(b, a.Description...)
		return append(b, a.InputPreview...)
	}
	good, _ := ApprovalRequest{RequestID: "abcde", ExpiresAt: exp, Tool: "Bash"}.MarshalBinary()
	if !bytes.Equal(req(ApprovalRequest{}), good) {
		t.Fatal("the hand layout is not the encoder's")
	}
	id := bytes.Repeat([]byte{7}, MessageIDSize)
	cases := []struct {
		name string
		typ  MessageType
		body []byte
	}{
		{"question empty", TypeQuestion, nil},
		{"question without text", TypeQuestion, []byte{0}},
		{"question without text after choices", TypeQuestion, []byte{1, 1, 'a'}},
		{"question 9 choices", TypeQuestion, append([]byte{9}, bytes.Repeat([]byte{1, 'a'}, 9)...)},
		{"question empty choice", TypeQuestion, []byte{1, 0, 'q'}},
		{"question long choice", TypeQuestion, append(append([]byte{1, 65}, bytes.Repeat([]byte{'a'}, 65)...), 'q')},
		{"question truncated choice", TypeQuestion, []byte{1, 5, 'a', 'b'}},
		{"question repeated choice", TypeQuestion, []byte{2, 1, 'a', 1, 'a', 'q'}},
		{"question choice not utf8", TypeQuestion, []byte{1, 1, 0xff, 'q'}},
		{"question text not utf8", TypeQuestion, []byte{0, 0xc3}},
		{"reply short", TypeReply, id},
		{"reply nothing", TypeReply, append(id, 0)},
		{"reply choice 9", TypeReply, append(id, 9, 'x')},
		{"reply not utf8", TypeReply, append(id, 0, 0xff)},
		{"request short", TypeApprovalRequest, good[:len(good)-1]},
		{"request id with l", TypeApprovalRequest, req(ApprovalRequest{RequestID: "abcdl"})},
		{"request id upper", TypeApprovalRequest, req(ApprovalRequest{RequestID: "ABCDE"})},
		{"request id digit", TypeApprovalRequest, req(ApprovalRequest{RequestID: "abcd1"})},
		{"request no expiry", TypeApprovalRequest, req(ApprovalRequest{ExpiresAt: time.UnixMilli(0).Add(time.Nanosecond)})},
		{"request tool truncated", TypeApprovalRequest, good[:len(good)-2]},
		{"request description truncated", TypeApprovalRequest, append(req(ApprovalRequest{})[:len(good)-2], 5, 0, 'a')},
		{"request description long", TypeApprovalRequest, req(ApprovalRequest{Description: strings.Repeat("a", MaxApprovalText+1)})},
		{"request preview long", TypeApprovalRequest, req(ApprovalRequest{InputPreview: strings.Repeat("a", MaxApprovalText+1)})},
		{"request tool not utf8", TypeApprovalRequest, req(ApprovalRequest{Tool: "\xff"})},
		{"request preview not utf8", TypeApprovalRequest, req(ApprovalRequest{InputPreview: "\xc3"})},
		{"answer short", TypeApprovalAnswer, append(id, "abcde"...)},
		{"answer long", TypeApprovalAnswer, append(append(id, "abcde"...), 1, 0)},
		{"answer behavior 0", TypeApprovalAnswer, append(append(id, "abcde"...), 0)},
		{"answer behavior 3", TypeApprovalAnswer, append(append(id, "abcde"...), 3)},
		{"answer bad id", TypeApprovalAnswer, append(append(id, "abcdl"...), 1)},
	}
	alice, bob := fixedIdentity(t, 1), fixedIdentity(t, 2)
	ab, _ := alice.Pair(bob.Public())
	for _, c := range cases {
		err := checkStructured(c.typ, c.body)
		if !errors.Is(err, ErrStructured) || !errors.Is(err, ErrInnerMalformed) {
			t.Errorf("%s: %v", c.name, err)
		}
		if _, err := ab.Seal(nil, &Message{SentAt: fixedTime, Type: c.typ, Body: c.body}, detRand("x")); !errors.Is(err, ErrInnerMalformed) {
			t.Errorf("%s: sealed (%v)", c.name, err)
		}
	}
	// The encoders refuse what they cannot lay out.
	for i, f := range []func() ([]byte, error){
		Question{Text: "q", Choices: []string{"a", "a"}}.MarshalBinary,
		Question{}.MarshalBinary,
		Reply{Choice: 9, Text: "x"}.MarshalBinary,
		Reply{Choice: -1, Text: "x"}.MarshalBinary,
		ApprovalRequest{RequestID: "abcde", Tool: "T"}.MarshalBinary,
		ApprovalRequest{RequestID: "abcde", ExpiresAt: exp, Tool: strings.Repeat("t", 256)}.MarshalBinary,
		ApprovalRequest{RequestID: "abcde", ExpiresAt: exp}.MarshalBinary,
		ApprovalAnswer{RequestID: "abc"}.MarshalBinary,
	} {
		if b, err := f(); err == nil {
			t.Errorf("encoder %d made %x", i, b)
		}
	}
}

func TestValidRequestID(t *testing.T) {
	for s, want := range map[string]bool{"abcde": true, "kmnop": true, "zzzzz": true, "abcdl": false, "abcd": false,
		"abcdef": false, "Abcde": false, "abcd1": false, "abcd ": false, "": false} {
		if ValidRequestID(s) != want {
			t.Errorf("%q: %v", s, !want)
		}
	}
}

func TestReplyTo(t *testing.T) {
	r, _ := Reply{To: MessageID{1, 2}, Text: "x"}.MarshalBinary()
	if id, ok := ReplyTo(TypeReply, r); !ok || id != (MessageID{1, 2}) {
		t.Fatal(id, ok)
	}
	a, _ := ApprovalAnswer{Request: MessageID{3}, RequestID: "abcde"}.MarshalBinary()
	if id, ok := ReplyTo(TypeApprovalAnswer, a); !ok || id != (MessageID{3}) {
		t.Fatal(id, ok)
	}
	if _, ok := ReplyTo(TypeText, r); ok {
		t.Fatal("text names a message")
	}
}

// The structured vectors live in a file of their own (the connection's
// vectors in golden-v1.txt stay as they were).
const goldenStructuredFile = "testdata/golden-v1-structured.txt"

// goldenStructured: each body, and alice's envelope to bob carrying it,
// with message ids 50 51 … 5f, 60 61 …, and so on.
func goldenStructured(t *testing.T) []vector {
	alice, bob := fixedIdentity(t, 1), fixedIdentity(t, 2)
	ab, err := alice.Pair(bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	var question, request MessageID
	for i := range question {
		question[i], request[i] = byte(0x50+i), byte(0x70+i)
	}
	bodies := []struct {
		name string
		typ  MessageType
		make func() ([]byte, error)
	}{
		{"question", TypeQuestion, Question{Text: "Merge to main?", Choices: []string{"yes", "no", "after the tests"}}.MarshalBinary},
		{"reply", TypeReply, Reply{To: question, Choice: 3, Text: "after the tests"}.MarshalBinary},
		{"approval_request", TypeApprovalRequest, ApprovalRequest{RequestID: "abcde", ExpiresAt: fixedTime.Add(10 * time.Minute),
			Tool: "Bash", Description: "Run the test suite", InputPreview: `{"command":"go test ./..."}`}.MarshalBinary},
		{"approval_answer", TypeApprovalAnswer, ApprovalAnswer{Request: request, RequestID: "abcde", Allow: true}.MarshalBinary},
	}
	var out []vector
	for i, v := range bodies {
		b, err := v.make()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, vector{"body_" + v.name, hex.EncodeToString(b)})
		m := &Message{SentAt: fixedTime, Type: v.typ, Body: b}
		for j := range m.ID {
			m.ID[j] = byte(0x50 + 0x10*i + j)
		}
		env, err := ab.Seal(nil, m, detRand("golden "+v.name))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, vector{"envelope_alice_to_bob_" + v.name, hex.EncodeToString(env)})
	}
	return out
}

func TestGoldenStructured(t *testing.T) {
	got := goldenStructured(t)
	if *update {
		var b strings.Builder
		b.WriteString("# wschat structured messages (protocol 1, 2027-01): golden vectors (hex).\n")
		b.WriteString("# expect: ok — the body of each type, and alice's envelope to bob carrying it, from the\n")
		b.WriteString("# fixed keys of golden-v1.txt (golden_test.go), sent at 2026-11-23T12:00:00Z, message ids\n")
		b.WriteString("# 50 51 … 5f (question), 60 … 6f (reply), 70 … 7f (approval_request), 80 … 8f (approval_answer).\n")
		for _, v := range got {
			fmt.Fprintf(&b, "%s: %s\n", v.name, v.hex)
		}
		if err := os.WriteFile(goldenStructuredFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := readGoldenFile(t, goldenStructuredFile)
	if len(want) != len(got) {
		t.Fatalf("%s has %d vectors, code makes %d", goldenStructuredFile, len(want), len(got))
	}
	for _, v := range got {
		if want[v.name] != v.hex {
			t.Errorf("%s drifted:\n got  %s\n want %s", v.name, v.hex, want[v.name])
		}
	}
}

// TestGoldenStructuredDecode opens the stored envelopes and reads the
// stored bodies, field by field.
func TestGoldenStructuredDecode(t *testing.T) {
	g := readGoldenFile(t, goldenStructuredFile)
	alice, bob := fixedIdentity(t, 1), fixedIdentity(t, 2)
	ba, _ := bob.Pair(alice.Public())
	open := func(name string, typ MessageType, id byte) []byte {
		env, _ := hex.DecodeString(g["envelope_alice_to_bob_"+name])
		m, err := ba.Open(env)
		if err != nil || m.Type != typ || m.ID[0] != id || !m.SentAt.Equal(fixedTime) {
			t.Fatalf("%s: %+v, %v", name, m, err)
		}
		body, _ := hex.DecodeString(g["body_"+name])
		if !bytes.Equal(m.Body, body) {
			t.Fatalf("%s: envelope body %x, body vector %x", name, m.Body, body)
		}
		return body
	}
	q, err := ParseQuestion(open("question", TypeQuestion, 0x50))
	if err != nil || q.Text != "Merge to main?" || strings.Join(q.Choices, "|") != "yes|no|after the tests" {
		t.Fatalf("question %+v, %v", q, err)
	}
	r, err := ParseReply(open("reply", TypeReply, 0x60))
	if err != nil || r.To[0] != 0x50 || r.To[15] != 0x5f || r.Choice != 3 || r.Text != "after the tests" {
		t.Fatalf("reply %+v, %v", r, err)
	}
	a, err := ParseApprovalRequest(open("approval_request", TypeApprovalRequest, 0x70))
	if err != nil || a.RequestID != "abcde" || !a.ExpiresAt.Equal(fixedTime.Add(10*time.Minute)) || a.Tool != "Bash" ||
		a.Description != "Run the test suite" || a.InputPreview != `{"command":"go test ./..."}` {
		t.Fatalf("approval request %+v, %v", a, err)
	}
	v, err := ParseApprovalAnswer(open("approval_answer", TypeApprovalAnswer, 0x80))
	if err != nil || v.Request[0] != 0x70 || v.RequestID != "abcde" || !v.Allow || v.Behavior() != "allow" {
		t.Fatalf("approval answer %+v, %v", v, err)
	}
}

// FuzzStructured: no body panics a parser, and whatever one accepts
// re-encodes to the same bytes.
func FuzzStructured(f *testing.F) {
	for _, mk := range []func() ([]byte, error){
		Question{Text: "q?", Choices: []string{"a", "b"}}.MarshalBinary,
		Reply{To: MessageID{1}, Choice: 1, Text: "a"}.MarshalBinary,
		ApprovalRequest{RequestID: "abcde", ExpiresAt: fixedTime, Tool: "Bash", Description: "d", InputPreview: "{}"}.MarshalBinary,
		ApprovalAnswer{RequestID: "abcde", Allow: true}.MarshalBinary,
	} {
		b, _ := mk()
		for typ := TypeQuestion; typ <= TypeApprovalAnswer; typ++ {
			f.Add(byte(typ), b)
		}
	}
	f.Fuzz(func(t *testing.T, typ byte, b []byte) {
		var again []byte
		var err error
		switch MessageType(typ) {
		case TypeQuestion:
			var q Question
			if q, err = ParseQuestion(b); err == nil {
				again, err = q.MarshalBinary()
			}
		case TypeReply:
			var r Reply
			if r, err = ParseReply(b); err == nil {
				again, err = r.MarshalBinary()
			}
		case TypeApprovalRequest:
			var a ApprovalRequest
			if a, err = ParseApprovalRequest(b); err == nil {
				again, err = a.MarshalBinary()
			}
		case TypeApprovalAnswer:
			var a ApprovalAnswer
			if a, err = ParseApprovalAnswer(b); err == nil {
				again, err = a.MarshalBinary()
			}
		default:
			return
		}
		if errors.Is(err, ErrStructured) && again == nil {
			return // refused
		}
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("type %#x: %x accepted but re-encodes as %x (%v)", typ, b, again, err)
		}
	})
}
