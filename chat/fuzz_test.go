package chat

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzSanitize: a contact's text never reaches the terminal with a control
// character (an escape sequence) or a bidirectional override in it.
func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"hello", "\x1b[2J\x1b]0;title\x07", "a\r\nb\tc", "\u202Eevil", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := sanitize(s)
		for _, r := range out {
			if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)) {
				t.Fatalf("%q sanitized to %q keeps %U", s, out, r)
			}
		}
		if utf8.ValidString(s) && strings.Count(out, "\n") > strings.Count(s, "\n") {
			t.Fatalf("%q gained lines: %q", s, out)
		}
	})
}
