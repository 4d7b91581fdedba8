-- Foundation: the durable inbox of the application-service API.
-- Keep in step with ../postgres/0001_foundation.sql.

-- Transactions the homeserver pushed; a repeated txn_id with the same fingerprint (the
-- hash of its event IDs) is a no-op.
CREATE TABLE as_transactions (
    txn_id       TEXT    PRIMARY KEY NOT NULL,
    fingerprint  TEXT    NOT NULL,
    event_count  BIGINT  NOT NULL,
    received_at  BIGINT  NOT NULL
);

-- Every timeline event received, exactly once per event_id. `body` is dropped once the
-- event is processed; the row stays for de-duplication until pruned.
CREATE TABLE inbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT    NOT NULL UNIQUE,
    room_id        TEXT    NOT NULL,
    txn_id         TEXT    NOT NULL,
    body           TEXT,
    received_at    BIGINT  NOT NULL,
    processed_at   BIGINT,
    processed_seq  BIGINT,
    outcome        TEXT
);
CREATE INDEX inbox_unprocessed ON inbox (seq) WHERE processed_at IS NULL;
CREATE INDEX inbox_processed_at ON inbox (processed_at) WHERE processed_at IS NOT NULL;

-- Events that could not be recorded or processed; they never block the stream.
CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    stage        TEXT    NOT NULL,
    txn_id       TEXT    NOT NULL,
    event_id     TEXT,
    room_id      TEXT,
    reason       TEXT    NOT NULL,
    body         TEXT,
    received_at  BIGINT  NOT NULL
);

-- Small named values of the service (e.g. the last transaction ID seen).
CREATE TABLE service_state (
    name   TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
);

-- Rooms the service knows of and their members, from m.room.member events.
CREATE TABLE room_members (
    room_id     TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    membership  TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
