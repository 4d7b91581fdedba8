//! Path parameters with the one error answer: axum's own `Path` refuses a value that does
//! not parse (an ID that is not a number, broken percent-encoding) with a `text/plain`
//! body; this one answers `400 M_INVALID_PARAM` as JSON, as every other refusal.

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::de::DeserializeOwned;

use crate::web::error::MatrixError;

/// A route's path parameters.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = MatrixError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, MatrixError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(MatrixError::invalid(format!(
                "Ungültige Angaben in der Adresse (invalid path parameter): {}",
                e.body_text()
            ))),
        }
    }
}
