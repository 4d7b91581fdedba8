-- The live-chat desk: per-department settings, the institution's classification codes,
-- counsellors' status, the live chats with their place in the queue, and the desk's log
-- (what happened to a chat when: IDs and times only, for the statistics).
-- Keep in step with ../postgres/0008_live.sql.

-- Settings of a department's live chat; a department without a row has the defaults.
CREATE TABLE live_departments (
    department_id       TEXT    PRIMARY KEY NOT NULL REFERENCES departments (id),
    routing             TEXT    NOT NULL DEFAULT 'manual',   -- manual | auto
    max_chats           BIGINT  NOT NULL DEFAULT 3,          -- per counsellor (their own limit wins)
    offer_timeout_secs  BIGINT  NOT NULL DEFAULT 30,
    code_required       BIGINT  NOT NULL DEFAULT 0,
    updated_at          BIGINT  NOT NULL
);

-- Classification codes a counsellor may close a live chat with.
CREATE TABLE live_codes (
    institution_id  TEXT  NOT NULL REFERENCES institutions (id),
    code            TEXT  NOT NULL,
    label           TEXT  NOT NULL,
    PRIMARY KEY (institution_id, code)
);

-- What a counsellor set (status) and what the homeserver reports (presence).
CREATE TABLE counsellor_status (
    user_id       TEXT    PRIMARY KEY NOT NULL REFERENCES counsellors (user_id),
    status        TEXT    NOT NULL DEFAULT 'not_online',
    presence      TEXT    NOT NULL DEFAULT 'offline',
    only_regular  BIGINT  NOT NULL DEFAULT 0,
    max_chats     BIGINT,
    status_at     BIGINT  NOT NULL,
    presence_at   BIGINT  NOT NULL
);

CREATE TABLE live_counters (
    institution_id  TEXT    PRIMARY KEY NOT NULL,
    next            BIGINT  NOT NULL
);

-- One row per live chat. state: waiting | offered | taken | closed; counsellor: the one it
-- is offered to or owned by. version: every change is a compare-and-set on it, so of many
-- counsellors taking a chat at once exactly one succeeds.
CREATE TABLE live_chats (
    room_id         TEXT    PRIMARY KEY NOT NULL,
    institution_id  TEXT    NOT NULL REFERENCES institutions (id),
    department_id   TEXT,
    number          BIGINT  NOT NULL,
    client          TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    counsellor      TEXT,
    state_since     BIGINT  NOT NULL,
    declined        TEXT    NOT NULL DEFAULT '[]',
    queued_at       BIGINT  NOT NULL,
    taken_at        BIGINT,
    closed_at       BIGINT,
    abandoned       BIGINT  NOT NULL DEFAULT 0,
    code            TEXT,
    note            TEXT,
    version         BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (institution_id, number)
);
CREATE INDEX live_chats_queue ON live_chats (institution_id, state, queued_at);
CREATE INDEX live_chats_counsellor ON live_chats (counsellor, state);
CREATE INDEX live_chats_client ON live_chats (client);

-- What happened to a live chat (queued, offered, lapsed, taken, returned, forwarded,
-- closed, abandoned), when and by whom: IDs and times only.
CREATE TABLE live_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id         TEXT    NOT NULL,
    institution_id  TEXT    NOT NULL,
    department_id   TEXT,
    what            TEXT    NOT NULL,
    counsellor      TEXT,
    at              BIGINT  NOT NULL
);
CREATE INDEX live_log_room ON live_log (room_id);
CREATE INDEX live_log_at ON live_log (institution_id, at);
