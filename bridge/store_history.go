package bridge

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/wschat/wschat/wire"
)

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
	State      State  // outgoing messages only
	Refusal    string // why a relay refused it, for StateRefused
}

// ErrDuplicate: the message was recorded before (a redelivery).
var ErrDuplicate = errors.New("message already recorded")

const insertIncoming = `INSERT OR IGNORE INTO messages
	(dir, peer_fp, peer_id, msg_id, type, body, sent_at, received_at) VALUES ('in', ?, ?, ?, ?, ?, ?, ?)`

// AddIncoming records a message from a peer. It returns ErrDuplicate for
// a message already recorded, which the caller acknowledges again but does
// not show. Without history the body is kept only until it has been read
// once (the row stays, empty, as the replay record).
func (s *Store) AddIncoming(ctx context.Context, peer wire.PublicIdentity, m *wire.Message, now time.Time) (int64, error) {
	fp := peer.Fingerprint()
	res, err := s.exec(ctx, insertIncoming,
		fp[:], peer.ID().String(), m.ID[:], int(m.Type), m.Body, m.SentAt.UnixMilli(), now.UnixMilli())
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, ErrDuplicate
	}
	return res.LastInsertId()
}

// updateState moves an outgoing message's state forward only.
var updateState = `UPDATE messages SET state = ?
	WHERE dir = 'out' AND peer_fp = ? AND msg_id = ? AND ` + rankSQL("state") + ` < ` + rankSQL("?")

// SetState records a contact's acknowledgement of outgoing messages
// (StateDelivered, StateRead); states only move forward. It reports
// whether any message moved.
func (s *Store) SetState(ctx context.Context, peer wire.Fingerprint, state State, ids ...wire.MessageID) (bool, error) {
	moved := false
	err := s.tx(ctx, func(tx *storeTx) error {
		for _, id := range ids {
			res, err := tx.exec(updateState, string(state), peer[:], id[:], string(state))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				moved = true
			}
		}
		return nil
	}, updateState)
	return moved, err
}

// State is the state of an outgoing message ("" if unknown).
func (s *Store) State(ctx context.Context, peer wire.Fingerprint, id wire.MessageID) (State, error) {
	var st string
	stmt, err := s.prepared(ctx, `SELECT state FROM messages WHERE dir = 'out' AND peer_fp = ? AND msg_id = ?`)
	if err != nil {
		return "", err
	}
	err = stmt.QueryRowContext(ctx, peer[:], id[:]).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return State(st), s.fail(err)
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
		return nil, err
	}
	recs, err := scanRecords(rows)
	return recs, s.fail(err)
}

// recordColumns are the columns scanRecords reads, in its order.
const recordColumns = `cursor, dir, peer_fp, peer_id, msg_id, type, body, sent_at, received_at, state, refusal`

// scanRecords reads rows of recordColumns and closes them.
func scanRecords(rows *sql.Rows) ([]Record, error) {
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		var fp, id []byte
		var pid, st string
		var sent, recv int64
		var typ int
		if err := rows.Scan(&r.Cursor, &r.Dir, &fp, &pid, &id, &typ, &r.Body, &sent, &recv, &st, &r.Refusal); err != nil {
			return nil, err
		}
		copy(r.PeerFP[:], fp)
		copy(r.ID[:], id)
		r.PeerID, _ = wire.ParseRoutingID(pid)
		r.Type = wire.MessageType(typ)
		r.State = State(st)
		r.SentAt, r.ReceivedAt = time.UnixMilli(sent), time.UnixMilli(recv)
		out = append(out, r)
	}
	return out, rows.Err()
}

// SavedCursor is the cursor a consumer (such as "listen") saved last, and
// whether it saved one.
func (s *Store) SavedCursor(ctx context.Context, name string) (int64, bool, error) {
	var c int64
	err := s.sqlDB().QueryRowContext(ctx, `SELECT cursor FROM cursors WHERE name = ?`, name).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return c, err == nil, s.fail(err)
}

// SaveCursor records how far a consumer has handed messages out; it never
// moves back.
func (s *Store) SaveCursor(ctx context.Context, name string, cursor int64) error {
	_, err := s.exec(ctx, `INSERT INTO cursors (name, cursor) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET cursor = MAX(cursor, excluded.cursor)`, name, cursor)
	return err
}

// LastCursor is the highest cursor in the store (0 when empty).
func (s *Store) LastCursor(ctx context.Context) (int64, error) {
	var c sql.NullInt64
	err := s.sqlDB().QueryRowContext(ctx, `SELECT MAX(cursor) FROM messages`).Scan(&c)
	return c.Int64, s.fail(err)
}

// Forget blanks the bodies of incoming messages with a cursor in (from,
// upTo] once they have been handed out, when history is off.
func (s *Store) Forget(ctx context.Context, from, upTo int64) error {
	if s.history {
		return nil
	}
	_, err := s.exec(ctx, `UPDATE messages SET body = NULL WHERE cursor > ? AND cursor <= ? AND body IS NOT NULL`, from, upTo)
	return err
}

// Prune drops messages sent before the replay horizon: they would be
// refused if they came again, so their records are no longer needed.
func (s *Store) Prune(ctx context.Context, now time.Time) error {
	_, err := s.exec(ctx, `DELETE FROM messages WHERE sent_at < ?`, now.Add(-wire.ReplayHorizon).UnixMilli())
	return err
}

// AddStranger counts a frame from an identity that is not a contact.
func (s *Store) AddStranger(ctx context.Context, id wire.RoutingID, now time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO strangers (peer_id, count, first_seen, last_seen) VALUES (?, 1, ?, ?)
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
	rows, err := s.sqlDB().QueryContext(ctx, `SELECT peer_id, count, last_seen FROM strangers ORDER BY peer_id`)
	if err != nil {
		return nil, s.fail(err)
	}
	defer rows.Close()
	var out []Stranger
	for rows.Next() {
		var x Stranger
		var id string
		var last int64
		if err := rows.Scan(&id, &x.Count, &last); err != nil {
			return nil, s.fail(err)
		}
		x.ID, _ = wire.ParseRoutingID(id)
		x.LastSeen = time.UnixMilli(last)
		out = append(out, x)
	}
	return out, s.fail(rows.Err())
}

// LastMove is the sent-at time of the newest relay-moved message recorded
// from peer other than id (zero if none): an older one is not applied.
func (s *Store) LastMove(ctx context.Context, peer wire.Fingerprint, id wire.MessageID) (time.Time, error) {
	var at sql.NullInt64
	err := s.sqlDB().QueryRowContext(ctx, `SELECT MAX(sent_at) FROM messages WHERE dir = 'in' AND peer_fp = ? AND type = ? AND msg_id != ?`,
		peer[:], int(wire.TypeRelayMoved), id[:]).Scan(&at)
	if !at.Valid {
		return time.Time{}, s.fail(err)
	}
	return time.UnixMilli(at.Int64), s.fail(err)
}
