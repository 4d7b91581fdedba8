-- Deletion deadlines (Löschroutine). Keep in step with ../sqlite/0003_deletion.sql.

-- How long a client marked for deletion is kept before the data is deleted, and how long
-- closed anonymous live chats are kept, per institution (seconds; default 30 days each).
ALTER TABLE institutions ADD COLUMN deletion_period_secs BIGINT NOT NULL DEFAULT 2592000;
ALTER TABLE institutions ADD COLUMN live_retention_secs BIGINT NOT NULL DEFAULT 2592000;

-- One row per client marked for deletion. `step` is the last step completed, so the routine
-- resumes where it stopped: pending, redacted, rooms_purged, media_deleted, deactivated,
-- rows_removed, done. The row keeps only the puppet's random ID, no personal data.
CREATE TABLE deletions (
    client_user_id  TEXT    PRIMARY KEY NOT NULL,
    institution_id  TEXT    NOT NULL,
    requested_by    TEXT    NOT NULL,
    requested_at    BIGINT  NOT NULL,
    due_at          BIGINT  NOT NULL,
    step            TEXT    NOT NULL DEFAULT 'pending',
    job_id          TEXT,              -- a running Synapse job (redaction) to poll after a restart
    attempts        BIGINT  NOT NULL DEFAULT 0,
    last_error      TEXT,
    finished_at     BIGINT
);
CREATE INDEX deletions_due ON deletions (due_at) WHERE finished_at IS NULL;
