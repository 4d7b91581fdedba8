//! The one struct every route sees: the feature services, and per audience what only that
//! audience's routes need (the homeserver's token and the ingest state for the AS API, the
//! product APIs' tokens and the OpenID cache for the web).

use std::sync::Arc;

use crate::app::config::Config;
use crate::app::metrics::Metrics;
use crate::features::deletion::Deleter;
use crate::features::institutions::Provisioning;
use crate::features::live::LiveDesk;
use crate::features::rooms::checks::Checker;
use crate::matrix::homeserver::HomeserverClient;
use crate::matrix::ingest::IngestState;
use crate::matrix::processor::Processor;
use crate::store::Db;
use crate::web::openid_cache::OpenIdCache;

/// What every route may use.
pub struct Services {
    /// The configuration.
    pub config: Arc<Config>,
    /// The database.
    pub db: Db,
    /// The homeserver client.
    pub hs: HomeserverClient,
    /// The processor, woken after each recorded transaction.
    pub processor: Processor,
    /// Metrics.
    pub metrics: Metrics,
    /// `@bot:server`.
    pub bot_user_id: String,
    /// The rules' facts and verdicts.
    pub checker: Checker,
    /// Institutions, departments, people.
    pub provisioning: Provisioning,
    /// The deletion routine.
    pub deleter: Deleter,
    /// The live-chat desk.
    pub live: LiveDesk,
    /// The counsellor tools.
    pub tools: crate::features::tools::Tools,
    /// Chat exports.
    pub export: crate::features::export::Exporter,
    /// Search.
    pub search: crate::features::search::Search,
    /// The dashboard's counters.
    pub counters: crate::features::counters::Counters,
    /// Statistics.
    pub statistics: crate::features::statistics::StatisticsService,
    /// What the homeserver's routes need.
    pub as_api: AsApiState,
    /// What the product's routes need.
    pub web: WebState,
}

/// The AS API's own state.
pub struct AsApiState {
    /// The hs_token, as its SHA-256 (compared in constant time).
    pub hs_token_digest: [u8; 32],
    /// Records transactions one at a time (the homeserver sends one at a time anyway).
    pub ingest: tokio::sync::Mutex<IngestState>,
}

/// The product APIs' own state.
pub struct WebState {
    /// The module token's digest, if configured.
    pub module_token_digest: Option<[u8; 32]>,
    /// The admin API token's digest, if configured.
    pub admin_token_digest: Option<[u8; 32]>,
    /// Verified OpenID tokens of counsellors.
    pub openid: OpenIdCache,
}
