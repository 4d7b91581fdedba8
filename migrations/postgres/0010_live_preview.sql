-- When a counsellor last opened the preview of a queued live chat (ms; NULL: never). While
-- it is newer than the chat's current state, the waiting visitor is told that someone is
-- coming.
ALTER TABLE live_chats ADD COLUMN previewed_at BIGINT;
