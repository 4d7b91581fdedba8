//! # `/_assisto/counters/v1/…`
//!
//! The dashboard's counters (OpenAPI: `docs/counters-api.yaml`): `GET /counts` once, and
//! `GET /stream` as Server-Sent Events — the counts at once, then again whenever they or the
//! status change. Authentication: `Authorization: Bearer <OpenID token>` of a counsellor of
//! this homeserver (a browser's `EventSource` cannot send it: read the stream with `fetch`).

use std::sync::Arc;
use std::time::Duration;

use axum::{
    extract::State,
    http::header,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse,
    },
    routing::get,
    Json, Router,
};

use crate::app::services::Services;
use crate::features::counters::{Counts, COALESCE};
use crate::features::people::store as people;
use crate::web::error::{ApiResult, MatrixError};
use crate::web::openid::Counsellor;

const KEEPALIVE: Duration = Duration::from_secs(25);

/// The routes (nested under `/_assisto/counters/v1`).
pub(crate) fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/openapi.yaml", get(openapi_route))
        .route("/counts", get(counts_route))
        .route("/stream", get(stream_route))
}

const OPENAPI: &str = include_str!("../../../../docs/counters-api.yaml");

async fn openapi_route() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

/// # `GET /_assisto/counters/v1/counts`
async fn counts_route(c: Counsellor, State(s): State<Arc<Services>>) -> ApiResult {
    Ok(Json(s.counters.counts(&c.user_id).await?).into_response())
}

/// # `GET /_assisto/counters/v1/stream`
async fn stream_route(c: Counsellor, State(s): State<Arc<Services>>) -> ApiResult {
    let first = s.counters.counts(&c.user_id).await?;
    let institution = people::counsellor_by_id(&s.db, &c.user_id)
        .await
        .map_err(|e| MatrixError::internal(&e))?
        .map(|p| p.institution_id)
        .unwrap_or_default();
    struct Watch {
        s: Arc<Services>,
        user: String,
        institution: String,
        rooms: tokio::sync::broadcast::Receiver<String>,
        desk: tokio::sync::broadcast::Receiver<String>,
        last: Option<Counts>,
        next: Option<Counts>,
    }
    let start = Watch {
        rooms: s.counters.watch(),
        desk: s.live.watch_desk(),
        s,
        user: c.user_id,
        institution,
        last: None,
        next: Some(first),
    };
    let stream = futures::stream::unfold(start, |mut w| async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            if let Some(n) = w.next.take() {
                if w.last.as_ref() != Some(&n) {
                    let event =
                        Event::default().event("counts").data(serde_json::to_string(&n).unwrap_or_default());
                    w.last = Some(n);
                    return Some((Ok::<_, std::convert::Infallible>(event), w));
                }
            }
            let relevant = tokio::select! {
                r = w.rooms.recv() => match r {
                    Ok(room) => w.s.counters.concerns(&w.user, &room).await.unwrap_or(true),
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return None,
                },
                d = w.desk.recv() => match d {
                    Ok(i) => i == w.institution,
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return None,
                },
            };
            if !relevant {
                continue;
            }
            tokio::time::sleep(COALESCE).await;
            while w.rooms.try_recv().is_ok() {}
            while w.desk.try_recv().is_ok() {}
            match w.s.counters.counts(&w.user).await {
                Ok(n) => w.next = Some(n),
                Err(e) => tracing::warn!(error = %e, "reading a counsellor's counters failed"),
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEPALIVE)).into_response())
}
