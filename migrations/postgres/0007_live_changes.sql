-- The live bus's outbox: changes made by another process (the admin CLI) that the running
-- service relays to open embed connections within a second. Rows hold opaque user IDs
-- only and are removed a minute after they were written.
CREATE TABLE live_changes (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
