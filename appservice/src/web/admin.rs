//! # `/_assisto/admin/v1/…`
//!
//! The admin HTTP API: the same operations as the CLI. Authenticated with
//! `appservice.admin_api_token` (Bearer). Errors are Matrix-style `{errcode, error}`.
//! The OpenAPI document is served at `/_assisto/admin/v1/openapi.yaml`.

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::app::services::Services;
use crate::features::institutions::store as institutions;
use crate::features::people::store as people;
use crate::features::rooms::store as rooms;
use crate::store::audit;
use crate::web::auth::AdminAuth;
use crate::web::error::{json_body, ApiResult, Lang, MatrixError};
use crate::web::path::Path;

const OPENAPI: &str = include_str!("../../../docs/admin-api.yaml");
const ACTOR: &str = "admin-api";

/// The admin routes (nested under `/_assisto/admin/v1`).
pub(crate) fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/openapi.yaml", get(openapi_route))
        .route("/institutions", get(list_institutions_route).post(create_institution_route))
        .route("/institutions/{id}", get(get_institution_route))
        .route("/institutions/{id}/departments", get(list_departments_route).post(create_department_route))
        .route("/institutions/{id}/counsellors", get(list_counsellors_route).post(add_counsellor_route))
        .route("/institutions/{id}/clients", get(list_clients_route).post(create_client_route))
        .route("/institutions/{id}/rooms", get(list_rooms_route))
        .route("/clients/{user_id}/block", post(block_route))
        .route("/clients/{user_id}/unblock", post(unblock_route))
        .route("/institutions/{id}/retention", get(get_retention_route).put(set_retention_route))
        .route("/institutions/{id}/chat-config", get(get_chat_config_route).put(set_chat_config_route))
        .route("/institutions/{id}/embed-secret", post(new_embed_secret_route))
        .route("/clients/{user_id}/deletion", post(mark_deletion_route).delete(unmark_deletion_route))
        .route("/deletions", get(list_deletions_route))
        .route("/audit", get(audit_route))
        .merge(crate::features::live::routes::admin_routes())
        .merge(crate::features::tools::routes::admin_routes())
        .merge(crate::features::search::routes::admin_routes())
        .merge(crate::features::statistics::routes::admin_routes())
}

fn body<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    json_body(bytes, Lang::En)
}

fn created<T: Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

async fn openapi_route() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInstitution {
    id: String,
    name: String,
}

/// # `GET /_assisto/admin/v1/institutions`
async fn list_institutions_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
) -> ApiResult<Json<Vec<institutions::Institution>>> {
    Ok(Json(institutions::list(&s.db).await?))
}

/// # `POST /_assisto/admin/v1/institutions`
async fn create_institution_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    b: axum::body::Bytes,
) -> ApiResult<Response> {
    let req: NewInstitution = body(&b)?;
    Ok(created(s.provisioning.create_institution(ACTOR, &req.id, &req.name).await?))
}

/// # `GET /_assisto/admin/v1/institutions/{id}`
async fn get_institution_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(s.provisioning.institution(&id).await?).into_response())
}

async fn require_institution(s: &Services, id: &str) -> ApiResult<()> {
    match institutions::get(&s.db, id).await? {
        Some(_) => Ok(()),
        None => Err(MatrixError::not_found(format!("No institution {id}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDepartment {
    name: String,
}

/// # `GET /_assisto/admin/v1/institutions/{id}/departments`
async fn list_departments_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_institution(&s, &id).await?;
    Ok(Json(institutions::departments(&s.db, &id).await?).into_response())
}

/// # `POST /_assisto/admin/v1/institutions/{id}/departments`
async fn create_department_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult<Response> {
    let req: NewDepartment = body(&b)?;
    Ok(created(s.provisioning.create_department(ACTOR, &id, &req.name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCounsellor {
    localpart: String,
    display_name: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    departments: Vec<String>,
}

/// # `GET /_assisto/admin/v1/institutions/{id}/counsellors`
async fn list_counsellors_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_institution(&s, &id).await?;
    Ok(Json(people::counsellors(&s.db, &id).await?).into_response())
}

/// # `POST /_assisto/admin/v1/institutions/{id}/counsellors`
async fn add_counsellor_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult<Response> {
    let req: NewCounsellor = body(&b)?;
    let c = s
        .provisioning
        .add_counsellor(
            ACTOR,
            &id,
            &req.localpart,
            &req.display_name,
            req.password.as_deref(),
            &req.departments,
        )
        .await?;
    Ok(created(c))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    display_name: String,
}

/// # `GET /_assisto/admin/v1/institutions/{id}/clients`
async fn list_clients_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_institution(&s, &id).await?;
    Ok(Json(people::clients(&s.db, &id).await?).into_response())
}

/// # `POST /_assisto/admin/v1/institutions/{id}/clients`
async fn create_client_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult<Response> {
    let req: NewClient = body(&b)?;
    Ok(created(s.provisioning.create_client(ACTOR, &id, &req.display_name).await?))
}

/// # `GET /_assisto/admin/v1/institutions/{id}/rooms`
async fn list_rooms_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_institution(&s, &id).await?;
    Ok(Json(rooms::list(&s.db, &id).await?).into_response())
}

/// # `POST /_assisto/admin/v1/clients/{userId}/block`
async fn block_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(user_id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(s.provisioning.set_blocked(ACTOR, &user_id, true).await?).into_response())
}

/// # `POST /_assisto/admin/v1/clients/{userId}/unblock`
async fn unblock_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(user_id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(s.provisioning.set_blocked(ACTOR, &user_id, false).await?).into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// # `GET /_assisto/admin/v1/audit?limit=N`
async fn audit_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) =
        q.map_err(|e| MatrixError::new(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", e.body_text()))?;
    if !(1..=10_000).contains(&q.limit) {
        return Err(MatrixError::new(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", "limit must be 1 to 10000"));
    }
    Ok(Json(audit::recent(&s.db, q.limit).await?).into_response())
}

/// # `GET /_assisto/admin/v1/institutions/{id}/retention`
async fn get_retention_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(s.provisioning.retention(&id).await?).into_response())
}

/// # `PUT /_assisto/admin/v1/institutions/{id}/retention`
async fn set_retention_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult<Response> {
    let req: crate::features::institutions::Retention = body(&b)?;
    Ok(Json(s.provisioning.set_retention(ACTOR, &id, &req).await?).into_response())
}

/// # `GET /_assisto/admin/v1/institutions/{id}/chat-config`
async fn get_chat_config_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(s.provisioning.chat_config(&id).await?).into_response())
}

/// # `PUT /_assisto/admin/v1/institutions/{id}/chat-config`
///
/// Embedded pages see a change at their next load (the embed does not cache it).
async fn set_chat_config_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult<Response> {
    let req: crate::features::institutions::ChatConfig = body(&b)?;
    Ok(Json(s.provisioning.set_chat_config(ACTOR, &id, &req).await?).into_response())
}

/// # `POST /_assisto/admin/v1/institutions/{id}/embed-secret`
///
/// A new secret for signing logged-in clients' tokens; shown only in this answer.
async fn new_embed_secret_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let secret = s.provisioning.new_embed_secret(ACTOR, &id).await?;
    Ok(Json(serde_json::json!({ "secret": secret })).into_response())
}

/// # `POST /_assisto/admin/v1/clients/{userId}/deletion`
///
/// Marks the client for deletion after the institution's deletion period.
async fn mark_deletion_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(user_id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(s.deleter.mark(ACTOR, &user_id).await?).into_response())
}

/// # `DELETE /_assisto/admin/v1/clients/{userId}/deletion`
///
/// Takes the mark back, as long as the deletion has not started.
async fn unmark_deletion_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(user_id): Path<String>,
) -> ApiResult<Response> {
    s.deleter.unmark(ACTOR, &user_id).await?;
    Ok(Json(serde_json::json!({})).into_response())
}

#[derive(Deserialize)]
struct DeletionQuery {
    #[serde(default)]
    state: Option<String>,
}

/// # `GET /_assisto/admin/v1/deletions?state=pending|finished`
async fn list_deletions_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    q: Result<Query<DeletionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) =
        q.map_err(|e| MatrixError::new(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", e.body_text()))?;
    let finished = match q.state.as_deref() {
        None => None,
        Some("pending") => Some(false),
        Some("finished") => Some(true),
        Some(_) => {
            return Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_INVALID_PARAM",
                "state must be pending or finished",
            ))
        }
    };
    Ok(Json(crate::features::deletion::store::list(&s.db, finished).await?).into_response())
}
