//! The application-service API (`/_matrix/app/v1`), one file per endpoint, behind the
//! hs_token check.

mod auth;
pub mod ping;
pub mod query_room;
pub mod query_user;
pub mod thirdparty;
pub mod transactions;

use std::sync::Arc;

use axum::{
    routing::{get, post, put},
    Router,
};

use crate::app::services::Services;
use crate::web::error::MatrixError;

/// The application-service routes (nested under `/_matrix/app/v1`).
pub fn routes(state: &Arc<Services>) -> Router<Arc<Services>> {
    Router::new()
        .route("/transactions/{txn_id}", put(transactions::push_events_route))
        .route("/ping", post(ping::ping_route))
        .route("/users/{user_id}", get(query_user::query_user_route))
        .route("/rooms/{room_alias}", get(query_room::query_room_route))
        .route("/thirdparty/protocol/{protocol}", get(thirdparty::protocol_route))
        .route("/thirdparty/user/{protocol}", get(thirdparty::user_route))
        .route("/thirdparty/location/{protocol}", get(thirdparty::location_route))
        .route("/thirdparty/user", get(thirdparty::user_reverse_route))
        .route("/thirdparty/location", get(thirdparty::location_reverse_route))
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_hs_token))
}

async fn method_not_allowed() -> MatrixError {
    MatrixError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "M_UNRECOGNIZED",
        "Method not allowed for this endpoint",
    )
}
