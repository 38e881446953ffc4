package bridge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wschat/wschat/wire"
)

// StateRefused: the relay refused the message for good (see RefusedError);
// it left the outbox, and Refusal says why.
const StateRefused = "refused"

// schemaRefusals is the table of refusals, one row per refused message.
const schemaRefusals = `
CREATE TABLE IF NOT EXISTS refusals (
	peer_fp     BLOB    NOT NULL,
	msg_id      BLOB    NOT NULL,
	reason      TEXT    NOT NULL,
	refused_at  INTEGER NOT NULL,
	PRIMARY KEY (peer_fp, msg_id)
);
`

// Refuse records that the relay refused an outgoing message for good: the
// message leaves the outbox, its state becomes StateRefused (if it was
// still pending) and the reason is kept, in one transaction.
func (s *Store) Refuse(ctx context.Context, peer wire.Fingerprint, id wire.MessageID, reason wire.Reason, now time.Time) error {
	s.writes.Add(1)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM outbox WHERE peer_fp = ? AND msg_id = ?`, []any{peer[:], id[:]}},
		{`UPDATE messages SET state = ? WHERE dir = 'out' AND peer_fp = ? AND msg_id = ? AND state = ?`, []any{StateRefused, peer[:], id[:], StatePending}},
		{`INSERT OR REPLACE INTO refusals (peer_fp, msg_id, reason, refused_at) VALUES (?, ?, ?, ?)`, []any{peer[:], id[:], reason.String(), now.UnixMilli()}},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Refusal is why the relay refused a message, if it did.
func (s *Store) Refusal(ctx context.Context, peer wire.Fingerprint, id wire.MessageID) (wire.Reason, bool, error) {
	var label string
	err := s.db.QueryRowContext(ctx, `SELECT reason FROM refusals WHERE peer_fp = ? AND msg_id = ?`, peer[:], id[:]).Scan(&label)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: %w", err)
	}
	r, _ := wire.ParseReason(label)
	return r, true, nil
}
