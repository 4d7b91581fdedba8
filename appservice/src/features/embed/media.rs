//! Files in the conversation: checking and sending the client's documents and voice
//! messages (uploaded to the media repository as the client, then sent as a message), and
//! handing the browser the file of a message.

use assisto_bridge::core::{CoreError, Media, Message, Session};
use serde_json::{json, Value};

use crate::features::embed::{unavailable, EmbedCore, BLOCKED};
use crate::matrix::homeserver::{HsError, TxnId};
use crate::store::now_ms;

/// Whether a document may be sent, by its name and first bytes (the client file's rules).
pub(super) fn check_document(name: &str, head: &[u8]) -> Result<(), CoreError> {
    crate::features::client_file::files::document_type(name, head).map(|_| ()).map_err(CoreError::Invalid)
}

impl EmbedCore {
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

    /// Sends a document (`m.file`, or `m.image` for pictures), as the client.
    pub(super) async fn send_document(
        &self,
        s: &Session,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<Message, CoreError> {
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

    /// Sends a voice message (WebM or Ogg audio, checked by its magic bytes), as the client.
    pub(super) async fn send_voice_message(
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

    /// The file of a message of the conversation, downloaded as the client.
    pub(super) async fn media_of(&self, s: &Session, id: &str) -> Result<Media, CoreError> {
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
}
