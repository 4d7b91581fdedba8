//! # `GET /_matrix/app/v1/users/{userId}`
//!
//! Whether a user in our namespace should exist (spec: `query_user.yaml`). Puppets exist
//! only once the service has created them for a client; the one user created on demand is
//! the bot.

use std::sync::Arc;

use axum::{extract::State, Json};
use serde_json::{json, Value};

use crate::app::services::Services;
use crate::web::error::MatrixError;
use crate::web::path::Path;

/// 200 `{}` for the bot (registering it if needed), 404 `M_NOT_FOUND` otherwise; 502 when
/// the homeserver cannot be reached to register it, as every upstream failure.
pub(super) async fn query_user_route(
    State(state): State<Arc<Services>>,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, MatrixError> {
    if user_id != state.bot_user_id {
        return Err(MatrixError::not_found("No such user"));
    }
    state
        .hs
        .register_appservice_user(&state.config.bot.localpart)
        .await
        .map_err(|e| MatrixError::from(crate::error::Error::Homeserver(e)))?;
    Ok(Json(json!({})))
}
