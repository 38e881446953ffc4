package chat

import (
	"context"
	"errors"
	"sync"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// The commands here do the model's I/O, off the update loop: each reads
// or writes the store (and, through the client, the connection) and
// reports back with a message.

// snapshot is what the view shows, read from the book and the store.
type snapshot struct {
	gen        int
	contacts   []keys.Contact
	cur        keys.Contact
	curOK      bool
	records    []bridge.Record
	more       bool
	readCursor int64
	unread     map[wire.Fingerprint]int
	strangers  []bridge.Stranger
}

// errStale: the model moved on before the snapshot was taken.
var errStale = errors.New("stale snapshot")

func loadCmd(ctx context.Context, cfg Config, gen int, chat bool, name string, limit int) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		s, err := load(ctx, cfg, gen, chat, name, limit)
		if ctx.Err() != nil {
			err = errStale
		}
		return snapshotMsg{snap: s, err: err}
	}
}

func load(ctx context.Context, cfg Config, gen int, chat bool, name string, limit int) (snapshot, error) {
	s := snapshot{gen: gen}
	cs, err := cfg.Book.List()
	if err != nil {
		return s, err
	}
	s.contacts = cs
	store := cfg.Client.Store()
	if chat {
		for _, c := range cs {
			if c.Name == name {
				s.cur, s.curOK = c, true
			}
		}
		if s.curOK {
			fp := s.cur.Public.Fingerprint()
			if s.records, s.more, err = store.Conversation(ctx, fp, limit); err != nil {
				return s, err
			}
			if s.readCursor, _, err = store.SavedCursor(ctx, bridge.ReadCursorName(fp)); err != nil {
				return s, err
			}
		}
	}
	if s.unread, err = store.Unread(ctx); err != nil {
		return s, err
	}
	if s.strangers, err = store.Strangers(ctx); err != nil {
		return s, err
	}
	return s, nil
}

// sendOp puts one message in the outbox and hands the outbox to the
// connection (if one is up: otherwise it waits for the next one). It runs
// once: from its command, or from Run at the end if the program ended
// before running the command, because a message the person sent must
// reach the outbox. It is not cancelled when the view ends.
type sendOp struct {
	once   sync.Once
	ctx    context.Context
	client *bridge.Client
	to     keys.Contact
	msg    queuedMsg // set by run
}

func newSendOp(ctx context.Context, c *bridge.Client, to keys.Contact, local int, text string) *sendOp {
	return &sendOp{ctx: context.WithoutCancel(ctx), client: c, to: to,
		msg: queuedMsg{local: local, peer: to.Public.Fingerprint(), text: text}}
}

// run does the work the first time and returns its outcome every time.
func (o *sendOp) run() queuedMsg {
	o.once.Do(func() {
		ctx, cancel := context.WithTimeout(o.ctx, storeTimeout)
		defer cancel()
		o.msg.id, o.msg.err = o.client.Queue(ctx, o.to, wire.TypeText, []byte(o.msg.text))
		if o.msg.err == nil {
			o.msg.flushErr = o.client.Flush(ctx)
		}
	})
	return o.msg
}

func (o *sendOp) cmd() tea.Cmd { return func() tea.Msg { return o.run() } }

func flushCmd(ctx context.Context, c *bridge.Client) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		return flushedMsg{err: c.Flush(ctx)}
	}
}

// markReadCmd sends read acknowledgements and moves the read cursor; with
// history off it forgets the text that was seen.
func markReadCmd(ctx context.Context, cfg Config, to keys.Contact, ids []wire.MessageID, upTo int64) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		fp := to.Public.Fingerprint()
		msg := readMsg{peer: fp, upTo: upTo, ids: ids}
		store := cfg.Client.Store()
		if msg.err = cfg.Client.MarkRead(ctx, to, ids...); msg.err != nil {
			return msg
		}
		if msg.err = store.SaveCursor(ctx, bridge.ReadCursorName(fp), upTo); msg.err != nil {
			return msg
		}
		if cfg.NoHistory {
			msg.err = store.ForgetIncoming(ctx, fp, ids...)
		}
		return msg
	}
}

// liveCmd sends typing or presence; it is shown now or never, so a
// failure is not reported.
func liveCmd(ctx context.Context, c *bridge.Client, to keys.Contact, typ wire.MessageType, on bool) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		c.SendLive(ctx, to, typ, on)
		return liveSentMsg{}
	}
}
