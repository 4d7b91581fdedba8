//! What the service does with each event of the rooms it sees.
//!
//! For now: it keeps room membership, lets the bot accept invites from users of this
//! homeserver (and decline others: managed rooms are not federated), and answers bot
//! commands. The counselling rules build on this.

use async_trait::async_trait;
use serde_json::Value;

use crate::{
    commands,
    db::{members, Db},
    event::RoomEvent,
    homeserver::{HomeserverClient, HsError},
    processor::{EventHandler, HandleError},
};

/// The service's event handler.
pub struct Assisto {
    pub(crate) db: Db,
    pub(crate) hs: HomeserverClient,
    pub(crate) bot_user_id: String,
}

impl Assisto {
    /// Creates the handler.
    pub fn new(db: Db, hs: HomeserverClient, bot_user_id: String) -> Self {
        Self { db, hs, bot_user_id }
    }

    /// Whether a user ID belongs to this homeserver.
    pub fn is_local(&self, user_id: &str) -> bool {
        user_id.rsplit_once(':').is_some_and(|(_, server)| server == self.hs.server_name())
    }

    async fn on_member(&self, ev: &RoomEvent) -> Result<(), HandleError> {
        let Some(target) = ev.state_key.as_deref() else {
            return Err(HandleError::Permanent("m.room.member without state_key".into()));
        };
        let Some(membership) = ev.content.get("membership").and_then(Value::as_str) else {
            return Err(HandleError::Permanent("m.room.member without membership".into()));
        };
        members::set(&self.db, &ev.room_id, target, membership).await.map_err(db_error)?;

        if target == self.bot_user_id && membership == "invite" {
            if self.is_local(&ev.sender) {
                tracing::info!(room_id = %ev.room_id, "bot invited, joining");
                match self.hs.join_room(&ev.room_id, &self.bot_user_id).await {
                    Ok(_) => {}
                    // The invite was withdrawn or the room is gone: nothing to do.
                    Err(e @ HsError::Matrix { .. }) if !e.is_transient() => {
                        tracing::info!(room_id = %ev.room_id, errcode = ?e.errcode(), "could not join");
                    }
                    Err(e) => return Err(hs_error(e)),
                }
            } else {
                tracing::info!(room_id = %ev.room_id, "declining invite from another homeserver");
                self.hs.leave_room(&ev.room_id, &self.bot_user_id).await.or_else(ignore_refusal)?;
            }
        }
        Ok(())
    }

    async fn on_message(&self, ev: &RoomEvent) -> Result<(), HandleError> {
        if ev.sender == self.bot_user_id {
            return Ok(());
        }
        let Some(body) = ev.content.get("body").and_then(Value::as_str) else { return Ok(()) };
        match commands::parse(body) {
            Some(invocation) => commands::run(self, ev, invocation).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl EventHandler for Assisto {
    async fn handle_event(&self, ev: &RoomEvent) -> Result<(), HandleError> {
        match ev.kind.as_str() {
            "m.room.member" => self.on_member(ev).await,
            "m.room.message" => self.on_message(ev).await,
            _ => Ok(()),
        }
    }

    async fn handle_ephemeral(&self, ev: &Value) {
        tracing::trace!(kind = ?ev.get("type"), "ephemeral event");
    }
}

/// A database error is worth a retry.
pub(crate) fn db_error(e: sqlx::Error) -> HandleError {
    HandleError::Transient(format!("database: {e}"))
}

/// A homeserver error: transient ones are retried, refusals are final.
pub(crate) fn hs_error(e: HsError) -> HandleError {
    if e.is_transient() {
        HandleError::Transient(e.to_string())
    } else {
        HandleError::Permanent(e.to_string())
    }
}

fn ignore_refusal(e: HsError) -> Result<(), HandleError> {
    if e.is_transient() {
        Err(hs_error(e))
    } else {
        Ok(())
    }
}
