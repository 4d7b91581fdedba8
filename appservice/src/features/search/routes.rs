//! # `/_assisto/search/v1/…`
//!
//! Search for the "Suche" widget in Element (`appservice/widget/suche.html`, served at
//! `/_assisto/widget/suche`), usable on its own (OpenAPI: `docs/search-api.yaml`).
//! Authentication as the other widgets' APIs: `Authorization: Bearer <OpenID token>` of a
//! counsellor of this homeserver. Error texts are German: the widget shows them.
//!
//! Also the admin routes of the index (nested under `/_assisto/admin/v1`): start a rebuild
//! from the homeserver and follow its progress.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use serde::Deserialize;

use crate::app::services::Services;
use crate::web::auth::AdminAuth;
use crate::web::error::{ApiResult, MatrixError};
use crate::web::openid::Counsellor;
use crate::web::query::Query;
use assisto_core::Category;

/// The counsellor routes (nested under `/_assisto/search/v1`).
pub(crate) fn routes() -> Router<Arc<Services>> {
    Router::new().route("/openapi.yaml", get(openapi_route)).route("/search", get(search_route))
}

/// The admin routes (nested under `/_assisto/admin/v1`).
pub(crate) fn admin_routes() -> Router<Arc<Services>> {
    Router::new().route("/search/rebuild", get(rebuild_status_route).post(rebuild_route))
}

const OPENAPI: &str = include_str!("../../../../docs/search-api.yaml");

const WIDGET: &str = include_str!("../../../widget/suche.html");

async fn openapi_route() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

/// # `GET /_assisto/widget/suche`
pub(crate) async fn widget_route() -> impl IntoResponse {
    crate::web::widget_page(WIDGET)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    q: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

fn parse_category(c: Option<&str>) -> Result<Option<Category>, MatrixError> {
    match c.map(str::trim).unwrap_or("all") {
        "" | "all" => Ok(None),
        "live" => Ok(Some(Category::Live)),
        "clients" => Ok(Some(Category::Clients)),
        "colleagues" => Ok(Some(Category::Colleagues)),
        "groups" => Ok(Some(Category::Groups)),
        _ => Err(MatrixError::invalid(
            "Unbekannte Kategorie: all, live, clients, colleagues oder groups (category).",
        )),
    }
}

/// # `GET /_assisto/search/v1/search?q=&category=&limit=`
async fn search_route(
    c: Counsellor,
    State(s): State<Arc<Services>>,
    Query(p): Query<SearchParams>,
) -> ApiResult {
    let category = parse_category(p.category.as_deref())?;
    let limit = p.limit.unwrap_or(20);
    if !(1..=crate::features::search::LIMIT_MAX).contains(&limit) {
        return Err(MatrixError::invalid(format!(
            "limit: 1 bis {} Treffer.",
            crate::features::search::LIMIT_MAX
        )));
    }
    let q = p.q.unwrap_or_default();
    Ok(Json(s.search.search(&c.user_id, &q, category, limit).await?).into_response())
}

/// # `POST /_assisto/admin/v1/search/rebuild`
///
/// Starts a rebuild of the index from the homeserver in the background (202); 409 while
/// one runs.
async fn rebuild_route(_: AdminAuth, State(s): State<Arc<Services>>) -> ApiResult {
    let generation = s.search.begin_rebuild()?;
    let search = s.search.clone();
    tokio::spawn(async move {
        if let Err(e) = search.run_rebuild(generation, &|_| {}).await {
            tracing::warn!(error = %e, "rebuilding the search index failed");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(s.search.rebuild_progress())).into_response())
}

/// # `GET /_assisto/admin/v1/search/rebuild`
async fn rebuild_status_route(_: AdminAuth, State(s): State<Arc<Services>>) -> ApiResult {
    Ok(Json(s.search.rebuild_progress()).into_response())
}
