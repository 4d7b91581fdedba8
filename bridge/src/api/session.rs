//! The session routes: an institution's config, opening a session (anonymous or with the
//! site's signed token), the session itself, ending the conversation and deleting the
//! client's data.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::sse::{Event, KeepAlive, Sse},
    response::IntoResponse,
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    body,
    cors::check_origin,
    limits::{Limit, PeerIp},
    session_of, ApiError, ApiResult, Bridge,
};
use crate::{
    core::{Area, Form, Identity, Session, State as ConvState},
    hub::Frame,
    token,
};

fn session_json(s: &Session, state: &ConvState, token: Option<&str>) -> Value {
    let mut v = json!({
        "expires_at": s.expires_at,
        "client": { "display_name": s.display_name },
        "conversation": { "kind": s.kind },
        "state": state,
    });
    if let (Some(t), Some(o)) = (token, v.as_object_mut()) {
        o.insert("session".into(), json!(t));
    }
    v
}

pub(super) async fn config_route(State(b): State<Arc<Bridge>>, Path(inst): Path<String>) -> ApiResult {
    let c = b.core.config(&inst).await?;
    let mut res = Json(c).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}

/// What an open page needs to know to show the chat button.
fn availability(c: &crate::core::EmbedConfig) -> Value {
    json!({ "available": c.available, "departments": c.departments, "next_open": c.next_open, "team": c.team })
}

/// How often an idle availability stream sends a comment, so that proxies keep it open.
const AVAILABILITY_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(25);

/// `GET /institutions/{inst}/availability`: Server-Sent Events, `{"available",
/// "departments"}` at once and again whenever it changes, so that an open page shows the
/// chat button exactly while someone can take a chat (pushed, not polled).
pub(super) async fn availability_route(
    State(b): State<Arc<Bridge>>,
    PeerIp(ip): PeerIp,
    h: HeaderMap,
    Path(inst): Path<String>,
) -> ApiResult {
    check_origin(&b, &h, &inst).await?;
    b.limits.check(Limit::Call, &ip)?;
    let first = availability(&b.core.config(&inst).await?);
    struct Watch {
        b: Arc<Bridge>,
        inst: String,
        rx: tokio::sync::broadcast::Receiver<Frame>,
        last: Option<Value>,
        next: Option<Value>,
    }
    let rx = b.hub.subscribe(&crate::hub::availability_key(&inst));
    let start = Watch { b, inst, rx, last: None, next: Some(first) };
    let stream = futures::stream::unfold(start, |mut w| async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            if let Some(v) = w.next.take() {
                if w.last.as_ref() != Some(&v) {
                    let event = Event::default().data(v.to_string());
                    w.last = Some(v);
                    return Some((Ok::<_, std::convert::Infallible>(event), w));
                }
            }
            match w.rx.recv().await {
                // A change (or so many that this page fell behind): read it again.
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    w.next = w.b.core.shared_config(&w.inst).await.ok().map(|c| availability(&c));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(AVAILABILITY_KEEPALIVE)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenSession {
    area: Area,
    form: Form,
    token: Option<String>,
    /// The department whose queue a live chat joins (see the configuration's list).
    department: Option<String>,
    /// The counsellor a visitor chose for a live chat (an ID of the configuration's
    /// `team`); without it, the next free counsellor.
    counsellor: Option<String>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) async fn open_session_route(
    State(b): State<Arc<Bridge>>,
    PeerIp(ip): PeerIp,
    h: HeaderMap,
    Path(inst): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    check_origin(&b, &h, &inst).await?;
    b.limits.check(Limit::Session, &ip)?;
    let req: OpenSession = body(&bytes)?;
    if req.counsellor.as_ref().is_some_and(|c| c.is_empty() || c.len() > 64) {
        return Err(ApiError::invalid("Diese beratende Person gibt es nicht."));
    }
    if req.area == Area::Registered && req.counsellor.is_some() {
        return Err(ApiError::invalid(
            "Im angemeldeten Bereich wählst du deine beratende Person unter „Unser Team“.",
        ));
    }
    let identity = match (req.area, req.token) {
        (Area::Anonymous, None) => Identity::Anonymous,
        (Area::Anonymous, Some(_)) => {
            return Err(ApiError::invalid("Im anonymen Bereich gibt es keine Anmeldung."))
        }
        (Area::Registered, None) => return Err(ApiError::invalid("Es fehlt die Anmeldung der Website.")),
        (Area::Registered, Some(t)) => {
            let secret = b.core.embed_secret(&inst).await?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "M_FORBIDDEN",
                    "Diese Beratungsstelle nimmt noch keine angemeldeten Chats an.",
                )
            })?;
            let claims = token::verify(&secret, &inst, &t, unix_now())
                .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN", e.to_string()))?;
            Identity::Registered { external_id: claims.sub, display_name: claims.name }
        }
    };
    if req.department.as_ref().is_some_and(|d| d.is_empty() || d.len() > 64) {
        return Err(ApiError::invalid("Diese Abteilung gibt es nicht."));
    }
    let (token, s) = b
        .core
        .open_session(
            &inst,
            req.area,
            req.form,
            identity,
            req.department.as_deref(),
            req.counsellor.as_deref(),
        )
        .await?;
    let state = b.core.state(&s).await?;
    Ok((StatusCode::CREATED, Json(session_json(&s, &state, Some(&token)))).into_response())
}

pub(super) async fn session_route(State(b): State<Arc<Bridge>>, h: HeaderMap) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let state = b.core.state(&s).await?;
    Ok(Json(session_json(&s, &state, None)).into_response())
}

/// `GET /team`: "Unser Team" — whom the client may write to, with their status.
pub(super) async fn team_route(State(b): State<Arc<Bridge>>, h: HeaderMap) -> ApiResult {
    let s = session_of(&b, &h).await?;
    Ok(Json(json!({ "team": b.core.team(&s).await? })).into_response())
}

/// `POST /team/{id}`: the client writes to that counsellor.
pub(super) async fn write_to_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    b.limits.check(Limit::Send, &s.id)?;
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "M_NOT_FOUND",
            "Diese beratende Person gibt es nicht.",
        ));
    }
    b.core.write_to(&s, &id).await?;
    b.hub.publish(&s.conversation, Frame::StateChanged);
    Ok(Json(json!({})).into_response())
}

pub(super) async fn end_route(State(b): State<Arc<Bridge>>, h: HeaderMap) -> ApiResult {
    let s = session_of(&b, &h).await?;
    b.core.end(&s).await?;
    b.hub.publish(&s.conversation, Frame::StateChanged);
    Ok(Json(json!({})).into_response())
}

pub(super) async fn delete_my_data_route(State(b): State<Arc<Bridge>>, h: HeaderMap) -> ApiResult {
    let s = session_of(&b, &h).await?;
    b.core.delete_my_data(&s).await?;
    b.hub.publish(&s.conversation, Frame::StateChanged);
    Ok(Json(json!({})).into_response())
}
