//! The message routes: history, sending a text, deleting one of the client's messages,
//! typing and read receipts, the transcript to download.

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::IntoResponse,
    Json,
};
use serde::Deserialize;
use serde_json::json;

use super::{body, limits::Limit, query, session_of, ApiError, ApiResult, Bridge};
use crate::hub::Frame;

/// Longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
    before: Option<String>,
    limit: Option<usize>,
}

/// `GET /transcript`: the conversation as a text file to download.
pub(super) async fn transcript_route(State(b): State<Arc<Bridge>>, h: HeaderMap) -> ApiResult {
    let s = session_of(&b, &h).await?;
    // A transcript reads the whole history: it counts as a message for the rate limit.
    b.limits.check(Limit::Send, &s.id)?;
    let text = b.core.transcript(&s).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"chatverlauf.txt\""),
            (header::CACHE_CONTROL, "private, no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
        .into_response())
}

pub(super) async fn history_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    q: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let q = query(q)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 100);
    let (messages, more) = b.core.history(&s, q.before.as_deref(), limit).await?;
    Ok(Json(json!({ "messages": messages, "more": more })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendText {
    txn_id: String,
    text: String,
}

/// A client-chosen transaction ID: 1 to 64 of `A-Z a-z 0-9 . _ -`.
fn check_txn_id(t: &str) -> Result<(), ApiError> {
    let ok =
        !t.is_empty() && t.len() <= 64 && t.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
    ok.then_some(()).ok_or_else(|| ApiError::invalid("txn_id: 1 bis 64 Zeichen aus A–Z, a–z, 0–9, . _ -"))
}

/// A text message: not empty, at most [`MAX_TEXT_CHARS`], no control characters but line
/// breaks and tabs.
fn check_text(t: &str) -> Result<String, ApiError> {
    let text = t.trim();
    let n = text.chars().count();
    if n == 0 {
        return Err(ApiError::invalid("Die Nachricht ist leer."));
    }
    if n > MAX_TEXT_CHARS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
            format!("Eine Nachricht hat höchstens {MAX_TEXT_CHARS} Zeichen."),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(ApiError::invalid("Die Nachricht enthält unzulässige Steuerzeichen."));
    }
    Ok(text.to_owned())
}

pub(super) async fn send_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let req: SendText = body(&bytes)?;
    check_txn_id(&req.txn_id)?;
    let text = check_text(&req.text)?;
    b.limits.check(Limit::Send, &s.id)?;
    let m = b.core.send_text(&s, &req.txn_id, &text).await?;
    Ok((StatusCode::CREATED, Json(m)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Typing {
    typing: bool,
}

pub(super) async fn typing_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let req: Typing = body(&bytes)?;
    b.core.typing(&s, req.typing).await?;
    Ok(Json(json!({})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Read {
    up_to: String,
}

pub(super) async fn read_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let req: Read = body(&bytes)?;
    if req.up_to.is_empty() || req.up_to.len() > 255 {
        return Err(ApiError::invalid("up_to ist keine Nachrichten-ID."));
    }
    b.core.read(&s, &req.up_to).await?;
    Ok(Json(json!({})).into_response())
}

/// # `DELETE /messages/{id}`: removes one of the client's own messages.
pub(super) async fn delete_message_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    b.core.delete_message(&s, &id).await?;
    b.hub.publish(&s.conversation, Frame::Redacted(id));
    Ok(Json(json!({})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_transaction_ids_are_checked() {
        assert!(check_text("  ").is_err());
        assert_eq!(check_text(" Hallo 👋\nwie geht's? ").ok().as_deref(), Some("Hallo 👋\nwie geht's?"));
        assert!(check_text(&"x".repeat(MAX_TEXT_CHARS + 1)).is_err());
        assert!(check_text("a\u{7}b").is_err());
        assert!(check_txn_id("m1.abc_DEF-9").is_ok());
        assert!(check_txn_id("").is_err());
        assert!(check_txn_id("a/b").is_err());
        assert!(check_txn_id(&"a".repeat(65)).is_err());
    }
}
