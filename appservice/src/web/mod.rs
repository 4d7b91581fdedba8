//! The product's own HTTP: the admin API, authentication of its callers, the one error
//! answer, OpenID verification of counsellors, health and metrics, and what the widget
//! pages share (their security headers, their script).

pub mod admin;
pub mod auth;
pub mod error;
pub mod openid;
pub mod openid_cache;
pub mod ops;
pub mod path;
pub mod query;

use axum::response::IntoResponse;

/// A widget's page (the client file's, the live-chat desk's): German HTML that talks only
/// to this service, never cached, framed by Element.
pub fn widget_page(html: &'static str) -> impl IntoResponse {
    use axum::http::header;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
}

/// What the widgets share (the widget API with Element, calls with its OpenID token).
const WIDGET_SCRIPT: &str = include_str!("../../widget/widget-api.js");

/// What the widget pages' styles share (colours, type, tabs, forms, buttons).
const WIDGET_STYLES: &str = include_str!("../../widget/widget.css");

/// # `GET /_assisto/widget/widget-api.js`: the script the widget pages share.
pub async fn widget_script_route() -> impl IntoResponse {
    widget_asset("text/javascript; charset=utf-8", WIDGET_SCRIPT)
}

/// # `GET /_assisto/widget/widget.css`: the styles the widget pages share.
pub async fn widget_styles_route() -> impl IntoResponse {
    widget_asset("text/css; charset=utf-8", WIDGET_STYLES)
}

fn widget_asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    use axum::http::header;
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

/// Distinguishes an absent field (`None`) from `null` (`Some(None)`): use as
/// `#[serde(default, deserialize_with = "crate::web::absent_or_null")]`.
pub fn absent_or_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}
