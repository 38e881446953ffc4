-- A wschat message store of schema version 1 (as written by 572cbe3 and
-- earlier: user_version 0, no application id), with one message of each
-- kind. TestMigrateV1 builds a file from it and opens it with OpenStore.
-- expect: migrated to the current schema; the pending message stays in the
-- outbox, the one already stored (kept to wait for delivery) leaves it.
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
INSERT INTO messages (dir, peer_fp, peer_id, msg_id, type, body, sent_at, received_at, state) VALUES
	('in',  x'0101010101010101010101010101010101010101010101010101010101010101', '0101010101010101', x'11111111111111111111111111111111', 1, 'hello from bob', 1764800000000, 1764800000100, ''),
	('out', x'0101010101010101010101010101010101010101010101010101010101010101', '0101010101010101', x'22222222222222222222222222222222', 1, 'still pending', 1764800001000, 1764800001000, 'pending'),
	('out', x'0101010101010101010101010101010101010101010101010101010101010101', '0101010101010101', x'33333333333333333333333333333333', 1, 'stored, waiting for delivery', 1764800002000, 1764800002000, 'stored');
INSERT INTO outbox (msg_id, peer_fp, envelope, to_id, flags, wait_ack, created_at) VALUES
	(x'22222222222222222222222222222222', x'0101010101010101010101010101010101010101010101010101010101010101', x'00', x'0101010101010101', 0, 0, 1764800001000),
	(x'33333333333333333333333333333333', x'0101010101010101010101010101010101010101010101010101010101010101', x'00', x'0101010101010101', 0, 1, 1764800002000);
INSERT INTO cursors (name, cursor) VALUES ('listen', 1);
INSERT INTO strangers (peer_id, count, first_seen, last_seen) VALUES ('0202020202020202', 3, 1764800000000, 1764800003000);
