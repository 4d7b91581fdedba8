//! The conversation's messages as the client sees them: turning a room event into a
//! [`Message`] (who wrote it, phone and video cards, files), the history page by page, the
//! cache of the newest messages of watched conversations, live events for the browsers
//! watching, and the client's own text messages and their deletion.

use crate::matrix::commands::{self, COMMAND_REPLY};
use std::sync::Arc;

use assisto_bridge::{
    core::{CoreError, FileInfo, From, Kind, Message, Session},
    hub::Frame,
};
use serde_json::{json, Value};

use crate::features::embed::store as embed;
use crate::features::embed::{unavailable, EmbedCore, BLOCKED};
use crate::matrix::event::RoomEvent;
use crate::matrix::homeserver::{Direction, HsError, TxnId};
use crate::store::now_ms;

/// A conversation's newest messages as the client sees them, kept current by `on_event`
/// while the conversation is watched; `generation` counts its message events, so a load
/// that raced with one is not kept.
#[derive(Default)]
pub(super) struct Recent {
    generation: u64,
    messages: Option<Vec<Message>>,
}

/// How many of the newest messages are kept per watched conversation.
const RECENT: usize = 100;

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

/// The card a counsellor's tool put on a message (`de.assisto.card`), checked again: any
/// counsellor can send any content, so only a valid phone number or http(s) link makes a
/// card; anything else is shown as the text it is.
fn card(content: &Value) -> Option<(Kind, Option<String>, String)> {
    let card = content.get(crate::features::tools::CARD)?;
    let href = card["href"].as_str()?;
    match card["kind"].as_str()? {
        "phone" => {
            let phone = assisto_core::tools::normalise_phone(href.strip_prefix("tel:")?).ok()?;
            Some((Kind::Phone, Some(phone.href()), phone.as_str().to_owned()))
        }
        "link" => {
            let link = assisto_core::tools::check_link(href).ok()?;
            Some((Kind::Link, Some(link.url), link.host))
        }
        "video" => {
            let link =
                assisto_core::tools::check_link(href).ok().filter(|l| l.url.starts_with("https://"))?;
            Some((Kind::Video, Some(link.url), "Video-Chat".to_owned()))
        }
        _ => None,
    }
}

impl EmbedCore {
    /// Turns a room event into a message as `client` sees it.
    pub(super) async fn message(&self, client: &str, ev: &Value) -> Option<Message> {
        if ev["type"] != "m.room.message" || ev["content"]["body"].as_str().is_none() {
            return None;
        }
        let sender = ev["sender"].as_str()?;
        let id = ev["event_id"].as_str()?.to_owned();
        let content = &ev["content"];
        let text = content["body"].as_str()?.to_owned();
        // A counsellor's bot command and the bot's answer are for the counsellor, not the
        // client (a closing note, a block).
        if content[COMMAND_REPLY] == true || (sender != client && commands::parse(&text).is_some()) {
            return None;
        }
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
            (None, From::Counsellor) => match card(content) {
                Some(c) => c,
                None => match (phone_href(&text), video_href(&text)) {
                    (Some(h), _) => (Kind::Phone, Some(h), text.trim().to_owned()),
                    (_, Some(h)) => (Kind::Video, Some(h), "Video-Chat".to_owned()),
                    _ => (Kind::Text, None, text),
                },
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
    pub(super) async fn event(&self, client: &str, room: &str, id: &str) -> Result<Value, CoreError> {
        match self.hs.room_event(room, id, client).await {
            Ok(v) => Ok(v),
            Err(HsError::Matrix { status, .. }) if status.is_client_error() => {
                Err(CoreError::NotFound("Diese Nachricht gibt es nicht.".into()))
            }
            Err(e) => Err(unavailable(e)),
        }
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

    /// Up to `limit` messages before the message `before` (or the newest), oldest first,
    /// and whether there are more.
    pub(super) async fn load_history(
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

    /// What a browser missed after the message `after` (or the newest 50 if it has none).
    pub(super) async fn messages_since(
        &self,
        s: &Session,
        after: Option<&str>,
    ) -> Result<Vec<Message>, CoreError> {
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
                        let (list, _) = self.load_history(s, None, RECENT).await?;
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

    /// Sends the client's text, as the client; the same `txn_id` sends nothing twice.
    pub(super) async fn send_text_message(
        &self,
        s: &Session,
        txn_id: &str,
        text: &str,
    ) -> Result<Message, CoreError> {
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

    /// Redacts one of the client's own messages, as the client.
    pub(super) async fn delete_own_message(&self, s: &Session, id: &str) -> Result<(), CoreError> {
        let (client, _) = self.conversation(s).await?;
        let ev = self.event(&client, &s.conversation, id).await?;
        if ev["sender"] != client.as_str() {
            return Err(CoreError::Forbidden("Du kannst nur deine eigenen Nachrichten löschen.".into()));
        }
        let txn = TxnId::derived(id, "embed-delete");
        self.hs.redact(&s.conversation, &client, id, &txn).await.map_err(unavailable)?;
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use crate::features::embed::timeline::*;

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
