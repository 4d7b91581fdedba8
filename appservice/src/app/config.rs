//! Configuration: one struct, loaded from a YAML file and then overridden by `ASSISTO_…`
//! environment variables (`__` separates levels: `ASSISTO_DATABASE__URL`).
//!
//! Every field is documented here and in `docs/operations.md`. Secrets (the tokens) are
//! never printed: [`Config`]'s `Debug` output redacts them.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    providers::{Env, Format, Serialized},
    Figment,
};
use serde::{Deserialize, Serialize};

/// The whole configuration of an `assisto` process.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The homeserver this application service belongs to.
    pub homeserver: HomeserverConfig,
    /// The application-service side: where Synapse reaches us and with which tokens.
    pub appservice: AppserviceConfig,
    /// The project's own database.
    pub database: DatabaseConfig,
    /// The bot user that creates and administers managed rooms.
    pub bot: BotConfig,
    /// The user-ID namespaces of puppets (written into the registration).
    pub namespaces: NamespaceConfig,
    /// How events from the inbox are processed.
    pub processing: ProcessingConfig,
    /// Log output.
    pub logging: LoggingConfig,
    /// The deletion routine.
    pub deletion: DeletionConfig,
    /// The file store (documents of the client file).
    pub files: FilesConfig,
    /// The live-chat desk's timings.
    pub live: LiveConfig,
    /// The search index.
    pub search: SearchConfig,
    /// The statistics.
    pub statistics: StatisticsConfig,
}

/// The statistics.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatisticsConfig {
    /// Counts from 1 to one below this are shown as "< N" (re-identification protection, as
    /// German church and welfare data-protection rules expect); 1 shows every count.
    pub min_count: u64,
}

impl Default for StatisticsConfig {
    fn default() -> Self {
        Self { min_count: 5 }
    }
}

/// The search index (embedded: a directory of files, no server).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Directory of the index (created with mode 0700). It can always be rebuilt from the
    /// homeserver (`assisto search reindex`), so it needs no backup. Empty (the default):
    /// `assisto-search` beside the file store's directory.
    pub dir: PathBuf,
}

/// The live-chat desk's timings (per department settings live in the database).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// How often offers, reminders, grace periods and abandoned chats are looked at, in
    /// milliseconds.
    pub tick_ms: u64,
    /// A counsellor who went not online, not selectable or offline keeps their open live
    /// chats this long (seconds); then they go back to the queue.
    pub grace_secs: u64,
    /// A visitor waiting in the queue without an open page (WebSocket or long poll) for
    /// this long (seconds) has left: the chat is closed as abandoned.
    pub abandon_after_secs: u64,
    /// The response reminder turns yellow after this many seconds without an answer …
    pub reminder_yellow_secs: u32,
    /// … and red after this many.
    pub reminder_red_secs: u32,
    /// Whether the homeserver's presence counts: a counsellor whose Element is closed (or
    /// who logged out) is then not available. Switch it off only where the homeserver's
    /// presence is off (`presence.enabled: false` in Synapse): then the status alone counts.
    pub presence: bool,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            tick_ms: 1000,
            grace_secs: 120,
            abandon_after_secs: 300,
            reminder_yellow_secs: 120,
            reminder_red_secs: 300,
            presence: true,
        }
    }
}

/// The deletion routine (Löschroutine).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeletionConfig {
    /// How often due deletions are looked for, in seconds.
    pub check_interval_secs: u64,
    /// Deletion period of new institutions, in seconds (each institution can change it).
    pub default_period_secs: i64,
}

impl Default for DeletionConfig {
    fn default() -> Self {
        Self { check_interval_secs: 60, default_period_secs: 30 * 86_400 }
    }
}

/// The file store.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Directory of the file store (created with mode 0700 by the service). Back it up with
    /// the database. Empty (the default): `assisto-files` beside the SQLite database; with
    /// PostgreSQL it must be set.
    pub dir: PathBuf,
    /// Largest document of the client file, in bytes.
    pub max_document_bytes: u64,
    /// Most documents in one upload.
    pub max_documents_per_upload: usize,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self { dir: PathBuf::new(), max_document_bytes: 20 * 1024 * 1024, max_documents_per_upload: 10 }
    }
}

/// Where the homeserver is and how we talk to it.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeserverConfig {
    /// Base URL of the homeserver's client-server API, e.g. `http://localhost:8008`.
    pub url: String,
    /// The homeserver's server name: the part after the colon in user IDs.
    pub server_name: String,
    /// Timeout of one HTTP request to the homeserver, in seconds.
    pub request_timeout_secs: u64,
    /// How often one request is retried after a 5xx answer or a connection error.
    pub max_retries: u32,
    /// Access token of a Synapse admin account, for the admin API (creating counsellor
    /// accounts, deleting rooms and media). Secret; optional.
    pub admin_token: Option<String>,
}

impl Default for HomeserverConfig {
    fn default() -> Self {
        Self {
            url: "http://localhost:8008".into(),
            server_name: "localhost".into(),
            request_timeout_secs: 30,
            max_retries: 5,
            admin_token: None,
        }
    }
}

impl fmt::Debug for HomeserverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HomeserverConfig")
            .field("url", &self.url)
            .field("server_name", &self.server_name)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("max_retries", &self.max_retries)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The application-service listener and its tokens.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppserviceConfig {
    /// Address the HTTP listener binds to (application-service API, `/metrics`, `/health`).
    pub bind: SocketAddr,
    /// Path of the registration file shared with the homeserver. The tokens are read from it
    /// unless `as_token` / `hs_token` are set here (or by environment).
    pub registration: PathBuf,
    /// Token we use towards the homeserver. Overrides the registration file's. Secret.
    pub as_token: Option<String>,
    /// Token the homeserver uses towards us. Overrides the registration file's. Secret.
    pub hs_token: Option<String>,
    /// Token the Synapse module uses to ask for rule decisions
    /// (`/_assisto/module/v1/check`). Secret; without it that endpoint refuses everything.
    pub module_token: Option<String>,
    /// Token for the admin HTTP API (`/_assisto/admin/v1/…`). Secret; without it the admin
    /// API refuses everything.
    pub admin_api_token: Option<String>,
    /// Largest accepted transaction body in bytes; the default is the largest transaction
    /// Synapse can send ([`LARGEST_SYNAPSE_TRANSACTION`]). A larger one is not refused
    /// (the homeserver would retry it forever): it is recorded as a dead letter.
    pub max_body_bytes: usize,
    /// The base URL at which counsellors' browsers reach this service (for the client-file
    /// widget in client chats, e.g. `https://assisto.example.org`). Without it no widget is
    /// added.
    pub public_url: Option<String>,
}

/// Synapse's largest event (canonical JSON; `MAX_PDU_SIZE`), and its largest EDU and
/// to-device content (`SOFT_MAX_EDU_SIZE`, `MAX_TO_DEVICE_CONTENT_SIZE`).
const SYNAPSE_MAX_EVENT: usize = 64 * 1024;

/// The largest transaction body Synapse sends to an application service (it encodes it as
/// canonical JSON, so nothing grows by escaping): per transaction at most 100 events, 100
/// ephemeral events and 100 to-device messages (`synapse/appservice/scheduler.py`). An
/// event as sent is its PDU, plus in `unsigned` the content it replaced (`prev_content`,
/// at most an event's size) and, once redacted, the redaction (`redacted_because`, an
/// event); 4 KiB covers the other fields. Ephemeral events go under the stable key and
/// MSC2409's unstable one; to-device messages carry their addressing. 1 MiB covers the
/// MSC3202 device lists and key counts and the envelope. About 39 MiB.
pub const LARGEST_SYNAPSE_TRANSACTION: usize = {
    let events = 100 * (3 * SYNAPSE_MAX_EVENT + 4 * 1024);
    let ephemeral = 2 * 100 * SYNAPSE_MAX_EVENT;
    let to_device = 100 * (SYNAPSE_MAX_EVENT + 1024);
    events + ephemeral + to_device + 1024 * 1024
};

impl Default for AppserviceConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8009)),
            registration: PathBuf::from("registration.yaml"),
            as_token: None,
            hs_token: None,
            module_token: None,
            admin_api_token: None,
            max_body_bytes: LARGEST_SYNAPSE_TRANSACTION,
            public_url: None,
        }
    }
}

impl fmt::Debug for AppserviceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |t: &Option<String>| t.as_ref().map(|_| "<redacted>");
        f.debug_struct("AppserviceConfig")
            .field("bind", &self.bind)
            .field("registration", &self.registration)
            .field("as_token", &redact(&self.as_token))
            .field("hs_token", &redact(&self.hs_token))
            .field("module_token", &redact(&self.module_token))
            .field("admin_api_token", &redact(&self.admin_api_token))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// The project's own database.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/assisto.db` (created if missing) or `postgres://user:pw@host/db`.
    pub url: String,
    /// Largest number of pooled connections.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: "sqlite://assisto.db".into(), max_connections: 8 }
    }
}

impl DatabaseConfig {
    /// The file of a SQLite database (`sqlite://PATH`, `sqlite:PATH`, with or without
    /// `?options`); `None` for PostgreSQL and in-memory databases.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.url.strip_prefix("sqlite://").or_else(|| self.url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A PostgreSQL URL may carry a password.
        let url = match url::Url::parse(&self.url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("redacted"));
                u.to_string()
            }
            _ => self.url.clone(),
        };
        f.debug_struct("DatabaseConfig")
            .field("url", &url)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// The bot user.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotConfig {
    /// Localpart of the bot (`assisto` → `@assisto:server`). Must be the registration's
    /// `sender_localpart`.
    pub localpart: String,
    /// Display name the bot is given at start.
    pub displayname: String,
    /// Time zone in which counsellors give and read times (appointments), an IANA name.
    pub timezone: String,
}

impl Default for BotConfig {
    fn default() -> Self {
        Self { localpart: "assisto".into(), displayname: "assisto".into(), timezone: "Europe/Berlin".into() }
    }
}

/// Prefixes of puppet localparts. Both namespaces are exclusive: nobody but this service
/// may register or log in as such a user.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceConfig {
    /// Prefix of registered clients' puppets (`rs_` → `@rs_<opaque id>:server`).
    pub client_prefix: String,
    /// Prefix of anonymous live-chat guests' puppets (`guest_` → `@guest_<n>:server`).
    pub guest_prefix: String,
    /// Regex (without `@` and `:server`) of the counsellors' localparts, a non-exclusive
    /// namespace so that the service sees their rooms and may act for them.
    pub counsellor_regex: String,
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        Self {
            client_prefix: "rs_".into(),
            guest_prefix: "guest_".into(),
            counsellor_regex: "[a-z0-9._=/+-]+".into(),
        }
    }
}

impl NamespaceConfig {
    /// Whether a localpart falls within the counsellor namespace, matched whole as the
    /// homeserver matches `@<regex>:server`.
    pub fn is_counsellor(&self, localpart: &str) -> Result<bool, ConfigError> {
        let re = regex::Regex::new(&format!("^(?:{})$", self.counsellor_regex))
            .map_err(|e| ConfigError::Check(format!("namespaces.counsellor_regex: {e}")))?;
        Ok(re.is_match(localpart))
    }
}

/// Event processing.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingConfig {
    /// How often one event is tried before it becomes a dead letter.
    pub max_attempts: u32,
    /// How many rooms are processed at the same time (events of one room are always
    /// processed one after another, in order).
    pub concurrency: usize,
    /// Accept and record transactions, but process nothing (maintenance; the inbox
    /// keeps everything until processing is resumed by a restart without this flag).
    pub paused: bool,
    /// How long the IDs of processed events are kept for de-duplication, in hours.
    /// Their content is dropped as soon as they are processed.
    pub dedup_retention_hours: u64,
    /// At most this many events are in memory for processing; the rest of a backlog waits
    /// in the inbox and is read as these finish, so memory stays flat however long it is.
    pub window_events: usize,
    /// At most about this many bytes of events (as received) are in memory for processing.
    pub window_bytes: usize,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            concurrency: 32,
            paused: false,
            dedup_retention_hours: 24 * 7,
            window_events: 4096,
            window_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Log output.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,assisto_appservice=debug`.
    /// `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable holds an invalid value.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// A value is well-formed but not usable.
    #[error("invalid configuration: {0}")]
    Check(String),
}

/// YAML for figment through `serde_norway` (figment's own YAML provider is built on the
/// deprecated `serde_yaml`).
struct Yaml;

impl Format for Yaml {
    type Error = serde_norway::Error;

    const NAME: &'static str = "YAML";

    fn from_str<T: serde::de::DeserializeOwned>(string: &str) -> Result<T, Self::Error> {
        serde_norway::from_str(string)
    }
}

impl Config {
    /// Loads defaults, then `path` (if given; it must exist), then `ASSISTO_…` variables.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = path {
            if !p.exists() {
                return Err(ConfigError::Check(format!("config file {} not found", p.display())));
            }
            fig = fig.merge(Yaml::file(p));
        }
        let mut cfg: Config = fig
            .merge(Env::prefixed("ASSISTO_").split("__").ignore(&["config"]))
            .extract()
            .map_err(Box::new)?;
        // Shown as it is used (check-config); when it cannot be derived, check() says why.
        if let Ok(dir) = cfg.files_dir() {
            cfg.files.dir = dir;
        }
        if let Ok(dir) = cfg.search_dir() {
            cfg.search.dir = dir;
        }
        cfg.check()?;
        Ok(cfg)
    }

    /// The file store's directory: `files.dir`, or `assisto-files` beside the SQLite
    /// database when it is empty. Never the working directory of whoever starts the
    /// The service's user-ID namespaces (who is the bot, who is a puppet).
    pub fn ids(&self) -> assisto_core::ids::Ids {
        let ns = &self.namespaces;
        assisto_core::ids::Ids::new(
            &self.homeserver.server_name,
            &self.bot.localpart,
            &ns.client_prefix,
            &ns.guest_prefix,
        )
    }

    /// process (unless the database itself lies there).
    pub fn files_dir(&self) -> Result<PathBuf, ConfigError> {
        if !self.files.dir.as_os_str().is_empty() {
            return Ok(self.files.dir.clone());
        }
        let db = self.database.sqlite_path().ok_or_else(|| {
            ConfigError::Check(
                "files.dir must be set (the file store's directory; only with a SQLite database \
                 file does it default to assisto-files beside it)"
                    .into(),
            )
        })?;
        Ok(db.parent().unwrap_or(Path::new("")).join("assisto-files"))
    }

    /// The search index's directory: `search.dir`, or `assisto-search` beside the file
    /// store's directory.
    pub fn search_dir(&self) -> Result<PathBuf, ConfigError> {
        if !self.search.dir.as_os_str().is_empty() {
            return Ok(self.search.dir.clone());
        }
        let files = self.files_dir()?;
        Ok(files.parent().unwrap_or(Path::new("")).join("assisto-search"))
    }

    /// Checks what serde cannot.
    pub fn check(&self) -> Result<(), ConfigError> {
        url::Url::parse(&self.homeserver.url)
            .map_err(|e| ConfigError::Check(format!("homeserver.url: {e}")))?;
        if self.homeserver.server_name.is_empty() {
            return Err(ConfigError::Check("homeserver.server_name is empty".into()));
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres")) {
            return Err(ConfigError::Check("database.url must start with sqlite: or postgres://".into()));
        }
        if self.bot.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ConfigError::Check(format!(
                "bot.timezone: unknown time zone {:?}",
                self.bot.timezone
            )));
        }
        if self.processing.max_attempts == 0 || self.processing.concurrency == 0 {
            return Err(ConfigError::Check(
                "processing.max_attempts and processing.concurrency must be at least 1".into(),
            ));
        }
        for (name, p) in [
            ("client_prefix", &self.namespaces.client_prefix),
            ("guest_prefix", &self.namespaces.guest_prefix),
        ] {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                return Err(ConfigError::Check(format!(
                    "namespaces.{name} must be non-empty and use only a-z, 0-9 and _"
                )));
            }
        }
        self.namespaces.is_counsellor("")?;
        self.files_dir()?;
        if self.files.max_document_bytes == 0 || self.files.max_documents_per_upload == 0 {
            return Err(ConfigError::Check(
                "files.max_document_bytes and files.max_documents_per_upload must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::app::config::*;

    #[test]
    fn the_counsellor_namespace_is_matched_whole() {
        let mut ns = NamespaceConfig { counsellor_regex: "c1_.*".into(), ..NamespaceConfig::default() };
        assert!(ns.is_counsellor("c1_anna").expect("valid"));
        assert!(!ns.is_counsellor("0").expect("valid"));
        assert!(!ns.is_counsellor("xc1_anna").expect("valid"));
        ns.counsellor_regex = "[a-z".into();
        assert!(ns.is_counsellor("a").is_err());
        let mut cfg = Config::default();
        assert!(cfg.check().is_ok());
        cfg.namespaces = ns;
        assert!(cfg.check().is_err());
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let mut cfg = Config::default();
        cfg.appservice.as_token = Some("very-secret-as".into());
        cfg.appservice.hs_token = Some("very-secret-hs".into());
        cfg.database.url = "postgres://u:hunter2@db/assisto".into();
        let s = format!("{cfg:?}");
        assert!(!s.contains("very-secret"), "{s}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("redacted"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment::Error
    fn env_overrides_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "homeserver:\n  server_name: example.org\nprocessing:\n  concurrency: 3\n")
            .expect("write");
        figment::Jail::expect_with(|jail| {
            jail.set_env("ASSISTO_PROCESSING__CONCURRENCY", "7");
            let cfg = Config::load(Some(&p)).expect("load");
            assert_eq!(cfg.homeserver.server_name, "example.org");
            assert_eq!(cfg.processing.concurrency, 7);
            Ok(())
        });
    }

    #[test]
    fn files_dir_defaults_to_beside_the_sqlite_database() {
        let mut cfg = Config::default();
        cfg.database.url = "sqlite:///var/lib/assisto/assisto.db?mode=rwc".into();
        assert_eq!(cfg.files_dir().expect("dir"), PathBuf::from("/var/lib/assisto/assisto-files"));
        cfg.database.url = "sqlite:data/assisto.db".into();
        assert_eq!(cfg.files_dir().expect("dir"), PathBuf::from("data/assisto-files"));
        // The default database lies in the working directory, and so its files.
        assert_eq!(Config::default().files_dir().expect("dir"), PathBuf::from("assisto-files"));
        cfg.files.dir = "/srv/files".into();
        assert_eq!(cfg.files_dir().expect("dir"), PathBuf::from("/srv/files"));
        // Without a database file there is nothing to put it beside.
        for url in ["postgres://u@db/assisto", "sqlite::memory:"] {
            let mut cfg = Config::default();
            cfg.database.url = url.into();
            let e = cfg.check().expect_err("no files.dir").to_string();
            assert!(e.contains("files.dir must be set"), "{e}");
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment::Error
    fn load_fills_in_files_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.yaml");
        let db = dir.path().join("data").join("assisto.db");
        std::fs::write(&p, format!("database:\n  url: sqlite://{}\n", db.display())).expect("write");
        figment::Jail::expect_with(|_| {
            let cfg = Config::load(Some(&p)).expect("load");
            assert_eq!(cfg.files.dir, dir.path().join("data").join("assisto-files"));
            Ok(())
        });
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "homeserver:\n  servername: typo\n").expect("write");
        assert!(Config::load(Some(&p)).is_err());
        std::fs::write(&p, "database:\n  url: mysql://x\n").expect("write");
        let e = Config::load(Some(&p)).expect_err("mysql refused").to_string();
        assert!(e.contains("database.url"), "{e}");
    }
}
