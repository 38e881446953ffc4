package safetext_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wschat/wschat/internal/safetext"
)

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"hello, world":            "hello, world",
		"two\nlines\tand a tab":   "two\nlines\tand a tab",
		"crlf\r\nline":            "crlf\nline",
		"\rforged":                `\rforged`,
		"\x1b[2K\x1b]0;pwned\x07": `\x1b[2K\x1b]0;pwned\x07`,
		"rtl \u202eevil":          `rtl \u202eevil`,
		"iso \u2066x\u2069":       `iso \u2066x\u2069`,
		"sep\u2028x":              `sep\u2028x`,
		"c1 \u009b":               `c1 \u009b`,
		"bad \xff byte":           `bad \xff byte`,
		"emoji 👍🏽 🇩🇪":             "emoji 👍🏽 🇩🇪",
		"del\x7f":                 `del\x7f`,
	} {
		if got := safetext.Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
	if got := safetext.Line("a\nb\tc"); got != `a\nb\tc` {
		t.Errorf("Line: %q", got)
	}
}

// FuzzText: whatever a contact sends, the result is valid UTF-8 with no
// character a terminal acts on (newline and tab aside, in Text), and it
// says as much as the input (nothing is dropped: a clean input is left as
// it is).
func FuzzText(f *testing.F) {
	for _, s := range []string{"hello", "\x1b[2J\x1b]0;title\x07", "a\r\nb\tc", "\u202Eevil", "\xff\xfe", "\r\n\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, multi := range []bool{true, false} {
			out := safetext.Line(s)
			if multi {
				out = safetext.Text(s)
			}
			if !utf8.ValidString(out) {
				t.Fatalf("%q -> invalid UTF-8 %q", s, out)
			}
			for _, r := range out {
				if (r == '\n' || r == '\t') && multi {
					continue
				}
				if safetext.Unsafe(r) || r == '\n' || r == '\t' {
					t.Fatalf("%q -> %q keeps %U", s, out, r)
				}
			}
			if multi && strings.Count(out, "\n") > strings.Count(s, "\n") {
				t.Fatalf("%q gained lines: %q", s, out)
			}
			if len(out) < len(s)-strings.Count(s, "\r\n") {
				t.Fatalf("%q lost text: %q", s, out)
			}
		}
	})
}
