//! Real Matrix users for tests: registered through Synapse's shared-secret admin API and
//! logged in with `matrix-sdk`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use matrix_sdk::{
    config::SyncSettings,
    ruma::{OwnedRoomId, RoomId},
    Client,
};
use serde_json::{json, Value};
use sha1::Sha1;

use crate::synapse::synapse;

static ADMIN_TOKEN: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// An access token of a Synapse admin account (created once per test run).
pub async fn admin_token() -> String {
    ADMIN_TOKEN
        .get_or_init(|| async {
            let localpart = format!("admin_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
            let password = format!("pw-{}", uuid::Uuid::new_v4());
            register_user(&localpart, &password, true).await;
            login_token(&localpart, &password).await
        })
        .await
        .clone()
}

/// Logs in with a password and returns the access token.
pub async fn login_token(localpart: &str, password: &str) -> String {
    login_token_on(synapse(), localpart, password).await
}

/// Logs in on the given homeserver and returns the access token.
pub async fn login_token_on(hs: &crate::synapse::Synapse, localpart: &str, password: &str) -> String {
    let body = json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": password,
    });
    let r: Value = reqwest::Client::new()
        .post(format!("{}/_matrix/client/v3/login", hs.url))
        .json(&body)
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login json");
    r["access_token"].as_str().unwrap_or_else(|| panic!("login failed: {r}")).to_owned()
}

/// Registers a user with a password (admin or not) and returns the user ID.
pub async fn register_user(localpart: &str, password: &str, admin: bool) -> String {
    register_user_on(synapse(), localpart, password, admin).await
}

/// Registers a user on the given homeserver and returns the user ID.
pub async fn register_user_on(
    hs: &crate::synapse::Synapse,
    localpart: &str,
    password: &str,
    admin: bool,
) -> String {
    let http = reqwest::Client::new();
    let url = format!("{}/_synapse/admin/v1/register", hs.url);
    let nonce: Value = http.get(&url).send().await.expect("nonce").json().await.expect("nonce json");
    let nonce = nonce["nonce"].as_str().expect("nonce").to_owned();
    let mut mac = Hmac::<Sha1>::new_from_slice(hs.shared_secret.as_bytes()).expect("hmac key");
    mac.update(nonce.as_bytes());
    mac.update(b"\0");
    mac.update(localpart.as_bytes());
    mac.update(b"\0");
    mac.update(password.as_bytes());
    mac.update(b"\0");
    mac.update(if admin { b"admin".as_slice() } else { b"notadmin".as_slice() });
    let body = json!({
        "nonce": nonce, "username": localpart, "password": password, "admin": admin,
        "mac": hex::encode(mac.finalize().into_bytes()),
    });
    let r = http.post(&url).json(&body).send().await.expect("register");
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "registering {localpart} failed: {status} {v}");
    v["user_id"].as_str().expect("user_id").to_owned()
}

/// A logged-in `matrix-sdk` client for a fresh user.
pub struct TestUser {
    /// The user ID.
    pub user_id: String,
    /// The client.
    pub client: Client,
}

impl TestUser {
    /// Registers `localpart` and logs in.
    pub async fn new(localpart: &str) -> Self {
        let password = format!("pw-{}", uuid::Uuid::new_v4());
        let user_id = register_user(localpart, &password, false).await;
        let client =
            Client::builder().homeserver_url(&synapse().url).build().await.expect("matrix-sdk client");
        client
            .matrix_auth()
            .login_username(localpart, &password)
            .initial_device_display_name("assisto tests")
            .send()
            .await
            .expect("login");
        TestUser { user_id, client }
    }

    /// Logs in as an existing user.
    pub async fn login(localpart: &str, password: &str) -> Self {
        let client =
            Client::builder().homeserver_url(&synapse().url).build().await.expect("matrix-sdk client");
        client.matrix_auth().login_username(localpart, password).send().await.expect("login");
        let user_id = client.user_id().expect("logged in").to_string();
        TestUser { user_id, client }
    }

    /// Calls the client-server API directly (for requests whose refusal the test inspects):
    /// returns status and JSON body.
    pub async fn raw(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let token = self.client.access_token().expect("logged in");
        let mut req =
            reqwest::Client::new().request(method, format!("{}{path}", synapse().url)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A Matrix OpenID token of this user (what a widget gets with `get_openid`).
    pub async fn openid_token(&self) -> String {
        let path = format!("/_matrix/client/v3/user/{}/openid/request_token", enc(&self.user_id));
        let (s, v) = self.raw(reqwest::Method::POST, &path, Some(json!({}))).await;
        assert_eq!(s, 200, "{v}");
        v["access_token"].as_str().expect("token").to_owned()
    }

    /// `POST /createRoom` with a raw body; returns status and JSON.
    pub async fn create_room_raw(&self, body: Value) -> (u16, Value) {
        self.raw(reqwest::Method::POST, "/_matrix/client/v3/createRoom", Some(body)).await
    }

    /// `POST /rooms/{room}/upgrade` to `version`; returns status and JSON.
    pub async fn upgrade_raw(&self, room_id: &str, version: &str) -> (u16, Value) {
        let path = format!("/_matrix/client/v3/rooms/{}/upgrade", enc(room_id));
        self.raw(reqwest::Method::POST, &path, Some(json!({"new_version": version}))).await
    }

    /// Invites `target`; returns status and JSON (a refusal is not a panic).
    pub async fn invite_raw(&self, room_id: &str, target: &str) -> (u16, Value) {
        let path = format!("/_matrix/client/v3/rooms/{}/invite", enc(room_id));
        self.raw(reqwest::Method::POST, &path, Some(json!({"user_id": target}))).await
    }

    /// Searches the user directory; returns the user IDs found.
    pub async fn search_users(&self, term: &str) -> Vec<String> {
        let (_, v) = self
            .raw(
                reqwest::Method::POST,
                "/_matrix/client/v3/user_directory/search",
                Some(json!({"search_term": term, "limit": 50})),
            )
            .await;
        v["results"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["user_id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// Creates a private room and invites `invitees`.
    pub async fn create_room(&self, invitees: &[&str]) -> OwnedRoomId {
        use matrix_sdk::ruma::{api::client::room::create_room::v3::Request, OwnedUserId};
        let mut req = Request::new();
        req.invite = invitees.iter().map(|u| OwnedUserId::try_from(*u).expect("user id")).collect();
        let room = self.client.create_room(req).await.expect("create room");
        room.room_id().to_owned()
    }

    /// Syncs once so the client knows its rooms.
    pub async fn sync_once(&self) {
        self.client
            .sync_once(SyncSettings::default().timeout(Duration::from_millis(500)))
            .await
            .expect("sync");
    }

    /// Sends a text message and returns its event ID.
    pub async fn send_text(&self, room_id: &RoomId, body: &str) -> String {
        use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
        let room = self.room(room_id).await;
        let r = room.send(RoomMessageEventContent::text_plain(body)).await.expect("send");
        r.response.event_id.to_string()
    }

    /// The room, syncing until the client knows it.
    pub async fn room(&self, room_id: &RoomId) -> matrix_sdk::Room {
        for _ in 0..50 {
            if let Some(r) = self.client.get_room(room_id) {
                return r;
            }
            self.sync_once().await;
        }
        panic!("room {room_id} never appeared for {}", self.user_id);
    }

    /// Joined members of a room as the server sees them now.
    pub async fn joined_members(&self, room_id: &RoomId) -> Vec<String> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/joined_members",
            url::form_urlencoded::byte_serialize(room_id.as_str().as_bytes()).collect::<String>()
        );
        let v = self.raw_get(&path).await;
        v["joined"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
    }

    /// The latest `limit` message bodies of a room with their senders, newest first,
    /// straight from the server.
    pub async fn recent_messages(&self, room_id: &RoomId, limit: u32) -> Vec<(String, String)> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit={limit}",
            url::form_urlencoded::byte_serialize(room_id.as_str().as_bytes()).collect::<String>()
        );
        let v = self.raw_get(&path).await;
        v["chunk"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["type"] == "m.room.message")
                    .map(|e| {
                        (
                            e["sender"].as_str().unwrap_or_default().to_owned(),
                            e["content"]["body"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// GET on the client-server API as this user.
    /// `PUT /rooms/{room}/state/{type}/{key}` with a raw body; returns status and JSON.
    pub async fn put_state_raw(&self, room_id: &str, kind: &str, key: &str, content: Value) -> (u16, Value) {
        let path = format!("/_matrix/client/v3/rooms/{}/state/{}/{}", enc(room_id), kind, enc(key));
        self.raw(reqwest::Method::PUT, &path, Some(content)).await
    }

    /// A state event's content as this user reads it (`Null` if unreadable).
    pub async fn state(&self, room_id: &str, kind: &str, key: &str) -> Value {
        self.raw_get(&format!("/_matrix/client/v3/rooms/{}/state/{}/{}", enc(room_id), kind, enc(key))).await
    }

    pub async fn raw_get(&self, path: &str) -> Value {
        let token = self.client.access_token().expect("logged in");
        reqwest::Client::new()
            .get(format!("{}{path}", synapse().url))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .unwrap_or(Value::Null)
    }
}

/// Percent-encodes a path segment.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A room ID from text (panics on an invalid one: test input).
pub fn rid(s: &str) -> OwnedRoomId {
    OwnedRoomId::try_from(s).expect("room id")
}

/// The joined members of a room, as `user` sees them now.
pub async fn joined(user: &TestUser, room: &str) -> Vec<String> {
    user.joined_members(&rid(room)).await
}
