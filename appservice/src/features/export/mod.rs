//! Chat export (Chat-Export) as CSV and PDF, for a client chat, group chat or live chat
//! the counsellor may see: from the tools widget and the tools API, from the bot command
//! `!assisto export` (a one-time download link, ten minutes) and from the admin API.
//!
//! The history is read from the homeserver as the bot, a page at a time, oldest first, and
//! streamed out as it arrives (CSV) or laid out page by page (PDF): nothing of an export
//! is written anywhere or kept after the download. Each line: the time in the service's
//! time zone (`bot.timezone`), the sender as counsellors see them, the text (the latest
//! edit); files by name, voice messages as "Sprachnachricht (0:42)"; redacted and deleted
//! messages, bot commands and the bot's answers to them are left out. Every export is
//! audited (IDs only).

pub mod commands;
pub mod csv;
pub mod pdf;
pub mod routes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assisto_core::RoomKind;
use chrono::TimeZone;
use serde_json::Value;

use crate::error::Error;
use crate::features::institutions::store as institutions;
use crate::features::people::store as people;
use crate::features::rooms::checks::Checker;
use crate::features::rooms::members::{self, MembershipState};
use crate::features::rooms::store as rooms;
use crate::matrix::commands::syntax::{self as bot_commands, COMMAND_REPLY};
use crate::matrix::homeserver::HomeserverClient;
use crate::store::Db;

/// CSV or PDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180, UTF-8 with BOM, `;` (German Excel).
    Csv,
    /// A tagged PDF with embedded fonts.
    Pdf,
}

impl Format {
    /// From `csv` / `pdf`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }

    /// The file name's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Pdf => "pdf",
        }
    }
}

/// One exported message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// When it was sent (ms).
    pub ts: i64,
    /// The date, `dd.mm.yyyy`, in the service's time zone.
    pub date: String,
    /// The time, `hh:mm:ss`.
    pub time: String,
    /// The sender as counsellors see them.
    pub sender: String,
    /// The text.
    pub text: String,
}

/// What an export is of: the room, its institution's name and its title.
#[derive(Clone, Debug)]
pub struct Subject {
    /// The room.
    pub room_id: String,
    /// Its kind.
    pub kind: RoomKind,
    /// The institution's name.
    pub institution: String,
    /// "Chat mit Maria", "Live-Chat 12", the group's name.
    pub title: String,
}

/// A download link made by the bot command: for whom, of what, until when.
#[derive(Clone, Debug)]
struct Pending {
    counsellor: String,
    room_id: String,
    format: Format,
    until: Instant,
}

/// How long a one-time download link is valid.
pub const LINK_TTL: Duration = Duration::from_secs(600);

/// The export service.
#[derive(Clone)]
pub struct Exporter {
    db: Db,
    hs: HomeserverClient,
    checker: Checker,
    bot: String,
    tz: chrono_tz::Tz,
    links: Arc<Mutex<HashMap<String, Pending>>>,
}

/// How many events a page of history has.
const PAGE: usize = 500;

impl Exporter {
    /// The exports of this service.
    pub fn new(db: Db, hs: HomeserverClient, checker: Checker, bot: String, tz: chrono_tz::Tz) -> Self {
        Self { db, hs, checker, bot, tz, links: Default::default() }
    }

    /// The room `user` may export: a chat with clients of their institution that they are
    /// in (or were in), or any of it for its institution admins. `None` for the admin API.
    pub async fn subject(&self, user: Option<&str>, room_id: &str) -> Result<Subject, Error> {
        let room = rooms::get(&self.db, room_id)
            .await?
            .filter(|r| r.deleted_at.is_none())
            .ok_or_else(|| Error::not_found("Diesen Chat gibt es nicht."))?;
        if !crate::features::tools::has_clients(room.kind) {
            return Err(Error::forbidden(
                "Exportiert werden Chats mit Ratsuchenden (Einzel-, Gruppen- und Live-Chats).",
            ));
        }
        if let Some(user) = user {
            let c = people::counsellor_by_id(&self.db, user)
                .await?
                .ok_or_else(|| Error::forbidden("Exportieren können nur Beratende einer Einrichtung."))?;
            if c.institution_id != room.institution_id {
                return Err(Error::forbidden("Das geht nur mit Chats Ihrer Einrichtung."));
            }
            let member = members::of_room(&self.db, room_id)
                .await?
                .into_iter()
                .any(|(u, m)| u == user && matches!(m, MembershipState::Join | MembershipState::Leave));
            if !member && !c.institution_admin {
                return Err(Error::forbidden(
                    "Exportieren können Sie nur Chats, in denen Sie sind oder waren.",
                ));
            }
        }
        let institution =
            institutions::get(&self.db, &room.institution_id).await?.map(|i| i.name).unwrap_or_default();
        let mut clients = Vec::new();
        for u in self.checker.clients_in(room_id).await? {
            if let Some(c) = people::client_by_id(&self.db, &u).await? {
                clients.push(c.display_name);
            }
        }
        let title = match (room.kind, clients.as_slice()) {
            (RoomKind::ClientChat | RoomKind::Live, [one]) => format!("{}: {one}", room.kind.label_de()),
            _ => room.kind.label_de().to_owned(),
        };
        Ok(Subject { room_id: room.room_id, kind: room.kind, institution, title })
    }

    /// A one-time download link's token for the bot command (valid ten minutes).
    pub fn link(&self, counsellor: &str, room_id: &str, format: Format) -> String {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        links.retain(|_, p| p.until > now);
        links.insert(
            token.clone(),
            Pending { counsellor: counsellor.into(), room_id: room_id.into(), format, until: now + LINK_TTL },
        );
        token
    }

    /// Redeems a one-time link: who asked, for which room, in which format.
    pub fn redeem(&self, token: &str) -> Option<(String, String, Format)> {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let p = links.remove(token)?;
        (p.until > Instant::now()).then_some((p.counsellor, p.room_id, p.format))
    }

    /// Reads the room's messages page by page, oldest first, and hands each page's lines
    /// to `tx` (a bounded channel: a slow reader slows the reading, so memory stays at a
    /// few pages). Stops when the receiver is gone. Answers how many lines there were.
    pub async fn pages(
        &self,
        room_id: &str,
        tx: tokio::sync::mpsc::Sender<Vec<Line>>,
    ) -> Result<usize, Error> {
        let mut from: Option<String> = None;
        let mut names: HashMap<String, String> = HashMap::new();
        let mut total = 0;
        loop {
            let page = self.hs.room_messages_forward(room_id, &self.bot, from.as_deref(), PAGE).await?;
            let mut lines = Vec::with_capacity(page.chunk.len());
            for ev in &page.chunk {
                let Some((ts, sender, text)) = line(ev, &self.bot) else { continue };
                let name = match names.get(&sender) {
                    Some(n) => n.clone(),
                    None => {
                        let n = self.sender_name(&sender).await?;
                        names.insert(sender.clone(), n.clone());
                        n
                    }
                };
                let at = self.tz.timestamp_millis_opt(ts).single();
                lines.push(Line {
                    ts,
                    date: at.map(|t| t.format("%d.%m.%Y").to_string()).unwrap_or_default(),
                    time: at.map(|t| t.format("%H:%M:%S").to_string()).unwrap_or_default(),
                    sender: name,
                    text,
                });
            }
            total += lines.len();
            let go_on = tx.send(lines).await.is_ok();
            match page.end {
                Some(end) if go_on && !page.chunk.is_empty() && from.as_deref() != Some(end.as_str()) => {
                    from = Some(end);
                }
                _ => return Ok(total),
            }
        }
    }

    /// A sender as counsellors see them: clients by the name the institution knows them
    /// by, the bot as the service, counsellors by their display name.
    async fn sender_name(&self, user: &str) -> Result<String, Error> {
        if user == self.bot {
            return Ok("assisto (System)".into());
        }
        if let Some(c) = people::client_by_id(&self.db, user).await? {
            return Ok(c.display_name);
        }
        if let Some(c) = people::counsellor_by_id(&self.db, user).await? {
            return Ok(c.display_name);
        }
        Ok(self.hs.displayname(user).await.ok().flatten().unwrap_or_else(|| user.to_owned()))
    }

    /// The period an export covers: the dates of its oldest and newest message ("—" for a
    /// chat without messages). Two short reads, from each end of the room.
    pub async fn period(&self, room_id: &str) -> Result<String, Error> {
        use crate::matrix::homeserver::Direction;
        let oldest = self.hs.room_messages_forward(room_id, &self.bot, None, 50).await?;
        let newest = self.hs.room_messages(room_id, &self.bot, Direction::Backward, None, 50).await?;
        let first = oldest.chunk.iter().find_map(|e| line(e, &self.bot)).map(|l| l.0);
        let last = newest.chunk.iter().find_map(|e| line(e, &self.bot)).map(|l| l.0);
        let date = |ms: i64| {
            self.tz
                .timestamp_millis_opt(ms)
                .single()
                .map(|t| t.format("%d.%m.%Y").to_string())
                .unwrap_or_default()
        };
        Ok(match (first, last) {
            (Some(a), Some(b)) => format!("{} – {}", date(a), date(b.max(a))),
            (Some(a), None) | (None, Some(a)) => date(a),
            (None, None) => "—".into(),
        })
    }

    /// The service's time zone.
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.tz
    }
}

/// "Sprachnachricht (0:42)" for a duration in ms.
pub fn voice_label(duration_ms: Option<u64>) -> String {
    match duration_ms {
        Some(ms) => {
            let s = (ms + 500) / 1000;
            format!("Sprachnachricht ({}:{:02})", s / 60, s % 60)
        }
        None => "Sprachnachricht".into(),
    }
}

/// What a message's content says as counsellors read it: the text; files by name, voice
/// messages as "Sprachnachricht (0:42)". `None` without a body.
pub fn content_text(content: &Value) -> Option<String> {
    let body = content["body"].as_str()?;
    Some(match content["msgtype"].as_str().unwrap_or("m.text") {
        "m.audio" => voice_label(
            content["info"]["duration"]
                .as_u64()
                .or_else(|| content["org.matrix.msc1767.audio"]["duration"].as_u64()),
        ),
        "m.file" | "m.image" | "m.video" => {
            format!("Datei: {}", content["filename"].as_str().unwrap_or(body))
        }
        _ => body.to_owned(),
    })
}

/// One message event as an export line: time, sender's ID, text; `None` for what is left
/// out (redacted or deleted, edits themselves, bot commands and the bot's answers).
pub fn line(ev: &Value, bot: &str) -> Option<(i64, String, String)> {
    if ev["type"] != "m.room.message" || ev["unsigned"].get("redacted_because").is_some() {
        return None;
    }
    let sender = ev["sender"].as_str()?;
    let original = &ev["content"];
    if original["m.relates_to"]["rel_type"] == "m.replace" || original[COMMAND_REPLY] == true {
        return None;
    }
    // The latest edit, as the homeserver bundles it.
    let edited = &ev["unsigned"]["m.relations"]["m.replace"]["content"]["m.new_content"];
    let content = if edited.is_object() { edited } else { original };
    let text = content_text(content)?;
    if sender != bot && bot_commands::parse(&text).is_some() {
        return None;
    }
    Some((ev["origin_server_ts"].as_i64().unwrap_or_default(), sender.to_owned(), text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_leave_out_what_is_gone_and_label_files_and_voice() {
        let bot = "@assisto:x";
        let msg = |sender: &str, content: Value| json!({"type": "m.room.message", "sender": sender, "origin_server_ts": 5, "content": content});
        assert_eq!(
            line(&msg("@a:x", json!({"msgtype": "m.text", "body": "Hallo"})), bot).map(|l| l.2),
            Some("Hallo".into())
        );
        let mut redacted = msg("@a:x", json!({}));
        redacted["unsigned"] = json!({"redacted_because": {}});
        assert_eq!(line(&redacted, bot), None);
        assert_eq!(line(&msg("@a:x", json!({"msgtype": "m.text", "body": "!assisto export"})), bot), None);
        assert_eq!(
            line(&msg(bot, json!({"msgtype": "m.notice", "body": "ok", COMMAND_REPLY: true})), bot),
            None
        );
        let edit = json!({"msgtype": "m.text", "body": "* neu", "m.new_content": {"body": "neu"}, "m.relates_to": {"rel_type": "m.replace", "event_id": "$e"}});
        assert_eq!(line(&msg("@a:x", edit.clone()), bot), None, "the edit itself");
        let mut edited = msg("@a:x", json!({"msgtype": "m.text", "body": "alt"}));
        edited["unsigned"] = json!({"m.relations": {"m.replace": {"content": edit}}});
        assert_eq!(line(&edited, bot).map(|l| l.2), Some("neu".into()), "the latest edit");
        let voice = json!({"msgtype": "m.audio", "body": "Sprachnachricht", "info": {"duration": 42_300}});
        assert_eq!(line(&msg("@a:x", voice), bot).map(|l| l.2), Some("Sprachnachricht (0:42)".into()));
        let file = json!({"msgtype": "m.file", "body": "Bericht.pdf", "filename": "Bericht März.pdf"});
        assert_eq!(line(&msg("@a:x", file), bot).map(|l| l.2), Some("Datei: Bericht März.pdf".into()));
        assert_eq!(voice_label(Some(61_000)), "Sprachnachricht (1:01)");
    }
}
