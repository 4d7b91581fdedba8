//! `counsellors`, `counsellor_departments` and `clients`.

use serde::Serialize;
use sqlx::Row;

use crate::store::now_ms;
use crate::store::Db;

const C_INSERT: &str = "INSERT INTO counsellors (user_id, institution_id, display_name, created_at) \
                        VALUES ($1, $2, $3, $4)";
const C_GET: &str =
    "SELECT user_id, institution_id, display_name, institution_admin FROM counsellors WHERE user_id = $1";
const C_LIST: &str = "SELECT user_id, institution_id, display_name, institution_admin FROM counsellors \
                      WHERE institution_id = $1 ORDER BY display_name, user_id";
const C_DEPT: &str = "INSERT INTO counsellor_departments (user_id, department_id) VALUES ($1, $2) \
                      ON CONFLICT (user_id, department_id) DO NOTHING";
const C_DEPTS: &str =
    "SELECT department_id FROM counsellor_departments WHERE user_id = $1 ORDER BY department_id";
const R_INSERT: &str =
    "INSERT INTO clients (user_id, institution_id, display_name, kind, blocked, created_at) \
                        VALUES ($1, $2, $3, $4, 0, $5)";
const R_GET: &str =
    "SELECT user_id, institution_id, display_name, kind, blocked FROM clients WHERE user_id = $1";
const R_LIST: &str = "SELECT user_id, institution_id, display_name, kind, blocked FROM clients \
                      WHERE institution_id = $1 ORDER BY created_at, user_id";
/// `blocked` holds when the block began (ms), 0 when not blocked; blocking again keeps the
/// first time.
const R_BLOCK: &str =
    "UPDATE clients SET blocked = CASE WHEN $1 = 0 THEN 0 WHEN blocked = 0 THEN $1 ELSE blocked END \
    WHERE user_id = $2";

/// A counsellor.
#[derive(Debug, Clone, Serialize)]
pub struct Counsellor {
    /// Matrix user ID.
    pub user_id: String,
    /// Institution.
    pub institution_id: String,
    /// Display name.
    pub display_name: String,
    /// Whether they administer their institution (they may change every shared text
    /// snippet).
    pub institution_admin: bool,
}

/// A client (puppet).
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    /// The puppet's Matrix user ID.
    pub user_id: String,
    /// Institution.
    pub institution_id: String,
    /// Display name (the client's chosen name).
    pub display_name: String,
    /// `registered` or `guest`.
    pub kind: String,
    /// Whether the client is blocked.
    pub blocked: bool,
    /// Since when (ms), if blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_since: Option<i64>,
}

fn counsellor(r: &sqlx::any::AnyRow) -> sqlx::Result<Counsellor> {
    Ok(Counsellor {
        user_id: r.try_get(0)?,
        institution_id: r.try_get(1)?,
        display_name: r.try_get(2)?,
        institution_admin: r.try_get::<i64, _>(3)? != 0,
    })
}

fn client(r: &sqlx::any::AnyRow) -> sqlx::Result<Client> {
    Ok(Client {
        user_id: r.try_get(0)?,
        institution_id: r.try_get(1)?,
        display_name: r.try_get(2)?,
        kind: r.try_get(3)?,
        blocked: r.try_get::<i64, _>(4)? != 0,
        blocked_since: Some(r.try_get::<i64, _>(4)?).filter(|b| *b != 0),
    })
}

/// Adds a counsellor; `false` if the user is a counsellor already.
pub async fn insert_counsellor(db: &Db, user_id: &str, institution: &str, name: &str) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    crate::store::inserted(
        sqlx::query(C_INSERT)
            .bind(user_id)
            .bind(institution)
            .bind(name)
            .bind(now_ms())
            .execute(db.pool())
            .await,
    )
}

/// One counsellor.
pub async fn counsellor_by_id(db: &Db, user_id: &str) -> sqlx::Result<Option<Counsellor>> {
    sqlx::query(C_GET).bind(user_id).fetch_optional(db.pool()).await?.as_ref().map(counsellor).transpose()
}

/// An institution's counsellors.
pub async fn counsellors(db: &Db, institution: &str) -> sqlx::Result<Vec<Counsellor>> {
    sqlx::query(C_LIST).bind(institution).fetch_all(db.pool()).await?.iter().map(counsellor).collect()
}

/// Makes a counsellor an institution admin or not; `false` if there is no such counsellor.
pub async fn set_institution_admin(db: &Db, user_id: &str, admin: bool) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    let r = sqlx::query("UPDATE counsellors SET institution_admin = $2 WHERE user_id = $1")
        .bind(user_id)
        .bind(i64::from(admin))
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Puts a counsellor into a department.
pub async fn add_to_department(db: &Db, user_id: &str, department: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(C_DEPT).bind(user_id).bind(department).execute(db.pool()).await.map(|_| ())
}

/// A counsellor's departments.
pub async fn departments_of(db: &Db, user_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(C_DEPTS).bind(user_id).fetch_all(db.pool()).await
}

/// The counsellors of a department.
pub async fn members_of_department(db: &Db, department: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT user_id FROM counsellor_departments WHERE department_id = $1 ORDER BY user_id")
        .bind(department)
        .fetch_all(db.pool())
        .await
}

/// Adds a client.
pub async fn insert_client(
    db: &Db,
    user_id: &str,
    institution: &str,
    name: &str,
    kind: &str,
) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(R_INSERT)
        .bind(user_id)
        .bind(institution)
        .bind(name)
        .bind(kind)
        .bind(now_ms())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// One client.
pub async fn client_by_id(db: &Db, user_id: &str) -> sqlx::Result<Option<Client>> {
    sqlx::query(R_GET).bind(user_id).fetch_optional(db.pool()).await?.as_ref().map(client).transpose()
}

/// An institution's clients.
pub async fn clients(db: &Db, institution: &str) -> sqlx::Result<Vec<Client>> {
    sqlx::query(R_LIST).bind(institution).fetch_all(db.pool()).await?.iter().map(client).collect()
}

/// Blocks or unblocks a client; `false` if there is no such client.
pub async fn set_blocked(db: &Db, user_id: &str, blocked: bool) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    let n = sqlx::query(R_BLOCK)
        .bind(if blocked { now_ms() } else { 0 })
        .bind(user_id)
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(n == 1)
}
