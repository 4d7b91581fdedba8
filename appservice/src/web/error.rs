//! The one error type of the HTTP APIs: a Matrix `errcode` with its HTTP status, mapped to a
//! response in exactly one place. Internals never reach the caller; 5xx are logged at
//! error level, 4xx at debug.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

/// What a route answers.
pub type ApiResult<T = Response> = Result<T, MatrixError>;

/// The language of an API's error texts: English for operators (admin API, module), German
/// for counsellors and clients.
#[derive(Clone, Copy, Debug)]
pub enum Lang {
    /// English.
    En,
    /// German.
    De,
}

/// Parses a JSON request body: `M_NOT_JSON` for what is not JSON, `M_BAD_JSON` (with
/// serde's explanation) for JSON of the wrong shape. Nested as deep as the homeserver
/// nests event content (the module API carries it).
pub fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8], lang: Lang) -> Result<T, MatrixError> {
    let (invalid, not_json) = match lang {
        Lang::En => ("Invalid request body", "Content not JSON"),
        Lang::De => ("Ungültige Angaben", "Die Anfrage ist kein JSON."),
    };
    crate::json::from_slice(bytes).map_err(|e| match e {
        crate::json::JsonError::Data(e) => MatrixError::bad_json(format!("{invalid}: {e}")),
        crate::json::JsonError::Syntax(_) => MatrixError::not_json(not_json.to_owned()),
    })
}

/// An error answered as `{"errcode": …, "error": …}`.
#[derive(Debug, thiserror::Error)]
#[error("{status} {errcode}: {message}")]
pub struct MatrixError {
    /// HTTP status.
    pub status: StatusCode,
    /// Matrix error code, e.g. `M_FORBIDDEN`.
    pub errcode: &'static str,
    /// Human-readable text (no personal data, no internals).
    pub message: String,
}

impl MatrixError {
    /// Builds an error.
    pub fn new(status: StatusCode, errcode: &'static str, message: impl Into<String>) -> Self {
        Self { status, errcode, message: message.into() }
    }

    /// 401 `M_UNAUTHORIZED`: no credentials were supplied.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED", "Missing access token")
    }

    /// 403 `M_FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "M_FORBIDDEN", message)
    }

    /// 404 `M_NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "M_NOT_FOUND", message)
    }

    /// 404 `M_UNRECOGNIZED`: no such endpoint.
    pub fn unrecognized() -> Self {
        Self::new(StatusCode::NOT_FOUND, "M_UNRECOGNIZED", "Unrecognized request")
    }

    /// 400 `M_NOT_JSON`.
    pub fn not_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_NOT_JSON", message)
    }

    /// 400 `M_BAD_JSON`.
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_BAD_JSON", message)
    }

    /// 400 `M_INVALID_PARAM`: the request is well-formed but a value is not acceptable.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", message)
    }

    /// 500 `M_UNKNOWN`; the cause is logged here and not shown to the caller.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN", "Internal server error")
    }
}

impl IntoResponse for MatrixError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, errcode = self.errcode, "request failed");
        } else {
            tracing::debug!(status = %self.status, errcode = self.errcode, "request refused");
        }
        (self.status, Json(json!({ "errcode": self.errcode, "error": self.message }))).into_response()
    }
}

impl From<sqlx::Error> for MatrixError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(&e)
    }
}

impl From<crate::error::Error> for MatrixError {
    /// The one mapping of the service's errors to HTTP answers.
    fn from(e: crate::error::Error) -> Self {
        use crate::error::Error;
        use assisto_core::DomainError as D;
        match e {
            Error::Domain(D::Invalid(m)) => MatrixError::invalid(m),
            Error::Domain(D::NotFound(m)) => MatrixError::not_found(m),
            Error::Domain(D::Conflict(m)) => MatrixError::new(StatusCode::CONFLICT, "M_CONFLICT", m),
            Error::Domain(D::Forbidden(m)) => MatrixError::forbidden(m),
            Error::Homeserver(crate::matrix::homeserver::HsError::NoAdminToken) => {
                tracing::error!(
                    "this needs Synapse's admin API, but homeserver.admin_token is not configured"
                );
                MatrixError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "M_UNKNOWN",
                    "Not configured: this needs homeserver.admin_token (a Synapse admin's access token)",
                )
            }
            Error::Homeserver(e) => {
                tracing::error!(error = %e, "homeserver request failed");
                MatrixError::new(StatusCode::BAD_GATEWAY, "M_UNKNOWN", "The homeserver failed; try again")
            }
            Error::Database(e) => MatrixError::internal(&e),
            Error::Internal(e) => MatrixError::internal(&e),
        }
    }
}
