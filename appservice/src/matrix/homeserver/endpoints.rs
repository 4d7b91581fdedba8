//! The client-server endpoints the service uses to act in rooms and on accounts, one
//! method each: registration, profiles, creating, joining and leaving rooms, invites and
//! kicks, sending events and state, media, OpenID and the appservice ping.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::matrix::homeserver::HomeserverClient;
use crate::matrix::homeserver::HsError;

/// A transaction ID for a send: unique across restarts, or derived from the event that
/// caused the send so that processing the same event again sends nothing twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnId(String);

impl TxnId {
    /// A fresh random ID.
    pub fn random() -> Self {
        Self(format!("assisto-{}", uuid::Uuid::new_v4().simple()))
    }

    /// The same ID every time for the same cause and purpose.
    pub fn derived(cause_event_id: &str, purpose: &str) -> Self {
        let mut h = Sha256::new();
        h.update(cause_event_id.as_bytes());
        h.update([0]);
        h.update(purpose.as_bytes());
        Self(format!("assisto-{}", hex::encode(&h.finalize()[..16])))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `POST /_matrix/client/v3/rooms/{roomId}/join` answer.
#[derive(Debug, Deserialize)]
pub struct JoinedRoom {
    /// The room joined.
    pub room_id: String,
}

/// `PUT …/rooms/{roomId}/send/…` and `PUT …/rooms/{roomId}/state/…` answer.
#[derive(Debug, Deserialize)]
pub struct SentEvent {
    /// The new event's ID.
    pub event_id: String,
}

const CS: [&str; 3] = ["_matrix", "client", "v3"];

impl HomeserverClient {
    /// `GET /_matrix/client/versions`: whether the homeserver answers.
    pub async fn versions(&self) -> Result<Value, HsError> {
        self.request(Method::GET, &["_matrix", "client", "versions"], &[], None, None).await
    }

    /// `POST /_matrix/client/v3/register`: registers a user of our namespace
    /// (`m.login.application_service`). An existing user is not an error.
    pub async fn register_appservice_user(&self, localpart: &str) -> Result<(), HsError> {
        let body = json!({
            "type": "m.login.application_service",
            "username": localpart,
            "inhibit_login": true,
        });
        let path = [CS[0], CS[1], CS[2], "register"];
        match self.request::<Value>(Method::POST, &path, &[], None, Some(&body)).await {
            Ok(_) => Ok(()),
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `PUT /_matrix/client/v3/profile/{userId}/displayname`: sets a user's display name (as
    /// that user).
    pub async fn set_displayname(&self, user_id: &str, name: &str) -> Result<(), HsError> {
        let path = [CS[0], CS[1], CS[2], "profile", user_id, "displayname"];
        let body = json!({ "displayname": name });
        self.request::<Value>(Method::PUT, &path, &[], Some(user_id), Some(&body)).await.map(|_| ())
    }

    /// `POST /_matrix/client/v3/rooms/{roomId}/join`: joins a room as `user_id`.
    pub async fn join_room(&self, room_id: &str, user_id: &str) -> Result<JoinedRoom, HsError> {
        let path = [CS[0], CS[1], CS[2], "rooms", room_id, "join"];
        self.request(Method::POST, &path, &[], Some(user_id), Some(&json!({}))).await
    }

    /// `POST /_matrix/client/v3/rooms/{roomId}/leave`: leaves (or rejects an invite to) a room
    /// as `user_id`.
    pub async fn leave_room(&self, room_id: &str, user_id: &str) -> Result<(), HsError> {
        let path = [CS[0], CS[1], CS[2], "rooms", room_id, "leave"];
        self.request::<Value>(Method::POST, &path, &[], Some(user_id), Some(&json!({}))).await.map(|_| ())
    }

    /// `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`: sends a message
    /// event as `user_id`.
    pub async fn send_event(
        &self,
        room_id: &str,
        user_id: &str,
        event_type: &str,
        txn: &TxnId,
        content: &Value,
    ) -> Result<SentEvent, HsError> {
        let path = [CS[0], CS[1], CS[2], "rooms", room_id, "send", event_type, txn.as_str()];
        self.request(Method::PUT, &path, &[], Some(user_id), Some(content)).await
    }

    /// `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}` with an `m.notice`
    /// (the bot's voice), as `user_id`.
    pub async fn send_notice(
        &self,
        room_id: &str,
        user_id: &str,
        txn: &TxnId,
        text: &str,
    ) -> Result<SentEvent, HsError> {
        let content = json!({ "msgtype": "m.notice", "body": text });
        self.send_event(room_id, user_id, "m.room.message", txn, &content).await
    }

    /// `POST /_matrix/client/v1/appservice/{appserviceId}/ping`: asks the homeserver to
    /// ping us, proving both directions work. Returns the round trip in milliseconds.
    pub async fn ping_via_homeserver(&self, appservice_id: &str) -> Result<u64, HsError> {
        let path = ["_matrix", "client", "v1", "appservice", appservice_id, "ping"];
        let body = json!({ "transaction_id": TxnId::random().as_str() });
        let v: Value = self.request(Method::POST, &path, &[], None, Some(&body)).await?;
        v["duration_ms"].as_u64().ok_or_else(|| HsError::Decode("no duration_ms".into()))
    }
}

#[cfg(test)]
mod tests {
    use crate::matrix::homeserver::endpoints::TxnId;

    #[test]
    fn derived_txn_ids_are_stable_and_distinct() {
        assert_eq!(TxnId::derived("$a", "reply"), TxnId::derived("$a", "reply"));
        assert_ne!(TxnId::derived("$a", "reply"), TxnId::derived("$b", "reply"));
        assert_ne!(TxnId::derived("$a", "reply"), TxnId::derived("$a", "join"));
        assert_ne!(TxnId::random(), TxnId::random());
    }
}

/// `POST /_matrix/client/v3/createRoom` answer.
#[derive(Debug, Deserialize)]
pub struct CreatedRoom {
    /// The new room.
    pub room_id: String,
}

impl HomeserverClient {
    /// `POST /_matrix/client/v3/createRoom`: creates a room as `user_id` with a `/createRoom`
    /// body.
    pub async fn create_room(&self, user_id: &str, body: &Value) -> Result<CreatedRoom, HsError> {
        let path = [CS[0], CS[1], CS[2], "createRoom"];
        self.request(Method::POST, &path, &[], Some(user_id), Some(body)).await
    }

    /// `POST /_matrix/client/v3/rooms/{roomId}/invite`: invites `target` into a room, as
    /// `user_id`. Already invited or joined is not an error.
    pub async fn invite(&self, room_id: &str, user_id: &str, target: &str) -> Result<(), HsError> {
        let path = [CS[0], CS[1], CS[2], "rooms", room_id, "invite"];
        let body = json!({ "user_id": target });
        match self.request::<Value>(Method::POST, &path, &[], Some(user_id), Some(&body)).await {
            Ok(_) => Ok(()),
            Err(HsError::Matrix { errcode, error, .. })
                if errcode == "M_FORBIDDEN"
                    && (error.contains("already in the room") || error.contains("already joined")) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /_matrix/client/v3/rooms/{roomId}/kick`: kicks `target` from a room, as
    /// `user_id`, with a reason the target sees.
    pub async fn kick(
        &self,
        room_id: &str,
        user_id: &str,
        target: &str,
        reason: &str,
    ) -> Result<(), HsError> {
        let path = [CS[0], CS[1], CS[2], "rooms", room_id, "kick"];
        let body = json!({ "user_id": target, "reason": reason });
        self.request::<Value>(Method::POST, &path, &[], Some(user_id), Some(&body)).await.map(|_| ())
    }

    /// `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`: sends a state
    /// event as `user_id`.
    pub async fn set_state(
        &self,
        room_id: &str,
        user_id: &str,
        event_type: &str,
        state_key: &str,
        content: &Value,
    ) -> Result<SentEvent, HsError> {
        let path = [CS[0], CS[1], CS[2], "rooms", room_id, "state", event_type, state_key];
        self.request(Method::PUT, &path, &[], Some(user_id), Some(content)).await
    }

    /// `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`: reads a state
    /// event's content (as `user_id`); `None` if there is none.
    pub async fn get_state(
        &self,
        room_id: &str,
        user_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Value>, HsError> {
        let path = [CS[0], CS[1], CS[2], "rooms", room_id, "state", event_type, state_key];
        match self.request(Method::GET, &path, &[], Some(user_id), None).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /_matrix/client/v3/profile/{userId}`: a user's display name, or `None` if the user
    /// does not exist.
    pub async fn displayname(&self, user_id: &str) -> Result<Option<String>, HsError> {
        self.displayname_as(user_id, None).await
    }

    /// `GET /_matrix/client/v3/profile/{userId}` as the user: their display name as they read
    /// it. Profile look-ups are limited to users who share a room, and a user may always read
    /// their own. `None` if the user does not exist.
    pub async fn own_displayname(&self, user_id: &str) -> Result<Option<String>, HsError> {
        match self.displayname_as(user_id, Some(user_id)).await {
            Err(HsError::Matrix { errcode, error, .. })
                if errcode == "M_FORBIDDEN" && error.contains("not registered") =>
            {
                Ok(None)
            }
            other => other,
        }
    }

    async fn displayname_as(&self, user_id: &str, as_user: Option<&str>) -> Result<Option<String>, HsError> {
        let path = [CS[0], CS[1], CS[2], "profile", user_id];
        match self.request::<Value>(Method::GET, &path, &[], as_user, None).await {
            Ok(v) => Ok(Some(v["displayname"].as_str().unwrap_or_default().to_owned())),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl HomeserverClient {
    /// Who an OpenID token (from `/user/{userId}/openid/request_token`) belongs to:
    /// `GET /_matrix/federation/v1/openid/userinfo`. `None` for an unknown or expired token.
    pub async fn openid_userinfo(&self, token: &str) -> Result<Option<String>, HsError> {
        let path = ["_matrix", "federation", "v1", "openid", "userinfo"];
        match self.request_unauthenticated::<Value>(Method::GET, &path, &[("access_token", token)]).await {
            Ok(v) => Ok(v["sub"].as_str().map(str::to_owned)),
            Err(HsError::Matrix { status, .. }) if status.as_u16() == 401 || status.as_u16() == 403 => {
                Ok(None)
            }
            Err(e) if e.errcode() == Some("M_UNKNOWN_TOKEN") || e.errcode() == Some("M_NOT_FOUND") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

impl HomeserverClient {
    /// Sends a request with a raw body (or none) as `user_id` and returns the raw answer;
    /// one attempt (uploads are not repeated behind the caller's back).
    async fn raw_once(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        user_id: &str,
        body: Option<(String, Vec<u8>)>,
    ) -> Result<reqwest::Response, HsError> {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|_| HsError::Transport("homeserver URL cannot be a base".into()))?
            .pop_if_empty()
            .extend(path);
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
            q.append_pair("user_id", user_id);
        }
        let mut req = self.inner.http.request(method, url).bearer_auth(&self.inner.as_token);
        if let Some((content_type, bytes)) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes);
        }
        let resp = req.send().await.map_err(|e| {
            HsError::Transport(if e.is_timeout() { "timeout".into() } else { "connection error".into() })
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let json: Value = resp.json().await.unwrap_or(Value::Null);
        Err(HsError::Matrix {
            status,
            errcode: json["errcode"].as_str().unwrap_or("M_UNKNOWN").to_owned(),
            error: json["error"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// `POST /_matrix/media/v3/upload`: uploads bytes to the media repository as `user_id`;
    /// returns the `mxc://` URI.
    ///
    /// Without a `filename`: the file's name (often personal) goes only into the event
    /// that carries the file, never into the request URI (which homeservers and proxies
    /// log) or the media repository's record.
    pub async fn upload_media(
        &self,
        user_id: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, HsError> {
        let path = ["_matrix", "media", "v3", "upload"];
        let resp =
            self.raw_once(Method::POST, &path, &[], user_id, Some((content_type.into(), bytes))).await?;
        let v: Value = resp.json().await.map_err(|e| HsError::Decode(e.to_string()))?;
        v["content_uri"].as_str().map(str::to_owned).ok_or_else(|| HsError::Decode("no content_uri".into()))
    }

    /// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`: downloads media
    /// (authenticated media API) as `user_id`: content type and bytes.
    pub async fn download_media(&self, user_id: &str, mxc: &str) -> Result<(String, bytes::Bytes), HsError> {
        let (server, id) = mxc
            .strip_prefix("mxc://")
            .and_then(|r| r.split_once('/'))
            .ok_or_else(|| HsError::Decode("not an mxc URI".into()))?;
        let path = ["_matrix", "client", "v1", "media", "download", server, id];
        let resp = self.raw_once(Method::GET, &path, &[], user_id, None).await?;
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = resp.bytes().await.map_err(|e| HsError::Transport(e.to_string()))?;
        Ok((content_type, bytes))
    }
}
