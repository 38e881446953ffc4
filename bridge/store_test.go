package bridge_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/wire"
)

// Every earlier schema's file opens, migrated, with nothing lost.
func TestMigrateV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "messages.db")
	script, err := os.ReadFile("testdata/store-v1.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(script)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := bridge.OpenStore(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	recs, err := s.After(ctx, 0, "", 10)
	if err != nil || len(recs) != 3 || string(recs[0].Body) != "hello from bob" || recs[2].State != bridge.StateStored {
		t.Fatalf("history after migration: %+v %v", recs, err)
	}
	out, err := s.Outbox(ctx)
	if err != nil || len(out) != 1 || out[0].ID != recs[1].ID || out[0].Relay != "" {
		t.Fatalf("outbox after migration: %+v %v", out, err)
	}
	if c, ok, _ := s.SavedCursor(ctx, "listen"); !ok || c != 1 {
		t.Fatalf("cursor %d %v", c, ok)
	}
	if st, _ := s.Strangers(ctx); len(st) != 1 || st[0].Count != 3 {
		t.Fatalf("strangers %+v", st)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Opening again finds the current schema.
	s2, err := bridge.OpenStore(path, true)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}

// A store file that is empty (its history gone) or not a wschat store is
// refused, named, and left as it is: never silently replaced.
func TestStoreRefusesEmptyAndForeign(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	old := time.Now().Add(-time.Hour) // a file just made is another process's new store
	os.Chtimes(empty, old, old)
	foreign := filepath.Join(dir, "foreign.db")
	db, _ := sql.Open("sqlite", "file:"+foreign)
	db.Exec(`CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO photos (name) VALUES ('cat')`)
	db.Close()
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte("this is not a database, it is a shopping list: eggs, milk, bread"), 0o600)
	for path, want := range map[string]error{empty: bridge.ErrStoreEmpty, foreign: bridge.ErrNotStore, junk: bridge.ErrNotStore} {
		before, _ := os.ReadFile(path)
		_, err := bridge.OpenStore(path, true)
		var se *bridge.StoreError
		if !errors.Is(err, want) || !errors.As(err, &se) || se.Path != path {
			t.Errorf("%s: %v, want %v", filepath.Base(path), err, want)
		}
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Errorf("%s was changed", filepath.Base(path))
		}
	}
}

// damageIndex overwrites the first page of the messages table's unique
// index (the store must be closed, its log folded in).
func damageIndex(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	var root, size int64
	db.QueryRow(`SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_messages_1'`).Scan(&root)
	db.QueryRow(`PRAGMA page_size`).Scan(&size)
	db.Close()
	if root == 0 {
		t.Fatal("no index found")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, size)
	for i := range junk {
		junk[i] = 0xa5
	}
	if _, err := f.WriteAt(junk, (root-1)*size); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// With one index page of the store overwritten, a receiving client does
// not pretend all is well: the message it cannot store ends Run with a
// *StoreError naming the file, the relay keeps the frame, and Check
// finds the damage.
func TestDamagedStoreFailsLoudly(t *testing.T) {
	r := startRelay(t)
	alice, bob := newParty(t, "alice", r.Addr), newParty(t, "bob", r.Addr)
	befriend(t, alice, bob, "alice", "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, text := range []string{"first", "second"} {
		if _, _, err := alice.client.Send(ctx, alice.contact("bob"), []byte(text), false); err != nil {
			t.Fatal(err)
		}
		if text == "first" {
			if got := bob.receive(1, 5*time.Second); len(got) != 1 {
				t.Fatalf("bob got %d", len(got))
			}
			bob.store.Close()
			damageIndex(t, filepath.Join(bob.dir, "messages.db"))
			bob.open()
		}
	}
	err := bob.client.Run(ctx, nil, nil)
	var se *bridge.StoreError
	if !errors.As(err, &se) || se.Path != filepath.Join(bob.dir, "messages.db") {
		t.Fatalf("Run on a damaged store: %v", err)
	}
	// (The first may be there again too: its Ack can be lost when the
	// first connection closed.)
	if left, _ := r.Mailbox().Pending(bob.id.Public().ID(), 0, 10, false, time.Now()); len(left) == 0 {
		t.Fatal("the relay holds nothing for bob; it should keep what he could not store")
	}
	if err := bob.store.Check(ctx); err == nil {
		t.Fatal("quick_check found nothing")
	}
}

// A message's states only move forward, in Go and in SQL alike.
func TestStateOrder(t *testing.T) {
	order := []bridge.State{bridge.StatePending, bridge.StateStored, bridge.StateDelivered, bridge.StateRead}
	for i := 1; i < len(order); i++ {
		if order[i].Rank() <= order[i-1].Rank() {
			t.Errorf("%s ranks %d, %s %d", order[i], order[i].Rank(), order[i-1], order[i-1].Rank())
		}
	}
	if bridge.StateSent.Rank() != bridge.StateStored.Rank() || bridge.State("bogus").Rank() != -1 {
		t.Error("sent and stored are one step; unknown states rank -1")
	}
	path := filepath.Join(t.TempDir(), "messages.db")
	s, err := bridge.OpenStore(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	peer := newParty(t, "peer", wire.RelayAddress{})
	m := &wire.Message{SentAt: time.Now(), Type: wire.TypeText, Body: []byte("x")}
	if _, err := s.AddOutgoing(ctx, bridge.Outgoing{Peer: peer.id.Public(), Message: m, Envelope: []byte{0}, Record: true}, bridge.Lease{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	fp := peer.id.Public().Fingerprint()
	for _, step := range []struct {
		to   bridge.State
		want bridge.State
	}{{bridge.StateRead, bridge.StateRead}, {bridge.StateDelivered, bridge.StateRead}, {bridge.StateStored, bridge.StateRead}} {
		s.SetState(ctx, fp, step.to, m.ID)
		if got, _ := s.State(ctx, fp, m.ID); got != step.want {
			t.Fatalf("after %s: %s, want %s", step.to, got, step.want)
		}
	}
}

// Processes that open a store that does not exist yet, all at once, share
// the one that the first of them makes (none takes it for an empty store
// whose history is gone).
func TestStoreMadeConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "messages.db")
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			s, err := bridge.OpenStore(path, true)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
