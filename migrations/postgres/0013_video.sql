-- Video chats: the institution's video service (a Jitsi Meet server, optionally protected
-- with JWTs of an app ID and secret, or an Element Call deployment) and the counsellor's
-- toggle "Erlaube Anfrage für Video im Chat".
-- Keep in step with ../sqlite/0013_video.sql.

ALTER TABLE counsellor_tools ADD COLUMN allow_video BIGINT NOT NULL DEFAULT 0;

-- service: jitsi | element_call. The JWT secret is never shown by the API.
CREATE TABLE institution_video (
    institution_id  TEXT    PRIMARY KEY NOT NULL REFERENCES institutions (id),
    service         TEXT    NOT NULL,
    base_url        TEXT    NOT NULL,
    jwt_app_id      TEXT,
    jwt_secret      TEXT,
    updated_at      BIGINT  NOT NULL
);
