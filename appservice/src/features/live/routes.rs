//! The live-chat desk in the admin API (nested under `/_assisto/admin/v1`): counsellors'
//! status (the institution's dashboard syncs it), departments' live-chat settings, the
//! classification codes, the open chats and the desk's log for the statistics.

use std::sync::Arc;

use assisto_core::live::{self, Status};
use axum::{
    extract::{Query, State},
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};

use crate::app::services::Services;
use crate::features::institutions::store as institutions;
use crate::features::live::status::From;
use crate::features::live::store::{self, Code, DepartmentSettings, LogEntry, Routing};
use crate::features::people::store as people;
use crate::store::audit;
use crate::web::auth::AdminAuth;
use crate::web::error::{json_body, ApiResult, Lang, MatrixError};
use crate::web::path::Path;

const ACTOR: &str = "admin-api";

/// The desk's admin routes.
pub(crate) fn admin_routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/counsellors/{user_id}/status", get(get_status_route).put(set_status_route))
        .route("/departments/{id}/live", get(get_department_route).put(set_department_route))
        .route("/institutions/{id}/live-codes", get(get_codes_route).put(set_codes_route))
        .route("/institutions/{id}/live-chats", get(chats_route))
        .route("/institutions/{id}/live-log", get(log_route))
}

/// A counsellor's status as the dashboard sees it.
#[derive(Serialize)]
struct StatusView {
    status: Status,
    presence: live::Presence,
    shown: live::Shown,
    only_regular: bool,
    max_chats: Option<u32>,
    open_chats: usize,
}

async fn status_view(s: &Services, user: &str) -> ApiResult<StatusView> {
    let st = s.live.status_of(user).await?;
    Ok(StatusView {
        status: st.status,
        presence: st.presence,
        shown: live::shown(st.status, st.presence),
        only_regular: st.only_regular,
        max_chats: st.max_chats,
        open_chats: s.live.owned(user).await?.len(),
    })
}

async fn require_counsellor(s: &Services, user: &str) -> ApiResult<()> {
    match people::counsellor_by_id(&s.db, user).await? {
        Some(_) => Ok(()),
        None => Err(MatrixError::not_found(format!("No counsellor {user}"))),
    }
}

/// # `GET /_assisto/admin/v1/counsellors/{user_id}/status`
async fn get_status_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(user): Path<String>,
) -> ApiResult<Json<StatusView>> {
    require_counsellor(&s, &user).await?;
    Ok(Json(status_view(&s, &user).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStatus {
    status: String,
    only_regular: Option<bool>,
    /// `null` clears the counsellor's own limit (the department's applies).
    #[serde(default, deserialize_with = "crate::web::absent_or_null")]
    max_chats: Option<Option<u32>>,
}

/// The most live chats a limit may allow.
const MAX_CHATS_LIMIT: u32 = 50;

/// # `PUT /_assisto/admin/v1/counsellors/{user_id}/status`
async fn set_status_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(user): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult<Json<StatusView>> {
    let req: SetStatus = json_body(&b, Lang::En)?;
    let status = Status::parse(&req.status).ok_or_else(|| {
        MatrixError::invalid("status must be one of online, busy, not_online, not_selectable")
    })?;
    if let Some(Some(n)) = req.max_chats {
        if n == 0 || n > MAX_CHATS_LIMIT {
            return Err(MatrixError::invalid(format!("max_chats must be 1 to {MAX_CHATS_LIMIT} or null")));
        }
    }
    require_counsellor(&s, &user).await?;
    s.live.set_status(&user, status, req.only_regular, req.max_chats, From::Api).await?;
    Ok(Json(status_view(&s, &user).await?))
}

async fn require_department(s: &Services, id: &str) -> ApiResult<String> {
    match institutions::department(&s.db, id).await? {
        Some((institution, _)) => Ok(institution),
        None => Err(MatrixError::not_found(format!("No department {id}"))),
    }
}

/// # `GET /_assisto/admin/v1/departments/{id}/live`
async fn get_department_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult<Json<DepartmentSettings>> {
    require_department(&s, &id).await?;
    Ok(Json(store::department_settings(&s.db, Some(&id)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetDepartment {
    routing: Routing,
    max_chats: u32,
    offer_timeout_secs: u32,
    code_required: bool,
    #[serde(default)]
    opening_hours: live::OpeningHours,
}

/// # `PUT /_assisto/admin/v1/departments/{id}/live`
async fn set_department_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult<Json<DepartmentSettings>> {
    let req: SetDepartment = json_body(&b, Lang::En)?;
    if req.max_chats == 0 || req.max_chats > MAX_CHATS_LIMIT {
        return Err(MatrixError::invalid(format!("max_chats must be 1 to {MAX_CHATS_LIMIT}")));
    }
    if !(5..=3600).contains(&req.offer_timeout_secs) {
        return Err(MatrixError::invalid("offer_timeout_secs must be 5 to 3600"));
    }
    req.opening_hours.check().map_err(|e| MatrixError::invalid(format!("opening_hours: {e}")))?;
    require_department(&s, &id).await?;
    let settings = DepartmentSettings {
        routing: req.routing,
        max_chats: req.max_chats,
        offer_timeout_secs: req.offer_timeout_secs,
        code_required: req.code_required,
        opening_hours: req.opening_hours,
    };
    store::set_department_settings(&s.db, &id, &settings).await?;
    audit::record(&s.db, ACTOR, "department.live", &id, None).await?;
    Ok(Json(store::department_settings(&s.db, Some(&id)).await?))
}

async fn require_institution(s: &Services, id: &str) -> ApiResult<()> {
    match institutions::get(&s.db, id).await? {
        Some(_) => Ok(()),
        None => Err(MatrixError::not_found(format!("No institution {id}"))),
    }
}

/// # `GET /_assisto/admin/v1/institutions/{id}/live-codes`
async fn get_codes_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Code>>> {
    require_institution(&s, &id).await?;
    Ok(Json(store::codes(&s.db, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCode {
    code: String,
    label: String,
}

/// The most classification codes an institution may have.
const MAX_CODES: usize = 200;

/// # `PUT /_assisto/admin/v1/institutions/{id}/live-codes`
async fn set_codes_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult<Json<Vec<Code>>> {
    let req: Vec<NewCode> = json_body(&b, Lang::En)?;
    if req.len() > MAX_CODES {
        return Err(MatrixError::invalid(format!("at most {MAX_CODES} codes")));
    }
    let mut codes: Vec<Code> = Vec::with_capacity(req.len());
    for c in req {
        let ok = (1..=32).contains(&c.code.len())
            && c.code.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if !ok {
            return Err(MatrixError::invalid(
                "a code must be 1 to 32 characters of A-Z, a-z, 0-9, '-' and '_'",
            ));
        }
        if codes.iter().any(|x| x.code == c.code) {
            return Err(MatrixError::invalid(format!("code {} is given twice", c.code)));
        }
        let label =
            assisto_core::check_name("label", &c.label).map_err(|e| MatrixError::invalid(e.to_string()))?;
        codes.push(Code { code: c.code, label });
    }
    require_institution(&s, &id).await?;
    store::set_codes(&s.db, &id, &codes).await?;
    audit::record(&s.db, ACTOR, "institution.live_codes", &id, None).await?;
    Ok(Json(store::codes(&s.db, &id).await?))
}

/// An open chat as the dashboard sees it (IDs and times only).
#[derive(Serialize)]
struct ChatView {
    number: i64,
    room_id: String,
    department_id: Option<String>,
    state: &'static str,
    counsellor: Option<String>,
    position: Option<u32>,
    queued_at: i64,
    taken_at: Option<i64>,
}

/// # `GET /_assisto/admin/v1/institutions/{id}/live-chats`
async fn chats_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ChatView>>> {
    require_institution(&s, &id).await?;
    let open = store::open(&s.db, &id).await?;
    let mut out = Vec::with_capacity(open.len());
    for c in &open {
        let same = open
            .iter()
            .filter(|o| o.chat.department == c.chat.department)
            .map(|o| (o.room_id.as_str(), &o.chat));
        let position = live::positions(same).into_iter().find(|(r, _)| *r == c.room_id).map(|(_, p)| p);
        out.push(ChatView {
            number: c.number,
            room_id: c.room_id.clone(),
            department_id: c.chat.department.clone(),
            state: c.chat.state.name(),
            counsellor: c.chat.state.counsellor().map(str::to_owned),
            position,
            queued_at: c.chat.queued_at,
            taken_at: c.taken_at,
        });
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    since: Option<i64>,
    limit: Option<i64>,
}

/// # `GET /_assisto/admin/v1/institutions/{id}/live-log?since=<ms>&limit=<n>`
async fn log_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(id): Path<String>,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<LogEntry>>> {
    let Query(q) = q.map_err(|e| MatrixError::invalid(e.body_text()))?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(MatrixError::invalid("limit must be 1 to 10000"));
    }
    require_institution(&s, &id).await?;
    Ok(Json(store::log_since(&s.db, &id, q.since.unwrap_or(0), limit).await?))
}
