-- SQLite drops its partial index of unprocessed inbox rows here (one WAL frame fewer per
-- recorded transaction); PostgreSQL keeps it: its writes are not one synced page each,
-- and the index serves the count at start. Kept so that both dialects share numbers.
SELECT 1;
