//! The static routes: the script, its styles, the demo page and the OpenAPI description.
//! None needs a session, none is rate limited.

use axum::{
    extract::Query,
    http::header,
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::ApiError;

const SCRIPT: &str = include_str!("../../embed/embed.js");
const STYLE: &str = include_str!("../../embed/embed.css");
const DEMO: &str = include_str!("../../embed/demo.html");
const OPENAPI: &str = include_str!("../../../docs/embed-api.yaml");

/// # `GET /openapi.yaml`: this API's description.
pub(super) async fn openapi_route() -> Response {
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
pub(super) async fn script_route() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// # `GET /embed.css`: its styles (loaded by the script).
pub(super) async fn style_route() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[derive(Deserialize)]
pub(super) struct DemoQuery {
    institution: Option<String>,
}

/// # `GET /demo?institution=<slug>`: a page with the chat bubble of an institution, to try
/// the embed (default: `demo`, the institution `make run` creates).
pub(super) async fn demo_route(Query(q): Query<DemoQuery>) -> Response {
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
