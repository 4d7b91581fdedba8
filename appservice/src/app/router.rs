//! The HTTP side: the application-service API the homeserver calls (one file per
//! endpoint), plus `/health` and `/metrics` for operators.

use std::sync::Arc;

use crate::features::client_file::routes as client_file;
use crate::matrix::as_api::transactions as push_events;
use crate::matrix::module_api as module_check;
use crate::web::{admin, openid, ops};

use axum::{
    routing::{get, post},
    Router,
};

use crate::app::config::Config;
use crate::app::metrics::Metrics;
use crate::matrix::homeserver::HomeserverClient;
use crate::matrix::processor::Processor;
use crate::store::Db;
use crate::web::error::MatrixError;

/// What every handler may use.
pub struct AppState {
    /// The configuration.
    pub config: Arc<Config>,
    /// The hs_token, as its SHA-256 (compared in constant time).
    pub hs_token_digest: [u8; 32],
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
    /// Records transactions one at a time (the homeserver sends one at a time anyway).
    pub ingest: tokio::sync::Mutex<push_events::IngestState>,
    /// The module token's digest, if configured.
    pub module_token_digest: Option<[u8; 32]>,
    /// The admin API token's digest, if configured.
    pub admin_token_digest: Option<[u8; 32]>,
    /// Answers the Synapse module.
    pub checker: crate::features::rooms::checks::Checker,
    /// Provisioning for the admin API.
    pub provisioning: crate::features::institutions::Provisioning,
    /// Verified OpenID tokens of counsellors.
    pub openid: openid::OpenIdCache,
}

/// The whole router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .nest("/_matrix/app/v1", crate::matrix::as_api::routes(&state))
        .route("/_assisto/module/v1/check", post(module_check::check_route))
        .nest("/_assisto/admin/v1", admin::routes())
        .nest("/_assisto/client-file/v1", client_file::routes(&state.config.files))
        .route("/_assisto/widget/mappe", get(client_file::widget_route))
        .route("/health", get(ops::health_route))
        .route("/metrics", get(ops::metrics_route))
        .fallback(unrecognized)
        .with_state(state)
}

async fn unrecognized() -> MatrixError {
    MatrixError::unrecognized()
}

pub use push_events::IngestState;
