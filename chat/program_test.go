package chat

import (
	"bytes"
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
