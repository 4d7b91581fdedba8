//! A mock homeserver for the middle tier, in the spirit of matrix-rust-sdk's
//! `MatrixMockServer` (`crates/matrix-sdk/src/test_utils/mocks/`): a [`wiremock`] server
//! that answers every endpoint of the client-server and Synapse admin APIs the service
//! calls with a plausible default, lets a test replace an answer
//! (`hs.mock_send().for_room(r).error(403, …).mount().await`), and records every request so
//! that a test asserts what the service sent (who it masqueraded as, which transaction ID,
//! which body).
//!
//! What the service calls is in `appservice/src/matrix/homeserver/` (one method per
//! endpoint) and in the few raw requests of the features (`/messages`, `/context`,
//! `/event`, `/typing`, `/receipt`, `/redact`). A request nothing here answers gets
//! `404 M_UNRECOGNIZED`, is printed, and is kept: [`MockHomeserver::assert_all_matched`]
//! fails the test, so a new call of the service is noticed, not silently answered.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wiremock::{Match, Mock, MockServer, Request, Respond, ResponseTemplate};

/// The mock's server name: the part after the colon in user and room IDs.
pub(crate) const SERVER_NAME: &str = "localhost";

/// Default answers are mounted at this priority; a test's own mocks (wiremock's default
/// priority 5) win over them.
const DEFAULT_PRIORITY: u8 = 100;

/// One request the service sent, decoded.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// `GET`, `PUT`, …
    pub(crate) method: String,
    /// The path segments after the leading `/`, percent-decoded.
    pub(crate) segments: Vec<String>,
    /// The query parameters, decoded.
    pub(crate) query: Vec<(String, String)>,
    /// The `Authorization` header, if any.
    pub(crate) authorization: Option<String>,
    /// The body as JSON (`Null` without one or if it is not JSON).
    pub(crate) body: Value,
}

impl Seen {
    pub(crate) fn from_request(r: &Request) -> Self {
        Seen {
            method: r.method.to_string(),
            segments: r.url.path().trim_start_matches('/').split('/').map(percent_decode).collect(),
            query: r.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
            authorization: r.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned),
            body: serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        }
    }

    /// The decoded path, `/`-joined (for messages).
    pub(crate) fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }

    /// A query parameter.
    pub(crate) fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whom the service masqueraded as (`user_id`).
    pub(crate) fn user_id(&self) -> Option<&str> {
        self.query("user_id")
    }

    /// The `i`-th path segment (0 is `_matrix` or `_synapse`).
    pub(crate) fn segment(&self, i: usize) -> &str {
        self.segments.get(i).map(String::as_str).unwrap_or_default()
    }

    /// Whether this is `method` on `pattern`: a path whose segments are literal or `*` (any
    /// one segment, compared after decoding, so room IDs are written as they are).
    pub(crate) fn is(&self, method: &str, pattern: &str) -> bool {
        self.method == method && segments_match(&pattern_segments(pattern), &self.segments)
    }
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path())?;
        if !self.query.is_empty() {
            let q: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            write!(f, "?{}", q.join("&"))?;
        }
        if !self.body.is_null() {
            write!(f, " {}", self.body)?;
        }
        Ok(())
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pattern_segments(pattern: &str) -> Vec<String> {
    pattern.trim_start_matches('/').split('/').map(str::to_owned).collect()
}

fn segments_match(pattern: &[String], segments: &[String]) -> bool {
    pattern.len() == segments.len() && pattern.iter().zip(segments).all(|(p, s)| p == "*" || p == s)
}

/// Matches `method` on a path pattern (see [`Seen::is`]) and, optionally, query parameters.
#[derive(Clone)]
struct Route {
    method: &'static str,
    pattern: Vec<String>,
    query: Vec<(String, String)>,
}

impl Match for Route {
    fn matches(&self, r: &Request) -> bool {
        let seen = Seen::from_request(r);
        seen.method == self.method
            && segments_match(&self.pattern, &seen.segments)
            && self.query.iter().all(|(k, v)| seen.query(k) == Some(v))
    }
}

type Responder = Arc<dyn Fn(&Request) -> ResponseTemplate + Send + Sync>;

/// A Matrix error answer.
pub(crate) fn matrix_error(status: u16, errcode: &str, error: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "errcode": errcode, "error": error }))
}

/// What the mock remembers between requests: display names and counters for IDs.
#[derive(Default)]
struct Memory {
    displaynames: Mutex<HashMap<String, String>>,
    rooms: AtomicU64,
    events: AtomicU64,
    media: AtomicU64,
}

/// The mock homeserver.
pub(crate) struct MockHomeserver {
    server: MockServer,
    memory: Arc<Memory>,
    unmatched: Arc<Mutex<Vec<Seen>>>,
}

/// One endpoint, to be answered by a test (`ok…`, `error`, `respond_with`) and mounted.
#[must_use = "an endpoint does nothing until it is answered and mounted"]
pub(crate) struct MockEndpoint<'a> {
    hs: &'a MockHomeserver,
    route: Route,
    ok: Responder,
}

impl<'a> MockEndpoint<'a> {
    /// Only requests for this room (the segment after `rooms`).
    pub(crate) fn for_room(mut self, room_id: &str) -> Self {
        if let Some(i) = self.route.pattern.iter().position(|s| s == "rooms") {
            self.route.pattern[i + 1] = room_id.to_owned();
        }
        self
    }

    /// Only requests made as this user (`user_id`, the application service's masquerade).
    pub(crate) fn for_user(self, user_id: &str) -> Self {
        self.with_query("user_id", user_id)
    }

    /// Only requests with this query parameter.
    pub(crate) fn with_query(mut self, key: &str, value: &str) -> Self {
        self.route.query.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The endpoint's usual success answer (what the defaults answer).
    pub(crate) fn ok(self) -> Answer<'a> {
        let ok = self.ok.clone();
        self.respond_with(move |r: &Request| ok(r))
    }

    /// A 200 with this JSON body.
    pub(crate) fn ok_json(self, body: Value) -> Answer<'a> {
        self.respond_with(ResponseTemplate::new(200).set_body_json(body))
    }

    /// A Matrix error.
    pub(crate) fn error(self, status: u16, errcode: &str, error: &str) -> Answer<'a> {
        self.respond_with(matrix_error(status, errcode, error))
    }

    /// Any answer.
    pub(crate) fn respond_with(self, responder: impl Respond + 'static) -> Answer<'a> {
        Answer { hs: self.hs, mock: Mock::given(self.route).respond_with(responder) }
    }
}

/// An answered endpoint, ready to mount.
#[must_use = "an answer does nothing until it is mounted"]
pub(crate) struct Answer<'a> {
    hs: &'a MockHomeserver,
    mock: Mock,
}

impl Answer<'_> {
    /// Answers only the first `n` matching requests (later ones fall through to the next
    /// mock, e.g. the default).
    pub(crate) fn up_to(self, n: u64) -> Self {
        Self { hs: self.hs, mock: self.mock.up_to_n_times(n) }
    }

    /// Wins over other mocks of a lower priority (1 is the highest; the default is 5).
    pub(crate) fn priority(self, p: u8) -> Self {
        Self { hs: self.hs, mock: self.mock.with_priority(p) }
    }

    /// Mounts it for the rest of the test.
    pub(crate) async fn mount(self) {
        self.hs.server.register(self.mock).await;
    }
}

impl MockHomeserver {
    /// Starts a mock homeserver with every default answer mounted.
    pub(crate) async fn start() -> Self {
        // Not from wiremock's pool: each test gets its own server, gone when it ends.
        let server = MockServer::builder().start().await;
        let hs = MockHomeserver { server, memory: Arc::default(), unmatched: Arc::default() };
        let defaults = [
            hs.mock_versions(),
            hs.mock_register(),
            hs.mock_set_displayname(),
            hs.mock_profile(),
            hs.mock_create_room(),
            hs.mock_invite(),
            hs.mock_join(),
            hs.mock_leave(),
            hs.mock_kick(),
            hs.mock_set_state(),
            hs.mock_state(),
            hs.mock_send(),
            hs.mock_messages(),
            hs.mock_context(),
            hs.mock_event(),
            hs.mock_typing(),
            hs.mock_receipt(),
            hs.mock_redact(),
            hs.mock_upload(),
            hs.mock_admin_upsert_user(),
            hs.mock_openid_userinfo(),
        ];
        for endpoint in defaults {
            endpoint.ok().priority(DEFAULT_PRIORITY).mount().await;
        }
        let unmatched = hs.unmatched.clone();
        Mock::given(wiremock::matchers::any())
            .respond_with(move |r: &Request| {
                let seen = Seen::from_request(r);
                eprintln!("mock homeserver: unmatched request {seen}");
                unmatched.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
                matrix_error(404, "M_UNRECOGNIZED", "Unrecognized request (mock homeserver)")
            })
            .with_priority(u8::MAX)
            .mount(&hs.server)
            .await;
        hs
    }

    /// The base URL (`homeserver.url`).
    pub(crate) fn url(&self) -> String {
        self.server.uri()
    }

    fn endpoint(
        &self,
        method: &'static str,
        pattern: &str,
        ok: impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static,
    ) -> MockEndpoint<'_> {
        MockEndpoint {
            hs: self,
            route: Route { method, pattern: pattern_segments(pattern), query: Vec::new() },
            ok: Arc::new(ok),
        }
    }

    fn json_ok(body: Value) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static {
        move |_| ResponseTemplate::new(200).set_body_json(body.clone())
    }

    /// `GET /_matrix/client/versions`.
    pub(crate) fn mock_versions(&self) -> MockEndpoint<'_> {
        self.endpoint(
            "GET",
            "/_matrix/client/versions",
            Self::json_ok(json!({ "versions": ["v1.11", "v1.12"] })),
        )
    }

    /// `POST /_matrix/client/v3/register` (`m.login.application_service`): the user named
    /// in the body.
    pub(crate) fn mock_register(&self) -> MockEndpoint<'_> {
        self.endpoint("POST", "/_matrix/client/v3/register", |r| {
            let username = Seen::from_request(r).body["username"].as_str().unwrap_or_default().to_owned();
            ResponseTemplate::new(200)
                .set_body_json(json!({ "user_id": format!("@{username}:{SERVER_NAME}") }))
        })
    }

    /// `PUT /_matrix/client/v3/profile/{userId}/displayname`: remembered for
    /// [`MockHomeserver::mock_profile`].
    pub(crate) fn mock_set_displayname(&self) -> MockEndpoint<'_> {
        let memory = self.memory.clone();
        self.endpoint("PUT", "/_matrix/client/v3/profile/*/displayname", move |r| {
            let seen = Seen::from_request(r);
            if let Some(name) = seen.body["displayname"].as_str() {
                let mut names = memory.displaynames.lock().unwrap_or_else(|p| p.into_inner());
                names.insert(seen.segment(4).to_owned(), name.to_owned());
            }
            ResponseTemplate::new(200).set_body_json(json!({}))
        })
    }

    /// `GET /_matrix/client/v3/profile/{userId}`: the display name set before (by the
    /// profile or the admin API), else `404 M_NOT_FOUND`.
    pub(crate) fn mock_profile(&self) -> MockEndpoint<'_> {
        let memory = self.memory.clone();
        self.endpoint("GET", "/_matrix/client/v3/profile/*", move |r| {
            let seen = Seen::from_request(r);
            let names = memory.displaynames.lock().unwrap_or_else(|p| p.into_inner());
            match names.get(seen.segment(4)) {
                Some(n) => ResponseTemplate::new(200).set_body_json(json!({ "displayname": n })),
                None => matrix_error(404, "M_NOT_FOUND", "Profile was not found"),
            }
        })
    }

    /// `POST /_matrix/client/v3/createRoom`: a new room ID each time (`!room<n>:localhost`).
    pub(crate) fn mock_create_room(&self) -> MockEndpoint<'_> {
        let memory = self.memory.clone();
        self.endpoint("POST", "/_matrix/client/v3/createRoom", move |_| {
            let n = memory.rooms.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(json!({ "room_id": format!("!room{n}:{SERVER_NAME}") }))
        })
    }

    /// `POST /_matrix/client/v3/rooms/{roomId}/invite`.
    pub(crate) fn mock_invite(&self) -> MockEndpoint<'_> {
        self.endpoint("POST", "/_matrix/client/v3/rooms/*/invite", Self::json_ok(json!({})))
    }

    /// `POST /_matrix/client/v3/rooms/{roomId}/join`: the room joined.
    pub(crate) fn mock_join(&self) -> MockEndpoint<'_> {
        self.endpoint("POST", "/_matrix/client/v3/rooms/*/join", |r| {
            let room = Seen::from_request(r).segment(4).to_owned();
            ResponseTemplate::new(200).set_body_json(json!({ "room_id": room }))
        })
    }

    /// `POST /_matrix/client/v3/rooms/{roomId}/leave`.
    pub(crate) fn mock_leave(&self) -> MockEndpoint<'_> {
        self.endpoint("POST", "/_matrix/client/v3/rooms/*/leave", Self::json_ok(json!({})))
    }

    /// `POST /_matrix/client/v3/rooms/{roomId}/kick`.
    pub(crate) fn mock_kick(&self) -> MockEndpoint<'_> {
        self.endpoint("POST", "/_matrix/client/v3/rooms/*/kick", Self::json_ok(json!({})))
    }

    /// `PUT /_matrix/client/v3/rooms/{roomId}/state/{type}/{stateKey}`: a new event ID.
    pub(crate) fn mock_set_state(&self) -> MockEndpoint<'_> {
        let memory = self.memory.clone();
        self.endpoint("PUT", "/_matrix/client/v3/rooms/*/state/*/*", move |_| {
            let n = memory.events.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(json!({ "event_id": format!("$state{n}") }))
        })
    }

    /// `GET /_matrix/client/v3/rooms/{roomId}/state/{type}/{stateKey}`: `404 M_NOT_FOUND`
    /// unless a test says otherwise.
    pub(crate) fn mock_state(&self) -> MockEndpoint<'_> {
        self.endpoint("GET", "/_matrix/client/v3/rooms/*/state/*/*", |_| {
            matrix_error(404, "M_NOT_FOUND", "Event not found.")
        })
    }

    /// `PUT /_matrix/client/v3/rooms/{roomId}/send/{type}/{txnId}`: an event ID derived
    /// from room, sender and transaction ID, so that a repeated send gets the same event ID
    /// (as Synapse de-duplicates it).
    pub(crate) fn mock_send(&self) -> MockEndpoint<'_> {
        self.endpoint("PUT", "/_matrix/client/v3/rooms/*/send/*/*", |r| {
            let seen = Seen::from_request(r);
            let key =
                format!("{}\n{}\n{}", seen.segment(4), seen.user_id().unwrap_or_default(), seen.segment(7));
            let id = hex_prefix(&key);
            ResponseTemplate::new(200).set_body_json(json!({ "event_id": format!("${id}") }))
        })
    }

    /// `GET /_matrix/client/v3/rooms/{roomId}/messages`: an empty timeline unless a test
    /// gives one ([`MockHomeserver::mock_timeline`]).
    pub(crate) fn mock_messages(&self) -> MockEndpoint<'_> {
        self.endpoint(
            "GET",
            "/_matrix/client/v3/rooms/*/messages",
            Self::json_ok(json!({ "chunk": [], "start": "t0" })),
        )
    }

    /// `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`: `404 M_NOT_FOUND` unless a
    /// test says otherwise.
    pub(crate) fn mock_context(&self) -> MockEndpoint<'_> {
        self.endpoint("GET", "/_matrix/client/v3/rooms/*/context/*", |_| {
            matrix_error(404, "M_NOT_FOUND", "Event not found.")
        })
    }

    /// `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`: `404 M_NOT_FOUND` unless a
    /// test says otherwise.
    pub(crate) fn mock_event(&self) -> MockEndpoint<'_> {
        self.endpoint("GET", "/_matrix/client/v3/rooms/*/event/*", |_| {
            matrix_error(404, "M_NOT_FOUND", "Event not found.")
        })
    }

    /// `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`.
    pub(crate) fn mock_typing(&self) -> MockEndpoint<'_> {
        self.endpoint("PUT", "/_matrix/client/v3/rooms/*/typing/*", Self::json_ok(json!({})))
    }

    /// `POST /_matrix/client/v3/rooms/{roomId}/receipt/{type}/{eventId}`.
    pub(crate) fn mock_receipt(&self) -> MockEndpoint<'_> {
        self.endpoint("POST", "/_matrix/client/v3/rooms/*/receipt/*/*", Self::json_ok(json!({})))
    }

    /// `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`.
    pub(crate) fn mock_redact(&self) -> MockEndpoint<'_> {
        let memory = self.memory.clone();
        self.endpoint("PUT", "/_matrix/client/v3/rooms/*/redact/*/*", move |_| {
            let n = memory.events.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(json!({ "event_id": format!("$redaction{n}") }))
        })
    }

    /// `POST /_matrix/media/v3/upload`: a new `mxc://` URI each time.
    pub(crate) fn mock_upload(&self) -> MockEndpoint<'_> {
        let memory = self.memory.clone();
        self.endpoint("POST", "/_matrix/media/v3/upload", move |_| {
            let n = memory.media.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200)
                .set_body_json(json!({ "content_uri": format!("mxc://{SERVER_NAME}/media{n}") }))
        })
    }

    /// `PUT /_synapse/admin/v2/users/{userId}` (create or update an account): the display
    /// name is remembered.
    pub(crate) fn mock_admin_upsert_user(&self) -> MockEndpoint<'_> {
        let memory = self.memory.clone();
        self.endpoint("PUT", "/_synapse/admin/v2/users/*", move |r| {
            let seen = Seen::from_request(r);
            if let Some(name) = seen.body["displayname"].as_str() {
                let mut names = memory.displaynames.lock().unwrap_or_else(|p| p.into_inner());
                names.insert(seen.segment(4).to_owned(), name.to_owned());
            }
            ResponseTemplate::new(201).set_body_json(json!({ "name": seen.segment(4) }))
        })
    }

    /// `GET /_matrix/federation/v1/openid/userinfo`: `401 M_UNKNOWN_TOKEN` for every token
    /// unless a test vouches for one ([`MockHomeserver::vouch_openid`]).
    pub(crate) fn mock_openid_userinfo(&self) -> MockEndpoint<'_> {
        self.endpoint("GET", "/_matrix/federation/v1/openid/userinfo", |_| {
            matrix_error(401, "M_UNKNOWN_TOKEN", "Access Token unknown or expired")
        })
    }

    /// The homeserver vouches for an OpenID token: it belongs to `user_id`.
    pub(crate) async fn vouch_openid(&self, token: &str, user_id: &str) {
        self.mock_openid_userinfo()
            .with_query("access_token", token)
            .ok_json(json!({ "sub": user_id }))
            .mount()
            .await;
    }

    /// The room's timeline as `/messages` (`dir=b`) answers it: `events` newest first, one page.
    pub(crate) async fn mock_timeline(&self, room_id: &str, events: Vec<Value>) {
        self.mock_messages()
            .for_room(room_id)
            .ok_json(json!({ "chunk": events, "start": "t1", "end": "t0" }))
            .up_to(1)
            .mount()
            .await;
    }

    /// Every request received so far, in order.
    pub(crate) async fn requests(&self) -> Vec<Seen> {
        self.server.received_requests().await.unwrap_or_default().iter().map(Seen::from_request).collect()
    }

    /// The requests of `method` on `pattern` (see [`Seen::is`]).
    pub(crate) async fn calls(&self, method: &str, pattern: &str) -> Vec<Seen> {
        self.requests().await.into_iter().filter(|r| r.is(method, pattern)).collect()
    }

    /// Waits until at least `n` requests of `method` on `pattern` arrived (the service
    /// works in the background), and returns them all.
    pub(crate) async fn wait_for(&self, method: &str, pattern: &str, n: usize) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let calls = self.calls(method, pattern).await;
            if calls.len() >= n {
                return calls;
            }
            if tokio::time::Instant::now() > deadline {
                let all: Vec<String> = self.requests().await.iter().map(ToString::to_string).collect();
                panic!(
                    "waited 5 s for {n} × {method} {pattern}, got {}; all requests:\n{}",
                    calls.len(),
                    all.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fails if the service sent anything the mock does not answer.
    pub(crate) fn assert_all_matched(&self) {
        let unmatched = self.unmatched.lock().unwrap_or_else(|p| p.into_inner());
        let list: Vec<String> = unmatched.iter().map(ToString::to_string).collect();
        assert!(
            list.is_empty(),
            "the service sent requests the mock homeserver does not know:\n{}",
            list.join("\n")
        );
    }
}

fn hex_prefix(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..12])
}
