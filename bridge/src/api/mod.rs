//! # `/_assisto/embed/v1/…`: the web embed's HTTP API, WebSocket and long-poll fallback
//!
//! The protocol is documented in `docs/embed-protocol.md` (OpenAPI: `docs/embed-api.yaml`).
//! The browser holds only an opaque session token; everything it asks is checked against
//! the session's conversation here and in the core.
//!
//! This module owns the [`Bridge`], the [`router`] and what every route group shares: the
//! error answer ([`ApiError`]), reading a JSON body or query, and finding the caller's
//! session. The routes live by group:
//!
//! - `assets`: the script, its styles, the demo page and the OpenAPI description
//! - `session`: an institution's config, opening a session, the session, "Unser Team",
//!   ending it, deleting the client's data
//! - `messages`: history, sending text, deleting a message, typing, read receipts
//! - `media`: files, voice messages, downloading either
//! - `live`: the WebSocket and the long-poll fallback
//! - `limits`: the rate limits (and the caller's address they count against)
//! - `cors`: which browser origins may call

use std::sync::Arc;

use axum::{
    extract::Query,
    http::{header, HeaderMap, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Json, Router,
};
use serde_json::{json, Value};

use crate::{
    core::{Core, CoreError, Session},
    hub::Hub,
};

mod assets;
mod cors;
mod limits;
mod live;
mod media;
mod messages;
mod session;

pub use media::{MAX_VOICE_BYTES, MAX_VOICE_MS};
pub use messages::MAX_TEXT_CHARS;

use limits::{Limit, Limits};

/// The bridge: the core, the hub, and per-session and per-address rate limits.
pub struct Bridge {
    core: Arc<dyn Core>,
    hub: Arc<Hub>,
    limits: Limits,
    max_file_bytes: u64,
    max_files: usize,
}

impl Bridge {
    /// A bridge over `core`, receiving live frames from `hub`; files at most
    /// `max_file_bytes`, at most `max_files` per upload.
    pub fn new(core: Arc<dyn Core>, hub: Arc<Hub>, max_file_bytes: u64, max_files: usize) -> Arc<Self> {
        Arc::new(Self { core, hub, limits: Limits::default(), max_file_bytes, max_files })
    }
}

/// An error answer: `{"errcode", "error"}` plus extra fields.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    errcode: &'static str,
    message: String,
    extra: Value,
}

impl ApiError {
    fn new(status: StatusCode, errcode: &'static str, message: impl Into<String>) -> Self {
        Self { status, errcode, message: message.into(), extra: Value::Null }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", message)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let msg = e.to_string();
        match e {
            CoreError::Invalid(_) => Self::invalid(msg),
            CoreError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "M_NOT_FOUND", msg),
            CoreError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "M_FORBIDDEN", msg),
            CoreError::Blocked(_) => Self {
                extra: json!({ "blocked": true }),
                ..Self::new(StatusCode::FORBIDDEN, "M_FORBIDDEN", msg)
            },
            CoreError::Unauthorized => Self::new(StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN", msg),
            CoreError::TooLarge(_) => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE", msg),
            CoreError::Unavailable(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "M_UNKNOWN", msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "errcode": self.errcode, "error": self.message });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), self.extra.as_object()) {
            b.extend(extra.clone());
        }
        (self.status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// The routes, to be nested under `/_assisto/embed/v1`.
pub fn router(bridge: Arc<Bridge>) -> Router {
    Router::new()
        .route("/embed.js", get(assets::script_route))
        .route("/embed.css", get(assets::style_route))
        .route("/demo", get(assets::demo_route))
        .route("/openapi.yaml", get(assets::openapi_route))
        .route("/institutions/{inst}/config", get(session::config_route))
        .route("/institutions/{inst}/availability", get(session::availability_route))
        .route("/institutions/{inst}/sessions", post(session::open_session_route))
        .route("/session", get(session::session_route))
        .route("/messages", get(messages::history_route).post(messages::send_route))
        .route("/transcript", get(messages::transcript_route))
        .route("/messages/{id}", delete(messages::delete_message_route))
        .route(
            "/files",
            post(media::files_route).layer(axum::extract::DefaultBodyLimit::max(
                usize::try_from(bridge.max_file_bytes.saturating_mul(bridge.max_files as u64))
                    .unwrap_or(usize::MAX)
                    .saturating_add(1024 * 1024),
            )),
        )
        .route(
            "/voice",
            post(media::voice_route).layer(axum::extract::DefaultBodyLimit::max(MAX_VOICE_BYTES)),
        )
        .route("/media/{id}", get(media::media_route))
        .route("/typing", post(messages::typing_route))
        .route("/read", post(messages::read_route))
        .route("/team", get(session::team_route))
        .route("/team/{id}", post(session::write_to_route))
        .route("/end", post(session::end_route))
        .route("/delete-my-data", post(session::delete_my_data_route))
        .route("/events", get(live::events_route))
        .route("/ws", get(live::ws_route))
        .layer(middleware::from_fn_with_state(bridge.clone(), cors::cors))
        .with_state(bridge)
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            ApiError::new(StatusCode::BAD_REQUEST, "M_BAD_JSON", format!("Ungültige Angaben: {e}"))
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "M_NOT_JSON", "Die Anfrage ist kein JSON.")
        }
    })
}

/// The token of `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 7235).
fn bearer(h: &HeaderMap) -> Option<&str> {
    let (scheme, token) = h.get(header::AUTHORIZATION)?.to_str().ok()?.trim_start().split_once(' ')?;
    Some(token.trim()).filter(|t| scheme.eq_ignore_ascii_case("bearer") && !t.is_empty())
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::invalid(format!("Ungültige Angaben in der Adresse: {}", e.body_text())))
}

/// The caller's session, from its bearer token; checked against the browser's origin and
/// counted against the session's calls.
async fn session_of(b: &Bridge, h: &HeaderMap) -> Result<Session, ApiError> {
    let token = bearer(h)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN", "Es fehlt die Sitzung."))?;
    let s = b.core.session(token).await?;
    cors::check_origin(b, h, &s.institution).await?;
    b.limits.check(Limit::Call, &s.id)?;
    Ok(s)
}
