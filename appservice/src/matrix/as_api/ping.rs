//! # `POST /_matrix/app/v1/ping`
//!
//! The homeserver checks that it reaches us with the right `hs_token`
//! (spec: `application-service/ping.yaml`).

use axum::Json;
use serde_json::{json, Value};

/// Answers `{}`; reaching this handler means the token was right.
pub(super) async fn ping_route() -> Json<Value> {
    tracing::debug!("ping from the homeserver");
    Json(json!({}))
}
