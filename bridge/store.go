package bridge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite

	"github.com/wschat/wschat/wire"
)

// Store is the client's local state in one SQLite file (WAL mode, so
// several wschat processes on one identity can use it at once): the
// message history with a growing cursor, the outbox, and what arrived from
// strangers. Every incoming message is written here before it is
// acknowledged to the relay; `listen`, `chat` and `mcp` read from here.
type Store struct {
	db      *sql.DB
	history bool // keep message bodies after they are handed out

	writes    atomic.Int64 // writes since the last checkpoint
	closeOnce sync.Once
	closeErr  error
	stmts     sync.Map      // query text -> *sql.Stmt, prepared once
	stop      chan struct{} // closed by Close; stops the checkpointer
	done      chan struct{} // closed when the checkpointer has stopped
}

// Message directions.
const (
	DirIn  = "in"
	DirOut = "out"
)

// Outgoing message states.
const (
	StatePending   = "pending"   // in the outbox, not yet in the relay's custody
	StateStored    = "stored"    // the relay holds it for the recipient
	StateSent      = "sent"      // the relay handed it to a receiving connection
	StateDelivered = "delivered" // the recipient's client acknowledged it
	StateRead      = "read"      // a person saw it
)

const schema = `
CREATE TABLE IF NOT EXISTS messages (
	cursor      INTEGER PRIMARY KEY AUTOINCREMENT,
	dir         TEXT    NOT NULL,
	peer_fp     BLOB    NOT NULL,
	peer_id     TEXT    NOT NULL,
	msg_id      BLOB    NOT NULL,
	type        INTEGER NOT NULL,
	body        BLOB,
	sent_at     INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	state       TEXT    NOT NULL DEFAULT '',
	UNIQUE (dir, peer_fp, msg_id)
);
CREATE INDEX IF NOT EXISTS messages_sent_at ON messages (sent_at);
CREATE TABLE IF NOT EXISTS outbox (
	msg_id      BLOB PRIMARY KEY,
	peer_fp     BLOB    NOT NULL,
	envelope    BLOB    NOT NULL,
	to_id       BLOB    NOT NULL,
	flags       INTEGER NOT NULL,
	wait_ack    INTEGER NOT NULL,
	created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
	name        TEXT PRIMARY KEY,
	cursor      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS strangers (
	peer_id     TEXT PRIMARY KEY,
	count       INTEGER NOT NULL,
	first_seen  INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL
);
`

// OpenStore opens (creating if needed, 0600) the store at path.
func OpenStore(path string, history bool) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f.Close()
	// WAL with synchronous=NORMAL: a commit appends to the log without an
	// fsync. Checkpoints (which fsync) run on a goroutine of their own,
	// not inside whichever request happens to fill the log; the last
	// connection to close checkpoints what is left.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(0)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db.SetMaxOpenConns(1) // one writer per process; other processes wait on busy_timeout
	if _, err := db.Exec(schema + schemaRefusals); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %q: %w", path, err)
	}
	s := &Store{db: db, history: history, stop: make(chan struct{}), done: make(chan struct{})}
	go s.checkpointer()
	return s, nil
}

// prepared returns the statement for q, prepared on first use: parsing
// and planning cost as much as running the small statements of a send.
func (s *Store) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if old, loaded := s.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return old.(*sql.Stmt), nil
	}
	return st, nil
}

func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// begin starts a transaction that runs the statements qs, prepared
// first: once tx holds the one connection, preparing would need another.
func (s *Store) begin(ctx context.Context, qs ...string) (*sql.Tx, error) {
	for _, q := range qs {
		if _, err := s.prepared(ctx, q); err != nil {
			return nil, err
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return tx, nil
}

// txExec runs q in tx, with the prepared statement if there is one (see
// begin); it never prepares, which would need a second connection while
// tx holds one.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st, ok := s.stmts.Load(q); ok {
		return tx.StmtContext(ctx, st.(*sql.Stmt)).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, q, args...)
}

// checkpointInterval is how often the log is folded into the database
// when there were writes.
const checkpointInterval = 2 * time.Second

func (s *Store) checkpointer() {
	defer close(s.done)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if s.writes.Swap(0) > 0 {
				s.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
			}
		}
	}
}

// Close stops the checkpointer and closes the store. Closing twice is
// fine.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.stmts.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// Record is one message in the history.
type Record struct {
	Cursor     int64
	Dir        string
	PeerFP     wire.Fingerprint
	PeerID     wire.RoutingID
	ID         wire.MessageID
	Type       wire.MessageType
	Body       []byte
	SentAt     time.Time
	ReceivedAt time.Time
	State      string
}

// ErrDuplicate: the message was recorded before (a redelivery).
var ErrDuplicate = errors.New("message already recorded")

// AddIncoming records a message from a peer. It returns ErrDuplicate for
// a message already recorded, which the caller acknowledges again but does
// not show. Without history the body is kept only until it has been read
// once (the row stays, empty, as the replay record).
func (s *Store) AddIncoming(ctx context.Context, peer wire.PublicIdentity, m *wire.Message, now time.Time) (int64, error) {
	s.writes.Add(1)
	fp := peer.Fingerprint()
	res, err := s.exec(ctx, `INSERT OR IGNORE INTO messages
		(dir, peer_fp, peer_id, msg_id, type, body, sent_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		DirIn, fp[:], peer.ID().String(), m.ID[:], int(m.Type), m.Body, m.SentAt.UnixMilli(), now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, ErrDuplicate
	}
	return res.LastInsertId()
}

// Statements of AddOutgoing.
const (
	insertOutgoing = `INSERT INTO messages
		(dir, peer_fp, peer_id, msg_id, type, body, sent_at, received_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertOutbox = `INSERT INTO outbox (msg_id, peer_fp, envelope, to_id, flags, wait_ack, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`
)

// AddOutgoing records a message this identity sends and puts its envelope
// in the outbox, in one transaction.
func (s *Store) AddOutgoing(ctx context.Context, peer wire.PublicIdentity, m *wire.Message, env []byte, flags byte, waitAck bool, now time.Time) (int64, error) {
	s.writes.Add(1)
	tx, err := s.begin(ctx, insertOutgoing, insertOutbox)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	fp, to := peer.Fingerprint(), peer.ID()
	body := m.Body
	if !s.history {
		body = nil
	}
	res, err := s.txExec(ctx, tx, insertOutgoing,
		DirOut, fp[:], to.String(), m.ID[:], int(m.Type), body, m.SentAt.UnixMilli(), now.UnixMilli(), StatePending)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	cursor, _ := res.LastInsertId()
	if _, err := s.txExec(ctx, tx, insertOutbox,
		m.ID[:], fp[:], env, to[:], int(flags), waitAck, now.UnixMilli()); err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return cursor, tx.Commit()
}

// Pending is an outbox entry.
type Pending struct {
	ID       wire.MessageID
	PeerFP   wire.Fingerprint
	To       wire.RoutingID
	Envelope []byte
	Flags    byte
	WaitAck  bool

	// saved is closed once the entry is committed to the outbox, when Send
	// hands it to the relay while the commit runs; nil for an entry read
	// from the outbox. Its state may be saved only after that.
	saved <-chan struct{}
}

// Outbox lists what waits to be handed to the relay, oldest first.
func (s *Store) Outbox(ctx context.Context) ([]Pending, error) {
	// CROSS JOIN keeps the (small) outbox as the outer loop; a plain join
	// let SQLite scan every outgoing message in the history.
	rows, err := s.query(ctx, `SELECT o.msg_id, o.peer_fp, o.to_id, o.envelope, o.flags, o.wait_ack
		FROM outbox o CROSS JOIN messages m ON m.dir = 'out' AND m.msg_id = o.msg_id AND m.peer_fp = o.peer_fp
		WHERE m.state = ? ORDER BY o.created_at`, StatePending)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []Pending
	for rows.Next() {
		var p Pending
		var id, fp, to []byte
		if err := rows.Scan(&id, &fp, &to, &p.Envelope, &p.Flags, &p.WaitAck); err != nil {
			return nil, err
		}
		copy(p.ID[:], id)
		copy(p.PeerFP[:], fp)
		copy(p.To[:], to)
		out = append(out, p)
	}
	return out, rows.Err()
}

// Statements of SetState.
var (
	updateState = `UPDATE messages SET state = ?
		WHERE dir = 'out' AND peer_fp = ? AND msg_id = ? AND ` + stateRank("state") + ` < ` + stateRank("?")
	deleteOutbox = `DELETE FROM outbox WHERE peer_fp = ? AND msg_id = ? AND (wait_ack = 0 OR ? IN ('delivered', 'read'))`
)

// SetState records the new state of an outgoing message; states only move
// forward (pending < sent/stored < delivered < read). A state past pending
// takes the message out of the outbox (unless it waits for the contact's
// acknowledgement), in the same transaction.
func (s *Store) SetState(ctx context.Context, peer wire.Fingerprint, id wire.MessageID, state string) (bool, error) {
	s.writes.Add(1)
	tx, err := s.begin(ctx, updateState, deleteOutbox)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	res, err := s.txExec(ctx, tx, updateState, state, peer[:], id[:], state)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	n, _ := res.RowsAffected()
	if state != StatePending {
		if _, err := s.txExec(ctx, tx, deleteOutbox, peer[:], id[:], state); err != nil {
			return false, fmt.Errorf("store: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	return n > 0, nil
}

func stateRank(x string) string {
	return `(CASE ` + x + ` WHEN 'pending' THEN 0 WHEN 'sent' THEN 1 WHEN 'stored' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 ELSE -1 END)`
}

// State is the state of an outgoing message ("" if unknown).
func (s *Store) State(ctx context.Context, peer wire.Fingerprint, id wire.MessageID) (string, error) {
	var st string
	stmt, err := s.prepared(ctx, `SELECT state FROM messages WHERE dir = 'out' AND peer_fp = ? AND msg_id = ?`)
	if err != nil {
		return "", err
	}
	err = stmt.QueryRowContext(ctx, peer[:], id[:]).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return st, err
}

// After returns up to limit records with a cursor above after, oldest
// first. dir "" means both directions.
func (s *Store) After(ctx context.Context, after int64, dir string, limit int) ([]Record, error) {
	q := `SELECT ` + recordColumns + ` FROM messages WHERE cursor > ?`
	args := []any{after}
	if dir != "" {
		// "+dir": scan by cursor (the rowid), not by the (dir, ...) index,
		// which would sort every row of that direction on each call.
		q += ` AND +dir = ?`
		args = append(args, dir)
	}
	q += ` ORDER BY cursor LIMIT ?`
	args = append(args, limit)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return scanRecords(rows)
}

// recordColumns are the columns scanRecords reads, in its order.
const recordColumns = `cursor, dir, peer_fp, peer_id, msg_id, type, body, sent_at, received_at, state`

// scanRecords reads rows of recordColumns and closes them.
func scanRecords(rows *sql.Rows) ([]Record, error) {
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		var fp, id []byte
		var pid string
		var sent, recv int64
		var typ int
		if err := rows.Scan(&r.Cursor, &r.Dir, &fp, &pid, &id, &typ, &r.Body, &sent, &recv, &r.State); err != nil {
			return nil, err
		}
		copy(r.PeerFP[:], fp)
		copy(r.ID[:], id)
		r.PeerID, _ = wire.ParseRoutingID(pid)
		r.Type = wire.MessageType(typ)
		r.SentAt, r.ReceivedAt = time.UnixMilli(sent), time.UnixMilli(recv)
		out = append(out, r)
	}
	return out, rows.Err()
}

// SavedCursor is the cursor a consumer (such as "listen") saved last, and
// whether it saved one.
func (s *Store) SavedCursor(ctx context.Context, name string) (int64, bool, error) {
	var c int64
	err := s.db.QueryRowContext(ctx, `SELECT cursor FROM cursors WHERE name = ?`, name).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return c, err == nil, err
}

// SaveCursor records how far a consumer has handed messages out; it never
// moves back.
func (s *Store) SaveCursor(ctx context.Context, name string, cursor int64) error {
	s.writes.Add(1)
	_, err := s.db.ExecContext(ctx, `INSERT INTO cursors (name, cursor) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET cursor = MAX(cursor, excluded.cursor)`, name, cursor)
	return err
}

// LastCursor is the highest cursor in the store (0 when empty).
func (s *Store) LastCursor(ctx context.Context) (int64, error) {
	var c sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(cursor) FROM messages`).Scan(&c)
	return c.Int64, err
}

// Forget blanks the bodies of incoming messages with a cursor in (from,
// upTo] once they have been handed out, when history is off.
func (s *Store) Forget(ctx context.Context, from, upTo int64) error {
	s.writes.Add(1)
	if s.history {
		return nil
	}
	_, err := s.db.ExecContext(ctx, `UPDATE messages SET body = NULL WHERE cursor > ? AND cursor <= ? AND body IS NOT NULL`, from, upTo)
	return err
}

// Prune drops messages sent before the replay horizon: they would be
// refused if they came again, so their records are no longer needed.
func (s *Store) Prune(ctx context.Context, now time.Time) error {
	s.writes.Add(1)
	_, err := s.db.ExecContext(ctx, `DELETE FROM messages WHERE sent_at < ?`, now.Add(-wire.ReplayHorizon).UnixMilli())
	return err
}

// AddStranger counts a frame from an identity that is not a contact.
func (s *Store) AddStranger(ctx context.Context, id wire.RoutingID, now time.Time) error {
	s.writes.Add(1)
	_, err := s.db.ExecContext(ctx, `INSERT INTO strangers (peer_id, count, first_seen, last_seen) VALUES (?, 1, ?, ?)
		ON CONFLICT (peer_id) DO UPDATE SET count = count + 1, last_seen = excluded.last_seen`, id.String(), now.UnixMilli(), now.UnixMilli())
	return err
}

// Stranger counts what arrived from one identity that is not a contact.
type Stranger struct {
	ID       wire.RoutingID
	Count    int
	LastSeen time.Time
}

// Strangers lists them.
func (s *Store) Strangers(ctx context.Context) ([]Stranger, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT peer_id, count, last_seen FROM strangers ORDER BY peer_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Stranger
	for rows.Next() {
		var x Stranger
		var id string
		var last int64
		if err := rows.Scan(&id, &x.Count, &last); err != nil {
			return nil, err
		}
		x.ID, _ = wire.ParseRoutingID(id)
		x.LastSeen = time.UnixMilli(last)
		out = append(out, x)
	}
	return out, rows.Err()
}
