// Package safetext makes text from a contact safe to show to a person: it
// is the one sanitizer behind every human-facing output of wschat (plain
// listen, both modes of chat, contact nicknames, handler variables). A
// contact must not control your terminal: control characters (escape
// sequences, carriage returns, backspaces), bidirectional controls (which
// make text read differently from what it is), line and paragraph
// separators and invalid UTF-8 are shown visibly escaped — `\x1b`, `\r`,
// `\u202e` — never raw. Newlines and tabs are kept (the caller lays out
// lines); JSON output needs none of this (JSON escapes them).
package safetext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text returns s with every character a terminal would act on escaped.
// Newline and tab are kept; "\r\n" becomes "\n".
func Text(s string) string { return escape(s, true) }

// Line is Text for one line: newlines and tabs are escaped too.
func Line(s string) string { return escape(s, false) }

// Unsafe reports whether r is shown escaped (newline and tab aside).
func Unsafe(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp, unicode.Bidi_Control) ||
		r == '\uFEFF' || r == utf8.RuneError
}

func escape(s string, multiline bool) string {
	if clean(s, multiline) {
		return s
	}
	if multiline {
		s = strings.ReplaceAll(s, "\r\n", "\n")
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case multiline && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case Unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// clean reports whether s needs no escaping (the common case, cheaply).
func clean(s string, multiline bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			for _, r := range s[i:] {
				if Unsafe(r) || !multiline && (r == '\n' || r == '\t') {
					return false
				}
			}
			return utf8.ValidString(s[i:])
		}
		if c < 0x20 && !(multiline && (c == '\n' || c == '\t')) || c == 0x7f {
			return false
		}
	}
	return true
}
