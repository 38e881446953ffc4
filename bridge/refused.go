package bridge

import (
	"context"
	"database/sql"
	"errors"

	"github.com/wschat/wschat/wire"
)

// Refusal is why a relay refused a message for good, if it did (the
// message's state is then StateRefused).
func (s *Store) Refusal(ctx context.Context, peer wire.Fingerprint, id wire.MessageID) (wire.Reason, bool, error) {
	var label string
	err := s.sqlDB().QueryRowContext(ctx, `SELECT refusal FROM messages WHERE dir = 'out' AND peer_fp = ? AND msg_id = ? AND state = 'refused'`, peer[:], id[:]).Scan(&label)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, s.fail(err)
	}
	r, _ := wire.ParseReason(label)
	return r, true, nil
}
