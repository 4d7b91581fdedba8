//! The export's HTTP: for counsellors in the tools API
//! (`GET /_assisto/tools/v1/rooms/{room_id}/export?format=csv|pdf`, OpenID), the one-time
//! links of the bot command (`GET /_assisto/tools/v1/exports/{token}`), and for the
//! institution in the admin API (`GET /_assisto/admin/v1/rooms/{room_id}/export`).
//! Answers are attachments that no cache keeps (`Cache-Control: no-store`).

use std::sync::Arc;

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::IntoResponse,
};
use futures::StreamExt;
use serde::Deserialize;

use crate::app::services::Services;
use crate::features::export::{csv, pdf, Format, Subject};
use crate::store::audit;
use crate::web::auth::AdminAuth;
use crate::web::error::{ApiResult, MatrixError};
use crate::web::openid::Counsellor;
use crate::web::path::Path;
use crate::web::query::Query;

#[derive(Deserialize)]
pub(crate) struct FormatQuery {
    #[serde(default)]
    format: Option<String>,
}

fn format_of(q: &FormatQuery) -> ApiResult<Format> {
    match q.format.as_deref() {
        None => Ok(Format::Pdf),
        Some(f) => Format::parse(f).ok_or_else(|| MatrixError::invalid("„format“ ist „csv“ oder „pdf“.")),
    }
}

/// # `GET /_assisto/tools/v1/rooms/{room_id}/export?format=csv|pdf`
pub(crate) async fn counsellor_route(
    c: Counsellor,
    State(s): State<Arc<Services>>,
    Path(room): Path<String>,
    Query(q): Query<FormatQuery>,
) -> ApiResult {
    let format = format_of(&q)?;
    let subject = s.export.subject(Some(&c.user_id), &room).await?;
    export(&s, subject, format, &c.user_id).await
}

/// # `GET /_assisto/tools/v1/exports/{token}`: a one-time link of `!assisto export`.
pub(crate) async fn link_route(State(s): State<Arc<Services>>, Path(token): Path<String>) -> ApiResult {
    let (user, room, format) = s
        .export
        .redeem(&token)
        .ok_or_else(|| MatrixError::not_found("Dieser Link ist abgelaufen oder wurde schon benutzt."))?;
    // Checked again: the counsellor may have left the institution since.
    let subject = s.export.subject(Some(&user), &room).await?;
    export(&s, subject, format, &user).await
}

/// # `GET /_assisto/admin/v1/rooms/{room_id}/export?format=csv|pdf`
pub(crate) async fn admin_route(
    _: AdminAuth,
    State(s): State<Arc<Services>>,
    Path(room): Path<String>,
    Query(q): Query<FormatQuery>,
) -> ApiResult {
    let format = format_of(&q)?;
    let subject = s.export.subject(None, &room).await?;
    export(&s, subject, format, "admin-api").await
}

/// The export as an attachment: CSV streamed as the history is read, PDF once written.
async fn export(s: &Arc<Services>, subject: Subject, format: Format, actor: &str) -> ApiResult {
    let what = match format {
        Format::Csv => "export.csv",
        Format::Pdf => "export.pdf",
    };
    audit::record(&s.db, actor, what, &subject.room_id, None).await?;
    let tz = s.export.timezone();
    let now = chrono::Utc::now().with_timezone(&tz);
    let file = format!("Chatverlauf-{}.{}", now.format("%Y-%m-%d"), format.extension());
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let reader = s.export.clone();
    let room = subject.room_id.clone();
    let pages = tokio::spawn(async move { reader.pages(&room, tx).await });
    let (content_type, body) = match format {
        Format::Csv => {
            let head = futures::stream::once(async { Ok(bytes::Bytes::from(csv::head())) });
            let rows = futures::stream::unfold(rx, |mut rx| async move {
                let lines = rx.recv().await?;
                Some((Ok(bytes::Bytes::from(csv::lines(&lines))), rx))
            });
            ("text/csv; charset=utf-8", Body::from_stream(head.chain(rows).chain(failure(pages))))
        }
        Format::Pdf => {
            let period = s.export.period(&subject.room_id).await?;
            let exported = now.format("%d.%m.%Y, %H:%M Uhr").to_string();
            let bytes = tokio::task::spawn_blocking(move || pdf::render(&subject, &period, &exported, rx))
                .await
                .map_err(|e| MatrixError::internal(&e))?
                .map_err(|e| MatrixError::internal(&e))?;
            match pages.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(e) => return Err(MatrixError::internal(&e)),
            }
            ("application/pdf", Body::from(bytes))
        }
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// Ends the stream with an error if reading the history failed half-way (the download
/// then breaks off rather than looking complete).
fn failure(
    pages: tokio::task::JoinHandle<Result<usize, crate::error::Error>>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    futures::stream::once(async move {
        match pages.await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading the history for an export failed");
                Some(Err(std::io::Error::other("export failed")))
            }
            Err(e) => Some(Err(std::io::Error::other(e.to_string()))),
        }
    })
    .filter_map(|x| async move { x })
}
