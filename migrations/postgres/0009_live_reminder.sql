-- The response reminder of taken live chats: since when the visitor's oldest unanswered
-- message waits (ms; NULL: a counsellor answered last), and the marker the room's name
-- carries now ('', 🟢, 🟡, 🔴).
ALTER TABLE live_chats ADD COLUMN unanswered_since BIGINT;
ALTER TABLE live_chats ADD COLUMN marker TEXT NOT NULL DEFAULT '';
-- A department's opening hours (JSON: weekly intervals and holidays; '{}': always open).
ALTER TABLE live_departments ADD COLUMN hours TEXT NOT NULL DEFAULT '{}';
