package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// clock is a settable time for the model.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// fixture is one identity ("alice") with contacts bob and carol, a real
// store and book in a temporary directory, and a client that is never
// connected: what is sent stays in the outbox, and the tests move states
// in the store as the connection would.
type fixture struct {
	t          *testing.T
	ctx        context.Context
	store      *bridge.Store
	client     *bridge.Client
	book       *keys.Book
	self       *wire.Identity
	bob, carol *wire.Identity
	clock      *clock
	quit       bool
}

func newFixture(t *testing.T, history bool) *fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := bridge.OpenStore(filepath.Join(dir, "messages.db"), history)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	book, err := keys.OpenBook(filepath.Join(dir, "contacts"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: context.Background(), store: store, book: book,
		clock: &clock{t: time.Now().Truncate(time.Minute)}}
	f.self = newIdentity(t)
	f.bob = f.addContact("bob")
	f.carol = f.addContact("carol")
	f.client = bridge.NewClient(bridge.Config{Identity: f.self, Book: book, Store: store, Now: f.clock.Now})
	return f
}

func newIdentity(t *testing.T) *wire.Identity {
	t.Helper()
	id, err := wire.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) addContact(name string) *wire.Identity {
	f.t.Helper()
	id := newIdentity(f.t)
	if _, err := f.book.Add(name, keys.Invite{Public: id.Public(), Name: name}); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) contact(name string) keys.Contact {
	f.t.Helper()
	c, err := f.book.Get(name)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// receive stores a text message from peer, as the connection does.
func (f *fixture) receive(peer *wire.Identity, text string) wire.MessageID {
	f.t.Helper()
	id, _ := wire.NewMessageID(rand.Reader)
	m := &wire.Message{ID: id, SentAt: f.clock.Now(), Type: wire.TypeText, Body: []byte(text)}
	if _, err := f.store.AddIncoming(f.ctx, peer.Public(), m, f.clock.Now()); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) model(cfg Config) *Model {
	cfg.Client, cfg.Book, cfg.Self, cfg.Now = f.client, f.book, f.self.Public(), f.clock.Now
	if cfg.Renderer == nil {
		r := lipgloss.NewRenderer(&bytes.Buffer{})
		r.SetColorProfile(termenv.ANSI)
		cfg.Renderer = r
	}
	m := New(f.ctx, cfg)
	f.do(m, m.Init())
	f.send(m, tea.WindowSizeMsg{Width: 100, Height: 24})
	return m
}

// send gives the model a message and runs what it asks for (its store and
// network calls) to the end, feeding the results back.
func (f *fixture) send(m *Model, msg tea.Msg) {
	f.t.Helper()
	_, cmd := m.Update(msg)
	f.do(m, cmd)
}

func (f *fixture) do(m *Model, cmd tea.Cmd) {
	f.t.Helper()
	for _, msg := range run(cmd) {
		if _, ok := msg.(tea.QuitMsg); ok {
			f.quit = true
			continue
		}
		f.send(m, msg)
	}
}

func run(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	switch msg := cmd().(type) {
	case nil:
		return nil
	case tea.BatchMsg:
		var out []tea.Msg
		for _, c := range msg {
			out = append(out, run(c)...)
		}
		return out
	default:
		return []tea.Msg{msg}
	}
}

func (f *fixture) typeText(m *Model, s string) {
	f.t.Helper()
	for _, r := range s {
		f.send(m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

func (f *fixture) key(m *Model, k tea.KeyType) { f.send(m, tea.KeyMsg{Type: k}) }

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[a-zA-Z]`)

func plain(s string) string { return ansiRE.ReplaceAllString(s, "") }

// screen is the view without styling.
func screen(m *Model) string { return plain(m.View()) }

// row is the first line of the screen holding s ("" if none).
func row(m *Model, s string) string {
	for _, l := range strings.Split(screen(m), "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func mustContain(t *testing.T, m *Model, want ...string) {
	t.Helper()
	s := screen(m)
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Fatalf("screen lacks %q:\n%s", w, s)
		}
	}
}

func mustNotContain(t *testing.T, m *Model, bad ...string) {
	t.Helper()
	s := screen(m)
	for _, b := range bad {
		if strings.Contains(s, b) {
			t.Fatalf("screen has %q:\n%s", b, s)
		}
	}
}

// outgoing lists this identity's outgoing records of a type.
func (f *fixture) outgoing(typ wire.MessageType) []bridge.Record {
	f.t.Helper()
	recs, err := f.store.After(f.ctx, 0, bridge.DirOut, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []bridge.Record
	for _, r := range recs {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

func TestHistoryOnOpen(t *testing.T) {
	f := newFixture(t, true)
	at := f.clock.Add(-2 * time.Hour).Local().Format("15:04")
	f.receive(f.bob, "hello alice")
	f.clock.Add(time.Minute)
	id, err := f.client.Queue(f.ctx, f.contact("bob"), wire.TypeText, []byte("hi bob"))
	if err != nil {
		t.Fatal(err)
	}
	f.store.SetState(f.ctx, f.bob.Public().Fingerprint(), bridge.StateDelivered, id)
	f.receive(f.carol, "psst, carol here")
	f.clock.Add(2 * time.Hour)

	m := f.model(Config{Contact: "bob", SelfName: "alice"})
	mustContain(t, m, "hello alice", "hi bob", "bob is not verified")
	mustNotContain(t, m, "psst")
	if r := row(m, "hello alice"); !strings.Contains(r, at+" bob") {
		t.Errorf("incoming row %q lacks time and sender %q", r, at+" bob")
	}
	if r := row(m, "hi bob"); !strings.Contains(r, "alice") || !strings.HasSuffix(strings.TrimRight(r, " "), "delivered") {
		t.Errorf("outgoing row %q: want sender alice and state delivered", r)
	}
	// carol wrote: a notice, and Ctrl+N goes there.
	if r := row(m, "new message from carol (1)"); !strings.Contains(r, "Ctrl+N") {
		t.Errorf("no notice for carol's message:\n%s", screen(m))
	}
	f.key(m, tea.KeyCtrlN)
	mustContain(t, m, "psst, carol here")
	mustNotContain(t, m, "hello alice")
}

func TestSendAndStates(t *testing.T) {
	f := newFixture(t, true)
	m := f.model(Config{Contact: "bob"})
	f.typeText(m, "hello there")
	f.key(m, tea.KeyEnter)
	if v := m.input.Value(); v != "" {
		t.Fatalf("input not cleared after sending: %q", v)
	}
	texts := f.outgoing(wire.TypeText)
	if len(texts) != 1 || string(texts[0].Body) != "hello there" || texts[0].State != bridge.StatePending {
		t.Fatalf("outbox: %+v", texts)
	}
	if r := row(m, "hello there"); !strings.HasSuffix(strings.TrimRight(r, " "), "sending") {
		t.Fatalf("row %q: want sending", r)
	}
	if n := strings.Count(screen(m), "hello there"); n != 1 {
		t.Fatalf("message shown %d times", n)
	}
	fp := f.bob.Public().Fingerprint()
	for _, st := range []bridge.State{bridge.StateStored, bridge.StateDelivered, bridge.StateRead} {
		f.store.SetState(f.ctx, fp, st, texts[0].ID)
		f.send(m, wakeMsg{})
		if r := row(m, "hello there"); !strings.HasSuffix(strings.TrimRight(r, " "), string(st)) {
			t.Fatalf("row %q: want %s", r, st)
		}
	}
}

func TestNotSentAndRetry(t *testing.T) {
	f := newFixture(t, true)
	m := f.model(Config{Contact: "bob"})
	f.typeText(m, "are you there")
	f.key(m, tea.KeyEnter)
	f.send(m, tickMsg(f.clock.Add(stallAfter+time.Second)))
	if r := row(m, "are you there"); !strings.HasSuffix(strings.TrimRight(r, " "), "not sent") {
		t.Fatalf("row %q: want not sent", r)
	}
	mustContain(t, m, "1 message(s) not sent yet", "Ctrl+R")
	f.send(m, tea.KeyMsg{Type: tea.KeyCtrlR})
	mustContain(t, m, "offline: the outbox goes out when the relay is reachable")
	// The message stays in the outbox for the next connection.
	out, err := f.store.Outbox(f.ctx)
	if err != nil || len(out) != 1 {
		t.Fatalf("outbox: %v, %v", out, err)
	}
}

func TestMultilineInput(t *testing.T) {
	f := newFixture(t, true)
	m := f.model(Config{Contact: "bob"})
	f.typeText(m, "one")
	f.send(m, tea.KeyMsg{Type: tea.KeyEnter, Alt: true})
	f.typeText(m, "two")
	f.key(m, tea.KeyCtrlJ)
	f.typeText(m, "three")
	if h := m.input.Height(); h != 3 {
		t.Fatalf("input height %d, want 3 (it grows)", h)
	}
	// Shift+Enter, as kitty reports it.
	f.send(m, unknownCSI("?CSI[49 51 59 50 117]?"))
	f.typeText(m, "four")
	if got := m.input.Value(); got != "one\ntwo\nthree\nfour" {
		t.Fatalf("input %q", got)
	}
	if lines := strings.Count(m.View(), "\n") + 1; lines != 24 {
		t.Fatalf("view has %d lines, want 24", lines)
	}
	f.key(m, tea.KeyEnter)
	texts := f.outgoing(wire.TypeText)
	if len(texts) != 1 || string(texts[0].Body) != "one\ntwo\nthree\nfour" {
		t.Fatalf("sent %+v", texts)
	}
	if h := m.input.Height(); h != 1 {
		t.Fatalf("input height %d after sending, want 1", h)
	}
	mustContain(t, m, "one", "two", "three", "four")
}

// unknownCSI stands for bubbletea's report of a key sequence it does not
// know.
type unknownCSI string

func (u unknownCSI) String() string { return string(u) }

func TestReadAcksWhenOnScreen(t *testing.T) {
	f := newFixture(t, true)
	var ids []wire.MessageID
	for i := range 40 {
		ids = append(ids, f.receive(f.bob, "message "+string(rune('A'+i%26))+string(rune('a'+i/26))))
	}
	m := f.model(Config{Contact: "bob"})
	acked := func() map[wire.MessageID]bool {
		got := map[wire.MessageID]bool{}
		for _, r := range f.outgoing(wire.TypeRead) {
			for _, id := range wire.AckIDs(r.Body) {
				if got[id] {
					t.Fatalf("message %s acknowledged twice", id)
				}
				got[id] = true
			}
		}
		return got
	}
	got := acked()
	if !got[ids[39]] || got[ids[0]] {
		t.Fatalf("want the newest acknowledged and the oldest (off screen) not: %d acknowledged", len(got))
	}
	if len(got) != m.view.Height {
		t.Fatalf("%d acknowledged, want the %d on screen", len(got), m.view.Height)
	}
	// The read cursor moved: nothing of bob's counts as unread.
	unread, _ := f.store.Unread(f.ctx)
	if n := unread[f.bob.Public().Fingerprint()]; n != 0 {
		t.Fatalf("bob unread %d after reading", n)
	}
	// Scrolling up shows (and acknowledges) older ones, once each.
	for range 3 {
		f.key(m, tea.KeyPgUp)
	}
	if got := acked(); len(got) != 40 {
		t.Fatalf("%d acknowledged after scrolling to the top, want 40", len(got))
	}
	f.send(m, wakeMsg{})
	acked()

	// A new message while scrolled up is not on screen: not acknowledged
	// until the person scrolls down to it.
	late := f.receive(f.bob, "late news")
	f.send(m, wakeMsg{})
	if acked()[late] {
		t.Fatal("acknowledged a message that is not on screen")
	}
	mustContain(t, m, "1 new message(s) below")
	for range 4 {
		f.key(m, tea.KeyPgDown)
	}
	if !acked()[late] {
		t.Fatal("not acknowledged once on screen")
	}
	// Nor while the terminal has lost focus.
	f.send(m, tea.BlurMsg{})
	later := f.receive(f.bob, "later news")
	f.send(m, wakeMsg{})
	if acked()[later] {
		t.Fatal("acknowledged while the terminal was not focused")
	}
	f.send(m, tea.FocusMsg{})
	if !acked()[later] {
		t.Fatal("not acknowledged on focus")
	}
}

func TestReadStateSurvivesReopen(t *testing.T) {
	f := newFixture(t, true)
	f.receive(f.bob, "first")
	m := f.model(Config{Contact: "bob"})
	if n := len(f.outgoing(wire.TypeRead)); n != 1 {
		t.Fatalf("%d read acknowledgements, want 1", n)
	}
	// A second chat later acknowledges nothing again.
	m2 := f.model(Config{Contact: "bob"})
	mustContain(t, m2, "first")
	if n := len(f.outgoing(wire.TypeRead)); n != 1 {
		t.Fatalf("%d read acknowledgements after reopening, want 1", n)
	}
	_ = m
}

func TestTypingAndPresence(t *testing.T) {
	f := newFixture(t, true)
	m := f.model(Config{Contact: "bob"})
	bob := f.contact("bob")
	mustNotContain(t, m, "online", "typing")

	f.send(m, liveMsg{From: bob, Type: wire.TypePresence, On: true})
	if r := row(m, " bob"); !strings.Contains(r, "● online") {
		t.Fatalf("header %q: want online", r)
	}
	f.send(m, liveMsg{From: bob, Type: wire.TypeTyping, On: true})
	mustContain(t, m, "● typing…")
	f.send(m, tickMsg(f.clock.Add(typingShown+time.Second)))
	mustNotContain(t, m, "typing…")
	mustContain(t, m, "● online")
	f.send(m, liveMsg{From: bob, Type: wire.TypePresence, On: false})
	mustNotContain(t, m, "● online")

	// Our typing: on at the first keystroke (once connected), off after a
	// pause or on sending.
	f.send(m, connMsg{})
	mustContain(t, m, "connected")
	f.typeText(m, "h")
	if m.typingTo == nil {
		t.Fatal("typing not announced")
	}
	f.send(m, tickMsg(f.clock.Add(typingIdle)))
	if m.typingTo != nil {
		t.Fatal("typing not withdrawn after a pause")
	}
	f.typeText(m, "i")
	f.key(m, tea.KeyEnter)
	if m.typingTo != nil {
		t.Fatal("typing not withdrawn on sending")
	}
	if _, ok := m.announced[bob.Public.Fingerprint()]; !ok {
		t.Fatal("presence not announced to bob")
	}
	f.send(m, connMsg{err: bridge.ErrOffline})
	mustContain(t, m, "offline, retrying")
}

func TestContactList(t *testing.T) {
	f := newFixture(t, true)
	f.receive(f.carol, "one")
	f.receive(f.carol, "two")
	m := f.model(Config{})
	if r := row(m, "carol"); !strings.Contains(r, "2 unread") {
		t.Fatalf("row %q: want 2 unread", r)
	}
	if r := row(m, "bob"); strings.Contains(r, "unread") {
		t.Fatalf("row %q: bob has nothing unread", r)
	}
	f.key(m, tea.KeyDown)
	f.key(m, tea.KeyEnter)
	mustContain(t, m, "one", "two")
	// Back to the list: carol's messages are read now.
	f.key(m, tea.KeyCtrlO)
	if r := row(m, "carol"); strings.Contains(r, "unread") {
		t.Fatalf("row %q: want no unread", r)
	}
	// Esc in the list goes back to the conversation; there, Esc quits.
	f.key(m, tea.KeyEsc)
	if f.quit {
		t.Fatal("Esc in the list quit instead of going back")
	}
	mustContain(t, m, "one", "two", "Enter send")
	f.key(m, tea.KeyEsc)
	if !f.quit {
		t.Fatal("Esc did not quit")
	}
}

// Text arrives as runs of runes when it comes in a burst (a paste without
// bracketed paste, tmux send-keys, a slow link): a run that spells a
// key's name is text, not that key. ("press enter twice" used to send
// "press"; "the esc key" quit; "down", "home", "end", "delete", "up",
// "left" vanished.)
func TestBurstTextIsNotKeys(t *testing.T) {
	for _, text := range []string{"press enter twice", "the esc key", "go down now", "home end delete up left right pgup tab"} {
		f := newFixture(t, true)
		m := f.model(Config{Contact: "bob"})
		for i, word := range strings.Split(text, " ") {
			if i > 0 {
				f.send(m, tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}})
			}
			f.send(m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(word)})
		}
		if f.quit {
			t.Fatalf("%q quit the chat", text)
		}
		if got := m.input.Value(); got != text {
			t.Fatalf("input %q, want %q", got, text)
		}
		f.key(m, tea.KeyEnter)
		if texts := f.outgoing(wire.TypeText); len(texts) != 1 || string(texts[0].Body) != text {
			t.Fatalf("sent %+v, want %q", texts, text)
		}
	}
}

// Esc with a draft asks first; a second Esc (or Ctrl+C) quits.
func TestEscWithDraft(t *testing.T) {
	f := newFixture(t, true)
	m := f.model(Config{Contact: "bob"})
	f.typeText(m, "half a thought")
	f.key(m, tea.KeyEsc)
	if f.quit {
		t.Fatal("Esc with a draft quit at once")
	}
	mustContain(t, m, "Esc again to quit")
	if m.input.Value() != "half a thought" {
		t.Fatalf("draft %q", m.input.Value())
	}
	f.key(m, tea.KeyEsc)
	if !f.quit {
		t.Fatal("a second Esc did not quit")
	}
}

func TestSafetyNumberAndWarnings(t *testing.T) {
	f := newFixture(t, true)
	m := f.model(Config{Contact: "bob"})
	mustContain(t, m, "bob is not verified", "unverified")
	f.key(m, tea.KeyCtrlS)
	sn := keys.SafetyNumber(f.self.Public(), f.bob.Public())
	g := strings.Fields(sn)
	mustContain(t, m, "Safety number with bob", strings.Join(g[:3], " "), strings.Join(g[3:], " "), "Not verified", "wschat contacts verify bob")
	f.key(m, tea.KeyEsc)
	if f.quit {
		t.Fatal("Esc in the safety view quit")
	}
	mustContain(t, m, "Enter send")

	if _, err := f.book.Verify("bob"); err != nil {
		t.Fatal(err)
	}
	f.send(m, wakeMsg{})
	mustNotContain(t, m, "bob is not verified")
	mustContain(t, m, "✓ verified")

	// Someone who is not a contact wrote: perhaps bob with new keys.
	stranger := newIdentity(t)
	if err := f.store.AddStranger(f.ctx, stranger.Public().ID(), f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.send(m, wakeMsg{})
	mustContain(t, m, "⚠ 1 message(s) from an identity that is not a contact (id "+stranger.Public().ID().String()[:8])

	// bob's pin replaced while the chat is open: a loud warning.
	if _, err := f.book.Replace("bob", keys.Invite{Public: stranger.Public(), Name: "bob"}); err != nil {
		t.Fatal(err)
	}
	f.send(m, wakeMsg{})
	mustContain(t, m, "⚠ bob's keys changed while this chat was open")
	mustNotContain(t, m, "kept aside") // the stranger is bob now
}

func TestQuitKeys(t *testing.T) {
	for _, k := range []tea.KeyType{tea.KeyEsc, tea.KeyCtrlC} {
		f := newFixture(t, true)
		m := f.model(Config{Contact: "bob"})
		f.key(m, k)
		if !f.quit {
			t.Errorf("%v did not quit", k)
		}
	}
}

// colorRE matches SGR sequences that set a color.
var colorRE = regexp.MustCompile(`\x1b\[([0-9;]*;)?(3[0-9]|4[0-9]|9[0-7]|10[0-7])(;[0-9;]*)?m`)

func TestNoColor(t *testing.T) {
	for _, noColor := range []bool{false, true} {
		f := newFixture(t, true)
		f.receive(f.bob, "colorful?")
		if err := f.store.AddStranger(f.ctx, newIdentity(t).Public().ID(), f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		m := f.model(Config{Contact: "bob", NoColor: noColor})
		f.typeText(m, "draft")
		views := []string{m.View()}
		f.key(m, tea.KeyCtrlS)
		views = append(views, m.View())
		f.key(m, tea.KeyCtrlO)
		views = append(views, m.View())
		for _, v := range views {
			if got := colorRE.MatchString(v); got == noColor {
				t.Errorf("NoColor %v: color codes present %v in\n%q", noColor, got, v)
			}
		}
		if noColor && !strings.Contains(views[0], "\x1b[7m") && !strings.Contains(views[0], ";7m") {
			t.Errorf("NoColor: no reverse video (the cursor) left:\n%q", views[0])
		}
	}
}

func TestResize(t *testing.T) {
	f := newFixture(t, true)
	f.receive(f.bob, strings.Repeat("a long line that must wrap ", 12))
	m := f.model(Config{Contact: "bob"})
	for _, sz := range [][2]int{{100, 24}, {40, 12}, {20, 6}, {160, 50}, {80, 24}} {
		f.send(m, tea.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		for _, mode := range []func(){func() {}, func() { f.key(m, tea.KeyCtrlS) }, func() { f.key(m, tea.KeyEsc); f.key(m, tea.KeyCtrlO) }} {
			mode()
			v := m.View()
			lines := strings.Split(v, "\n")
			if len(lines) != sz[1] {
				t.Errorf("%dx%d: %d lines", sz[0], sz[1], len(lines))
			}
			for _, l := range lines {
				if w := lipgloss.Width(l); w > sz[0] {
					t.Errorf("%dx%d: line of width %d: %q", sz[0], sz[1], w, plain(l))
				}
			}
		}
		f.key(m, tea.KeyEnter) // back to the conversation
	}
}

func TestHostileText(t *testing.T) {
	f := newFixture(t, true)
	f.receive(f.bob, "clear\x1b[2J\x1b]0;title\x07 and \u202Eevil\rend")
	m := f.model(Config{Contact: "bob"})
	v := m.View()
	for _, bad := range []string{"\x1b[2J", "\x1b]0", "\u202E", "\r", "\x07"} {
		if strings.Contains(v, bad) {
			t.Errorf("view passes %q through", bad)
		}
	}
	mustContain(t, m, `clear\x1b[2J`, `\u202eevil\rend`)
}

func TestNoHistoryForgetsSeenText(t *testing.T) {
	f := newFixture(t, false)
	id := f.receive(f.bob, "burn after reading")
	m := f.model(Config{Contact: "bob", NoHistory: true})
	mustContain(t, m, "burn after reading")
	recs, _, err := f.store.Conversation(f.ctx, f.bob.Public().Fingerprint(), 10)
	if err != nil || len(recs) != 1 || recs[0].ID != id {
		t.Fatalf("%v %v", recs, err)
	}
	if recs[0].Body != nil {
		t.Fatalf("text kept after it was seen: %q", recs[0].Body)
	}
	// Still on screen, from memory; sent text too.
	f.typeText(m, "gone too")
	f.key(m, tea.KeyEnter)
	f.send(m, wakeMsg{})
	mustContain(t, m, "burn after reading", "gone too")
	// A later chat shows that the text was not kept.
	m2 := f.model(Config{Contact: "bob", NoHistory: true})
	mustContain(t, m2, "(text not kept)")
}

func TestOlderHistoryOnPgUp(t *testing.T) {
	f := newFixture(t, true)
	for range historyPage + 10 {
		f.receive(f.bob, "filler")
	}
	f.receive(f.bob, "newest")
	m := f.model(Config{Contact: "bob"})
	if !m.more || len(m.entries) != historyPage {
		t.Fatalf("loaded %d (more %v), want one page", len(m.entries), m.more)
	}
	for range 200 {
		f.key(m, tea.KeyPgUp)
		if !m.more {
			break
		}
	}
	if m.more || len(m.entries) != historyPage+11 {
		t.Fatalf("loaded %d (more %v) after paging up, want all %d", len(m.entries), m.more, historyPage+11)
	}
}

// A message sent just before quitting reaches the outbox even if the
// program ended before running the command that queues it (Run finishes
// what is in m.sending).
func TestSentJustBeforeQuit(t *testing.T) {
	f := newFixture(t, true)
	m := f.model(Config{Contact: "bob"})
	f.typeText(m, "last words")
	m.Update(tea.KeyMsg{Type: tea.KeyEnter}) // its command is never run
	m.Update(tea.KeyMsg{Type: tea.KeyEsc})
	if len(m.sending) != 1 {
		t.Fatalf("%d messages on their way, want 1", len(m.sending))
	}
	for _, op := range m.sending {
		op.run()
		op.run() // once only
	}
	out, err := f.store.Outbox(f.ctx)
	if err != nil || len(out) != 1 {
		t.Fatalf("outbox %v, %v: want the message", out, err)
	}
}
