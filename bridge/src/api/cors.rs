//! Which browser origins may call: the CORS middleware (origins any institution
//! configured, or the bridge's own) and the stricter check per institution, for a session's
//! or a path's institution.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{ApiError, Bridge};

/// CORS: only origins an institution configured (or the bridge's own) may call from a
/// browser. A preflight is answered here; the session check of the real request decides.
pub(super) async fn cors(State(b): State<Arc<Bridge>>, req: Request, next: Next) -> Response {
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

pub(super) fn same_origin(origin: &str, host: &str) -> bool {
    !host.is_empty() && origin.split_once("://").is_some_and(|(_, rest)| rest == host)
}

/// A browser on another site than the bridge's may act only for an institution that lists
/// that site's origin.
pub(super) async fn check_origin(b: &Bridge, h: &HeaderMap, institution: &str) -> Result<(), ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_compares_the_host() {
        assert!(same_origin("http://localhost:8009", "localhost:8009"));
        assert!(!same_origin("http://evil.example", "localhost:8009"));
        assert!(!same_origin("http://localhost:8009", ""));
    }
}
