//! Reading and annotating a room as one of its members: single events, the timeline page
//! by page, the context of an event, typing notices, read receipts and redactions. One
//! method per client-server endpoint; the caller masquerades as the member.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::matrix::homeserver::{HomeserverClient, HsError, TxnId};

const ROOMS: [&str; 4] = ["_matrix", "client", "v3", "rooms"];

/// Which way `/messages` pages through the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From newer to older events (`dir=b`).
    Backward,
    /// From older to newer events (`dir=f`).
    Forward,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Backward => "b",
            Direction::Forward => "f",
        }
    }
}

/// `GET …/rooms/{roomId}/messages` answer: one page of the timeline.
#[derive(Debug, Default, Deserialize)]
pub struct Messages {
    /// The page's events (client-format JSON, as the homeserver gave them).
    #[serde(default)]
    pub chunk: Vec<Value>,
    /// The token for the next page in the same direction; none at the timeline's end.
    #[serde(default)]
    pub end: Option<String>,
}

/// `GET …/rooms/{roomId}/context/{eventId}` answer, as far as the service reads it.
#[derive(Debug, Default, Deserialize)]
pub struct EventContext {
    /// The pagination token just before the events returned (with `limit=0`: just before
    /// the event itself).
    #[serde(default)]
    pub start: Option<String>,
}

/// What a counsellor's unread counts come from: `/sync` as them, without timelines, state or
/// presence — each joined room's `unread_notifications` (the badge Element shows) — and the
/// rooms they left.
#[derive(Debug, Default, Deserialize)]
pub struct UnreadSync {
    /// The token for the next (incremental) sync.
    pub next_batch: String,
    /// Rooms, by membership.
    #[serde(default)]
    pub rooms: UnreadRooms,
}

/// The rooms of an [`UnreadSync`].
#[derive(Debug, Default, Deserialize)]
pub struct UnreadRooms {
    /// Joined rooms with their counts.
    #[serde(default)]
    pub join: std::collections::HashMap<String, UnreadRoom>,
    /// Rooms left since (their counts no longer count).
    #[serde(default)]
    pub leave: std::collections::HashMap<String, Value>,
}

/// One joined room of an [`UnreadSync`].
#[derive(Debug, Default, Deserialize)]
pub struct UnreadRoom {
    /// Its counts.
    #[serde(default)]
    pub unread_notifications: UnreadNotifications,
}

/// `unread_notifications` of a room.
#[derive(Debug, Default, Deserialize)]
pub struct UnreadNotifications {
    /// Unread notifying events (every message, with the default push rules).
    #[serde(default)]
    pub notification_count: u64,
}

/// Only what the unread counts need: no timeline, state, presence or account data; the
/// read receipts, so that a room read since shows up with its count.
const UNREAD_FILTER: &str = r#"{"room":{"timeline":{"limit":0},"state":{"types":[]},"ephemeral":{"types":["m.receipt"]},"account_data":{"types":[]}},"presence":{"types":[]},"account_data":{"types":[]}}"#;

impl HomeserverClient {
    /// `GET /_matrix/client/v3/sync` as `user_id` (the service acts for counsellors), with
    /// [`UNREAD_FILTER`], returning at once (`timeout=0`) and without touching their
    /// presence (`set_presence=offline`); incremental from `since`.
    pub async fn unread_sync(&self, user_id: &str, since: Option<&str>) -> Result<UnreadSync, HsError> {
        let path = [ROOMS[0], ROOMS[1], ROOMS[2], "sync"];
        let mut query = vec![("filter", UNREAD_FILTER), ("timeout", "0"), ("set_presence", "offline")];
        if let Some(s) = since {
            query.push(("since", s));
        }
        self.request(Method::GET, &path, &query, Some(user_id), None).await
    }

    /// `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`: one event, read as `user_id`
    /// (client-format JSON).
    pub async fn room_event(&self, room_id: &str, event_id: &str, user_id: &str) -> Result<Value, HsError> {
        let path = [ROOMS[0], ROOMS[1], ROOMS[2], ROOMS[3], room_id, "event", event_id];
        self.request(Method::GET, &path, &[], Some(user_id), None).await
    }

    /// `GET /_matrix/client/v3/rooms/{roomId}/messages`: one page of the timeline, read as
    /// `user_id`, from the token `from` (or the timeline's end for [`Direction::Backward`]).
    pub async fn room_messages(
        &self,
        room_id: &str,
        user_id: &str,
        dir: Direction,
        from: Option<&str>,
        limit: usize,
    ) -> Result<Messages, HsError> {
        let path = [ROOMS[0], ROOMS[1], ROOMS[2], ROOMS[3], room_id, "messages"];
        let limit = limit.to_string();
        let mut query = vec![("dir", dir.as_str()), ("limit", limit.as_str())];
        if let Some(f) = from {
            query.push(("from", f));
        }
        self.request(Method::GET, &path, &query, Some(user_id), None).await
    }

    /// `GET /_matrix/client/v3/rooms/{roomId}/messages?dir=f&filter={"types":["m.room.message"]}`:
    /// one page of the room's messages from its start (or from `from`), oldest first, read
    /// as `user_id`.
    pub async fn room_messages_forward(
        &self,
        room_id: &str,
        user_id: &str,
        from: Option<&str>,
        limit: usize,
    ) -> Result<Messages, HsError> {
        let path = [ROOMS[0], ROOMS[1], ROOMS[2], ROOMS[3], room_id, "messages"];
        let limit = limit.to_string();
        let filter = r#"{"types":["m.room.message"],"lazy_load_members":true}"#;
        let mut query = vec![("dir", "f"), ("limit", limit.as_str()), ("filter", filter)];
        if let Some(f) = from {
            query.push(("from", f));
        }
        self.request(Method::GET, &path, &query, Some(user_id), None).await
    }

    /// `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`: the events around one,
    /// read as `user_id`, at most `limit` of them.
    pub async fn event_context(
        &self,
        room_id: &str,
        event_id: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<EventContext, HsError> {
        let path = [ROOMS[0], ROOMS[1], ROOMS[2], ROOMS[3], room_id, "context", event_id];
        let limit = limit.to_string();
        self.request(Method::GET, &path, &[("limit", limit.as_str())], Some(user_id), None).await
    }

    /// `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`: `user_id` starts (for
    /// `timeout_ms`) or stops typing.
    pub async fn set_typing(
        &self,
        room_id: &str,
        user_id: &str,
        typing: bool,
        timeout_ms: u64,
    ) -> Result<(), HsError> {
        let path = [ROOMS[0], ROOMS[1], ROOMS[2], ROOMS[3], room_id, "typing", user_id];
        let body = json!({ "typing": typing, "timeout": timeout_ms });
        self.request::<Value>(Method::PUT, &path, &[], Some(user_id), Some(&body)).await.map(|_| ())
    }

    /// `POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}`: `user_id`
    /// has read up to `event_id` (`receipt_type` is `m.read`, `m.read.private`, …).
    pub async fn send_receipt(
        &self,
        room_id: &str,
        user_id: &str,
        receipt_type: &str,
        event_id: &str,
    ) -> Result<(), HsError> {
        let path = [ROOMS[0], ROOMS[1], ROOMS[2], ROOMS[3], room_id, "receipt", receipt_type, event_id];
        self.request::<Value>(Method::POST, &path, &[], Some(user_id), Some(&json!({}))).await.map(|_| ())
    }

    /// `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`: redacts an event as
    /// `user_id`, without a reason.
    pub async fn redact(
        &self,
        room_id: &str,
        user_id: &str,
        event_id: &str,
        txn: &TxnId,
    ) -> Result<(), HsError> {
        let path = [ROOMS[0], ROOMS[1], ROOMS[2], ROOMS[3], room_id, "redact", event_id, txn.as_str()];
        self.request::<Value>(Method::PUT, &path, &[], Some(user_id), Some(&json!({}))).await.map(|_| ())
    }
}
