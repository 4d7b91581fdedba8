//! The middle test tier: the whole service (`assisto_appservice::start`) on a fresh SQLite
//! database in a temporary directory, against a mock homeserver ([`mock_hs`]), driven only
//! through its public HTTP surfaces — the Synapse module's check endpoint, the admin API,
//! the client-file API, the application-service API and the web embed's API. No Synapse,
//! no network beyond the loopback: each test takes well under a second or two.
//!
//! What a real homeserver decides (Synapse applying the module's verdicts, room state,
//! federation, the user directory) stays in the real-Synapse suite (`tests/`, crate
//! `assisto-tests`); the pure rules are unit-tested in `assisto-core`.
//!
//! Modules: [`mock_hs`] (the mock homeserver), [`rules`] (the module's questions),
//! [`client_file`], [`embed`] (the web embed's core), [`appservice_api`] (transactions),
//! [`event_path`] (what the homeserver may push, and a long backlog).

mod appservice_api;
mod client_file;
mod embed;
mod event_path;
mod mock_hs;
mod rules;

use std::time::Duration;

use assisto_appservice::{Config, Running};
use mock_hs::{MockHomeserver, SERVER_NAME};
use reqwest::Method;
use serde_json::{json, Value};

/// The tokens every test service runs with.
pub(crate) const AS_TOKEN: &str = "middle-as-token";
pub(crate) const HS_TOKEN: &str = "middle-hs-token";
pub(crate) const MODULE_TOKEN: &str = "middle-module-token";
pub(crate) const ADMIN_API_TOKEN: &str = "middle-admin-api-token";
pub(crate) const HS_ADMIN_TOKEN: &str = "middle-synapse-admin-token";

/// The bot's user ID.
pub(crate) fn bot() -> String {
    format!("@assisto:{SERVER_NAME}")
}

/// A user ID on the mock's server.
pub(crate) fn user(localpart: &str) -> String {
    format!("@{localpart}:{SERVER_NAME}")
}

/// Percent-encodes a path segment (user and room IDs in URLs).
pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Test output as `RUST_LOG` says (quiet by default).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// An institution made through the admin API.
pub(crate) struct Institution {
    /// Its slug.
    pub(crate) id: String,
    /// Its spaces and directory room by category (`live`, `clients`, `colleagues`, `groups`,
    /// `directory`).
    pub(crate) rooms: Value,
}

impl Institution {
    /// The room of a category.
    pub(crate) fn room(&self, category: &str) -> String {
        self.rooms[category]
            .as_str()
            .unwrap_or_else(|| panic!("no {category} room: {}", self.rooms))
            .to_owned()
    }
}

/// A service under test with its mock homeserver.
pub(crate) struct Service {
    /// The mock homeserver it talks to.
    pub(crate) hs: MockHomeserver,
    running: Option<Running>,
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// What a call answered: the status and the JSON body (`Null` if none).
pub(crate) type Answer = (u16, Value);

impl Service {
    /// Starts the service against a fresh mock homeserver.
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`Service::start`], with a chance to change the configuration first.
    pub(crate) async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_on(MockHomeserver::start().await, tweak).await
    }

    /// Starts the service against `hs`, prepared by the test (answers needed at start).
    pub(crate) async fn start_on(hs: MockHomeserver, tweak: impl FnOnce(&mut Config)) -> Self {
        init_logging();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.homeserver.url = hs.url();
        config.homeserver.server_name = SERVER_NAME.into();
        // Fail fast: a test that wants a failure gets it at once, not after backoff.
        config.homeserver.max_retries = 0;
        config.homeserver.request_timeout_secs = 5;
        config.homeserver.admin_token = Some(HS_ADMIN_TOKEN.into());
        config.appservice.bind = ([127, 0, 0, 1], 0).into();
        config.appservice.as_token = Some(AS_TOKEN.into());
        config.appservice.hs_token = Some(HS_TOKEN.into());
        config.appservice.module_token = Some(MODULE_TOKEN.into());
        config.appservice.admin_api_token = Some(ADMIN_API_TOKEN.into());
        config.database.url = format!("sqlite://{}", dir.path().join("assisto.db").display());
        config.files.dir = dir.path().join("files");
        tweak(&mut config);
        let running = assisto_appservice::start(config).await.expect("the service starts");
        let base = format!("http://{}", running.addr);
        Service { hs, running: Some(running), base, http: reqwest::Client::new(), _dir: dir }
    }

    /// The service's database.
    pub(crate) fn db(&self) -> &assisto_appservice::store::Db {
        &self.running.as_ref().expect("running").db
    }

    /// The service's metrics.
    pub(crate) fn metrics(&self) -> &assisto_appservice::app::metrics::Metrics {
        &self.running.as_ref().expect("running").metrics
    }

    /// Stops the service and checks that the mock knew every request it sent.
    pub(crate) async fn finish(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        self.hs.assert_all_matched();
    }

    /// One HTTP call to the service with an optional Bearer token and JSON body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::answer(req).await
    }

    /// One HTTP call with a raw body (for bodies that are not JSON).
    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::answer(req).await
    }

    async fn answer(req: reqwest::RequestBuilder) -> Answer {
        let r = req.send().await.expect("the service answers");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// The admin API (`/_assisto/admin/v1…`).
    pub(crate) async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call(method, &format!("/_assisto/admin/v1{path}"), Some(ADMIN_API_TOKEN), body).await
    }

    /// Creates an institution (its four spaces and directory room are created as the bot).
    pub(crate) async fn institution(&self, id: &str, name: &str) -> Institution {
        let (s, v) = self.admin(Method::POST, "/institutions", Some(json!({ "id": id, "name": name }))).await;
        assert_eq!(s, 201, "creating an institution: {v}");
        Institution { id: id.to_owned(), rooms: v["rooms"].clone() }
    }

    /// `POST /institutions` as it answers.
    pub(crate) async fn institution_raw(&self, id: &str, name: &str) -> Answer {
        self.admin(Method::POST, "/institutions", Some(json!({ "id": id, "name": name }))).await
    }

    /// Adds a counsellor (account created through the Synapse admin API); returns the user ID.
    pub(crate) async fn counsellor(&self, inst: &Institution, localpart: &str, name: &str) -> String {
        let body = json!({ "localpart": localpart, "display_name": name, "password": "ein-langes-passwort" });
        let (s, v) =
            self.admin(Method::POST, &format!("/institutions/{}/counsellors", inst.id), Some(body)).await;
        assert_eq!(s, 201, "adding a counsellor: {v}");
        v["user_id"].as_str().expect("user_id").to_owned()
    }

    /// Creates a client (a puppet); returns its user ID.
    pub(crate) async fn client(&self, inst: &Institution, name: &str) -> String {
        let path = format!("/institutions/{}/clients", inst.id);
        let (s, v) = self.admin(Method::POST, &path, Some(json!({ "display_name": name }))).await;
        assert_eq!(s, 201, "creating a client: {v}");
        v["user_id"].as_str().expect("user_id").to_owned()
    }

    /// Blocks (or unblocks) a client through the admin API.
    pub(crate) async fn block(&self, client: &str, blocked: bool) {
        let action = if blocked { "block" } else { "unblock" };
        let (s, v) = self.admin(Method::POST, &format!("/clients/{}/{action}", enc(client)), None).await;
        assert_eq!((s, v["blocked"].as_bool()), (200, Some(blocked)), "{v}");
    }

    /// The audit log's actions, newest first.
    pub(crate) async fn audit_actions(&self) -> Vec<String> {
        let (s, v) = self.admin(Method::GET, "/audit?limit=1000", None).await;
        assert_eq!(s, 200, "{v}");
        v.as_array()
            .expect("audit entries")
            .iter()
            .filter_map(|e| e["action"].as_str().map(str::to_owned))
            .collect()
    }

    /// Asks the rules as the Synapse module does; the answer must be a 200.
    pub(crate) async fn check(&self, question: Value) -> Value {
        let (s, v) =
            self.call(Method::POST, "/_assisto/module/v1/check", Some(MODULE_TOKEN), Some(question)).await;
        assert_eq!(s, 200, "the check endpoint answers: {v}");
        v
    }

    /// Pushes a transaction as the homeserver does.
    pub(crate) async fn push(&self, txn_id: &str, events: Value) -> Answer {
        let path = format!("/_matrix/app/v1/transactions/{txn_id}");
        self.call(Method::PUT, &path, Some(HS_TOKEN), Some(json!({ "events": events }))).await
    }
}

/// The room state the Synapse module sends along with a question.
pub(crate) fn room_state(
    kind: Option<&str>,
    institution: &str,
    creator: &str,
    join: &[&str],
    invite: &[&str],
) -> Value {
    let mut create = json!({ "de.assisto.institution": institution });
    if let Some(k) = kind {
        create["de.assisto.kind"] = json!(k);
    }
    json!({
        "create": create,
        "creator": creator,
        "members": { "join": join, "invite": invite, "knock": [] },
    })
}

/// Asserts a refusal: `M_FORBIDDEN`, the rule and the German explanation.
#[track_caller]
pub(crate) fn assert_refused(answer: &Value, rule: &str, german: &str) {
    assert_eq!(answer["allow"], false, "must be refused: {answer}");
    assert_eq!(answer["errcode"], "M_FORBIDDEN", "{answer}");
    assert_eq!(answer["rule"], rule, "{answer}");
    assert_eq!(answer["error"], german, "{answer}");
}

/// Asserts that the answer allows the action.
#[track_caller]
pub(crate) fn assert_allowed(answer: &Value) {
    assert_eq!(answer["allow"], true, "must be allowed: {answer}");
    assert!(answer.get("rule").is_none(), "{answer}");
}

/// Polls `check` until it holds, for at most 5 s.
pub(crate) async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The service's start: the bot is registered (as the application service) and named.
#[tokio::test]
async fn start_registers_the_bot_and_sets_its_display_name() {
    let svc = Service::start().await;
    let registered = svc.hs.wait_for("POST", "/_matrix/client/v3/register", 1).await;
    let r = &registered[0];
    assert_eq!(
        r.body,
        json!({ "type": "m.login.application_service", "username": "assisto", "inhibit_login": true })
    );
    assert_eq!(r.authorization.as_deref(), Some(format!("Bearer {AS_TOKEN}").as_str()), "with the as_token");
    let named = svc.hs.wait_for("PUT", &format!("/_matrix/client/v3/profile/{}/displayname", bot()), 1).await;
    assert_eq!(named[0].user_id(), Some(bot().as_str()), "as the bot itself");
    assert_eq!(named[0].body, json!({ "displayname": "assisto" }));
    svc.finish().await;
}

/// A bot that exists already (`M_USER_IN_USE`) is not an error: it is still named.
#[tokio::test]
async fn an_existing_bot_is_fine() {
    let hs = MockHomeserver::start().await;
    hs.mock_register().error(400, "M_USER_IN_USE", "User ID already taken.").mount().await;
    let svc = Service::start_on(hs, |c| c.bot.displayname = "assisto Beratung".into()).await;
    let named = svc.hs.wait_for("PUT", &format!("/_matrix/client/v3/profile/{}/displayname", bot()), 1).await;
    assert_eq!(named[0].body, json!({ "displayname": "assisto Beratung" }));
    assert_eq!(svc.hs.calls("POST", "/_matrix/client/v3/register").await.len(), 1, "not retried");
    svc.finish().await;
}

/// Provisioning through the admin API, as the homeserver sees it: the institution's rooms
/// made by the bot, the counsellor's account through the Synapse admin API (with its token),
/// the client as a puppet of the application service.
#[tokio::test]
async fn provisioning_asks_the_homeserver_as_the_right_users() {
    let svc = Service::start().await;
    let b = bot();
    let nord = svc.institution("nord", "Beratung Nord").await;
    let created = svc.hs.calls("POST", "/_matrix/client/v3/createRoom").await;
    assert_eq!(created.len(), 6, "four spaces, the directory room and the live-chat desk room");
    assert!(created.iter().all(|r| r.user_id() == Some(b.as_str())), "all as the bot");
    let spaces = created.iter().filter(|r| r.body["creation_content"]["type"] == "m.space").count();
    assert_eq!(spaces, 4);
    assert!(created.iter().all(|r| r.body["visibility"] == "private"));
    let (s, v) = svc.institution_raw("nord", "Beratung Nord").await;
    assert_eq!(s, 201, "repeating it is fine: {v}");
    assert_eq!(
        svc.hs.calls("POST", "/_matrix/client/v3/createRoom").await.len(),
        6,
        "and creates nothing new"
    );

    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let upsert = svc.hs.calls("PUT", &format!("/_synapse/admin/v2/users/{anna}")).await;
    assert_eq!(upsert.len(), 1);
    assert_eq!(upsert[0].authorization.as_deref(), Some(format!("Bearer {HS_ADMIN_TOKEN}").as_str()));
    assert_eq!(
        upsert[0].body,
        json!({"displayname": "Anna Berger", "admin": false, "password": "ein-langes-passwort"})
    );
    let rooms: Vec<String> =
        ["live", "clients", "colleagues", "groups", "directory"].map(|c| nord.room(c)).into();
    for room in &rooms {
        let invites = svc.hs.calls("POST", &format!("/_matrix/client/v3/rooms/{room}/invite")).await;
        assert!(invites
            .iter()
            .any(|r| r.user_id() == Some(b.as_str()) && r.body == json!({"user_id": anna})));
        let joins = svc.hs.calls("POST", &format!("/_matrix/client/v3/rooms/{room}/join")).await;
        assert!(joins.iter().any(|r| r.user_id() == Some(anna.as_str())), "Anna joins {room}");
    }

    let maria = svc.client(&nord, "Maria").await;
    assert!(maria.starts_with("@rs_"), "{maria}");
    let registered = svc.hs.calls("POST", "/_matrix/client/v3/register").await;
    let r = registered.last().expect("the puppet registered");
    assert_eq!(r.body["type"], "m.login.application_service");
    assert_eq!(user(r.body["username"].as_str().unwrap_or_default()), maria);
    let directory = nord.room("directory");
    let joins = svc.hs.calls("POST", &format!("/_matrix/client/v3/rooms/{directory}/join")).await;
    assert!(joins.iter().any(|r| r.user_id() == Some(maria.as_str())), "the puppet is in the directory room");

    // Refused input asks the homeserver nothing.
    let before = svc.hs.requests().await.len();
    let (s, _) =
        svc.admin(Method::POST, "/institutions/gibtsnicht/clients", Some(json!({"display_name": "X"}))).await;
    assert_eq!(s, 404);
    let body = json!({"localpart": "rs_falsch", "display_name": "X", "password": "ein-langes-passwort"});
    let (s, v) = svc.admin(Method::POST, "/institutions/nord/counsellors", Some(body)).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "a puppet's localpart: {v}");
    let (s, _) = svc.call(Method::GET, "/_assisto/admin/v1/institutions", Some("falsch"), None).await;
    assert_eq!(s, 403);
    assert_eq!(svc.hs.requests().await.len(), before);
    svc.finish().await;
}
