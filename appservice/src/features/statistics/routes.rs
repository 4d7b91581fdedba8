//! # `/_assisto/statistics/v1/…` and `GET /_assisto/admin/v1/institutions/{id}/statistics`
//!
//! The statistics for the institution's admins (the "Statistik" widget in Element,
//! `appservice/widget/statistik.html`, served at `/_assisto/widget/statistik`; OpenID like
//! the other widgets; OpenAPI: `docs/statistics-api.yaml`) and for the institution's
//! dashboard through the admin API. JSON, or CSV with `format=csv`.

use std::sync::Arc;

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::Deserialize;

use crate::app::services::Services;
use crate::features::people::store as people;
use crate::features::statistics::{csv, Statistics, Subject};
use crate::web::auth::AdminAuth;
use crate::web::error::{ApiResult, MatrixError};
use crate::web::openid::Counsellor;
use crate::web::path::Path;
use crate::web::query::Query;
use assisto_core::statistics::parse_period;

/// The counsellor routes (nested under `/_assisto/statistics/v1`).
pub(crate) fn routes() -> Router<Arc<Services>> {
    Router::new().route("/openapi.yaml", get(openapi_route)).route("/statistics", get(own_route))
}

/// The admin route (nested under `/_assisto/admin/v1`).
pub(crate) fn admin_routes() -> Router<Arc<Services>> {
    Router::new().route("/institutions/{id}/statistics", get(admin_route))
}

const OPENAPI: &str = include_str!("../../../../docs/statistics-api.yaml");

const WIDGET: &str = include_str!("../../../widget/statistik.html");

async fn openapi_route() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

/// # `GET /_assisto/widget/statistik`
pub(crate) async fn widget_route() -> impl IntoResponse {
    crate::web::widget_page(WIDGET)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    counsellor: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

async fn answer(s: &Services, institution: &str, p: Params) -> ApiResult {
    let csv_wanted = match p.format.as_deref().map(str::trim) {
        None | Some("") | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(MatrixError::invalid("format: json oder csv.")),
    };
    let period = parse_period(p.from.as_deref(), p.to.as_deref(), s.statistics.today())
        .map_err(crate::error::Error::from)?;
    let nonempty = |v: Option<String>| v.map(|x| x.trim().to_owned()).filter(|x| !x.is_empty());
    let subject = Subject { department: nonempty(p.department), counsellor: nonempty(p.counsellor) };
    let report: Statistics = s.statistics.report(institution, &subject, period).await?;
    if csv_wanted {
        let name = format!(
            "statistik-{}-{}-{}.csv",
            institution, report.report.period.from, report.report.period.to
        );
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
            .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))
            .header(header::CACHE_CONTROL, "no-store")
            .body(axum::body::Body::from(csv(&report)))
            .map_err(|e| MatrixError::internal(&e));
    }
    Ok(Json(report).into_response())
}

/// # `GET /_assisto/statistics/v1/statistics` (institution admins, their institution)
async fn own_route(c: Counsellor, State(s): State<Arc<Services>>, Query(p): Query<Params>) -> ApiResult {
    let me = people::counsellor_by_id(&s.db, &c.user_id)
        .await
        .map_err(|e| MatrixError::internal(&e))?
        .ok_or_else(|| MatrixError::forbidden("Statistiken gibt es nur für Beratende einer Einrichtung."))?;
    if !me.institution_admin {
        return Err(MatrixError::forbidden("Statistiken sehen nur Administrator:innen der Einrichtung."));
    }
    answer(&s, &me.institution_id, p).await
}

/// # `GET /_assisto/admin/v1/institutions/{id}/statistics`
async fn admin_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
) -> ApiResult {
    answer(&s, &id, p).await
}
