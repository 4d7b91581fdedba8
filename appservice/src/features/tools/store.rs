//! `snippets`, `counsellor_tools`, `pushed_links` and `institution_video`: the counsellor
//! tools' tables.

use assisto_core::tools::SnippetScope;
use serde::Serialize;
use sqlx::Row;

use crate::store::now_ms;
use crate::store::Db;

/// A text snippet (Textbaustein).
#[derive(Debug, Clone, Serialize)]
pub struct Snippet {
    /// ID.
    pub id: i64,
    /// Its institution.
    pub institution_id: String,
    /// `own`, `department` or `institution`.
    pub scope: String,
    /// Who wrote it; `None`: the institution (admin API).
    pub owner: Option<String>,
    /// Its department (department scope only).
    pub department_id: Option<String>,
    /// Name.
    pub name: String,
    /// Text, with placeholders.
    pub text: String,
    /// Created (ms).
    pub created_at: i64,
    /// Last changed (ms).
    pub updated_at: i64,
}

impl Snippet {
    /// Its scope (an unknown stored one counts as own: seen by nobody but its owner).
    pub fn scope(&self) -> SnippetScope {
        SnippetScope::parse(&self.scope).unwrap_or(SnippetScope::Own)
    }
}

const COLUMNS: &str = "id, institution_id, scope, owner, department_id, name, text, created_at, updated_at";

fn snippet(r: &sqlx::any::AnyRow) -> sqlx::Result<Snippet> {
    Ok(Snippet {
        id: r.try_get(0)?,
        institution_id: r.try_get(1)?,
        scope: r.try_get(2)?,
        owner: r.try_get(3)?,
        department_id: r.try_get(4)?,
        name: r.try_get(5)?,
        text: r.try_get(6)?,
        created_at: r.try_get(7)?,
        updated_at: r.try_get(8)?,
    })
}

/// What a new or changed snippet is.
pub struct SnippetInput<'a> {
    /// Scope.
    pub scope: SnippetScope,
    /// Department (department scope only).
    pub department_id: Option<&'a str>,
    /// Name (checked).
    pub name: &'a str,
    /// Text (checked).
    pub text: &'a str,
}

/// Adds a snippet.
pub async fn insert(
    db: &Db,
    institution: &str,
    owner: Option<&str>,
    s: &SnippetInput<'_>,
) -> sqlx::Result<Snippet> {
    let _w = db.write_guard().await;
    let r = sqlx::query(&format!(
        "INSERT INTO snippets (institution_id, scope, owner, department_id, name, text, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
    ))
    .bind(institution)
    .bind(s.scope.as_str())
    .bind(owner)
    .bind(s.department_id)
    .bind(s.name)
    .bind(s.text)
    .bind(now_ms())
    .fetch_one(db.pool())
    .await?;
    snippet(&r)
}

/// One snippet.
pub async fn get(db: &Db, id: i64) -> sqlx::Result<Option<Snippet>> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM snippets WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .as_ref()
        .map(snippet)
        .transpose()
}

/// An institution's snippets, by name.
pub async fn of_institution(db: &Db, institution: &str) -> sqlx::Result<Vec<Snippet>> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM snippets WHERE institution_id = $1 ORDER BY name, id"))
        .bind(institution)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(snippet)
        .collect()
}

/// Changes a snippet; `None` if it is gone.
pub async fn update(db: &Db, id: i64, s: &SnippetInput<'_>) -> sqlx::Result<Option<Snippet>> {
    let _w = db.write_guard().await;
    sqlx::query(&format!(
        "UPDATE snippets SET scope = $2, department_id = $3, name = $4, text = $5, updated_at = $6 \
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(s.scope.as_str())
    .bind(s.department_id)
    .bind(s.name)
    .bind(s.text)
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await?
    .as_ref()
    .map(snippet)
    .transpose()
}

/// Deletes a snippet; `false` if it was gone.
pub async fn delete(db: &Db, id: i64) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    Ok(sqlx::query("DELETE FROM snippets WHERE id = $1").bind(id).execute(db.pool()).await?.rows_affected()
        > 0)
}

/// A counsellor's tool settings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Settings {
    /// Their phone number as dialled, if stored.
    pub phone: Option<String>,
    /// "Erlaube Anfrage für Telefonnummer im Chat".
    pub allow_phone: bool,
    /// "Erlaube Anfrage für Video im Chat".
    pub allow_video: bool,
}

/// A counsellor's tool settings (the defaults if never set).
pub async fn settings(db: &Db, user_id: &str) -> sqlx::Result<Settings> {
    let r = sqlx::query("SELECT phone, allow_phone, allow_video FROM counsellor_tools WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(match r {
        Some(r) => Settings {
            phone: r.try_get(0)?,
            allow_phone: r.try_get::<i64, _>(1)? != 0,
            allow_video: r.try_get::<i64, _>(2)? != 0,
        },
        None => Settings::default(),
    })
}

/// Replaces a counsellor's tool settings.
pub async fn set_settings(db: &Db, user_id: &str, s: &Settings) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(
        "INSERT INTO counsellor_tools (user_id, phone, allow_phone, allow_video, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id) DO UPDATE SET phone = $2, allow_phone = $3, allow_video = $4, updated_at = $5",
    )
    .bind(user_id)
    .bind(s.phone.as_deref())
    .bind(i64::from(s.allow_phone))
    .bind(i64::from(s.allow_video))
    .bind(now_ms())
    .execute(db.pool())
    .await
    .map(|_| ())
}

/// How many pushed links are offered again.
pub const RECENT_LINKS: i64 = 10;

/// Remembers a pushed link (the newest first; only the last ten are kept).
pub async fn remember_link(db: &Db, user_id: &str, url: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO pushed_links (user_id, url, pushed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, url) DO UPDATE SET pushed_at = $3",
    )
    .bind(user_id)
    .bind(url)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM pushed_links WHERE user_id = $1 AND url NOT IN \
         (SELECT url FROM pushed_links WHERE user_id = $1 ORDER BY pushed_at DESC, url LIMIT $2)",
    )
    .bind(user_id)
    .bind(RECENT_LINKS)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The links a counsellor pushed lately, newest first.
pub async fn recent_links(db: &Db, user_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT url FROM pushed_links WHERE user_id = $1 ORDER BY pushed_at DESC, url LIMIT $2",
    )
    .bind(user_id)
    .bind(RECENT_LINKS)
    .fetch_all(db.pool())
    .await
}

/// An institution's video service.
#[derive(Debug, Clone, Serialize)]
pub struct Video {
    /// `jitsi` or `element_call`.
    pub service: String,
    /// Its base URL (https, no trailing slash).
    pub base_url: String,
    /// The Jitsi app ID its JWTs are issued for, if protected.
    pub jwt_app_id: Option<String>,
    /// The secret the JWTs are signed with; never shown.
    #[serde(skip)]
    pub jwt_secret: Option<String>,
}

/// The institution's video service, if it has one.
pub async fn video(db: &Db, institution: &str) -> sqlx::Result<Option<Video>> {
    let r = sqlx::query(
        "SELECT service, base_url, jwt_app_id, jwt_secret FROM institution_video WHERE institution_id = $1",
    )
    .bind(institution)
    .fetch_optional(db.pool())
    .await?;
    r.map(|r| {
        Ok(Video {
            service: r.try_get(0)?,
            base_url: r.try_get(1)?,
            jwt_app_id: r.try_get(2)?,
            jwt_secret: r.try_get(3)?,
        })
    })
    .transpose()
}

/// Sets the institution's video service.
pub async fn set_video(db: &Db, institution: &str, v: &Video) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(
        "INSERT INTO institution_video (institution_id, service, base_url, jwt_app_id, jwt_secret, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (institution_id) DO UPDATE SET service = $2, \
         base_url = $3, jwt_app_id = $4, jwt_secret = $5, updated_at = $6",
    )
    .bind(institution)
    .bind(&v.service)
    .bind(&v.base_url)
    .bind(v.jwt_app_id.as_deref())
    .bind(v.jwt_secret.as_deref())
    .bind(now_ms())
    .execute(db.pool())
    .await
    .map(|_| ())
}

/// Removes the institution's video service; `false` if it had none.
pub async fn delete_video(db: &Db, institution: &str) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    let r = sqlx::query("DELETE FROM institution_video WHERE institution_id = $1")
        .bind(institution)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}
