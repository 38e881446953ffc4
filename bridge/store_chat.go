package bridge

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/wschat/wschat/wire"
)

// Queries for an interactive conversation view (`wschat chat`): one
// contact's recent text messages, unread counts, and forgetting what a
// person has seen when history is off.

// ReadCursorName is the name (for SavedCursor and SaveCursor) of the cursor
// up to which a person has seen a peer's messages: the chat view saves it,
// Unread counts above it.
func ReadCursorName(peer wire.Fingerprint) string {
	return "read:" + hex.EncodeToString(peer[:])
}

// Conversation returns the last limit text messages exchanged with peer,
// in both directions, oldest first, and whether older ones exist.
func (s *Store) Conversation(ctx context.Context, peer wire.Fingerprint, limit int) ([]Record, bool, error) {
	if limit <= 0 {
		return nil, false, nil
	}
	rows, err := s.sqlDB().QueryContext(ctx, `SELECT `+recordColumns+`
		FROM messages WHERE peer_fp = ? AND type = ? ORDER BY cursor DESC LIMIT ?`, peer[:], int(wire.TypeText), limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("store: %w", err)
	}
	out, err := scanRecords(rows)
	if err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, more, nil
}

// Unread counts, per peer, the incoming text messages above that peer's
// read cursor (ReadCursorName). Peers with none are left out.
func (s *Store) Unread(ctx context.Context) (map[wire.Fingerprint]int, error) {
	rows, err := s.sqlDB().QueryContext(ctx, `SELECT m.peer_fp, COUNT(*) FROM messages m
		LEFT JOIN cursors c ON c.name = 'read:' || lower(hex(m.peer_fp))
		WHERE m.dir = 'in' AND m.type = ? AND m.cursor > COALESCE(c.cursor, 0)
		GROUP BY m.peer_fp`, int(wire.TypeText))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	out := map[wire.Fingerprint]int{}
	for rows.Next() {
		var fp []byte
		var n int
		if err := rows.Scan(&fp, &n); err != nil {
			return nil, err
		}
		var f wire.Fingerprint
		copy(f[:], fp)
		out[f] = n
	}
	return out, rows.Err()
}

// ForgetIncoming blanks the bodies of these incoming messages from peer
// when history is off: a person has seen them. The rows stay, empty, as
// replay records.
func (s *Store) ForgetIncoming(ctx context.Context, peer wire.Fingerprint, ids ...wire.MessageID) error {
	if s.history {
		return nil
	}
	s.writes.Add(1)
	for _, id := range ids {
		if _, err := s.sqlDB().ExecContext(ctx, `UPDATE messages SET body = NULL WHERE dir = 'in' AND peer_fp = ? AND msg_id = ?`, peer[:], id[:]); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	return nil
}
