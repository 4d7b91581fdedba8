//! Video chats: the institution's video service (admin API) and "Videochat starten" — a
//! fresh, unguessable conference, added to the Matrix room as a widget (a Jitsi widget
//! Element shows natively; a custom widget for protected Jitsi servers and Element Call,
//! whose links carry what Element's Jitsi wrapper cannot) and sent to the client as a card
//! that opens it.
//!
//! Protected Jitsi servers (Prosody token authentication) get an HS256 JWT per participant:
//! the counsellor's (moderator, with their name) in the widget, the client's (no name, no
//! moderator) in the card; both valid for four hours.

use assisto_core::tools::{self as rules, VideoService};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::Error;
use crate::features::tools::{store, Caller, Tools, CARD};
use crate::matrix::homeserver::TxnId;
use crate::store::now_ms;

/// State key of the video-chat widget (one per room; a new conference replaces it).
pub const WIDGET_ID: &str = "assisto-videochat";

/// The widget content's keys naming the request it was made for and its conference.
const TXN: &str = "de.assisto.txn";
const CONFERENCE: &str = "de.assisto.conference";

/// How long a conference's JWTs are valid.
const JWT_SECS: i64 = 4 * 3600;

/// The video service as the admin API sets it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoRequest {
    /// `jitsi` or `element_call`.
    pub service: String,
    /// The base URL (https).
    pub base_url: String,
    /// For protected Jitsi servers: the app ID…
    #[serde(default)]
    pub jwt_app_id: Option<String>,
    /// …and the secret its JWTs are signed with.
    #[serde(default)]
    pub jwt_secret: Option<String>,
}

/// The video service as the admin API shows it (never the secret).
#[derive(Debug, Serialize)]
pub struct VideoView {
    /// `jitsi` or `element_call`.
    pub service: String,
    /// The base URL.
    pub base_url: String,
    /// The app ID, if protected.
    pub jwt_app_id: Option<String>,
    /// Whether conferences get JWTs.
    pub jwt: bool,
}

impl From<store::Video> for VideoView {
    fn from(v: store::Video) -> Self {
        let jwt = v.jwt_secret.is_some();
        VideoView { service: v.service, base_url: v.base_url, jwt_app_id: v.jwt_app_id, jwt }
    }
}

/// The claims of a Jitsi Meet JWT (Prosody's token authentication).
#[derive(Serialize)]
struct JitsiClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    room: &'a str,
    nbf: i64,
    exp: i64,
    context: Value,
}

fn jwt(app_id: &str, secret: &str, host: &str, room: &str, user: Value) -> Result<String, Error> {
    let now = now_ms() / 1000;
    let claims = JitsiClaims {
        aud: "jitsi",
        iss: app_id,
        sub: host,
        room,
        nbf: now - 60,
        exp: now + JWT_SECS,
        context: json!({ "user": user }),
    };
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).map_err(|e| {
        tracing::error!(error = %e, "signing a Jitsi JWT failed");
        Error::invalid("Der Videochat konnte nicht angelegt werden (JWT).")
    })
}

impl Tools {
    /// Sets the institution's video service (admin API).
    pub async fn set_video(&self, institution: &str, req: &VideoRequest) -> Result<VideoView, Error> {
        let service = VideoService::parse(&req.service)
            .ok_or_else(|| Error::invalid("service must be jitsi or element_call"))?;
        let base_url = rules::check_video_base(&req.base_url)?;
        let app_id = req.jwt_app_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let secret = req.jwt_secret.as_deref().filter(|s| !s.is_empty());
        match (service, app_id, secret) {
            (_, None, None) => {}
            (VideoService::Jitsi, Some(id), Some(secret)) => {
                if id.len() > 200 || id.chars().any(char::is_control) {
                    return Err(Error::invalid("jwt_app_id must be 1 to 200 characters"));
                }
                if secret.len() < 16 || secret.len() > 500 {
                    return Err(Error::invalid("jwt_secret must be 16 to 500 bytes"));
                }
            }
            (VideoService::Jitsi, _, _) => {
                return Err(Error::invalid("jwt_app_id and jwt_secret go together"));
            }
            (VideoService::ElementCall, _, _) => {
                return Err(Error::invalid("JWTs are for Jitsi only"));
            }
        }
        let v = store::Video {
            service: service.as_str().to_owned(),
            base_url,
            jwt_app_id: app_id.map(str::to_owned),
            jwt_secret: secret.map(str::to_owned),
        };
        store::set_video(&self.db, institution, &v).await?;
        Ok(v.into())
    }

    /// The institution's video service, if it has one.
    pub async fn video(&self, institution: &str) -> Result<Option<VideoView>, Error> {
        Ok(store::video(&self.db, institution).await?.map(VideoView::from))
    }

    /// Removes the institution's video service; `false` if it had none.
    pub async fn delete_video(&self, institution: &str) -> Result<bool, Error> {
        Ok(store::delete_video(&self.db, institution).await?)
    }

    /// "Videochat starten": a fresh conference as the room's video widget, and a card for
    /// the client, sent as the caller. Answers the card message's event ID and the
    /// counsellor's conference URL.
    pub async fn start_video(
        &self,
        c: &Caller,
        room_id: &str,
        txn: &TxnId,
    ) -> Result<(String, String), Error> {
        let settings = store::settings(&self.db, &c.counsellor.user_id).await?;
        if !settings.allow_video {
            return Err(Error::forbidden(
                "Videochat ist ausgeschaltet. Sie können ihn in den Werkzeugen unter „Einstellungen“ einschalten (Erlaube Anfrage für Video im Chat).",
            ));
        }
        let Some(video) = store::video(&self.db, &c.counsellor.institution_id).await? else {
            return Err(Error::forbidden(
                "Für Ihre Einrichtung ist kein Videodienst eingerichtet; ein Videochat ist deshalb nicht möglich. Bitte wenden Sie sich an die Administration Ihrer Einrichtung.",
            ));
        };
        self.room(c, room_id).await?;
        let service = VideoService::parse(&video.service).unwrap_or(VideoService::Jitsi);
        // The same request again (a retry) is the same conference: the widget names the
        // request it was made for.
        let existing = self
            .hs
            .get_state(room_id, self.bot(), "im.vector.modular.widgets", WIDGET_ID)
            .await
            .or_else(|e| if e.is_transient() { Err(e) } else { Ok(None) })?;
        let again = existing
            .as_ref()
            .filter(|w| w[TXN].as_str() == Some(txn.as_str()))
            .and_then(|w| w[CONFERENCE].as_str())
            .map(str::to_owned);
        let fresh = again.is_none();
        let name = again.unwrap_or_else(|| rules::conference_name(rand::random()));
        let plain = rules::conference_url(service, &video.base_url, &name);
        let base = url::Url::parse(&video.base_url).map_err(|_| Error::invalid("video base_url"))?;
        let host = base.host_str().unwrap_or_default().to_owned();
        let (counsellor_url, client_url) = match (&video.jwt_app_id, &video.jwt_secret) {
            (Some(app), Some(secret)) => {
                let me = json!({ "name": c.counsellor.display_name, "moderator": true });
                let guest = json!({ "moderator": false });
                let mine = jwt(app, secret, &host, &name, me)?;
                let theirs = jwt(app, secret, &host, &name, guest)?;
                (format!("{plain}?jwt={mine}"), format!("{plain}?jwt={theirs}"))
            }
            _ => (plain.clone(), plain.clone()),
        };
        // Element shows a Jitsi widget natively (with its own wrapper), which needs the
        // server at the root and no JWT; anything else is a custom widget of the link.
        let native = service == VideoService::Jitsi && video.jwt_secret.is_none() && base.path() == "/";
        let widget = if native {
            json!({
                "type": "jitsi", "url": counsellor_url, "name": "Videochat", "id": WIDGET_ID,
                "creatorUserId": self.bot(),
                "data": { "domain": host, "conferenceId": name, "isAudioOnly": false, "roomName": "Videochat", "title": "Videochat" },
            })
        } else {
            json!({
                "type": "m.custom", "url": counsellor_url, "name": "Videochat", "id": WIDGET_ID,
                "creatorUserId": self.bot(), "data": { "title": "Videochat" },
            })
        };
        let mut widget = widget;
        widget[TXN] = json!(txn.as_str());
        widget[CONFERENCE] = json!(name);
        if fresh {
            self.hs.set_state(room_id, self.bot(), "im.vector.modular.widgets", WIDGET_ID, &widget).await?;
        }
        let content = json!({
            "msgtype": "m.text",
            "body": format!("Videochat: {client_url}"),
            "format": "org.matrix.custom.html",
            "formatted_body": format!("<a href=\"{}\">Videochat öffnen</a>", super::html_escape(&client_url)),
            CARD: { "kind": "video", "href": client_url },
        });
        let event = self.send(c, room_id, txn, &content).await?;
        Ok((event, counsellor_url))
    }
}
