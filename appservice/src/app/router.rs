//! The root router: the homeserver's AS API (`matrix::as_api`), the Synapse module's
//! questions (`matrix::module_api`), the product's HTTP (admin API, client file, live-chat desk,
//! counsellor tools, search, statistics, widget pages), the web embed (mounted by `app`), `/health` and `/metrics`.

use std::sync::Arc;

use crate::app::services::Services;
use crate::features::client_file::routes as client_file;
use crate::features::live::desk_routes as live_desk;
use crate::features::search::routes as search;
use crate::features::statistics::routes as statistics;
use crate::features::tools::routes as tools;
use crate::matrix::module_api as module_check;
use crate::web::{admin, ops};

use axum::{
    routing::{get, post},
    Router,
};

use crate::web::error::MatrixError;

/// The whole router.
pub fn router(state: Arc<Services>) -> Router {
    Router::new()
        .nest("/_matrix/app/v1", crate::matrix::as_api::routes(&state))
        .route("/_assisto/module/v1/check", post(module_check::check_route))
        .nest("/_assisto/admin/v1", admin::routes())
        .nest("/_assisto/client-file/v1", client_file::routes(&state.config.files))
        .route("/_assisto/widget/mappe", get(client_file::widget_route))
        .nest("/_assisto/live/v1", live_desk::routes())
        .route("/_assisto/widget/live", get(live_desk::widget_route))
        .nest("/_assisto/tools/v1", tools::routes())
        .route("/_assisto/widget/werkzeuge", get(tools::widget_route))
        .nest("/_assisto/search/v1", search::routes())
        .route("/_assisto/widget/suche", get(search::widget_route))
        .nest("/_assisto/statistics/v1", statistics::routes())
        .nest("/_assisto/counters/v1", crate::features::counters::routes::routes())
        .route("/_assisto/widget/statistik", get(statistics::widget_route))
        .route("/_assisto/widget/widget-api.js", get(crate::web::widget_script_route))
        .route("/_assisto/widget/widget.css", get(crate::web::widget_styles_route))
        .route("/health", get(ops::health_route))
        .route("/metrics", get(ops::metrics_route))
        .fallback(unrecognized)
        .with_state(state)
}

async fn unrecognized() -> MatrixError {
    MatrixError::unrecognized()
}
