-- The web embed: chat configuration per institution, sessions of clients, the site's IDs
-- of logged-in clients, guest numbers, and each client's current conversation.
-- Keep in step with ../sqlite/0006_embed.sql.

CREATE TABLE embed_settings (
    institution        TEXT    PRIMARY KEY REFERENCES institutions (id) ON DELETE CASCADE,
    anonymous_tile     BIGINT  NOT NULL,
    anonymous_bubble   BIGINT  NOT NULL,
    registered_tile    BIGINT  NOT NULL,
    registered_bubble  BIGINT  NOT NULL,
    allowed_origins    TEXT    NOT NULL DEFAULT '[]',
    secret             TEXT,
    updated_at         BIGINT  NOT NULL
);

CREATE TABLE embed_sessions (
    token_hash   TEXT    PRIMARY KEY,
    client       TEXT    NOT NULL REFERENCES clients (user_id) ON DELETE CASCADE,
    institution  TEXT    NOT NULL,
    room_id      TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    ended_at     BIGINT
);
CREATE INDEX embed_sessions_client ON embed_sessions (client);

CREATE TABLE client_identities (
    institution  TEXT  NOT NULL,
    external_id  TEXT  NOT NULL,
    client       TEXT  NOT NULL REFERENCES clients (user_id) ON DELETE CASCADE,
    PRIMARY KEY (institution, external_id)
);
CREATE INDEX client_identities_client ON client_identities (client);

CREATE TABLE guest_counters (
    institution  TEXT    PRIMARY KEY,
    next         BIGINT  NOT NULL
);

CREATE TABLE embed_conversations (
    client      TEXT    PRIMARY KEY REFERENCES clients (user_id) ON DELETE CASCADE,
    room_id     TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    ended_at    BIGINT
);
CREATE INDEX embed_conversations_room ON embed_conversations (room_id);
