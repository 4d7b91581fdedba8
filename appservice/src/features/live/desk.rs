//! The counsellor's desk: what the live-chat widget in Element shows — their status, the
//! waiting chats they may take with what each visitor wrote last, their own chats with the
//! response reminder — and the stream that tells open widgets when it changed.
//!
//! What a visitor wrote is read from the homeserver as the bot when a desk is drawn and
//! kept in memory only, for the queued chats, until the visitor writes again (never in the
//! database: the deletion routine has nothing to find). Only the chats a counsellor may
//! take are shown to them, and only while they wait: once a chat is taken, nobody else's
//! desk shows what its visitor writes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use assisto_core::live::{self, ChatState, LiveError};
use serde::Serialize;
use serde_json::Value;

use crate::bus::{Change, Subscriber};
use crate::error::Error;
use crate::features::institutions::store as institutions;
use crate::features::live::store::{self, Code};
use crate::features::live::LiveDesk;
use crate::features::people::store as people;
use crate::matrix::homeserver::Direction;
use crate::store::{audit, now_ms};

/// How many waiting chats a desk shows what their visitor wrote (the oldest first).
const SNIPPETS: usize = 30;

/// How long a visitor's last words stay cached when no new message says otherwise (a
/// second instance's cache learns nothing of messages).
const SNIPPET_TTL: Duration = Duration::from_secs(10);

/// The longest snippet in the list, in characters.
const SNIPPET_CHARS: usize = 160;

/// How many of the visitor's messages the preview shows.
const PREVIEW_MESSAGES: usize = 20;

/// How far back the preview looks for them.
const PREVIEW_SCAN: usize = 100;

/// Changes of an institution's desk, as they come off the live bus.
pub struct DeskSubscriber(tokio::sync::broadcast::Sender<String>);

#[async_trait::async_trait]
impl Subscriber for DeskSubscriber {
    async fn changed(&self, change: &Change) {
        if let Change::Desk(institution) = change {
            // No receiver: no open widget.
            let _ = self.0.send(institution.clone());
        }
    }
}

/// A counsellor's desk.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Desk {
    /// Their user ID.
    pub user_id: String,
    /// Their status.
    pub status: DeskStatus,
    /// The waiting chats they may take, first arrived first.
    pub waiting: Vec<DeskWaiting>,
    /// The chats they own.
    pub mine: Vec<DeskChat>,
    /// The institution's departments (for forwarding).
    pub departments: Vec<institutions::Department>,
    /// Their colleagues (for forwarding to a named one), with what clients see of them.
    pub colleagues: Vec<Colleague>,
    /// The institution's classification codes.
    pub codes: Vec<Code>,
    /// After how many seconds without an answer the reminder turns yellow.
    pub reminder_yellow_secs: u32,
    /// … and red.
    pub reminder_red_secs: u32,
}

/// A counsellor's status on their desk.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeskStatus {
    /// What they set.
    pub status: live::Status,
    /// What Element reports.
    pub presence: live::Presence,
    /// What clients see.
    pub shown: live::Shown,
    /// Only regular clients may choose them.
    pub only_regular: bool,
    /// How many live chats they may lead at once.
    pub max_chats: u32,
}

/// A waiting chat on a desk.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeskWaiting {
    /// "Live 12".
    pub number: i64,
    /// Its room.
    pub room_id: String,
    /// Its department (`None`: the general queue).
    pub department_id: Option<String>,
    /// The department's name.
    pub department: Option<String>,
    /// Its place in its department's queue.
    pub position: u32,
    /// Since when it waits (ms).
    pub queued_at: i64,
    /// Whether it is offered to someone now.
    pub offered: bool,
    /// Whether it is offered to this counsellor (accepting: take it).
    pub offered_to_me: bool,
    /// What the visitor wrote last, shortened (for the oldest chats).
    pub last_message: Option<String>,
}

/// A chat the counsellor owns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeskChat {
    /// "Live 12".
    pub number: i64,
    /// Its room.
    pub room_id: String,
    /// The department's name.
    pub department: Option<String>,
    /// When it was taken (ms).
    pub taken_at: Option<i64>,
    /// Since when the visitor waits for an answer (ms), if they do.
    pub unanswered_since: Option<i64>,
    /// Whether closing it needs a classification code.
    pub code_required: bool,
}

/// A colleague on a desk.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Colleague {
    /// Their user ID.
    pub user_id: String,
    /// Their name.
    pub display_name: String,
    /// What clients see of them.
    pub shown: live::Shown,
}

/// One message of the visitor in a preview.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PreviewLine {
    /// When it was sent (ms).
    pub at: i64,
    /// Its text (files, images and voice messages by kind).
    pub text: String,
}

/// The visitor's last words per queued chat.
#[derive(Default)]
pub struct Snippets {
    by_room: std::sync::Mutex<HashMap<String, Snip>>,
}

/// One chat's snippet: counted changes (a snippet read from the homeserver while the
/// visitor wrote again may predate the new message and is not kept) and, once known, the
/// snippet and since when.
#[derive(Default)]
struct Snip {
    generation: u64,
    known: Option<(Instant, Option<String>)>,
}

/// How many chats' snippets may pile up before those unused for [`SNIPPET_KEPT`] go.
const SNIPPETS_PRUNE_AT: usize = 1024;

/// How long an unused snippet is kept.
const SNIPPET_KEPT: Duration = Duration::from_secs(600);

impl Snippets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Snip>> {
        let mut all = self.by_room.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= SNIPPETS_PRUNE_AT {
            all.retain(|_, s| s.known.as_ref().is_some_and(|(at, _)| at.elapsed() < SNIPPET_KEPT));
        }
        all
    }

    /// The cached snippet, or the generation to store a fresh one under.
    fn cached(&self, room_id: &str) -> Result<Option<String>, u64> {
        let all = self.lock();
        match all.get(room_id) {
            Some(Snip { known: Some((at, s)), .. }) if at.elapsed() < SNIPPET_TTL => Ok(s.clone()),
            Some(snip) => Err(snip.generation),
            None => Err(0),
        }
    }

    /// Keeps a snippet read from the homeserver, unless the visitor wrote meanwhile.
    fn keep(&self, room_id: &str, generation: u64, s: Option<String>) {
        let mut all = self.lock();
        let snip = all.entry(room_id.to_owned()).or_default();
        if snip.generation == generation {
            snip.known = Some((Instant::now(), s));
        }
    }

    /// The visitor wrote: what they wrote, if it reads as a snippet, else read it again.
    fn wrote(&self, room_id: &str, s: Option<String>) {
        let mut all = self.lock();
        let snip = all.entry(room_id.to_owned()).or_default();
        snip.generation += 1;
        snip.known = s.map(|s| (Instant::now(), Some(s)));
    }
}

impl LiveDesk {
    /// The live bus's subscriber that feeds [`LiveDesk::watch_desk`].
    pub fn desk_subscriber(&self) -> DeskSubscriber {
        DeskSubscriber(self.desk_tx.clone())
    }

    /// Hears the institutions whose desks changed.
    pub fn watch_desk(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.desk_tx.subscribe()
    }

    /// A counsellor's desk; `None` if they are no counsellor.
    pub async fn desk(&self, user: &str) -> Result<Option<Desk>, Error> {
        let Some(me) = people::counsellor_by_id(&self.db, user).await? else { return Ok(None) };
        let departments = institutions::departments(&self.db, &me.institution_id).await?;
        let name =
            |d: Option<&str>| d.and_then(|d| departments.iter().find(|x| x.id == d)).map(|x| x.name.clone());
        let st = store::status(&self.db, user).await?;
        let general = store::department_settings(&self.db, None).await?;
        let status = DeskStatus {
            status: st.status,
            presence: st.presence,
            shown: live::shown(st.status, st.presence),
            only_regular: st.only_regular,
            max_chats: st.max_chats.unwrap_or(general.max_chats),
        };
        let mut waiting = Vec::new();
        let queued = self.waiting_for(user).await?;
        for (i, w) in queued.into_iter().enumerate() {
            let chat = store::chat(&self.db, &w.room_id).await?;
            let offered_to_me = chat
                .as_ref()
                .is_some_and(|c| matches!(&c.chat.state, ChatState::Offered { to, .. } if to == user));
            let last_message = match (&chat, i < SNIPPETS) {
                (Some(c), true) => self.snippet(&c.room_id, &c.client).await?,
                _ => None,
            };
            waiting.push(DeskWaiting {
                department: name(w.department_id.as_deref()),
                number: w.number,
                room_id: w.room_id,
                department_id: w.department_id,
                position: w.position,
                queued_at: w.queued_at,
                offered: w.offered,
                offered_to_me,
                last_message,
            });
        }
        let mut mine = Vec::new();
        for c in store::owned_by(&self.db, user).await? {
            let settings = store::department_settings(&self.db, c.chat.department.as_deref()).await?;
            mine.push(DeskChat {
                number: c.number,
                department: name(c.chat.department.as_deref()),
                room_id: c.room_id,
                taken_at: c.taken_at,
                unanswered_since: c.unanswered_since,
                code_required: settings.code_required,
            });
        }
        mine.sort_by_key(|c| c.number);
        let mut colleagues = Vec::new();
        for c in people::counsellors(&self.db, &me.institution_id).await? {
            if c.user_id != user {
                let shown = self.shown(&c.user_id).await?;
                colleagues.push(Colleague { user_id: c.user_id, display_name: c.display_name, shown });
            }
        }
        Ok(Some(Desk {
            user_id: user.to_owned(),
            status,
            waiting,
            mine,
            departments,
            colleagues,
            codes: store::codes(&self.db, &me.institution_id).await?,
            reminder_yellow_secs: self.config.reminder_yellow_secs,
            reminder_red_secs: self.config.reminder_red_secs,
        }))
    }

    /// A counsellor opens the preview of a waiting chat: what its visitor wrote, oldest
    /// first. Only of a chat they may take, while it waits; the visitor learns that
    /// someone is coming.
    pub async fn preview(
        &self,
        room_id: &str,
        user: &str,
    ) -> Result<Result<Vec<PreviewLine>, LiveError>, Error> {
        let Some(chat) = store::chat(&self.db, room_id).await? else { return Ok(Err(LiveError::Closed)) };
        match &chat.chat.state {
            ChatState::Closed { .. } => return Ok(Err(LiveError::Closed)),
            ChatState::Taken { owner } if owner == user => return Ok(Err(LiveError::AlreadyYours)),
            ChatState::Taken { .. } => return Ok(Err(LiveError::Taken)),
            ChatState::Waiting | ChatState::Offered { .. } => {}
        }
        if !self.waiting_for(user).await?.iter().any(|w| w.room_id == room_id) {
            return Ok(Err(LiveError::NotInDepartment));
        }
        let page =
            self.hs.room_messages(room_id, self.bot(), Direction::Backward, None, PREVIEW_SCAN).await?;
        let mut lines: Vec<PreviewLine> = page
            .chunk
            .iter()
            .filter(|e| e["sender"] == chat.client.as_str())
            .filter_map(|e| {
                let text = message_text(e)?;
                Some(PreviewLine { at: e["origin_server_ts"].as_i64().unwrap_or(0), text })
            })
            .take(PREVIEW_MESSAGES)
            .collect();
        lines.reverse();
        store::set_previewed(&self.db, room_id, now_ms()).await?;
        self.queue_moved(&chat.institution_id);
        audit::record(&self.db, user, "live.preview", room_id, None).await?;
        self.publish(Change::Conversation(room_id.to_owned())).await;
        Ok(Ok(lines))
    }

    /// What the visitor of a queued chat wrote last, shortened: as their message came in,
    /// else read from the homeserver (after a restart, or from another instance's events)
    /// and cached for [`SNIPPET_TTL`].
    async fn snippet(&self, room_id: &str, client: &str) -> Result<Option<String>, Error> {
        let generation = match self.snippets.cached(room_id) {
            Ok(s) => return Ok(s),
            Err(g) => g,
        };
        let page = match self.hs.room_messages(room_id, self.bot(), Direction::Backward, None, 20).await {
            Ok(p) => p,
            // The list still shows; the snippet is missing this once.
            Err(e) => {
                tracing::warn!(room_id, error = %e, "reading a waiting chat for the desk failed");
                return Ok(None);
            }
        };
        let s = page
            .chunk
            .iter()
            .filter(|e| e["sender"] == client)
            .find_map(message_text)
            .map(|t| shorten(&t, SNIPPET_CHARS));
        self.snippets.keep(room_id, generation, s.clone());
        Ok(s)
    }

    /// The visitor of a queued chat wrote `content`: it is their desk snippet now.
    pub(super) fn visitor_wrote(&self, room_id: &str, content: &Value) {
        self.snippets.wrote(room_id, content_text(content).map(|t| shorten(&t, SNIPPET_CHARS)));
    }
}

/// A message's text as a counsellor reads it in the preview: text as written, other kinds
/// by name. `None` for what is no message (state, redacted, notices of the service).
fn message_text(e: &Value) -> Option<String> {
    if e["type"] != "m.room.message" {
        return None;
    }
    content_text(&e["content"])
}

/// A message content's text, as [`message_text`] reads it.
fn content_text(c: &Value) -> Option<String> {
    let body = c["body"].as_str().unwrap_or_default();
    Some(match c["msgtype"].as_str()? {
        "m.text" | "m.emote" => body.chars().take(2000).collect(),
        "m.image" => "(Bild)".to_owned(),
        "m.audio" => "(Sprachnachricht)".to_owned(),
        "m.video" => "(Video)".to_owned(),
        "m.file" => "(Datei)".to_owned(),
        _ => return None,
    })
}

fn shorten(text: &str, max: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{} …", one_line.chars().take(max - 2).collect::<String>().trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn texts_are_shown_and_other_kinds_named() {
        let m =
            |t: &str, body: &str| json!({"type": "m.room.message", "content": {"msgtype": t, "body": body}});
        assert_eq!(message_text(&m("m.text", "Hallo")).as_deref(), Some("Hallo"));
        assert_eq!(message_text(&m("m.file", "brief-an-mama.pdf")).as_deref(), Some("(Datei)"));
        assert_eq!(message_text(&m("m.audio", "voice.ogg")).as_deref(), Some("(Sprachnachricht)"));
        assert_eq!(message_text(&m("m.notice", "Du bist in der Warteschlange")), None);
        assert_eq!(message_text(&json!({"type": "m.room.member", "content": {}})), None);
        assert_eq!(message_text(&json!({"type": "m.room.message", "content": {}})), None);
    }

    #[test]
    fn a_snippet_read_while_the_visitor_wrote_is_not_kept_and_other_chats_are_untouched() {
        let s = Snippets::default();
        // Nothing known: read it (generation 0).
        let g = s.cached("!a").expect_err("unknown");
        let other = s.cached("!b").expect_err("unknown");
        s.keep("!b", other, Some("B".into()));
        // The visitor of !a writes while the desk reads !a from the homeserver: what it
        // read may predate the message and is not kept over the message.
        s.wrote("!a", Some("neu".into()));
        s.keep("!a", g, Some("alt".into()));
        assert_eq!(s.cached("!a"), Ok(Some("neu".into())), "the message, not the older read");
        assert_eq!(s.cached("!b"), Ok(Some("B".into())), "another chat's write does not touch it");
        // A message with no text to show: read again, under the new generation.
        s.wrote("!a", None);
        let g = s.cached("!a").expect_err("read again");
        s.keep("!a", g, Some("(Bild)".into()));
        assert_eq!(s.cached("!a"), Ok(Some("(Bild)".into())));
    }

    #[test]
    fn snippets_are_one_line_and_short() {
        assert_eq!(shorten("Ich\n  kann   nicht", 160), "Ich kann nicht");
        let long = "ä".repeat(200);
        let s = shorten(&long, 160);
        assert_eq!(s.chars().count(), 160);
        assert!(s.ends_with(" …"));
    }
}
