-- The partial index of unprocessed inbox rows costs a WAL frame on every recorded
-- transaction and on every batch of marks, on the path the homeserver waits for. The
-- processor reads unprocessed rows by `seq` range from its cursor (the primary key);
-- only the count at start scans the table.
DROP INDEX IF EXISTS inbox_unprocessed;
