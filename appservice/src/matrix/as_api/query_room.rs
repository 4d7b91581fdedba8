//! # `GET /_matrix/app/v1/rooms/{roomAlias}`
//!
//! Whether a room alias in our namespace should exist (spec: `query_room.yaml`). The
//! service claims no aliases, so none is created on demand.

use crate::web::error::MatrixError;
use crate::web::path::Path;

/// Always 404 `M_NOT_FOUND`: no aliases are created on demand.
pub(super) async fn query_room_route(Path(_alias): Path<String>) -> MatrixError {
    MatrixError::not_found("No such room alias")
}
