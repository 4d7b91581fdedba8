//! The core side of the web embed: [`assisto_bridge::core::Core`] on Matrix.
//!
//! A session belongs to a client puppet and its conversation room: anonymous visitors get a
//! guest puppet ("Gast N") and a live chat; logged-in clients (vouched for by the site's
//! signed token) get their puppet, found again by the site's ID, and a client chat. The bot
//! creates the room in the institution's Live or Ratsuchende space with a join rule that lets
//! the space's members (the institution's counsellors) join; until one does, the client
//! waits. The handler forwards the room's events to [`EmbedCore::on_event`], which
//! publishes them to the browsers watching.
//!
//! This file owns [`EmbedCore`] (its state, its construction, the errors the browser sees)
//! and the [`Core`] implementation, which delegates to the files by concern:
//! `sessions.rs` (the site's configuration, opening, finding and ending sessions),
//! `rooms.rs` (creating the conversation room), `timeline.rs` (history, its cache, live
//! events, text messages), `media.rs` (files and voice messages), `presence.rs` (what the
//! client sees of the counsellors: joined, typing, read), `team.rs` (choosing a counsellor:
//! the live chat's proposals, "Unser Team") and `store.rs` (the tables).

mod media;
mod presence;
mod rooms;
mod sessions;
pub mod store;
mod team;
mod timeline;
mod transcript;

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use assisto_bridge::{
    core::{Area, Core, CoreError, EmbedConfig, Form, Identity, Media, Message, Session, State, TeamMember},
    hub::Hub,
};
use assisto_core::ids::Ids;
use async_trait::async_trait;

use crate::features::embed::store as embed;
use crate::features::institutions::Provisioning;
use crate::features::live::LiveDesk;
use crate::features::people::store as people;
use crate::matrix::homeserver::HomeserverClient;
use crate::store::Db;

/// The embed's core.
pub struct EmbedCore {
    db: Db,
    hs: HomeserverClient,
    provisioning: Provisioning,
    /// The live-chat desk: a visitor's chat joins its queue, the state shows its place.
    live: LiveDesk,
    hub: Arc<Hub>,
    /// Who a user ID belongs to (the bot, a puppet, possibly a counsellor).
    ids: Ids,
    /// Rooms where a counsellor is typing.
    typing: Mutex<HashMap<String, bool>>,
    /// The newest event a counsellor has read, per room.
    read: Mutex<HashMap<String, String>>,
    /// The newest messages of watched conversations, so that browsers (re)connecting do
    /// not each ask the homeserver (10,000 connections after a restart would).
    recent: Mutex<HashMap<String, timeline::Recent>>,
    /// One history load per conversation at a time.
    loads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Each institution's configuration as its open pages' availability streams read it:
    /// one computation per change for all of them (see `sessions.rs`).
    shared: crate::shared::Shared<EmbedConfig>,
    /// "Unser Team": a client writing to the same counsellor twice at once (a double
    /// click) invites and tells once (see `team.rs`).
    writing: crate::shared::Shared<()>,
}

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

impl EmbedCore {
    /// The core over the service's database and homeserver, publishing to `hub`.
    pub fn new(provisioning: Provisioning, live: LiveDesk, hub: Arc<Hub>) -> Arc<Self> {
        let ids = provisioning.config.ids();
        Arc::new(Self {
            db: provisioning.db.clone(),
            hs: provisioning.hs.clone(),
            provisioning,
            live,
            hub,
            ids,
            typing: Mutex::default(),
            read: Mutex::default(),
            recent: Mutex::default(),
            loads: Mutex::default(),
            shared: crate::shared::Shared::new(sessions::SHARED_CONFIG_MAX_AGE),
            writing: crate::shared::Shared::new(team::WRITING_WINDOW),
        })
    }

    fn bot(&self) -> &str {
        self.ids.bot()
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
}

#[async_trait]
impl Core for EmbedCore {
    async fn config(&self, institution: &str) -> Result<EmbedConfig, CoreError> {
        self.site_config(institution).await
    }

    async fn shared_config(&self, institution: &str) -> Result<EmbedConfig, CoreError> {
        self.shared_site_config(institution).await
    }

    async fn embed_secret(&self, institution: &str) -> Result<Option<Vec<u8>>, CoreError> {
        self.site_secret(institution).await
    }

    async fn origin_allowed(&self, origin: &str) -> bool {
        self.origin_allowed_anywhere(origin).await
    }

    async fn origin_allowed_for(&self, institution: &str, origin: &str) -> bool {
        self.origin_allowed_at(institution, origin).await
    }

    async fn open_session(
        &self,
        institution: &str,
        area: Area,
        form: Form,
        identity: Identity,
        department: Option<&str>,
        counsellor: Option<&str>,
    ) -> Result<(String, Session), CoreError> {
        self.open(institution, area, form, identity, department, counsellor).await
    }

    async fn team(&self, s: &Session) -> Result<Vec<TeamMember>, CoreError> {
        self.team_of(s).await
    }

    async fn write_to(&self, s: &Session, member: &str) -> Result<(), CoreError> {
        self.write_to_member(s, member).await
    }

    async fn session(&self, token: &str) -> Result<Session, CoreError> {
        self.session_of(token).await
    }

    async fn state(&self, s: &Session) -> Result<State, CoreError> {
        self.conversation_state(s).await
    }

    async fn history(
        &self,
        s: &Session,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), CoreError> {
        self.load_history(s, before, limit).await
    }

    async fn transcript(&self, s: &Session) -> Result<String, CoreError> {
        self.transcript_text(s).await
    }

    async fn since(&self, s: &Session, after: Option<&str>) -> Result<Vec<Message>, CoreError> {
        self.messages_since(s, after).await
    }

    async fn send_text(&self, s: &Session, txn_id: &str, text: &str) -> Result<Message, CoreError> {
        self.send_text_message(s, txn_id, text).await
    }

    async fn typing(&self, s: &Session, typing: bool) -> Result<(), CoreError> {
        self.client_typing(s, typing).await
    }

    async fn read(&self, s: &Session, up_to: &str) -> Result<(), CoreError> {
        self.client_read(s, up_to).await
    }

    async fn end(&self, s: &Session) -> Result<(), CoreError> {
        self.end_conversation(s).await
    }

    fn check_file(&self, name: &str, head: &[u8]) -> Result<(), CoreError> {
        media::check_document(name, head)
    }

    async fn send_file(&self, s: &Session, name: &str, bytes: Vec<u8>) -> Result<Message, CoreError> {
        self.send_document(s, name, bytes).await
    }

    async fn send_voice(
        &self,
        s: &Session,
        mime: &str,
        duration_ms: u64,
        bytes: Vec<u8>,
    ) -> Result<Message, CoreError> {
        self.send_voice_message(s, mime, duration_ms, bytes).await
    }

    async fn media(&self, s: &Session, id: &str) -> Result<Media, CoreError> {
        self.media_of(s, id).await
    }

    async fn delete_message(&self, s: &Session, id: &str) -> Result<(), CoreError> {
        self.delete_own_message(s, id).await
    }

    async fn delete_my_data(&self, s: &Session) -> Result<(), CoreError> {
        self.delete_client_data(s).await
    }
}
