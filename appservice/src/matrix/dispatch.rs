//! What the service does with each event of the rooms it sees.
//!
//! For now: it keeps room membership, lets the bot accept invites from users of this
//! homeserver (and decline others: managed rooms are not federated), and answers bot
//! commands. The counselling rules build on this.

use async_trait::async_trait;
use serde_json::Value;

use crate::features::institutions::Provisioning;
use crate::features::live::LiveDesk;
use crate::features::rooms::checks::Checker;
use crate::features::rooms::checks::RoomState;
use crate::features::rooms::checks::CREATE_INSTITUTION;
use crate::features::rooms::checks::CREATE_KIND;
use crate::features::rooms::members::{self, MembershipState};
use crate::features::rooms::store as rooms;
use crate::matrix::commands;
use crate::matrix::event::RoomEvent;
use crate::matrix::homeserver::HomeserverClient;
use crate::matrix::homeserver::HsError;
use crate::matrix::homeserver::TxnId;
use crate::matrix::processor::db_error;
use crate::matrix::processor::hs_error;
use crate::matrix::processor::EventHandler;
use crate::matrix::processor::HandleError;
use crate::store::audit;
use crate::store::Db;
use assisto_core::rules;
use assisto_core::rules::Role;
use assisto_core::rules::Rule;
use assisto_core::rules::Verdict;
use assisto_core::rules::COLLEAGUE_CHAT_MAX;
use assisto_core::rules::COLLEAGUE_GROUP_MAX;
use assisto_core::RoomKind;

/// State key of the client-file widget in client chats.
const WIDGET_ID: &str = "assisto-mappe";

/// The service's event handler.
pub struct Assisto {
    pub(crate) db: Db,
    pub(crate) hs: HomeserverClient,
    pub(crate) bot_user_id: String,
    pub(crate) checker: Checker,
    pub(crate) provisioning: Provisioning,
    /// The web embed, told of events in its conversations.
    pub(crate) embed: Option<std::sync::Arc<crate::features::embed::EmbedCore>>,
    /// The live-chat desk.
    pub(crate) live: LiveDesk,
    /// The search index, kept in step with the events.
    search: Option<crate::features::search::Search>,
    /// The dashboard's counters, told of messages and receipts.
    counters: Option<crate::features::counters::Counters>,
    /// What bot commands work with.
    commands: commands::Context,
}

impl Assisto {
    /// Creates the handler.
    pub fn new(provisioning: Provisioning, checker: Checker, live: LiveDesk) -> Self {
        let timezone = provisioning.config.bot.timezone.parse().unwrap_or(chrono_tz::Europe::Berlin);
        let commands = commands::Context {
            db: provisioning.db.clone(),
            hs: provisioning.hs.clone(),
            bot_user_id: provisioning.bot.clone(),
            timezone,
            checker: checker.clone(),
            provisioning: provisioning.clone(),
            live: live.clone(),
            tools: crate::features::tools::Tools::new(
                provisioning.db.clone(),
                provisioning.hs.clone(),
                checker.clone(),
                provisioning.bot.clone(),
            ),
            export: crate::features::export::Exporter::new(
                provisioning.db.clone(),
                provisioning.hs.clone(),
                checker.clone(),
                provisioning.bot.clone(),
                timezone,
            ),
            search: None,
        };
        Self {
            db: provisioning.db.clone(),
            hs: provisioning.hs.clone(),
            bot_user_id: provisioning.bot.clone(),
            checker,
            provisioning,
            embed: None,
            live,
            search: None,
            counters: None,
            commands,
        }
    }

    /// Uses `export` for the export command (so that its one-time links are the ones the
    /// web routes redeem).
    pub fn with_export(mut self, export: crate::features::export::Exporter) -> Self {
        self.commands.export = export;
        self
    }

    /// Keeps `search`'s index in step with the events, and answers `!assisto suche`.
    pub fn with_search(mut self, search: crate::features::search::Search) -> Self {
        self.commands.search = Some(search.clone());
        self.search = Some(search);
        self
    }

    /// Tells `counters` of messages and read receipts.
    pub fn with_counters(mut self, counters: crate::features::counters::Counters) -> Self {
        self.counters = Some(counters);
        self
    }

    /// Forwards events of embed conversations to the web embed.
    pub fn with_embed(mut self, embed: std::sync::Arc<crate::features::embed::EmbedCore>) -> Self {
        self.embed = Some(embed);
        self
    }

    /// Whether a user ID belongs to this homeserver.
    pub fn is_local(&self, user_id: &str) -> bool {
        user_id.rsplit_once(':').is_some_and(|(_, server)| server == self.hs.server_name())
    }

    async fn on_member(&self, ev: &RoomEvent) -> Result<(), HandleError> {
        let Some(target) = ev.state_key.as_deref() else {
            return Err(HandleError::Permanent("m.room.member without state_key".into()));
        };
        let Some(membership) =
            ev.content.get("membership").and_then(Value::as_str).map(MembershipState::from)
        else {
            return Err(HandleError::Permanent("m.room.member without membership".into()));
        };
        // A puppet without a client (deleted, or never ours) leaves no trace here: the
        // leave events of a deleted client's deactivation arrive after its rows are gone.
        let target_role = self.checker.role(target).await.map_err(db_error)?;
        if target_role == Role::UnknownPuppet {
            return Ok(());
        }
        members::set(&self.db, &ev.room_id, target, &membership).await.map_err(db_error)?;

        if target == self.bot_user_id && membership == MembershipState::Join {
            self.place_in_space(&ev.room_id).await?;
            self.ensure_tools_widget(&ev.room_id).await?;
            self.ensure_search_widget(&ev.room_id).await?;
            self.ensure_client_file_widget(&ev.room_id).await?;
        }
        if target != self.bot_user_id && members::counts(&membership) {
            self.second_line_of_defence(ev, target).await?;
        }
        if membership == MembershipState::Leave && target == ev.sender {
            // The owner of a live chat left it: back to the queue, never lost.
            self.live.owner_left(&ev.room_id, target).await.map_err(service_error)?;
        }
        if membership == MembershipState::Invite && target != self.bot_user_id {
            if let Role::Client { .. } | Role::UnknownPuppet =
                self.checker.role(target).await.map_err(db_error)?
            {
                self.answer_puppet_invite(ev, target).await?;
            }
        }

        if target == self.bot_user_id && membership == MembershipState::Invite {
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

    /// A room created with a kind is recorded from its `m.room.create` content.
    async fn on_create(&self, ev: &RoomEvent) -> Result<(), HandleError> {
        let kind = ev.content.get(CREATE_KIND).and_then(Value::as_str).and_then(RoomKind::parse);
        let inst = ev.content.get(CREATE_INSTITUTION).and_then(Value::as_str);
        if let (Some(kind), Some(inst)) = (kind, inst) {
            rooms::insert(&self.db, &ev.room_id, inst, kind, &ev.sender).await.map_err(db_error)?;
        }
        Ok(())
    }

    /// Lists a managed room in its institution's space, once the bot is in it.
    async fn place_in_space(&self, room_id: &str) -> Result<(), HandleError> {
        let Some(room) = rooms::get(&self.db, room_id).await.map_err(db_error)? else { return Ok(()) };
        if rooms::in_space(&self.db, room_id).await.map_err(db_error)? {
            return Ok(());
        }
        self.provisioning
            .place_in_space(&room.institution_id, room.kind.category(), room_id)
            .await
            .map_err(|e| HandleError::Transient(e.to_string()))?;
        rooms::set_in_space(&self.db, room_id).await.map_err(db_error)
    }

    /// A client's puppet was invited: it joins if the rules allow, else declines.
    async fn answer_puppet_invite(&self, ev: &RoomEvent, puppet: &str) -> Result<(), HandleError> {
        let role = self.checker.role(puppet).await.map_err(db_error)?;
        let inviter = self.checker.role(&ev.sender).await.map_err(db_error)?;
        let mut facts = self.checker.facts(&ev.room_id, &RoomState::default()).await.map_err(db_error)?;
        facts.members.push(puppet.to_owned()); // invited
        let verdict = match rules::may_invite(&inviter, &role, puppet, &facts) {
            Verdict::Allow => rules::may_join(&role, puppet, &facts),
            deny => deny,
        };
        let refused = match verdict {
            Verdict::Deny(rule) => Some(rule),
            Verdict::Allow => match self.hs.join_room(&ev.room_id, puppet).await {
                Ok(_) => {
                    self.ensure_client_file_widget(&ev.room_id).await?;
                    None
                }
                Err(e) if e.is_transient() => return Err(hs_error(e)),
                Err(e) => {
                    tracing::info!(room_id = %ev.room_id, errcode = ?e.errcode(), "puppet join refused by the homeserver");
                    Some(Rule::InstitutionBoundary)
                }
            },
        };
        if let Some(rule) = refused {
            // Processed late (under load, after a restart), the invite may already have been
            // followed by a join from before the refusing state began (e.g. a block): the
            // client keeps the chat it was in.
            let membership = self
                .hs
                .get_state(&ev.room_id, puppet, "m.room.member", puppet)
                .await
                .or_else(|e| if e.is_transient() { Err(hs_error(e)) } else { Ok(None) })?;
            if membership.is_some_and(|m| {
                m["membership"].as_str().map(MembershipState::from) == Some(MembershipState::Join)
            }) {
                return Ok(());
            }
            self.hs.leave_room(&ev.room_id, puppet).await.or_else(ignore_refusal)?;
            audit::record(
                &self.db,
                &ev.sender,
                &format!("rule.{}.refused", rule.as_str()),
                &ev.room_id,
                Some(puppet),
            )
            .await
            .map_err(db_error)?;
            let txn = TxnId::derived(&ev.event_id, "invite-refused");
            if self.bot_is_joined(&ev.room_id).await? {
                self.hs
                    .send_notice(&ev.room_id, &self.bot_user_id, &txn, rule.message_de())
                    .await
                    .or_else(ignore_refusal_notice)?;
            }
        }
        Ok(())
    }

    /// Puts the tools widget into a chat with clients once the bot is in it (rooms the bot
    /// created have it from their creation). Safe to repeat.
    async fn ensure_tools_widget(&self, room_id: &str) -> Result<(), HandleError> {
        let Some(base) = self.provisioning.config.appservice.public_url.as_deref() else { return Ok(()) };
        match rooms::get(&self.db, room_id).await.map_err(db_error)? {
            Some(r) if crate::features::tools::has_clients(r.kind) && r.creator != self.bot_user_id => {}
            _ => return Ok(()),
        }
        let content = crate::features::tools::widget_content(base, &self.bot_user_id);
        let key = crate::features::tools::WIDGET_ID;
        match self.hs.set_state(room_id, &self.bot_user_id, "im.vector.modular.widgets", key, &content).await
        {
            Ok(_) => Ok(()),
            Err(e) => ignore_refusal(e),
        }
    }

    /// Puts the search widget into a counsellor's direct chat with the bot (a room that is not
    /// a managed chat, with nobody but one counsellor and the bot), once the bot is in it.
    /// Each viewer's widget searches as that viewer, so it shows nobody else's hits.
    async fn ensure_search_widget(&self, room_id: &str) -> Result<(), HandleError> {
        let Some(base) = self.provisioning.config.appservice.public_url.as_deref() else { return Ok(()) };
        if rooms::get(&self.db, room_id).await.map_err(db_error)?.is_some() {
            return Ok(());
        }
        let others: Vec<String> = members::of_room(&self.db, room_id)
            .await
            .map_err(db_error)?
            .into_iter()
            .filter(|(u, m)| *u != self.bot_user_id && members::holds_place(m))
            .map(|(u, _)| u)
            .collect();
        let [only] = others.as_slice() else { return Ok(()) };
        if !matches!(self.checker.role(only).await.map_err(db_error)?, Role::Counsellor { .. }) {
            return Ok(());
        }
        let content = crate::features::search::widget_content(base, &self.bot_user_id);
        let key = crate::features::search::WIDGET_ID;
        match self.hs.set_state(room_id, &self.bot_user_id, "im.vector.modular.widgets", key, &content).await
        {
            Ok(_) => Ok(()),
            Err(e) => ignore_refusal(e),
        }
    }

    /// Puts the client-file widget into a client chat once the bot is in it and the client
    /// known (when `appservice.public_url` is set). Safe to repeat.
    async fn ensure_client_file_widget(&self, room_id: &str) -> Result<(), HandleError> {
        let Some(base) = self.provisioning.config.appservice.public_url.as_deref() else { return Ok(()) };
        match rooms::get(&self.db, room_id).await.map_err(db_error)? {
            Some(r) if r.kind == RoomKind::ClientChat => {}
            _ => return Ok(()),
        }
        if !self.bot_is_joined(room_id).await? {
            return Ok(());
        }
        let Some(client) = self.checker.clients_in(room_id).await.map_err(db_error)?.pop() else {
            return Ok(());
        };
        let client_q: String = url::form_urlencoded::byte_serialize(client.as_bytes()).collect();
        let url = format!(
            "{}/_assisto/widget/mappe?client={client_q}&widgetId=$matrix_widget_id",
            base.trim_end_matches('/')
        );
        let content = serde_json::json!({
            "type": "m.custom",
            "url": url,
            "name": "Ratsuchendenmappe",
            "id": WIDGET_ID,
            "creatorUserId": self.bot_user_id,
            "data": { "title": "Ratsuchendenmappe" },
        });
        match self
            .hs
            .set_state(room_id, &self.bot_user_id, "im.vector.modular.widgets", WIDGET_ID, &content)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => ignore_refusal(e),
        }
    }

    /// Repairs what should have been prevented (e.g. a server admin bypassing the module):
    /// a member who may not be in the room — a client in a colleague room, a blocked client
    /// joining, someone from outside the institution, one member too many.
    async fn second_line_of_defence(&self, ev: &RoomEvent, target: &str) -> Result<(), HandleError> {
        let Some(room) = rooms::get(&self.db, &ev.room_id).await.map_err(db_error)? else { return Ok(()) };
        let Some(rule) = self.membership_violation(&room, ev, target).await? else { return Ok(()) };
        // Processed late, the member may be gone already: nothing left to repair.
        let now = self
            .hs
            .get_state(&ev.room_id, &self.bot_user_id, "m.room.member", target)
            .await
            .or_else(|e| if e.is_transient() { Err(hs_error(e)) } else { Ok(None) })?;
        if !now
            .as_ref()
            .and_then(|m| m["membership"].as_str())
            .is_some_and(|m| members::counts(&MembershipState::from(m)))
        {
            return Ok(());
        }
        tracing::warn!(room_id = %ev.room_id, rule = rule.as_str(), "rule broken; removing the member");
        let outcome = self.hs.kick(&ev.room_id, &self.bot_user_id, target, rule.message_de()).await;
        self.repaired(ev, rule, Some(target), outcome).await
    }

    /// The rule a member breaks by being (or becoming) a member of a managed room, if any.
    async fn membership_violation(
        &self,
        room: &rooms::ManagedRoom,
        ev: &RoomEvent,
        target: &str,
    ) -> Result<Option<Rule>, HandleError> {
        let role = self.checker.role(target).await.map_err(db_error)?;
        if role == Role::Bot {
            return Ok(None);
        }
        if room.kind.is_colleague() && role.is_client() {
            return Ok(Some(Rule::NoClientsInColleagueRooms));
        }
        if matches!(role, Role::Client { blocked: true, .. })
            && ev.content["membership"].as_str().map(MembershipState::from) == Some(MembershipState::Join)
            && self.joined_while_blocked(target, ev).await?
        {
            return Ok(Some(Rule::BlockedClient));
        }
        match &role {
            Role::Remote => return Ok(Some(Rule::LocalOnly)),
            Role::OtherLocal => return Ok(Some(Rule::OwnInstitutionOnly)),
            Role::Counsellor { institution } if *institution != room.institution_id => {
                return Ok(Some(Rule::OwnInstitutionOnly))
            }
            Role::Client { institution, .. } if *institution != room.institution_id => {
                return Ok(Some(Rule::InstitutionBoundary))
            }
            _ => {}
        }
        let joined =
            ev.content["membership"].as_str().map(MembershipState::from) == Some(MembershipState::Join);
        if room.kind == RoomKind::Live && joined && matches!(role, Role::Counsellor { .. }) {
            // A join the module did not decide (a server admin's): the desk admits the
            // owner and colleagues the owner invited, a join of a queued chat takes it.
            let was_invited =
                ev.prev_content.as_ref().and_then(|p| p["membership"].as_str()) == Some("invite");
            if let Some(Err(_)) =
                self.live.gate_join(&ev.room_id, target, was_invited).await.map_err(service_error)?
            {
                return Ok(Some(Rule::LiveChatOwner));
            }
        }
        let members = members::of_room(&self.db, &ev.room_id).await.map_err(db_error)?;
        let counted: Vec<&String> = members
            .iter()
            .filter(|(u, m)| *u != self.bot_user_id && members::counts(m))
            .map(|(u, _)| u)
            .collect();
        let clients = counted.iter().filter(|u| self.checker.is_puppet(u)).count();
        Ok(match room.kind {
            RoomKind::ColleagueGroup if counted.len() > COLLEAGUE_GROUP_MAX => Some(Rule::ColleagueCap),
            RoomKind::ColleagueChat if counted.len() > COLLEAGUE_CHAT_MAX => Some(Rule::ColleagueChatForTwo),
            RoomKind::ClientChat if role.is_client() && clients > 1 => Some(Rule::OneClientPerClientChat),
            _ => None,
        })
    }

    /// Records how a repair went: "repaired" only when it worked; a failed repair is counted
    /// in `/metrics` and retried (the event stays in processing until it works or becomes a
    /// dead letter).
    async fn repaired(
        &self,
        ev: &RoomEvent,
        rule: Rule,
        subject: Option<&str>,
        outcome: Result<(), HsError>,
    ) -> Result<(), HandleError> {
        let repairs = &self.hs.metrics().repairs;
        match outcome {
            Ok(()) => {}
            Err(e) if e.is_transient() => return Err(hs_error(e)),
            Err(e) => {
                repairs.with_label_values(&["failed"]).inc();
                tracing::warn!(room_id = %ev.room_id, rule = rule.as_str(), errcode = ?e.errcode(), "repair failed");
                audit::record(
                    &self.db,
                    "assisto",
                    &format!("rule.{}.repair_failed", rule.as_str()),
                    &ev.room_id,
                    subject,
                )
                .await
                .map_err(db_error)?;
                return Err(HandleError::Transient(format!("repair of {} failed: {e}", rule.as_str())));
            }
        }
        repairs.with_label_values(&["repaired"]).inc();
        audit::record(&self.db, "assisto", &format!("rule.{}.repaired", rule.as_str()), &ev.room_id, subject)
            .await
            .map_err(db_error)?;
        let txn = TxnId::derived(&ev.event_id, "rule-repaired");
        self.hs
            .send_notice(&ev.room_id, &self.bot_user_id, &txn, rule.message_de())
            .await
            .or_else(ignore_refusal_notice)?;
        Ok(())
    }

    /// Repairs a state change in a managed room that the allow-list refuses (a server admin
    /// forced it): the previous content comes back, or the one the service prescribes.
    async fn on_state(&self, ev: &RoomEvent) -> Result<(), HandleError> {
        if ev.sender == self.bot_user_id {
            return Ok(());
        }
        let Some(room) = rooms::get(&self.db, &ev.room_id).await.map_err(db_error)? else { return Ok(()) };
        let state_key = ev.state_key.as_deref().unwrap_or_default();
        if ev.kind == "m.room.tombstone" {
            return self.follow_upgrade(&room, ev).await;
        }
        let sender = self.checker.role(&ev.sender).await.map_err(db_error)?;
        let facts = self.checker.facts(&ev.room_id, &RoomState::default()).await.map_err(db_error)?;
        let is_puppet = |u: &str| self.checker.is_puppet(u);
        let change = rules::StateChange {
            room_id: &ev.room_id,
            event_type: &ev.kind,
            state_key,
            content: &ev.content,
            replacement_predecessor: None,
            replacement_exists: true,
        };
        let Verdict::Deny(rule) =
            rules::may_set_state(&sender, &facts, &change, &self.bot_user_id, &is_puppet)
        else {
            return Ok(());
        };
        let Some(content) = rules::restored_state(
            &ev.kind,
            ev.prev_content.as_ref(),
            &ev.content,
            &self.bot_user_id,
            &is_puppet,
        ) else {
            // End-to-end encryption cannot be switched off again: said in the room, counted.
            self.hs.metrics().repairs.with_label_values(&["impossible"]).inc();
            tracing::warn!(room_id = %ev.room_id, kind = %ev.kind, "forced state cannot be repaired");
            audit::record(
                &self.db,
                "assisto",
                &format!("rule.{}.repair_impossible", rule.as_str()),
                &ev.room_id,
                Some(&ev.kind),
            )
            .await
            .map_err(db_error)?;
            let txn = TxnId::derived(&ev.event_id, "rule-unrepairable");
            self.hs
                .send_notice(&ev.room_id, &self.bot_user_id, &txn, rules::UNREPAIRABLE_DE)
                .await
                .or_else(ignore_refusal_notice)?;
            return Ok(());
        };
        let outcome = self
            .hs
            .set_state(&ev.room_id, &self.bot_user_id, &ev.kind, state_key, &content)
            .await
            .map(|_| ());
        self.repaired(ev, rule, Some(&ev.kind), outcome).await
    }

    /// A managed room was upgraded (`m.room.tombstone`, allowed only for a real upgrade): the
    /// bot follows into the new room, which inherits the kind, the members are invited, and
    /// the space lists the new room instead of the old one.
    async fn follow_upgrade(&self, room: &rooms::ManagedRoom, ev: &RoomEvent) -> Result<(), HandleError> {
        let Some(new_room) = ev.content.get("replacement_room").and_then(Value::as_str) else {
            return Ok(());
        };
        // The new room must really replace this one (read as the upgrading counsellor).
        let create = self.hs.get_state(new_room, &ev.sender, "m.room.create", "").await.or_else(|e| {
            if e.is_transient() {
                Err(hs_error(e))
            } else {
                Ok(None)
            }
        })?;
        if create.as_ref().and_then(|c| c.pointer("/predecessor/room_id")).and_then(Value::as_str)
            != Some(&ev.room_id)
        {
            tracing::warn!(room_id = %ev.room_id, "tombstone without a real replacement; not followed");
            return Ok(());
        }
        rooms::insert(&self.db, new_room, &room.institution_id, room.kind, &ev.sender)
            .await
            .map_err(db_error)?;
        // The upgrading counsellor invites the bot (the service may act for counsellors).
        self.hs.invite(new_room, &ev.sender, &self.bot_user_id).await.or_else(ignore_refusal)?;
        self.hs.join_room(new_room, &self.bot_user_id).await.map_err(hs_error)?;
        for (user, membership) in members::of_room(&self.db, &ev.room_id).await.map_err(db_error)? {
            if user == self.bot_user_id || user == ev.sender || !members::holds_place(&membership) {
                continue;
            }
            self.hs.invite(new_room, &self.bot_user_id, &user).await.or_else(ignore_refusal)?;
        }
        self.provisioning
            .remove_from_space(&room.institution_id, room.kind.category(), &ev.room_id)
            .await
            .map_err(|e| HandleError::Transient(e.to_string()))?;
        audit::record(&self.db, &ev.sender, "room.upgrade_followed", new_room, Some(&ev.room_id))
            .await
            .map_err(db_error)
    }

    /// Whether a client's join happened after the block began. Processing can lag behind
    /// (under load, or after a restart): a join from before the block is not a violation.
    async fn joined_while_blocked(&self, client: &str, ev: &RoomEvent) -> Result<bool, HandleError> {
        let since = crate::features::people::store::client_by_id(&self.db, client)
            .await
            .map_err(db_error)?
            .and_then(|c| c.blocked_since);
        Ok(since.is_some_and(|since| ev.origin_server_ts.unwrap_or(i64::MAX) >= since))
    }

    async fn bot_is_joined(&self, room_id: &str) -> Result<bool, HandleError> {
        let members = members::of_room(&self.db, room_id).await.map_err(db_error)?;
        Ok(members.iter().any(|(u, m)| *u == self.bot_user_id && *m == MembershipState::Join))
    }

    async fn on_message(&self, ev: &RoomEvent) -> Result<(), HandleError> {
        if ev.sender == self.bot_user_id {
            return Ok(());
        }
        let Some(body) = ev.content.get("body").and_then(Value::as_str) else { return Ok(()) };
        let command = commands::parse(body);
        let at = ev.origin_server_ts.unwrap_or_else(crate::store::now_ms);
        self.live
            .message(&ev.room_id, &ev.sender, at, command.is_some(), &ev.content)
            .await
            .map_err(service_error)?;
        match command {
            Some(invocation) => commands::run(&self.commands, ev, invocation).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl EventHandler for Assisto {
    async fn handle_event(&self, ev: &RoomEvent) -> Result<(), HandleError> {
        match ev.kind.as_str() {
            "m.room.member" => self.on_member(ev).await,
            "m.room.create" => self.on_create(ev).await,
            "m.room.message" => self.on_message(ev).await,
            _ if ev.is_state() => self.on_state(ev).await,
            _ => Ok(()),
        }?;
        if let Some(search) = &self.search {
            match search.on_event(ev).await {
                Ok(()) => {}
                Err(crate::error::Error::Database(e)) => return Err(db_error(e)),
                // The index's own failure (its disk, say) never holds up the stream: the
                // event is processed, and a rebuild brings the index back in step.
                Err(e) => tracing::warn!(room_id = %ev.room_id, error = %e, "indexing for search failed"),
            }
        }
        if let (Some(counters), "m.room.message" | "m.room.redaction") = (&self.counters, ev.kind.as_str()) {
            counters.room_changed(&ev.room_id);
        }
        if let Some(embed) = &self.embed {
            embed.on_event(ev).await;
        }
        Ok(())
    }

    async fn handle_ephemeral(&self, ev: &Value) {
        tracing::trace!(kind = ?ev.get("type"), "ephemeral event");
        if ev["type"] == "m.presence" {
            if let (Some(user), Some(p)) = (ev["sender"].as_str(), ev["content"]["presence"].as_str()) {
                if let Err(e) = self.live.presence(user, assisto_core::live::Presence::from_matrix(p)).await {
                    tracing::warn!(error = %e, "presence not recorded");
                }
            }
        }
        if let Some(counters) = &self.counters {
            counters.on_ephemeral(ev);
        }
        if let Some(embed) = &self.embed {
            embed.on_ephemeral(ev);
        }
    }
}

fn ignore_refusal_notice(e: HsError) -> Result<crate::matrix::homeserver::SentEvent, HandleError> {
    if e.is_transient() {
        Err(hs_error(e))
    } else {
        Ok(crate::matrix::homeserver::SentEvent { event_id: String::new() })
    }
}

fn ignore_refusal(e: HsError) -> Result<(), HandleError> {
    if e.is_transient() {
        Err(hs_error(e))
    } else {
        Ok(())
    }
}

fn service_error(e: crate::error::Error) -> HandleError {
    match e {
        crate::error::Error::Database(e) => db_error(e),
        crate::error::Error::Homeserver(e) => hs_error(e),
        other => HandleError::Permanent(other.to_string()),
    }
}
