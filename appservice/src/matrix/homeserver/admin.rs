//! The Synapse admin API (`/_synapse/admin/…`) and the erasure module's endpoint
//! (`/_synapse/client/assisto/v1/erase`, `synapse_erasure/`), one method each. All of them
//! authenticate with `homeserver.admin_token` and fail with [`HsError::NoAdminToken`]
//! without it.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::matrix::homeserver::{HomeserverClient, HsError};

const ADMIN_V1: [&str; 3] = ["_synapse", "admin", "v1"];
const ADMIN_V2: [&str; 3] = ["_synapse", "admin", "v2"];

/// The erasure module's endpoint in Synapse (`synapse_erasure/assisto_erasure.py`).
const ERASE: [&str; 5] = ["_synapse", "client", "assisto", "v1", "erase"];

/// Where one of Synapse's background jobs (a redaction, a room deletion) stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Finished successfully (`complete`).
    Complete,
    /// Gave up (`failed`).
    Failed,
    /// Anything else: scheduled, active, shutting down, purging…
    #[default]
    #[serde(other)]
    Running,
}

/// A job status answer: `{"status": …}` (other fields are not read).
#[derive(Debug, Deserialize)]
struct StatusAnswer {
    #[serde(default)]
    status: JobStatus,
}

/// `GET /_synapse/admin/v1/room/{roomId}/media` answer.
#[derive(Debug, Default, Deserialize)]
pub struct RoomMedia {
    /// `mxc://` URIs of this homeserver's media the room's events refer to.
    #[serde(default)]
    pub local: Vec<String>,
    /// `mxc://` URIs of other homeservers' media the room's events refer to.
    #[serde(default)]
    pub remote: Vec<String>,
}

/// `DELETE /_synapse/admin/v2/rooms/{roomId}` request body.
#[derive(Debug, Default, Serialize)]
pub struct DeleteRoom {
    /// Remove every trace of the room from the database.
    pub purge: bool,
    /// Keep anybody from joining the room ID again.
    pub block: bool,
    /// Purge even if local users are still in the room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_purge: Option<bool>,
    /// The notice local members get in the room they are moved to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `DELETE /_synapse/admin/v2/rooms/{roomId}` answer.
#[derive(Debug, Default, Deserialize)]
pub struct RoomDeletion {
    /// The background job to ask `delete_status` about (empty if Synapse gave none).
    #[serde(default)]
    pub delete_id: String,
}

/// `GET /_synapse/admin/v1/users/{userId}/media` answer, as far as the service reads it.
#[derive(Debug, Default, Deserialize)]
pub struct UserMedia {
    /// How many media items the user has uploaded (all pages).
    #[serde(default)]
    pub total: u64,
}

/// `GET /_synapse/admin/v1/users/{userId}/joined_rooms` answer, as far as the service
/// reads it.
#[derive(Debug, Default, Deserialize)]
pub struct UserJoinedRooms {
    /// How many rooms the user is joined to; none if Synapse did not say.
    #[serde(default)]
    pub total: Option<u64>,
}

/// `GET /_synapse/admin/v2/users/{userId}` answer, as far as the service reads it.
#[derive(Debug, Default, Deserialize)]
pub struct AdminUser {
    /// The account is deactivated.
    #[serde(default)]
    pub deactivated: bool,
    /// The account is marked as erased (GDPR).
    #[serde(default)]
    pub erased: bool,
}

impl HomeserverClient {
    /// `PUT /_synapse/admin/v2/users/{userId}`: creates or updates a local account.
    pub async fn admin_upsert_user(
        &self,
        user_id: &str,
        password: Option<&str>,
        displayname: &str,
    ) -> Result<(), HsError> {
        let path = [ADMIN_V2[0], ADMIN_V2[1], ADMIN_V2[2], "users", user_id];
        let mut body = json!({ "displayname": displayname, "admin": false });
        if let Some(p) = password {
            body["password"] = json!(p);
        }
        self.admin_request::<Value>(Method::PUT, &path, Some(&body)).await.map(|_| ())
    }

    /// `GET /_synapse/admin/v2/users/{userId}`: an account's details.
    pub async fn admin_user(&self, user_id: &str) -> Result<AdminUser, HsError> {
        let path = [ADMIN_V2[0], ADMIN_V2[1], ADMIN_V2[2], "users", user_id];
        self.admin_request(Method::GET, &path, None).await
    }

    /// `POST /_synapse/admin/v1/deactivate/{userId}`: deactivates an account, with `erase`
    /// marking it erased (Synapse then takes it out of every room).
    pub async fn admin_deactivate(&self, user_id: &str, erase: bool) -> Result<(), HsError> {
        let path = [ADMIN_V1[0], ADMIN_V1[1], ADMIN_V1[2], "deactivate", user_id];
        let body = json!({ "erase": erase });
        self.admin_request::<Value>(Method::POST, &path, Some(&body)).await.map(|_| ())
    }

    /// `POST /_synapse/admin/v1/user/{userId}/redact`: starts a background job redacting
    /// the user's events in `rooms`; returns the job's `redact_id`.
    pub async fn admin_redact_user(
        &self,
        user_id: &str,
        rooms: &[String],
        reason: &str,
    ) -> Result<String, HsError> {
        #[derive(Deserialize)]
        struct Started {
            redact_id: Option<String>,
        }
        let path = [ADMIN_V1[0], ADMIN_V1[1], ADMIN_V1[2], "user", user_id, "redact"];
        let body = json!({ "rooms": rooms, "reason": reason });
        let started: Started = self.admin_request(Method::POST, &path, Some(&body)).await?;
        started.redact_id.ok_or_else(|| HsError::Decode("no redact_id".into()))
    }

    /// `GET /_synapse/admin/v1/user/redact_status/{redactId}`: where a redaction job stands.
    /// Synapse forgets finished jobs after a while (`M_NOT_FOUND`).
    pub async fn admin_redact_status(&self, redact_id: &str) -> Result<JobStatus, HsError> {
        let path = [ADMIN_V1[0], ADMIN_V1[1], ADMIN_V1[2], "user", "redact_status", redact_id];
        self.admin_request::<StatusAnswer>(Method::GET, &path, None).await.map(|a| a.status)
    }

    /// `GET /_synapse/admin/v1/rooms/{roomId}`: whether Synapse knows the room (`false` for
    /// `M_NOT_FOUND`).
    pub async fn admin_room_exists(&self, room_id: &str) -> Result<bool, HsError> {
        let path = [ADMIN_V1[0], ADMIN_V1[1], ADMIN_V1[2], "rooms", room_id];
        match self.admin_request::<Value>(Method::GET, &path, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /_synapse/admin/v1/room/{roomId}/media`: the media the room's events refer to.
    pub async fn admin_room_media(&self, room_id: &str) -> Result<RoomMedia, HsError> {
        let path = [ADMIN_V1[0], ADMIN_V1[1], ADMIN_V1[2], "room", room_id, "media"];
        self.admin_request(Method::GET, &path, None).await
    }

    /// `DELETE /_synapse/admin/v2/rooms/{roomId}`: starts a background job deleting a room
    /// (everybody is kicked; with `purge`, its history goes too).
    pub async fn admin_delete_room(&self, room_id: &str, how: &DeleteRoom) -> Result<RoomDeletion, HsError> {
        let path = [ADMIN_V2[0], ADMIN_V2[1], ADMIN_V2[2], "rooms", room_id];
        let body = serde_json::to_value(how).map_err(|e| HsError::Decode(e.to_string()))?;
        self.admin_request(Method::DELETE, &path, Some(&body)).await
    }

    /// `GET /_synapse/admin/v2/rooms/delete_status/{deleteId}`: where a room deletion stands.
    pub async fn admin_room_delete_status(&self, delete_id: &str) -> Result<JobStatus, HsError> {
        let path = [ADMIN_V2[0], ADMIN_V2[1], ADMIN_V2[2], "rooms", "delete_status", delete_id];
        self.admin_request::<StatusAnswer>(Method::GET, &path, None).await.map(|a| a.status)
    }

    /// `DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}`: deletes one media item.
    pub async fn admin_delete_media(&self, server_name: &str, media_id: &str) -> Result<(), HsError> {
        let path = [ADMIN_V1[0], ADMIN_V1[1], ADMIN_V1[2], "media", server_name, media_id];
        self.admin_request::<Value>(Method::DELETE, &path, None).await.map(|_| ())
    }

    /// `GET /_synapse/admin/v1/users/{userId}/media`: the media a user uploaded (first page).
    pub async fn admin_user_media(&self, user_id: &str) -> Result<UserMedia, HsError> {
        let path = [ADMIN_V1[0], ADMIN_V1[1], ADMIN_V1[2], "users", user_id, "media"];
        self.admin_request(Method::GET, &path, None).await
    }

    /// `DELETE /_synapse/admin/v1/users/{userId}/media`: deletes one page (Synapse's default
    /// `limit`) of the media a user uploaded.
    pub async fn admin_delete_user_media(&self, user_id: &str) -> Result<(), HsError> {
        let path = [ADMIN_V1[0], ADMIN_V1[1], ADMIN_V1[2], "users", user_id, "media"];
        self.admin_request::<Value>(Method::DELETE, &path, None).await.map(|_| ())
    }

    /// `GET /_synapse/admin/v1/users/{userId}/joined_rooms`: the rooms a user is joined to.
    pub async fn admin_user_joined_rooms(&self, user_id: &str) -> Result<UserJoinedRooms, HsError> {
        let path = [ADMIN_V1[0], ADMIN_V1[1], ADMIN_V1[2], "users", user_id, "joined_rooms"];
        self.admin_request(Method::GET, &path, None).await
    }

    /// `POST /_synapse/client/assisto/v1/erase` (the erasure module, admin token): erases
    /// what Synapse keeps of a deactivated user in the rooms that stay. `M_UNRECOGNIZED` or
    /// `M_NOT_FOUND` means the module is not installed.
    pub async fn erase_user(&self, user_id: &str) -> Result<(), HsError> {
        let body = json!({ "user_id": user_id });
        self.admin_request::<Value>(Method::POST, &ERASE, Some(&body)).await.map(|_| ())
    }
}
