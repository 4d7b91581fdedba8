//! # `/_assisto/embed/v1/…`: the web embed's HTTP API, WebSocket and long-poll fallback
//!
//! The protocol is documented in `docs/embed-protocol.md` (OpenAPI: `docs/embed-api.yaml`).
//! The browser holds only an opaque session token; everything it asks is checked against
//! the session's conversation here and in the core.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{
        ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade},
        ConnectInfo, Path, Query, Request, State,
    },
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::{
    core::{Area, Core, CoreError, Form, Identity, Message, Session, State as ConvState},
    hub::{Frame, Hub},
    token,
};

/// Longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// The bridge: the core, the hub, and per-session and per-address rate limits.
pub struct Bridge {
    core: Arc<dyn Core>,
    hub: Arc<Hub>,
    limits: RateLimiter,
    max_file_bytes: u64,
    max_files: usize,
}

impl Bridge {
    /// A bridge over `core`, receiving live frames from `hub`; files at most
    /// `max_file_bytes`, at most `max_files` per upload.
    pub fn new(core: Arc<dyn Core>, hub: Arc<Hub>, max_file_bytes: u64, max_files: usize) -> Arc<Self> {
        Arc::new(Self { core, hub, limits: RateLimiter::default(), max_file_bytes, max_files })
    }
}

/// Longest voice message.
pub const MAX_VOICE_MS: u64 = 10 * 60 * 1000;
/// Largest voice message (10 minutes of Opus at a generous bitrate).
pub const MAX_VOICE_BYTES: usize = 10 * 1024 * 1024;

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
        .route("/embed.js", get(script_route))
        .route("/embed.css", get(style_route))
        .route("/demo", get(demo_route))
        .route("/openapi.yaml", get(openapi_route))
        .route("/institutions/{inst}/config", get(config_route))
        .route("/institutions/{inst}/sessions", post(open_session_route))
        .route("/session", get(session_route))
        .route("/messages", get(history_route).post(send_route))
        .route("/messages/{id}", delete(delete_message_route))
        .route(
            "/files",
            post(files_route).layer(axum::extract::DefaultBodyLimit::max(
                usize::try_from(bridge.max_file_bytes.saturating_mul(bridge.max_files as u64))
                    .unwrap_or(usize::MAX)
                    .saturating_add(1024 * 1024),
            )),
        )
        .route("/voice", post(voice_route).layer(axum::extract::DefaultBodyLimit::max(MAX_VOICE_BYTES)))
        .route("/media/{id}", get(media_route))
        .route("/typing", post(typing_route))
        .route("/read", post(read_route))
        .route("/end", post(end_route))
        .route("/delete-my-data", post(delete_my_data_route))
        .route("/events", get(events_route))
        .route("/ws", get(ws_route))
        .layer(middleware::from_fn_with_state(bridge.clone(), cors))
        .with_state(bridge)
}

const SCRIPT: &str = include_str!("../embed/embed.js");
const STYLE: &str = include_str!("../embed/embed.css");
const DEMO: &str = include_str!("../embed/demo.html");
const OPENAPI: &str = include_str!("../../docs/embed-api.yaml");

/// # `GET /openapi.yaml`: this API's description.
async fn openapi_route() -> Response {
    asset("application/yaml", OPENAPI)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidated on every page load, so a new version reaches embedded pages at once.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// # `GET /embed.js`: the embed, included by the institution's page with one script tag.
async fn script_route() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// # `GET /embed.css`: its styles (loaded by the script).
async fn style_route() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[derive(Deserialize)]
struct DemoQuery {
    institution: Option<String>,
}

/// # `GET /demo?institution=<slug>`: a page with the chat bubble of an institution, to try
/// the embed (default: `demo`, the institution `make run` creates).
async fn demo_route(Query(q): Query<DemoQuery>) -> Response {
    let inst = q.institution.unwrap_or_else(|| "demo".into());
    let ok = !inst.is_empty()
        && inst.len() <= 64
        && inst.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if !ok {
        return ApiError::invalid("institution: a–z, 0–9 und -").into_response();
    }
    let page = DEMO.replace(r#"data-institution="demo""#, &format!(r#"data-institution="{inst}""#));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'",
            ),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        page,
    )
        .into_response()
}

/// CORS: only origins an institution configured (or the bridge's own) may call from a
/// browser. A preflight is answered here; the session check of the real request decides.
async fn cors(State(b): State<Arc<Bridge>>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let allowed = match &origin {
        Some(o) => same_origin(o, &host) || b.core.origin_allowed(o).await,
        None => false,
    };
    let mut res = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let (true, Some(o)) = (allowed, origin) {
        if let Ok(v) = HeaderValue::from_str(&o) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
            );
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
    }
    res
}

fn same_origin(origin: &str, host: &str) -> bool {
    !host.is_empty() && origin.split_once("://").is_some_and(|(_, rest)| rest == host)
}

/// Fixed one-minute windows per key.
#[derive(Default)]
struct RateLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// Counts one call for `key`; `Err(ms)` when over `per_minute`.
    fn hit(&self, key: String, per_minute: u32) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = map.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > per_minute {
            let left = Duration::from_secs(60).saturating_sub(now.duration_since(entry.0));
            return Err(left.as_millis() as u64 + 1);
        }
        Ok(())
    }
}

fn limited(b: &Bridge, key: String, per_minute: u32) -> Result<(), ApiError> {
    b.limits.hit(key, per_minute).map_err(|ms| ApiError {
        extra: json!({ "retry_after_ms": ms }),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "M_LIMIT_EXCEEDED",
            "Zu viele Anfragen in kurzer Zeit. Bitte warte einen Moment.",
        )
    })
}

/// Sends per session per minute.
const SENDS_PER_MINUTE: u32 = 30;
/// New sessions per address per minute.
const SESSIONS_PER_MINUTE: u32 = 10;
/// Other calls per session per minute (typing, read, history, polls).
const CALLS_PER_MINUTE: u32 = 300;

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            ApiError::new(StatusCode::BAD_REQUEST, "M_BAD_JSON", format!("Ungültige Angaben: {e}"))
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "M_NOT_JSON", "Die Anfrage ist kein JSON.")
        }
    })
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    h.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A browser on another site than the bridge's may act only for an institution that lists
/// that site's origin.
async fn check_origin(b: &Bridge, h: &HeaderMap, institution: &str) -> Result<(), ApiError> {
    let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if same_origin(origin, host) || b.core.origin_allowed_for(institution, origin).await {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
        "Diese Website darf den Chat dieser Beratungsstelle nicht einbinden.",
    ))
}

async fn session_of(b: &Bridge, h: &HeaderMap) -> Result<Session, ApiError> {
    let token = bearer(h)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN", "Es fehlt die Sitzung."))?;
    let s = b.core.session(token).await?;
    check_origin(b, h, &s.institution).await?;
    limited(b, format!("calls:{}", s.id), CALLS_PER_MINUTE)?;
    Ok(s)
}

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

async fn config_route(State(b): State<Arc<Bridge>>, Path(inst): Path<String>) -> ApiResult {
    let c = b.core.config(&inst).await?;
    let mut res = Json(c).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenSession {
    area: Area,
    form: Form,
    token: Option<String>,
}

/// The peer's address, when the server runs with connect info (else empty).
struct PeerIp(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip());
        // Behind a reverse proxy on the same host or network, the proxy's last
        // `X-Forwarded-For` entry is the visitor's address.
        let forwarded = || {
            parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
        };
        let ip = match peer {
            Some(p) if is_local_network(p) => forwarded().unwrap_or(p).to_string(),
            Some(p) => p.to_string(),
            None => String::new(),
        };
        Ok(PeerIp(ip))
    }
}

fn is_local_network(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn open_session_route(
    State(b): State<Arc<Bridge>>,
    PeerIp(ip): PeerIp,
    h: HeaderMap,
    Path(inst): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    check_origin(&b, &h, &inst).await?;
    limited(&b, format!("sessions:{ip}"), SESSIONS_PER_MINUTE)?;
    let req: OpenSession = body(&bytes)?;
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
    let (token, s) = b.core.open_session(&inst, req.area, req.form, identity).await?;
    let state = b.core.state(&s).await?;
    Ok((StatusCode::CREATED, Json(session_json(&s, &state, Some(&token)))).into_response())
}

async fn session_route(State(b): State<Arc<Bridge>>, h: HeaderMap) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let state = b.core.state(&s).await?;
    Ok(Json(session_json(&s, &state, None)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    before: Option<String>,
    limit: Option<usize>,
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::invalid(format!("Ungültige Angaben in der Adresse: {}", e.body_text())))
}

async fn history_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    q: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 100);
    let (messages, more) = b.core.history(&s, q.before.as_deref(), limit).await?;
    Ok(Json(json!({ "messages": messages, "more": more })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendText {
    txn_id: String,
    text: String,
}

/// A client-chosen transaction ID: 1 to 64 of `A-Z a-z 0-9 . _ -`.
fn check_txn_id(t: &str) -> Result<(), ApiError> {
    let ok =
        !t.is_empty() && t.len() <= 64 && t.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
    ok.then_some(()).ok_or_else(|| ApiError::invalid("txn_id: 1 bis 64 Zeichen aus A–Z, a–z, 0–9, . _ -"))
}

/// A text message: not empty, at most [`MAX_TEXT_CHARS`], no control characters but line
/// breaks and tabs.
fn check_text(t: &str) -> Result<String, ApiError> {
    let text = t.trim();
    let n = text.chars().count();
    if n == 0 {
        return Err(ApiError::invalid("Die Nachricht ist leer."));
    }
    if n > MAX_TEXT_CHARS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
            format!("Eine Nachricht hat höchstens {MAX_TEXT_CHARS} Zeichen."),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(ApiError::invalid("Die Nachricht enthält unzulässige Steuerzeichen."));
    }
    Ok(text.to_owned())
}

async fn send_route(State(b): State<Arc<Bridge>>, h: HeaderMap, bytes: axum::body::Bytes) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let req: SendText = body(&bytes)?;
    check_txn_id(&req.txn_id)?;
    let text = check_text(&req.text)?;
    limited(&b, format!("send:{}", s.id), SENDS_PER_MINUTE)?;
    let m = b.core.send_text(&s, &req.txn_id, &text).await?;
    Ok((StatusCode::CREATED, Json(m)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Typing {
    typing: bool,
}

async fn typing_route(State(b): State<Arc<Bridge>>, h: HeaderMap, bytes: axum::body::Bytes) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let req: Typing = body(&bytes)?;
    b.core.typing(&s, req.typing).await?;
    Ok(Json(json!({})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Read {
    up_to: String,
}

async fn read_route(State(b): State<Arc<Bridge>>, h: HeaderMap, bytes: axum::body::Bytes) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let req: Read = body(&bytes)?;
    if req.up_to.is_empty() || req.up_to.len() > 255 {
        return Err(ApiError::invalid("up_to ist keine Nachrichten-ID."));
    }
    b.core.read(&s, &req.up_to).await?;
    Ok(Json(json!({})).into_response())
}

async fn end_route(State(b): State<Arc<Bridge>>, h: HeaderMap) -> ApiResult {
    let s = session_of(&b, &h).await?;
    b.core.end(&s).await?;
    b.hub.publish(&s.conversation, Frame::StateChanged);
    Ok(Json(json!({})).into_response())
}

async fn delete_my_data_route(State(b): State<Arc<Bridge>>, h: HeaderMap) -> ApiResult {
    let s = session_of(&b, &h).await?;
    b.core.delete_my_data(&s).await?;
    b.hub.publish(&s.conversation, Frame::StateChanged);
    Ok(Json(json!({})).into_response())
}

/// # `POST /files`: several files at once (`multipart/form-data`, parts named `file`). All
/// are checked before any is sent.
async fn files_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    mp: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let mut mp = mp.map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "M_INVALID_PARAM",
            "Dateien werden als multipart/form-data gesendet (Feld „file“).",
        )
    })?;
    let too_big = |name: &str| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
            format!("„{name}“ ist zu groß (höchstens {} MB je Datei).", b.max_file_bytes / (1024 * 1024)),
        )
    };
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        let mut field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "M_TOO_LARGE",
                    "Die Dateien sind zusammen zu groß.",
                ))
            }
            Err(_) => return Err(ApiError::invalid("Die Daten sind unvollständig oder fehlerhaft.")),
        };
        if field.name() != Some("file") {
            return Err(ApiError::invalid("Dateien werden im Feld „file“ gesendet."));
        }
        if files.len() == b.max_files {
            return Err(ApiError::invalid(format!("Höchstens {} Dateien auf einmal.", b.max_files)));
        }
        let raw = field.file_name().unwrap_or_default();
        let name = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ApiError::invalid("Ein Dateiname fehlt oder ist ungültig (höchstens 200 Zeichen)."));
        }
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(c)) => {
                    if (bytes.len() + c.len()) as u64 > b.max_file_bytes {
                        return Err(too_big(&name));
                    }
                    bytes.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_big(&name)),
                Err(_) => return Err(ApiError::invalid("Die Daten sind unvollständig oder fehlerhaft.")),
            }
        }
        if bytes.is_empty() {
            return Err(ApiError::invalid(format!("„{name}“ ist leer.")));
        }
        b.core.check_file(&name, &bytes[..bytes.len().min(8192)])?;
        files.push((name, bytes));
    }
    if files.is_empty() {
        return Err(ApiError::invalid("Es wurde keine Datei ausgewählt."));
    }
    // Counted before any is sent, so the rate limit never cuts an upload in half.
    for _ in &files {
        limited(&b, format!("send:{}", s.id), SENDS_PER_MINUTE)?;
    }
    let mut messages = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        messages.push(b.core.send_file(&s, &name, bytes).await?);
    }
    Ok((StatusCode::CREATED, Json(json!({ "messages": messages }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoiceQuery {
    duration_ms: u64,
}

/// # `POST /voice?duration_ms=…`: a recording as the raw body.
async fn voice_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    q: Result<Query<VoiceQuery>, axum::extract::rejection::QueryRejection>,
    bytes: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let q = query(q)?;
    let bytes = bytes.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE", "Die Sprachnachricht ist zu lang.")
    })?;
    if q.duration_ms == 0 || q.duration_ms > MAX_VOICE_MS {
        return Err(ApiError::invalid("Eine Sprachnachricht dauert höchstens 10 Minuten."));
    }
    let mime = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    if mime != "audio/webm" && mime != "audio/ogg" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "M_INVALID_PARAM",
            "Sprachnachrichten werden als audio/webm oder audio/ogg gesendet.",
        ));
    }
    if bytes.is_empty() {
        return Err(ApiError::invalid("Die Sprachnachricht ist leer."));
    }
    limited(&b, format!("send:{}", s.id), SENDS_PER_MINUTE)?;
    let m = b.core.send_voice(&s, &mime, q.duration_ms, bytes.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(m)).into_response())
}

/// # `GET /media/{id}`: a file or voice message of the session's conversation.
async fn media_route(State(b): State<Arc<Bridge>>, h: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let m = b.core.media(&s, &id).await?;
    let ascii: String = m
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || ".-_ ".contains(c) { c } else { '_' })
        .collect();
    let mut res = m.bytes.into_response();
    let hs = res.headers_mut();
    let ct = HeaderValue::from_str(&m.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    hs.insert(header::CONTENT_TYPE, ct);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"")) {
        hs.insert(header::CONTENT_DISPOSITION, v);
    }
    hs.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    hs.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    hs.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(res)
}

/// # `DELETE /messages/{id}`: removes one of the client's own messages.
async fn delete_message_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    b.core.delete_message(&s, &id).await?;
    b.hub.publish(&s.conversation, Frame::Redacted(id));
    Ok(Json(json!({})).into_response())
}

/// A frame as the browser gets it.
fn frame_json(f: &Value) -> String {
    f.to_string()
}

fn message_frame(m: &Message) -> Value {
    json!({ "type": "message", "message": m })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<String>,
    timeout: Option<u64>,
}

/// # `GET /events`: long polling, for where WebSockets do not get through.
async fn events_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let q = query(q)?;
    let mut rx = b.hub.subscribe(&s.conversation);
    let mut events: Vec<Value> =
        b.core.since(&s, q.after.as_deref()).await?.iter().map(message_frame).collect();
    if events.is_empty() {
        let wait = Duration::from_secs(q.timeout.unwrap_or(25).min(25));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => break,
                Ok(Ok(Frame::Message(m))) => events.push(message_frame(&m)),
                Ok(Ok(Frame::Redacted(id))) => events.push(json!({ "type": "redacted", "id": id })),
                Ok(Ok(Frame::StateChanged)) => {
                    events.push(json!({ "type": "state", "state": b.core.state(&s).await? }))
                }
                Ok(Err(RecvError::Lagged(_))) => {
                    events.extend(b.core.since(&s, q.after.as_deref()).await?.iter().map(message_frame));
                }
                Ok(Err(RecvError::Closed)) => break,
            }
            if !events.is_empty() {
                // Gather what arrives right after (a burst) into the same answer.
                while let Ok(Ok(f)) = tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
                    match f {
                        Frame::Message(m) => events.push(message_frame(&m)),
                        Frame::Redacted(id) => events.push(json!({ "type": "redacted", "id": id })),
                        Frame::StateChanged => {}
                    }
                }
                break;
            }
        }
    }
    let state = b.core.state(&s).await?;
    Ok(Json(json!({ "events": events, "state": state })).into_response())
}

/// # `GET /ws`
async fn ws_route(State(b): State<Arc<Bridge>>, h: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !same_origin(origin, host) && !b.core.origin_allowed(origin).await {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "M_FORBIDDEN",
                "Diese Website darf den Chat nicht einbinden.",
            )
            .into_response();
        }
    }
    // Small buffers: thousands of mostly idle connections (frames are small; the buffers
    // grow for a large one).
    let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let site = origin.filter(|o| !same_origin(o, host));
    ws.max_message_size(64 * 1024)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| serve_socket(b, socket, site))
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Incoming {
    Auth { session: String, after: Option<String> },
    Typing { typing: bool },
    Ping,
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket.send(WsMessage::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

async fn send_json(socket: &mut WebSocket, v: &Value) -> bool {
    socket.send(WsMessage::Text(frame_json(v).into())).await.is_ok()
}

/// `site`: the browser's origin when it is not the bridge's own.
async fn serve_socket(b: Arc<Bridge>, mut socket: WebSocket, site: Option<String>) {
    // The first frame authenticates (a token in the URL would end up in access logs).
    let first = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
    let Ok(Some(Ok(WsMessage::Text(text)))) = first else {
        return close(socket, 4001, "auth expected").await;
    };
    let Ok(Incoming::Auth { session, after }) = serde_json::from_str::<Incoming>(&text) else {
        return close(socket, 4001, "auth expected").await;
    };
    let s = match b.core.session(&session).await {
        Ok(s) => s,
        Err(CoreError::Blocked(_)) => return close(socket, 4003, "blocked").await,
        Err(_) => return close(socket, 4001, "invalid session").await,
    };
    if let Some(origin) = &site {
        if !b.core.origin_allowed_for(&s.institution, origin).await {
            return close(socket, 4001, "origin not allowed for this institution").await;
        }
    }
    // Subscribe before catching up, so nothing falls between the two.
    let mut rx = b.hub.subscribe(&s.conversation);
    let Ok(state) = b.core.state(&s).await else { return close(socket, 1011, "try again").await };
    if !send_json(&mut socket, &json!({ "type": "ready", "state": state })).await {
        return;
    }
    let mut sent: HashSet<String> = HashSet::new();
    let mut last = after;
    match b.core.since(&s, last.as_deref()).await {
        Ok(missed) => {
            for m in missed {
                sent.insert(m.id.clone());
                last = Some(m.id.clone());
                if !send_json(&mut socket, &message_frame(&m)).await {
                    return;
                }
            }
        }
        Err(_) => return close(socket, 1011, "try again").await,
    }
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    ping.tick().await;
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let out = match frame {
                    Ok(Frame::Message(m)) => {
                        if !sent.insert(m.id.clone()) {
                            continue;
                        }
                        last = Some(m.id.clone());
                        message_frame(&m)
                    }
                    Ok(Frame::Redacted(id)) => json!({ "type": "redacted", "id": id }),
                    Ok(Frame::StateChanged) => match b.core.state(&s).await {
                        Ok(state) => {
                            let blocked = state.blocked;
                            let v = json!({ "type": "state", "state": state });
                            if !send_json(&mut socket, &v).await {
                                return;
                            }
                            if blocked {
                                return close(socket, 4003, "blocked").await;
                            }
                            continue;
                        }
                        Err(_) => continue,
                    },
                    Err(RecvError::Lagged(_)) => {
                        // Fell behind: catch up from history.
                        let Ok(missed) = b.core.since(&s, last.as_deref()).await else { continue };
                        for m in missed {
                            if sent.insert(m.id.clone()) {
                                last = Some(m.id.clone());
                                if !send_json(&mut socket, &message_frame(&m)).await {
                                    return;
                                }
                            }
                        }
                        continue;
                    }
                    Err(RecvError::Closed) => return close(socket, 1012, "restart").await,
                };
                if !send_json(&mut socket, &out).await {
                    return;
                }
            }
            incoming = socket.recv() => {
                match incoming {
                    Some(Ok(WsMessage::Text(t))) => match serde_json::from_str::<Incoming>(&t) {
                        Ok(Incoming::Typing { typing })
                            if b.limits.hit(format!("calls:{}", s.id), CALLS_PER_MINUTE).is_ok() =>
                        {
                            let _ = b.core.typing(&s, typing).await;
                        }
                        Ok(Incoming::Ping) if !send_json(&mut socket, &json!({ "type": "pong" })).await => return,
                        _ => {}
                    },
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                if socket.send(WsMessage::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_transaction_ids_are_checked() {
        assert!(check_text("  ").is_err());
        assert_eq!(check_text(" Hallo 👋\nwie geht's? ").ok().as_deref(), Some("Hallo 👋\nwie geht's?"));
        assert!(check_text(&"x".repeat(MAX_TEXT_CHARS + 1)).is_err());
        assert!(check_text("a\u{7}b").is_err());
        assert!(check_txn_id("m1.abc_DEF-9").is_ok());
        assert!(check_txn_id("").is_err());
        assert!(check_txn_id("a/b").is_err());
        assert!(check_txn_id(&"a".repeat(65)).is_err());
    }

    #[test]
    fn the_rate_limiter_counts_per_key() {
        let r = RateLimiter::default();
        for _ in 0..3 {
            assert!(r.hit("a".into(), 3).is_ok());
        }
        assert!(r.hit("a".into(), 3).is_err());
        assert!(r.hit("b".into(), 3).is_ok());
    }

    #[test]
    fn same_origin_compares_the_host() {
        assert!(same_origin("http://localhost:8009", "localhost:8009"));
        assert!(!same_origin("http://evil.example", "localhost:8009"));
        assert!(!same_origin("http://localhost:8009", ""));
    }
}
