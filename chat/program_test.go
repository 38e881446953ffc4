package chat

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/wire"
)

// TestProgram runs the model as a bubbletea program (teatest): the history
// appears, typed text is sent, its state follows the store, Esc quits.
func TestProgram(t *testing.T) {
	f := newFixture(t, true)
	f.receive(f.bob, "ping from bob")
	m := New(f.ctx, Config{Client: f.client, Book: f.book, Self: f.self.Public(), Contact: "bob", Now: f.clock.Now})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(80, 20))
	waitFor := func(s string) {
		t.Helper()
		teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(s)) },
			teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
	}
	waitFor("ping from bob")
	tm.Type("pong")
	tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
	waitFor("sending")

	var texts []bridge.Record
	for deadline := time.Now().Add(10 * time.Second); len(texts) == 0 && time.Now().Before(deadline); {
		texts = f.outgoing(wire.TypeText)
		time.Sleep(10 * time.Millisecond)
	}
	if len(texts) != 1 || string(texts[0].Body) != "pong" {
		t.Fatalf("sent %+v", texts)
	}
	f.store.SetState(f.ctx, f.bob.Public().Fingerprint(), bridge.StateRead, texts[0].ID)
	tm.Send(wakeMsg{})
	waitFor("read")

	tm.Send(tea.KeyMsg{Type: tea.KeyEsc})
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(*Model)
	var got []string
	for _, e := range fm.entries {
		got = append(got, e.text+"/"+string(e.state))
	}
	if len(got) != 2 || got[0] != "ping from bob/" || got[1] != "pong/read" {
		t.Fatalf("entries %q", got)
	}
	if n := len(f.outgoing(wire.TypeRead)); n != 1 {
		t.Fatalf("%d read acknowledgements, want 1", n)
	}
}

// The bytes of a burst, as tmux send-keys or a paste without bracketed
// paste deliver them, parsed by bubbletea itself: each line arrives as
// typed, and only the final carriage return sends.
func TestProgramBurst(t *testing.T) {
	f := newFixture(t, true)
	m := New(f.ctx, Config{Client: f.client, Book: f.book, Self: f.self.Public(), Contact: "bob", Now: f.clock.Now})
	in, w := io.Pipe()
	ready := make(chan struct{})
	out := &watcher{want: []byte("Enter send"), seen: ready}
	p := tea.NewProgram(m, tea.WithInput(in), tea.WithOutput(out), tea.WithoutSignals())
	done := make(chan error, 1)
	go func() { _, err := p.Run(); done <- err }()
	p.Send(tea.WindowSizeMsg{Width: 80, Height: 20})
	select { // the conversation is on screen: a person starts typing
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the chat never drew its input")
	}
	lines := []string{"press enter twice", "the esc key", "go down now", "home end delete up left"}
	go func() {
		for _, l := range lines {
			if _, err := io.WriteString(w, l+"\r"); err != nil {
				return // the program quit (as "the esc key" made it)
			}
			time.Sleep(50 * time.Millisecond) // one burst per line, as a person would send them
		}
	}()
	var texts []bridge.Record
	for deadline := time.Now().Add(10 * time.Second); len(texts) < len(lines) && time.Now().Before(deadline); {
		texts = f.outgoing(wire.TypeText)
		time.Sleep(10 * time.Millisecond)
	}
	p.Quit()
	in.Close()
	<-done
	if len(texts) != len(lines) {
		for _, r := range texts {
			t.Logf("sent %q", r.Body)
		}
		t.Fatalf("sent %d messages, want %d", len(texts), len(lines))
	}
	for i, l := range lines {
		if string(texts[i].Body) != l {
			t.Errorf("message %d: %q, want %q", i, texts[i].Body, l)
		}
	}
}

// watcher is an output that closes seen once want has been written.
type watcher struct {
	mu   sync.Mutex
	buf  []byte
	want []byte
	seen chan struct{}
}

func (w *watcher) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf == nil || len(w.buf) < 1<<20 {
		w.buf = append(w.buf, b...)
	}
	if w.want != nil && bytes.Contains(w.buf, w.want) {
		close(w.seen)
		w.want = nil
	}
	return len(b), nil
}
