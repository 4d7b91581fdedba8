//! `managed_rooms`, `deactivated_participants` and `appointments`.

use serde::Serialize;
use sqlx::Row;

use crate::store::now_ms;
use crate::store::Db;
use assisto_core::RoomKind;

const INSERT: &str = "INSERT INTO managed_rooms (room_id, institution_id, kind, creator, description, \
     deactivated, created_at) VALUES ($1, $2, $3, $4, NULL, 0, $5) ON CONFLICT (room_id) DO NOTHING";
const GET: &str = "SELECT room_id, institution_id, kind, creator, description, deactivated, deleted_at \
     FROM managed_rooms WHERE room_id = $1";
const LIST: &str = "SELECT room_id, institution_id, kind, creator, description, deactivated, deleted_at \
     FROM managed_rooms WHERE institution_id = $1 AND deleted_at IS NULL ORDER BY created_at, room_id";
const ALL_LIVE: &str = "SELECT room_id, institution_id, kind, creator, description, deactivated, deleted_at \
     FROM managed_rooms WHERE deleted_at IS NULL ORDER BY created_at, room_id";
const COUNT_LIVE: &str = "SELECT COUNT(*) FROM managed_rooms WHERE deleted_at IS NULL";
const SET_KIND: &str = "UPDATE managed_rooms SET kind = $1 WHERE room_id = $2";
const SET_DESC: &str = "UPDATE managed_rooms SET description = $1 WHERE room_id = $2";
const SET_DEACT: &str = "UPDATE managed_rooms SET deactivated = $1 WHERE room_id = $2";
const SET_IN_SPACE: &str = "UPDATE managed_rooms SET in_space = 1 WHERE room_id = $1";
const IN_SPACE: &str = "SELECT in_space FROM managed_rooms WHERE room_id = $1";
const SET_DELETED: &str = "UPDATE managed_rooms SET deleted_at = $1 WHERE room_id = $2";
const P_ADD: &str = "INSERT INTO deactivated_participants (room_id, user_id) VALUES ($1, $2) \
     ON CONFLICT (room_id, user_id) DO NOTHING";
const P_DEL: &str = "DELETE FROM deactivated_participants WHERE room_id = $1 AND user_id = $2";
const P_IS: &str = "SELECT COUNT(*) FROM deactivated_participants WHERE room_id = $1 AND user_id = $2";
const A_ADD: &str = "INSERT INTO appointments (room_id, starts_at, ends_at) VALUES ($1, $2, $3)";
const A_LIST: &str = "SELECT id, starts_at, ends_at FROM appointments WHERE room_id = $1 ORDER BY starts_at";
const A_DEL: &str = "DELETE FROM appointments WHERE room_id = $1 AND id = $2";
const A_DUE: &str = "SELECT id, room_id, starts_at, ends_at FROM appointments \
     WHERE (starts_at > $1 AND starts_at <= $2) OR (ends_at > $1 AND ends_at <= $2) ORDER BY id";
const A_OPEN: &str =
    "SELECT COUNT(*) FROM appointments WHERE room_id = $1 AND starts_at <= $2 AND ends_at > $2";

/// A managed room.
#[derive(Debug, Clone, Serialize)]
pub struct ManagedRoom {
    /// Room ID.
    pub room_id: String,
    /// Institution.
    pub institution_id: String,
    /// Kind.
    pub kind: RoomKind,
    /// Who created it.
    pub creator: String,
    /// The counsellors-only description (groups).
    pub description: Option<String>,
    /// Whether it is read-only for everyone.
    pub deactivated: bool,
    /// When it was deleted, if it was.
    pub deleted_at: Option<i64>,
}

/// An appointment slot.
#[derive(Debug, Clone, Serialize)]
pub struct Appointment {
    /// ID.
    pub id: i64,
    /// Start (ms).
    pub starts_at: i64,
    /// End (ms).
    pub ends_at: i64,
}

fn room(r: &sqlx::any::AnyRow) -> sqlx::Result<ManagedRoom> {
    let kind: String = r.try_get(2)?;
    Ok(ManagedRoom {
        room_id: r.try_get(0)?,
        institution_id: r.try_get(1)?,
        kind: RoomKind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown room kind {kind}").into()))?,
        creator: r.try_get(3)?,
        description: r.try_get(4)?,
        deactivated: r.try_get::<i64, _>(5)? != 0,
        deleted_at: r.try_get(6)?,
    })
}

/// Registers a managed room (no-op if known).
pub async fn insert(
    db: &Db,
    room_id: &str,
    institution: &str,
    kind: RoomKind,
    creator: &str,
) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    let q =
        sqlx::query(INSERT).bind(room_id).bind(institution).bind(kind.as_str()).bind(creator).bind(now_ms());
    Ok(q.execute(db.pool()).await?.rows_affected() == 1)
}

/// One managed room.
pub async fn get(db: &Db, room_id: &str) -> sqlx::Result<Option<ManagedRoom>> {
    sqlx::query(GET).bind(room_id).fetch_optional(db.pool()).await?.as_ref().map(room).transpose()
}

/// An institution's rooms that are not deleted.
pub async fn list(db: &Db, institution: &str) -> sqlx::Result<Vec<ManagedRoom>> {
    sqlx::query(LIST).bind(institution).fetch_all(db.pool()).await?.iter().map(room).collect()
}

/// Every institution's rooms that are not deleted.
pub async fn all_live(db: &Db) -> sqlx::Result<Vec<ManagedRoom>> {
    sqlx::query(ALL_LIVE).fetch_all(db.pool()).await?.iter().map(room).collect()
}

/// An institution's rooms (live chats aside) created or deleted in `[from, until)` (ms):
/// kind, creator, created, deleted. For the statistics.
pub async fn made_or_ended(
    db: &Db,
    institution: &str,
    from: i64,
    until: i64,
) -> sqlx::Result<Vec<(RoomKind, String, i64, Option<i64>)>> {
    let rows = sqlx::query(
        "SELECT kind, creator, created_at, deleted_at FROM managed_rooms WHERE institution_id = $1 AND kind <> 'live' \
         AND ((created_at >= $2 AND created_at < $3) OR (deleted_at >= $2 AND deleted_at < $3))",
    )
    .bind(institution)
    .bind(from)
    .bind(until)
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(kind) = RoomKind::parse(&r.try_get::<String, _>(0)?) {
            out.push((kind, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
        }
    }
    Ok(out)
}

/// How many rooms are not deleted.
pub async fn count_live(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar(COUNT_LIVE).fetch_one(db.pool()).await
}

/// Changes a room's kind (group ↔ appointment group).
pub async fn set_kind(db: &Db, room_id: &str, kind: RoomKind) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(SET_KIND).bind(kind.as_str()).bind(room_id).execute(db.pool()).await.map(|_| ())
}

/// Sets the counsellors-only description.
pub async fn set_description(db: &Db, room_id: &str, description: Option<&str>) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(SET_DESC).bind(description).bind(room_id).execute(db.pool()).await.map(|_| ())
}

/// Deactivates (read-only) or reactivates a room.
pub async fn set_deactivated(db: &Db, room_id: &str, deactivated: bool) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(SET_DEACT).bind(i64::from(deactivated)).bind(room_id).execute(db.pool()).await.map(|_| ())
}

/// Records that the room was placed in its space.
pub async fn set_in_space(db: &Db, room_id: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(SET_IN_SPACE).bind(room_id).execute(db.pool()).await.map(|_| ())
}

/// Whether the room was placed in its space.
pub async fn in_space(db: &Db, room_id: &str) -> sqlx::Result<bool> {
    let v: Option<i64> = sqlx::query_scalar(IN_SPACE).bind(room_id).fetch_optional(db.pool()).await?;
    Ok(v == Some(1))
}

/// Marks a room deleted.
pub async fn set_deleted(db: &Db, room_id: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(SET_DELETED).bind(now_ms()).bind(room_id).execute(db.pool()).await.map(|_| ())
}

/// Deactivates or reactivates one participant.
pub async fn set_participant_deactivated(
    db: &Db,
    room_id: &str,
    user_id: &str,
    deactivated: bool,
) -> sqlx::Result<()> {
    let sql = if deactivated { P_ADD } else { P_DEL };
    let _w = db.write_guard().await;
    sqlx::query(sql).bind(room_id).bind(user_id).execute(db.pool()).await.map(|_| ())
}

/// Whether a participant is deactivated.
pub async fn is_participant_deactivated(db: &Db, room_id: &str, user_id: &str) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar(P_IS).bind(room_id).bind(user_id).fetch_one(db.pool()).await?;
    Ok(n > 0)
}

/// Adds an appointment slot.
pub async fn add_appointment(db: &Db, room_id: &str, starts_at: i64, ends_at: i64) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(A_ADD).bind(room_id).bind(starts_at).bind(ends_at).execute(db.pool()).await.map(|_| ())
}

/// A room's appointment slots.
pub async fn appointments(db: &Db, room_id: &str) -> sqlx::Result<Vec<Appointment>> {
    let rows = sqlx::query(A_LIST).bind(room_id).fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| Ok(Appointment { id: r.try_get(0)?, starts_at: r.try_get(1)?, ends_at: r.try_get(2)? }))
        .collect()
}

/// Removes a slot; `false` if there was none.
pub async fn remove_appointment(db: &Db, room_id: &str, id: i64) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    Ok(sqlx::query(A_DEL).bind(room_id).bind(id).execute(db.pool()).await?.rows_affected() == 1)
}

/// Whether a slot is open at `at_ms`.
pub async fn appointment_open(db: &Db, room_id: &str, at_ms: i64) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar(A_OPEN).bind(room_id).bind(at_ms).fetch_one(db.pool()).await?;
    Ok(n > 0)
}

/// Appointment slots that opened or closed in `(after, until]`, with their rooms.
pub async fn appointments_due(db: &Db, after: i64, until: i64) -> sqlx::Result<Vec<(String, Appointment)>> {
    let rows = sqlx::query(A_DUE).bind(after).bind(until).fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(1)?,
                Appointment { id: r.try_get(0)?, starts_at: r.try_get(2)?, ends_at: r.try_get(3)? },
            ))
        })
        .collect()
}
