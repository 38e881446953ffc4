package bridge

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/wschat/wschat/wire"
)

// Queries for consumers that show messages selectively (the MCP server):
// one contact's text messages, the time of the last message per contact,
// and every saved cursor of a family.

// TextQuery selects incoming text messages.
type TextQuery struct {
	After int64             // cursor above which to look
	UpTo  int64             // highest cursor to consider; 0: no bound
	From  *wire.Fingerprint // only from this peer; nil: from anyone
	Limit int               // at most this many records (required, > 0)
}

// IncomingText returns incoming text messages that match q, oldest first.
// Acknowledgements and other message types are left out.
func (s *Store) IncomingText(ctx context.Context, q TextQuery) ([]Record, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("store: limit %d", q.Limit)
	}
	sql := `SELECT ` + recordColumns + `
		FROM messages WHERE cursor > ? AND +dir = ? AND +type = ?`
	args := []any{q.After, DirIn, int(wire.TypeText)}
	if q.UpTo > 0 {
		sql += ` AND cursor <= ?`
		args = append(args, q.UpTo)
	}
	if q.From != nil {
		sql += ` AND +peer_fp = ?`
		args = append(args, q.From[:])
	}
	sql += ` ORDER BY cursor LIMIT ?`
	args = append(args, q.Limit)
	rows, err := s.sqlDB().QueryContext(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return scanRecords(rows)
}

// LastTextTimes returns, per peer, when the last text message was
// exchanged with it in either direction (received for incoming, sent for
// outgoing messages).
func (s *Store) LastTextTimes(ctx context.Context) (map[wire.Fingerprint]time.Time, error) {
	rows, err := s.sqlDB().QueryContext(ctx, `SELECT peer_fp, MAX(CASE dir WHEN 'in' THEN received_at ELSE sent_at END)
		FROM messages WHERE type = ? GROUP BY peer_fp`, int(wire.TypeText))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	out := map[wire.Fingerprint]time.Time{}
	for rows.Next() {
		var fp []byte
		var at int64
		if err := rows.Scan(&fp, &at); err != nil {
			return nil, err
		}
		var f wire.Fingerprint
		copy(f[:], fp)
		out[f] = time.UnixMilli(at)
	}
	return out, rows.Err()
}

// SavedCursors returns every saved cursor whose name starts with prefix.
func (s *Store) SavedCursors(ctx context.Context, prefix string) (map[string]int64, error) {
	// LIKE would treat '_' and '%' in the prefix as wildcards.
	rows, err := s.sqlDB().QueryContext(ctx, `SELECT name, cursor FROM cursors WHERE substr(name, 1, ?) = ?`, len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var c int64
		if err := rows.Scan(&name, &c); err != nil {
			return nil, err
		}
		if strings.HasPrefix(name, prefix) {
			out[name] = c
		}
	}
	return out, rows.Err()
}
