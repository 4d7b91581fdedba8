//! The dashboard's counters: a counsellor's unread messages per category (Live,
//! Ratsuchende, Kolleg:innen, Gruppenchats) and their status, for the institution's own
//! site, kept live without a reload.
//!
//! The counts are the ones Element shows: the homeserver's `unread_notifications` of each
//! joined room, read by `/sync` as the counsellor (the service acts for counsellors in their
//! non-exclusive namespace; no timeline, no state, presence untouched), incrementally after
//! the first time. They are summed per category over the counsellor's managed rooms of
//! their institution. A stream ([`routes`]) sends them again whenever a message or a read
//! receipt arrives in one of the counsellor's rooms, or the institution's desk changes (a
//! status), coalesced to at most one read every [`COALESCE`].

pub mod routes;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assisto_core::Category;
use serde::Serialize;
use serde_json::Value;

use crate::error::Error;
use crate::features::live::LiveDesk;
use crate::features::people::store as people;
use crate::features::rooms::members;
use crate::matrix::homeserver::HomeserverClient;
use crate::store::Db;

/// Events in a room are read at most this often per open stream.
pub const COALESCE: Duration = Duration::from_millis(250);

/// A counsellor's counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// The counsellor.
    pub user_id: String,
    /// Unread messages per category (`live`, `clients`, `colleagues`, `groups`).
    pub unread: BTreeMap<&'static str, u64>,
    /// All of them.
    pub total: u64,
    /// Their live-chat status (`online`, `busy`, `not_online`, `not_selectable`).
    pub status: &'static str,
}

/// Where a counsellor's sync stands: its token and each joined room's count.
#[derive(Default)]
struct SyncState {
    since: Option<String>,
    rooms: HashMap<String, u64>,
}

/// The counters.
#[derive(Clone)]
pub struct Counters {
    db: Db,
    hs: HomeserverClient,
    live: LiveDesk,
    /// Rooms in which something that changes counts happened (open streams listen).
    tx: tokio::sync::broadcast::Sender<String>,
    states: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<SyncState>>>>>,
}

impl Counters {
    /// The counters of this service.
    pub fn new(db: Db, hs: HomeserverClient, live: LiveDesk) -> Self {
        let (tx, _) = tokio::sync::broadcast::channel(1024);
        Self { db, hs, live, tx, states: Arc::default() }
    }

    /// Something that may change counts happened in `room_id` (a message, a receipt).
    pub fn room_changed(&self, room_id: &str) {
        // No receiver: no open stream.
        let _ = self.tx.send(room_id.to_owned());
    }

    /// The event handler's ephemeral events: read receipts change counts.
    pub fn on_ephemeral(&self, ev: &Value) {
        if ev["type"] == "m.receipt" {
            if let Some(room) = ev["room_id"].as_str() {
                self.room_changed(room);
            }
        }
    }

    /// Rooms in which something happened, for a stream.
    pub fn watch(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.tx.subscribe()
    }

    /// Whether `room_id` is one of `user`'s (joined).
    pub async fn concerns(&self, user: &str, room_id: &str) -> Result<bool, Error> {
        let m = members::of_room(&self.db, room_id).await?;
        Ok(m.iter().any(|(u, s)| u == user && *s == members::MembershipState::Join))
    }

    /// A counsellor's counters now. 403 for anyone but a counsellor.
    pub async fn counts(&self, user: &str) -> Result<Counts, Error> {
        let me = people::counsellor_by_id(&self.db, user)
            .await?
            .ok_or_else(|| Error::forbidden("Zähler gibt es nur für Beratende einer Einrichtung."))?;
        let state = {
            let mut all = self.states.lock().unwrap_or_else(|p| p.into_inner());
            all.entry(user.to_owned()).or_default().clone()
        };
        let per_room = {
            let mut st = state.lock().await;
            let sync = self.hs.unread_sync(user, st.since.as_deref()).await?;
            for (room, r) in sync.rooms.join {
                st.rooms.insert(room, r.unread_notifications.notification_count);
            }
            for room in sync.rooms.leave.keys() {
                st.rooms.remove(room);
            }
            st.since = Some(sync.next_batch);
            st.rooms.clone()
        };
        let mut unread: BTreeMap<&'static str, u64> =
            Category::SPACES.iter().map(|c| (c.as_str(), 0)).collect();
        for (room, kind) in members::joined_managed_rooms(&self.db, user, &me.institution_id).await? {
            if let Some(n) = per_room.get(&room) {
                *unread.entry(kind.category().as_str()).or_default() += n;
            }
        }
        let status = self.live.status_of(user).await?.status.as_str();
        Ok(Counts { user_id: user.to_owned(), total: unread.values().sum(), unread, status })
    }
}
