-- The client file (Ratsuchendenmappe): master data, notes, monitorings.
-- Keep in step with ../sqlite/0004_client_file.sql.

-- Master data beyond the display name, as a JSON object of the fields an institution records.
ALTER TABLE clients ADD COLUMN profile TEXT NOT NULL DEFAULT '{}';

CREATE TABLE client_notes (
    id          BIGSERIAL PRIMARY KEY,
    client      TEXT    NOT NULL REFERENCES clients (user_id) ON DELETE CASCADE,
    author      TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX client_notes_client ON client_notes (client, created_at);

CREATE TABLE client_monitorings (
    id                BIGSERIAL PRIMARY KEY,
    client            TEXT    NOT NULL REFERENCES clients (user_id) ON DELETE CASCADE,
    author            TEXT    NOT NULL,
    duration_minutes  BIGINT  NOT NULL,
    subject           TEXT    NOT NULL,
    details           TEXT    NOT NULL DEFAULT '{}',
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL
);
CREATE INDEX client_monitorings_client ON client_monitorings (client, created_at);
