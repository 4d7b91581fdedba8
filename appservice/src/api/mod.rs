//! The HTTP side: the application-service API the homeserver calls (one file per
//! endpoint), plus `/health` and `/metrics` for operators.

mod admin;
mod auth;
pub mod client_file;
mod documents;
mod module_check;
mod openid;
mod ops;
mod ping;
mod push_events;
mod query_room;
mod query_user;
mod thirdparty;

use std::sync::Arc;

use axum::{
    routing::{get, post, put},
    Router,
};

use crate::{
    config::Config, db::Db, error::MatrixError, homeserver::HomeserverClient, metrics::Metrics,
    processor::Processor,
};

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
    pub checker: crate::domain::checks::Checker,
    /// Provisioning for the admin API.
    pub provisioning: crate::domain::provisioning::Provisioning,
    /// Verified OpenID tokens of counsellors.
    pub openid: openid::OpenIdCache,
}

/// The whole router.
pub fn router(state: Arc<AppState>) -> Router {
    let app_api = Router::new()
        .route("/transactions/{txn_id}", put(push_events::push_events_route))
        .route("/ping", post(ping::ping_route))
        .route("/users/{user_id}", get(query_user::query_user_route))
        .route("/rooms/{room_alias}", get(query_room::query_room_route))
        .route("/thirdparty/protocol/{protocol}", get(thirdparty::protocol_route))
        .route("/thirdparty/user/{protocol}", get(thirdparty::user_route))
        .route("/thirdparty/location/{protocol}", get(thirdparty::location_route))
        .route("/thirdparty/user", get(thirdparty::user_reverse_route))
        .route("/thirdparty/location", get(thirdparty::location_reverse_route))
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_hs_token));
    Router::new()
        .nest("/_matrix/app/v1", app_api)
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

async fn method_not_allowed() -> MatrixError {
    MatrixError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "M_UNRECOGNIZED",
        "Method not allowed for this endpoint",
    )
}

pub use push_events::IngestState;

/// Parses a JSON request body: `M_NOT_JSON` for what is not JSON, `M_BAD_JSON` (with
/// `invalid` before serde's explanation) for JSON of the wrong shape.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    invalid: &str,
    not_json: &str,
) -> Result<T, MatrixError> {
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            MatrixError::bad_json(format!("{invalid}: {e}"))
        } else {
            MatrixError::not_json(not_json.to_owned())
        }
    })
}

/// The digest the auth middleware compares against.
pub fn auth_digest(hs_token: &str) -> [u8; 32] {
    auth::digest(hs_token)
}
