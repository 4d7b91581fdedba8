//! `institutions`, `institution_rooms` and `departments`.

use serde::Serialize;
use sqlx::Row;

use crate::store::now_ms;
use crate::store::Db;
use assisto_core::Category;

const INSERT: &str = "INSERT INTO institutions (id, name, created_at) VALUES ($1, $2, $3)";
const GET: &str = "SELECT id, name, created_at FROM institutions WHERE id = $1";
const LIST: &str = "SELECT id, name, created_at FROM institutions ORDER BY id";
const ROOM_PUT: &str = "INSERT INTO institution_rooms (institution_id, category, room_id) \
     VALUES ($1, $2, $3) ON CONFLICT (institution_id, category) DO UPDATE SET room_id = excluded.room_id";
const ROOMS_OF: &str =
    "SELECT category, room_id FROM institution_rooms WHERE institution_id = $1 ORDER BY category";
const ROOM_OWNER: &str = "SELECT institution_id, category FROM institution_rooms WHERE room_id = $1";
const DEPT_INSERT: &str =
    "INSERT INTO departments (id, institution_id, name, created_at) VALUES ($1, $2, $3, $4)";
const DEPT_LIST: &str = "SELECT id, name FROM departments WHERE institution_id = $1 ORDER BY name";
const DEPT_GET: &str = "SELECT id, institution_id, name FROM departments WHERE id = $1";

/// An institution.
#[derive(Debug, Clone, Serialize)]
pub struct Institution {
    /// Slug.
    pub id: String,
    /// Name.
    pub name: String,
    /// When it was created (ms).
    pub created_at: i64,
}

/// A department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Department {
    /// ID (`<institution>/<slug>`).
    pub id: String,
    /// Name.
    pub name: String,
}

fn institution(r: &sqlx::any::AnyRow) -> sqlx::Result<Institution> {
    Ok(Institution { id: r.try_get(0)?, name: r.try_get(1)?, created_at: r.try_get(2)? })
}

/// Creates an institution; `false` if the ID is taken.
pub async fn insert(db: &Db, id: &str, name: &str) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    crate::store::inserted(sqlx::query(INSERT).bind(id).bind(name).bind(now_ms()).execute(db.pool()).await)
}

/// One institution.
pub async fn get(db: &Db, id: &str) -> sqlx::Result<Option<Institution>> {
    sqlx::query(GET).bind(id).fetch_optional(db.pool()).await?.as_ref().map(institution).transpose()
}

/// All institutions.
pub async fn list(db: &Db) -> sqlx::Result<Vec<Institution>> {
    sqlx::query(LIST).fetch_all(db.pool()).await?.iter().map(institution).collect()
}

/// Records one of an institution's rooms.
pub async fn set_room(db: &Db, institution: &str, cat: Category, room_id: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(ROOM_PUT).bind(institution).bind(cat.as_str()).bind(room_id).execute(db.pool()).await?;
    Ok(())
}

/// An institution's rooms by category.
pub async fn rooms(db: &Db, institution: &str) -> sqlx::Result<Vec<(Category, String)>> {
    let rows = sqlx::query(ROOMS_OF).bind(institution).fetch_all(db.pool()).await?;
    let mut out = Vec::new();
    for r in rows {
        let cat: String = r.try_get(0)?;
        if let Some(c) = Category::parse(&cat) {
            out.push((c, r.try_get(1)?));
        }
    }
    Ok(out)
}

/// One of an institution's rooms.
pub async fn room(db: &Db, institution: &str, cat: Category) -> sqlx::Result<Option<String>> {
    Ok(rooms(db, institution).await?.into_iter().find(|(c, _)| *c == cat).map(|(_, r)| r))
}

/// Which institution owns a space or directory room.
pub async fn room_owner(db: &Db, room_id: &str) -> sqlx::Result<Option<(String, Category)>> {
    let row = sqlx::query(ROOM_OWNER).bind(room_id).fetch_optional(db.pool()).await?;
    match row {
        Some(r) => {
            let cat: String = r.try_get(1)?;
            Ok(Category::parse(&cat).map(|c| (r.try_get(0).unwrap_or_default(), c)))
        }
        None => Ok(None),
    }
}

/// Creates a department; `false` if the name is taken in the institution.
pub async fn insert_department(db: &Db, id: &str, institution: &str, name: &str) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    crate::store::inserted(
        sqlx::query(DEPT_INSERT)
            .bind(id)
            .bind(institution)
            .bind(name)
            .bind(now_ms())
            .execute(db.pool())
            .await,
    )
}

/// An institution's departments.
pub async fn departments(db: &Db, institution: &str) -> sqlx::Result<Vec<Department>> {
    let rows = sqlx::query(DEPT_LIST).bind(institution).fetch_all(db.pool()).await?;
    rows.iter().map(|r| Ok(Department { id: r.try_get(0)?, name: r.try_get(1)? })).collect()
}

/// A department and its institution.
pub async fn department(db: &Db, id: &str) -> sqlx::Result<Option<(String, Department)>> {
    let row = sqlx::query(DEPT_GET).bind(id).fetch_optional(db.pool()).await?;
    row.map(|r| Ok((r.try_get(1)?, Department { id: r.try_get(0)?, name: r.try_get(2)? }))).transpose()
}
