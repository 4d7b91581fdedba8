//! `as_transactions`, `inbox` and `dead_letters`: the durable record of everything the
//! homeserver pushed, and what became of it.

use sqlx::Row;

use crate::store::now_ms;
use crate::store::Db;

const TXN_HASH: &str = "SELECT fingerprint FROM as_transactions WHERE txn_id = $1";
const TXN_INSERT: &str = "INSERT INTO as_transactions (txn_id, fingerprint, event_count, received_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (txn_id) DO NOTHING";
const TXN_UPDATE: &str = "UPDATE as_transactions SET fingerprint = $2, event_count = $3, received_at = $4 \
     WHERE txn_id = $1";
const TXN_UPSERT: &str = "INSERT INTO as_transactions (txn_id, fingerprint, event_count, received_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (txn_id) DO UPDATE SET fingerprint = excluded.fingerprint, \
     event_count = excluded.event_count, received_at = excluded.received_at";
const LAST_TXN: &str = "SELECT txn_id FROM as_transactions ORDER BY received_at DESC LIMIT 1";
const INBOX_INSERT_HEAD: &str = "INSERT INTO inbox (event_id, room_id, txn_id, body, received_at) VALUES ";
const INBOX_INSERT_TAIL: &str = " ON CONFLICT (event_id) DO NOTHING RETURNING seq, event_id";
/// One row, for SQLite's writer connection. (SQLite numbers `$N` parameters in order of
/// first use, which is their number in every statement used there.)
const INBOX_INSERT_ONE: &str = "INSERT INTO inbox (event_id, room_id, txn_id, body, received_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING RETURNING seq";
const DEAD_INSERT: &str = "INSERT INTO dead_letters \
     (stage, txn_id, event_id, room_id, reason, body, received_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const DEAD_FROM_INBOX: &str = "INSERT INTO dead_letters \
     (stage, txn_id, event_id, room_id, reason, body, received_at) \
     SELECT 'processing', txn_id, event_id, room_id, $1, body, $2 FROM inbox WHERE seq = $3";
const UNPROCESSED_AFTER: &str = "SELECT seq, event_id, room_id, body, received_at FROM inbox \
     WHERE processed_at IS NULL AND seq > $1 ORDER BY seq LIMIT $2";
const MARK_ONE: &str = "UPDATE inbox SET processed_at = $1, processed_seq = $2, outcome = $3, \
     body = NULL WHERE seq = $4";
/// `VALUES` columns are named `column1`, `column2` in both SQLite and PostgreSQL.
const MARK_MANY_HEAD: &str = "UPDATE inbox SET processed_at = $1, processed_seq = v.column2, \
     outcome = 'processed', body = NULL FROM (VALUES ";
const MARK_MANY_TAIL: &str = ") AS v WHERE inbox.seq = v.column1";
/// Events per marking statement (2 parameters each).
const MARK_CHUNK: usize = 400;
const PROCESSED_SINCE: &str = "SELECT event_id, room_id FROM inbox WHERE processed_at IS NOT NULL \
     AND processed_at >= $1 ORDER BY processed_seq, seq";
const UNPROCESSED_COUNT: &str = "SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL";
const MAX_PROCESSED_SEQ: &str = "SELECT COALESCE(MAX(processed_seq), 0) FROM inbox";
const DEAD_COUNT: &str = "SELECT COUNT(*) FROM dead_letters";
const PRUNE_INBOX: &str = "DELETE FROM inbox WHERE processed_at IS NOT NULL AND processed_at < $1";
const PRUNE_TXNS: &str = "DELETE FROM as_transactions WHERE received_at < $1";
const PRUNE_DEAD: &str = "DELETE FROM dead_letters WHERE received_at < $1";

/// Rows per multi-row insert: 3 parameters each stays far below every driver's limit.
const INSERT_CHUNK: usize = 300;

/// A timeline event that passed the structural checks.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `event_id`.
    pub event_id: String,
    /// `room_id`.
    pub room_id: String,
    /// The event as JSON.
    pub body: String,
}

/// An event that could not be accepted, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// `event_id`, if it had a usable one.
    pub event_id: Option<String>,
    /// `room_id`, if it had a usable one.
    pub room_id: Option<String>,
    /// Why it was rejected (no content).
    pub reason: String,
    /// The raw JSON, for an operator to inspect (none when it was not kept).
    pub body: Option<String>,
}

/// What recording a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The same transaction (same ID, same events) was recorded before: nothing was done.
    Replay,
    /// The transaction is now durable.
    New {
        /// Events new to the inbox, in inbox order, with their positions.
        inserted: Vec<(i64, String)>,
        /// Events already in the inbox (seen in another transaction).
        duplicates: u64,
        /// Events dead-lettered.
        rejected: u64,
        /// The transaction ID was seen before with other events: the homeserver's
        /// transaction counter started over.
        txn_id_reused: bool,
    },
}

/// Durably records one pushed transaction: its events (de-duplicated on `event_id`), its
/// dead letters and its ID, in one database transaction with as few round trips as
/// possible (this is the hot path: Synapse waits for it).
pub async fn record_transaction(
    db: &Db,
    txn_id: &str,
    fingerprint: &str,
    events: &[NewEvent],
    rejected: &[Rejected],
) -> sqlx::Result<Recorded> {
    let now = now_ms();
    let _w = db.write_guard().await;
    let mut tx = db.pool().begin().await?;
    let count = (events.len() + rejected.len()) as i64;
    let fresh = sqlx::query(TXN_INSERT)
        .bind(txn_id)
        .bind(fingerprint)
        .bind(count)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    let mut txn_id_reused = false;
    if !fresh {
        let prev: Option<String> = sqlx::query_scalar(TXN_HASH).bind(txn_id).fetch_optional(&mut *tx).await?;
        if prev.as_deref() == Some(fingerprint) {
            tx.rollback().await?;
            return Ok(Recorded::Replay);
        }
        txn_id_reused = true;
        sqlx::query(TXN_UPDATE)
            .bind(txn_id)
            .bind(fingerprint)
            .bind(count)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }

    let mut inserted = Vec::with_capacity(events.len());
    for chunk in events.chunks(INSERT_CHUNK) {
        inserted.extend(insert_chunk(&mut *tx, txn_id, now, chunk).await?);
    }
    for r in rejected {
        sqlx::query(DEAD_INSERT)
            .bind("ingest")
            .bind(txn_id)
            .bind(r.event_id.as_deref())
            .bind(r.room_id.as_deref())
            .bind(&r.reason)
            .bind(r.body.as_deref())
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    // RETURNING gives no order guarantee; the processor needs inbox order.
    inserted.sort_unstable_by_key(|(seq, _)| *seq);
    let duplicates = (events.len() - inserted.len()) as u64;
    Ok(Recorded::New { inserted, duplicates, rejected: rejected.len() as u64, txn_id_reused })
}

/// A transaction ID to remember, written with the next batch of processed marks (its loss
/// in a crash costs nothing: events are de-duplicated by ID).
#[derive(Debug, Clone)]
pub struct TxnRecord {
    /// The ID.
    pub txn_id: String,
    /// Hash of its event IDs.
    pub fingerprint: String,
    /// Events (and dead letters) it carried.
    pub event_count: i64,
    /// When it arrived (ms).
    pub received_at: i64,
}

/// The fast path for a transaction without malformed events: its events go into the inbox
/// with one statement per [`INSERT_CHUNK`] events, each committed (and synced) on its own.
/// A crash between chunks leaves some recorded and the transaction unacknowledged; the
/// homeserver sends it again and the recorded ones are de-duplicated. Returns the events
/// new to the inbox with their positions, in inbox order.
pub async fn insert_events(db: &Db, txn_id: &str, events: &[NewEvent]) -> sqlx::Result<Vec<(i64, String)>> {
    let now = now_ms();
    let _w = db.write_guard().await;
    let mut inserted = Vec::with_capacity(events.len());
    if let Some(writer) = db.sqlite_writer() {
        inserted = writer.write(|conn| insert_on_writer(conn, txn_id, now, events))?;
    } else {
        for chunk in events.chunks(INSERT_CHUNK) {
            inserted.extend(insert_chunk(db.pool(), txn_id, now, chunk).await?);
        }
    }
    inserted.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(inserted)
}

/// The same insert on SQLite's writer connection: one prepared single-row statement per
/// event, in one synced transaction.
fn insert_on_writer(
    conn: &mut rusqlite::Connection,
    txn_id: &str,
    now: i64,
    events: &[NewEvent],
) -> rusqlite::Result<Vec<(i64, String)>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut inserted = Vec::with_capacity(events.len());
    {
        let mut insert = tx.prepare_cached(INBOX_INSERT_ONE)?;
        for e in events {
            let mut rows = insert.query(rusqlite::params![e.event_id, e.room_id, txn_id, e.body, now])?;
            if let Some(row) = rows.next()? {
                inserted.push((row.get(0)?, e.event_id.clone()));
            }
        }
    }
    tx.commit()?;
    Ok(inserted)
}

/// The fingerprint a transaction ID was recorded with, if any.
pub async fn txn_fingerprint(db: &Db, txn_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(TXN_HASH).bind(txn_id).fetch_optional(db.pool()).await
}

/// Inserts one chunk of events; returns the new ones with their positions.
async fn insert_chunk<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    ex: E,
    txn_id: &str,
    now: i64,
    chunk: &[NewEvent],
) -> sqlx::Result<Vec<(i64, String)>> {
    let sql = inbox_insert_sql(chunk.len());
    let mut q = sqlx::query(&sql).bind(txn_id).bind(now);
    for e in chunk {
        q = q.bind(&e.event_id).bind(&e.room_id).bind(&e.body);
    }
    q.fetch_all(ex)
        .await?
        .iter()
        .map(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?)))
        .collect()
}

fn inbox_insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(INBOX_INSERT_HEAD.len() + rows * 24 + 60);
    sql.push_str(INBOX_INSERT_HEAD);
    // $1 (transaction ID) and $2 (time) are shared by all rows.
    for i in 0..rows {
        let b = 3 + i * 3;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!("(${},${},$1,${},$2)", b, b + 1, b + 2));
    }
    sql.push_str(INBOX_INSERT_TAIL);
    sql
}

/// The most recently recorded transaction ID.
pub async fn last_txn_id(db: &Db) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(LAST_TXN).fetch_optional(db.pool()).await
}

/// An event waiting to be processed.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Position in the inbox.
    pub seq: i64,
    /// `event_id`.
    pub event_id: String,
    /// `room_id`.
    pub room_id: String,
    /// The event as JSON (empty when `event` is given).
    pub body: String,
    /// Its size as received, in bytes (what it weighs in memory, roughly).
    pub size: usize,
    /// When it was recorded (ms since the epoch).
    pub received_at: i64,
    /// The event, already checked, when it comes straight from the transaction.
    pub event: Option<std::sync::Arc<crate::matrix::event::RoomEvent>>,
}

/// Unprocessed events after `after_seq`, oldest first.
pub async fn unprocessed_after(db: &Db, after_seq: i64, limit: i64) -> sqlx::Result<Vec<Pending>> {
    let rows = sqlx::query(UNPROCESSED_AFTER).bind(after_seq).bind(limit).fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            let body = r.try_get::<Option<String>, _>(3)?.unwrap_or_default();
            Ok(Pending {
                seq: r.try_get(0)?,
                event_id: r.try_get(1)?,
                room_id: r.try_get(2)?,
                size: body.len(),
                body,
                received_at: r.try_get(4)?,
                event: None,
            })
        })
        .collect()
}

/// How processing an event ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Handled.
    Processed,
    /// Given up; the reason is recorded (no content).
    DeadLetter(String),
}

/// One finished event.
#[derive(Debug, Clone)]
pub struct Done {
    /// Position in the inbox.
    pub seq: i64,
    /// How it ended.
    pub outcome: Outcome,
}

/// Marks a batch of events as finished, in one database transaction, numbering them in
/// the order given starting at `first_processed_seq`. Their content is dropped; dead
/// letters keep a copy in `dead_letters`. Processed events are marked with one statement
/// per [`MARK_CHUNK`] events.
pub async fn mark_done(
    db: &Db,
    batch: &[Done],
    first_processed_seq: i64,
    txns: &[TxnRecord],
) -> sqlx::Result<()> {
    let now = now_ms();
    let _w = db.write_guard().await;
    if let Some(writer) = db.sqlite_writer() {
        return writer.write_relaxed(|conn| mark_on_writer(conn, now, batch, first_processed_seq, txns));
    }
    let mut tx = db.relaxed_pool().begin().await?;
    for t in txns {
        sqlx::query(TXN_UPSERT)
            .bind(&t.txn_id)
            .bind(&t.fingerprint)
            .bind(t.event_count)
            .bind(t.received_at)
            .execute(&mut *tx)
            .await?;
    }
    let mut processed: Vec<(i64, i64)> = Vec::with_capacity(batch.len());
    for (i, d) in batch.iter().enumerate() {
        let pseq = first_processed_seq + i as i64;
        match &d.outcome {
            Outcome::Processed => processed.push((d.seq, pseq)),
            Outcome::DeadLetter(reason) => {
                sqlx::query(DEAD_FROM_INBOX)
                    .bind(reason.as_str())
                    .bind(now)
                    .bind(d.seq)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(MARK_ONE)
                    .bind(now)
                    .bind(pseq)
                    .bind("dead_letter")
                    .bind(d.seq)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    for chunk in processed.chunks(MARK_CHUNK) {
        let mut sql = String::from(MARK_MANY_HEAD);
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("(${},${})", 2 + 2 * i, 3 + 2 * i));
        }
        sql.push_str(MARK_MANY_TAIL);
        let mut q = sqlx::query(&sql).bind(now);
        for (seq, pseq) in chunk {
            q = q.bind(*seq).bind(*pseq);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// `mark_done` on SQLite's writer connection: one prepared statement per row.
fn mark_on_writer(
    conn: &mut rusqlite::Connection,
    now: i64,
    batch: &[Done],
    first_processed_seq: i64,
    txns: &[TxnRecord],
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut upsert = tx.prepare_cached(TXN_UPSERT)?;
        for t in txns {
            upsert.execute(rusqlite::params![t.txn_id, t.fingerprint, t.event_count, t.received_at])?;
        }
        let mut mark = tx.prepare_cached(MARK_ONE)?;
        for (i, d) in batch.iter().enumerate() {
            let pseq = first_processed_seq + i as i64;
            let outcome = match &d.outcome {
                Outcome::Processed => "processed",
                Outcome::DeadLetter(reason) => {
                    tx.prepare_cached(DEAD_FROM_INBOX)?.execute(rusqlite::params![reason, now, d.seq])?;
                    "dead_letter"
                }
            };
            mark.execute(rusqlite::params![now, pseq, outcome, d.seq])?;
        }
    }
    tx.commit()
}

/// Number of events not yet processed.
pub async fn unprocessed_count(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar(UNPROCESSED_COUNT).fetch_one(db.pool()).await
}

/// The highest processing number given so far.
pub async fn max_processed_seq(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar(MAX_PROCESSED_SEQ).fetch_one(db.pool()).await
}

/// The events processed since `since_ms` (until pruned, the inbox keeps their IDs), in the
/// order they were processed: event ID and room ID.
pub async fn processed_since(db: &Db, since_ms: i64) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(PROCESSED_SINCE).bind(since_ms).fetch_all(db.pool()).await
}

/// Number of dead letters kept.
pub async fn dead_letter_count(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar(DEAD_COUNT).fetch_one(db.pool()).await
}

/// Drops de-duplication records, transaction IDs and dead letters older than `before_ms`.
/// Unprocessed events are never dropped.
pub async fn prune(db: &Db, before_ms: i64) -> sqlx::Result<u64> {
    let _w = db.write_guard().await;
    let mut n = sqlx::query(PRUNE_INBOX).bind(before_ms).execute(db.pool()).await?.rows_affected();
    n += sqlx::query(PRUNE_TXNS).bind(before_ms).execute(db.pool()).await?.rows_affected();
    n += sqlx::query(PRUNE_DEAD).bind(before_ms).execute(db.pool()).await?.rows_affected();
    Ok(n)
}
