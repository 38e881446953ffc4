package chat

import (
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// strangerWindow: strangers seen this recently are warned about.
const strangerWindow = 7 * 24 * time.Hour

// settle brings the layout up to date after an update and sends read
// acknowledgements for what is now on screen.
func (m *Model) settle() tea.Cmd {
	if m.width <= 0 || m.height <= 0 {
		return nil
	}
	m.input.SetWidth(m.width)
	m.input.SetHeight(min(m.inputLines(), maxInputLines, max(1, m.height/3)))
	if m.mode != modeChat {
		return nil
	}
	vh := max(1, m.height-2-len(m.chatBanners())-m.input.Height())
	if m.view.Width != m.width || m.view.Height != vh {
		m.view.Width, m.view.Height = m.width, vh
		m.stale = true
	}
	if m.stale {
		m.layout()
		m.stale = false
	}
	return m.ackVisible()
}

// inputLines is how many screen lines the input's text takes.
func (m *Model) inputLines() int {
	w := max(1, m.width-lipgloss.Width(m.input.Prompt)-1)
	n := 0
	for _, line := range strings.Split(m.input.Value(), "\n") {
		n += max(1, (lipgloss.Width(line)+w-1)/w)
	}
	return n
}

// layout rebuilds the conversation's lines, keeping the view where it was
// (or at the bottom when following).
func (m *Model) layout() {
	var anchor any
	anchorDelta := 0
	if !m.follow {
		for i, sp := range m.spans {
			if i < len(m.entries) && sp[1] > m.view.YOffset {
				anchor, anchorDelta = m.entries[i].key(), m.view.YOffset-sp[0]
				break
			}
		}
	}
	m.entries = m.buildEntries()
	lines, spans := m.renderEntries()
	if pad := m.view.Height - len(lines); pad > 0 {
		// A short conversation sits at the bottom, next to the input.
		lines = append(make([]string, pad), lines...)
		for i := range spans {
			spans[i][0] += pad
			spans[i][1] += pad
		}
	}
	m.spans = spans
	m.view.SetContent(strings.Join(lines, "\n"))
	switch {
	case m.follow:
		m.view.GotoBottom()
	case anchor != nil:
		for i, e := range m.entries {
			if e.key() == anchor {
				m.view.SetYOffset(spans[i][0] + anchorDelta)
				break
			}
		}
	}
	if m.view.AtBottom() && !m.follow && m.newBelow > 0 {
		m.follow, m.newBelow = true, 0
	}
}

// buildEntries merges the store's records with what was typed here and is
// not in the store yet.
func (m *Model) buildEntries() []entry {
	out := make([]entry, 0, len(m.records)+len(m.local))
	last := m.lastCursor
	for _, r := range m.records {
		isOut := r.Dir == bridge.DirOut
		if isOut && !m.seenOut[r.ID] {
			if len(m.sending) > 0 {
				// Perhaps one being queued here: shown once its id is known,
				// so that it does not appear twice.
				continue
			}
			m.seenOut[r.ID] = true
		}
		text, ok := string(r.Body), r.Body != nil
		if ok && m.cfg.NoHistory {
			m.texts[r.ID] = text
		} else if !ok {
			text = m.texts[r.ID]
		}
		out = append(out, entry{id: r.ID, cursor: r.Cursor, out: isOut, text: text, at: r.SentAt, state: r.State})
		if r.Cursor > last {
			if !isOut && !m.follow && m.lastCursor > 0 {
				m.newBelow++
			}
			last = r.Cursor
		}
	}
	m.lastCursor = last
	return append(out, m.local...)
}

func (m *Model) selfLabel() string {
	if m.cfg.SelfName != "" {
		return m.cfg.SelfName
	}
	return "you"
}

const stateWidth = 9 // "delivered"

// renderEntries lays out the conversation: one line per message (more when
// it wraps), "15:04 name  text … state".
func (m *Model) renderEntries() ([]string, [][2]int) {
	st := m.st
	var lines []string
	spans := make([][2]int, len(m.entries))
	w := m.width
	if m.more {
		lines = append(lines, st.dim.Render(center("PgUp for older messages", w)))
	}
	if len(m.entries) == 0 && m.curOK {
		lines = append(lines, st.dim.Render(fmt.Sprintf("No messages with %s yet.", m.curName)))
	}
	self := m.selfLabel()
	nameW := min(16, max(lipgloss.Width(self), lipgloss.Width(m.curName)))
	prefixW := 5 + 1 + nameW + 2
	textW := max(8, w-prefixW-1-stateWidth)
	wrap := st.plain.Width(textW)
	now := m.now()
	today := now.Local().Format(time.DateOnly)
	day := ""
	for i, e := range m.entries {
		at := e.at.Local()
		if d := at.Format(time.DateOnly); d != day {
			if day != "" || d != today {
				lines = append(lines, st.dim.Render(center("── "+at.Format("Mon 2 Jan 2006")+" ──", w)))
			}
			day = d
		}
		start := len(lines)
		name, nameSt := m.curName, st.peer
		if e.out {
			name, nameSt = self, st.self
		}
		name = truncate(name, nameW)
		body := sanitize(e.text)
		textSt := st.text
		if body == "" {
			body, textSt = "(text not kept)", st.dim
		}
		wrapped := strings.Split(wrap.Render(body), "\n")
		for j, part := range wrapped {
			var b strings.Builder
			if j == 0 {
				b.WriteString(st.time.Render(at.Format("15:04")) + " " + nameSt.Render(name) + strings.Repeat(" ", nameW-lipgloss.Width(name)+2))
			} else {
				b.WriteString(strings.Repeat(" ", prefixW))
			}
			b.WriteString(textSt.Render(part))
			if j == 0 && e.out {
				label, ls := m.stateLabel(e, now)
				b.WriteString(" " + strings.Repeat(" ", max(0, stateWidth-lipgloss.Width(label))) + ls.Render(label))
			}
			lines = append(lines, b.String())
		}
		spans[i] = [2]int{start, len(lines)}
	}
	return lines, spans
}

// stateLabel is what the person sees of an outgoing message's state.
func (m *Model) stateLabel(e entry, now time.Time) (string, lipgloss.Style) {
	switch {
	case e.err != "":
		return "failed", m.st.warn
	case e.state == bridge.StatePending || e.state == "":
		if now.Sub(e.at) < stallAfter {
			return "sending", m.st.dim
		}
		return "not sent", m.st.warn
	case e.state == bridge.StateRead:
		return "read", m.st.ok
	case e.state == bridge.StateDelivered:
		return "delivered", m.st.plain
	case e.state == bridge.StateRefused:
		return "refused", m.st.warn
	}
	return string(e.state), m.st.dim // sent, stored
}

// ackVisible acknowledges the incoming messages now on screen, once each.
func (m *Model) ackVisible() tea.Cmd {
	if m.mode != modeChat || m.overlay || !m.focused || !m.curOK || !m.floorSet {
		return nil
	}
	// The read cursor (what counts as unread) moves to the newest message
	// seen; older ones scrolled past unseen are acknowledged only if they
	// come on screen in this session.
	top, bottom := m.view.YOffset, m.view.YOffset+m.view.Height
	var ids []wire.MessageID
	upTo := m.readCursor
	for i, e := range m.entries {
		if e.out || e.local > 0 || e.cursor <= m.readFloor || m.acked[e.id] || i >= len(m.spans) {
			continue
		}
		if sp := m.spans[i]; sp[0] < bottom && sp[1] > top {
			ids = append(ids, e.id)
			m.acked[e.id] = true
			upTo = max(upTo, e.cursor)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return markReadCmd(m.ctx, m.cfg, m.cur, ids, upTo)
}

// banners are the warnings above the conversation, wrapped to the width
// (at most three lines each).
func (m *Model) banners() []string {
	var out []string
	st := m.st
	add := func(style lipgloss.Style, format string, args ...any) {
		if m.width <= 0 {
			return
		}
		lines := strings.Split(style.Width(m.width).Render(fmt.Sprintf(format, args...)), "\n")
		out = append(out, lines[:min(3, len(lines))]...)
	}
	if m.mode == modeChat && m.keyChanged {
		add(st.alarm, "⚠ %s's keys changed while this chat was open: compare safety numbers (Ctrl+S) before trusting new messages", m.curName)
	}
	if m.mode == modeChat && !m.curOK && m.contacts != nil {
		add(st.alarm, "⚠ %s is not in your contacts: nothing can be sent", m.curName)
	}
	if n, ids, last := m.recentStrangers(); n > 0 {
		who := "an identity that is not a contact (id " + ids[0].String()[:8] + "…)"
		if len(ids) > 1 {
			who = fmt.Sprintf("%d identities that are not contacts", len(ids))
		}
		add(st.alarm, "⚠ %d message(s) from %s, last at %s, were kept aside. A contact with new keys? Compare safety numbers before you add them again.",
			n, who, last.Local().Format("Jan 2 15:04"))
	}
	if m.mode == modeChat && m.curOK && !m.cur.Verified {
		add(st.warn, "%s is not verified: compare safety numbers (Ctrl+S)", m.curName)
	}
	return out
}

// chatBanners are the banners that fit above a conversation of at least
// one line, the most important first.
func (m *Model) chatBanners() []string {
	b := m.banners()
	return b[:min(len(b), max(0, m.height-3-m.input.Height()))]
}

// recentStrangers: identities that are not contacts but sent something
// lately — perhaps a contact with new keys, or an impostor.
func (m *Model) recentStrangers() (n int, ids []wire.RoutingID, last time.Time) {
	if len(m.strangers) == 0 {
		return
	}
	known := map[wire.RoutingID]bool{}
	for _, c := range m.contacts {
		known[c.Public.ID()] = true
	}
	cutoff := m.now().Add(-strangerWindow)
	for _, s := range m.strangers {
		if known[s.ID] || s.LastSeen.Before(cutoff) {
			continue
		}
		n += s.Count
		ids = append(ids, s.ID)
		if s.LastSeen.After(last) {
			last = s.LastSeen
		}
	}
	return
}

// View draws the screen.
func (m *Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	switch {
	case m.overlay:
		return m.safetyView()
	case m.mode == modeList:
		return m.listView()
	}
	parts := []string{m.header()}
	parts = append(parts, m.chatBanners()...)
	parts = append(parts, m.view.View(), m.statusLine(), m.input.View())
	return strings.Join(parts, "\n")
}

func (m *Model) header() string {
	st := m.st
	left := " " + st.header.Render(m.curName)
	if m.curOK && m.cur.Nick != "" && m.cur.Nick != m.curName {
		left += st.dim.Render(" (" + m.cur.Nick + ")")
	}
	if m.curOK {
		left += m.presence(m.cur.Public.Fingerprint())
	}
	var right []string
	if m.curOK {
		if m.cur.Verified {
			right = append(right, st.ok.Render("✓ verified"))
		} else {
			right = append(right, st.warn.Render("unverified"))
		}
	}
	right = append(right, m.connLabel())
	return spread(left, strings.Join(right, st.dim.Render(" · "))+" ", m.width)
}

// presence is " · online" or " · typing…" when the contact said so.
func (m *Model) presence(fp wire.Fingerprint) string {
	ls := m.live[fp]
	now := m.now()
	switch {
	case ls == nil:
		return ""
	case now.Before(ls.typingUntil):
		return m.st.dim.Render(" · ") + m.st.ok.Render("● typing…")
	case now.Before(ls.onlineUntil):
		return m.st.dim.Render(" · ") + m.st.ok.Render("● online")
	}
	return ""
}

func (m *Model) connLabel() string {
	switch {
	case !m.connKnown:
		return m.st.dim.Render("connecting…")
	case m.connected:
		return m.st.dim.Render("connected")
	}
	return m.st.warn.Render("offline, retrying")
}

func (m *Model) statusLine() string {
	st := m.st
	now := m.now()
	var s string
	stalled := 0
	for _, e := range m.entries {
		if e.out && (e.err != "" || ((e.state == bridge.StatePending || e.state == "") && now.Sub(e.at) >= stallAfter)) {
			stalled++
		}
	}
	switch {
	case m.status != "" && m.statusErr:
		s = st.warn.Render(m.status)
	case m.status != "":
		s = st.notice.Render(m.status)
	case stalled > 0:
		s = st.warn.Render(fmt.Sprintf("%d message(s) not sent yet: they stay in the outbox and go out when the relay is reachable · Ctrl+R retries now", stalled))
	case m.otherUnread() != "":
		s = st.notice.Render(m.otherUnread())
	case m.newBelow > 0:
		s = st.notice.Render(fmt.Sprintf("↓ %d new message(s) below · PgDn", m.newBelow))
	default:
		s = st.dim.Render("Enter send · Alt+Enter new line · PgUp/PgDn scroll · Ctrl+S safety number · Ctrl+O contacts · Esc quit")
	}
	return truncate(s, m.width)
}

// otherUnread is the notice of messages waiting in other conversations.
func (m *Model) otherUnread() string {
	var parts []string
	for _, c := range m.contacts {
		if n := m.unread[c.Public.Fingerprint()]; n > 0 && c.Name != m.curName {
			parts = append(parts, fmt.Sprintf("%s (%d)", c.Name, n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "new message from " + strings.Join(parts, ", ") + " · Ctrl+N to switch"
}

func (m *Model) listView() string {
	st := m.st
	lines := []string{spread(" "+st.header.Render("wschat · conversations"), m.connLabel()+" ", m.width), ""}
	lines = append(lines, m.banners()...)
	if len(m.contacts) == 0 {
		lines = append(lines, st.dim.Render("  No contacts yet. Add one with: wschat contacts add NAME INVITE"))
	}
	nameW := 4
	for _, c := range m.contacts {
		nameW = max(nameW, min(24, lipgloss.Width(c.Name)))
	}
	for i, c := range m.contacts {
		fp := c.Public.Fingerprint()
		row := "  " + truncate(c.Name, nameW) + strings.Repeat(" ", nameW-min(nameW, lipgloss.Width(c.Name))+2)
		if n := m.unread[fp]; n > 0 {
			row += st.notice.Render(fmt.Sprintf("%4d unread", n))
		} else {
			row += strings.Repeat(" ", 11)
		}
		if c.Verified {
			row += "  " + st.ok.Render("✓ verified")
		} else {
			row += "  " + st.dim.Render("unverified")
		}
		row += m.presence(fp)
		if i == m.listSel {
			row = st.selected.Render(truncate(row, m.width))
		}
		lines = append(lines, truncate(row, m.width))
	}
	return m.fill(lines, st.dim.Render(" ↑/↓ choose · Enter open · Esc quit"))
}

func (m *Model) safetyView() string {
	st := m.st
	c := m.cur
	sn := keys.SafetyNumber(m.cfg.Self, c.Public)
	groups := strings.Fields(sn)
	lines := []string{
		" " + st.header.Render("Safety number with "+c.Name),
		"",
		"     " + st.big.Render(strings.Join(groups[:len(groups)/2], " ")),
		"     " + st.big.Render(strings.Join(groups[len(groups)/2:], " ")),
		"",
	}
	if c.Verified {
		lines = append(lines, " "+st.ok.Render("✓ verified")+st.dim.Render(" on "+c.VerifiedAt.Local().Format("2 Jan 2006")))
	} else {
		lines = append(lines,
			" "+st.warn.Render("Not verified."),
			" Compare this number with "+c.Name+" in person or over a channel you trust.",
			" If it matches, run:  wschat contacts verify "+c.Name)
	}
	lines = append(lines, "",
		st.dim.Render(" their keys: "+c.Public.Fingerprint().Short()+"…  routing id "+c.Public.ID().String()),
		st.dim.Render(" your keys:  "+m.cfg.Self.Fingerprint().Short()+"…  routing id "+m.cfg.Self.ID().String()),
		st.dim.Render(" pinned since "+c.AddedAt.Local().Format("2 Jan 2006 15:04")))
	if m.keyChanged {
		lines = append(lines, "", st.alarm.Render(" ⚠ these keys are not the ones pinned when this chat opened "))
	}
	for i := range lines {
		lines[i] = truncate(lines[i], m.width)
	}
	return m.fill(lines, st.dim.Render(" Esc closes"))
}

// fill pads lines to the screen's height with footer on the last line.
func (m *Model) fill(lines []string, footer string) string {
	if len(lines) > m.height-1 {
		lines = lines[:max(0, m.height-1)]
	}
	for len(lines) < m.height-1 {
		lines = append(lines, "")
	}
	return strings.Join(append(lines, truncate(footer, m.width)), "\n")
}

// spread puts left and right on one line of width w.
func spread(left, right string, w int) string {
	gap := w - lipgloss.Width(left) - lipgloss.Width(right)
	if gap < 1 {
		return truncate(left+" "+right, w)
	}
	return left + strings.Repeat(" ", gap) + right
}

func center(s string, w int) string {
	pad := (w - lipgloss.Width(s)) / 2
	if pad <= 0 {
		return s
	}
	return strings.Repeat(" ", pad) + s
}

// truncate cuts s (which may hold styling) to w cells.
func truncate(s string, w int) string {
	if lipgloss.Width(s) <= w {
		return s
	}
	return lipgloss.NewStyle().MaxWidth(w).Render(s)
}
