-- The response reminder of taken live chats: since when the visitor's oldest unanswered
-- message waits (ms; NULL: a counsellor answered last), and the marker the room's name
-- carries now ('', 🟢, 🟡, 🔴).
ALTER TABLE live_chats ADD COLUMN unanswered_since BIGINT;
ALTER TABLE live_chats ADD COLUMN marker TEXT NOT NULL DEFAULT '';
