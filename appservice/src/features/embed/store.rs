//! The web embed's tables: `embed_settings`, `embed_sessions`, `client_identities`,
//! `guest_counters`, `embed_conversations`.

use assisto_bridge::core::{FormSwitches, Forms};
use serde::Serialize;
use sqlx::Row;

use crate::store::inserted;
use crate::store::now_ms;
use crate::store::Db;

/// An institution's embed settings.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Which forms are on.
    pub forms: Forms,
    /// Origins allowed to embed the chat (CORS), e.g. `https://beratung.example.org`.
    pub allowed_origins: Vec<String>,
    /// Whether a signing secret for the logged-in area exists.
    pub has_secret: bool,
    #[serde(skip)]
    /// The signing secret.
    pub secret: Option<String>,
}

/// The settings of an institution without a row: the anonymous bubble and the logged-in
/// tile are on, no other origin is allowed, no secret.
pub fn default_settings() -> Settings {
    Settings {
        forms: Forms {
            anonymous: FormSwitches { tile: false, bubble: true },
            registered: FormSwitches { tile: true, bubble: false },
        },
        allowed_origins: Vec::new(),
        has_secret: false,
        secret: None,
    }
}

/// An institution's settings (defaults if none were stored).
pub async fn settings(db: &Db, institution: &str) -> sqlx::Result<Settings> {
    let row = sqlx::query(
        "SELECT anonymous_tile, anonymous_bubble, registered_tile, registered_bubble, allowed_origins, secret \
         FROM embed_settings WHERE institution = $1",
    )
    .bind(institution)
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else { return Ok(default_settings()) };
    let on = |i: usize| -> sqlx::Result<bool> { Ok(r.try_get::<i64, _>(i)? != 0) };
    let origins: String = r.try_get(4)?;
    let secret: Option<String> = r.try_get(5)?;
    Ok(Settings {
        forms: Forms {
            anonymous: FormSwitches { tile: on(0)?, bubble: on(1)? },
            registered: FormSwitches { tile: on(2)?, bubble: on(3)? },
        },
        allowed_origins: serde_json::from_str(&origins).unwrap_or_default(),
        has_secret: secret.is_some(),
        secret,
    })
}

/// Stores forms and origins (the secret stays).
pub async fn set_settings(db: &Db, institution: &str, forms: &Forms, origins: &[String]) -> sqlx::Result<()> {
    let current = settings(db, institution).await?;
    let _w = db.write_guard().await;
    sqlx::query(
        "INSERT INTO embed_settings (institution, anonymous_tile, anonymous_bubble, registered_tile, registered_bubble, \
         allowed_origins, secret, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (institution) DO UPDATE SET anonymous_tile = $2, anonymous_bubble = $3, registered_tile = $4, \
         registered_bubble = $5, allowed_origins = $6, updated_at = $8",
    )
    .bind(institution)
    .bind(forms.anonymous.tile as i64)
    .bind(forms.anonymous.bubble as i64)
    .bind(forms.registered.tile as i64)
    .bind(forms.registered.bubble as i64)
    .bind(serde_json::to_string(origins).unwrap_or_else(|_| "[]".into()))
    .bind(current.secret)
    .bind(now_ms())
    .execute(db.pool())
    .await
    .map(|_| ())
}

/// Replaces the signing secret.
pub async fn set_secret(db: &Db, institution: &str, secret: &str) -> sqlx::Result<()> {
    let current = settings(db, institution).await?;
    set_settings(db, institution, &current.forms, &current.allowed_origins).await?;
    let _w = db.write_guard().await;
    sqlx::query("UPDATE embed_settings SET secret = $2, updated_at = $3 WHERE institution = $1")
        .bind(institution)
        .bind(secret)
        .bind(now_ms())
        .execute(db.pool())
        .await
        .map(|_| ())
}

/// Whether any institution allows this origin.
pub async fn origin_allowed(db: &Db, origin: &str) -> sqlx::Result<bool> {
    let quoted = serde_json::to_string(origin).unwrap_or_default();
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT allowed_origins FROM embed_settings WHERE allowed_origins LIKE '%' || $1 || '%'",
    )
    .bind(&quoted)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .any(|r| serde_json::from_str::<Vec<String>>(r).unwrap_or_default().iter().any(|o| o == origin)))
}

/// A stored session.
#[derive(Clone, Debug)]
pub struct SessionRow {
    /// The client's puppet.
    pub client: String,
    /// The institution.
    pub institution: String,
    /// The conversation's room.
    pub room_id: String,
    /// Expiry (ms).
    pub expires_at: i64,
    /// Ended (ms), if so.
    pub ended_at: Option<i64>,
}

/// Records a session.
pub async fn insert_session(
    db: &Db,
    token_hash: &str,
    client: &str,
    institution: &str,
    room_id: &str,
    expires_at: i64,
) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(
        "INSERT INTO embed_sessions (token_hash, client, institution, room_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_hash)
    .bind(client)
    .bind(institution)
    .bind(room_id)
    .bind(now_ms())
    .bind(expires_at)
    .execute(db.pool())
    .await
    .map(|_| ())
}

/// A session by its token's hash.
pub async fn session(db: &Db, token_hash: &str) -> sqlx::Result<Option<SessionRow>> {
    let r = sqlx::query(
        "SELECT client, institution, room_id, expires_at, ended_at FROM embed_sessions WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(db.pool())
    .await?;
    r.map(|r| {
        Ok(SessionRow {
            client: r.try_get(0)?,
            institution: r.try_get(1)?,
            room_id: r.try_get(2)?,
            expires_at: r.try_get(3)?,
            ended_at: r.try_get(4)?,
        })
    })
    .transpose()
}

/// Ends every session of a client in a room.
pub async fn end_sessions(db: &Db, client: &str, room_id: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(
        "UPDATE embed_sessions SET ended_at = $3 WHERE client = $1 AND room_id = $2 AND ended_at IS NULL",
    )
    .bind(client)
    .bind(room_id)
    .bind(now_ms())
    .execute(db.pool())
    .await
    .map(|_| ())
}

/// The client the site knows as `external_id`.
pub async fn identity(db: &Db, institution: &str, external_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT client FROM client_identities WHERE institution = $1 AND external_id = $2")
        .bind(institution)
        .bind(external_id)
        .fetch_optional(db.pool())
        .await
}

/// Links the site's ID to a client; `false` if the ID was linked meanwhile.
pub async fn insert_identity(
    db: &Db,
    institution: &str,
    external_id: &str,
    client: &str,
) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    inserted(
        sqlx::query("INSERT INTO client_identities (institution, external_id, client) VALUES ($1, $2, $3)")
            .bind(institution)
            .bind(external_id)
            .bind(client)
            .execute(db.pool())
            .await,
    )
}

/// The next guest number of an institution (1, 2, …).
pub async fn next_guest_number(db: &Db, institution: &str) -> sqlx::Result<i64> {
    let _w = db.write_guard().await;
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO guest_counters (institution, next) VALUES ($1, 1) ON CONFLICT (institution) DO NOTHING",
    )
    .bind(institution)
    .execute(&mut *tx)
    .await?;
    let n: i64 = sqlx::query_scalar(
        "UPDATE guest_counters SET next = next + 1 WHERE institution = $1 RETURNING next - 1",
    )
    .bind(institution)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// A client's current conversation: room and whether it has ended.
pub async fn conversation(db: &Db, client: &str) -> sqlx::Result<Option<(String, bool)>> {
    let r = sqlx::query("SELECT room_id, ended_at FROM embed_conversations WHERE client = $1")
        .bind(client)
        .fetch_optional(db.pool())
        .await?;
    r.map(|r| Ok((r.try_get(0)?, r.try_get::<Option<i64>, _>(1)?.is_some()))).transpose()
}

/// Sets a client's current conversation (replacing an ended one).
pub async fn set_conversation(db: &Db, client: &str, room_id: &str, kind: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(
        "INSERT INTO embed_conversations (client, room_id, kind, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (client) DO UPDATE SET room_id = $2, kind = $3, created_at = $4, ended_at = NULL",
    )
    .bind(client)
    .bind(room_id)
    .bind(kind)
    .bind(now_ms())
    .execute(db.pool())
    .await
    .map(|_| ())
}

/// Marks a conversation ended.
pub async fn end_conversation(db: &Db, room_id: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query("UPDATE embed_conversations SET ended_at = $2 WHERE room_id = $1 AND ended_at IS NULL")
        .bind(room_id)
        .bind(now_ms())
        .execute(db.pool())
        .await
        .map(|_| ())
}

/// The client of a conversation room, if it is one, and whether it ended.
pub async fn conversation_of_room(db: &Db, room_id: &str) -> sqlx::Result<Option<(String, bool)>> {
    let r = sqlx::query("SELECT client, ended_at FROM embed_conversations WHERE room_id = $1")
        .bind(room_id)
        .fetch_optional(db.pool())
        .await?;
    r.map(|r| Ok((r.try_get(0)?, r.try_get::<Option<i64>, _>(1)?.is_some()))).transpose()
}
