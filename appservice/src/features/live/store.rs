//! The live-chat desk's tables: `live_chats` (one row per chat, changed only by
//! compare-and-set on its `version`), `live_departments`, `live_codes`,
//! `counsellor_status`, `live_counters` and `live_log`.

use assisto_core::live::{Chat, ChatState, OpeningHours, Presence, Status};
use serde::Serialize;
use sqlx::Row;

use crate::store::now_ms;
use crate::store::Db;

/// A live chat as stored.
#[derive(Clone, Debug)]
pub struct LiveChat {
    /// Its room.
    pub room_id: String,
    /// Its institution.
    pub institution_id: String,
    /// Its number in the institution ("Live 12"), for commands.
    pub number: i64,
    /// The visitor's puppet.
    pub client: String,
    /// The state machine's view.
    pub chat: Chat,
    /// When it entered its current state (ms).
    pub state_since: i64,
    /// When it was taken (first time), if it was.
    pub taken_at: Option<i64>,
    /// When it was closed.
    pub closed_at: Option<i64>,
    /// Classification code it was closed with.
    pub code: Option<String>,
    /// The compare-and-set counter.
    pub version: i64,
    /// Since when the visitor's oldest unanswered message waits (taken chats).
    pub unanswered_since: Option<i64>,
    /// When a counsellor last opened its preview.
    pub previewed_at: Option<i64>,
}

const CHAT_COLUMNS: &str =
    "room_id, institution_id, department_id, number, client, state, counsellor, state_since, \
     declined, queued_at, taken_at, closed_at, abandoned, code, version, unanswered_since, previewed_at";

fn chat_row(r: &sqlx::any::AnyRow) -> sqlx::Result<LiveChat> {
    let state: String = r.try_get(5)?;
    let counsellor: Option<String> = r.try_get(6)?;
    let state_since: i64 = r.try_get(7)?;
    let abandoned = r.try_get::<i64, _>(12)? != 0;
    let state = match (state.as_str(), counsellor) {
        ("offered", Some(to)) => ChatState::Offered { to, since_ms: state_since },
        ("taken", Some(owner)) => ChatState::Taken { owner },
        ("closed", _) => ChatState::Closed { abandoned },
        _ => ChatState::Waiting,
    };
    let declined: String = r.try_get(8)?;
    Ok(LiveChat {
        room_id: r.try_get(0)?,
        institution_id: r.try_get(1)?,
        number: r.try_get(3)?,
        client: r.try_get(4)?,
        chat: Chat {
            department: r.try_get(2)?,
            state,
            queued_at: r.try_get(9)?,
            declined: serde_json::from_str(&declined).unwrap_or_default(),
        },
        state_since,
        taken_at: r.try_get(10)?,
        closed_at: r.try_get(11)?,
        code: r.try_get(13)?,
        version: r.try_get(14)?,
        unanswered_since: r.try_get(15)?,
        previewed_at: r.try_get(16)?,
    })
}

/// The next live-chat number of an institution.
pub async fn next_number(db: &Db, institution: &str) -> sqlx::Result<i64> {
    let _w = db.write_guard().await;
    let mut tx = db.pool().begin().await?;
    sqlx::query("INSERT INTO live_counters (institution_id, next) VALUES ($1, 1) ON CONFLICT (institution_id) DO NOTHING")
        .bind(institution)
        .execute(&mut *tx)
        .await?;
    let n: i64 = sqlx::query_scalar(
        "UPDATE live_counters SET next = next + 1 WHERE institution_id = $1 RETURNING next - 1",
    )
    .bind(institution)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// Records a new waiting chat. `false` if the room has one already.
pub async fn insert_chat(
    db: &Db,
    room_id: &str,
    institution: &str,
    department: Option<&str>,
    number: i64,
    client: &str,
    at_ms: i64,
) -> sqlx::Result<bool> {
    let _w = db.write_guard().await;
    let r = sqlx::query(
        "INSERT INTO live_chats (room_id, institution_id, department_id, number, client, state, state_since, queued_at) \
         VALUES ($1, $2, $3, $4, $5, 'waiting', $6, $6) ON CONFLICT (room_id) DO NOTHING",
    )
    .bind(room_id)
    .bind(institution)
    .bind(department)
    .bind(number)
    .bind(client)
    .bind(at_ms)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A room's live chat.
pub async fn chat(db: &Db, room_id: &str) -> sqlx::Result<Option<LiveChat>> {
    let sql = format!("SELECT {CHAT_COLUMNS} FROM live_chats WHERE room_id = $1");
    sqlx::query(&sql).bind(room_id).fetch_optional(db.pool()).await?.as_ref().map(chat_row).transpose()
}

/// An institution's live chat by its number.
pub async fn chat_by_number(db: &Db, institution: &str, number: i64) -> sqlx::Result<Option<LiveChat>> {
    let sql = format!("SELECT {CHAT_COLUMNS} FROM live_chats WHERE institution_id = $1 AND number = $2");
    sqlx::query(&sql)
        .bind(institution)
        .bind(number)
        .fetch_optional(db.pool())
        .await?
        .as_ref()
        .map(chat_row)
        .transpose()
}

/// An institution's queued chats (waiting or offered), first arrived first.
pub async fn queued(db: &Db, institution: &str) -> sqlx::Result<Vec<LiveChat>> {
    let sql = format!(
        "SELECT {CHAT_COLUMNS} FROM live_chats WHERE institution_id = $1 AND state IN ('waiting', 'offered') \
         ORDER BY queued_at, room_id"
    );
    sqlx::query(&sql).bind(institution).fetch_all(db.pool()).await?.iter().map(chat_row).collect()
}

/// Every queued chat of every institution (for the desk's tick: offers that lapse,
/// visitors who left).
pub async fn all_queued(db: &Db) -> sqlx::Result<Vec<LiveChat>> {
    let sql = format!(
        "SELECT {CHAT_COLUMNS} FROM live_chats WHERE state IN ('waiting', 'offered') ORDER BY queued_at, room_id"
    );
    sqlx::query(&sql).fetch_all(db.pool()).await?.iter().map(chat_row).collect()
}

/// Every taken chat (for the desk's tick: reminders, owners gone).
pub async fn all_taken(db: &Db) -> sqlx::Result<Vec<LiveChat>> {
    let sql = format!("SELECT {CHAT_COLUMNS} FROM live_chats WHERE state = 'taken' ORDER BY room_id");
    sqlx::query(&sql).fetch_all(db.pool()).await?.iter().map(chat_row).collect()
}

/// The chats a counsellor owns now.
pub async fn owned_by(db: &Db, counsellor: &str) -> sqlx::Result<Vec<LiveChat>> {
    let sql = format!(
        "SELECT {CHAT_COLUMNS} FROM live_chats WHERE counsellor = $1 AND state = 'taken' ORDER BY taken_at, room_id"
    );
    sqlx::query(&sql).bind(counsellor).fetch_all(db.pool()).await?.iter().map(chat_row).collect()
}

/// An institution's open chats (queued or taken), for the admin API.
pub async fn open(db: &Db, institution: &str) -> sqlx::Result<Vec<LiveChat>> {
    let sql = format!(
        "SELECT {CHAT_COLUMNS} FROM live_chats WHERE institution_id = $1 AND state <> 'closed' ORDER BY queued_at, room_id"
    );
    sqlx::query(&sql).bind(institution).fetch_all(db.pool()).await?.iter().map(chat_row).collect()
}

/// What a successful step also writes.
#[derive(Clone, Debug, Default)]
pub struct Extra<'a> {
    /// The chat was closed with this code and note.
    pub code: Option<&'a str>,
    /// The note.
    pub note: Option<&'a str>,
}

/// Writes `next` if the row is still at `version` (compare-and-set). `true` if it was:
/// of several writers at once, exactly one succeeds.
///
/// `owner_limit`: for a take, the most chats the new owner may hold; the write happens
/// only while they hold fewer others, decided in the same statement (under the writer
/// lock), so that two takes of different chats at once cannot pass the limit together.
pub async fn compare_and_set(
    db: &Db,
    current: &LiveChat,
    next: &Chat,
    extra: &Extra<'_>,
    owner_limit: Option<u32>,
) -> sqlx::Result<bool> {
    let now = now_ms();
    let since = match &next.state {
        ChatState::Offered { since_ms, .. } => *since_ms,
        s if s.name() == current.chat.state.name() && s.counsellor() == current.chat.state.counsellor() => {
            current.state_since
        }
        _ => now,
    };
    let taken = matches!(next.state, ChatState::Taken { .. });
    let closed = matches!(next.state, ChatState::Closed { .. });
    let abandoned = matches!(next.state, ChatState::Closed { abandoned: true });
    let _w = db.write_guard().await;
    let r = sqlx::query(
        "UPDATE live_chats SET state = $3, counsellor = $4, state_since = $5, declined = $6, department_id = $7, \
         taken_at = CASE WHEN $8 = 1 AND taken_at IS NULL THEN $9 ELSE taken_at END, \
         closed_at = CASE WHEN $10 = 1 THEN $9 ELSE closed_at END, abandoned = $11, \
         code = COALESCE($12, code), note = COALESCE($13, note), version = version + 1 \
         WHERE room_id = $1 AND version = $2 \
         AND (SELECT COUNT(*) FROM live_chats o WHERE o.counsellor = $4 AND o.state = 'taken' AND o.room_id <> $1) < $14",
    )
    .bind(&current.room_id)
    .bind(current.version)
    .bind(next.state.name())
    .bind(next.state.counsellor())
    .bind(since)
    .bind(serde_json::to_string(&next.declined).unwrap_or_else(|_| "[]".into()))
    .bind(next.department.as_deref())
    .bind(taken as i64)
    .bind(now)
    .bind(closed as i64)
    .bind(abandoned as i64)
    .bind(extra.code)
    .bind(extra.note)
    .bind(owner_limit.map_or(i64::MAX, i64::from))
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether the chat's visitor chose `counsellor` (the log's `chosen` line).
pub async fn was_chosen(db: &Db, room_id: &str, counsellor: &str) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM live_log WHERE room_id = $1 AND what = 'chosen' AND counsellor = $2",
    )
    .bind(room_id)
    .bind(counsellor)
    .fetch_one(db.pool())
    .await?;
    Ok(n > 0)
}

/// Writes one line of the desk's log.
pub async fn log(db: &Db, chat: &LiveChat, what: &str, counsellor: Option<&str>) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(
        "INSERT INTO live_log (room_id, institution_id, department_id, what, counsellor, at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&chat.room_id)
    .bind(&chat.institution_id)
    .bind(chat.chat.department.as_deref())
    .bind(what)
    .bind(counsellor)
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// One line of the desk's log.
#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    /// The chat's room.
    pub room_id: String,
    /// Its department.
    pub department_id: Option<String>,
    /// What happened: queued, offered, lapsed, taken, returned, forwarded, closed, abandoned.
    pub what: String,
    /// The counsellor concerned.
    pub counsellor: Option<String>,
    /// When (ms).
    pub at: i64,
}

/// An institution's log since `since_ms` (the statistics' hook), oldest first.
pub async fn log_since(db: &Db, institution: &str, since_ms: i64, limit: i64) -> sqlx::Result<Vec<LogEntry>> {
    sqlx::query(
        "SELECT room_id, department_id, what, counsellor, at FROM live_log WHERE institution_id = $1 AND at >= $2 \
         ORDER BY at, id LIMIT $3",
    )
    .bind(institution)
    .bind(since_ms)
    .bind(limit)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|r| {
        Ok(LogEntry {
            room_id: r.try_get(0)?,
            department_id: r.try_get(1)?,
            what: r.try_get(2)?,
            counsellor: r.try_get(3)?,
            at: r.try_get(4)?,
        })
    })
    .collect()
}

/// How long the last `limit` chats of a department waited until taken, in seconds.
pub async fn recent_waits(
    db: &Db,
    institution: &str,
    department: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<u32>> {
    let rows: Vec<i64> = sqlx::query_scalar(
        "SELECT taken_at - queued_at FROM live_chats WHERE institution_id = $1 AND \
         ((department_id IS NULL AND $2 IS NULL) OR department_id = $2) AND taken_at IS NOT NULL \
         ORDER BY taken_at DESC LIMIT $3",
    )
    .bind(institution)
    .bind(department)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|ms| (ms.max(0) / 1000).min(i64::from(u32::MAX)) as u32).collect())
}

/// A department's live-chat settings.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DepartmentSettings {
    /// `manual` (counsellors pick from the queue) or `auto` (offered to the least busy).
    pub routing: Routing,
    /// Most live chats a counsellor owns at once (their own limit wins).
    pub max_chats: u32,
    /// How long an offer stands before the next counsellor is asked (seconds).
    pub offer_timeout_secs: u32,
    /// Whether closing needs a classification code.
    pub code_required: bool,
    /// When the department takes live chats (in `bot.timezone`).
    pub opening_hours: OpeningHours,
}

/// How a department's chats find a counsellor.
#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Counsellors pick from the queue.
    Manual,
    /// Offered to the least busy available counsellor.
    Auto,
}

impl Default for DepartmentSettings {
    fn default() -> Self {
        Self {
            routing: Routing::Manual,
            max_chats: 3,
            offer_timeout_secs: 30,
            code_required: false,
            opening_hours: OpeningHours::default(),
        }
    }
}

/// A department's settings (defaults without a row; `None` department: the defaults).
pub async fn department_settings(db: &Db, department: Option<&str>) -> sqlx::Result<DepartmentSettings> {
    let Some(department) = department else { return Ok(DepartmentSettings::default()) };
    let r = sqlx::query(
        "SELECT routing, max_chats, offer_timeout_secs, code_required, hours FROM live_departments WHERE department_id = $1",
    )
    .bind(department)
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = r else { return Ok(DepartmentSettings::default()) };
    let routing: String = r.try_get(0)?;
    Ok(DepartmentSettings {
        routing: if routing == "auto" { Routing::Auto } else { Routing::Manual },
        max_chats: r.try_get::<i64, _>(1)?.clamp(0, i64::from(u32::MAX)) as u32,
        offer_timeout_secs: r.try_get::<i64, _>(2)?.clamp(0, i64::from(u32::MAX)) as u32,
        code_required: r.try_get::<i64, _>(3)? != 0,
        opening_hours: serde_json::from_str(&r.try_get::<String, _>(4)?).unwrap_or_default(),
    })
}

/// Stores a department's settings.
pub async fn set_department_settings(db: &Db, department: &str, s: &DepartmentSettings) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query(
        "INSERT INTO live_departments (department_id, routing, max_chats, offer_timeout_secs, code_required, updated_at, \
         hours) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (department_id) DO UPDATE SET routing = $2, \
         max_chats = $3, offer_timeout_secs = $4, code_required = $5, updated_at = $6, hours = $7",
    )
    .bind(department)
    .bind(if s.routing == Routing::Auto { "auto" } else { "manual" })
    .bind(i64::from(s.max_chats))
    .bind(i64::from(s.offer_timeout_secs))
    .bind(s.code_required as i64)
    .bind(now_ms())
    .bind(serde_json::to_string(&s.opening_hours).unwrap_or_else(|_| "{}".into()))
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A classification code.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Code {
    /// The code counsellors type.
    pub code: String,
    /// What it means.
    pub label: String,
}

/// An institution's classification codes.
pub async fn codes(db: &Db, institution: &str) -> sqlx::Result<Vec<Code>> {
    sqlx::query("SELECT code, label FROM live_codes WHERE institution_id = $1 ORDER BY code")
        .bind(institution)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| Ok(Code { code: r.try_get(0)?, label: r.try_get(1)? }))
        .collect()
}

/// Replaces an institution's classification codes.
pub async fn set_codes(db: &Db, institution: &str, codes: &[Code]) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM live_codes WHERE institution_id = $1")
        .bind(institution)
        .execute(&mut *tx)
        .await?;
    for c in codes {
        sqlx::query("INSERT INTO live_codes (institution_id, code, label) VALUES ($1, $2, $3)")
            .bind(institution)
            .bind(&c.code)
            .bind(&c.label)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// A counsellor's status as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRow {
    /// What they set.
    pub status: Status,
    /// What the homeserver reports.
    pub presence: Presence,
    /// Only clients who already have a chat with them may choose them.
    pub only_regular: bool,
    /// Their own limit of live chats at once.
    pub max_chats: Option<u32>,
    /// When the status changed (ms).
    pub status_at: i64,
    /// When the presence changed (ms).
    pub presence_at: i64,
}

impl Default for StatusRow {
    fn default() -> Self {
        Self {
            status: Status::NotOnline,
            presence: Presence::Offline,
            only_regular: false,
            max_chats: None,
            status_at: 0,
            presence_at: 0,
        }
    }
}

fn status_row(r: &sqlx::any::AnyRow) -> sqlx::Result<StatusRow> {
    Ok(StatusRow {
        status: Status::parse(&r.try_get::<String, _>(0)?).unwrap_or(Status::NotOnline),
        presence: Presence::parse(&r.try_get::<String, _>(1)?).unwrap_or(Presence::Offline),
        only_regular: r.try_get::<i64, _>(2)? != 0,
        max_chats: r.try_get::<Option<i64>, _>(3)?.map(|n| n.clamp(0, i64::from(u32::MAX)) as u32),
        status_at: r.try_get(4)?,
        presence_at: r.try_get(5)?,
    })
}

/// A counsellor's status (not online and offline without a row).
pub async fn status(db: &Db, user_id: &str) -> sqlx::Result<StatusRow> {
    let r = sqlx::query(
        "SELECT status, presence, only_regular, max_chats, status_at, presence_at FROM counsellor_status WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.as_ref().map(status_row).transpose()?.unwrap_or_default())
}

/// Stores what a counsellor set. `true` if anything changed.
pub async fn set_status(
    db: &Db,
    user_id: &str,
    status: Status,
    only_regular: Option<bool>,
    max_chats: Option<Option<u32>>,
) -> sqlx::Result<bool> {
    let before = self::status(db, user_id).await?;
    let only_regular = only_regular.unwrap_or(before.only_regular);
    let max_chats = max_chats.unwrap_or(before.max_chats);
    if before.status == status
        && before.only_regular == only_regular
        && before.max_chats == max_chats
        && before.status_at != 0
    {
        return Ok(false);
    }
    let now = now_ms();
    let _w = db.write_guard().await;
    sqlx::query(
        "INSERT INTO counsellor_status (user_id, status, presence, only_regular, max_chats, status_at, presence_at) \
         VALUES ($1, $2, 'offline', $3, $4, $5, $5) ON CONFLICT (user_id) DO UPDATE SET status = $2, only_regular = $3, \
         max_chats = $4, status_at = $5",
    )
    .bind(user_id)
    .bind(status.as_str())
    .bind(only_regular as i64)
    .bind(max_chats.map(i64::from))
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(true)
}

/// Stores what the homeserver reports. `true` if it changed.
pub async fn set_presence(db: &Db, user_id: &str, presence: Presence) -> sqlx::Result<bool> {
    let before = self::status(db, user_id).await?;
    if before.presence == presence && before.presence_at != 0 {
        return Ok(false);
    }
    let now = now_ms();
    let _w = db.write_guard().await;
    sqlx::query(
        "INSERT INTO counsellor_status (user_id, status, presence, only_regular, status_at, presence_at) \
         VALUES ($1, 'not_online', $2, 0, $3, $3) ON CONFLICT (user_id) DO UPDATE SET presence = $2, presence_at = $3",
    )
    .bind(user_id)
    .bind(presence.as_str())
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(true)
}

/// When a counsellor last took a live chat (ms; 0 for never).
pub async fn last_taken(db: &Db, counsellor: &str) -> sqlx::Result<i64> {
    let v: Option<i64> =
        sqlx::query_scalar("SELECT MAX(at) FROM live_log WHERE counsellor = $1 AND what = 'taken'")
            .bind(counsellor)
            .fetch_one(db.pool())
            .await?;
    Ok(v.unwrap_or(0))
}

/// How many chats are offered to a counsellor now.
pub async fn offered_to(db: &Db, counsellor: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM live_chats WHERE counsellor = $1 AND state = 'offered'")
        .bind(counsellor)
        .fetch_one(db.pool())
        .await
}

/// Institutions with queued chats.
pub async fn institutions_with_queue(db: &Db) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT institution_id FROM live_chats WHERE state IN ('waiting', 'offered') ORDER BY 1",
    )
    .fetch_all(db.pool())
    .await
}

/// A message in a live chat: the visitor's starts the reminder's clock (if it is not
/// running), a counsellor's stops it.
pub async fn message(db: &Db, room_id: &str, from_visitor: bool, at_ms: i64) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    if from_visitor {
        sqlx::query(
            "UPDATE live_chats SET unanswered_since = $2 WHERE room_id = $1 AND unanswered_since IS NULL",
        )
        .bind(room_id)
        .bind(at_ms)
        .execute(db.pool())
        .await?;
    } else {
        sqlx::query("UPDATE live_chats SET unanswered_since = NULL WHERE room_id = $1")
            .bind(room_id)
            .execute(db.pool())
            .await?;
    }
    Ok(())
}

/// A counsellor opened the preview of a queued chat.
pub async fn set_previewed(db: &Db, room_id: &str, at_ms: i64) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query("UPDATE live_chats SET previewed_at = $2 WHERE room_id = $1")
        .bind(room_id)
        .bind(at_ms)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A chat's response reminder as stored.
#[derive(Clone, Debug)]
pub struct ReminderRow {
    /// The room.
    pub room_id: String,
    /// The visitor.
    pub client: String,
    /// Whether it is taken (only taken chats carry a marker).
    pub taken: bool,
    /// Since when the visitor waits for an answer.
    pub unanswered_since: Option<i64>,
    /// The marker the room's name carries now.
    pub marker: String,
}

/// Taken chats, and chats whose room's name still carries a marker.
pub async fn reminders(db: &Db) -> sqlx::Result<Vec<ReminderRow>> {
    sqlx::query(
        "SELECT room_id, client, state, unanswered_since, marker FROM live_chats WHERE state = 'taken' OR marker <> ''",
    )
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|r| {
        Ok(ReminderRow {
            room_id: r.try_get(0)?,
            client: r.try_get(1)?,
            taken: r.try_get::<String, _>(2)? == "taken",
            unanswered_since: r.try_get(3)?,
            marker: r.try_get(4)?,
        })
    })
    .collect()
}

/// Records the marker the room's name now carries.
pub async fn set_marker(db: &Db, room_id: &str, marker: &str) -> sqlx::Result<()> {
    let _w = db.write_guard().await;
    sqlx::query("UPDATE live_chats SET marker = $2 WHERE room_id = $1")
        .bind(room_id)
        .bind(marker)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Departments with opening hours: (department, institution, hours).
pub async fn departments_with_hours(db: &Db) -> sqlx::Result<Vec<(String, String, OpeningHours)>> {
    sqlx::query(
        "SELECT l.department_id, d.institution_id, l.hours FROM live_departments l \
         JOIN departments d ON d.id = l.department_id WHERE l.hours <> '{}' ORDER BY l.department_id",
    )
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|r| {
        let hours: String = r.try_get(2)?;
        Ok((r.try_get(0)?, r.try_get(1)?, serde_json::from_str(&hours).unwrap_or_default()))
    })
    .collect()
}

/// A live chat as the statistics count it (IDs and times only).
#[derive(Debug, Clone)]
pub struct ChatTimes {
    /// Its department.
    pub department_id: Option<String>,
    /// Who took (or was last offered) it.
    pub counsellor: Option<String>,
    /// Arrived in the queue (ms).
    pub queued_at: i64,
    /// Taken (ms).
    pub taken_at: Option<i64>,
    /// Closed (ms).
    pub closed_at: Option<i64>,
    /// The visitor left while queued.
    pub abandoned: bool,
}

/// An institution's live chats queued or closed in `[from, until)` (ms).
pub async fn chat_times(db: &Db, institution: &str, from: i64, until: i64) -> sqlx::Result<Vec<ChatTimes>> {
    sqlx::query(
        "SELECT department_id, counsellor, queued_at, taken_at, closed_at, abandoned FROM live_chats \
         WHERE institution_id = $1 AND ((queued_at >= $2 AND queued_at < $3) OR (closed_at >= $2 AND closed_at < $3))",
    )
    .bind(institution)
    .bind(from)
    .bind(until)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|r| {
        Ok(ChatTimes {
            department_id: r.try_get(0)?,
            counsellor: r.try_get(1)?,
            queued_at: r.try_get(2)?,
            taken_at: r.try_get(3)?,
            closed_at: r.try_get(4)?,
            abandoned: r.try_get::<i64, _>(5)? != 0,
        })
    })
    .collect()
}

/// The desk's log entries of `what` (`returned`, `forwarded`, …) in `[from, until)`: their
/// department and counsellor.
pub async fn logged(
    db: &Db,
    institution: &str,
    what: &str,
    from: i64,
    until: i64,
) -> sqlx::Result<Vec<(Option<String>, Option<String>)>> {
    sqlx::query_as(
        "SELECT department_id, counsellor FROM live_log WHERE institution_id = $1 AND what = $2 AND at >= $3 AND at < $4",
    )
    .bind(institution)
    .bind(what)
    .bind(from)
    .bind(until)
    .fetch_all(db.pool())
    .await
}
