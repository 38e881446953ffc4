// Package chat is the terminal conversation view behind `wschat chat`: a
// bubbletea program over one identity's bridge.Client, for a person who
// lives in a terminal.
//
// The view follows the client's store, never the network: what the
// connection stores (messages in, delivery and read states moving forward)
// wakes the model, which reloads the open conversation from the store. A
// message typed here is queued in the outbox and handed to the relay; if
// the relay cannot be reached it waits there for the next connection of any
// wschat process of this identity. Typing and presence travel as
// ephemeral end-to-end encrypted messages and are never stored.
//
// The package prints nothing itself: all output goes through the bubbletea
// program that Run starts.
package chat

import (
	"context"
	"time"

	"github.com/charmbracelet/bubbles/textarea"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// Timing of the view. Variables so that tests can shorten them.
var (
	// tickInterval: how often Run wakes the model to see other
	// processes' writes to the store and to age typing and presence.
	tickInterval = 500 * time.Millisecond
	// typingIdle: after this long without a keystroke, "stopped typing"
	// goes out.
	typingIdle = 3 * time.Second
	// typingShown: a contact's "typing" is shown at most this long unless
	// renewed (their "stopped" may be lost with their connection).
	typingShown = 6 * time.Second
	// presenceEvery: "online" is repeated this often to the contacts told.
	presenceEvery = 60 * time.Second
	// onlineFor: a contact is shown online this long after their last
	// typing or presence message.
	onlineFor = 150 * time.Second
	// stallAfter: a message still not in the relay's custody after this
	// long is shown as not sent (it stays in the outbox).
	stallAfter = 10 * time.Second
)

const (
	historyPage   = 200 // messages loaded at a time
	maxInputLines = 8
	storeTimeout  = 10 * time.Second
)

// Config is what the view runs on.
type Config struct {
	Client   *bridge.Client      // required: its store is read; Queue, Flush, MarkRead, SendLive
	Book     *keys.Book          // required: read only
	Self     wire.PublicIdentity // own public keys, for safety numbers
	SelfName string              // shown on own messages; "" shows "you"
	// Contact is the conversation to open; "" opens the contact list.
	Contact string
	// NoHistory: the store keeps no history, so incoming text is also
	// forgotten once a person has seen it.
	NoHistory bool
	// Renderer makes the styles (Run makes one for its output); nil:
	// lipgloss's default renderer.
	Renderer *lipgloss.Renderer
	// NoColor: styles use no colors, only bold, faint and reverse
	// (NO_COLOR).
	NoColor bool
	Now     func() time.Time // nil: time.Now
}

type mode int

const (
	modeList mode = iota
	modeChat
)

// Messages the model receives. The ones from outside (wake, tick, live,
// conn) are sent by Run.
type (
	// wakeMsg: the store may have changed.
	wakeMsg struct{}
	// tickMsg: time passed (other processes' writes, timers).
	tickMsg time.Time
	// liveMsg: a contact's typing or presence.
	liveMsg bridge.Live
	// connMsg: Run's connection came up (nil) or failed.
	connMsg struct{ err error }

	snapshotMsg struct {
		snap snapshot
		err  error
	}
	queuedMsg struct {
		local    int
		peer     wire.Fingerprint
		id       wire.MessageID
		text     string
		err      error // not queued: the message is not in the outbox
		flushErr error // queued, not handed over yet
	}
	flushedMsg struct{ err error }
	readMsg    struct {
		peer wire.Fingerprint
		upTo int64
		ids  []wire.MessageID
		err  error
	}
	liveSentMsg struct{}
)

// entry is one message in the open conversation.
type entry struct {
	id     wire.MessageID
	local  int   // > 0: not in the store (being queued, or queueing failed)
	cursor int64 // store cursor; 0 for local entries
	out    bool
	text   string
	at     time.Time
	state  bridge.State // outgoing: the store's state
	err    string       // local: why it is not queued
}

func (e entry) key() any {
	if e.local > 0 {
		return e.local
	}
	return e.id
}

// liveState is what typing and presence said about one contact.
type liveState struct {
	onlineUntil time.Time
	typingUntil time.Time
}

// Model is the chat view. Create it with New; Run runs it. Its fields
// belong to the program's update loop (Update, View); the commands it
// returns work on copies and report back with messages.
type Model struct {
	cfg    Config
	ctx    context.Context // static after construction: ends the model's store and network calls
	now    func() time.Time
	st     styles
	width  int // the terminal's; 0 until the first WindowSizeMsg
	height int

	mode    mode
	overlay bool // the safety number view
	focused bool

	// The book and the store, as of the last snapshot.
	contacts  []keys.Contact
	unread    map[wire.Fingerprint]int
	strangers []bridge.Stranger

	// The open conversation.
	curName    string
	cur        keys.Contact
	curOK      bool             // cur is in the book
	openedFP   wire.Fingerprint // the keys cur had when the conversation opened
	keyChanged bool             // the book's keys for curName changed while open
	gen        int              // counts conversation switches; older snapshots are dropped
	limit      int
	more       bool
	records    []bridge.Record
	entries    []entry
	spans      [][2]int // line range of each entry in the content
	readCursor int64    // the saved read cursor (what counts as unread)
	readFloor  int64    // the read cursor when the conversation opened: seen before
	floorSet   bool
	acked      map[wire.MessageID]bool           // read acknowledgement sent (or going) this session
	texts      map[wire.MessageID]string         // text of messages the store does not keep
	seenOut    map[wire.MessageID]bool           // outgoing ids known to this view
	local      []entry                           // typed here, not (yet) in the store
	localSeq   int                               // last local entry number
	sending    []*sendOp                         // messages on their way to the outbox
	newBelow   int                               // incoming messages below the view while scrolled up
	follow     bool                              // the view sticks to the newest message
	lastCursor int64                             // newest cursor shown
	live       map[wire.Fingerprint]*liveState   // typing and presence by contact
	announced  map[wire.Fingerprint]keys.Contact // told "online"; told "leaving" at the end
	lastHello  time.Time

	typingTo   *keys.Contact // "typing" was sent to this contact and not yet withdrawn
	lastKey    time.Time
	escAt      time.Time // when Esc was pressed with a draft in the input
	connected  bool
	connKnown  bool
	connErr    error
	status     string // a passing error or notice
	statusErr  bool
	statusTill time.Time

	loading bool
	dirty   bool // a reload was asked for while one ran
	stale   bool // content must be laid out again

	listSel int

	view  viewport.Model
	input textarea.Model
}

// New makes the model. It reads nothing until it runs.
func New(ctx context.Context, cfg Config) *Model {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Renderer == nil {
		cfg.Renderer = lipgloss.DefaultRenderer()
	}
	m := &Model{
		cfg: cfg, ctx: ctx, now: cfg.Now, st: newStyles(cfg.Renderer, !cfg.NoColor),
		focused: true, follow: true, limit: historyPage,
		unread: map[wire.Fingerprint]int{}, acked: map[wire.MessageID]bool{}, texts: map[wire.MessageID]string{},
		seenOut: map[wire.MessageID]bool{}, live: map[wire.Fingerprint]*liveState{}, announced: map[wire.Fingerprint]keys.Contact{},
	}
	m.view = viewport.New(0, 0)
	m.view.Style = cfg.Renderer.NewStyle()
	m.view.KeyMap = viewport.KeyMap{} // keys are handled here: letters are for typing
	m.input = newInput(cfg.Renderer, m.st)
	if cfg.Contact != "" {
		m.mode, m.curName = modeChat, cfg.Contact
		m.input.Placeholder = "Message " + cfg.Contact + " (Enter sends, Alt+Enter adds a line)"
	}
	return m
}

// Init loads the first snapshot.
func (m *Model) Init() tea.Cmd {
	return m.reload()
}

// announcedContacts lists the contacts told that this view is online; Run
// tells them it is leaving.
func (m *Model) announcedContacts() []keys.Contact {
	out := make([]keys.Contact, 0, len(m.announced))
	for _, c := range m.announced {
		out = append(out, c)
	}
	return out
}
