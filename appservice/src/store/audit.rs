//! `audit_log`: who did what, when. Never message content; IDs only.

use serde::Serialize;
use sqlx::Row;

use crate::store::now_ms;
use crate::store::Db;

const INSERT: &str = "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)";
const LIST: &str = "SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT $1";

/// One audit entry.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// ID.
    pub id: i64,
    /// When (ms).
    pub at: i64,
    /// Who (a user ID, `admin-api`, `cli` or `assisto`).
    pub actor: String,
    /// What, e.g. `client.block`, `rule.colleague_cap.refused`.
    pub action: String,
    /// On what (a user or room ID).
    pub subject: String,
    /// More, without personal data.
    pub detail: Option<String>,
}

/// Writes an entry.
pub async fn record(
    db: &Db,
    actor: &str,
    action: &str,
    subject: &str,
    detail: Option<&str>,
) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(INSERT)
        .bind(now_ms())
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(detail)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The newest entries.
pub async fn recent(db: &Db, limit: i64) -> sqlx::Result<Vec<Entry>> {
    let rows = sqlx::query(LIST).bind(limit).fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            Ok(Entry {
                id: r.try_get(0)?,
                at: r.try_get(1)?,
                actor: r.try_get(2)?,
                action: r.try_get(3)?,
                subject: r.try_get(4)?,
                detail: r.try_get(5)?,
            })
        })
        .collect()
}
