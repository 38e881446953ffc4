package bridge

import (
	"context"
	"time"

	"github.com/wschat/wschat/wire"
)

// The outbox holds what no relay has taken yet: messages (with a row in
// the history) and receipts for contacts on other relays (without). Each
// entry names the relay it goes to ("" for the identity's own relay).
//
// Several processes of one identity share the outbox. An entry is handed
// to a relay by one process at a time: the one that holds its lease,
// taken in one transaction (LeaseOutbox) and given up when the relay has
// answered, when the connection failed, or when it expires (its holder
// died). A relay's custody answer takes the entry out.

// Pending is an outbox entry.
type Pending struct {
	ID        wire.MessageID
	PeerFP    wire.Fingerprint
	To        wire.RoutingID
	Relay     string // the relay address it goes to; "" for the identity's own
	Envelope  []byte
	Flags     byte
	CreatedAt time.Time
	Attempts  int    // times it was handed to a relay
	LastError string // why the last attempt failed, if it did
}

// Lease is a claim on outbox entries: Owner (random per client) until
// Until.
type Lease struct {
	Owner [16]byte
	Until time.Time
}

// LeaseTTL is how long a lease lasts when its holder neither answers nor
// gives it up (it died): then another process hands the entry over.
const LeaseTTL = 30 * time.Second

const (
	insertOutgoing = `INSERT INTO messages
		(dir, peer_fp, peer_id, msg_id, type, body, sent_at, received_at, state) VALUES ('out', ?, ?, ?, ?, ?, ?, ?, 'pending')`
	insertOutbox = `INSERT INTO outbox (msg_id, peer_fp, to_id, relay, envelope, flags, created_at, attempts, lease_owner, lease_until)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// Outgoing is a sealed message for AddOutgoing.
type Outgoing struct {
	Peer     wire.PublicIdentity
	Message  *wire.Message
	Envelope []byte
	Flags    byte
	Relay    string // "" for the identity's own relay
	Record   bool   // also record it in the history (messages; not receipts)
}

// AddOutgoing puts a sealed message in the outbox (and, if o.Record, the
// history), in one transaction, leased to lease (zero: to nobody), and
// returns its history cursor (0 when not recorded). A leased entry counts
// one attempt: its holder is about to hand it over.
func (s *Store) AddOutgoing(ctx context.Context, o Outgoing, lease Lease, now time.Time) (int64, error) {
	var cursor int64
	fp, to := o.Peer.Fingerprint(), o.Peer.ID()
	attempts := 0
	if !lease.Until.IsZero() {
		attempts = 1
	}
	err := s.tx(ctx, func(tx *storeTx) error {
		if o.Record {
			body := o.Message.Body
			if !s.history && o.Message.Type == wire.TypeText {
				body = nil
			}
			res, err := tx.exec(insertOutgoing, fp[:], to.String(), o.Message.ID[:], int(o.Message.Type), body, o.Message.SentAt.UnixMilli(), now.UnixMilli())
			if err != nil {
				return err
			}
			cursor, _ = res.LastInsertId()
		}
		_, err := tx.exec(insertOutbox, o.Message.ID[:], fp[:], to[:], o.Relay, o.Envelope, int(o.Flags), now.UnixMilli(), attempts, lease.Owner[:], lease.Until.UnixMilli())
		return err
	}, insertOutgoing, insertOutbox)
	return cursor, err
}

const pendingColumns = `msg_id, peer_fp, to_id, relay, envelope, flags, created_at, attempts, last_error`

func scanPending(rows interface{ Scan(...any) error }) (Pending, error) {
	var p Pending
	var id, fp, to []byte
	var created int64
	err := rows.Scan(&id, &fp, &to, &p.Relay, &p.Envelope, &p.Flags, &created, &p.Attempts, &p.LastError)
	copy(p.ID[:], id)
	copy(p.PeerFP[:], fp)
	copy(p.To[:], to)
	p.CreatedAt = time.UnixMilli(created)
	return p, err
}

const (
	selectLeasable = `SELECT ` + pendingColumns + ` FROM outbox
		WHERE relay = ? AND (lease_until <= ? OR lease_owner = ?) ORDER BY created_at, rowid LIMIT ?`
	takeLease = `UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 WHERE msg_id = ?`
)

// LeaseOutbox takes the lease on up to limit entries for relay that
// nobody else holds, oldest first, skipping those skip names (entries
// this process has in hand already), and returns them.
func (s *Store) LeaseOutbox(ctx context.Context, relay string, lease Lease, now time.Time, limit int, skip func(wire.MessageID) bool) ([]Pending, error) {
	// Most of the time there is nothing to take: look before taking the
	// write lock.
	if n, err := s.leasable(ctx, relay, lease.Owner, now, skip); err != nil || n == 0 {
		return nil, err
	}
	var out []Pending
	err := s.tx(ctx, func(tx *storeTx) error {
		rows, err := tx.query(selectLeasable, relay, now.UnixMilli(), lease.Owner[:], limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			p, err := scanPending(rows)
			if err != nil {
				rows.Close()
				return err
			}
			if skip == nil || !skip(p.ID) {
				out = append(out, p)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			if _, err := tx.exec(takeLease, lease.Owner[:], lease.Until.UnixMilli(), out[i].ID[:]); err != nil {
				return err
			}
			out[i].Attempts++
		}
		return nil
	}, selectLeasable, takeLease)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// leasable counts the entries LeaseOutbox would take.
func (s *Store) leasable(ctx context.Context, relay string, owner [16]byte, now time.Time, skip func(wire.MessageID) bool) (int, error) {
	rows, err := s.query(ctx, `SELECT msg_id FROM outbox WHERE relay = ? AND (lease_until <= ? OR lease_owner = ?)`, relay, now.UnixMilli(), owner[:])
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return 0, s.fail(err)
		}
		var id wire.MessageID
		copy(id[:], b)
		if skip == nil || !skip(id) {
			n++
		}
	}
	return n, s.fail(rows.Err())
}

// OutboxRelays lists the relays that outbox entries nobody else holds
// go to ("" for the identity's own).
func (s *Store) OutboxRelays(ctx context.Context, owner [16]byte, now time.Time) ([]string, error) {
	rows, err := s.query(ctx, `SELECT DISTINCT relay FROM outbox WHERE lease_until <= ? OR lease_owner = ?`, now.UnixMilli(), owner[:])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, s.fail(err)
		}
		out = append(out, r)
	}
	return out, s.fail(rows.Err())
}

// Outbox lists every entry, oldest first.
func (s *Store) Outbox(ctx context.Context) ([]Pending, error) {
	rows, err := s.query(ctx, `SELECT `+pendingColumns+` FROM outbox ORDER BY created_at, rowid`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Pending
	for rows.Next() {
		p, err := scanPending(rows)
		if err != nil {
			return nil, s.fail(err)
		}
		out = append(out, p)
	}
	return out, s.fail(rows.Err())
}

// custodyState is updateState: a relay's answer only moves a state forward.
var custodyState = updateState

const (
	deleteOutbox   = `DELETE FROM outbox WHERE msg_id = ?`
	refusedState   = `UPDATE messages SET state = 'refused', refusal = ? WHERE dir = 'out' AND peer_fp = ? AND msg_id = ? AND state = 'pending'`
	transientError = `UPDATE outbox SET last_error = ?, lease_until = 0 WHERE msg_id = ?`
)

// Custody records that a relay has taken an outbox entry (StateStored or
// StateSent): it leaves the outbox and its history row moves on, in one
// transaction.
func (s *Store) Custody(ctx context.Context, peer wire.Fingerprint, id wire.MessageID, st State) error {
	return s.tx(ctx, func(tx *storeTx) error {
		if _, err := tx.exec(deleteOutbox, id[:]); err != nil {
			return err
		}
		_, err := tx.exec(custodyState, string(st), peer[:], id[:], string(st))
		return err
	}, deleteOutbox, custodyState)
}

// Refused records a relay's refusal of an outbox entry. A lasting one
// (the recipient's mailbox is full, they are not registered, ...) takes
// it out of the outbox, the history keeping the reason; a passing one
// (the relay is restarting) leaves it for the next connection, the
// reason noted.
func (s *Store) Refused(ctx context.Context, peer wire.Fingerprint, id wire.MessageID, reason wire.Reason) error {
	if temporaryRefusal(reason) {
		_, err := s.exec(ctx, transientError, "refused: "+reason.String(), id[:])
		return err
	}
	return s.tx(ctx, func(tx *storeTx) error {
		if _, err := tx.exec(deleteOutbox, id[:]); err != nil {
			return err
		}
		_, err := tx.exec(refusedState, reason.String(), peer[:], id[:])
		return err
	}, deleteOutbox, refusedState)
}

// Release gives up the leases owner holds on these entries (the
// connection failed before the relay answered), noting why.
func (s *Store) Release(ctx context.Context, owner [16]byte, why string, ids ...wire.MessageID) error {
	const q = `UPDATE outbox SET lease_until = 0, last_error = ? WHERE msg_id = ? AND lease_owner = ?`
	return s.tx(ctx, func(tx *storeTx) error {
		for _, id := range ids {
			if _, err := tx.exec(q, why, id[:], owner[:]); err != nil {
				return err
			}
		}
		return nil
	}, q)
}

// NoteRelayError records on every entry for relay that nobody else
// holds why it could not be handed over (the relay is unreachable).
func (s *Store) NoteRelayError(ctx context.Context, relay string, owner [16]byte, now time.Time, why string) error {
	_, err := s.exec(ctx, `UPDATE outbox SET last_error = ?, lease_until = CASE WHEN lease_owner = ? THEN 0 ELSE lease_until END
		WHERE relay = ? AND (lease_until <= ? OR lease_owner = ?)`, why, owner[:], relay, now.UnixMilli(), owner[:])
	return err
}

// Redirect sends every outbox entry for peer to relay from now on (peer
// moved there).
func (s *Store) Redirect(ctx context.Context, peer wire.Fingerprint, relay string) error {
	_, err := s.exec(ctx, `UPDATE outbox SET relay = ?, lease_until = 0 WHERE peer_fp = ?`, relay, peer[:])
	return err
}

// Cancel takes an entry out of the outbox; its history row (if any) is
// marked refused, reason "cancelled". It reports whether there was one.
func (s *Store) Cancel(ctx context.Context, id wire.MessageID) (bool, error) {
	found := false
	const mark = `UPDATE messages SET state = 'refused', refusal = 'cancelled' WHERE dir = 'out' AND msg_id = ? AND state = 'pending'`
	err := s.tx(ctx, func(tx *storeTx) error {
		res, err := tx.exec(deleteOutbox, id[:])
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		found = n > 0
		_, err = tx.exec(mark, id[:])
		return err
	}, deleteOutbox, mark)
	return found, err
}

// Drain is a relay this identity moved away from: its clients keep
// collecting from it until Until.
type Drain struct {
	Relay string
	Until time.Time
}

// AddDrain records a relay to keep collecting from until until.
func (s *Store) AddDrain(ctx context.Context, relay string, until time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO drain (relay, until) VALUES (?, ?) ON CONFLICT (relay) DO UPDATE SET until = excluded.until`, relay, until.UnixMilli())
	return err
}

// Drains lists the relays still to collect from at now; expired ones are
// removed.
func (s *Store) Drains(ctx context.Context, now time.Time) ([]Drain, error) {
	if _, err := s.exec(ctx, `DELETE FROM drain WHERE until <= ?`, now.UnixMilli()); err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, `SELECT relay, until FROM drain ORDER BY relay`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Drain
	for rows.Next() {
		var d Drain
		var until int64
		if err := rows.Scan(&d.Relay, &until); err != nil {
			return nil, s.fail(err)
		}
		d.Until = time.UnixMilli(until)
		out = append(out, d)
	}
	return out, s.fail(rows.Err())
}

// RemoveDrain stops collecting from relay.
func (s *Store) RemoveDrain(ctx context.Context, relay string) error {
	_, err := s.exec(ctx, `DELETE FROM drain WHERE relay = ?`, relay)
	return err
}

// UndeliveredMoves counts the relay-moved notices this identity sent
// that a contact has not acknowledged yet.
func (s *Store) UndeliveredMoves(ctx context.Context) (int, error) {
	var n int
	err := s.sqlDB().QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE dir = 'out' AND type = ? AND `+rankSQL("state")+` < 2 AND state != 'refused'`,
		int(wire.TypeRelayMoved)).Scan(&n)
	return n, s.fail(err)
}
