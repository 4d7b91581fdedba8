//! The media routes: sending files and voice messages, downloading a file or voice message
//! of the session's conversation.

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
    Json,
};
use serde::Deserialize;
use serde_json::json;

use super::{limits::Limit, query, session_of, ApiError, ApiResult, Bridge};

/// Longest voice message.
pub const MAX_VOICE_MS: u64 = 10 * 60 * 1000;
/// Largest voice message (10 minutes of Opus at a generous bitrate).
pub const MAX_VOICE_BYTES: usize = 10 * 1024 * 1024;

/// # `POST /files`: several files at once (`multipart/form-data`, parts named `file`). All
/// are checked before any is sent.
pub(super) async fn files_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    mp: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let mut mp = mp.map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "M_INVALID_PARAM",
            "Dateien werden als multipart/form-data gesendet (Feld „file“).",
        )
    })?;
    let too_big = |name: &str| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
            format!("„{name}“ ist zu groß (höchstens {} MB je Datei).", b.max_file_bytes / (1024 * 1024)),
        )
    };
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        let mut field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "M_TOO_LARGE",
                    "Die Dateien sind zusammen zu groß.",
                ))
            }
            Err(_) => return Err(ApiError::invalid("Die Daten sind unvollständig oder fehlerhaft.")),
        };
        if field.name() != Some("file") {
            return Err(ApiError::invalid("Dateien werden im Feld „file“ gesendet."));
        }
        if files.len() == b.max_files {
            return Err(ApiError::invalid(format!("Höchstens {} Dateien auf einmal.", b.max_files)));
        }
        let raw = field.file_name().unwrap_or_default();
        let name = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ApiError::invalid("Ein Dateiname fehlt oder ist ungültig (höchstens 200 Zeichen)."));
        }
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(c)) => {
                    if (bytes.len() + c.len()) as u64 > b.max_file_bytes {
                        return Err(too_big(&name));
                    }
                    bytes.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_big(&name)),
                Err(_) => return Err(ApiError::invalid("Die Daten sind unvollständig oder fehlerhaft.")),
            }
        }
        if bytes.is_empty() {
            return Err(ApiError::invalid(format!("„{name}“ ist leer.")));
        }
        b.core.check_file(&name, &bytes[..bytes.len().min(8192)])?;
        files.push((name, bytes));
    }
    if files.is_empty() {
        return Err(ApiError::invalid("Es wurde keine Datei ausgewählt."));
    }
    // Counted before any is sent, all or none, so the rate limit never cuts an upload in half.
    b.limits.check_n(Limit::Send, &s.id, files.len())?;
    let mut messages = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        messages.push(b.core.send_file(&s, &name, bytes).await?);
    }
    Ok((StatusCode::CREATED, Json(json!({ "messages": messages }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VoiceQuery {
    duration_ms: u64,
}

/// # `POST /voice?duration_ms=…`: a recording as the raw body.
pub(super) async fn voice_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    q: Result<Query<VoiceQuery>, axum::extract::rejection::QueryRejection>,
    bytes: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let q = query(q)?;
    let bytes = bytes.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE", "Die Sprachnachricht ist zu lang.")
    })?;
    if q.duration_ms == 0 || q.duration_ms > MAX_VOICE_MS {
        return Err(ApiError::invalid("Eine Sprachnachricht dauert höchstens 10 Minuten."));
    }
    let mime = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    if mime != "audio/webm" && mime != "audio/ogg" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "M_INVALID_PARAM",
            "Sprachnachrichten werden als audio/webm oder audio/ogg gesendet.",
        ));
    }
    if bytes.is_empty() {
        return Err(ApiError::invalid("Die Sprachnachricht ist leer."));
    }
    b.limits.check(Limit::Send, &s.id)?;
    let m = b.core.send_voice(&s, &mime, q.duration_ms, bytes.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(m)).into_response())
}

/// # `GET /media/{id}`: a file or voice message of the session's conversation.
pub(super) async fn media_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let m = b.core.media(&s, &id).await?;
    let ascii: String = m
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || ".-_ ".contains(c) { c } else { '_' })
        .collect();
    let mut res = m.bytes.into_response();
    let hs = res.headers_mut();
    let ct = HeaderValue::from_str(&m.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    hs.insert(header::CONTENT_TYPE, ct);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"")) {
        hs.insert(header::CONTENT_DISPOSITION, v);
    }
    hs.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    hs.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    hs.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(res)
}
