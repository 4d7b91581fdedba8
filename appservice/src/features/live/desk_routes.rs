//! # `/_assisto/live/v1/…`
//!
//! The live-chat desk for counsellors, used by the live-chat widget in Element
//! (`appservice/widget/live.html`, served at `/_assisto/widget/live`) and usable on its
//! own (OpenAPI: `docs/live-api.yaml`): the desk and the stream of its changes, the
//! counsellor's status, and what a counsellor does with a chat — preview, take, return,
//! forward, close.
//!
//! Authentication as the client file's API: `Authorization: Bearer <OpenID token>` of a
//! counsellor of this homeserver (the widget API's `get_openid`). Error texts are German:
//! the widget shows them.

use std::sync::Arc;
use std::time::Duration;

use assisto_core::live::{LiveError, Status};
use axum::{
    extract::State,
    http::StatusCode,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse,
    },
    routing::{get, post, put},
    Json, Router,
};
use serde::Deserialize;
use serde_json::json;

use crate::app::services::Services;
use crate::features::institutions::store as institutions;
use crate::features::live::desk::Desk;
use crate::features::live::status::From;
use crate::features::live::store::{self, LiveChat};
use crate::features::live::{Stepped, Via};
use crate::features::people::store as people;
use crate::web::error::{json_body, ApiResult, Lang, MatrixError};
use crate::web::openid::Counsellor;
use crate::web::path::Path;

/// The routes (nested under `/_assisto/live/v1`).
pub(crate) fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/openapi.yaml", get(openapi_route))
        .route("/desk", get(desk_route))
        .route("/desk/events", get(events_route))
        .route("/status", put(status_route))
        .route("/chats/{room_id}/preview", post(preview_route))
        .route("/chats/{room_id}/take", post(take_route))
        .route("/chats/{room_id}/return", post(return_route))
        .route("/chats/{room_id}/forward", post(forward_route))
        .route("/chats/{room_id}/close", post(close_route))
}

const OPENAPI: &str = include_str!("../../../../docs/live-api.yaml");

const WIDGET: &str = include_str!("../../../widget/live.html");

async fn openapi_route() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

/// # `GET /_assisto/widget/live`
///
/// The live-chat widget (German, accessible), placed in every institution's desk room.
pub(crate) async fn widget_route() -> impl IntoResponse {
    crate::web::widget_page(WIDGET)
}

const NOT_A_COUNSELLOR: &str = "Den Live-Chat-Schreibtisch haben nur Beratende einer Einrichtung.";

/// The caller's desk, or 403 if they are no counsellor.
async fn desk_of(s: &Services, user: &str) -> ApiResult<Desk> {
    s.live.desk(user).await?.ok_or_else(|| MatrixError::forbidden(NOT_A_COUNSELLOR))
}

/// # `GET /_assisto/live/v1/desk`
async fn desk_route(caller: Counsellor, State(s): State<Arc<Services>>) -> ApiResult<Json<Desk>> {
    Ok(Json(desk_of(&s, &caller.user_id).await?))
}

/// How long the stream waits after a change for more before it reads the desk (a burst of
/// arrivals is one update).
const COALESCE: Duration = Duration::from_millis(150);

/// How often an idle stream sends a comment, so that proxies keep it open.
const KEEPALIVE: Duration = Duration::from_secs(25);

/// # `GET /_assisto/live/v1/desk/events`
///
/// Server-Sent Events: the desk at once, and again whenever it changed. The stream ends
/// when the caller is no counsellor any more.
async fn events_route(caller: Counsellor, State(s): State<Arc<Services>>) -> ApiResult {
    let first = desk_of(&s, &caller.user_id).await?;
    let institution = people::counsellor_by_id(&s.db, &caller.user_id)
        .await?
        .map(|c| c.institution_id)
        .ok_or_else(|| MatrixError::forbidden(NOT_A_COUNSELLOR))?;
    struct Watch {
        s: Arc<Services>,
        user: String,
        institution: String,
        rx: tokio::sync::broadcast::Receiver<String>,
        last: Option<Desk>,
        next: Option<Desk>,
    }
    let rx = s.live.watch_desk();
    let start = Watch { s, user: caller.user_id, institution, rx, last: None, next: Some(first) };
    let stream = futures::stream::unfold(start, |mut w| async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            if let Some(d) = w.next.take() {
                if w.last.as_ref() != Some(&d) {
                    let event = Event::default().data(serde_json::to_string(&d).unwrap_or_default());
                    w.last = Some(d);
                    return Some((Ok::<_, std::convert::Infallible>(event), w));
                }
            }
            match w.rx.recv().await {
                Ok(i) if i != w.institution => continue,
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    tokio::time::sleep(COALESCE).await;
                    while w.rx.try_recv().is_ok() {}
                    match w.s.live.desk(&w.user).await {
                        Ok(Some(d)) => w.next = Some(d),
                        Ok(None) => return None,
                        Err(e) => tracing::warn!(error = %e, "reading a desk failed"),
                    }
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEPALIVE)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStatus {
    status: String,
    only_regular: Option<bool>,
}

/// # `PUT /_assisto/live/v1/status`
async fn status_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    b: axum::body::Bytes,
) -> ApiResult<Json<Desk>> {
    let req: SetStatus = json_body(&b, Lang::De)?;
    let status = Status::parse(&req.status).ok_or_else(|| {
        MatrixError::invalid(
            "Unbekannter Status. Möglich sind: online, beschäftigt, nicht-online, nicht-anwählbar.",
        )
    })?;
    desk_of(&s, &caller.user_id).await?;
    s.live.set_status(&caller.user_id, status, req.only_regular, None, From::Element).await?;
    Ok(Json(desk_of(&s, &caller.user_id).await?))
}

/// A refusal of the desk as an HTTP answer: the state forbids it now (409), the caller may
/// not (403), or what they gave does not do (400).
fn refused(e: LiveError) -> MatrixError {
    let (status, errcode) = match e {
        LiveError::Taken
        | LiveError::OfferedToOther
        | LiveError::Closed
        | LiveError::NotTaken
        | LiveError::AlreadyYours => (StatusCode::CONFLICT, "ASSISTO_LIVE_STATE"),
        LiveError::NotOwner | LiveError::NotInDepartment | LiveError::NotOnline(_) | LiveError::Full(_) => {
            (StatusCode::FORBIDDEN, "M_FORBIDDEN")
        }
        LiveError::ToSelf | LiveError::CodeRequired | LiveError::UnknownCode => {
            (StatusCode::BAD_REQUEST, "M_INVALID_PARAM")
        }
    };
    MatrixError::new(status, errcode, e.to_string())
}

/// The live chat in `room_id` of the caller's institution (404 for any other room, so that
/// nobody learns of another institution's chats).
async fn chat_of(s: &Services, user: &str, room_id: &str) -> ApiResult<LiveChat> {
    let me = people::counsellor_by_id(&s.db, user)
        .await?
        .ok_or_else(|| MatrixError::forbidden(NOT_A_COUNSELLOR))?;
    match store::chat(&s.db, room_id).await? {
        Some(c) if c.institution_id == me.institution_id => Ok(c),
        _ => Err(MatrixError::not_found("Diesen Live-Chat gibt es nicht.")),
    }
}

/// A step's answer: the chat's number and state, or the refusal.
fn stepped(r: Stepped) -> ApiResult {
    match r {
        Ok(c) => Ok(Json(json!({
            "number": c.number,
            "room_id": c.room_id,
            "state": c.chat.state.name(),
        }))
        .into_response()),
        Err(e) => Err(refused(e)),
    }
}

/// # `POST /_assisto/live/v1/chats/{room_id}/preview`
async fn preview_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(room_id): Path<String>,
) -> ApiResult {
    chat_of(&s, &caller.user_id, &room_id).await?;
    let lines = s.live.preview(&room_id, &caller.user_id).await?.map_err(refused)?;
    Ok(Json(json!({ "messages": lines })).into_response())
}

/// # `POST /_assisto/live/v1/chats/{room_id}/take`
async fn take_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(room_id): Path<String>,
) -> ApiResult {
    chat_of(&s, &caller.user_id, &room_id).await?;
    stepped(s.live.take(&room_id, &caller.user_id, Via::Widget).await?)
}

/// # `POST /_assisto/live/v1/chats/{room_id}/return`
async fn return_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(room_id): Path<String>,
) -> ApiResult {
    chat_of(&s, &caller.user_id, &room_id).await?;
    stepped(s.live.give_back(&room_id, &caller.user_id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Forward {
    /// A department of the institution; `null`: the general queue.
    #[serde(default, deserialize_with = "crate::web::absent_or_null")]
    department_id: Option<Option<String>>,
    /// A colleague.
    counsellor: Option<String>,
}

/// # `POST /_assisto/live/v1/chats/{room_id}/forward`
async fn forward_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(room_id): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    let req: Forward = json_body(&b, Lang::De)?;
    let chat = chat_of(&s, &caller.user_id, &room_id).await?;
    let r = match (req.department_id, req.counsellor) {
        (Some(department), None) => {
            if let Some(d) = &department {
                match institutions::department(&s.db, d).await? {
                    Some((inst, _)) if inst == chat.institution_id => {}
                    _ => {
                        return Err(MatrixError::invalid(
                            "Diese Abteilung gibt es in Ihrer Einrichtung nicht.",
                        ))
                    }
                }
            }
            s.live.forward_to_department(&room_id, &caller.user_id, department.as_deref()).await?
        }
        (None, Some(to)) => {
            match people::counsellor_by_id(&s.db, &to).await? {
                Some(c) if c.institution_id == chat.institution_id => {}
                _ => {
                    return Err(MatrixError::invalid(
                        "Diese Person ist keine beratende Person Ihrer Einrichtung.",
                    ))
                }
            }
            s.live.forward_to_counsellor(&room_id, &caller.user_id, &to).await?
        }
        _ => {
            return Err(MatrixError::invalid(
                "Geben Sie entweder eine Abteilung („department_id“) oder eine Person („counsellor“) an.",
            ))
        }
    };
    stepped(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Close {
    code: Option<String>,
    note: Option<String>,
}

/// The longest closing note, in characters.
const NOTE_CHARS: usize = 2000;

/// # `POST /_assisto/live/v1/chats/{room_id}/close`
async fn close_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(room_id): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    let req: Close = json_body(&b, Lang::De)?;
    let note = req.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > NOTE_CHARS) {
        return Err(MatrixError::invalid(format!("Die Notiz ist zu lang (höchstens {NOTE_CHARS} Zeichen).")));
    }
    let code = req.code.as_deref().filter(|c| !c.is_empty());
    chat_of(&s, &caller.user_id, &room_id).await?;
    stepped(s.live.close(&room_id, &caller.user_id, code, note).await?)
}
