//! Answers the Synapse module's questions (`POST /_assisto/module/v1/check`): gathers the
//! facts (who the people are, what the room is) and lets [`assisto_core::rules`] decide.
//!
//! The module sends the room's current state as Synapse sees it (the `m.room.create`
//! content and the members), so that decisions never lag behind events still on their way
//! to the service. Classification decided at creation travels in the `m.room.create`
//! content (`de.assisto.kind`, `de.assisto.institution`), which nobody can change later.

use assisto_core::ids::{Ids, UserClass};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::app::config::Config;
use crate::features::institutions::store as institutions;
use crate::features::people::store as people;
use crate::features::rooms::store as rooms;
use crate::store::audit;
use crate::store::now_ms;
use crate::store::Db;
use assisto_core::rules;
use assisto_core::rules::Role;
use assisto_core::rules::RoomFacts;
use assisto_core::rules::Rule;
use assisto_core::rules::Verdict;
use assisto_core::RoomKind;

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
    /// Knocking.
    #[serde(default)]
    pub knock: Vec<String>,
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
    /// `preset`.
    #[serde(default)]
    pub preset: Option<String>,
    /// `visibility`.
    #[serde(default)]
    pub visibility: Option<String>,
    /// `room_alias_name`.
    #[serde(default)]
    pub room_alias_name: Option<String>,
    /// `invite_3pid`.
    #[serde(default)]
    pub invite_3pid: Vec<Value>,
    /// `initial_state`.
    #[serde(default)]
    pub initial_state: Vec<Value>,
    /// `power_level_content_override`.
    #[serde(default)]
    pub power_level_content_override: Option<Value>,
    /// `creation_content` (without the service's own keys).
    #[serde(default)]
    pub creation_content: Value,
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
    /// `user` changes `target`'s membership: asked for every membership event in managed
    /// rooms and of puppets, from whatever path (invite, join, knock, leave, kick, ban).
    Member {
        /// Sender.
        user: String,
        /// Whose membership.
        target: String,
        /// The new membership.
        #[serde(default)]
        membership: Option<String>,
        /// Room.
        room_id: String,
        /// Its state before the change.
        #[serde(default)]
        room: RoomState,
    },
    /// `user` changes other state of a room.
    State {
        /// Sender.
        user: String,
        /// Room.
        room_id: String,
        /// Event type.
        event_type: String,
        /// State key.
        #[serde(default)]
        state_key: String,
        /// Content.
        #[serde(default)]
        content: Value,
        /// For tombstones: the predecessor the replacement room names.
        #[serde(default)]
        replacement_predecessor: Option<String>,
        /// For tombstones: whether the replacement room exists yet.
        #[serde(default = "yes")]
        replacement_exists: bool,
        /// Its state before the change.
        #[serde(default)]
        room: RoomState,
    },
    /// `user` publishes a room in (or removes it from) the room directory.
    Publish {
        /// Who.
        user: String,
        /// Room.
        room_id: String,
        /// Its state.
        #[serde(default)]
        room: RoomState,
    },
    /// `user` creates a room alias.
    Alias {
        /// Who.
        user: String,
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
    pub error: Option<String>,
    /// For refusals: the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    /// For creations: keys to set in the `m.room.create` content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_content: Option<Value>,
    /// For creations: the users to invite, the bot first (replaces the request's list; the
    /// invites from `initial_state` are in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite: Option<Vec<String>>,
    /// For creations: the initial state to create the room with (replaces the request's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_state: Option<Vec<Value>>,
    /// For creations: `private` (managed rooms are never in the room directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<&'static str>,
    /// For creations: power levels to grant (the bot's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_levels_users: Option<Value>,
    /// For creations: the preset to use instead of the requested one: `private_chat` for
    /// every managed room, so that invitees never get a creator's or an admin's power
    /// (Element asks for `trusted_private_chat` for direct chats, which in room version 12
    /// makes every invitee a creator whom nobody can remove).
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
            invite: None,
            initial_state: None,
            visibility: None,
            power_levels_users: None,
            preset: None,
        }
    }

    fn deny(rule: Rule) -> Self {
        Self {
            allow: false,
            errcode: Some("M_FORBIDDEN"),
            error: Some(rule.message_de().to_owned()),
            rule: Some(rule.as_str()),
            ..Self::allow()
        }
    }

    /// A refusal by `rule` with its own German explanation (the live-chat desk's are
    /// specific: taken by someone else, closed, not your department, …).
    pub fn refused(rule: Rule, error: String) -> Self {
        Self { error: Some(error), ..Self::deny(rule) }
    }

    fn from_verdict(v: Verdict) -> Self {
        match v {
            Verdict::Allow => Self::allow(),
            Verdict::Deny(r) => Self::deny(r),
        }
    }
}

fn yes() -> bool {
    true
}

/// Decides the module's questions.
#[derive(Clone)]
pub struct Checker {
    db: Db,
    bot: String,
    ids: Ids,
}

impl Checker {
    /// The clients who hold a place in the room (joined or invited), as recorded.
    pub async fn clients_in(&self, room_id: &str) -> sqlx::Result<Vec<String>> {
        let mut clients = Vec::new();
        for (u, m) in crate::features::rooms::members::of_room(&self.db, room_id).await? {
            if crate::features::rooms::members::holds_place(&m)
                && matches!(self.role(&u).await?, Role::Client { .. })
            {
                clients.push(u);
            }
        }
        Ok(clients)
    }

    /// A checker for this service.
    pub fn new(db: Db, config: &Config) -> Self {
        Self {
            db,
            bot: format!("@{}:{}", config.bot.localpart, config.homeserver.server_name),
            ids: config.ids(),
        }
    }

    /// Who `user_id` is.
    pub async fn role(&self, user_id: &str) -> sqlx::Result<Role> {
        if user_id == self.bot {
            return Ok(Role::Bot);
        }
        match self.ids.classify(user_id) {
            UserClass::Remote => return Ok(Role::Remote),
            UserClass::Bot | UserClass::Local => {}
            UserClass::Client | UserClass::Guest => {
                return Ok(match people::client_by_id(&self.db, user_id).await? {
                    Some(c) => Role::Client { institution: c.institution_id, blocked: c.blocked },
                    None => Role::UnknownPuppet,
                });
            }
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
            .chain(&state.members.knock)
            .filter(|m| **m != self.bot)
            .cloned()
            .collect();
        let clients_in_room = members.iter().filter(|m| self.ids.is_puppet(m)).count();
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
            creator: state.creator.clone().or_else(|| managed.as_ref().map(|m| m.creator.clone())),
        })
    }

    /// Whether `user_id` is one of the service's puppets (a client or guest ID).
    pub fn is_puppet(&self, user_id: &str) -> bool {
        self.ids.is_puppet(user_id)
    }

    /// The bot's user ID.
    pub fn bot(&self) -> &str {
        &self.bot
    }

    /// Answers one question. Refusals are written to the audit log (IDs only).
    pub async fn check(&self, req: &CheckRequest) -> sqlx::Result<CheckResponse> {
        let (resp, actor, subject) = match req {
            CheckRequest::Create { user, request } => (self.check_create(user, request).await?, user, user),
            CheckRequest::Invite { user, target, room_id, room } => {
                (self.check_invite(user, target, room_id, room).await?, user, room_id)
            }
            CheckRequest::Join { user, room_id, room } => {
                let role = self.role(user).await?;
                let facts = self.facts(room_id, room).await?;
                (CheckResponse::from_verdict(rules::may_join(&role, user, &facts)), user, room_id)
            }
            CheckRequest::Member { user, target, membership, room_id, room } => {
                (self.check_member(user, target, membership.as_deref(), room_id, room).await?, user, room_id)
            }
            CheckRequest::State {
                user,
                room_id,
                event_type,
                state_key,
                content,
                replacement_predecessor,
                replacement_exists,
                room,
            } => {
                let role = self.role(user).await?;
                let facts = self.facts(room_id, room).await?;
                let change = rules::StateChange {
                    room_id,
                    event_type,
                    state_key,
                    content,
                    replacement_predecessor: replacement_predecessor.as_deref(),
                    replacement_exists: *replacement_exists,
                };
                let verdict = rules::may_set_state(&role, &facts, &change, &self.bot, &|u| self.is_puppet(u));
                (CheckResponse::from_verdict(verdict), user, room_id)
            }
            CheckRequest::Publish { user, room_id, room } => {
                let facts = self.facts(room_id, room).await?;
                let verdict =
                    if facts.is_managed() { Verdict::Deny(Rule::ProtectedSetting) } else { Verdict::Allow };
                (CheckResponse::from_verdict(verdict), user, room_id)
            }
            CheckRequest::Alias { user } => {
                // Managed rooms have no aliases; counsellors and clients need none.
                let verdict = match self.role(user).await? {
                    Role::Counsellor { .. } | Role::Client { .. } | Role::UnknownPuppet => {
                        Verdict::Deny(Rule::ProtectedSetting)
                    }
                    _ => Verdict::Allow,
                };
                (CheckResponse::from_verdict(verdict), user, user)
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

    async fn check_invite(
        &self,
        user: &str,
        target: &str,
        room_id: &str,
        room: &RoomState,
    ) -> sqlx::Result<CheckResponse> {
        let inviter = self.role(user).await?;
        let invitee = self.role(target).await?;
        let mut facts = self.facts(room_id, room).await?;
        let verdict = rules::may_invite(&inviter, &invitee, target, &facts);
        if !(verdict.allowed() && facts.kind.is_none() && matches!(inviter, Role::Counsellor { .. })) {
            return Ok(CheckResponse::from_verdict(verdict));
        }
        // The first invite into an unclassified room decides what it is.
        let (Some(kind), Some(inst)) =
            (rules::classify_first_invite(&invitee, facts.clients_in_room), facts.institution.clone())
        else {
            return Ok(CheckResponse::from_verdict(verdict));
        };
        let again = {
            facts.kind = Some(kind);
            rules::may_invite(&inviter, &invitee, target, &facts)
        };
        if again.allowed() {
            let creator = room.creator.clone().unwrap_or_else(|| user.to_owned());
            rooms::insert(&self.db, room_id, &inst, kind, &creator).await?;
        }
        Ok(CheckResponse::from_verdict(again))
    }

    async fn check_member(
        &self,
        user: &str,
        target: &str,
        membership: Option<&str>,
        room_id: &str,
        room: &RoomState,
    ) -> sqlx::Result<CheckResponse> {
        use crate::features::rooms::members::MembershipState as M;
        let membership = membership.map(M::from);
        let verdict = match membership {
            Some(M::Invite) => return self.check_invite(user, target, room_id, room).await,
            Some(M::Join) if room.members.join.iter().any(|m| m == target) => {
                // Already a member: a profile change.
                Verdict::Allow
            }
            Some(M::Join | M::Knock) => {
                let role = self.role(target).await?;
                let facts = self.facts(room_id, room).await?;
                if user != target {
                    Verdict::Deny(Rule::ClientsDoNotAct)
                } else if membership == Some(M::Join) {
                    rules::may_join(&role, target, &facts)
                } else {
                    rules::may_knock(&role, target, &facts)
                }
            }
            Some(M::Leave | M::Ban) if target == self.bot && user != self.bot => {
                let facts = self.facts(room_id, room).await?;
                if facts.is_managed() {
                    Verdict::Deny(Rule::BotStays)
                } else {
                    Verdict::Allow
                }
            }
            Some(M::Leave | M::Ban) => Verdict::Allow,
            _ => Verdict::Deny(Rule::ProtectedSetting),
        };
        Ok(CheckResponse::from_verdict(verdict))
    }

    async fn check_create(&self, user: &str, req: &CreateRequest) -> sqlx::Result<CheckResponse> {
        let creator = self.role(user).await?;
        if let Some(old) = &req.upgrade_of {
            return self.check_upgrade(&creator, old).await;
        }
        if creator == Role::Bot {
            // The service's own rooms (e.g. the web embed's conversations) follow its rules.
            return Ok(CheckResponse::allow());
        }
        let mut invite_ids = req.invite.clone();
        let Role::Counsellor { institution } = &creator else {
            // Not a counsellor: an ordinary room, but it may not reach clients.
            for e in &req.initial_state {
                if e["type"] == "m.room.member" {
                    invite_ids.extend(e["state_key"].as_str().map(str::to_owned));
                }
            }
            for u in &invite_ids {
                if self.role(u).await?.is_client() {
                    let rule =
                        if creator.is_client() { Rule::ClientsDoNotAct } else { Rule::InstitutionBoundary };
                    return Ok(CheckResponse::deny(rule));
                }
            }
            return Ok(CheckResponse::allow());
        };
        let creation = rules::Creation {
            preset: req.preset.as_deref(),
            visibility: req.visibility.as_deref(),
            alias: req.room_alias_name.as_deref().is_some_and(|a| !a.is_empty()),
            third_party_invites: req.invite_3pid.len(),
            initial_state: &req.initial_state,
            power_override: req.power_level_content_override.as_ref(),
            creation_content: &req.creation_content,
        };
        let shape = match rules::shape_creation(&creation, &self.bot, &|u| self.is_puppet(u)) {
            Ok(shape) => shape,
            Err(rule) => return Ok(CheckResponse::deny(rule)),
        };
        for u in shape.state_invites {
            if !invite_ids.contains(&u) {
                invite_ids.push(u);
            }
        }
        invite_ids.retain(|u| u != user && *u != self.bot);
        let mut invitees = Vec::with_capacity(invite_ids.len());
        for u in &invite_ids {
            invitees.push((u.clone(), self.role(u).await?));
        }
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
            creator: Some(user.to_owned()),
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
        // The bot first: should a later invite fail, the room is never without it.
        let invite = std::iter::once(self.bot.clone()).chain(invite_ids).collect();
        Ok(CheckResponse {
            creation_content: Some(creation_content),
            invite: Some(invite),
            initial_state: Some(shape.initial_state),
            visibility: Some("private"),
            power_levels_users: Some(json!({ self.bot.clone(): rules::BOT_POWER })),
            preset: Some("private_chat"),
            ..CheckResponse::allow()
        })
    }

    /// Room upgrades: a managed room is upgraded only by a counsellor of its institution,
    /// and not at all if the service made it (the web embed's conversations are bound to
    /// their room). The new room inherits the kind; the service brings the bot and the
    /// members over.
    async fn check_upgrade(&self, upgrader: &Role, old: &str) -> sqlx::Result<CheckResponse> {
        let Some(prev) = rooms::get(&self.db, old).await? else {
            let owned = institutions::room_owner(&self.db, old).await?.is_some();
            return Ok(if owned {
                CheckResponse::deny(Rule::ProtectedSetting)
            } else {
                CheckResponse::allow()
            });
        };
        let verdict = match upgrader {
            _ if prev.creator == self.bot => Verdict::Deny(Rule::ProtectedSetting),
            Role::Counsellor { institution } if *institution == prev.institution_id => Verdict::Allow,
            _ => Verdict::Deny(Rule::OwnInstitutionOnly),
        };
        Ok(CheckResponse::from_verdict(verdict))
    }
}
