//! Query strings with the one error answer: axum's own `Query` refuses one that does not
//! parse (a field twice, a number that is none) with a `text/plain` body; this one answers
//! `400 M_INVALID_PARAM` as JSON, as every other refusal.

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::de::DeserializeOwned;

use crate::web::error::MatrixError;

/// A route's query parameters.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Query<T> {
    type Rejection = MatrixError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, MatrixError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(MatrixError::invalid(format!(
                "Ungültige Angaben in der Adresse (invalid query parameter): {}",
                e.body_text()
            ))),
        }
    }
}
