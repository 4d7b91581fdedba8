//! `deletions` and the institutions' retention settings.

use serde::Serialize;
use sqlx::Row;

use crate::store::now_ms;
use crate::store::state;
use crate::store::Db;

const MARK: &str =
    "INSERT INTO deletions (client_user_id, institution_id, requested_by, requested_at, due_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_user_id) DO NOTHING";
const UNMARK: &str =
    "DELETE FROM deletions WHERE client_user_id = $1 AND step = 'pending' AND finished_at IS NULL";
const COLS: &str =
    "client_user_id, institution_id, requested_by, requested_at, due_at, step, job_id, attempts, \
     last_error, finished_at";
const SET_STEP: &str =
    "UPDATE deletions SET step = $2, job_id = NULL, last_error = NULL WHERE client_user_id = $1";
const SET_JOB: &str = "UPDATE deletions SET job_id = $2 WHERE client_user_id = $1";
const SET_ERROR: &str =
    "UPDATE deletions SET attempts = attempts + 1, last_error = $2 WHERE client_user_id = $1";
const FINISH: &str =
    "UPDATE deletions SET step = 'done', finished_at = $2, job_id = NULL, last_error = NULL \
     WHERE client_user_id = $1";
const PERIOD: &str = "SELECT deletion_period_secs, live_retention_secs FROM institutions WHERE id = $1";
const SET_PERIODS: &str =
    "UPDATE institutions SET deletion_period_secs = $2, live_retention_secs = $3 WHERE id = $1";

/// A client marked for deletion.
#[derive(Debug, Clone, Serialize)]
pub struct Deletion {
    /// The puppet's ID.
    pub client_user_id: String,
    /// Institution.
    pub institution_id: String,
    /// Who asked.
    pub requested_by: String,
    /// When (ms).
    pub requested_at: i64,
    /// Not before (ms).
    pub due_at: i64,
    /// Last completed step.
    pub step: String,
    /// A Synapse job being waited for.
    pub job_id: Option<String>,
    /// Failed attempts so far.
    pub attempts: i64,
    /// The last failure (no personal data).
    pub last_error: Option<String>,
    /// When it finished (ms).
    pub finished_at: Option<i64>,
}

fn row(r: &sqlx::any::AnyRow) -> sqlx::Result<Deletion> {
    Ok(Deletion {
        client_user_id: r.try_get(0)?,
        institution_id: r.try_get(1)?,
        requested_by: r.try_get(2)?,
        requested_at: r.try_get(3)?,
        due_at: r.try_get(4)?,
        step: r.try_get(5)?,
        job_id: r.try_get(6)?,
        attempts: r.try_get(7)?,
        last_error: r.try_get(8)?,
        finished_at: r.try_get(9)?,
    })
}

/// Marks a client for deletion at `due_at`; `false` if already marked.
pub async fn mark(db: &Db, client: &str, institution: &str, by: &str, due_at: i64) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    let n = sqlx::query(MARK)
        .bind(client)
        .bind(institution)
        .bind(by)
        .bind(now_ms())
        .bind(due_at)
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Brings a pending deletion's deadline forward to `due_at` (never later).
pub async fn bring_forward(db: &Db, client: &str, due_at: i64) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(
        "UPDATE deletions SET due_at = $2 WHERE client_user_id = $1 AND due_at > $2 AND finished_at IS NULL",
    )
    .bind(client)
    .bind(due_at)
    .execute(db.pool())
    .await
    .map(|_| ())
}

/// Takes the mark back, if the routine has not started; `false` otherwise.
pub async fn unmark(db: &Db, client: &str) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    Ok(sqlx::query(UNMARK).bind(client).execute(db.pool()).await?.rows_affected() == 1)
}

/// One deletion.
pub async fn get(db: &Db, client: &str) -> sqlx::Result<Option<Deletion>> {
    let sql = format!("SELECT {COLS} FROM deletions WHERE client_user_id = $1");
    sqlx::query(&sql).bind(client).fetch_optional(db.pool()).await?.as_ref().map(row).transpose()
}

/// Deletions, unfinished first; `finished`: only finished (`Some(true)`) or unfinished.
pub async fn list(db: &Db, finished: Option<bool>) -> sqlx::Result<Vec<Deletion>> {
    let filter = match finished {
        Some(true) => "WHERE finished_at IS NOT NULL",
        Some(false) => "WHERE finished_at IS NULL",
        None => "",
    };
    let sql = format!("SELECT {COLS} FROM deletions {filter} ORDER BY due_at, client_user_id");
    sqlx::query(&sql).fetch_all(db.pool()).await?.iter().map(row).collect()
}

/// Unfinished deletions whose deadline has passed.
pub async fn due(db: &Db, now: i64) -> sqlx::Result<Vec<Deletion>> {
    let sql =
        format!("SELECT {COLS} FROM deletions WHERE finished_at IS NULL AND due_at <= $1 ORDER BY due_at");
    sqlx::query(&sql).bind(now).fetch_all(db.pool()).await?.iter().map(row).collect()
}

/// Records a completed step.
pub async fn set_step(db: &Db, client: &str, step: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(SET_STEP).bind(client).bind(step).execute(db.pool()).await.map(|_| ())
}

/// Records a Synapse job to wait for.
pub async fn set_job(db: &Db, client: &str, job: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(SET_JOB).bind(client).bind(job).execute(db.pool()).await.map(|_| ())
}

/// Records a failure.
pub async fn set_error(db: &Db, client: &str, error: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(SET_ERROR).bind(client).bind(error).execute(db.pool()).await.map(|_| ())
}

/// Marks a deletion finished.
pub async fn finish(db: &Db, client: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(FINISH).bind(client).bind(now_ms()).execute(db.pool()).await.map(|_| ())
}

/// An institution's deletion period and live-chat retention, in seconds.
pub async fn periods(db: &Db, institution: &str) -> sqlx::Result<Option<(i64, i64)>> {
    let r = sqlx::query(PERIOD).bind(institution).fetch_optional(db.pool()).await?;
    r.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// Sets them.
pub async fn set_periods(db: &Db, institution: &str, deletion: i64, live: i64) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    let n = sqlx::query(SET_PERIODS).bind(institution).bind(deletion).bind(live).execute(db.pool()).await?;
    Ok(n.rows_affected() == 1)
}

fn media_key(client: &str) -> String {
    format!("deletion_media:{client}")
}

/// The media (`mxc://` URIs) found in the client's own rooms before they were purged, to be
/// deleted by a later step.
pub async fn room_media(db: &Db, client: &str) -> sqlx::Result<Vec<String>> {
    let v = state::get(db.pool(), &media_key(client)).await?;
    Ok(v.and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default())
}

/// Adds media found in one of the client's rooms (kept until the client's rows go).
pub async fn add_room_media(db: &Db, client: &str, mxcs: &[String]) -> sqlx::Result<()> {
    let mut all = room_media(db, client).await?;
    for m in mxcs {
        if !all.contains(m) {
            all.push(m.clone());
        }
    }
    let _w = db.write_guard().await;
    state::put(db.pool(), &media_key(client), &serde_json::Value::from(all).to_string()).await
}

/// Tables the deletion routine deletes from (for `VACUUM` on PostgreSQL).
pub const TABLES: [&str; 15] = [
    "live_log",
    "live_chats",
    "client_notes",
    "client_monitorings",
    "client_documents",
    "embed_sessions",
    "client_identities",
    "embed_conversations",
    "clients",
    "room_members",
    "deactivated_participants",
    "inbox",
    "dead_letters",
    "service_state",
    "managed_rooms",
];

/// Removes the client's rows from the project's own tables (in one transaction): the client,
/// its client file, embed sessions and the site's ID, memberships, participant marks, inbox
/// rows and dead letters of the purged rooms, dead letters that name the client anywhere,
/// and the routine's own notes (the media list).
pub async fn remove_client_rows(db: &Db, client: &str, purged_rooms: &[String]) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    let mut tx = db.pool().begin().await?;
    for sql in [
        "DELETE FROM client_notes WHERE client = $1",
        "DELETE FROM client_monitorings WHERE client = $1",
        "DELETE FROM client_documents WHERE client = $1",
        "DELETE FROM embed_sessions WHERE client = $1",
        "DELETE FROM client_identities WHERE client = $1",
        "DELETE FROM embed_conversations WHERE client = $1",
        "DELETE FROM live_log WHERE room_id IN (SELECT room_id FROM live_chats WHERE client = $1)",
        "DELETE FROM live_chats WHERE client = $1",
        "DELETE FROM clients WHERE user_id = $1",
        "DELETE FROM room_members WHERE user_id = $1",
        "DELETE FROM deactivated_participants WHERE user_id = $1",
        "DELETE FROM dead_letters WHERE body LIKE '%' || $1 || '%'",
    ] {
        sqlx::query(sql).bind(client).execute(&mut *tx).await?;
    }
    for room in purged_rooms {
        for sql in [
            "DELETE FROM inbox WHERE room_id = $1",
            "DELETE FROM dead_letters WHERE room_id = $1",
            "DELETE FROM room_members WHERE room_id = $1",
        ] {
            sqlx::query(sql).bind(room).execute(&mut *tx).await?;
        }
    }
    sqlx::query("DELETE FROM service_state WHERE name = $1")
        .bind(media_key(client))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
