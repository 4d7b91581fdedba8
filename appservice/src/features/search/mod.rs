//! Search (Suchfunktion): messages, clients, colleagues and group names, German-aware, for
//! what the counsellor may see.
//!
//! - **What is searched.** Messages of the managed rooms (the bot is in every one), kept
//!   from the event stream the service already receives: a message is searchable within
//!   [`COMMIT_EVERY`]; an edit replaces its message, a redaction removes it, the deletion
//!   routine removes a client's messages and rooms ([`Search::forget_client`]). Group names
//!   from `m.room.name`. Clients and colleagues by name, from the service's own tables.
//! - **Who sees what.** A counsellor finds messages only in the managed rooms of their
//!   institution they are joined to now (rooms are entered by invitation only, so there is
//!   nothing else they could open); clients of their institution, its counsellors, and the
//!   groups they are in. Another institution's rooms and rooms they left never appear.
//! - **How it reads German:** [`assisto_core::search`]. The index: [`index`].
//! - **After a crash** the last commit's payload says until when it holds every event; at
//!   start the events processed since (the inbox keeps their IDs) are read again from the
//!   homeserver ([`Search::catch_up`]). A new, empty index beside existing rooms is built
//!   from the homeserver in the background; `assisto search reindex` rebuilds it on demand.

pub mod commands;
pub mod index;
pub mod routes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assisto_core::search::{self as text, Query};
use assisto_core::{Category, RoomKind};
use serde::Serialize;
use serde_json::Value;

use crate::error::Error;
use crate::features::people::store as people;
use crate::features::rooms::members::{self, MembershipState};
use crate::features::rooms::store as rooms;
use crate::matrix::commands::syntax::{self as bot_commands, COMMAND_REPLY};
use crate::matrix::event::RoomEvent;
use crate::matrix::homeserver::HomeserverClient;
use crate::matrix::inbox;
use crate::store::{now_ms, Db};
use index::{Doc, DocKind, IndexError, Scope, SearchIndex};

/// The search widget's ID (its state key), in the desk room and in a counsellor's direct
/// chat with the bot.
pub const WIDGET_ID: &str = "assisto-suche";

/// The search widget's state content for a service at `base` (its public URL).
pub fn widget_content(base: &str, bot: &str) -> Value {
    serde_json::json!({
        "type": "m.custom",
        "url": format!("{}/_assisto/widget/suche?widgetId=$matrix_widget_id", base.trim_end_matches('/')),
        "name": "Suche",
        "id": WIDGET_ID,
        "creatorUserId": bot,
        "data": { "title": "Suche in Ihren Chats" },
    })
}

/// How often what was indexed is committed (and so searchable).
pub const COMMIT_EVERY: Duration = Duration::from_millis(250);
/// Most message hits in one answer.
pub const LIMIT_MAX: usize = 50;
/// Most people and groups in one answer.
const NAMES_MAX: usize = 10;
/// Events processed this long before the last commit are read again at start.
const CATCH_UP_MARGIN_MS: i64 = 5_000;
/// A page of history while rebuilding.
const PAGE: usize = 500;

/// The search service.
#[derive(Clone)]
pub struct Search {
    db: Db,
    hs: HomeserverClient,
    bot: String,
    index: SearchIndex,
    tz: chrono_tz::Tz,
    rebuild: Arc<Mutex<Rebuild>>,
}

/// A rebuild's progress (admin API, CLI).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Rebuild {
    /// `idle`, `running`, `done` or `failed`.
    pub state: &'static str,
    /// Rooms read so far.
    pub rooms_done: usize,
    /// Rooms to read.
    pub rooms_total: usize,
    /// Messages indexed so far.
    pub messages: usize,
    /// When it started (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// When it ended (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Redactions seen while it runs.
    #[serde(skip)]
    redacted: std::collections::HashSet<String>,
}

/// What a search found.
#[derive(Debug, Default, Serialize)]
pub struct Results {
    /// The category searched (`all`, `live`, `clients`, `colleagues`, `groups`).
    pub category: &'static str,
    /// Matching messages, best first.
    pub messages: Vec<MessageHit>,
    /// Matching clients and colleagues.
    pub people: Vec<PersonHit>,
    /// Matching groups.
    pub groups: Vec<GroupHit>,
}

/// A message found.
#[derive(Debug, Serialize)]
pub struct MessageHit {
    /// The event.
    pub event_id: String,
    /// The room.
    pub room_id: String,
    /// The room's category.
    pub category: String,
    /// The chat as the counsellor knows it ("Maria", "Gruppe Mut", "Live-Chat").
    pub room: String,
    /// Who wrote it, as counsellors see them.
    pub sender: String,
    /// When (ms).
    pub ts: i64,
    /// "06.12.2026 21:04", in the service's time zone.
    pub time: String,
    /// The excerpt.
    pub snippet: String,
    /// Byte ranges of `snippet` that matched.
    pub highlights: Vec<(usize, usize)>,
    /// Permalink to the message (matrix.to, which Element opens).
    pub link: String,
}

/// A client or colleague found.
#[derive(Debug, Serialize)]
pub struct PersonHit {
    /// The user.
    pub user_id: String,
    /// Their name.
    pub name: String,
    /// `client` or `colleague`.
    pub kind: &'static str,
    /// The counsellor's chat with them, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    /// Link to that chat, or to the person (Element offers to start a chat).
    pub link: String,
}

/// A group found.
#[derive(Debug, Serialize)]
pub struct GroupHit {
    /// The room.
    pub room_id: String,
    /// Its name.
    pub name: String,
    /// Link to it.
    pub link: String,
}

impl Search {
    /// The search service over `index`.
    pub fn new(db: Db, hs: HomeserverClient, bot: String, index: SearchIndex, tz: chrono_tz::Tz) -> Self {
        let rebuild = Rebuild { state: "idle", ..Default::default() };
        Self { db, hs, bot, index, tz, rebuild: Arc::new(Mutex::new(rebuild)) }
    }

    /// The index.
    pub fn index(&self) -> &SearchIndex {
        &self.index
    }

    // ---- the event path -------------------------------------------------------------

    /// Keeps the index in step with an event of a room the service sees.
    pub async fn on_event(&self, ev: &RoomEvent) -> Result<(), Error> {
        match ev.kind.as_str() {
            "m.room.message" => self.on_message(ev, now_ms()).await,
            "m.room.redaction" => {
                if let Some(target) = &ev.redacts {
                    self.index.remove_event(target);
                    self.rebuild_saw_redaction(target);
                }
                Ok(())
            }
            "m.room.name" if ev.state_key.as_deref() == Some("") => self.on_name(ev, now_ms()).await,
            _ => Ok(()),
        }
    }

    async fn on_message(&self, ev: &RoomEvent, generation: i64) -> Result<(), Error> {
        if ev.sender == self.bot {
            return Ok(());
        }
        let Some(room) = self.managed(&ev.room_id).await? else { return Ok(()) };
        let relation = &ev.content["m.relates_to"];
        let ts = ev.origin_server_ts.unwrap_or_else(now_ms);
        if relation["rel_type"] == "m.replace" {
            let Some(target) = relation["event_id"].as_str() else { return Ok(()) };
            let Some(body) = crate::features::export::content_text(&ev.content["m.new_content"]) else {
                return Ok(());
            };
            let doc = match self.blocking_get(target).await? {
                // Only its sender edits a message (as Matrix clients show edits).
                Some(old) if old.sender != ev.sender => return Ok(()),
                Some(old) => Doc { body, ..old },
                None => message_doc(&room, target, &ev.sender, ts, body),
            };
            return self.put(doc, generation);
        }
        let Some(body) = crate::features::export::content_text(&ev.content) else { return Ok(()) };
        if ev.content[COMMAND_REPLY] == true || bot_commands::parse(&body).is_some() {
            return Ok(());
        }
        self.put(message_doc(&room, &ev.event_id, &ev.sender, ts, body), generation)
    }

    async fn on_name(&self, ev: &RoomEvent, generation: i64) -> Result<(), Error> {
        let Some(room) = self.managed(&ev.room_id).await? else { return Ok(()) };
        let name = ev.content["name"].as_str().map(str::trim).unwrap_or_default();
        if name.is_empty() {
            self.index.remove_event(&ev.room_id);
            return Ok(());
        }
        let doc = Doc {
            event_id: room.room_id.clone(),
            room_id: room.room_id.clone(),
            institution: room.institution_id.clone(),
            category: room.kind.category().as_str().to_owned(),
            sender: ev.sender.clone(),
            ts: ev.origin_server_ts.unwrap_or_else(now_ms),
            body: name.to_owned(),
            kind: DocKind::Room,
        };
        self.put(doc, generation)
    }

    async fn managed(&self, room_id: &str) -> Result<Option<rooms::ManagedRoom>, Error> {
        Ok(rooms::get(&self.db, room_id).await?.filter(|r| r.deleted_at.is_none()))
    }

    fn put(&self, doc: Doc, generation: i64) -> Result<(), Error> {
        self.index.put(doc, generation).map_err(internal)
    }

    async fn blocking_get(&self, event_id: &str) -> Result<Option<Doc>, Error> {
        let index = self.index.clone();
        let id = event_id.to_owned();
        tokio::task::spawn_blocking(move || index.get(&id)).await.map_err(internal)?.map_err(internal)
    }

    /// Commits what was indexed since the last commit (the commit job, every
    /// [`COMMIT_EVERY`]); every few seconds also empties the trash.
    pub async fn commit(&self) -> Result<(), Error> {
        if !self.index.is_dirty() {
            return Ok(());
        }
        let index = self.index.clone();
        let before = now_ms();
        tokio::task::spawn_blocking(move || index.commit(before)).await.map_err(internal)?.map_err(internal)
    }

    /// Overwrites and unlinks the files of merged segments.
    pub async fn empty_trash(&self) -> Result<(), Error> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.empty_trash()).await.map_err(internal)?.map_err(internal)
    }

    // ---- deletion -------------------------------------------------------------------

    /// Removes everything of a deleted client: what they wrote anywhere, and their own
    /// rooms whole; then rewrites the segments that held it and overwrites their old files.
    pub async fn forget_client(&self, client: &str, own_rooms: &[String]) -> Result<(), Error> {
        self.index.remove_sender(client);
        for r in own_rooms {
            self.index.remove_room(r);
        }
        let index = self.index.clone();
        let before = now_ms();
        tokio::task::spawn_blocking(move || index.scrub(before)).await.map_err(internal)?.map_err(internal)
    }

    // ---- queries ----------------------------------------------------------------------

    /// Searches as counsellor `user`: `q` as typed, optionally in one category.
    pub async fn search(
        &self,
        user: &str,
        q: &str,
        category: Option<Category>,
        limit: usize,
    ) -> Result<Results, Error> {
        let me = people::counsellor_by_id(&self.db, user)
            .await?
            .ok_or_else(|| Error::forbidden("Suchen können nur Beratende einer Einrichtung."))?;
        let query = text::parse_query(q)?;
        let joined = members::joined_managed_rooms(&self.db, user, &me.institution_id).await?;
        let visible: Vec<String> = joined
            .iter()
            .filter(|(_, kind)| category.is_none_or(|c| kind.category() == c))
            .map(|(r, _)| r.clone())
            .collect();
        let index = self.index.clone();
        let (inst, q2, rooms_, cat) =
            (me.institution_id.clone(), query.clone(), visible.clone(), category.map(|c| c.as_str()));
        let limit = limit.clamp(1, LIMIT_MAX);
        let (hits, names) = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            let mut scope =
                Scope { institution: &inst, rooms: &rooms_, category: cat, kind: DocKind::Message };
            let hits = index.search(&scope, &q2, limit, now)?;
            scope.kind = DocKind::Room;
            let names = index.search(&scope, &q2, NAMES_MAX, now)?;
            Ok::<_, IndexError>((hits, names))
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;

        let mut out = Results { category: category.map_or("all", |c| c.as_str()), ..Default::default() };
        let kinds: HashMap<&str, RoomKind> = joined.iter().map(|(r, k)| (r.as_str(), *k)).collect();
        let mut titles: HashMap<String, String> = HashMap::new();
        let mut senders: HashMap<String, String> = HashMap::new();
        for h in hits {
            let room = h.doc.room_id.clone();
            if !titles.contains_key(&room) {
                let kind = kinds.get(room.as_str()).copied().unwrap_or(RoomKind::ClientChat);
                titles.insert(room.clone(), self.title(user, &room, kind).await?);
            }
            if !senders.contains_key(&h.doc.sender) {
                senders.insert(h.doc.sender.clone(), self.sender_name(&h.doc.sender).await?);
            }
            out.messages.push(MessageHit {
                link: permalink(&room, Some(&h.doc.event_id), self.hs.server_name()),
                room: titles[&room].clone(),
                sender: senders[&h.doc.sender].clone(),
                time: self.time(h.doc.ts),
                snippet: h.snippet.text,
                highlights: h.snippet.highlights,
                event_id: h.doc.event_id,
                room_id: room,
                category: h.doc.category,
                ts: h.doc.ts,
            });
        }
        if category.is_none_or(|c| c == Category::Groups) {
            for n in names.into_iter().filter(|n| n.doc.category == Category::Groups.as_str()) {
                out.groups.push(GroupHit {
                    link: permalink(&n.doc.room_id, None, self.hs.server_name()),
                    room_id: n.doc.room_id,
                    name: n.doc.body,
                });
            }
        }
        self.people(&me, &query, category, &joined, &mut out).await?;
        Ok(out)
    }

    /// Clients (for `clients` or all) and colleagues (for `colleagues` or all) whose name
    /// matches; each with the counsellor's chat with them if there is one.
    async fn people(
        &self,
        me: &people::Counsellor,
        query: &Query,
        category: Option<Category>,
        joined: &[(String, RoomKind)],
        out: &mut Results,
    ) -> Result<(), Error> {
        let server = self.hs.server_name().to_owned();
        let mut found: Vec<(String, String, &'static str, RoomKind)> = Vec::new();
        if category.is_none_or(|c| c == Category::Clients) {
            for c in people::clients(&self.db, &me.institution_id).await? {
                if text::name_matches(&c.display_name, query) {
                    found.push((c.user_id, c.display_name, "client", RoomKind::ClientChat));
                }
            }
        }
        if category.is_none_or(|c| c == Category::Colleagues) {
            for c in people::counsellors(&self.db, &me.institution_id).await? {
                if c.user_id != me.user_id && text::name_matches(&c.display_name, query) {
                    found.push((c.user_id, c.display_name, "colleague", RoomKind::ColleagueChat));
                }
            }
        }
        found.sort_by_key(|a| a.1.to_lowercase());
        for (user_id, name, kind, chat_kind) in found.into_iter().take(NAMES_MAX) {
            let mut room_id = None;
            for (r, _) in joined.iter().filter(|(_, k)| *k == chat_kind) {
                let m = members::of_room(&self.db, r).await?;
                if m.iter().any(|(u, s)| *u == user_id && members::holds_place(s)) {
                    room_id = Some(r.clone());
                    break;
                }
            }
            let link = match &room_id {
                Some(r) => permalink(r, None, &server),
                None => format!("https://matrix.to/#/{}", encode(&user_id)),
            };
            out.people.push(PersonHit { user_id, name, kind, room_id, link });
        }
        Ok(())
    }

    /// The chat as the counsellor knows it: a group's name, else the other people in it.
    async fn title(&self, me: &str, room_id: &str, kind: RoomKind) -> Result<String, Error> {
        if let Some(d) = self.blocking_get(room_id).await? {
            if d.kind == DocKind::Room {
                return Ok(d.body);
            }
        }
        let mut names = Vec::new();
        for (u, m) in members::of_room(&self.db, room_id).await? {
            if u == me || u == self.bot || !matches!(m, MembershipState::Join | MembershipState::Invite) {
                continue;
            }
            if let Some(c) = people::client_by_id(&self.db, &u).await? {
                names.push(c.display_name);
            } else if let Some(c) = people::counsellor_by_id(&self.db, &u).await? {
                names.push(c.display_name);
            }
        }
        Ok(if names.is_empty() || names.len() > 3 {
            kind.label_de().to_owned()
        } else {
            format!("{}: {}", kind.label_de(), names.join(", "))
        })
    }

    async fn sender_name(&self, user: &str) -> Result<String, Error> {
        if let Some(c) = people::client_by_id(&self.db, user).await? {
            return Ok(c.display_name);
        }
        if let Some(c) = people::counsellor_by_id(&self.db, user).await? {
            return Ok(c.display_name);
        }
        Ok(user.to_owned())
    }

    fn time(&self, ms: i64) -> String {
        use chrono::TimeZone;
        self.tz
            .timestamp_millis_opt(ms)
            .single()
            .map(|t| t.format("%d.%m.%Y %H:%M").to_string())
            .unwrap_or_default()
    }

    // ---- catching up and rebuilding ------------------------------------------------------

    /// After a crash: reads the events processed since the last commit again (their IDs are
    /// still in the inbox) and indexes them. Answers how many were read.
    pub async fn catch_up(&self) -> Result<usize, Error> {
        let Some(before) = self.index.indexed_before() else { return Ok(0) };
        let since = before - CATCH_UP_MARGIN_MS;
        let events = inbox::processed_since(&self.db, since).await?;
        let mut n = 0;
        for (event_id, room_id) in events {
            if self.managed(&room_id).await?.is_none() {
                continue;
            }
            let raw = match self.hs.room_event(&room_id, &event_id, &self.bot).await {
                Ok(v) => v,
                // Gone (purged, or the bot left): nothing to index.
                Err(e) if !e.is_transient() => continue,
                Err(e) => return Err(e.into()),
            };
            if let Ok(ev) = RoomEvent::from_value(raw) {
                if ev.content.as_object().is_some_and(|c| c.is_empty()) {
                    // Redacted since: it was removed, or is removed now.
                    self.index.remove_event(&ev.event_id);
                } else {
                    self.on_event(&ev).await?;
                }
                n += 1;
            }
        }
        self.commit().await?;
        Ok(n)
    }

    /// Whether the index is new (never committed) while there are managed rooms: then the
    /// service rebuilds it in the background at start.
    pub async fn needs_rebuild(&self) -> Result<bool, Error> {
        Ok(self.index.indexed_before().is_none() && rooms::count_live(&self.db).await? > 0)
    }

    /// The last (or running) rebuild's progress.
    pub fn rebuild_progress(&self) -> Rebuild {
        self.rebuild.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A redaction while a rebuild runs: the rebuild may have read the message before it
    /// was redacted, so it removes it again when it ends.
    fn rebuild_saw_redaction(&self, event_id: &str) {
        let mut r = self.rebuild.lock().unwrap_or_else(|p| p.into_inner());
        if r.state == "running" {
            r.redacted.insert(event_id.to_owned());
        }
    }

    /// Rebuilds the index from the homeserver: every managed room's messages (the latest
    /// edit of each), and group names; what the rebuild did not find again is removed at
    /// the end. Searches keep working meanwhile. `progress` is called after each room.
    pub async fn rebuild(&self, progress: &(dyn Fn(&Rebuild) + Send + Sync)) -> Result<Rebuild, Error> {
        let generation = self.begin_rebuild()?;
        self.run_rebuild(generation, progress).await
    }

    /// Marks a rebuild as running (409 while one runs); answers its generation, for
    /// [`Self::run_rebuild`].
    pub fn begin_rebuild(&self) -> Result<i64, Error> {
        let generation = now_ms();
        let mut r = self.rebuild.lock().unwrap_or_else(|p| p.into_inner());
        if r.state == "running" {
            return Err(Error::conflict("A rebuild of the search index is already running."));
        }
        *r = Rebuild { state: "running", started_at: Some(generation), ..Default::default() };
        Ok(generation)
    }

    /// Runs the rebuild begun with [`Self::begin_rebuild`].
    pub async fn run_rebuild(
        &self,
        generation: i64,
        progress: &(dyn Fn(&Rebuild) + Send + Sync),
    ) -> Result<Rebuild, Error> {
        let result = async {
            let all = rooms::all_live(&self.db).await?;
            self.rebuild.lock().unwrap_or_else(|p| p.into_inner()).rooms_total = all.len();
            self.rebuild_rooms(&all, generation, progress).await
        }
        .await;
        let mut r = self.rebuild.lock().unwrap_or_else(|p| p.into_inner());
        r.finished_at = Some(now_ms());
        match result {
            Ok(()) => r.state = "done",
            Err(e) => {
                r.state = "failed";
                r.error = Some(e.to_string());
                let snapshot = r.clone();
                drop(r);
                progress(&snapshot);
                return Err(e);
            }
        }
        let snapshot = r.clone();
        drop(r);
        progress(&snapshot);
        Ok(snapshot)
    }

    async fn rebuild_rooms(
        &self,
        all: &[rooms::ManagedRoom],
        generation: i64,
        progress: &(dyn Fn(&Rebuild) + Send + Sync),
    ) -> Result<(), Error> {
        let mut last_report = Instant::now();
        for room in all {
            let n = self.rebuild_room(room, generation).await?;
            let snapshot = {
                let mut r = self.rebuild.lock().unwrap_or_else(|p| p.into_inner());
                r.rooms_done += 1;
                r.messages += n;
                r.clone()
            };
            if last_report.elapsed() >= Duration::from_millis(200)
                || snapshot.rooms_done == snapshot.rooms_total
            {
                progress(&snapshot);
                last_report = Instant::now();
            }
        }
        let redacted: Vec<String> =
            self.rebuild.lock().unwrap_or_else(|p| p.into_inner()).redacted.drain().collect();
        for id in redacted {
            self.index.remove_event(&id);
        }
        self.index.drop_older(generation).map_err(internal)?;
        let index = self.index.clone();
        let before = generation;
        tokio::task::spawn_blocking(move || index.scrub(before)).await.map_err(internal)?.map_err(internal)
    }

    /// One room's messages, oldest first; answers how many were indexed.
    async fn rebuild_room(&self, room: &rooms::ManagedRoom, generation: i64) -> Result<usize, Error> {
        if let Ok(Some(name)) = self.hs.get_state(&room.room_id, &self.bot, "m.room.name", "").await {
            if let Some(ev) = name_event(room, &name) {
                self.on_name(&ev, generation).await?;
            }
        }
        let mut from: Option<String> = None;
        let mut n = 0;
        loop {
            let page =
                match self.hs.room_messages_forward(&room.room_id, &self.bot, from.as_deref(), PAGE).await {
                    Ok(p) => p,
                    // The bot cannot read it (left, or the room is gone): nothing to index.
                    Err(e) if !e.is_transient() => return Ok(n),
                    Err(e) => return Err(e.into()),
                };
            for raw in &page.chunk {
                if let Some((ts, sender, body)) = crate::features::export::line(raw, &self.bot) {
                    let Some(event_id) = raw["event_id"].as_str() else { continue };
                    if body.is_empty() || sender == self.bot {
                        continue;
                    }
                    self.put(message_doc(room, event_id, &sender, ts, body), generation)?;
                    n += 1;
                }
            }
            match page.end {
                Some(end) if !page.chunk.is_empty() && from.as_deref() != Some(end.as_str()) => {
                    from = Some(end)
                }
                _ => return Ok(n),
            }
        }
    }
}

fn name_event(room: &rooms::ManagedRoom, content: &Value) -> Option<RoomEvent> {
    RoomEvent::from_value(serde_json::json!({
        "event_id": format!("$name-{}", room.room_id),
        "room_id": room.room_id,
        "sender": room.creator,
        "type": "m.room.name",
        "state_key": "",
        "content": content,
    }))
    .ok()
}

fn message_doc(room: &rooms::ManagedRoom, event_id: &str, sender: &str, ts: i64, body: String) -> Doc {
    Doc {
        event_id: event_id.to_owned(),
        room_id: room.room_id.clone(),
        institution: room.institution_id.clone(),
        category: room.kind.category().as_str().to_owned(),
        sender: sender.to_owned(),
        ts,
        body,
        kind: DocKind::Message,
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("search index: {e}"))
}

/// A matrix.to permalink to a room, or to an event in it.
pub fn permalink(room_id: &str, event_id: Option<&str>, server: &str) -> String {
    match event_id {
        Some(e) => format!("https://matrix.to/#/{}/{}?via={}", encode(room_id), encode(e), encode(server)),
        None => format!("https://matrix.to/#/{}?via={}", encode(room_id), encode(server)),
    }
}

/// Percent-encodes what may not stand in a matrix.to fragment's path segment.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'!'
            | b'$'
            | b'@'
            | b':'
            | b'.'
            | b'_'
            | b'-'
            | b'~'
            | b'='
            | b'+' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permalinks_encode_what_must_be() {
        assert_eq!(
            permalink("!abc:example.org", Some("$ev/1?x"), "example.org"),
            "https://matrix.to/#/!abc:example.org/$ev%2F1%3Fx?via=example.org"
        );
        assert_eq!(permalink("!r:x", None, "x"), "https://matrix.to/#/!r:x?via=x");
    }
}
