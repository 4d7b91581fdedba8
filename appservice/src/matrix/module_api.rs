//! # `POST /_assisto/module/v1/check`
//!
//! The Synapse module asks whether an action may go ahead (create a room, invite, join,
//! send). Authenticated with `appservice.module_token` (Bearer, constant-time). See
//! `domain::checks` for the questions and answers and `synapse_module/` for the asker.

use std::sync::Arc;

use axum::{extract::State, http::HeaderMap, Json};

use crate::app::services::Services;
use crate::features::rooms::checks::CheckRequest;
use crate::features::rooms::checks::CheckResponse;
use crate::web::error::MatrixError;

/// Decides one question.
pub(crate) async fn check_route(
    State(state): State<Arc<Services>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<CheckResponse>, MatrixError> {
    crate::web::auth::require_bearer(&headers, state.web.module_token_digest.as_ref())?;
    let req: CheckRequest = crate::web::error::json_body(&body, crate::web::error::Lang::En)?;
    Ok(Json(state.checker.check(&req).await?))
}
