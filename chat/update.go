package chat

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// Key bindings.
var (
	keyQuit    = key.NewBinding(key.WithKeys("ctrl+c"))
	keySend    = key.NewBinding(key.WithKeys("enter"))
	keyNewline = key.NewBinding(key.WithKeys("alt+enter", "ctrl+j"))
	keyPgUp    = key.NewBinding(key.WithKeys("pgup"))
	keyPgDown  = key.NewBinding(key.WithKeys("pgdown"))
	keySafety  = key.NewBinding(key.WithKeys("ctrl+s", "f2"))
	keyRetry   = key.NewBinding(key.WithKeys("ctrl+r"))
	keyList    = key.NewBinding(key.WithKeys("ctrl+o"))
	keyNext    = key.NewBinding(key.WithKeys("ctrl+n"))
	keyRedraw  = key.NewBinding(key.WithKeys("ctrl+l"))
	keyUp      = key.NewBinding(key.WithKeys("up", "k", "ctrl+p"))
	keyDown    = key.NewBinding(key.WithKeys("down", "j", "ctrl+n"))
	keyOpen    = key.NewBinding(key.WithKeys("enter"))
	keyListQ   = key.NewBinding(key.WithKeys("q"))
)

// shiftEnter recognises Shift+Enter from terminals that report it (the
// kitty/fixterms CSI u form and xterm's modifyOtherKeys form); bubbletea
// passes these on as unknown sequences.
func shiftEnter(msg tea.Msg) bool {
	s, ok := msg.(fmt.Stringer)
	if !ok {
		return false
	}
	switch s.String() {
	case "?CSI[49 51 59 50 117]?", // ESC [ 13 ; 2 u
		"?CSI[50 55 59 50 59 49 51 126]?": // ESC [ 27 ; 2 ; 13 ~
		return true
	}
	return false
}

// Update handles a message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmds []tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.stale = true
	case tea.FocusMsg:
		m.focused = true
	case tea.BlurMsg:
		m.focused = false
	case wakeMsg:
		cmds = append(cmds, m.reload())
	case tickMsg:
		cmds = append(cmds, m.tick(time.Time(msg))...)
	case liveMsg:
		cmds = append(cmds, m.onLive(bridge.Live(msg)))
	case connMsg:
		cmds = append(cmds, m.onConn(msg.err)...)
	case snapshotMsg:
		cmds = append(cmds, m.onSnapshot(msg))
	case queuedMsg:
		m.onQueued(msg)
		cmds = append(cmds, m.reload())
	case flushedMsg:
		if msg.err != nil {
			m.setStatus(true, "not handed to the relay yet: %v", msg.err)
		}
	case readMsg:
		if msg.err != nil {
			for _, id := range msg.ids {
				delete(m.acked, id)
			}
			m.setStatus(true, "read receipt not sent: %v", msg.err)
		} else if m.curOK && msg.peer == m.cur.Public.Fingerprint() && msg.upTo > m.readCursor {
			m.readCursor = msg.upTo
		}
	case liveSentMsg:
	case tea.KeyMsg:
		cmds = append(cmds, m.onKey(msg))
	default:
		if shiftEnter(msg) && m.mode == modeChat && !m.overlay {
			m.input.InsertString("\n")
		}
	}
	cmds = append(cmds, m.settle())
	return m, tea.Batch(cmds...)
}

func (m *Model) setStatus(isErr bool, format string, args ...any) {
	m.status, m.statusErr = fmt.Sprintf(format, args...), isErr
	m.statusTill = m.now().Add(8 * time.Second)
}

func (m *Model) onKey(msg tea.KeyMsg) tea.Cmd {
	if m.overlay {
		switch {
		case key.Matches(msg, keySafety), msg.Type == tea.KeyEsc, msg.String() == "q":
			m.overlay = false
			m.stale = true
		case msg.Type == tea.KeyCtrlC:
			return tea.Quit
		}
		return nil
	}
	if key.Matches(msg, keyRedraw) {
		return tea.ClearScreen
	}
	if m.mode == modeList {
		return m.onListKey(msg)
	}
	if msg.Type == tea.KeyRunes || msg.Type == tea.KeySpace {
		// Text is text: a burst of typed text (a paste without bracketed
		// paste, tmux send-keys, a slow link, dictation) arrives as runs
		// of runes, and a run that spells a key's name ("enter", "esc",
		// "down", "home") must not act as that key.
		return m.insert(string(msg.Runes))
	}
	switch {
	case key.Matches(msg, keyQuit):
		return tea.Quit
	case msg.Type == tea.KeyEsc:
		if strings.TrimSpace(m.input.Value()) != "" && m.now().Sub(m.escAt) > escAgain {
			m.escAt = m.now()
			m.setStatus(false, "Esc again to quit and drop the draft (Ctrl+C quits too)")
			return nil
		}
		return tea.Quit
	case key.Matches(msg, keySend) && !msg.Paste:
		return m.send()
	case key.Matches(msg, keyPgUp):
		m.view.PageUp()
		m.follow = false
		if m.view.AtTop() && m.more {
			m.limit += historyPage
			return m.reload()
		}
		return nil
	case key.Matches(msg, keyPgDown):
		m.view.PageDown()
		if m.view.AtBottom() {
			m.follow, m.newBelow = true, 0
		}
		return nil
	case key.Matches(msg, keySafety):
		if m.curOK {
			m.overlay = true
		}
		return nil
	case key.Matches(msg, keyRetry):
		return m.retry()
	case key.Matches(msg, keyList):
		return m.openList()
	case key.Matches(msg, keyNext):
		if c, ok := m.nextUnread(); ok {
			return m.open(c.Name)
		}
		m.setStatus(false, "no unread messages in other conversations")
		return nil
	}
	if key.Matches(msg, keyNewline) {
		msg = tea.KeyMsg{Type: tea.KeyEnter} // textarea's newline key (Enter itself sends)
	}
	before := m.input.Value()
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	if after := m.input.Value(); after != before {
		return tea.Batch(cmd, m.typed(after))
	}
	return cmd
}

// insert puts text into the input as it is.
func (m *Model) insert(text string) tea.Cmd {
	before := m.input.Value()
	m.input.InsertString(text)
	if after := m.input.Value(); after != before {
		return m.typed(after)
	}
	return nil
}

// escAgain: a second Esc within this long quits though a draft is in the
// input.
const escAgain = 3 * time.Second

func (m *Model) onListKey(msg tea.KeyMsg) tea.Cmd {
	switch {
	case msg.Type == tea.KeyEsc && m.curOK:
		return m.open(m.curName) // back to the conversation
	case key.Matches(msg, keyQuit), msg.Type == tea.KeyEsc, key.Matches(msg, keyListQ):
		return tea.Quit
	case key.Matches(msg, keyUp):
		if m.listSel > 0 {
			m.listSel--
		}
	case key.Matches(msg, keyDown):
		if m.listSel < len(m.contacts)-1 {
			m.listSel++
		}
	case key.Matches(msg, keyOpen):
		if m.listSel < len(m.contacts) {
			return m.open(m.contacts[m.listSel].Name)
		}
	}
	return nil
}

// typed notes a change to the input: "typing" goes out at the first
// keystroke, "stopped" when the input is emptied (or, from tick, after a
// pause).
func (m *Model) typed(value string) tea.Cmd {
	if !m.curOK {
		return nil
	}
	if strings.TrimSpace(value) == "" {
		return m.stopTyping()
	}
	m.lastKey = m.now()
	if m.typingTo != nil || !m.connected {
		return nil
	}
	c := m.cur
	m.typingTo = &c
	return m.sendLive(c, wire.TypeTyping, true)
}

func (m *Model) stopTyping() tea.Cmd {
	if m.typingTo == nil {
		return nil
	}
	c := *m.typingTo
	m.typingTo = nil
	return m.sendLive(c, wire.TypeTyping, false)
}

// send queues what was typed.
func (m *Model) send() tea.Cmd {
	text := strings.TrimRight(m.input.Value(), " \t\n")
	if strings.TrimSpace(text) == "" {
		return nil
	}
	if !m.curOK {
		m.setStatus(true, "%s is not in your contacts; nothing was sent", m.curName)
		return nil
	}
	if len(text) > wire.MaxBodySize {
		m.setStatus(true, "message too long: %d bytes, at most %d; nothing was sent", len(text), wire.MaxBodySize)
		return nil
	}
	m.input.Reset()
	m.localSeq++
	e := entry{local: m.localSeq, out: true, text: text, at: m.now(), state: bridge.StatePending}
	m.local = append(m.local, e)
	m.follow, m.newBelow, m.stale = true, 0, true
	return tea.Batch(m.stopTyping(), m.queue(e))
}

func (m *Model) queue(e entry) tea.Cmd {
	op := newSendOp(m.ctx, m.cfg.Client, m.cur, e.local, e.text)
	m.sending = append(m.sending, op)
	return op.cmd()
}

// retry queues again what could not be queued and hands the outbox to
// the connection.
func (m *Model) retry() tea.Cmd {
	var cmds []tea.Cmd
	for i := range m.local {
		if m.local[i].err != "" && m.curOK {
			m.local[i].err = ""
			cmds = append(cmds, m.queue(m.local[i]))
		}
	}
	if !m.connected {
		m.setStatus(false, "offline: the outbox goes out when the relay is reachable")
	} else {
		m.setStatus(false, "retrying")
	}
	m.stale = true
	return tea.Batch(append(cmds, flushCmd(m.ctx, m.cfg.Client))...)
}

func (m *Model) onQueued(msg queuedMsg) {
	for i, op := range m.sending {
		if op.msg.local == msg.local {
			m.sending = append(m.sending[:i], m.sending[i+1:]...)
			break
		}
	}
	for i, e := range m.local {
		if e.local != msg.local {
			continue
		}
		if msg.err != nil {
			m.local[i].err = msg.err.Error()
			m.setStatus(true, "not sent: %v (Ctrl+R to retry)", msg.err)
		} else {
			m.local = append(m.local[:i], m.local[i+1:]...)
			m.seenOut[msg.id] = true
			if m.cfg.NoHistory {
				m.texts[msg.id] = msg.text
			}
			if msg.flushErr != nil {
				m.setStatus(true, "not handed to the relay yet: %v; it stays in the outbox", msg.flushErr)
			}
		}
		break
	}
	m.stale = true
}

// openList shows the contact list, with the open conversation selected.
func (m *Model) openList() tea.Cmd {
	cmd := m.leave()
	m.mode = modeList
	for i, c := range m.contacts {
		if c.Name == m.curName {
			m.listSel = i
		}
	}
	return tea.Batch(cmd, m.reload())
}

// leave withdraws "typing" from the open conversation.
func (m *Model) leave() tea.Cmd {
	return m.stopTyping()
}

// open switches to the conversation with name.
func (m *Model) open(name string) tea.Cmd {
	cmd := m.leave()
	m.mode, m.overlay = modeChat, false
	if name != m.curName || !m.curOK {
		m.gen++
		m.curName, m.curOK, m.keyChanged = name, false, false
		m.records, m.entries, m.local = nil, nil, nil
		m.limit, m.more, m.readCursor, m.lastCursor = historyPage, false, 0, 0
		m.readFloor, m.floorSet = 0, false
		m.follow, m.newBelow = true, 0
		m.input.Reset()
		m.input.Placeholder = "Message " + name + " (Enter sends, Alt+Enter adds a line)"
	}
	for _, c := range m.contacts {
		if c.Name == name {
			m.setCur(c)
		}
	}
	m.stale = true
	return tea.Batch(cmd, m.hello(), m.reload())
}

func (m *Model) setCur(c keys.Contact) {
	if !m.curOK {
		m.openedFP = c.Public.Fingerprint()
	}
	m.cur, m.curOK = c, true
	if c.Public.Fingerprint() != m.openedFP {
		m.keyChanged = true
	}
}

// nextUnread is the first other contact with unread messages.
func (m *Model) nextUnread() (keys.Contact, bool) {
	for _, c := range m.contacts {
		if c.Name != m.curName && m.unread[c.Public.Fingerprint()] > 0 {
			return c, true
		}
	}
	return keys.Contact{}, false
}

// hello tells the open conversation's contact that this view is online.
func (m *Model) hello() tea.Cmd {
	if m.mode != modeChat || !m.curOK || !m.connected {
		return nil
	}
	m.announced[m.cur.Public.Fingerprint()] = m.cur
	m.lastHello = m.now()
	return m.sendLive(m.cur, wire.TypePresence, true)
}

func (m *Model) sendLive(c keys.Contact, typ wire.MessageType, on bool) tea.Cmd {
	return liveCmd(m.ctx, m.cfg.Client, c, typ, on)
}

func (m *Model) onConn(err error) []tea.Cmd {
	m.connKnown = true
	m.connErr = err
	if err != nil {
		m.connected = false
		m.typingTo = nil
		return nil
	}
	m.connected = true
	// A new connection: say "online" again to everyone told before.
	var cmds []tea.Cmd
	for fp, c := range m.announced {
		if !m.curOK || fp != m.cur.Public.Fingerprint() {
			cmds = append(cmds, m.sendLive(c, wire.TypePresence, true))
		}
	}
	cmds = append(cmds, m.hello(), m.reload())
	return cmds
}

func (m *Model) onLive(l bridge.Live) tea.Cmd {
	now := m.now()
	fp := l.From.Public.Fingerprint()
	ls := m.live[fp]
	if ls == nil {
		ls = &liveState{}
		m.live[fp] = ls
	}
	wasOnline := now.Before(ls.onlineUntil)
	switch l.Type {
	case wire.TypePresence:
		if !l.On {
			*ls = liveState{}
			return nil
		}
		ls.onlineUntil = now.Add(onlineFor)
	case wire.TypeTyping:
		ls.onlineUntil = now.Add(onlineFor)
		if l.On {
			ls.typingUntil = now.Add(typingShown)
		} else {
			ls.typingUntil = time.Time{}
		}
	}
	m.stale = true
	// Someone who just came online learns that this view is, too (once:
	// the answer finds us online already, so it is not answered).
	if !wasOnline && m.connected {
		m.announced[fp] = l.From
		return m.sendLive(l.From, wire.TypePresence, true)
	}
	return nil
}

func (m *Model) tick(now time.Time) []tea.Cmd {
	cmds := []tea.Cmd{m.reload()}
	if m.typingTo != nil && now.Sub(m.lastKey) >= typingIdle {
		cmds = append(cmds, m.stopTyping())
	}
	if m.connected && len(m.announced) > 0 && now.Sub(m.lastHello) >= presenceEvery {
		m.lastHello = now
		for _, c := range m.announced {
			cmds = append(cmds, m.sendLive(c, wire.TypePresence, true))
		}
	}
	if m.status != "" && now.After(m.statusTill) {
		m.status = ""
	}
	m.stale = true // states age: "sending" becomes "not sent", typing ends
	return cmds
}

// reload asks for a snapshot of the book and the store; one at a time.
func (m *Model) reload() tea.Cmd {
	if m.loading {
		m.dirty = true
		return nil
	}
	m.loading = true
	return loadCmd(m.ctx, m.cfg, m.gen, m.mode == modeChat, m.curName, m.limit)
}

func (m *Model) onSnapshot(msg snapshotMsg) tea.Cmd {
	m.loading = false
	var cmd tea.Cmd
	if m.dirty {
		m.dirty = false
		cmd = m.reload()
	}
	if msg.err != nil {
		if !errors.Is(msg.err, errStale) {
			m.setStatus(true, "reading the store: %v", msg.err)
		}
		return cmd
	}
	s := msg.snap
	m.contacts, m.unread, m.strangers = s.contacts, s.unread, s.strangers
	if m.listSel >= len(m.contacts) {
		m.listSel = max(0, len(m.contacts)-1)
	}
	if s.gen != m.gen || m.mode != modeChat {
		m.stale = true
		return cmd
	}
	var hello tea.Cmd
	if s.curOK {
		wasOK := m.curOK
		m.setCur(s.cur)
		if !wasOK {
			hello = m.hello()
		}
	} else {
		m.curOK = false
	}
	m.records, m.more = s.records, s.more
	if s.readCursor > m.readCursor {
		m.readCursor = s.readCursor
	}
	if !m.floorSet && s.curOK {
		m.readFloor, m.floorSet = s.readCursor, true
	}
	m.stale = true
	return tea.Batch(cmd, hello)
}
