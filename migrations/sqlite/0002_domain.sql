-- The counselling domain: institutions, their spaces, departments, counsellors, clients,
-- managed rooms and the audit log. Keep in step with ../postgres/0002_domain.sql.
-- Flags are BIGINT 0/1 so that both dialects decode them the same way.

CREATE TABLE institutions (
    id          TEXT    PRIMARY KEY NOT NULL,   -- slug, e.g. "beratung-koeln"
    name        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

-- The rooms an institution owns: its four spaces (live, clients, colleagues, groups) and the
-- directory room through which its counsellors find its clients and each other.
CREATE TABLE institution_rooms (
    institution_id  TEXT  NOT NULL REFERENCES institutions (id),
    category        TEXT  NOT NULL,
    room_id         TEXT  NOT NULL UNIQUE,
    PRIMARY KEY (institution_id, category)
);

CREATE TABLE departments (
    id              TEXT    PRIMARY KEY NOT NULL,
    institution_id  TEXT    NOT NULL REFERENCES institutions (id),
    name            TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    UNIQUE (institution_id, name)
);

CREATE TABLE counsellors (
    user_id         TEXT    PRIMARY KEY NOT NULL,
    institution_id  TEXT    NOT NULL REFERENCES institutions (id),
    display_name    TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL
);

CREATE TABLE counsellor_departments (
    user_id        TEXT  NOT NULL REFERENCES counsellors (user_id),
    department_id  TEXT  NOT NULL REFERENCES departments (id),
    PRIMARY KEY (user_id, department_id)
);

-- Clients are puppets in the exclusive namespace; kind is 'registered' or 'guest'.
CREATE TABLE clients (
    user_id         TEXT    PRIMARY KEY NOT NULL,
    institution_id  TEXT    NOT NULL REFERENCES institutions (id),
    display_name    TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    blocked         BIGINT  NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX clients_institution ON clients (institution_id);

-- Rooms the rules apply to. kind: client_chat, group, appointment_group, colleague_chat,
-- colleague_group, live.
CREATE TABLE managed_rooms (
    room_id         TEXT    PRIMARY KEY NOT NULL,
    institution_id  TEXT    NOT NULL REFERENCES institutions (id),
    kind            TEXT    NOT NULL,
    creator         TEXT    NOT NULL,
    description     TEXT,
    deactivated     BIGINT  NOT NULL DEFAULT 0,
    in_space        BIGINT  NOT NULL DEFAULT 0,   -- placed in its institution's space
    deleted_at      BIGINT,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX managed_rooms_institution ON managed_rooms (institution_id, kind);

-- Group participants who may read but not write.
CREATE TABLE deactivated_participants (
    room_id  TEXT  NOT NULL REFERENCES managed_rooms (room_id),
    user_id  TEXT  NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- Slots of appointment group chats; outside them the room is read-only.
CREATE TABLE appointments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id    TEXT    NOT NULL REFERENCES managed_rooms (room_id),
    starts_at  BIGINT  NOT NULL,
    ends_at    BIGINT  NOT NULL
);
CREATE INDEX appointments_room ON appointments (room_id, starts_at);

-- Who did what, when. Never message content, never names: user and room IDs only.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       BIGINT  NOT NULL,
    actor    TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    subject  TEXT    NOT NULL,
    detail   TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
