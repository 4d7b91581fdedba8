//! The integration-test harness: one real Synapse per test run, and a fresh `assisto` per
//! test.
//!
//! Synapse is started on first use (from the project's venv, configured by
//! `scripts/synapse_config.py`, the same generator `make run` uses) with several
//! application-service registrations, "slots". A test takes a free slot and runs its own
//! `assisto` on it, with a fresh database: SQLite by default, or a new PostgreSQL database
//! when `TEST_POSTGRES_URL` names a PostgreSQL server. Each slot has its own
//! namespaces (bot `assisto_s<k>`, counsellors `c<k>_…`, puppets `rs<k>_…`), so tests in
//! parallel never see each other's events. Synapse dies with the test process.

pub mod api;
pub mod bench;
pub mod browser;
pub mod embed;
pub mod matrix;
pub mod synapse;
pub mod traces;

use std::{future::Future, path::PathBuf, time::Duration};

use assisto_appservice::app::config::Config;

use assisto_appservice::app::config::LogFormat;

use assisto_appservice::Running;

pub use synapse::{synapse, Slot, SlotGuard};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Installs a log subscriber once: to the test's output as `RUST_LOG` says (quiet by
/// default), and everything at `info` and above into a buffer the tests can search
/// ([`captured_log`]), as a service's log file would hold it.
pub fn init_logging() {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};
    let shown = tracing_subscriber::fmt::layer()
        .with_test_writer()
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")));
    let captured = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(|| LogCapture)
        .with_filter(EnvFilter::new("info"));
    let _ = tracing_subscriber::registry().with(shown).with(captured).try_init();
}

static CAPTURED_LOG: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// What the in-process services of this test run logged at `info` and above (the newest
/// 32 MiB).
pub fn captured_log() -> String {
    String::from_utf8_lossy(&CAPTURED_LOG.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

struct LogCapture;

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut log = CAPTURED_LOG.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() + buf.len() > 32 << 20 {
            let half = log.len() / 2;
            log.drain(..half);
        }
        log.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh database URL for one test.
pub async fn fresh_database_url(dir: &std::path::Path) -> String {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            let name = format!("assisto_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .expect("connecting to TEST_POSTGRES_URL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("creating a test database");
            let mut url = url::Url::parse(&admin).expect("TEST_POSTGRES_URL is a URL");
            url.set_path(&name);
            url.to_string()
        }
        _ => format!("sqlite://{}", dir.join("assisto.db").display()),
    }
}

/// The admin HTTP API token every test service is configured with.
pub const ADMIN_API_TOKEN: &str = "test-admin-api-token";

/// A test's own `assisto`, on a slot of the shared Synapse.
pub struct TestService {
    /// The slot (released when the service is dropped).
    pub slot: SlotGuard,
    /// The configuration it runs with.
    pub config: Config,
    /// The running in-process service, if started in-process.
    pub running: Option<Running>,
    _dir: tempfile::TempDir,
}

impl TestService {
    /// Takes a slot and starts `assisto` in-process on it.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`TestService::start`], with a chance to change the configuration first.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut svc = Self::prepare(tweak).await;
        svc.resume().await;
        svc
    }

    /// Like [`TestService::start`], with `appservice.public_url` set to the service's own
    /// address (the widgets are placed only then).
    pub async fn start_public() -> Self {
        let mut svc = Self::prepare(|_| {}).await;
        svc.config.appservice.public_url = Some(svc.url());
        svc.resume().await;
        svc
    }

    /// Takes a slot and prepares a configuration without starting anything.
    pub async fn prepare(tweak: impl FnOnce(&mut Config)) -> Self {
        init_logging();
        let hs = synapse();
        let slot = synapse::acquire_slot().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.homeserver.url = hs.url.clone();
        config.homeserver.server_name = "localhost".into();
        config.homeserver.max_retries = 3;
        config.appservice.bind = ([127, 0, 0, 1], slot.port).into();
        config.appservice.registration = slot.registration_path.clone();
        config.database.url = fresh_database_url(dir.path()).await;
        config.files.dir = dir.path().join("files");
        config.bot.localpart = slot.bot_localpart.clone();
        config.namespaces.client_prefix = slot.client_prefix.clone();
        config.namespaces.guest_prefix = slot.guest_prefix.clone();
        config.namespaces.counsellor_regex = format!("{}.*", slot.counsellor_prefix);
        config.logging.format = LogFormat::Text;
        config.appservice.module_token = Some(slot.module_token.clone());
        config.appservice.admin_api_token = Some(ADMIN_API_TOKEN.to_owned());
        config.homeserver.admin_token = Some(matrix::admin_token().await);
        // The harness's clients sync only now and then, unlike Element: their presence
        // would flicker. The live-chat tests of presence switch it on.
        config.live.presence = false;
        tweak(&mut config);
        TestService { slot, config, running: None, _dir: dir }
    }

    /// Starts the in-process service with the current configuration.
    pub async fn resume(&mut self) {
        assert!(self.running.is_none(), "already running");
        // The previous listener may take a moment to release the port.
        let mut last = None;
        for _ in 0..50 {
            match assisto_appservice::start(self.config.clone()).await {
                Ok(r) => {
                    self.running = Some(r);
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("starting assisto failed: {:?}", last);
    }

    /// Stops the in-process service (gracefully).
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    /// How many document files the service's file store holds (all clients).
    pub fn stored_documents(&self) -> usize {
        fn walk(dir: &std::path::Path) -> usize {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum()
                })
                .unwrap_or(0)
        }
        walk(&self.config.files.dir.join("documents"))
    }

    /// The running service.
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("service is running")
    }

    /// The base URL where the homeserver reaches this service.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.slot.port)
    }

    /// The bot's user ID.
    pub fn bot(&self) -> String {
        format!("@{}:localhost", self.slot.bot_localpart)
    }

    /// A fresh counsellor localpart of this slot's namespace.
    pub fn counsellor_localpart(&self, name: &str) -> String {
        format!("{}{}_{}", self.slot.counsellor_prefix, name, &uuid::Uuid::new_v4().simple().to_string()[..8])
    }

    /// Environment variables that configure the `assisto` binary like this service.
    pub fn env(&self) -> Vec<(String, String)> {
        let c = &self.config;
        vec![
            ("ASSISTO_HOMESERVER__URL".into(), c.homeserver.url.clone()),
            ("ASSISTO_HOMESERVER__SERVER_NAME".into(), c.homeserver.server_name.clone()),
            ("ASSISTO_APPSERVICE__BIND".into(), c.appservice.bind.to_string()),
            ("ASSISTO_APPSERVICE__REGISTRATION".into(), c.appservice.registration.display().to_string()),
            ("ASSISTO_DATABASE__URL".into(), c.database.url.clone()),
            ("ASSISTO_FILES__DIR".into(), c.files.dir.display().to_string()),
            ("ASSISTO_BOT__LOCALPART".into(), c.bot.localpart.clone()),
            ("ASSISTO_NAMESPACES__CLIENT_PREFIX".into(), c.namespaces.client_prefix.clone()),
            ("ASSISTO_NAMESPACES__GUEST_PREFIX".into(), c.namespaces.guest_prefix.clone()),
            ("ASSISTO_NAMESPACES__COUNSELLOR_REGEX".into(), c.namespaces.counsellor_regex.clone()),
            ("ASSISTO_PROCESSING__PAUSED".into(), c.processing.paused.to_string()),
            (
                "ASSISTO_APPSERVICE__MODULE_TOKEN".into(),
                c.appservice.module_token.clone().unwrap_or_default(),
            ),
            ("ASSISTO_HOMESERVER__ADMIN_TOKEN".into(), c.homeserver.admin_token.clone().unwrap_or_default()),
            (
                "ASSISTO_APPSERVICE__ADMIN_API_TOKEN".into(),
                c.appservice.admin_api_token.clone().unwrap_or_default(),
            ),
            ("ASSISTO_FILES__MAX_DOCUMENT_BYTES".into(), c.files.max_document_bytes.to_string()),
            ("ASSISTO_LIVE__PRESENCE".into(), c.live.presence.to_string()),
        ]
    }

    /// Starts the real `assisto` binary as a separate process with this configuration.
    pub async fn spawn_binary(&self) -> tokio::process::Child {
        let bin = assisto_binary();
        let mut cmd = tokio::process::Command::new(&bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ASSISTO_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env()).env("RUST_LOG", "warn").kill_on_drop(true);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let url = format!("{}/health", self.url());
        let http = reqwest::Client::new();
        eventually("the assisto process to listen", Duration::from_secs(30), || {
            let req = http.get(&url).send();
            async move { req.await.ok().map(|_| ()) }
        })
        .await;
        child
    }

    /// An HTTP client set up to talk to this service as the homeserver does.
    pub fn as_homeserver(&self) -> HomeserverSide {
        HomeserverSide {
            http: reqwest::Client::new(),
            base: format!("{}/_matrix/app/v1", self.url()),
            hs_token: self.slot.hs_token.clone(),
        }
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        if self.running.is_some() {
            // Dropped without stop(): the runtime is going away, tasks end with it.
            self.running.take();
        }
    }
}

/// An institution set up through the admin API, with counsellors that can log in.
pub struct TestInstitution {
    /// Slug.
    pub id: String,
    /// Spaces and directory room by category.
    pub rooms: serde_json::Value,
}

impl TestService {
    /// Sets a counsellor's live-chat status through the admin API (`online`, `busy`,
    /// `not_online`, `not_selectable`).
    pub async fn set_status(&self, user_id: &str, status: &str) {
        let path = format!("/counsellors/{}/status", matrix::enc(user_id));
        let (s, v) =
            self.admin(reqwest::Method::PUT, &path, Some(serde_json::json!({ "status": status }))).await;
        assert_eq!(s, 200, "setting {user_id}'s status: {v}");
    }

    /// The counsellor sends a bot command into `room` and waits for the bot's answer
    /// containing `needle`.
    pub async fn command(&self, c: &matrix::TestUser, room: &str, cmd: &str, needle: &str) {
        c.send_text(&matrix::rid(room), cmd).await;
        let bot = self.bot();
        eventually(&format!("an answer to {cmd:?} with {needle:?}"), Duration::from_secs(20), || async {
            c.recent_messages(&matrix::rid(room), 10)
                .await
                .iter()
                .any(|(s, b)| *s == bot && b.contains(needle))
                .then_some(())
        })
        .await;
    }

    /// A client chat of `c` with a new client named `name` (Element's "Start chat"), once
    /// the bot has joined it: the room and the client.
    pub async fn client_chat(
        &self,
        inst: &TestInstitution,
        c: &matrix::TestUser,
        name: &str,
    ) -> (String, String) {
        let client = self.client(inst, name).await;
        let (s, v) = c.create_room_raw(serde_json::json!({"invite": [client], "is_direct": true})).await;
        assert_eq!(s, 200, "{v}");
        let room = v["room_id"].as_str().expect("room").to_owned();
        let bot = self.bot();
        eventually("the bot in the client chat", Duration::from_secs(20), || async {
            c.joined_members(&matrix::rid(&room)).await.contains(&bot).then_some(())
        })
        .await;
        (room, client)
    }

    /// A room of the counsellor with the bot (for commands), once the bot has joined.
    pub async fn room_with_bot(&self, c: &matrix::TestUser) -> String {
        let bot = self.bot();
        let room = c.create_room(&[&bot]).await;
        eventually("the bot to join", Duration::from_secs(20), || async {
            c.joined_members(&room).await.contains(&bot).then_some(())
        })
        .await;
        room.to_string()
    }

    /// Calls the admin API; returns status and JSON body.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}/_assisto/admin/v1{path}", self.url()))
            .bearer_auth(ADMIN_API_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("admin request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// A room's kind as the service recorded it (admin API), if it is managed.
    pub async fn room_kind(&self, inst: &str, room_id: &str) -> Option<String> {
        let (_, rooms) = self.admin(reqwest::Method::GET, &format!("/institutions/{inst}/rooms"), None).await;
        rooms
            .as_array()?
            .iter()
            .find(|r| r["room_id"] == room_id)
            .and_then(|r| r["kind"].as_str().map(str::to_owned))
    }

    /// Creates an institution through the admin API.
    pub async fn institution(&self, name: &str) -> TestInstitution {
        let id = format!("inst-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (s, v) = self
            .admin(reqwest::Method::POST, "/institutions", Some(serde_json::json!({"id": id, "name": name})))
            .await;
        assert_eq!(s, 201, "creating an institution: {v}");
        TestInstitution { id, rooms: v["rooms"].clone() }
    }

    /// A counsellor who is also a server admin of the homeserver (Synapse lets admins past
    /// its spam checks, and the rules module lets them through too): registered as admin,
    /// made a counsellor of `inst` without a password, logged in.
    pub async fn admin_counsellor(&self, inst: &TestInstitution, name: &str) -> matrix::TestUser {
        let localpart = self.counsellor_localpart(&name.to_lowercase().replace(' ', "."));
        let password = format!("pw-{}", uuid::Uuid::new_v4());
        matrix::register_user(&localpart, &password, true).await;
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                &format!("/institutions/{}/counsellors", inst.id),
                Some(serde_json::json!({"localpart": localpart, "display_name": name})),
            )
            .await;
        assert_eq!(s, 201, "making an admin a counsellor: {v}");
        matrix::TestUser::login(&localpart, &password).await
    }

    /// Adds a counsellor (account created through the admin API) and logs in.
    pub async fn counsellor(&self, inst: &TestInstitution, name: &str) -> matrix::TestUser {
        self.counsellor_in(inst, name, &[]).await
    }

    /// Adds a counsellor of `departments` (account created through the admin API) and
    /// logs in.
    pub async fn counsellor_in(
        &self,
        inst: &TestInstitution,
        name: &str,
        departments: &[&str],
    ) -> matrix::TestUser {
        let localpart = self.counsellor_localpart(&name.to_lowercase().replace(' ', "."));
        let password = format!("pw-{}", uuid::Uuid::new_v4());
        let body = serde_json::json!({
            "localpart": localpart, "display_name": name, "password": password, "departments": departments,
        });
        let (s, v) = self
            .admin(reqwest::Method::POST, &format!("/institutions/{}/counsellors", inst.id), Some(body))
            .await;
        assert_eq!(s, 201, "adding a counsellor: {v}");
        matrix::TestUser::login(&localpart, &password).await
    }

    /// Creates a department through the admin API; returns its ID.
    pub async fn department(&self, inst: &TestInstitution, name: &str) -> String {
        let path = format!("/institutions/{}/departments", inst.id);
        let (s, v) = self.admin(reqwest::Method::POST, &path, Some(serde_json::json!({"name": name}))).await;
        assert_eq!(s, 201, "creating a department: {v}");
        v["id"].as_str().expect("id").to_owned()
    }

    /// Creates a client; returns the puppet's user ID.
    pub async fn client(&self, inst: &TestInstitution, name: &str) -> String {
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                &format!("/institutions/{}/clients", inst.id),
                Some(serde_json::json!({"display_name": name})),
            )
            .await;
        assert_eq!(s, 201, "creating a client: {v}");
        v["user_id"].as_str().expect("user_id").to_owned()
    }

    /// The homeserver client as this service uses it (with its admin token; also to act as
    /// puppets like the bridge).
    pub fn hs_client(&self) -> assisto_appservice::matrix::homeserver::HomeserverClient {
        assisto_appservice::matrix::homeserver::HomeserverClient::new(
            &self.config.homeserver,
            self.slot.as_token.clone(),
            assisto_appservice::app::metrics::Metrics::new(),
        )
        .expect("client")
    }
}

/// The `assisto` binary built next to the test binary.
pub fn assisto_binary() -> PathBuf {
    // Several checkouts sharing one target directory overwrite each other's binary: a run
    // may name its own.
    if let Some(b) = std::env::var_os("TEST_ASSISTO_BIN") {
        return PathBuf::from(b);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // A test: target/debug/deps/it-… → target/debug/assisto; a binary of this crate (the
    // benchmarks): target/release/embed-bench → target/release/assisto.
    let own_dir = exe.parent().expect("target dir");
    let candidates =
        [own_dir.join("assisto"), own_dir.parent().map(|d| d.join("assisto")).unwrap_or_default()];
    candidates.into_iter().find(|b| b.is_file()).unwrap_or_else(|| {
        panic!("assisto not found beside {}: run `cargo build -p assisto-appservice` first", exe.display())
    })
}

/// Talks to a service as the homeserver would.
pub struct HomeserverSide {
    /// The client.
    pub http: reqwest::Client,
    /// `…/_matrix/app/v1`.
    pub base: String,
    /// The right token.
    pub hs_token: String,
}

impl HomeserverSide {
    /// `PUT /transactions/{txn}` with the right token; returns status and JSON body.
    pub async fn push(&self, txn_id: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .http
            .put(format!("{}/transactions/{txn_id}", self.base))
            .bearer_auth(&self.hs_token)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }
}

/// A message event as the homeserver would push it.
pub fn message_event(event_id: &str, room_id: &str, sender: &str, body: &str) -> serde_json::Value {
    serde_json::json!({
        "event_id": event_id,
        "room_id": room_id,
        "sender": sender,
        "type": "m.room.message",
        "origin_server_ts": 1_700_000_000_000u64,
        "content": {"msgtype": "m.text", "body": body},
    })
}
