//! The homeserver's credentials: `Authorization: Bearer <hs_token>`, compared in constant
//! time. A missing or wrong token never reaches a handler. The legacy `access_token` query
//! parameter is refused unless it equals the header's token.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::app::services::Services;
use crate::web::auth::{bearer, matches};
use crate::web::error::MatrixError;

fn query_token(req: &Request) -> Option<String> {
    let q = req.uri().query()?;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned())
}

/// Middleware on every application-service route.
pub(super) async fn require_hs_token(
    State(state): State<Arc<Services>>,
    req: Request,
    next: Next,
) -> Response {
    let header = bearer(req.headers());
    let query = query_token(&req);
    let verdict = match (header, query) {
        (None, None) => Err(MatrixError::unauthorized()),
        (Some(None), _) => Err(MatrixError::forbidden("Malformed Authorization header")),
        (None, Some(_)) => Err(MatrixError::forbidden(
            "The access_token query parameter is only accepted with an Authorization header",
        )),
        (Some(Some(h)), q) => {
            if !matches(&state.as_api.hs_token_digest, h) {
                Err(MatrixError::forbidden("Invalid token"))
            } else if q.is_some_and(|q| !matches(&state.as_api.hs_token_digest, &q)) {
                Err(MatrixError::forbidden("access_token does not match the Authorization header"))
            } else {
                Ok(())
            }
        }
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(e) => {
            state.metrics.transactions.with_label_values(&["refused"]).inc();
            tracing::warn!(path = %req.uri().path(), errcode = e.errcode, "refused a request without valid homeserver credentials");
            e.into_response()
        }
    }
}
