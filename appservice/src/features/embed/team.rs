//! Choosing a counsellor: the live chat's proposed counsellors (the configuration's `team`,
//! for a visitor to choose instead of the next free one) and the logged-in area's "Unser
//! Team" (whom a client may write to, with their status; writing brings the counsellor into
//! the client's conversation).
//!
//! What the status means for clients is the product's (see `docs/rules.md`, rule 9):
//! online counsellors are proposed and can be written to; "not online" ones are not
//! proposed, can still be written to and show as offline; "not selectable" ones are neither
//! proposed nor listed; "only selectable by regular clients" limits both to clients who
//! already have a chat with them (a counsellor joined in a chat the client is in).
//!
//! Counsellors are named to clients by an opaque ID ([`team_id`]), never by their Matrix
//! user ID.

use std::collections::HashSet;

use assisto_bridge::core::{ConversationKind, CoreError, Session, TeamMember};
use assisto_core::live::{self, Status};
use sha2::{Digest, Sha256};

use crate::features::embed::{db_err, domain_err, unavailable, EmbedCore};
use crate::features::live::status::TeamEntry;
use crate::features::rooms::members::{self, MembershipState};
use crate::features::rooms::store as rooms;
use crate::matrix::homeserver::TxnId;
use crate::store::audit;

/// How long a client's writing to a counsellor counts as done: a second press meanwhile
/// (before the invite has come back from the homeserver) does not invite or tell again.
pub(super) const WRITING_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// The ID clients know a counsellor by: stable, and not their Matrix user ID.
pub(super) fn team_id(user_id: &str) -> String {
    let digest = Sha256::digest(format!("assisto-team\n{user_id}").as_bytes());
    hex::encode(&digest[..8])
}

fn member(e: &TeamEntry) -> TeamMember {
    TeamMember {
        id: team_id(&e.counsellor.user_id),
        name: e.counsellor.display_name.clone(),
        status: match e.shown {
            live::Shown::Online => "online",
            live::Shown::Away => "away",
            live::Shown::Busy => "busy",
            live::Shown::Offline => "offline",
        },
        departments: e.departments.clone(),
    }
}

impl EmbedCore {
    /// Whom a visitor may choose for a new live chat now: who can take one and is not
    /// "only selectable by regular clients" (a new visitor is nobody's regular client).
    pub(super) async fn proposed(&self, institution: &str) -> Result<Vec<TeamMember>, CoreError> {
        let team = self.live.team(institution).await.map_err(domain_err)?;
        Ok(team.iter().filter(|e| e.can_take && !e.only_regular).map(member).collect())
    }

    /// The counsellor of `institution` known to clients as `id`.
    pub(super) async fn team_member(&self, institution: &str, id: &str) -> Result<TeamEntry, CoreError> {
        self.live
            .team(institution)
            .await
            .map_err(domain_err)?
            .iter()
            .find(|e| team_id(&e.counsellor.user_id) == id)
            .cloned()
            .ok_or_else(|| CoreError::NotFound("Diese beratende Person gibt es nicht.".into()))
    }

    /// The counsellors joined in a chat the client is in (a managed room: a client chat,
    /// a group, a live chat — not the institution's directory): those the client is a
    /// regular client of.
    async fn regular_of(&self, client: &str) -> Result<HashSet<String>, CoreError> {
        let mut out = HashSet::new();
        for room in members::rooms_of_user(&self.db, client).await.map_err(db_err)? {
            if rooms::get(&self.db, &room).await.map_err(db_err)?.is_none() {
                continue;
            }
            let of_room = members::of_room(&self.db, &room).await.map_err(db_err)?;
            if !of_room.iter().any(|(u, m)| u == client && members::holds_place(m)) {
                continue;
            }
            out.extend(of_room.into_iter().filter(|(_, m)| *m == MembershipState::Join).map(|(u, _)| u));
        }
        Ok(out)
    }

    /// "Unser Team" is the logged-in area's; a live chat's visitor chooses when starting.
    fn only_registered(s: &Session) -> Result<(), CoreError> {
        match s.kind {
            ConversationKind::ClientChat => Ok(()),
            ConversationKind::Live => {
                Err(CoreError::Forbidden("„Unser Team“ gibt es im angemeldeten Bereich.".into()))
            }
        }
    }

    /// "Unser Team": whom the session's client may write to, with their status.
    pub(super) async fn team_of(&self, s: &Session) -> Result<Vec<TeamMember>, CoreError> {
        Self::only_registered(s)?;
        let (client, _) = self.conversation(s).await?;
        let regular = self.regular_of(&client).await?;
        let team = self.live.team(&s.institution).await.map_err(domain_err)?;
        Ok(team
            .iter()
            .filter(|e| live::selectable(e.status, e.only_regular, regular.contains(&e.counsellor.user_id)))
            .map(member)
            .collect())
    }

    /// The client writes to a counsellor of "Unser Team": the bot invites them into the
    /// client's conversation (nothing happens if they are in it or invited already) and
    /// says so in the room.
    pub(super) async fn write_to_member(&self, s: &Session, id: &str) -> Result<(), CoreError> {
        Self::only_registered(s)?;
        let (client, ended) = self.conversation(s).await?;
        let e = self.team_member(&s.institution, id).await?;
        let user = &e.counsellor.user_id;
        let regular = self.regular_of(&client).await?.contains(user);
        if !live::selectable(e.status, e.only_regular, regular) {
            // Not selectable (or only for their regular clients): as if unknown, so that
            // the answer reveals nothing the list does not show.
            return Err(CoreError::NotFound("Diese beratende Person gibt es nicht.".into()));
        }
        if ended {
            return Err(CoreError::Forbidden("Dieser Chat ist beendet.".into()));
        }
        let room = &s.conversation;
        let key = format!("{room}\n{user}");
        self.writing.get(&key, || self.bring_in(room, &client, &e)).await
    }

    /// Invites the counsellor into the client's conversation and tells the room (nothing if
    /// they are in it or invited already).
    async fn bring_in(&self, room: &str, client: &str, e: &TeamEntry) -> Result<(), CoreError> {
        let user = &e.counsellor.user_id;
        let present = members::of_room(&self.db, room)
            .await
            .map_err(db_err)?
            .iter()
            .any(|(u, m)| u == user && members::holds_place(m));
        if present {
            return Ok(());
        }
        self.hs.invite(room, self.bot(), user).await.map_err(unavailable)?;
        audit::record(&self.db, client, "client.write_to", user, None).await.map_err(db_err)?;
        let name = &e.counsellor.display_name;
        let text = if e.status == Status::Online {
            format!("Du hast {name} geschrieben. Die Antwort kommt hier in diesem Chat.")
        } else {
            format!("Du hast {name} geschrieben. {name} ist gerade nicht online und antwortet dir hier, sobald es geht.")
        };
        let txn = TxnId::derived(&format!("{room}/{user}"), &format!("write-to-{}", crate::store::now_ms()));
        self.hs.send_notice(room, self.bot(), &txn, &text).await.map_err(unavailable)?;
        Ok(())
    }
}
