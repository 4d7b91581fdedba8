//! What the bridge needs from the core, in the bridge's own terms: institutions and their
//! chat configuration, sessions of clients, a conversation's messages and state. The
//! appservice implements [`Core`] on Matrix; nothing here knows Matrix.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Who wrote a message, seen from the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum From {
    /// The client.
    Me,
    /// A counsellor.
    Counsellor,
    /// The service (notices).
    System,
}

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Text.
    Text,
    /// A phone number, shown as a card with a `tel:` link.
    Phone,
    /// A video-chat link, shown as a card.
    Video,
    /// A web address a counsellor pushed, shown as a card with its host (`text`).
    Link,
    /// A file (document, image).
    File,
    /// A voice message.
    Voice,
}

/// The file of a file or voice message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// MIME type.
    pub mime: String,
    /// Where the browser fetches it (with the session header).
    pub url: String,
    /// Length of a voice message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// A file or voice message's bytes, for the client.
#[derive(Clone, Debug)]
pub struct Media {
    /// MIME type.
    pub content_type: String,
    /// File name.
    pub name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Stable, opaque ID.
    pub id: String,
    /// When it was sent (ms since the epoch).
    pub ts: i64,
    /// Who sent it.
    pub from: From,
    /// The sender's name as the client sees it.
    pub sender_name: String,
    /// What it is.
    pub kind: Kind,
    /// The text (for cards: the label).
    pub text: String,
    /// The link of a phone or video card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// The client's own transaction ID (own messages only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
    /// The file of a file or voice message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileInfo>,
}

/// A conversation's state as the client sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// No counsellor has joined yet.
    pub waiting: bool,
    /// The client is blocked.
    pub blocked: bool,
    /// The chat has ended.
    pub ended: bool,
    /// A counsellor is typing.
    pub counsellor_typing: bool,
    /// The newest own message a counsellor has read.
    pub read_up_to: Option<String>,
    /// While a live chat waits in its department's queue: the visitor's place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueuePlace>,
}

/// A waiting visitor's place in the queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePlace {
    /// 1 = next.
    pub position: u32,
    /// Estimated wait in seconds, when there is anything to estimate it from.
    pub estimated_wait_secs: Option<u32>,
    /// A counsellor has been offered the chat: someone is coming.
    pub someone_coming: bool,
}

/// A department the visitor may choose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DepartmentInfo {
    /// Its ID (given when opening a session).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether someone of it can take a chat now.
    pub available: bool,
    /// Outside its opening hours: when it opens next (its local time, `YYYY-MM-DDTHH:MM`).
    pub next_open: Option<String>,
}

/// A counsellor as clients see them: proposed in the live chat (the configuration's
/// `team`, only who can take a chat now) or listed in the logged-in area's "Unser Team".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TeamMember {
    /// An opaque, stable ID (not the Matrix user ID), given when choosing them.
    pub id: String,
    /// Their name.
    pub name: String,
    /// As clients see it: `online`, `away` (abwesend), `busy` (beschäftigt) or `offline`
    /// (also for "not online", who can still be written to).
    pub status: &'static str,
    /// The departments they serve (IDs of the configuration's `departments`).
    pub departments: Vec<String>,
}

/// Where on the institution's site the embed is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    /// The public area: anonymous visitors.
    Anonymous,
    /// The logged-in area: clients the site vouches for.
    Registered,
}

/// How the embed shows the chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// Inline in the page.
    Tile,
    /// A floating button opening a panel.
    Bubble,
}

/// Tile and bubble of one area, each on or off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormSwitches {
    /// The chat tile.
    pub tile: bool,
    /// The chat bubble.
    pub bubble: bool,
}

/// The chat configuration of both areas (Chatkonfigurationen).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forms {
    /// Anonymous area.
    pub anonymous: FormSwitches,
    /// Logged-in area.
    pub registered: FormSwitches,
}

impl Forms {
    /// Whether `form` is switched on in `area`.
    pub fn allows(&self, area: Area, form: Form) -> bool {
        let s = match area {
            Area::Anonymous => self.anonymous,
            Area::Registered => self.registered,
        };
        match form {
            Form::Tile => s.tile,
            Form::Bubble => s.bubble,
        }
    }
}

/// Optional abilities of the embed.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Features {
    /// File upload.
    pub files: bool,
    /// Voice messages.
    pub voice: bool,
}

/// Limits the embed checks before asking (the bridge checks them again).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Limits {
    /// Largest file.
    pub max_file_bytes: u64,
    /// Most files at once.
    pub max_files: usize,
    /// Longest text message, in characters.
    pub max_text_chars: usize,
}

/// What an embed needs to know about its institution.
#[derive(Clone, Debug, Serialize)]
pub struct EmbedConfig {
    /// The institution's name.
    pub institution: InstitutionInfo,
    /// Which forms are switched on.
    pub forms: Forms,
    /// Whether a counsellor can take a chat now (the chat button shows).
    pub available: bool,
    /// The departments a visitor may choose (empty: the institution has one queue).
    pub departments: Vec<DepartmentInfo>,
    /// Outside the opening hours of the queue a visitor would join: when it opens next.
    pub next_open: Option<String>,
    /// The counsellors a visitor may choose for a live chat now (online, below their limit,
    /// not "only selectable by regular clients"), by name.
    pub team: Vec<TeamMember>,
    /// Optional abilities.
    pub features: Features,
    /// Limits.
    pub limits: Limits,
}

/// The institution as the embed shows it.
#[derive(Clone, Debug, Serialize)]
pub struct InstitutionInfo {
    /// Its name.
    pub name: String,
}

/// Who opens a session.
#[derive(Clone, Debug)]
pub enum Identity {
    /// An anonymous visitor.
    Anonymous,
    /// A client the institution's site vouches for.
    Registered {
        /// The site's stable ID of the client.
        external_id: String,
        /// The name to show to counsellors.
        display_name: String,
    },
}

/// The kind of a client's conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// An anonymous live chat.
    Live,
    /// A registered client's chat.
    ClientChat,
}

/// A client's session, as the core knows it.
#[derive(Clone, Debug)]
pub struct Session {
    /// A stable ID of the session that reveals nothing (for rate limits).
    pub id: String,
    /// The institution.
    pub institution: String,
    /// The conversation (opaque).
    pub conversation: String,
    /// The conversation's kind.
    pub kind: ConversationKind,
    /// The client's name as counsellors see it.
    pub display_name: String,
    /// When the session expires (ms).
    pub expires_at: i64,
}

/// Why the core refused or failed. The texts are German: the embed shows them.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The input is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Not found.
    #[error("{0}")]
    NotFound(String),
    /// Not allowed (a form switched off, another institution's …).
    #[error("{0}")]
    Forbidden(String),
    /// The client is blocked.
    #[error("{0}")]
    Blocked(String),
    /// The session is unknown, expired or ended.
    #[error("Die Sitzung ist abgelaufen.")]
    Unauthorized,
    /// Too large.
    #[error("{0}")]
    TooLarge(String),
    /// Something failed behind the scenes; worth trying again.
    #[error("{0}")]
    Unavailable(String),
}

/// The core, as the bridge uses it.
#[async_trait]
pub trait Core: Send + Sync + 'static {
    /// An institution's embed configuration; `NotFound` for an unknown institution.
    async fn config(&self, institution: &str) -> Result<EmbedConfig, CoreError>;

    /// The same, as every open page's availability stream reads it after a change: computed
    /// once per change for all of them (and at most a second old otherwise).
    async fn shared_config(&self, institution: &str) -> Result<EmbedConfig, CoreError> {
        self.config(institution).await
    }

    /// The secret an institution signs logged-in clients' tokens with, if it has one.
    async fn embed_secret(&self, institution: &str) -> Result<Option<Vec<u8>>, CoreError>;

    /// Whether an origin may call the embed API from a browser (CORS preflight: any
    /// institution's origin).
    async fn origin_allowed(&self, origin: &str) -> bool;

    /// Whether an origin is one of this institution's (sessions are bound to it).
    async fn origin_allowed_for(&self, institution: &str, origin: &str) -> bool;

    /// Opens a session (and, where needed, the client and the conversation). Returns the
    /// session token (only ever shown to the browser once) and the session.
    async fn open_session(
        &self,
        institution: &str,
        area: Area,
        form: Form,
        identity: Identity,
        department: Option<&str>,
        counsellor: Option<&str>,
    ) -> Result<(String, Session), CoreError>;

    /// "Unser Team" of the logged-in area: the institution's counsellors the client may
    /// write to, with their status (never those who are not selectable; those "only
    /// selectable by regular clients" only for their regular clients).
    async fn team(&self, session: &Session) -> Result<Vec<TeamMember>, CoreError>;

    /// The client writes to a counsellor of "Unser Team": they are brought into the
    /// client's conversation (an invite they see in Element). `NotFound` for an unknown ID
    /// and for one the client may not choose (the list does not show them either).
    async fn write_to(&self, session: &Session, member: &str) -> Result<(), CoreError>;

    /// The session of a token: `Unauthorized` if unknown, expired or ended, `Blocked` if the
    /// client is blocked.
    async fn session(&self, token: &str) -> Result<Session, CoreError>;

    /// The conversation's state.
    async fn state(&self, session: &Session) -> Result<State, CoreError>;

    /// Messages before `before` (newest `limit` when `None`), oldest first, and whether
    /// there are older ones.
    async fn history(
        &self,
        session: &Session,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), CoreError>;

    /// The whole conversation as German plain text, for the client to download.
    async fn transcript(&self, session: &Session) -> Result<String, CoreError>;

    /// Messages after `after` (oldest first), for a browser coming back; when `after` is
    /// unknown or too far back, the newest messages (the browser de-duplicates).
    async fn since(&self, session: &Session, after: Option<&str>) -> Result<Vec<Message>, CoreError>;

    /// Sends a text as the client; the same `txn_id` never sends twice.
    async fn send_text(&self, session: &Session, txn_id: &str, text: &str) -> Result<Message, CoreError>;

    /// The client types (or stopped).
    async fn typing(&self, session: &Session, typing: bool) -> Result<(), CoreError>;

    /// The client has read up to a message.
    async fn read(&self, session: &Session, up_to: &str) -> Result<(), CoreError>;

    /// The client ends the chat.
    async fn end(&self, session: &Session) -> Result<(), CoreError>;

    /// Checks a file the client wants to send (name and first bytes), before anything of
    /// the upload is sent.
    fn check_file(&self, name: &str, head: &[u8]) -> Result<(), CoreError>;

    /// Sends a file as the client.
    async fn send_file(&self, session: &Session, name: &str, bytes: Vec<u8>) -> Result<Message, CoreError>;

    /// Sends a voice message as the client (`audio/webm` or `audio/ogg`).
    async fn send_voice(
        &self,
        session: &Session,
        mime: &str,
        duration_ms: u64,
        bytes: Vec<u8>,
    ) -> Result<Message, CoreError>;

    /// A file or voice message of the session's conversation.
    async fn media(&self, session: &Session, id: &str) -> Result<Media, CoreError>;

    /// Removes one of the client's own messages.
    async fn delete_message(&self, session: &Session, id: &str) -> Result<(), CoreError>;

    /// The client asks for all its data to be deleted: the chat ends, and everything of the
    /// client (messages, files, the chat itself) is deleted by the deletion routine at its
    /// next run.
    async fn delete_my_data(&self, session: &Session) -> Result<(), CoreError>;
}
