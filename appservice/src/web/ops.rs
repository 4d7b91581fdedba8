//! `/health` and `/metrics`, for operators. Serve them on an internal address only.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::IntoResponse,
    Json,
};
use serde_json::json;

use crate::app::services::Services;

/// # `GET /health`
///
/// 200 when the database and the homeserver answer, else 503; says which part failed.
pub(crate) async fn health_route(State(state): State<Arc<Services>>) -> impl IntoResponse {
    let timeout = std::time::Duration::from_secs(3);
    let db_ok = matches!(tokio::time::timeout(timeout, state.db.ping()).await, Ok(Ok(())));
    let hs_ok = state.hs.reachable(timeout).await;
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let status = if db_ok && hs_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if db_ok && hs_ok { "ok" } else { "degraded" },
        "database": word(db_ok),
        "homeserver": word(hs_ok),
        "inbox_depth": state.metrics.inbox_depth.get(),
    });
    (status, Json(body))
}

/// # `GET /metrics`
///
/// Prometheus text format.
pub(crate) async fn metrics_route(State(state): State<Arc<Services>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
