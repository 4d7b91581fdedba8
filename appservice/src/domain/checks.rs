//! Answers the Synapse module's questions (`POST /_assisto/module/v1/check`): gathers the
//! facts (who the people are, what the room is) and lets [`super::rules`] decide.
//!
//! The module sends the room's current state as Synapse sees it (the `m.room.create`
//! content and the members), so that decisions never lag behind events still on their way
//! to the service. Classification decided at creation travels in the `m.room.create`
//! content (`de.assisto.kind`, `de.assisto.institution`), which nobody can change later.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    rules::{self, Role, RoomFacts, Rule, Verdict},
    RoomKind,
};
use crate::{
    config::Config,
    db::{audit, institutions, now_ms, people, rooms, Db},
};

/// Key in `m.room.create` content: the room's kind.
pub const CREATE_KIND: &str = "de.assisto.kind";
/// Key in `m.room.create` content: the room's institution.
pub const CREATE_INSTITUTION: &str = "de.assisto.institution";

/// Members as Synapse sees them now.
#[derive(Debug, Default, Deserialize)]
pub struct Members {
    /// Joined.
    #[serde(default)]
    pub join: Vec<String>,
    /// Invited.
    #[serde(default)]
    pub invite: Vec<String>,
}

/// The room's state as the module reads it.
#[derive(Debug, Default, Deserialize)]
pub struct RoomState {
    /// `m.room.create` content.
    #[serde(default)]
    pub create: Value,
    /// Sender of `m.room.create`.
    #[serde(default)]
    pub creator: Option<String>,
    /// Members.
    #[serde(default)]
    pub members: Members,
}

/// A `/createRoom` request, as far as the rules care.
#[derive(Debug, Default, Deserialize)]
pub struct CreateRequest {
    /// Users to invite.
    #[serde(default)]
    pub invite: Vec<String>,
    /// Whether it is a direct chat.
    #[serde(default)]
    pub is_direct: bool,
    /// Set for a room upgrade: the old room.
    #[serde(default)]
    pub upgrade_of: Option<String>,
}

/// One question from the module.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CheckRequest {
    /// `user` creates a room.
    Create {
        /// Creator.
        user: String,
        /// The request.
        #[serde(default)]
        request: CreateRequest,
    },
    /// `user` invites `target`.
    Invite {
        /// Inviter.
        user: String,
        /// Invitee.
        target: String,
        /// Room.
        room_id: String,
        /// Its state.
        #[serde(default)]
        room: RoomState,
    },
    /// `user` joins.
    Join {
        /// Who.
        user: String,
        /// Room.
        room_id: String,
        /// Its state.
        #[serde(default)]
        room: RoomState,
    },
    /// `user` sends an event.
    Send {
        /// Sender.
        user: String,
        /// Room.
        room_id: String,
        /// Event type.
        event_type: String,
        /// State key, for state events.
        #[serde(default)]
        state_key: Option<String>,
        /// Whether the message is a command to the bot (`!assisto …`).
        #[serde(default)]
        is_command: bool,
        /// Its state.
        #[serde(default)]
        room: RoomState,
    },
}

/// The answer to the module.
#[derive(Debug, Serialize, PartialEq)]
pub struct CheckResponse {
    /// Whether the action may go ahead.
    pub allow: bool,
    /// For refusals: the Matrix error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errcode: Option<&'static str>,
    /// For refusals: the German explanation shown to the person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// For refusals: the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    /// For creations: keys to set in the `m.room.create` content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_content: Option<Value>,
    /// For creations: users to invite in addition (the bot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_invites: Option<Vec<String>>,
    /// For creations: power levels to grant (the bot's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_levels_users: Option<Value>,
    /// For creations: the preset to use instead of the requested one. Rooms with clients
    /// use `private_chat`, so that clients never get a counsellor's power (Element asks for
    /// `trusted_private_chat` for direct chats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<&'static str>,
}

impl CheckResponse {
    fn allow() -> Self {
        Self {
            allow: true,
            errcode: None,
            error: None,
            rule: None,
            creation_content: None,
            add_invites: None,
            power_levels_users: None,
            preset: None,
        }
    }

    fn deny(rule: Rule) -> Self {
        Self {
            allow: false,
            errcode: Some("M_FORBIDDEN"),
            error: Some(rule.message_de()),
            rule: Some(rule.as_str()),
            ..Self::allow()
        }
    }

    fn from_verdict(v: Verdict) -> Self {
        match v {
            Verdict::Allow => Self::allow(),
            Verdict::Deny(r) => Self::deny(r),
        }
    }
}

/// Decides the module's questions.
#[derive(Clone)]
pub struct Checker {
    db: Db,
    bot: String,
    server_name: String,
    client_prefix: String,
    guest_prefix: String,
}

impl Checker {
    /// A checker for this service.
    pub fn new(db: Db, config: &Config) -> Self {
        Self {
            db,
            bot: format!("@{}:{}", config.bot.localpart, config.homeserver.server_name),
            server_name: config.homeserver.server_name.clone(),
            client_prefix: format!("@{}", config.namespaces.client_prefix),
            guest_prefix: format!("@{}", config.namespaces.guest_prefix),
        }
    }

    /// Who `user_id` is.
    pub async fn role(&self, user_id: &str) -> sqlx::Result<Role> {
        if user_id == self.bot {
            return Ok(Role::Bot);
        }
        let local = user_id.rsplit_once(':').is_some_and(|(_, s)| s == self.server_name);
        if !local {
            return Ok(Role::Remote);
        }
        if user_id.starts_with(&self.client_prefix) || user_id.starts_with(&self.guest_prefix) {
            return Ok(match people::client_by_id(&self.db, user_id).await? {
                Some(c) => Role::Client { institution: c.institution_id, blocked: c.blocked },
                None => Role::UnknownPuppet,
            });
        }
        Ok(match people::counsellor_by_id(&self.db, user_id).await? {
            Some(c) => Role::Counsellor { institution: c.institution_id },
            None => Role::OtherLocal,
        })
    }

    /// What the rules know of a room, recording a classification carried by its creation
    /// content or inherited from the room it upgrades.
    pub async fn facts(&self, room_id: &str, state: &RoomState) -> sqlx::Result<RoomFacts> {
        let mut managed = rooms::get(&self.db, room_id).await?;
        if managed.is_none() {
            let creator = state.creator.clone().unwrap_or_default();
            let from_create = state.create.get(CREATE_KIND).and_then(Value::as_str).and_then(RoomKind::parse);
            // Only an institution this service knows (a room of another deployment, or of a
            // deleted institution, stays unmanaged here).
            let inst = match state.create.get(CREATE_INSTITUTION).and_then(Value::as_str) {
                Some(i) if institutions::get(&self.db, i).await?.is_some() => Some(i.to_owned()),
                _ => None,
            };
            if let (Some(kind), Some(inst)) = (from_create, inst) {
                rooms::insert(&self.db, room_id, &inst, kind, &creator).await?;
            } else if let Some(old) = state.create.pointer("/predecessor/room_id").and_then(Value::as_str) {
                if let Some(prev) = rooms::get(&self.db, old).await? {
                    rooms::insert(&self.db, room_id, &prev.institution_id, prev.kind, &creator).await?;
                    audit::record(
                        &self.db,
                        "assisto",
                        "room.upgrade_inherits_kind",
                        room_id,
                        Some(prev.kind.as_str()),
                    )
                    .await?;
                }
            }
            managed = rooms::get(&self.db, room_id).await?;
        }
        let members: Vec<String> = state
            .members
            .join
            .iter()
            .chain(&state.members.invite)
            .filter(|m| **m != self.bot)
            .cloned()
            .collect();
        let clients_in_room = members
            .iter()
            .filter(|m| m.starts_with(&self.client_prefix) || m.starts_with(&self.guest_prefix))
            .count();
        let institution = match &managed {
            Some(m) => Some(m.institution_id.clone()),
            None => match state.create.get(CREATE_INSTITUTION).and_then(Value::as_str) {
                Some(i) if institutions::get(&self.db, i).await?.is_some() => Some(i.to_owned()),
                _ => institutions::room_owner(&self.db, room_id).await?.map(|(i, _)| i),
            },
        };
        let appointment_open = match &managed {
            Some(m) if m.kind == RoomKind::AppointmentGroup => {
                rooms::appointment_open(&self.db, room_id, now_ms()).await?
            }
            _ => false,
        };
        Ok(RoomFacts {
            kind: managed.as_ref().map(|m| m.kind),
            institution,
            deactivated: managed.as_ref().is_some_and(|m| m.deactivated),
            members,
            appointment_open,
            clients_in_room,
        })
    }

    /// Answers one question. Refusals are written to the audit log (IDs only).
    pub async fn check(&self, req: &CheckRequest) -> sqlx::Result<CheckResponse> {
        let (resp, actor, subject) = match req {
            CheckRequest::Create { user, request } => (self.check_create(user, request).await?, user, user),
            CheckRequest::Invite { user, target, room_id, room } => {
                let inviter = self.role(user).await?;
                let invitee = self.role(target).await?;
                let mut facts = self.facts(room_id, room).await?;
                let verdict = rules::may_invite(&inviter, &invitee, target, &facts);
                if verdict.allowed() && facts.kind.is_none() && matches!(inviter, Role::Counsellor { .. }) {
                    // The first invite into an unclassified room decides what it is.
                    if let (Some(kind), Some(inst)) = (
                        rules::classify_first_invite(&invitee, facts.clients_in_room),
                        facts.institution.clone(),
                    ) {
                        let creator = room.creator.clone().unwrap_or_else(|| user.clone());
                        rooms::insert(&self.db, room_id, &inst, kind, &creator).await?;
                        facts.kind = Some(kind);
                        let again = rules::may_invite(&inviter, &invitee, target, &facts);
                        (CheckResponse::from_verdict(again), user, room_id)
                    } else {
                        (CheckResponse::from_verdict(verdict), user, room_id)
                    }
                } else {
                    (CheckResponse::from_verdict(verdict), user, room_id)
                }
            }
            CheckRequest::Join { user, room_id, room } => {
                let role = self.role(user).await?;
                let facts = self.facts(room_id, room).await?;
                (CheckResponse::from_verdict(rules::may_join(&role, user, &facts)), user, room_id)
            }
            CheckRequest::Send { user, room_id, event_type, state_key, room, is_command } => {
                if state_key.is_some() || event_type == "m.room.redaction" {
                    // Redactions only remove content (the deletion routine redacts as the
                    // client, blocked or not).
                    // State changes (name, topic, members) are governed by power levels.
                    return Ok(CheckResponse::allow());
                }
                let role = self.role(user).await?;
                let facts = self.facts(room_id, room).await?;
                if *is_command
                    && matches!(&role, Role::Counsellor { institution } if Some(institution) == facts.institution.as_ref())
                {
                    // The bot checks the command's own permissions.
                    return Ok(CheckResponse::allow());
                }
                let deactivated = facts.kind.is_some_and(RoomKind::is_group)
                    && rooms::is_participant_deactivated(&self.db, room_id, user).await?;
                (CheckResponse::from_verdict(rules::may_send(&role, &facts, deactivated)), user, room_id)
            }
        };
        if let Some(rule) = resp.rule {
            tracing::info!(rule, "rule refused an action");
            audit::record(&self.db, actor, &format!("rule.{rule}.refused"), subject, None).await?;
        }
        Ok(resp)
    }

    async fn check_create(&self, user: &str, req: &CreateRequest) -> sqlx::Result<CheckResponse> {
        if req.upgrade_of.is_some() {
            // An upgraded room inherits its predecessor's kind on its first check.
            return Ok(CheckResponse::allow());
        }
        let creator = self.role(user).await?;
        let mut invitees = Vec::with_capacity(req.invite.len());
        for u in &req.invite {
            invitees.push((u.clone(), self.role(u).await?));
        }
        if creator == Role::Bot {
            // The service's own rooms (e.g. the web embed's conversations) follow its rules.
            return Ok(CheckResponse::allow());
        }
        let Role::Counsellor { institution } = &creator else {
            // Not a counsellor: an ordinary room, but it may not reach clients.
            if invitees.iter().any(|(_, r)| r.is_client()) {
                let rule =
                    if creator.is_client() { Rule::ClientsDoNotAct } else { Rule::InstitutionBoundary };
                return Ok(CheckResponse::deny(rule));
            }
            return Ok(CheckResponse::allow());
        };
        let roles: Vec<Role> = invitees.iter().map(|(_, r)| r.clone()).collect();
        let kind = rules::classify(&roles, req.is_direct);
        // Every invite must pass the rules of the room it will be.
        let mut facts = RoomFacts {
            kind,
            institution: Some(institution.clone()),
            deactivated: false,
            members: vec![user.to_owned()],
            appointment_open: true,
            clients_in_room: 0,
        };
        for (id, role) in &invitees {
            if let Verdict::Deny(rule) = rules::may_invite(&creator, role, id, &facts) {
                return Ok(CheckResponse::deny(rule));
            }
            facts.members.push(id.clone());
            if role.is_client() {
                facts.clients_in_room += 1;
            }
        }
        let mut creation_content = json!({ CREATE_INSTITUTION: institution });
        if let Some(k) = kind {
            creation_content[CREATE_KIND] = json!(k.as_str());
        }
        Ok(CheckResponse {
            creation_content: Some(creation_content),
            add_invites: Some(vec![self.bot.clone()]),
            power_levels_users: Some(json!({ self.bot.clone(): 100 })),
            preset: (facts.clients_in_room > 0).then_some("private_chat"),
            ..CheckResponse::allow()
        })
    }
}
