//! The core side of the web embed: [`assisto_bridge::core::Core`] on Matrix.
//!
//! A session belongs to a client puppet and its conversation room: anonymous visitors get a
//! guest puppet ("Gast N") and a live chat; logged-in clients (vouched for by the site's
//! signed token) get their puppet, found again by the site's ID, and a client chat. The bot
//! creates the room in the institution's Live or Ratsuchende space with a join rule that lets
//! the space's members (the institution's counsellors) join; until one does, the client
//! waits. The handler forwards the room's events to [`EmbedCore::on_event`], which
//! publishes them to the browsers watching.

pub mod store;

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use assisto_bridge::{
    api::MAX_TEXT_CHARS,
    core::{
        Area, ConversationKind, Core, CoreError, EmbedConfig, Features, FileInfo, Form, From, Identity,
        InstitutionInfo, Kind, Limits, Media, Message, Session, State,
    },
    hub::{Frame, Hub},
};
use assisto_core::ids::Ids;
use async_trait::async_trait;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::features::embed::store as embed;
use crate::features::institutions::store as institutions;
use crate::features::institutions::Provisioning;
use crate::features::people::store as people;
use crate::features::rooms::members;
use crate::matrix::event::RoomEvent;
use crate::matrix::homeserver::Direction;
use crate::matrix::homeserver::HomeserverClient;
use crate::matrix::homeserver::HsError;
use crate::matrix::homeserver::TxnId;
use crate::store::audit;
use crate::store::now_ms;
use crate::store::Db;
use assisto_core::RoomKind;

/// How long a session lasts.
const SESSION_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;

/// The embed's core.
pub struct EmbedCore {
    db: Db,
    hs: HomeserverClient,
    provisioning: Provisioning,
    hub: Arc<Hub>,
    /// Who a user ID belongs to (the bot, a puppet, possibly a counsellor).
    ids: Ids,
    /// Rooms where a counsellor is typing.
    typing: Mutex<HashMap<String, bool>>,
    /// The newest event a counsellor has read, per room.
    read: Mutex<HashMap<String, String>>,
    /// The newest messages of watched conversations, so that browsers (re)connecting do
    /// not each ask the homeserver (10,000 connections after a restart would).
    recent: Mutex<HashMap<String, Recent>>,
    /// One history load per conversation at a time.
    loads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A conversation's newest messages as the client sees them, kept current by `on_event`
/// while the conversation is watched; `generation` counts its message events, so a load
/// that raced with one is not kept.
#[derive(Default)]
struct Recent {
    generation: u64,
    messages: Option<Vec<Message>>,
}

/// How many of the newest messages are kept per watched conversation.
const RECENT: usize = 100;

/// How long the homeserver shows the client typing without a new notice.
const TYPING_TIMEOUT_MS: u64 = 10_000;

fn unavailable(e: impl std::fmt::Display) -> CoreError {
    tracing::warn!(error = %e, "embed: the core failed");
    CoreError::Unavailable(
        "Der Chat ist gerade nicht erreichbar. Bitte versuche es gleich noch einmal.".into(),
    )
}

fn db_err(e: sqlx::Error) -> CoreError {
    unavailable(e)
}

fn domain_err(e: crate::error::Error) -> CoreError {
    use crate::error::Error;
    use assisto_core::DomainError as D;
    match e {
        Error::Domain(D::Invalid(m)) => CoreError::Invalid(m),
        Error::Domain(D::NotFound(m)) => CoreError::NotFound(m),
        Error::Domain(D::Forbidden(m) | D::Conflict(m)) => CoreError::Forbidden(m),
        other => unavailable(other),
    }
}

const BLOCKED: &str = "Dieser Zugang ist gesperrt. Bitte wende dich an die Beratungsstelle.";

/// Whether a counsellor's text is only a phone number.
fn phone_href(text: &str) -> Option<String> {
    let t = text.trim();
    let digits = t.chars().filter(char::is_ascii_digit).count();
    let ok = (6..=20).contains(&digits) && t.chars().all(|c| c.is_ascii_digit() || " +-/()".contains(c));
    ok.then(|| {
        let plus = if t.starts_with('+') { "+" } else { "" };
        format!("tel:{plus}{}", t.chars().filter(char::is_ascii_digit).collect::<String>())
    })
}

/// Whether a counsellor's text is only a link to a video-chat service.
fn video_href(text: &str) -> Option<String> {
    let t = text.trim();
    let url =
        url::Url::parse(t).ok().filter(|u| u.scheme() == "https" && !t.contains(char::is_whitespace))?;
    let host = url.host_str()?.to_ascii_lowercase();
    const SERVICES: [&str; 10] =
        ["jitsi", "meet", "video", "zoom", "webex", "teams", "bigbluebutton", "bbb", "whereby", "visavid"];
    SERVICES.iter().any(|s| host.contains(s)).then(|| url.to_string())
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl EmbedCore {
    /// The core over the service's database and homeserver, publishing to `hub`.
    pub fn new(provisioning: Provisioning, hub: Arc<Hub>) -> Arc<Self> {
        let cfg = &provisioning.config;
        let ns = &cfg.namespaces;
        let ids =
            Ids::new(&cfg.homeserver.server_name, &cfg.bot.localpart, &ns.client_prefix, &ns.guest_prefix);
        Arc::new(Self {
            db: provisioning.db.clone(),
            hs: provisioning.hs.clone(),
            provisioning,
            hub,
            ids,
            typing: Mutex::default(),
            read: Mutex::default(),
            recent: Mutex::default(),
            loads: Mutex::default(),
        })
    }

    fn bot(&self) -> &str {
        self.ids.bot()
    }

    /// Turns a room event into a message as `client` sees it.
    async fn message(&self, client: &str, ev: &Value) -> Option<Message> {
        if ev["type"] != "m.room.message" || ev["content"]["body"].as_str().is_none() {
            return None;
        }
        let sender = ev["sender"].as_str()?;
        let id = ev["event_id"].as_str()?.to_owned();
        let content = &ev["content"];
        let text = content["body"].as_str()?.to_owned();
        let (from, sender_name) = if sender == client {
            (From::Me, "Du".to_owned())
        } else if sender == self.bot() {
            (From::System, "Beratungsstelle".to_owned())
        } else {
            let name = self.hs.displayname(sender).await.ok().flatten().unwrap_or_else(|| "Beratung".into());
            (From::Counsellor, name)
        };
        let msgtype = content["msgtype"].as_str().unwrap_or("m.text");
        let file = match (msgtype, content["url"].as_str()) {
            ("m.file" | "m.image" | "m.audio" | "m.video", Some(_)) => Some(FileInfo {
                name: content["filename"].as_str().unwrap_or(&text).to_owned(),
                size: content["info"]["size"].as_u64().unwrap_or_default(),
                mime: content["info"]["mimetype"].as_str().unwrap_or("application/octet-stream").to_owned(),
                url: format!(
                    "/_assisto/embed/v1/media/{}",
                    url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
                ),
                duration_ms: (msgtype == "m.audio").then(|| content["info"]["duration"].as_u64()).flatten(),
            }),
            _ => None,
        };
        let (kind, href, text) = match (&file, from) {
            (Some(_), _) if msgtype == "m.audio" => (Kind::Voice, None, "Sprachnachricht".to_owned()),
            (Some(_), _) => (Kind::File, None, text),
            (None, From::Counsellor) => match (phone_href(&text), video_href(&text)) {
                (Some(h), _) => (Kind::Phone, Some(h), text.trim().to_owned()),
                (_, Some(h)) => (Kind::Video, Some(h), "Video-Chat".to_owned()),
                _ => (Kind::Text, None, text),
            },
            _ => (Kind::Text, None, text),
        };
        Some(Message {
            id,
            ts: ev["origin_server_ts"].as_i64().unwrap_or_default(),
            from,
            sender_name,
            kind,
            text,
            href,
            txn_id: (from == From::Me)
                .then(|| content["de.assisto.txn_id"].as_str().map(str::to_owned))
                .flatten(),
            file,
        })
    }

    /// An event of the session's conversation, read as the client.
    async fn event(&self, client: &str, room: &str, id: &str) -> Result<Value, CoreError> {
        match self.hs.room_event(room, id, client).await {
            Ok(v) => Ok(v),
            Err(HsError::Matrix { status, .. }) if status.is_client_error() => {
                Err(CoreError::NotFound("Diese Nachricht gibt es nicht.".into()))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Sends a message with a file the client uploaded, as the client.
    async fn send_media_message(
        &self,
        s: &Session,
        mime: &str,
        bytes: Vec<u8>,
        content: impl FnOnce(String, u64) -> Value,
    ) -> Result<Message, CoreError> {
        let (client, ended) = self.conversation(s).await?;
        if ended {
            return Err(CoreError::Forbidden("Der Chat ist beendet.".into()));
        }
        if self.client_row(&client).await?.blocked {
            return Err(CoreError::Blocked(BLOCKED.into()));
        }
        let size = bytes.len() as u64;
        let mxc = self.hs.upload_media(&client, mime, bytes).await.map_err(unavailable)?;
        let body = content(mxc, size);
        let sent = self
            .hs
            .send_event(&s.conversation, &client, "m.room.message", &TxnId::random(), &body)
            .await
            .map_err(|e| match e {
                HsError::Matrix { status, .. } if status.as_u16() == 403 => {
                    CoreError::Forbidden("Die Datei konnte nicht gesendet werden.".into())
                }
                e => unavailable(e),
            })?;
        let ev = json!({
            "type": "m.room.message", "event_id": sent.event_id, "sender": client,
            "origin_server_ts": now_ms(), "content": body,
        });
        self.message(&client, &ev).await.ok_or_else(|| unavailable("sent message unreadable"))
    }

    /// One page of a room's timeline, newest first, read as the client.
    async fn page(
        &self,
        client: &str,
        room: &str,
        from: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Value>, Option<String>), CoreError> {
        let page = self
            .hs
            .room_messages(room, client, Direction::Backward, from, limit)
            .await
            .map_err(unavailable)?;
        let chunk = page.chunk;
        let end = page.end.filter(|_| !chunk.is_empty());
        Ok((chunk, end))
    }

    /// The pagination token just before an event.
    async fn token_before(&self, client: &str, room: &str, event: &str) -> Result<Option<String>, CoreError> {
        match self.hs.event_context(room, event, client, 0).await {
            Ok(c) => Ok(c.start),
            Err(e) if matches!(e.errcode(), Some("M_NOT_FOUND") | Some("M_FORBIDDEN")) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The session's client and whether its conversation has ended.
    async fn conversation(&self, s: &Session) -> Result<(String, bool), CoreError> {
        embed::conversation_of_room(&self.db, &s.conversation)
            .await
            .map_err(db_err)?
            .ok_or(CoreError::Unauthorized)
    }

    async fn client_row(&self, client: &str) -> Result<people::Client, CoreError> {
        people::client_by_id(&self.db, client).await.map_err(db_err)?.ok_or(CoreError::Unauthorized)
    }

    /// Creates the conversation room of a client, as the bot, in the institution's space.
    async fn create_room(
        &self,
        institution: &str,
        client: &str,
        name: &str,
        kind: RoomKind,
    ) -> Result<String, CoreError> {
        let cat = kind.category();
        let space = institutions::room(&self.db, institution, cat).await.map_err(db_err)?;
        let mut initial_state = vec![
            json!({"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared"}}),
            json!({"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}}),
        ];
        if let Some(space) = &space {
            // The institution's counsellors are members of the space: they may join.
            initial_state.push(json!({"type": "m.room.join_rules", "state_key": "", "content": {
                "join_rule": "restricted",
                "allow": [{"type": "m.room_membership", "room_id": space}],
            }}));
        }
        let body = json!({
            "preset": "private_chat",
            "name": name,
            "initial_state": initial_state,
            "invite": [client],
        });
        let room = self.hs.create_room(self.bot(), &body).await.map_err(unavailable)?.room_id;
        // The rules module keeps the kind out of others' creation content; the service
        // records its own rooms directly.
        crate::features::rooms::store::insert(&self.db, &room, institution, kind, self.bot())
            .await
            .map_err(db_err)?;
        self.hs.join_room(&room, client).await.map_err(unavailable)?;
        self.provisioning.place_in_space(institution, cat, &room).await.map_err(domain_err)?;
        crate::features::rooms::store::set_in_space(&self.db, &room).await.map_err(db_err)?;
        Ok(room)
    }

    /// Forwards a room event to the browsers watching its conversation.
    pub async fn on_event(&self, ev: &RoomEvent) {
        let watched = self.hub.watched(&ev.room_id);
        if matches!(ev.kind.as_str(), "m.room.message" | "m.room.redaction") {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = recent.get_mut(&ev.room_id) {
                r.generation += 1;
                if !watched {
                    recent.remove(&ev.room_id); // nobody keeps it current any more
                }
            }
        }
        if !watched {
            return;
        }
        match ev.kind.as_str() {
            "m.room.message" => {
                let Ok(Some((client, _))) = embed::conversation_of_room(&self.db, &ev.room_id).await else {
                    return;
                };
                let raw = json!({
                    "type": ev.kind, "event_id": ev.event_id, "sender": ev.sender,
                    "origin_server_ts": ev.origin_server_ts, "content": ev.content,
                });
                if let Some(m) = self.message(&client, &raw).await {
                    if m.from == From::Counsellor {
                        self.typing.lock().unwrap_or_else(|p| p.into_inner()).remove(&ev.room_id);
                    }
                    if let Some(list) = self
                        .recent
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&ev.room_id)
                        .and_then(|r| r.messages.as_mut())
                    {
                        if !list.iter().any(|x| x.id == m.id) {
                            list.push(m.clone());
                            let over = list.len().saturating_sub(RECENT);
                            list.drain(..over);
                        }
                    }
                    self.hub.publish(&ev.room_id, Frame::Message(Box::new(m)));
                }
            }
            "m.room.member" => self.hub.publish(&ev.room_id, Frame::StateChanged),
            "m.room.redaction" => {
                if let Some(id) = &ev.redacts {
                    if let Some(list) = self
                        .recent
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&ev.room_id)
                        .and_then(|r| r.messages.as_mut())
                    {
                        list.retain(|m| &m.id != id);
                    }
                    self.hub.publish(&ev.room_id, Frame::Redacted(id.clone()));
                }
            }
            _ => {}
        }
    }

    /// Typing notices and read receipts of counsellors, for the browsers watching.
    pub fn on_ephemeral(&self, ev: &Value) {
        let Some(room) = ev["room_id"].as_str() else { return };
        if !self.hub.watched(room) {
            return;
        }
        let is_counsellor = |u: &str| self.ids.may_be_counsellor(u);
        match ev["type"].as_str() {
            Some("m.typing") => {
                let typing = ev["content"]["user_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().filter_map(Value::as_str).any(is_counsellor));
                let before =
                    self.typing.lock().unwrap_or_else(|p| p.into_inner()).insert(room.to_owned(), typing);
                if before.unwrap_or(false) != typing {
                    self.hub.publish(room, Frame::StateChanged);
                }
            }
            Some("m.receipt") => {
                let Some(events) = ev["content"].as_object() else { return };
                for (event_id, r) in events {
                    let readers = r["m.read"].as_object().into_iter().chain(r["m.read.private"].as_object());
                    if readers.flat_map(|m| m.keys()).any(|u| is_counsellor(u)) {
                        self.read
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(room.to_owned(), event_id.clone());
                        self.hub.publish(room, Frame::StateChanged);
                    }
                }
            }
            _ => {}
        }
    }

    /// Tells the browsers of a client that the client's state changed (blocked, unblocked).
    pub async fn client_changed(&self, client: &str) {
        if let Ok(Some((room, _))) = embed::conversation(&self.db, client).await {
            self.hub.publish(&room, Frame::StateChanged);
        }
    }
}

#[async_trait]
impl Core for EmbedCore {
    async fn config(&self, institution: &str) -> Result<EmbedConfig, CoreError> {
        let inst = institutions::get(&self.db, institution)
            .await
            .map_err(db_err)?
            .ok_or_else(|| CoreError::NotFound("Diese Beratungsstelle gibt es nicht.".into()))?;
        let settings = embed::settings(&self.db, institution).await.map_err(db_err)?;
        let available = !people::counsellors(&self.db, institution).await.map_err(db_err)?.is_empty();
        let files = &self.provisioning.config.files;
        Ok(EmbedConfig {
            institution: InstitutionInfo { name: inst.name },
            forms: settings.forms,
            available,
            features: Features { files: true, voice: true },
            limits: Limits {
                max_file_bytes: files.max_document_bytes,
                max_files: files.max_documents_per_upload,
                max_text_chars: MAX_TEXT_CHARS,
            },
        })
    }

    async fn embed_secret(&self, institution: &str) -> Result<Option<Vec<u8>>, CoreError> {
        if institutions::get(&self.db, institution).await.map_err(db_err)?.is_none() {
            return Err(CoreError::NotFound("Diese Beratungsstelle gibt es nicht.".into()));
        }
        let s = embed::settings(&self.db, institution).await.map_err(db_err)?;
        Ok(s.secret.map(String::into_bytes))
    }

    async fn origin_allowed(&self, origin: &str) -> bool {
        embed::origin_allowed(&self.db, origin).await.unwrap_or(false)
    }

    async fn origin_allowed_for(&self, institution: &str, origin: &str) -> bool {
        embed::settings(&self.db, institution)
            .await
            .is_ok_and(|s| s.allowed_origins.iter().any(|o| o == origin))
    }

    async fn open_session(
        &self,
        institution: &str,
        area: Area,
        form: Form,
        identity: Identity,
    ) -> Result<(String, Session), CoreError> {
        let config = self.config(institution).await?;
        if !config.forms.allows(area, form) {
            return Err(CoreError::Forbidden("Dieser Chat ist auf dieser Seite ausgeschaltet.".into()));
        }
        let (client, kind) = match identity {
            Identity::Anonymous => {
                let n = embed::next_guest_number(&self.db, institution).await.map_err(db_err)?;
                let localpart = self.ids.guest_localpart(&uuid::Uuid::new_v4().simple().to_string());
                let user_id = self.ids.user_id(&localpart);
                self.hs.register_appservice_user(&localpart).await.map_err(unavailable)?;
                let name = format!("Gast {n}");
                self.hs.set_displayname(&user_id, &name).await.map_err(unavailable)?;
                people::insert_client(&self.db, &user_id, institution, &name, "guest")
                    .await
                    .map_err(db_err)?;
                audit::record(&self.db, "embed", "client.create_guest", &user_id, Some(institution))
                    .await
                    .map_err(db_err)?;
                (user_id, RoomKind::Live)
            }
            Identity::Registered { external_id, display_name } => {
                let known = embed::identity(&self.db, institution, &external_id).await.map_err(db_err)?;
                let client = match known {
                    Some(c) => c,
                    None => {
                        let c = self
                            .provisioning
                            .create_client("embed", institution, &display_name)
                            .await
                            .map_err(domain_err)?;
                        if !embed::insert_identity(&self.db, institution, &external_id, &c.user_id)
                            .await
                            .map_err(db_err)?
                        {
                            // Two first logins at once: keep the one linked first.
                            embed::identity(&self.db, institution, &external_id)
                                .await
                                .map_err(db_err)?
                                .ok_or_else(|| unavailable("identity vanished"))?
                        } else {
                            c.user_id
                        }
                    }
                };
                (client, RoomKind::ClientChat)
            }
        };
        let row = self.client_row(&client).await?;
        if row.blocked {
            return Err(CoreError::Blocked(BLOCKED.into()));
        }
        let room = match embed::conversation(&self.db, &client).await.map_err(db_err)? {
            Some((room, false)) => room,
            _ => {
                let room = self.create_room(institution, &client, &row.display_name, kind).await?;
                embed::set_conversation(&self.db, &client, &room, kind.as_str()).await.map_err(db_err)?;
                room
            }
        };
        let token = crate::matrix::registration::random_token();
        let expires_at = now_ms() + SESSION_LIFETIME_MS;
        embed::insert_session(&self.db, &token_hash(&token), &client, institution, &room, expires_at)
            .await
            .map_err(db_err)?;
        let session = self.session(&token).await?;
        Ok((token, session))
    }

    async fn session(&self, token: &str) -> Result<Session, CoreError> {
        let hash = token_hash(token);
        let row = embed::session(&self.db, &hash).await.map_err(db_err)?.ok_or(CoreError::Unauthorized)?;
        if row.ended_at.is_some() || row.expires_at <= now_ms() {
            return Err(CoreError::Unauthorized);
        }
        let client = self.client_row(&row.client).await?;
        if client.blocked {
            return Err(CoreError::Blocked(BLOCKED.into()));
        }
        let kind = if client.kind == "guest" { ConversationKind::Live } else { ConversationKind::ClientChat };
        Ok(Session {
            id: hash[..16].to_owned(),
            institution: row.institution,
            conversation: row.room_id,
            kind,
            display_name: client.display_name,
            expires_at: row.expires_at,
        })
    }

    async fn state(&self, s: &Session) -> Result<State, CoreError> {
        let room = &s.conversation;
        let joined = members::of_room(&self.db, room).await.map_err(db_err)?;
        let counsellor_in = joined.iter().any(|(u, m)| m == "join" && self.ids.may_be_counsellor(u));
        let (client, ended) =
            embed::conversation_of_room(&self.db, room).await.map_err(db_err)?.unwrap_or_default();
        let blocked = match people::client_by_id(&self.db, &client).await.map_err(db_err)? {
            Some(c) => c.blocked,
            None => false,
        };
        Ok(State {
            waiting: !counsellor_in && !ended,
            blocked,
            ended,
            counsellor_typing: self
                .typing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(room)
                .copied()
                .unwrap_or(false),
            read_up_to: self.read.lock().unwrap_or_else(|p| p.into_inner()).get(room).cloned(),
        })
    }

    async fn history(
        &self,
        s: &Session,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), CoreError> {
        let (client, _) = self.conversation(s).await?;
        let mut from = match before {
            Some(id) => match self.token_before(&client, &s.conversation, id).await? {
                Some(t) => Some(t),
                None => return Err(CoreError::Invalid("before ist keine Nachricht dieses Chats.".into())),
            },
            None => None,
        };
        let mut out = Vec::new();
        let mut more = false;
        // Skip what is not a message (state, notices of membership), a few pages at most.
        for _ in 0..5 {
            let (chunk, end) = self.page(&client, &s.conversation, from.as_deref(), 100).await?;
            for ev in &chunk {
                if out.len() == limit {
                    more = true;
                    break;
                }
                if let Some(m) = self.message(&client, ev).await {
                    out.push(m);
                }
            }
            if out.len() == limit || end.is_none() {
                more = more || (out.len() == limit && end.is_some());
                break;
            }
            from = end;
        }
        out.reverse();
        Ok((out, more))
    }

    async fn since(&self, s: &Session, after: Option<&str>) -> Result<Vec<Message>, CoreError> {
        // A browser with nothing yet gets the newest 50; one coming back, what it missed
        // among the newest 100 (kept in memory while the conversation is watched).
        let room = &s.conversation;
        let cached = |this: &Self| {
            let recent = this.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.get(room).and_then(|r| r.messages.clone())
        };
        let latest = match cached(self) {
            Some(list) => list,
            None => {
                // One load per conversation at a time: the others wait for it and use it.
                let gate = {
                    let mut loads = self.loads.lock().unwrap_or_else(|p| p.into_inner());
                    loads.retain(|_, g| Arc::strong_count(g) > 1);
                    loads.entry(room.clone()).or_default().clone()
                };
                let _turn = gate.lock().await;
                match cached(self) {
                    Some(list) => list,
                    None => {
                        let generation = {
                            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
                            if recent.len() > 1000 {
                                recent.retain(|r, _| self.hub.watched(r));
                            }
                            recent.entry(room.clone()).or_default().generation
                        };
                        let (list, _) = self.history(s, None, RECENT).await?;
                        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
                        // Kept only if no message event was processed meanwhile (it could be
                        // missing from the load), and while the conversation is watched.
                        if let Some(entry) = recent.get_mut(room) {
                            if entry.generation == generation && self.hub.watched(room) {
                                entry.messages = Some(list.clone());
                            }
                        }
                        list
                    }
                }
            }
        };
        Ok(match after.and_then(|a| latest.iter().position(|m| m.id == a)) {
            Some(i) => latest[i + 1..].to_vec(),
            None if after.is_some() => latest,
            None => latest.into_iter().rev().take(50).rev().collect(),
        })
    }

    async fn send_text(&self, s: &Session, txn_id: &str, text: &str) -> Result<Message, CoreError> {
        let (client, ended) = self.conversation(s).await?;
        if ended {
            return Err(CoreError::Forbidden("Der Chat ist beendet.".into()));
        }
        let content = json!({ "msgtype": "m.text", "body": text, "de.assisto.txn_id": txn_id });
        let txn = TxnId::derived(&format!("{client}/{txn_id}"), "embed-text");
        let sent = self.hs.send_event(&s.conversation, &client, "m.room.message", &txn, &content).await;
        let event_id = match sent {
            Ok(e) => e.event_id,
            Err(HsError::Matrix { status, .. }) if status.as_u16() == 403 => {
                return Err(match self.client_row(&client).await?.blocked {
                    true => CoreError::Blocked(BLOCKED.into()),
                    false => CoreError::Forbidden("Die Nachricht konnte nicht gesendet werden.".into()),
                })
            }
            Err(e) => return Err(unavailable(e)),
        };
        Ok(Message {
            id: event_id,
            ts: now_ms(),
            from: From::Me,
            sender_name: "Du".into(),
            kind: Kind::Text,
            text: text.to_owned(),
            href: None,
            txn_id: Some(txn_id.to_owned()),
            file: None,
        })
    }

    async fn typing(&self, s: &Session, typing: bool) -> Result<(), CoreError> {
        let (client, _) = self.conversation(s).await?;
        self.hs.set_typing(&s.conversation, &client, typing, TYPING_TIMEOUT_MS).await.map_err(unavailable)
    }

    async fn read(&self, s: &Session, up_to: &str) -> Result<(), CoreError> {
        let (client, _) = self.conversation(s).await?;
        // Synapse takes receipts for events it does not know: check it is this chat's.
        self.event(&client, &s.conversation, up_to).await.map_err(|e| match e {
            CoreError::NotFound(_) => CoreError::Invalid("up_to ist keine Nachricht dieses Chats.".into()),
            e => e,
        })?;
        match self.hs.send_receipt(&s.conversation, &client, "m.read", up_to).await {
            Ok(()) => Ok(()),
            Err(HsError::Matrix { status, .. }) if status.is_client_error() => {
                Err(CoreError::Invalid("up_to ist keine Nachricht dieses Chats.".into()))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn end(&self, s: &Session) -> Result<(), CoreError> {
        let (client, ended) = self.conversation(s).await?;
        if !ended {
            let notice = "Die ratsuchende Person hat den Chat beendet.";
            let txn = TxnId::derived(&format!("{}/{client}", s.conversation), "embed-end");
            let _ = self.hs.send_notice(&s.conversation, self.bot(), &txn, notice).await;
            embed::end_conversation(&self.db, &s.conversation).await.map_err(db_err)?;
            match self.hs.leave_room(&s.conversation, &client).await {
                Ok(()) => {}
                Err(e) if !e.is_transient() => {}
                Err(e) => return Err(unavailable(e)),
            }
            audit::record(&self.db, &client, "embed.chat_ended", &s.conversation, None)
                .await
                .map_err(db_err)?;
        }
        embed::end_sessions(&self.db, &client, &s.conversation).await.map_err(db_err)?;
        Ok(())
    }

    fn check_file(&self, name: &str, head: &[u8]) -> Result<(), CoreError> {
        crate::features::client_file::files::document_type(name, head).map(|_| ()).map_err(CoreError::Invalid)
    }

    async fn send_file(&self, s: &Session, name: &str, bytes: Vec<u8>) -> Result<Message, CoreError> {
        let head = &bytes[..bytes.len().min(8192)];
        let mime =
            crate::features::client_file::files::document_type(name, head).map_err(CoreError::Invalid)?;
        let msgtype = if mime.starts_with("image/") { "m.image" } else { "m.file" };
        let plain_mime = mime.split(';').next().unwrap_or(mime).to_owned();
        let name_owned = name.to_owned();
        let mime_for_upload = plain_mime.clone();
        self.send_media_message(s, &mime_for_upload, bytes, move |url, size| {
            json!({
                "msgtype": msgtype, "body": name_owned, "filename": name_owned, "url": url,
                "info": { "mimetype": plain_mime, "size": size },
            })
        })
        .await
    }

    async fn send_voice(
        &self,
        s: &Session,
        mime: &str,
        duration_ms: u64,
        bytes: Vec<u8>,
    ) -> Result<Message, CoreError> {
        let ok = match mime {
            "audio/webm" => bytes.starts_with(b"\x1a\x45\xdf\xa3"),
            "audio/ogg" => bytes.starts_with(b"OggS"),
            _ => false,
        };
        if !ok {
            return Err(CoreError::Invalid(
                "Die Aufnahme ist keine Sprachnachricht im angegebenen Format.".into(),
            ));
        }
        let ext = if mime == "audio/ogg" { "ogg" } else { "webm" };
        let name = format!("Sprachnachricht.{ext}");
        let mime_owned = mime.to_owned();
        self.send_media_message(s, mime, bytes, move |url, size| {
            json!({
                "msgtype": "m.audio", "body": "Sprachnachricht", "filename": name, "url": url,
                "info": { "mimetype": mime_owned, "size": size, "duration": duration_ms },
                "org.matrix.msc1767.audio": { "duration": duration_ms },
                "org.matrix.msc3245.voice": {},
            })
        })
        .await
    }

    async fn media(&self, s: &Session, id: &str) -> Result<Media, CoreError> {
        let (client, _) = self.conversation(s).await?;
        let ev = self.event(&client, &s.conversation, id).await?;
        let Some(mxc) = ev["content"]["url"].as_str().filter(|_| ev["type"] == "m.room.message") else {
            return Err(CoreError::NotFound("Zu dieser Nachricht gehört keine Datei.".into()));
        };
        let (content_type, bytes) =
            self.hs.download_media(&client, mxc).await.map_err(|e| match e.errcode() {
                Some("M_NOT_FOUND") => CoreError::NotFound("Die Datei ist nicht mehr vorhanden.".into()),
                _ => unavailable(e),
            })?;
        let content = &ev["content"];
        Ok(Media {
            content_type: content["info"]["mimetype"].as_str().map(str::to_owned).unwrap_or(content_type),
            name: content["filename"].as_str().or(content["body"].as_str()).unwrap_or("Datei").to_owned(),
            bytes: bytes.to_vec(),
        })
    }

    async fn delete_message(&self, s: &Session, id: &str) -> Result<(), CoreError> {
        let (client, _) = self.conversation(s).await?;
        let ev = self.event(&client, &s.conversation, id).await?;
        if ev["sender"] != client.as_str() {
            return Err(CoreError::Forbidden("Du kannst nur deine eigenen Nachrichten löschen.".into()));
        }
        let txn = TxnId::derived(id, "embed-delete");
        self.hs.redact(&s.conversation, &client, id, &txn).await.map_err(unavailable)?;
        Ok(())
    }

    async fn delete_my_data(&self, s: &Session) -> Result<(), CoreError> {
        let (client, _) = self.conversation(s).await?;
        self.end(s).await?;
        let p = &self.provisioning;
        crate::features::deletion::Deleter::new(self.db.clone(), self.hs.clone(), p.files.clone())
            .mark_now(&client)
            .await
            .map_err(domain_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::features::embed::*;

    #[test]
    fn phone_numbers_and_video_links_become_cards() {
        assert_eq!(phone_href("+49 221 123 456").as_deref(), Some("tel:+49221123456"));
        assert_eq!(phone_href("0800 111 0 111").as_deref(), Some("tel:08001110111"));
        assert_eq!(phone_href("Ruf an: 0800 111"), None);
        assert_eq!(phone_href("12"), None);
        assert_eq!(
            video_href("https://meet.jit.si/beratung-42").as_deref(),
            Some("https://meet.jit.si/beratung-42")
        );
        assert_eq!(video_href("https://example.org/beratung"), None);
        assert_eq!(video_href("http://meet.example.org/x"), None);
        assert_eq!(video_href("hier: https://meet.example.org/x"), None);
    }
}
