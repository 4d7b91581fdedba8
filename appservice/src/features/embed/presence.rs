//! What the client sees of the other side, and the other side of the client: whether a
//! counsellor has joined (else the client waits), is typing or has read up to a message
//! (from the homeserver's typing notices and read receipts), the conversation's state
//! frame for the browsers, and the client's own typing notices and read receipts.
//!
//! A counsellor is whoever [`assisto_core::ids::Ids`] says may be one: a local user who is
//! neither the bot nor a puppet.

use assisto_bridge::{
    core::{CoreError, QueuePlace, Session, State},
    hub::Frame,
};
use serde_json::Value;

use crate::features::embed::store as embed;
use crate::features::embed::{db_err, domain_err, unavailable, EmbedCore};
use crate::features::people::store as people;
use crate::features::rooms::members;
use crate::matrix::homeserver::HsError;

/// How long the homeserver shows the client typing without a new notice.
const TYPING_TIMEOUT_MS: u64 = 10_000;

impl EmbedCore {
    /// The conversation's state as the client sees it.
    pub(super) async fn conversation_state(&self, s: &Session) -> Result<State, CoreError> {
        let room = &s.conversation;
        let joined = members::of_room(&self.db, room).await.map_err(db_err)?;
        let counsellor_in =
            joined.iter().any(|(u, m)| *m == members::MembershipState::Join && self.ids.may_be_counsellor(u));
        let (client, ended) =
            embed::conversation_of_room(&self.db, room).await.map_err(db_err)?.unwrap_or_default();
        let blocked = match people::client_by_id(&self.db, &client).await.map_err(db_err)? {
            Some(c) => c.blocked,
            None => false,
        };
        let queue = if ended {
            None
        } else {
            self.live.place(room).await.map_err(domain_err)?.map(|p| QueuePlace {
                position: p.position,
                estimated_wait_secs: p.estimated_wait_secs,
                someone_coming: p.someone_coming,
            })
        };
        Ok(State {
            waiting: !counsellor_in && !ended,
            blocked,
            ended,
            counsellor_typing: self
                .typing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(room)
                .copied()
                .unwrap_or(false),
            read_up_to: self.read.lock().unwrap_or_else(|p| p.into_inner()).get(room).cloned(),
            queue,
        })
    }

    /// The client starts or stops typing.
    pub(super) async fn client_typing(&self, s: &Session, typing: bool) -> Result<(), CoreError> {
        let (client, _) = self.conversation(s).await?;
        self.hs.set_typing(&s.conversation, &client, typing, TYPING_TIMEOUT_MS).await.map_err(unavailable)
    }

    /// The client has read up to a message of the conversation.
    pub(super) async fn client_read(&self, s: &Session, up_to: &str) -> Result<(), CoreError> {
        let (client, _) = self.conversation(s).await?;
        // Synapse takes receipts for events it does not know: check it is this chat's.
        self.event(&client, &s.conversation, up_to).await.map_err(|e| match e {
            CoreError::NotFound(_) => CoreError::Invalid("up_to ist keine Nachricht dieses Chats.".into()),
            e => e,
        })?;
        match self.hs.send_receipt(&s.conversation, &client, "m.read", up_to).await {
            Ok(()) => Ok(()),
            Err(HsError::Matrix { status, .. }) if status.is_client_error() => {
                Err(CoreError::Invalid("up_to ist keine Nachricht dieses Chats.".into()))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Typing notices and read receipts of counsellors, for the browsers watching.
    pub fn on_ephemeral(&self, ev: &Value) {
        let Some(room) = ev["room_id"].as_str() else { return };
        if !self.hub.watched(room) {
            return;
        }
        let is_counsellor = |u: &str| self.ids.may_be_counsellor(u);
        match ev["type"].as_str() {
            Some("m.typing") => {
                let typing = ev["content"]["user_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().filter_map(Value::as_str).any(is_counsellor));
                let before =
                    self.typing.lock().unwrap_or_else(|p| p.into_inner()).insert(room.to_owned(), typing);
                if before.unwrap_or(false) != typing {
                    self.hub.publish(room, Frame::StateChanged);
                }
            }
            Some("m.receipt") => {
                let Some(events) = ev["content"].as_object() else { return };
                for (event_id, r) in events {
                    let readers = r["m.read"].as_object().into_iter().chain(r["m.read.private"].as_object());
                    if readers.flat_map(|m| m.keys()).any(|u| is_counsellor(u)) {
                        self.read
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(room.to_owned(), event_id.clone());
                        self.hub.publish(room, Frame::StateChanged);
                    }
                }
            }
            _ => {}
        }
    }

    /// Tells an institution's open pages that who can take a chat changed (they read it
    /// again and show or hide the chat button).
    pub fn availability_changed(&self, institution: &str) {
        self.live.setup_changed(institution);
        self.forget_shared_config(institution);
        self.hub.publish(&assisto_bridge::hub::availability_key(institution), Frame::StateChanged);
    }

    /// Tells the browsers of a conversation that its state changed (its place in the
    /// queue, taken, closed).
    pub fn conversation_changed(&self, room: &str) {
        if self.hub.watched(room) {
            self.hub.publish(room, Frame::StateChanged);
        }
    }

    /// Tells the browsers of a client that the client's state changed (blocked, unblocked).
    pub async fn client_changed(&self, client: &str) {
        if let Ok(Some((room, _))) = embed::conversation(&self.db, client).await {
            self.hub.publish(&room, Frame::StateChanged);
        }
    }
}

impl crate::features::live::Watching for EmbedCore {
    fn watched(&self, room_id: &str) -> bool {
        self.hub.watched(room_id)
    }
}
