package chat

import (
	"strings"

	"github.com/wschat/wschat/internal/safetext"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textarea"
	"github.com/charmbracelet/lipgloss"
)

// styles are the view's looks. Colors are the terminal's sixteen, so the
// person's theme decides the shades; without color (NO_COLOR) only bold,
// faint and reverse remain.
type styles struct {
	plain    lipgloss.Style
	header   lipgloss.Style
	peer     lipgloss.Style
	self     lipgloss.Style
	time     lipgloss.Style
	dim      lipgloss.Style
	text     lipgloss.Style
	ok       lipgloss.Style // read, verified, online
	warn     lipgloss.Style // unverified, not sent
	alarm    lipgloss.Style // keys changed, strangers
	notice   lipgloss.Style
	selected lipgloss.Style
	big      lipgloss.Style // the safety number
}

func newStyles(r *lipgloss.Renderer, color bool) styles {
	s := styles{
		plain:    r.NewStyle(),
		header:   r.NewStyle().Bold(true),
		peer:     r.NewStyle().Bold(true),
		self:     r.NewStyle().Bold(true),
		time:     r.NewStyle().Faint(true),
		dim:      r.NewStyle().Faint(true),
		text:     r.NewStyle(),
		ok:       r.NewStyle(),
		warn:     r.NewStyle().Bold(true),
		alarm:    r.NewStyle().Bold(true).Reverse(true),
		notice:   r.NewStyle().Bold(true),
		selected: r.NewStyle().Reverse(true),
		big:      r.NewStyle().Bold(true),
	}
	if color {
		s.header = s.header.Foreground(lipgloss.Color("6"))
		s.peer = s.peer.Foreground(lipgloss.Color("4"))
		s.self = s.self.Foreground(lipgloss.Color("5"))
		s.ok = s.ok.Foreground(lipgloss.Color("2"))
		s.warn = s.warn.Foreground(lipgloss.Color("3"))
		s.alarm = r.NewStyle().Bold(true).Foreground(lipgloss.Color("15")).Background(lipgloss.Color("1"))
		s.notice = s.notice.Foreground(lipgloss.Color("3"))
		s.big = s.big.Foreground(lipgloss.Color("6"))
	}
	return s
}

// newInput is the text input: it grows with its content (up to
// maxInputLines), Enter is left to the model (it sends), and every style is
// this view's, so no color creeps in under NO_COLOR.
func newInput(r *lipgloss.Renderer, st styles) textarea.Model {
	ta := textarea.New()
	ta.Prompt = "> "
	ta.ShowLineNumbers = false
	ta.CharLimit = 0 // the model checks the size on sending
	ta.MaxWidth = 0
	ta.MaxHeight = maxInputLines
	ta.KeyMap.InsertNewline = key.NewBinding(key.WithKeys("enter"))
	style := textarea.Style{
		Base:             r.NewStyle(),
		CursorLine:       r.NewStyle(),
		CursorLineNumber: r.NewStyle(),
		EndOfBuffer:      r.NewStyle(),
		LineNumber:       r.NewStyle(),
		Placeholder:      st.dim,
		Prompt:           st.self,
		Text:             r.NewStyle(),
	}
	ta.FocusedStyle, ta.BlurredStyle = style, style
	ta.Cursor.Style = r.NewStyle()
	ta.Cursor.TextStyle = r.NewStyle()
	ta.Cursor.SetMode(cursor.CursorStatic)
	ta.SetHeight(1)
	ta.Focus()
	return ta
}

// sanitize makes a contact's text safe to put on a terminal: every
// character a terminal would act on is shown escaped (safetext, the one
// sanitizer of every human-facing output); tabs become spaces.
func sanitize(s string) string {
	return strings.ReplaceAll(safetext.Text(s), "\t", " ")
}
