//! `room_members`: the membership of every room the service sees, from `m.room.member`.

pub use ruma::events::room::member::MembershipState;
use sqlx::Row;

use crate::store::now_ms;
use crate::store::Db;

const UPSERT: &str = "INSERT INTO room_members (room_id, user_id, membership, updated_at) \
                      VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, user_id) DO UPDATE \
                      SET membership = excluded.membership, updated_at = excluded.updated_at";
const OF_ROOM: &str = "SELECT user_id, membership FROM room_members WHERE room_id = $1 ORDER BY user_id";

/// Records a member's current membership.
pub async fn set(db: &Db, room_id: &str, user_id: &str, membership: &MembershipState) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(UPSERT)
        .bind(room_id)
        .bind(user_id)
        .bind(membership.as_str())
        .bind(now_ms())
        .execute(db.pool())
        .await
        .map(|_| ())
}

/// All recorded members of a room with their membership.
pub async fn of_room(db: &Db, room_id: &str) -> sqlx::Result<Vec<(String, MembershipState)>> {
    let rows = sqlx::query(OF_ROOM).bind(room_id).fetch_all(db.pool()).await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, MembershipState::from(r.try_get::<String, _>(1)?)))).collect()
}

/// Whether a membership holds a place in the room: joined or invited.
pub fn holds_place(m: &MembershipState) -> bool {
    matches!(m, MembershipState::Join | MembershipState::Invite)
}

/// Whether a membership counts against a room's cap: joined, invited or knocking.
pub fn counts(m: &MembershipState) -> bool {
    matches!(m, MembershipState::Join | MembershipState::Invite | MembershipState::Knock)
}

const ROOMS_OF_USER: &str = "SELECT room_id FROM room_members WHERE user_id = $1 ORDER BY room_id";

/// Every room in which a user has (or had) a membership the service saw.
pub async fn rooms_of_user(db: &Db, user_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(ROOMS_OF_USER).bind(user_id).fetch_all(db.pool()).await
}

const JOINED_MANAGED: &str = "SELECT m.room_id, r.kind FROM room_members m \
                              JOIN managed_rooms r ON r.room_id = m.room_id \
                              WHERE m.user_id = $1 AND m.membership = 'join' \
                              AND r.institution_id = $2 AND r.deleted_at IS NULL ORDER BY m.room_id";

/// The managed rooms of `institution` (not deleted) that a user is joined to now, with
/// their kinds.
pub async fn joined_managed_rooms(
    db: &Db,
    user_id: &str,
    institution: &str,
) -> sqlx::Result<Vec<(String, assisto_core::RoomKind)>> {
    let rows = sqlx::query(JOINED_MANAGED).bind(user_id).bind(institution).fetch_all(db.pool()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let kind: String = r.try_get(1)?;
        if let Some(k) = assisto_core::RoomKind::parse(&kind) {
            out.push((r.try_get(0)?, k));
        }
    }
    Ok(out)
}
