-- The counsellor tools: text snippets (Textbausteine), a counsellor's phone number with
-- the toggle that allows sending it, the links they pushed lately, and institution admins
-- (they may change every shared snippet of their institution).
-- Keep in step with ../postgres/0012_tools.sql.

ALTER TABLE counsellors ADD COLUMN institution_admin BIGINT NOT NULL DEFAULT 0;

-- scope: own | department | institution. owner: who wrote it (NULL: the institution,
-- through the admin API). department_id: department scope only.
CREATE TABLE snippets (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    institution_id  TEXT    NOT NULL REFERENCES institutions (id),
    scope           TEXT    NOT NULL,
    owner           TEXT    REFERENCES counsellors (user_id),
    department_id   TEXT    REFERENCES departments (id),
    name            TEXT    NOT NULL,
    text            TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX snippets_institution ON snippets (institution_id, scope);
CREATE INDEX snippets_owner ON snippets (owner);

-- phone: as dialled (normalised); allow_phone: "Erlaube Anfrage für Telefonnummer im Chat".
CREATE TABLE counsellor_tools (
    user_id      TEXT    PRIMARY KEY NOT NULL REFERENCES counsellors (user_id),
    phone        TEXT,
    allow_phone  BIGINT  NOT NULL DEFAULT 0,
    updated_at   BIGINT  NOT NULL
);

-- The web addresses a counsellor pushed, newest offered first (the last 10 are kept).
CREATE TABLE pushed_links (
    user_id    TEXT    NOT NULL REFERENCES counsellors (user_id),
    url        TEXT    NOT NULL,
    pushed_at  BIGINT  NOT NULL,
    PRIMARY KEY (user_id, url)
);
