//! # `GET /_matrix/app/v1/thirdparty/…`
//!
//! Third-party network lookups (spec: `protocols.yaml`). The service bridges no
//! third-party protocol (its registration lists none), so every lookup finds nothing and
//! says so with the spec's 404.

use crate::web::error::MatrixError;
use crate::web::path::Path;

/// `GET /thirdparty/protocol/{protocol}`.
pub(super) async fn protocol_route(Path(_p): Path<String>) -> MatrixError {
    MatrixError::not_found("No protocol was found with the given path")
}

/// `GET /thirdparty/user/{protocol}`.
pub(super) async fn user_route(Path(_p): Path<String>) -> MatrixError {
    MatrixError::not_found("No users were found with the given parameters")
}

/// `GET /thirdparty/location/{protocol}`.
pub(super) async fn location_route(Path(_p): Path<String>) -> MatrixError {
    MatrixError::not_found("No mappings were found with the given parameters")
}

/// `GET /thirdparty/user?userid=…`.
pub(super) async fn user_reverse_route() -> MatrixError {
    MatrixError::not_found("No users were found with the given user ID")
}

/// `GET /thirdparty/location?alias=…`.
pub(super) async fn location_reverse_route() -> MatrixError {
    MatrixError::not_found("No mappings were found with the given alias")
}
