//! # `/_assisto/tools/v1/…`
//!
//! The counsellor tools for the "Werkzeuge" widget in Element (`appservice/widget/werkzeuge.html`,
//! served at `/_assisto/widget/werkzeuge`), usable on its own (OpenAPI: `docs/tools-api.yaml`):
//! text snippets (list, search, create, change, delete, send), the counsellor's settings
//! (phone number and its toggle), sending the phone number, pushing a link.
//!
//! Authentication as the client file's API: `Authorization: Bearer <OpenID token>` of a
//! counsellor of this homeserver. Error texts are German: the widget shows them.
//!
//! Also the tools' admin routes (nested under `/_assisto/admin/v1`): the institution's
//! shared snippets, counsellors' tool settings and institution admins.

use std::sync::Arc;

use axum::{
    extract::State,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post, put},
    Json, Router,
};
use serde::Deserialize;
use serde_json::json;

use crate::app::services::Services;
use crate::features::institutions::store as institutions;
use crate::features::people::store as people;
use crate::features::tools::{request_txn, Caller, SnippetRequest};
use crate::store::audit;
use crate::web::auth::AdminAuth;
use crate::web::error::{json_body, ApiResult, Lang, MatrixError};
use crate::web::openid::Counsellor;
use crate::web::path::Path;
use crate::web::query::Query;

/// The counsellor routes (nested under `/_assisto/tools/v1`).
pub(crate) fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/openapi.yaml", get(openapi_route))
        .route("/snippets", get(list_route).post(create_route))
        .route("/snippets/{id}", put(update_route).delete(delete_route))
        .route("/settings", get(get_settings_route).put(put_settings_route))
        .route("/rooms/{room_id}", get(room_route))
        .route("/rooms/{room_id}/snippets", post(send_snippets_route))
        .route("/rooms/{room_id}/phone", post(send_phone_route))
        .route("/rooms/{room_id}/link", post(send_link_route))
        .route("/rooms/{room_id}/video", post(start_video_route))
        .route("/rooms/{room_id}/export", get(crate::features::export::routes::counsellor_route))
        .route("/exports/{token}", get(crate::features::export::routes::link_route))
}

const OPENAPI: &str = include_str!("../../../../docs/tools-api.yaml");

const WIDGET: &str = include_str!("../../../widget/werkzeuge.html");

async fn openapi_route() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

/// # `GET /_assisto/widget/werkzeuge`
///
/// The tools widget (German, accessible), placed in every chat with clients.
pub(crate) async fn widget_route() -> impl IntoResponse {
    crate::web::widget_page(WIDGET)
}

async fn caller_of(s: &Services, c: &Counsellor) -> ApiResult<Caller> {
    Ok(s.tools.caller(&c.user_id).await?)
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: Option<String>,
}

/// # `GET /_assisto/tools/v1/snippets?q=`
async fn list_route(c: Counsellor, State(s): State<Arc<Services>>, Query(q): Query<Search>) -> ApiResult {
    let caller = caller_of(&s, &c).await?;
    let items = s.tools.snippets(&caller, q.q.as_deref()).await?;
    Ok(Json(json!({ "count": items.len(), "items": items })).into_response())
}

/// # `POST /_assisto/tools/v1/snippets`
async fn create_route(c: Counsellor, State(s): State<Arc<Services>>, b: axum::body::Bytes) -> ApiResult {
    let caller = caller_of(&s, &c).await?;
    let req: SnippetRequest = json_body(&b, Lang::De)?;
    let snippet = s.tools.create_snippet(&caller.counsellor.institution_id, Some(&caller), &req).await?;
    Ok((StatusCode::CREATED, Json(json!({ "may_edit": true, "snippet": snippet }))).into_response())
}

fn snippet_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| MatrixError::not_found("Diesen Textbaustein gibt es nicht."))
}

/// # `PUT /_assisto/tools/v1/snippets/{id}`
async fn update_route(
    c: Counsellor,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    let caller = caller_of(&s, &c).await?;
    let id = snippet_id(&id)?;
    let req: SnippetRequest = json_body(&b, Lang::De)?;
    let snippet = s.tools.update_snippet(&caller.counsellor.institution_id, Some(&caller), id, &req).await?;
    Ok(Json(json!({ "may_edit": true, "snippet": snippet })).into_response())
}

/// # `DELETE /_assisto/tools/v1/snippets/{id}`
async fn delete_route(c: Counsellor, State(s): State<Arc<Services>>, Path(id): Path<String>) -> ApiResult {
    let caller = caller_of(&s, &c).await?;
    let id = snippet_id(&id)?;
    s.tools.delete_snippet(&caller.counsellor.institution_id, Some(&caller), id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// # `GET /_assisto/tools/v1/settings`
async fn get_settings_route(c: Counsellor, State(s): State<Arc<Services>>) -> ApiResult {
    caller_of(&s, &c).await?;
    Ok(Json(s.tools.settings(&c.user_id).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    #[serde(default)]
    phone: Option<String>,
    allow_phone: bool,
    #[serde(default)]
    allow_video: Option<bool>,
}

/// # `PUT /_assisto/tools/v1/settings`
async fn put_settings_route(
    c: Counsellor,
    State(s): State<Arc<Services>>,
    b: axum::body::Bytes,
) -> ApiResult {
    caller_of(&s, &c).await?;
    let req: SettingsBody = json_body(&b, Lang::De)?;
    let settings =
        s.tools.set_settings(&c.user_id, req.phone.as_deref(), req.allow_phone, req.allow_video).await?;
    Ok(Json(settings).into_response())
}

/// # `GET /_assisto/tools/v1/rooms/{room_id}`
///
/// What the widget offers in this room: the snippets, the phone number (only with the
/// toggle on), the recently pushed links.
async fn room_route(c: Counsellor, State(s): State<Arc<Services>>, Path(room): Path<String>) -> ApiResult {
    let caller = caller_of(&s, &c).await?;
    let r = s.tools.room(&caller, &room).await?;
    let settings = s.tools.settings(&c.user_id).await?;
    let snippets = s.tools.snippets(&caller, None).await?;
    // The departments the caller may share snippets with.
    let departments: Vec<_> = institutions::departments(&s.db, &caller.counsellor.institution_id)
        .await?
        .into_iter()
        .filter(|d| caller.counsellor.institution_admin || caller.departments.contains(&d.id))
        .collect();
    Ok(Json(json!({
        "departments": departments,
        "room_id": r.room_id,
        "kind": r.kind,
        "phone": { "offered": settings.allow_phone, "number": settings.phone },
        "recent_links": s.tools.recent_links(&caller).await?,
        "video": {
            "offered": settings.allow_video,
            "configured": s.tools.video(&caller.counsellor.institution_id).await?.is_some(),
        },
        "snippets": snippets,
        "placeholders": assisto_core::tools::PLACEHOLDERS
            .iter()
            .map(|(name, what)| json!({ "name": format!("{{{{{name}}}}}"), "description": what }))
            .collect::<Vec<_>>(),
    }))
    .into_response())
}

/// What every send starts with: the caller (a counsellor), the request's body and the
/// transaction ID its `txn_id` stands for.
async fn prepared<T: serde::de::DeserializeOwned>(
    s: &Services,
    c: &Counsellor,
    b: &[u8],
    purpose: &str,
    txn_id: fn(&T) -> &str,
) -> ApiResult<(Caller, T, crate::matrix::homeserver::TxnId)> {
    let caller = caller_of(s, c).await?;
    let req: T = json_body(b, Lang::De)?;
    let txn = request_txn(&c.user_id, txn_id(&req), purpose)?;
    Ok((caller, req, txn))
}

/// The answer to a send: the message's event ID.
fn sent(event_id: String) -> ApiResult {
    Ok(Json(json!({ "event_id": event_id })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendSnippets {
    ids: Vec<i64>,
    txn_id: String,
}

/// # `POST /_assisto/tools/v1/rooms/{room_id}/snippets`
async fn send_snippets_route(
    c: Counsellor,
    State(s): State<Arc<Services>>,
    Path(room): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    let (caller, req, txn) = prepared::<SendSnippets>(&s, &c, &b, "tools-snippets", |r| &r.txn_id).await?;
    sent(s.tools.send_snippets(&caller, &room, &req.ids, &txn).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendPhone {
    #[serde(default)]
    number: Option<String>,
    txn_id: String,
}

/// # `POST /_assisto/tools/v1/rooms/{room_id}/phone`
async fn send_phone_route(
    c: Counsellor,
    State(s): State<Arc<Services>>,
    Path(room): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    let (caller, req, txn) = prepared::<SendPhone>(&s, &c, &b, "tools-phone", |r| &r.txn_id).await?;
    sent(s.tools.send_phone(&caller, &room, req.number.as_deref(), &txn).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendLink {
    url: String,
    txn_id: String,
}

/// # `POST /_assisto/tools/v1/rooms/{room_id}/link`
async fn send_link_route(
    c: Counsellor,
    State(s): State<Arc<Services>>,
    Path(room): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    let (caller, req, txn) = prepared::<SendLink>(&s, &c, &b, "tools-link", |r| &r.txn_id).await?;
    sent(s.tools.send_link(&caller, &room, &req.url, &txn).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartVideo {
    txn_id: String,
}

/// # `POST /_assisto/tools/v1/rooms/{room_id}/video`
async fn start_video_route(
    c: Counsellor,
    State(s): State<Arc<Services>>,
    Path(room): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    let (caller, _, txn) = prepared::<StartVideo>(&s, &c, &b, "tools-video", |r| &r.txn_id).await?;
    let (event_id, url) = s.tools.start_video(&caller, &room, &txn).await?;
    Ok(Json(json!({ "event_id": event_id, "url": url })).into_response())
}

// ---- the admin API ----

const ACTOR: &str = "admin-api";

/// The tools' admin routes (nested under `/_assisto/admin/v1`).
pub(crate) fn admin_routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/institutions/{id}/snippets", get(admin_list_route).post(admin_create_route))
        .route("/institutions/{id}/snippets/{snippet}", put(admin_update_route).delete(admin_delete_route))
        .route("/counsellors/{user_id}/tools", get(admin_get_tools_route).put(admin_put_tools_route))
        .route("/counsellors/{user_id}/institution-admin", put(admin_set_admin_route))
        .route("/rooms/{room_id}/export", get(crate::features::export::routes::admin_route))
        .route(
            "/institutions/{id}/video",
            get(admin_get_video_route).put(admin_put_video_route).delete(admin_delete_video_route),
        )
}

/// # `GET /_assisto/admin/v1/institutions/{id}/video`
async fn admin_get_video_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult {
    require_institution(&s, &id).await?;
    match s.tools.video(&id).await? {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(MatrixError::not_found("No video service is configured")),
    }
}

/// # `PUT /_assisto/admin/v1/institutions/{id}/video`
async fn admin_put_video_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    require_institution(&s, &id).await?;
    let req: crate::features::tools::video::VideoRequest = json_body(&b, Lang::En)?;
    let v = s.tools.set_video(&id, &req).await?;
    audit::record(&s.db, ACTOR, "institution.video", &id, None).await?;
    Ok(Json(v).into_response())
}

/// # `DELETE /_assisto/admin/v1/institutions/{id}/video`
async fn admin_delete_video_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult {
    require_institution(&s, &id).await?;
    if !s.tools.delete_video(&id).await? {
        return Err(MatrixError::not_found("No video service is configured"));
    }
    audit::record(&s.db, ACTOR, "institution.video_removed", &id, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn require_institution(s: &Services, id: &str) -> ApiResult<()> {
    s.provisioning.require_institution(id).await?;
    Ok(())
}

async fn require_counsellor(s: &Services, user: &str) -> ApiResult<people::Counsellor> {
    people::counsellor_by_id(&s.db, user)
        .await?
        .ok_or_else(|| MatrixError::not_found(format!("No counsellor {user}")))
}

/// # `GET /_assisto/admin/v1/institutions/{id}/snippets`
///
/// The institution's shared snippets (department and institution scope; counsellors' own
/// ones stay theirs).
async fn admin_list_route(_: AdminAuth, State(s): State<Arc<Services>>, Path(id): Path<String>) -> ApiResult {
    require_institution(&s, &id).await?;
    let items: Vec<_> = crate::features::tools::store::of_institution(&s.db, &id)
        .await?
        .into_iter()
        .filter(|s| s.scope() != assisto_core::tools::SnippetScope::Own)
        .collect();
    Ok(Json(json!({ "count": items.len(), "items": items })).into_response())
}

/// # `POST /_assisto/admin/v1/institutions/{id}/snippets`
async fn admin_create_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    require_institution(&s, &id).await?;
    let req: SnippetRequest = json_body(&b, Lang::En)?;
    let snippet = s.tools.create_snippet(&id, None, &req).await?;
    Ok((StatusCode::CREATED, Json(snippet)).into_response())
}

/// # `PUT /_assisto/admin/v1/institutions/{id}/snippets/{snippet}`
async fn admin_update_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path((id, snippet)): Path<(String, String)>,
    b: axum::body::Bytes,
) -> ApiResult {
    require_institution(&s, &id).await?;
    let req: SnippetRequest = json_body(&b, Lang::En)?;
    let snippet = s.tools.update_snippet(&id, None, snippet_id(&snippet)?, &req).await?;
    Ok(Json(snippet).into_response())
}

/// # `DELETE /_assisto/admin/v1/institutions/{id}/snippets/{snippet}`
async fn admin_delete_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path((id, snippet)): Path<(String, String)>,
) -> ApiResult {
    require_institution(&s, &id).await?;
    s.tools.delete_snippet(&id, None, snippet_id(&snippet)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// # `GET /_assisto/admin/v1/counsellors/{user_id}/tools`
async fn admin_get_tools_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(user): Path<String>,
) -> ApiResult {
    require_counsellor(&s, &user).await?;
    Ok(Json(s.tools.settings(&user).await?).into_response())
}

/// # `PUT /_assisto/admin/v1/counsellors/{user_id}/tools`
async fn admin_put_tools_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(user): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    require_counsellor(&s, &user).await?;
    let req: SettingsBody = json_body(&b, Lang::En)?;
    let settings =
        s.tools.set_settings(&user, req.phone.as_deref(), req.allow_phone, req.allow_video).await?;
    audit::record(&s.db, ACTOR, "tools.settings", &user, None).await?;
    Ok(Json(settings).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminFlag {
    institution_admin: bool,
}

/// # `PUT /_assisto/admin/v1/counsellors/{user_id}/institution-admin`
async fn admin_set_admin_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(user): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    require_counsellor(&s, &user).await?;
    let req: AdminFlag = json_body(&b, Lang::En)?;
    people::set_institution_admin(&s.db, &user, req.institution_admin).await?;
    let what = if req.institution_admin {
        "counsellor.institution_admin"
    } else {
        "counsellor.not_institution_admin"
    };
    audit::record(&s.db, ACTOR, what, &user, None).await?;
    Ok(Json(require_counsellor(&s, &user).await?).into_response())
}
