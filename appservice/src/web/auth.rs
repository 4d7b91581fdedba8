//! Who may call the product's HTTP APIs: Bearer tokens compared in constant time (as
//! SHA-256 digests), and the [`AdminAuth`] extractor of the admin API.

use std::sync::Arc;

use axum::{extract::FromRequestParts, http::request::Parts};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::services::Services;
use crate::web::error::MatrixError;

/// SHA-256 of a token; comparing digests keeps the comparison constant-length.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub(crate) fn matches(expected: &[u8; 32], given: &str) -> bool {
    expected.ct_eq(&digest(given)).into()
}

/// The token of an `Authorization: Bearer <token>` header: `None` without the header,
/// `Some(None)` for another scheme or a header that is not text. The scheme is
/// case-insensitive (RFC 7235, section 2.1).
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<Option<&str>> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?;
    Some(value.to_str().ok().and_then(|v| {
        let (scheme, token) = v.trim_start().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
    }))
}

/// Checks `Authorization: Bearer` against a digest; `None` means the endpoint is disabled
/// (no token configured) and refuses everything.
pub(crate) fn require_bearer(
    headers: &axum::http::HeaderMap,
    expected: Option<&[u8; 32]>,
) -> Result<(), MatrixError> {
    let given = bearer(headers).flatten();
    match (expected, given) {
        (_, None) => Err(MatrixError::unauthorized()),
        (None, Some(_)) => Err(MatrixError::forbidden("This API is disabled: no token is configured")),
        (Some(d), Some(t)) if matches(d, t) => Ok(()),
        (Some(_), Some(_)) => Err(MatrixError::forbidden("Invalid token")),
    }
}

/// The caller of the admin API, authenticated with `appservice.admin_api_token`. As the
/// first argument of a route, it refuses before anything else is read.
pub struct AdminAuth;

impl FromRequestParts<Arc<Services>> for AdminAuth {
    type Rejection = MatrixError;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<Services>) -> Result<Self, MatrixError> {
        require_bearer(&parts.headers, s.web.admin_token_digest.as_ref()).map(|()| AdminAuth)
    }
}
