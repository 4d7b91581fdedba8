//! `clients.profile`, `client_notes`, `client_monitorings` and `client_documents`: the client file.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::store::now_ms;
use crate::store::Db;

/// A note.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// ID.
    pub id: i64,
    /// Who wrote it.
    pub author: String,
    /// The text.
    pub text: String,
    /// Created (ms).
    pub created_at: i64,
    /// Last changed (ms).
    pub updated_at: i64,
}

/// A monitoring.
#[derive(Debug, Clone, Serialize)]
pub struct Monitoring {
    /// ID.
    pub id: i64,
    /// Who recorded it.
    pub author: String,
    /// Duration of the counselling contact, in minutes.
    pub duration_minutes: i64,
    /// Subject.
    pub subject: String,
    /// Further fields.
    pub details: Value,
    /// Created (ms).
    pub created_at: i64,
    /// Last changed (ms).
    pub updated_at: i64,
}

/// The client's master data beyond the display name.
pub async fn profile(db: &Db, client: &str) -> sqlx::Result<Option<Value>> {
    let v: Option<String> = sqlx::query_scalar("SELECT profile FROM clients WHERE user_id = $1")
        .bind(client)
        .fetch_optional(db.pool())
        .await?;
    Ok(v.map(|s| serde_json::from_str(&s).unwrap_or(Value::Object(Default::default()))))
}

/// Replaces the master data (and display name).
pub async fn set_profile(db: &Db, client: &str, display_name: &str, profile: &Value) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query("UPDATE clients SET display_name = $2, profile = $3 WHERE user_id = $1")
        .bind(client)
        .bind(display_name)
        .bind(profile.to_string())
        .execute(db.pool())
        .await
        .map(|_| ())
}

fn note(r: &sqlx::any::AnyRow) -> sqlx::Result<Note> {
    Ok(Note {
        id: r.try_get(0)?,
        author: r.try_get(1)?,
        text: r.try_get(2)?,
        created_at: r.try_get(3)?,
        updated_at: r.try_get(4)?,
    })
}

/// Notes, newest first.
pub async fn notes(db: &Db, client: &str) -> sqlx::Result<Vec<Note>> {
    let rows = sqlx::query(
        "SELECT id, author, text, created_at, updated_at FROM client_notes WHERE client = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(client)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(note).collect()
}

/// Adds a note.
pub async fn add_note(db: &Db, client: &str, author: &str, text: &str) -> sqlx::Result<Note> {
    let now = now_ms();
    let _w = db.write_guard().await;
    let r = sqlx::query(
        "INSERT INTO client_notes (client, author, text, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
         RETURNING id, author, text, created_at, updated_at",
    )
    .bind(client)
    .bind(author)
    .bind(text)
    .bind(now)
    .fetch_one(db.pool())
    .await?;
    note(&r)
}

/// Changes a note's text; `None` if there is no such note of this client.
pub async fn edit_note(db: &Db, client: &str, id: i64, text: &str) -> sqlx::Result<Option<Note>> {
    let _w = db.write_guard().await;
    let r = sqlx::query(
        "UPDATE client_notes SET text = $3, updated_at = $4 WHERE client = $1 AND id = $2 \
         RETURNING id, author, text, created_at, updated_at",
    )
    .bind(client)
    .bind(id)
    .bind(text)
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await?;
    r.as_ref().map(note).transpose()
}

/// Deletes a note; `false` if there was none.
pub async fn delete_note(db: &Db, client: &str, id: i64) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    let n = sqlx::query("DELETE FROM client_notes WHERE client = $1 AND id = $2")
        .bind(client)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(n.rows_affected() == 1)
}

const M_COLS: &str = "id, author, duration_minutes, subject, details, created_at, updated_at";

fn monitoring(r: &sqlx::any::AnyRow) -> sqlx::Result<Monitoring> {
    let details: String = r.try_get(4)?;
    Ok(Monitoring {
        id: r.try_get(0)?,
        author: r.try_get(1)?,
        duration_minutes: r.try_get(2)?,
        subject: r.try_get(3)?,
        details: serde_json::from_str(&details).unwrap_or(Value::Object(Default::default())),
        created_at: r.try_get(5)?,
        updated_at: r.try_get(6)?,
    })
}

/// Monitorings, newest first.
pub async fn monitorings(db: &Db, client: &str) -> sqlx::Result<Vec<Monitoring>> {
    let sql = format!(
        "SELECT {M_COLS} FROM client_monitorings WHERE client = $1 ORDER BY created_at DESC, id DESC"
    );
    sqlx::query(&sql).bind(client).fetch_all(db.pool()).await?.iter().map(monitoring).collect()
}

/// One monitoring.
pub async fn monitoring_by_id(db: &Db, client: &str, id: i64) -> sqlx::Result<Option<Monitoring>> {
    let sql = format!("SELECT {M_COLS} FROM client_monitorings WHERE client = $1 AND id = $2");
    sqlx::query(&sql)
        .bind(client)
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .as_ref()
        .map(monitoring)
        .transpose()
}

/// Adds a monitoring.
pub async fn add_monitoring(
    db: &Db,
    client: &str,
    author: &str,
    minutes: i64,
    subject: &str,
    details: &Value,
) -> sqlx::Result<Monitoring> {
    let now = now_ms();
    let _w = db.write_guard().await;
    let sql = format!(
        "INSERT INTO client_monitorings (client, author, duration_minutes, subject, details, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {M_COLS}"
    );
    let r = sqlx::query(&sql)
        .bind(client)
        .bind(author)
        .bind(minutes)
        .bind(subject)
        .bind(details.to_string())
        .bind(now)
        .fetch_one(db.pool())
        .await?;
    monitoring(&r)
}

/// Changes a monitoring; `None` if there is none.
pub async fn edit_monitoring(
    db: &Db,
    client: &str,
    id: i64,
    minutes: i64,
    subject: &str,
    details: &Value,
) -> sqlx::Result<Option<Monitoring>> {
    let _w = db.write_guard().await;
    let sql = format!(
        "UPDATE client_monitorings SET duration_minutes = $3, subject = $4, details = $5, updated_at = $6 \
         WHERE client = $1 AND id = $2 RETURNING {M_COLS}"
    );
    let r = sqlx::query(&sql)
        .bind(client)
        .bind(id)
        .bind(minutes)
        .bind(subject)
        .bind(details.to_string())
        .bind(now_ms())
        .fetch_optional(db.pool())
        .await?;
    r.as_ref().map(monitoring).transpose()
}

/// Deletes a monitoring; `false` if there was none.
pub async fn delete_monitoring(db: &Db, client: &str, id: i64) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    let n = sqlx::query("DELETE FROM client_monitorings WHERE client = $1 AND id = $2")
        .bind(client)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(n.rows_affected() == 1)
}

/// A document's entry (the bytes are in the file store).
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    /// ID.
    pub id: i64,
    /// Who uploaded it.
    pub author: String,
    /// File name as uploaded (last path component).
    pub file_name: String,
    /// MIME type (checked against the content).
    pub content_type: String,
    /// Size in bytes.
    pub size: i64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Where the file store keeps it (not shown).
    #[serde(skip)]
    pub storage_key: String,
    /// Uploaded (ms).
    pub created_at: i64,
}

/// A document to be recorded.
pub struct NewDocument {
    /// File name.
    pub file_name: String,
    /// MIME type.
    pub content_type: &'static str,
    /// Size in bytes.
    pub size: i64,
    /// SHA-256, hex.
    pub sha256: String,
    /// The file store's key.
    pub storage_key: String,
}

const D_COLS: &str = "id, author, file_name, content_type, size, sha256, storage_key, created_at";

fn document(r: &sqlx::any::AnyRow) -> sqlx::Result<Document> {
    Ok(Document {
        id: r.try_get(0)?,
        author: r.try_get(1)?,
        file_name: r.try_get(2)?,
        content_type: r.try_get(3)?,
        size: r.try_get(4)?,
        sha256: r.try_get(5)?,
        storage_key: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}

/// Documents, newest first.
pub async fn documents(db: &Db, client: &str) -> sqlx::Result<Vec<Document>> {
    let sql =
        format!("SELECT {D_COLS} FROM client_documents WHERE client = $1 ORDER BY created_at DESC, id DESC");
    sqlx::query(&sql).bind(client).fetch_all(db.pool()).await?.iter().map(document).collect()
}

/// One document.
pub async fn document_by_id(db: &Db, client: &str, id: i64) -> sqlx::Result<Option<Document>> {
    let sql = format!("SELECT {D_COLS} FROM client_documents WHERE client = $1 AND id = $2");
    sqlx::query(&sql)
        .bind(client)
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .as_ref()
        .map(document)
        .transpose()
}

/// Records several documents at once (all or none), newest last in the given order.
pub async fn add_documents(
    db: &Db,
    client: &str,
    author: &str,
    docs: &[NewDocument],
) -> sqlx::Result<Vec<Document>> {
    let now = now_ms();
    let _w = db.write_guard().await;
    let mut tx = db.pool().begin().await?;
    let sql = format!(
        "INSERT INTO client_documents (client, author, file_name, content_type, size, sha256, storage_key, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {D_COLS}"
    );
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let r = sqlx::query(&sql)
            .bind(client)
            .bind(author)
            .bind(&d.file_name)
            .bind(d.content_type)
            .bind(d.size)
            .bind(&d.sha256)
            .bind(&d.storage_key)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        out.push(document(&r)?);
    }
    tx.commit().await?;
    Ok(out)
}

/// Removes a document's entry; `false` if there was none.
pub async fn delete_document(db: &Db, client: &str, id: i64) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    let n = sqlx::query("DELETE FROM client_documents WHERE client = $1 AND id = $2")
        .bind(client)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(n.rows_affected() == 1)
}

/// An institution's monitorings recorded in `[from, until)` (ms): author, minutes, subject,
/// when. For the statistics (no client, no details).
pub async fn monitoring_times(
    db: &Db,
    institution: &str,
    from: i64,
    until: i64,
) -> sqlx::Result<Vec<(String, i64, String, i64)>> {
    sqlx::query_as(
        "SELECT m.author, m.duration_minutes, m.subject, m.created_at FROM client_monitorings m \
         JOIN clients c ON c.user_id = m.client WHERE c.institution_id = $1 AND m.created_at >= $2 AND m.created_at < $3",
    )
    .bind(institution)
    .bind(from)
    .bind(until)
    .fetch_all(db.pool())
    .await
}

/// The authors of an institution's notes (`notes`) or documents (`documents`) made in
/// `[from, until)` (ms), one entry each. For the statistics.
pub async fn authors(
    db: &Db,
    what: Counted,
    institution: &str,
    from: i64,
    until: i64,
) -> sqlx::Result<Vec<String>> {
    let table = match what {
        Counted::Notes => "client_notes",
        Counted::Documents => "client_documents",
    };
    let sql = format!(
        "SELECT x.author FROM {table} x JOIN clients c ON c.user_id = x.client \
         WHERE c.institution_id = $1 AND x.created_at >= $2 AND x.created_at < $3"
    );
    sqlx::query_scalar(&sql).bind(institution).bind(from).bind(until).fetch_all(db.pool()).await
}

/// What [`authors`] counts.
#[derive(Clone, Copy, Debug)]
pub enum Counted {
    /// Notes.
    Notes,
    /// Documents.
    Documents,
}
