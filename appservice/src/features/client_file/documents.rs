//! # `/_assisto/client-file/v1/clients/{client}/documents…`
//!
//! Documents of the client file: upload several at once (`multipart/form-data`, each file in
//! a part named `file`), list newest first with a count, download, delete. Size, number and
//! type are limited (type by name *and* content); an upload with one bad file stores none.
//! The bytes go to the file store ([`crate::features::client_file::files`]); the same access check as the rest of
//! the client file applies to every request.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{multipart::MultipartRejection, Multipart, State},
    http::{header, HeaderValue, StatusCode},
    response::IntoResponse,
    Json,
};
use serde_json::json;

use crate::app::services::Services;
use crate::features::client_file::files;
use crate::features::client_file::files::Staged;
use crate::features::client_file::store as client_file;
use crate::store::audit;
use crate::web::error::{ApiResult, MatrixError};
use crate::web::openid::Counsellor;
use crate::web::path::Path;

fn storage_error(e: &std::io::Error) -> MatrixError {
    tracing::error!(error = %e, "the file store failed");
    MatrixError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "M_UNKNOWN",
        "Die Datei konnte nicht gespeichert oder gelesen werden. Bitte später erneut versuchen.",
    )
}

/// Megabytes for messages, rounded down (limits are whole megabytes in practice).
fn megabytes(bytes: u64) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb >= 1.0 {
        format!("{} MB", (mb * 10.0).floor() / 10.0)
    } else {
        format!("{} KB", bytes / 1024)
    }
}

/// The body limit of the upload route: every file at its largest, plus the multipart framing.
pub(super) fn upload_body_limit(c: &crate::app::config::FilesConfig) -> usize {
    let files = c.max_document_bytes.saturating_mul(c.max_documents_per_upload as u64);
    usize::try_from(files.saturating_add(1024 * 1024)).unwrap_or(usize::MAX)
}

/// # `GET …/documents`
pub(super) async fn list_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(client): Path<String>,
) -> ApiResult {
    caller.file_of(&s, &client).await?;
    let items = client_file::documents(&s.db, &client).await?;
    let total: i64 = items.iter().map(|d| d.size).sum();
    let limits = &s.config.files;
    Ok(Json(json!({
        "count": items.len(),
        "total_bytes": total,
        "limits": {
            "max_document_bytes": limits.max_document_bytes,
            "max_documents_per_upload": limits.max_documents_per_upload,
            "accepted": files::ACCEPTED,
        },
        "items": items,
    }))
    .into_response())
}

/// A checked file waiting to be committed.
struct Received {
    staged: Staged,
    name: String,
    content_type: &'static str,
    sha256: String,
    size: i64,
}

/// # `POST …/documents` (`multipart/form-data`)
pub(super) async fn upload_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(client): Path<String>,
    mp: Result<Multipart, MultipartRejection>,
) -> ApiResult {
    let (user, c) = caller.file_of(&s, &client).await?;
    let mut mp = mp.map_err(|_| {
        MatrixError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "M_INVALID_PARAM",
            "Dateien werden als multipart/form-data hochgeladen (Feld „file“).",
        )
    })?;
    let mut received = Vec::new();
    let outcome = receive(&s, &mut mp, &mut received).await;
    if let Err(e) = outcome {
        for r in received {
            r.staged.discard().await;
        }
        // Read what is left (bounded by the body limit) so the client gets the answer
        // instead of a connection closed mid-upload.
        while let Ok(Some(mut f)) = mp.next_field().await {
            while let Ok(Some(_)) = f.chunk().await {}
        }
        return Err(e);
    }
    // Entries first, then the files into place: a crash in between leaves an entry without
    // its file (shown as missing, deletable) and the upload in tmp/ (removed at the next
    // start) — never a file nobody knows of.
    let store = &s.provisioning.files;
    let new: Vec<client_file::NewDocument> = received
        .iter()
        .map(|r| client_file::NewDocument {
            file_name: r.name.clone(),
            content_type: r.content_type,
            size: r.size,
            sha256: r.sha256.clone(),
            storage_key: store.new_key(&c.user_id),
        })
        .collect();
    let docs = match client_file::add_documents(&s.db, &c.user_id, &user, &new).await {
        Ok(d) => d,
        Err(e) => {
            for r in received {
                r.staged.discard().await;
            }
            return Err(e.into());
        }
    };
    let mut placed = Vec::new();
    for (r, d) in received.into_iter().zip(&docs) {
        if let Err(e) = store.commit(r.staged, &d.storage_key).await {
            for key in placed {
                let _ = store.remove(key).await;
            }
            for d in &docs {
                let _ = client_file::delete_document(&s.db, &c.user_id, d.id).await;
            }
            return Err(storage_error(&e));
        }
        placed.push(&d.storage_key);
    }
    for d in &docs {
        audit::record(&s.db, &user, "client_file.document_add", &c.user_id, Some(&d.id.to_string())).await?;
    }
    Ok((StatusCode::CREATED, Json(json!({ "count": docs.len(), "items": docs }))).into_response())
}

/// Reads every part into the store's staging area, checking each as it comes.
async fn receive(s: &Services, mp: &mut Multipart, out: &mut Vec<Received>) -> Result<(), MatrixError> {
    let limits = &s.config.files;
    let too_big = |name: &str| {
        MatrixError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
            format!("„{name}“ ist zu groß (höchstens {} je Datei).", megabytes(limits.max_document_bytes)),
        )
    };
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(MatrixError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "M_TOO_LARGE",
                    "Die Dateien sind zusammen zu groß.",
                ))
            }
            Err(_) => {
                return Err(MatrixError::invalid(
                    "Die hochgeladenen Daten sind unvollständig oder fehlerhaft.",
                ))
            }
        };
        if field.name() != Some("file") {
            return Err(MatrixError::invalid("Dateien werden im Feld „file“ hochgeladen."));
        }
        if out.len() == limits.max_documents_per_upload {
            return Err(MatrixError::invalid(format!(
                "Höchstens {} Dateien auf einmal.",
                limits.max_documents_per_upload
            )));
        }
        let name =
            files::check_file_name(field.file_name().unwrap_or_default()).map_err(MatrixError::invalid)?;
        let mut staged = s.provisioning.files.stage().await.map_err(|e| storage_error(&e))?;
        let mut field = field;
        let outcome = async {
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        if staged.size() + chunk.len() as u64 > limits.max_document_bytes {
                            return Err(too_big(&name));
                        }
                        staged.write(&chunk).await.map_err(|e| storage_error(&e))?;
                    }
                    Ok(None) => break,
                    Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_big(&name)),
                    Err(_) => {
                        return Err(MatrixError::invalid(
                            "Die hochgeladenen Daten sind unvollständig oder fehlerhaft.",
                        ))
                    }
                }
            }
            if staged.size() == 0 {
                return Err(MatrixError::invalid(format!("„{name}“ ist leer.")));
            }
            let content_type = files::document_type(&name, staged.head())
                .map_err(|m| MatrixError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "M_INVALID_PARAM", m))?;
            let sha256 = staged.finish().await.map_err(|e| storage_error(&e))?;
            Ok((content_type, sha256))
        }
        .await;
        match outcome {
            Ok((content_type, sha256)) => {
                let size = i64::try_from(staged.size()).unwrap_or(i64::MAX);
                out.push(Received { staged, name, content_type, sha256, size })
            }
            Err(e) => {
                staged.discard().await;
                return Err(e);
            }
        }
    }
    if out.is_empty() {
        return Err(MatrixError::invalid("Es wurde keine Datei ausgewählt."));
    }
    Ok(())
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266 / RFC 8187).
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The counsellor allowed to see this client's file, the client, and one of its documents.
async fn document_for(
    s: &Services,
    caller: &Counsellor,
    client: &str,
    id: i64,
) -> Result<(String, crate::features::people::store::Client, client_file::Document), MatrixError> {
    let (user, c) = caller.file_of(s, client).await?;
    let doc = client_file::document_by_id(&s.db, &c.user_id, id)
        .await?
        .ok_or_else(|| MatrixError::not_found("Dieses Dokument gibt es nicht."))?;
    Ok((user, c, doc))
}

/// # `GET …/documents/{id}`: the file itself, as a download.
pub(super) async fn download_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path((client, id)): Path<(String, i64)>,
) -> ApiResult {
    let (user, c, doc) = document_for(&s, &caller, &client, id).await?;
    let file = match s.provisioning.files.open_file(&doc.storage_key).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MatrixError::not_found("Die Datei dieses Dokuments ist nicht mehr vorhanden."))
        }
        Err(e) => return Err(storage_error(&e)),
    };
    audit::record(&s.db, &user, "client_file.document_download", &c.user_id, Some(&id.to_string())).await?;
    let header =
        |v: &str| HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut res = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let hs = res.headers_mut();
    hs.insert(header::CONTENT_TYPE, header(&doc.content_type));
    hs.insert(header::CONTENT_LENGTH, HeaderValue::from(doc.size));
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&doc.file_name)) {
        hs.insert(header::CONTENT_DISPOSITION, v);
    }
    hs.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    hs.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    hs.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    hs.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(res)
}

/// # `DELETE …/documents/{id}`
///
/// The file goes first, then the entry: stopped in between, the entry remains and the
/// request can be repeated; no file is ever left without an entry.
pub(super) async fn delete_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path((client, id)): Path<(String, i64)>,
) -> ApiResult {
    let (user, c, doc) = document_for(&s, &caller, &client, id).await?;
    s.provisioning.files.remove(&doc.storage_key).await.map_err(|e| storage_error(&e))?;
    client_file::delete_document(&s.db, &c.user_id, id).await?;
    audit::record(&s.db, &user, "client_file.document_delete", &c.user_id, Some(&id.to_string())).await?;
    Ok(Json(json!({})).into_response())
}

#[cfg(test)]
mod tests {
    use crate::features::client_file::documents::*;

    #[test]
    fn download_names_are_safe_and_keep_umlauts() {
        let v = content_disposition("Bericht über \"A\".pdf");
        assert_eq!(v, "attachment; filename=\"Bericht _ber _A_.pdf\"; filename*=UTF-8''Bericht%20%C3%BCber%20%22A%22.pdf");
        assert!(HeaderValue::from_str(&v).is_ok());
    }

    #[test]
    fn sizes_read_in_megabytes() {
        assert_eq!(megabytes(20 * 1024 * 1024), "20 MB");
        assert_eq!(megabytes(64 * 1024), "64 KB");
    }
}
