//! # `/_assisto/client-file/v1/…`
//!
//! The client file (Ratsuchendenmappe) for counsellors: master data, notes, monitorings,
//! documents (in [`crate::features::client_file::documents`]), blocking and the deletion mark. Used by the widget in client chats and usable on its own
//! (OpenAPI: `docs/client-file-api.yaml`).
//!
//! Authentication: `Authorization: Bearer <OpenID token>` — a token the counsellor's client
//! obtains from the homeserver (`POST /_matrix/client/v3/user/{userId}/openid/request_token`,
//! or the widget API's `get_openid`). The service asks the homeserver whose it is and refuses
//! tokens of users of other homeservers. Every access is checked: only counsellors of the
//! client's institution. Error texts are German: the widget shows them.

use std::sync::Arc;

use axum::{
    extract::State,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post, put},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::app::services::Services;
use crate::features::client_file::store as client_file;
use crate::features::deletion::store as deletions;
use crate::features::people::store as people;
use crate::store::audit;
use crate::web::error::{json_body, ApiResult, Lang, MatrixError};
use crate::web::openid::Counsellor;
use crate::web::path::Path;

/// The routes (nested under `/_assisto/client-file/v1`).
pub(crate) fn routes(files: &crate::app::config::FilesConfig) -> Router<Arc<Services>> {
    Router::new()
        .route("/openapi.yaml", get(openapi_route))
        .route("/clients/{client}", get(get_client_route).put(put_client_route))
        .route("/clients/{client}/notes", get(list_notes_route).post(add_note_route))
        .route("/clients/{client}/notes/{id}", put(edit_note_route).delete(delete_note_route))
        .route("/clients/{client}/monitorings", get(list_monitorings_route).post(add_monitoring_route))
        .route(
            "/clients/{client}/monitorings/{id}",
            get(get_monitoring_route).put(edit_monitoring_route).delete(delete_monitoring_route),
        )
        .route(
            "/clients/{client}/documents",
            get(crate::features::client_file::documents::list_route)
                .post(crate::features::client_file::documents::upload_route)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::features::client_file::documents::upload_body_limit(files),
                )),
        )
        .route(
            "/clients/{client}/documents/{id}",
            get(crate::features::client_file::documents::download_route)
                .delete(crate::features::client_file::documents::delete_route),
        )
        .route("/clients/{client}/block", post(block_route))
        .route("/clients/{client}/unblock", post(unblock_route))
        .route("/clients/{client}/deletion", post(mark_deletion_route).delete(unmark_deletion_route))
}

const OPENAPI: &str = include_str!("../../../../docs/client-file-api.yaml");

const WIDGET: &str = include_str!("../../../widget/mappe.html");

/// # `GET /_assisto/widget/mappe`
///
/// The client-file widget (German, accessible), placed in every client chat. It gets an
/// OpenID token through the widget API and uses this API.
pub(crate) async fn widget_route() -> impl IntoResponse {
    crate::web::widget_page(WIDGET)
}

async fn openapi_route() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

/// The master-data fields an institution records, with their largest length.
const PROFILE_FIELDS: [(&str, usize); 10] = [
    ("first_name", 100),
    ("last_name", 100),
    ("email", 200),
    ("phone", 40),
    ("street", 200),
    ("postcode", 10),
    ("city", 100),
    ("birth_year", 4),
    ("gender", 40),
    ("language", 40),
];

/// Checks master data; the error names the field, in German.
pub fn check_profile(profile: &Map<String, Value>) -> Result<(), String> {
    for (k, v) in profile {
        let Some((_, max)) = PROFILE_FIELDS.iter().find(|(f, _)| f == k) else {
            return Err(format!("Unbekanntes Feld „{k}“."));
        };
        let Some(text) = v.as_str() else { return Err(format!("„{k}“ muss Text sein.")) };
        if text.chars().count() > *max || text.chars().any(char::is_control) {
            return Err(format!("„{k}“ darf höchstens {max} Zeichen haben."));
        }
        let ok = match k.as_str() {
            "email" => text.is_empty() || (text.contains('@') && !text.contains(char::is_whitespace)),
            "phone" => text.chars().all(|c| c.is_ascii_digit() || " +-/()".contains(c)),
            "birth_year" => text.is_empty() || (text.len() == 4 && text.chars().all(|c| c.is_ascii_digit())),
            "postcode" => text.chars().all(|c| c.is_ascii_alphanumeric() || c == ' '),
            _ => true,
        };
        if !ok {
            return Err(format!("„{k}“ hat kein gültiges Format."));
        }
    }
    Ok(())
}

/// A note's text: 5 to 1000 characters.
pub fn check_note(text: &str) -> Result<String, String> {
    let t = text.trim();
    let n = t.chars().count();
    if !(5..=1000).contains(&n) {
        return Err(format!("Eine Notiz hat 5 bis 1000 Zeichen (diese hat {n})."));
    }
    Ok(t.to_owned())
}

async fn client_view(s: &Services, c: &people::Client) -> Result<Value, MatrixError> {
    let profile = client_file::profile(&s.db, &c.user_id).await?.unwrap_or(json!({}));
    let deletion = deletions::get(&s.db, &c.user_id).await?;
    Ok(json!({
        "user_id": c.user_id,
        "display_name": c.display_name,
        "kind": c.kind,
        "blocked": c.blocked,
        "profile": profile,
        "deletion": deletion,
    }))
}

async fn get_client_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(client): Path<String>,
) -> ApiResult {
    let (_, c) = caller.file_of(&s, &client).await?;
    Ok(Json(client_view(&s, &c).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientUpdate {
    display_name: String,
    #[serde(default)]
    profile: Map<String, Value>,
}

async fn put_client_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(client): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    let (user, c) = caller.file_of(&s, &client).await?;
    let req: ClientUpdate = json_body(&b, Lang::De)?;
    let name = assisto_core::check_name("display_name", &req.display_name)
        .map_err(|_| MatrixError::invalid("Der Name hat 1 bis 100 Zeichen."))?;
    check_profile(&req.profile).map_err(MatrixError::invalid)?;
    if name != c.display_name {
        // The display name follows: counsellors see the new name in their chats.
        s.hs.set_displayname(&c.user_id, &name).await.map_err(crate::error::Error::from)?;
    }
    client_file::set_profile(&s.db, &c.user_id, &name, &Value::Object(req.profile)).await?;
    audit::record(&s.db, &user, "client_file.master_data", &c.user_id, None).await?;
    let c = people::client_by_id(&s.db, &client).await?.ok_or_else(|| MatrixError::not_found("gone"))?;
    Ok(Json(client_view(&s, &c).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

async fn list_notes_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(client): Path<String>,
) -> ApiResult {
    caller.file_of(&s, &client).await?;
    let notes = client_file::notes(&s.db, &client).await?;
    Ok(Json(json!({ "count": notes.len(), "items": notes })).into_response())
}

async fn add_note_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(client): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    let (user, c) = caller.file_of(&s, &client).await?;
    let req: NoteBody = json_body(&b, Lang::De)?;
    let text = check_note(&req.text).map_err(MatrixError::invalid)?;
    let n = client_file::add_note(&s.db, &c.user_id, &user, &text).await?;
    audit::record(&s.db, &user, "client_file.note_add", &c.user_id, None).await?;
    Ok((StatusCode::CREATED, Json(n)).into_response())
}

async fn edit_note_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path((client, id)): Path<(String, i64)>,
    b: axum::body::Bytes,
) -> ApiResult {
    let (user, c) = caller.file_of(&s, &client).await?;
    let req: NoteBody = json_body(&b, Lang::De)?;
    let text = check_note(&req.text).map_err(MatrixError::invalid)?;
    let n = client_file::edit_note(&s.db, &c.user_id, id, &text)
        .await?
        .ok_or_else(|| MatrixError::not_found("Diese Notiz gibt es nicht."))?;
    audit::record(&s.db, &user, "client_file.note_edit", &c.user_id, None).await?;
    Ok(Json(n).into_response())
}

async fn delete_note_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path((client, id)): Path<(String, i64)>,
) -> ApiResult {
    let (user, c) = caller.file_of(&s, &client).await?;
    if !client_file::delete_note(&s.db, &c.user_id, id).await? {
        return Err(MatrixError::not_found("Diese Notiz gibt es nicht."));
    }
    audit::record(&s.db, &user, "client_file.note_delete", &c.user_id, None).await?;
    Ok(Json(json!({})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitoringBody {
    duration_minutes: Option<i64>,
    subject: Option<String>,
    #[serde(default)]
    details: Map<String, Value>,
}

fn check_monitoring(m: MonitoringBody) -> Result<(i64, String, Value), MatrixError> {
    let minutes = m
        .duration_minutes
        .ok_or_else(|| MatrixError::invalid("Die Dauer in Minuten ist ein Pflichtfeld."))?;
    if !(1..=1440).contains(&minutes) {
        return Err(MatrixError::invalid("Die Dauer liegt zwischen 1 und 1440 Minuten."));
    }
    let subject = m.subject.map(|s| s.trim().to_owned()).unwrap_or_default();
    let n = subject.chars().count();
    if n == 0 {
        return Err(MatrixError::invalid("Das Thema ist ein Pflichtfeld."));
    }
    if n > 200 {
        return Err(MatrixError::invalid("Das Thema hat höchstens 200 Zeichen."));
    }
    let details = Value::Object(m.details);
    if details.to_string().len() > 4096 {
        return Err(MatrixError::invalid("Die weiteren Angaben sind zu lang (höchstens 4 KB)."));
    }
    Ok((minutes, subject, details))
}

async fn list_monitorings_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(client): Path<String>,
) -> ApiResult {
    caller.file_of(&s, &client).await?;
    let items = client_file::monitorings(&s.db, &client).await?;
    Ok(Json(json!({ "count": items.len(), "items": items })).into_response())
}

async fn add_monitoring_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(client): Path<String>,
    b: axum::body::Bytes,
) -> ApiResult {
    let (user, c) = caller.file_of(&s, &client).await?;
    let (minutes, subject, details) = check_monitoring(json_body(&b, Lang::De)?)?;
    let m = client_file::add_monitoring(&s.db, &c.user_id, &user, minutes, &subject, &details).await?;
    audit::record(&s.db, &user, "client_file.monitoring_add", &c.user_id, None).await?;
    Ok((StatusCode::CREATED, Json(m)).into_response())
}

async fn get_monitoring_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path((client, id)): Path<(String, i64)>,
) -> ApiResult {
    caller.file_of(&s, &client).await?;
    let m = client_file::monitoring_by_id(&s.db, &client, id)
        .await?
        .ok_or_else(|| MatrixError::not_found("Dieses Monitoring gibt es nicht."))?;
    Ok(Json(m).into_response())
}

async fn edit_monitoring_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path((client, id)): Path<(String, i64)>,
    b: axum::body::Bytes,
) -> ApiResult {
    let (user, c) = caller.file_of(&s, &client).await?;
    let (minutes, subject, details) = check_monitoring(json_body(&b, Lang::De)?)?;
    let m = client_file::edit_monitoring(&s.db, &c.user_id, id, minutes, &subject, &details)
        .await?
        .ok_or_else(|| MatrixError::not_found("Dieses Monitoring gibt es nicht."))?;
    audit::record(&s.db, &user, "client_file.monitoring_edit", &c.user_id, None).await?;
    Ok(Json(m).into_response())
}

async fn delete_monitoring_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path((client, id)): Path<(String, i64)>,
) -> ApiResult {
    let (user, c) = caller.file_of(&s, &client).await?;
    if !client_file::delete_monitoring(&s.db, &c.user_id, id).await? {
        return Err(MatrixError::not_found("Dieses Monitoring gibt es nicht."));
    }
    audit::record(&s.db, &user, "client_file.monitoring_delete", &c.user_id, None).await?;
    Ok(Json(json!({})).into_response())
}

async fn block_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(client): Path<String>,
) -> ApiResult {
    let (user, _) = caller.file_of(&s, &client).await?;
    Ok(Json(s.provisioning.set_blocked(&user, &client, true).await?).into_response())
}

async fn unblock_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(client): Path<String>,
) -> ApiResult {
    let (user, _) = caller.file_of(&s, &client).await?;
    Ok(Json(s.provisioning.set_blocked(&user, &client, false).await?).into_response())
}

async fn mark_deletion_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(client): Path<String>,
) -> ApiResult {
    let (user, _) = caller.file_of(&s, &client).await?;
    let d = s.deleter.mark(&user, &client).await?;
    Ok(Json(d).into_response())
}

async fn unmark_deletion_route(
    caller: Counsellor,
    State(s): State<Arc<Services>>,
    Path(client): Path<String>,
) -> ApiResult {
    let (user, _) = caller.file_of(&s, &client).await?;
    s.deleter.unmark(&user, &client).await?;
    Ok(Json(json!({})).into_response())
}

#[cfg(test)]
mod tests {
    use crate::features::client_file::routes::*;

    #[test]
    fn notes_have_5_to_1000_characters() {
        assert!(check_note("abcd").is_err());
        assert!(check_note("  abcd  ").is_err());
        assert!(check_note("abcde").is_ok());
        assert!(check_note(&"ä".repeat(1000)).is_ok());
        assert!(check_note(&"ä".repeat(1001)).is_err());
    }

    #[test]
    fn master_data_fields_are_checked() {
        let ok = json!({"first_name": "Maria", "email": "m@example.org", "phone": "+49 221 123", "birth_year": "1999"});
        assert!(check_profile(ok.as_object().expect("object")).is_ok());
        for bad in [
            json!({"shoe_size": "42"}),
            json!({"email": "kein-at"}),
            json!({"birth_year": "99"}),
            json!({"phone": "call me"}),
            json!({"city": 5}),
        ] {
            assert!(check_profile(bad.as_object().expect("object")).is_err(), "{bad}");
        }
    }
}
