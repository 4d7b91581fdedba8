-- Documents of the client file. The bytes live in the file store (files.dir), one
-- directory per client; this table holds what is shown about them.
-- Keep in step with ../postgres/0005_documents.sql.

CREATE TABLE client_documents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    client        TEXT    NOT NULL REFERENCES clients (user_id) ON DELETE CASCADE,
    author        TEXT    NOT NULL,
    file_name     TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    size          BIGINT  NOT NULL,
    sha256        TEXT    NOT NULL,
    storage_key   TEXT    NOT NULL UNIQUE,
    created_at    BIGINT  NOT NULL
);
CREATE INDEX client_documents_client ON client_documents (client, created_at);
