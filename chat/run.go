package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/wire"
)

// Run shows the chat full-screen on a terminal (in, out) until the person
// quits (Ctrl+C, Esc) or ctx ends, and restores the terminal. Meanwhile it
// keeps the client's receiving connection (Client.Run) up; the client's
// logger must not write to the terminal. Messages not yet handed to the
// relay at the end stay in the outbox.
func Run(ctx context.Context, cfg Config, in io.Reader, out io.Writer) error {
	if cfg.Renderer == nil {
		cfg.Renderer = lipgloss.NewRenderer(out)
		if (cfg.NoColor || cfg.Renderer.ColorProfile() == termenv.Ascii) && os.Getenv("TERM") != "dumb" {
			// termenv drops every attribute under NO_COLOR (and on
			// terminals it does not know); the styles then have no
			// colors, but bold and reverse (the cursor) stay.
			cfg.NoColor = true
			cfg.Renderer.SetColorProfile(termenv.ANSI)
		}
	}
	progCtx, stopProg := context.WithCancel(ctx)
	defer stopProg()
	m := New(progCtx, cfg)
	p := tea.NewProgram(m, tea.WithContext(progCtx), tea.WithInput(in), tea.WithOutput(out),
		tea.WithAltScreen(), tea.WithReportFocus())

	// Live messages and connection changes arrive on the connection's
	// goroutine, which must not block: they queue here (dropped when
	// full) and one goroutine feeds them, the store's wake-ups and the
	// ticks to the program.
	events := make(chan tea.Msg, 256)
	push := func(msg tea.Msg) {
		select {
		case events <- msg:
		default:
		}
	}
	client := cfg.Client
	client.OnLive(func(l bridge.Live) { push(liveMsg(l)) })
	defer client.OnLive(nil)

	// The connection outlives the program briefly, to say "leaving".
	runCtx, stopRun := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	changed := make(chan struct{}, 1)
	go func() {
		defer wg.Done()
		client.Run(runCtx, changed, func(err error) { push(connMsg{err}) })
	}()
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		tick := time.NewTicker(tickInterval)
		defer tick.Stop()
		for {
			wake := client.Changed()
			var msg tea.Msg
			select {
			case <-wake:
				msg = wakeMsg{}
			case <-changed:
				msg = wakeMsg{}
			case msg = <-events:
			case t := <-tick.C:
				msg = tickMsg(t)
			case <-done:
				return
			}
			p.Send(msg) // returns at once when the program has ended
		}
	}()

	_, err := p.Run()
	close(done)
	for _, op := range m.sending {
		op.run() // what was sent is in the outbox before the store closes
	}
	// Withdraw "typing" and "online"; what could not be sent is not
	// missed (the contact's view expires it).
	byeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	if m.typingTo != nil {
		client.SendLive(byeCtx, *m.typingTo, wire.TypeTyping, false)
	}
	for _, c := range m.announcedContacts() {
		client.SendLive(byeCtx, c, wire.TypePresence, false)
	}
	cancel()
	stopProg()
	stopRun()
	wg.Wait()
	switch {
	case errors.Is(err, tea.ErrInterrupted), errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil:
		return nil // ended by a signal: a normal way to quit
	case err != nil:
		return fmt.Errorf("terminal: %w", err)
	}
	return nil
}
