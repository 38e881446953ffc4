package web_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

// agentSide is the CLI agent's home opened through the library, to send
// what the CLI has no command for (questions, approval requests) and to
// read what arrived.
type agentSide struct {
	t      *testing.T
	home   string
	client *bridge.Client
	store  *bridge.Store
	book   *keys.Book
}

func openAgent(t *testing.T, home string) *agentSide {
	t.Helper()
	f, err := keys.Load(filepath.Join(home, "identity"), nil)
	if err != nil {
		t.Fatal(err)
	}
	book, err := keys.OpenBook(filepath.Join(home, "contacts"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := bridge.OpenStore(filepath.Join(home, "messages.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := wire.ParseRelayAddress(f.Relay)
	if err != nil {
		t.Fatal(err)
	}
	c := bridge.NewClient(bridge.Config{Identity: f.Identity, Relay: addr, Book: book, Store: store})
	t.Cleanup(func() { c.Close(); store.Close() })
	return &agentSide{t: t, home: home, client: c, store: store, book: book}
}

// queue puts a message in the agent's outbox; the next CLI send hands it
// over with its own.
func (a *agentSide) queue(to string, typ wire.MessageType, body []byte) wire.MessageID {
	a.t.Helper()
	c, err := a.book.Get(to)
	if err != nil {
		a.t.Fatal(err)
	}
	id, err := a.client.Queue(context.Background(), c, typ, body)
	if err != nil {
		a.t.Fatal(err)
	}
	return id
}

// waitFor returns the first incoming message of typ for which ok holds.
func (a *agentSide) waitFor(typ wire.MessageType, ok func(bridge.Record) bool) bridge.Record {
	a.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		recs, err := a.store.After(context.Background(), 0, bridge.DirIn, 10000)
		if err != nil {
			a.t.Fatal(err)
		}
		for _, r := range recs {
			if r.Type == typ && ok(r) {
				return r
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.t.Fatalf("no %s arrived", typ)
	return bridge.Record{}
}

// TestWebQuestionsAndApprovals: the page shows an agent's question as
// numbered options and its approval request apart from text, with Allow
// and Deny while it is open; the person's choices go back as a reply that
// names the question and as an approval answer bound to the request; any
// message can be answered with a reply that quotes it.
func TestWebQuestionsAndApprovals(t *testing.T) {
	p := newPairing(t, startRelay(t))
	b := p.b
	agent := openAgent(t, p.agent)
	qb, err := wire.Question{Text: "Merge to main?", Choices: []string{"yes", "no", "after the tests"}}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	qid := agent.queue("ana", wire.TypeQuestion, qb)
	ab, err := wire.ApprovalRequest{RequestID: "abcde", ExpiresAt: time.Now().Add(10 * time.Minute), Tool: "Bash", Description: "Run the test suite", InputPreview: `{"command":"go test ./... <script>x</script>"}`}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	rid := agent.queue("ana", wire.TypeApprovalRequest, ab)
	startListen(t, p.agent) // the agent's side stores what comes back
	mustCLI(t, p.agent, "send", "--to", "ana", "one more thing")
	waitText(t, b, "one more thing")
	b.waitJS(`document.querySelectorAll('#messages .choice').length === 3 && !!document.querySelector('#messages .approval .allow')`, 10*time.Second)
	if warn := eval[string](b, `document.querySelector('.approval .warn')?.textContent || ''`); warn == "" {
		t.Error("no warning that the agent is not verified")
	}
	if n := eval[int](b, `document.querySelectorAll('#messages script').length`); n != 0 {
		t.Fatal("the preview became markup")
	}
	b.shot("desktop-question-approval")

	// Option 3 of the question.
	b.click(`#messages .choice:nth-child(3)`)
	reply := agent.waitFor(wire.TypeReply, func(r bridge.Record) bool { return true })
	rp, err := wire.ParseReply(reply.Body)
	if err != nil || rp.To != qid || rp.Choice != 3 || rp.Text != "after the tests" {
		t.Fatalf("reply %+v, %v", rp, err)
	}
	b.waitJS(`document.querySelector('#messages .choice.picked')?.textContent === '3. after the tests'`, 5*time.Second)

	// Allow: an answer bound to the request; the card closes.
	b.click(`#messages .approval .allow`)
	ans := agent.waitFor(wire.TypeApprovalAnswer, func(r bridge.Record) bool { return true })
	aa, err := wire.ParseApprovalAnswer(ans.Body)
	if err != nil || aa.Request != rid || aa.RequestID != "abcde" || !aa.Allow {
		t.Fatalf("approval answer %+v, %v", aa, err)
	}
	b.waitJS(`!document.querySelector('#messages .approval .allow') && document.querySelector('#messages .approval').textContent.includes('You allowed it')`, 5*time.Second)

	// A reply to a text quotes it.
	eval[chromedp.Void](b, `[...document.querySelectorAll('#messages .msg.in')].filter(m => m.textContent.includes('one more thing')).pop().querySelector('.reply-to').click()`)
	b.do(chromedp.SendKeys(`#compose`, "noted"), chromedp.Click(`#send`))
	tr := agent.waitFor(wire.TypeReply, func(r bridge.Record) bool {
		x, err := wire.ParseReply(r.Body)
		return err == nil && x.Text == "noted"
	})
	x, _ := wire.ParseReply(tr.Body)
	if x.Choice != 0 {
		t.Errorf("text reply with choice %d", x.Choice)
	}
	b.waitJS(`[...document.querySelectorAll('#messages .quote')].some(q => q.textContent.includes('one more thing'))`, 5*time.Second)
	b.waitJS(`!document.querySelector('.badge')`, 5*time.Second) // seen while open: read
	b.shot("desktop-replies")
	if errs := b.errors(); len(errs) > 0 {
		t.Fatalf("page errors: %q", errs)
	}
}
