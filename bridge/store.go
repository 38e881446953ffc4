package bridge

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite
)

// Store is the client's local state in one SQLite file (WAL mode, so
// several wschat processes on one identity can use it at once): the
// message history with a growing cursor, the outbox, what arrived from
// strangers, and the relays an identity moved away from. Every incoming
// message is written here before it is acknowledged to the relay;
// `listen`, `chat` and `mcp` read from here.
type Store struct {
	db      *sql.DB       // set before opened closes; use through sqlDB
	opened  chan struct{} // closed once the file is open (or failed to)
	path    string        // static
	history bool          // static: keep message bodies after they are handed out

	openErr   error        // set before opened closes
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

// SchemaVersion is the store's schema version (PRAGMA user_version).
// History:
//
//	1 (2026-11) messages, outbox joined to messages, cursors, strangers;
//	  user_version 0, no application id; later also refusals.
//	2 (2026-12) the outbox stands alone (receipts may wait in it too),
//	  names the relay each entry goes to and records attempts, the last
//	  error and a lease (one process hands an entry over at a time);
//	  messages record a relay's refusal; drain lists relays an identity
//	  moved away from; application id set.
const SchemaVersion = 2

// justMade: an empty store file younger than this is being made by
// another process, not one whose history was lost.
const justMade = time.Minute

// applicationID marks a SQLite file as a wschat store ("wsct").
const applicationID = 0x77736374

const schemaV2 = `
CREATE TABLE messages (
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
	refusal     TEXT    NOT NULL DEFAULT '',
	UNIQUE (dir, peer_fp, msg_id)
);
CREATE INDEX messages_sent_at ON messages (sent_at);
CREATE TABLE cursors (
	name        TEXT PRIMARY KEY,
	cursor      INTEGER NOT NULL
);
CREATE TABLE strangers (
	peer_id     TEXT PRIMARY KEY,
	count       INTEGER NOT NULL,
	first_seen  INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL
);
` + outboxV2 + drainV2

const outboxV2 = `
CREATE TABLE outbox (
	msg_id      BLOB PRIMARY KEY,
	peer_fp     BLOB    NOT NULL,
	to_id       BLOB    NOT NULL,
	relay       TEXT    NOT NULL,
	envelope    BLOB    NOT NULL,
	flags       INTEGER NOT NULL,
	created_at  INTEGER NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT    NOT NULL DEFAULT '',
	lease_owner BLOB    NOT NULL DEFAULT x'',
	lease_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_relay ON outbox (relay, created_at);
`

const drainV2 = `
CREATE TABLE drain (
	relay       TEXT PRIMARY KEY,
	until       INTEGER NOT NULL
);
`

// migrateV1 turns a version 1 store into version 2. Outbox entries of
// version 1 that a relay had already taken (kept only to wait for the
// contact's acknowledgement) are dropped: the outbox now holds only what
// no relay has.
const migrateV1 = `
ALTER TABLE messages ADD COLUMN refusal TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox RENAME TO outbox_v1;
` + outboxV2 + `
INSERT INTO outbox (msg_id, peer_fp, to_id, relay, envelope, flags, created_at)
	SELECT o.msg_id, o.peer_fp, o.to_id, '', o.envelope, o.flags, o.created_at
	FROM outbox_v1 o JOIN messages m ON m.dir = 'out' AND m.msg_id = o.msg_id AND m.peer_fp = o.peer_fp
	WHERE m.state = 'pending';
DROP TABLE outbox_v1;
` + drainV2

// migrateV1Refusals moves the refusals table of late schema-1 stores
// into the messages' refusal column.
const migrateV1Refusals = `
UPDATE messages SET refusal = (SELECT reason FROM refusals r WHERE r.peer_fp = messages.peer_fp AND r.msg_id = messages.msg_id)
	WHERE dir = 'out' AND state = 'refused';
DROP TABLE refusals;
`

// StoreError is a failure of the store file: it could not be opened,
// read or written. Nothing that needs the store can go on; the person is
// told the file and what to do.
type StoreError struct {
	Path string
	Err  error
}

func (e *StoreError) Error() string { return fmt.Sprintf("message store %s: %v", e.Path, e.Err) }
func (e *StoreError) Unwrap() error { return e.Err }

// Store open errors (wrapped in a *StoreError).
var (
	// ErrNotStore: the file is not a wschat store (another SQLite
	// database, or not SQLite at all). It is left as it is.
	ErrNotStore = errors.New("not a wschat message store")
	// ErrStoreEmpty: the file exists but is empty (0 bytes, no log), so
	// its history is gone. It is not silently made anew.
	ErrStoreEmpty = errors.New("the store file is empty (0 bytes): its history is gone")
	// ErrStoreNewer: the store was written by a newer wschat.
	ErrStoreNewer = errors.New("the store was written by a newer wschat")
)

func (s *Store) fail(err error) error {
	if err == nil {
		return nil
	}
	var se *StoreError
	if errors.As(err, &se) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &StoreError{Path: s.path, Err: err}
}

// OpenStore opens (creating if needed, 0600) the store at path, migrating
// it from an earlier schema version. It refuses a file that is not a
// wschat store and an empty file that held one; errors are *StoreError.
func OpenStore(path string, history bool) (*Store, error) {
	s := OpenStoreInBackground(path, history)
	if err := s.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// OpenStoreInBackground is OpenStore on a goroutine of its own: it returns
// at once, and the store's methods wait for the file to be open (and
// return OpenStore's error if it failed; so does Err). A one-shot program
// uses it to connect to its relay meanwhile: the latency trick of a cold
// `wschat send` (with the dial during the commit, see Client.Send).
func OpenStoreInBackground(path string, history bool) *Store {
	s := &Store{opened: make(chan struct{}), path: path, history: history, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		db, err := openDB(path)
		if err != nil {
			s.openErr = &StoreError{Path: path, Err: err}
			db = sql.OpenDB(failing{s.openErr})
			close(s.done)
		} else {
			go s.checkpointer()
		}
		s.db = db
		close(s.opened)
	}()
	return s
}

// Err waits for the store to be open and reports why it could not be.
func (s *Store) Err() error {
	<-s.opened
	return s.openErr
}

// sqlDB is the database, once open (one whose every call fails with the
// open error, if it could not be).
func (s *Store) sqlDB() *sql.DB {
	<-s.opened
	return s.db
}

// failing is a database connector that fails with err.
type failing struct{ err error }

func (f failing) Connect(context.Context) (driver.Conn, error) { return nil, f.err }
func (f failing) Driver() driver.Driver                        { return nil }

func openDB(path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.Size() == 0:
		// Empty: another process may be making it this very moment (it
		// creates the file, then writes the schema), or a store in WAL
		// mode may have everything in its log still. Otherwise its
		// history is gone, and it is not silently made anew.
		wal, werr := os.Stat(path + "-wal")
		if (werr != nil || wal.Size() == 0) && time.Since(fi.ModTime()) > justMade {
			return nil, ErrStoreEmpty
		}
	case errors.Is(err, os.ErrNotExist):
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if f != nil {
			f.Close()
		}
	case err != nil:
		return nil, err
	}
	// WAL with synchronous=NORMAL: a commit appends to the log without an
	// fsync. Checkpoints (which fsync) run on a goroutine of their own,
	// not inside whichever request happens to fill the log; the last
	// connection to close checkpoints what is left. (journal_mode=WAL,
	// which changes the file, is set by migrate once the file is known
	// to be a wschat store.)
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(0)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // one writer per process; other processes wait on busy_timeout
	if err := migrate(db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// migrate brings the schema to SchemaVersion in one transaction, or
// refuses a database that is not a wschat store.
func migrate(db *sql.DB) (err error) {
	var version, app int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		return notStore(err)
	}
	if err := db.QueryRow(`PRAGMA application_id`).Scan(&app); err != nil {
		return notStore(err)
	}
	if version == SchemaVersion && app == applicationID {
		return nil // made or migrated before, in WAL mode
	}
	// WAL mode is kept in the file: set once, here, now that the file is
	// known to be empty or a wschat store (a foreign file is not touched).
	defer func() {
		if err == nil {
			_, err = db.Exec(`PRAGMA journal_mode = WAL`)
		}
	}()
	tx, err := db.Begin() // immediate: another process may migrate at once
	if err != nil {
		return notStore(err)
	}
	defer tx.Rollback()
	// Read again under the write lock.
	tx.QueryRow(`PRAGMA user_version`).Scan(&version)
	tx.QueryRow(`PRAGMA application_id`).Scan(&app)
	var tables int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).Scan(&tables); err != nil {
		return notStore(err)
	}
	var hasMessages int
	tx.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'messages'`).Scan(&hasMessages)
	switch {
	case app != 0 && app != applicationID:
		return fmt.Errorf("%w (application id %#x)", ErrNotStore, app)
	case version > SchemaVersion:
		return fmt.Errorf("%w (schema %d; this wschat knows up to %d): upgrade wschat", ErrStoreNewer, version, SchemaVersion)
	case version == SchemaVersion && app == applicationID:
		return nil
	case version == 0 && tables == 0:
		if _, err := tx.Exec(schemaV2); err != nil {
			return err
		}
	case version == 0 && app == 0 && hasMessages == 1:
		if _, err := tx.Exec(migrateV1); err != nil {
			return fmt.Errorf("migrating from schema 1: %w", err)
		}
		// Late schema-1 stores recorded refusals in a table of their own.
		var hasRefusals int
		tx.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'refusals'`).Scan(&hasRefusals)
		if hasRefusals == 1 {
			if _, err := tx.Exec(migrateV1Refusals); err != nil {
				return fmt.Errorf("migrating from schema 1: %w", err)
			}
		}
	case version == SchemaVersion:
		// Ours, written before the application id (never released).
	default:
		return fmt.Errorf("%w (it has %d tables of something else)", ErrNotStore, tables)
	}
	if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d; PRAGMA application_id = %d`, SchemaVersion, applicationID)); err != nil {
		return err
	}
	return tx.Commit()
}

func notStore(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrNotStore, err)
}

// Path is the store file's path.
func (s *Store) Path() string { return s.path }

// Check runs SQLite's quick_check and reports the first problem it finds
// (nil when the file is sound).
func (s *Store) Check(ctx context.Context) error {
	rows, err := s.sqlDB().QueryContext(ctx, `PRAGMA quick_check`)
	if err != nil {
		return s.fail(err)
	}
	defer rows.Close()
	var first string
	n := 0
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return s.fail(err)
		}
		if n == 0 {
			first = line
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return s.fail(err)
	}
	if n == 1 && first == "ok" {
		return nil
	}
	return s.fail(fmt.Errorf("damaged: %s (%d problems)", first, n))
}

// prepared returns the statement for q, prepared on first use: parsing
// and planning cost as much as running the small statements of a send.
func (s *Store) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.sqlDB().PrepareContext(ctx, q)
	if err != nil {
		return nil, s.fail(err)
	}
	if old, loaded := s.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return old.(*sql.Stmt), nil
	}
	return st, nil
}

func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	s.writes.Add(1)
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	res, err := st.ExecContext(ctx, args...)
	return res, s.fail(err)
}

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, args...)
	return rows, s.fail(err)
}

// tx runs f in a transaction whose statements qs are prepared first
// (once tx holds the one connection, preparing would need another), and
// commits it.
func (s *Store) tx(ctx context.Context, f func(tx *storeTx) error, qs ...string) error {
	s.writes.Add(1)
	for _, q := range qs {
		if _, err := s.prepared(ctx, q); err != nil {
			return err
		}
	}
	tx, err := s.sqlDB().BeginTx(ctx, nil)
	if err != nil {
		return s.fail(err)
	}
	defer tx.Rollback()
	if err := f(&storeTx{s: s, tx: tx, ctx: ctx}); err != nil {
		return s.fail(err)
	}
	return s.fail(tx.Commit())
}

// storeTx is a transaction with the store's prepared statements.
type storeTx struct {
	s   *Store
	tx  *sql.Tx
	ctx context.Context
}

func (t *storeTx) exec(q string, args ...any) (sql.Result, error) {
	if st, ok := t.s.stmts.Load(q); ok {
		return t.tx.StmtContext(t.ctx, st.(*sql.Stmt)).ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, q, args...)
}

func (t *storeTx) query(q string, args ...any) (*sql.Rows, error) {
	if st, ok := t.s.stmts.Load(q); ok {
		return t.tx.StmtContext(t.ctx, st.(*sql.Stmt)).QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, q, args...)
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
				s.sqlDB().Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
			}
		}
	}
}

// Close stops the checkpointer and closes the store. Closing twice is
// fine.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		<-s.opened
		close(s.stop)
		<-s.done
		s.stmts.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
		s.closeErr = s.fail(s.sqlDB().Close())
	})
	return s.closeErr
}
