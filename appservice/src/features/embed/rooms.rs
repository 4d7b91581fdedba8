//! Creating a client's conversation room: the bot creates it in the institution's space of
//! the room kind's category (Live for a live chat, Ratsuchende for a client chat), with a
//! join rule that lets the space's members (the institution's counsellors) join, records it
//! as a managed room, and the client's puppet joins.

use assisto_bridge::core::CoreError;
use assisto_core::RoomKind;
use serde_json::json;

use crate::features::embed::{db_err, domain_err, unavailable, EmbedCore};
use crate::features::institutions::store as institutions;

impl EmbedCore {
    /// Creates the conversation room of a client, as the bot, in the institution's space.
    pub(super) async fn create_room(
        &self,
        institution: &str,
        client: &str,
        name: &str,
        kind: RoomKind,
    ) -> Result<String, CoreError> {
        let cat = kind.category();
        let space = institutions::room(&self.db, institution, cat).await.map_err(db_err)?;
        let mut initial_state = vec![
            json!({"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared"}}),
            json!({"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}}),
        ];
        if let Some(space) = &space {
            // The institution's counsellors are members of the space: they may join.
            initial_state.push(json!({"type": "m.room.join_rules", "state_key": "", "content": {
                "join_rule": "restricted",
                "allow": [{"type": "m.room_membership", "room_id": space}],
            }}));
            initial_state.push(self.provisioning.parent_state(space));
        }
        if let Some(base) = self.provisioning.config.appservice.public_url.as_deref() {
            // The counsellor tools, from the start (one event less than adding them later).
            initial_state.push(json!({
                "type": "im.vector.modular.widgets",
                "state_key": crate::features::tools::WIDGET_ID,
                "content": crate::features::tools::widget_content(base, self.bot()),
            }));
        }
        let body = json!({
            "preset": "private_chat",
            "name": name,
            "initial_state": initial_state,
            "invite": [client],
        });
        let room = self.hs.create_room(self.bot(), &body).await.map_err(unavailable)?.room_id;
        // The rules module keeps the kind out of others' creation content; the service
        // records its own rooms directly.
        crate::features::rooms::store::insert(&self.db, &room, institution, kind, self.bot())
            .await
            .map_err(db_err)?;
        self.hs.join_room(&room, client).await.map_err(unavailable)?;
        self.provisioning.list_in_space(institution, cat, &room).await.map_err(domain_err)?;
        crate::features::rooms::store::set_in_space(&self.db, &room).await.map_err(db_err)?;
        Ok(room)
    }
}
