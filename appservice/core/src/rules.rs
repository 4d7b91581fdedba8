//! The rules of assisto, in one place, each with the name a counsellor would recognise.
//!
//! A rule decides on an action *before* the homeserver carries it out: the thin Synapse
//! module (`synapse_module/`) asks through `POST /_assisto/module/v1/check` and applies the
//! verdict. Reactive repair in the event handler is the second line of defence.
//!
//! 1. [`Rule::ColleagueCap`]: a colleague group has at most 8 members, its creator
//!    included (the bot does not count).
//! 2. [`Rule::NoClientsInColleagueRooms`]: no client ever joins a colleague room — by
//!    invite, by join, or through a room upgrade (the new room inherits the kind).
//! 3. [`Rule::BlockedClient`]: a blocked client can neither send nor join.
//! 4. [`Rule::GroupDeactivated`], [`Rule::ParticipantDeactivated`],
//!    [`Rule::AppointmentClosed`]: read-only groups, participants and closed slots.
//! 5. [`Rule::InstitutionBoundary`]: only counsellors of an institution reach its clients.
//! 6. Every refusal carries a German explanation for the person affected.

use serde::Serialize;
use serde_json::Value;

use crate::RoomKind;

/// The most members a colleague group may have, its creator included.
pub const COLLEAGUE_GROUP_MAX: usize = 8;

/// The members of a colleague chat: two counsellors.
pub const COLLEAGUE_CHAT_MAX: usize = 2;

/// A rule that can refuse an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// At most eight counsellors in a colleague group.
    ColleagueCap,
    /// Colleague rooms are for counsellors only.
    NoClientsInColleagueRooms,
    /// Blocked clients neither send nor join.
    BlockedClient,
    /// A deactivated group is read-only.
    GroupDeactivated,
    /// A deactivated participant reads but does not write.
    ParticipantDeactivated,
    /// An appointment group chat is open only in its slots.
    AppointmentClosed,
    /// Only counsellors of an institution reach its clients.
    InstitutionBoundary,
    /// A client chat has exactly one client.
    OneClientPerClientChat,
    /// Clients and guests take part only in rooms the service puts them in.
    ClientsDoNotAct,
    /// Managed rooms stay on this homeserver.
    LocalOnly,
    /// Only counsellors of the room's institution (and its clients, where the kind allows)
    /// are ever members of a managed room.
    OwnInstitutionOnly,
    /// A colleague chat is for two counsellors.
    ColleagueChatForTwo,
    /// Managed rooms are entered by invitation: no knocking, no joining an unclassified room.
    InviteOnly,
    /// The security-relevant settings of a managed room are the service's: join rules,
    /// history visibility, guest access, encryption, aliases, directory, spaces, server
    /// ACLs, widgets, tombstones.
    ProtectedSetting,
    /// Power levels keep the bot able to enforce the rules and give clients no power.
    ProtectedPowerLevels,
    /// The bot stays in every managed room.
    BotStays,
    /// A live chat is for the counsellor who took it (and colleagues they invite): taking it
    /// is one atomic step, and whoever lost it does not get in.
    LiveChatOwner,
    /// The rule set could not be consulted, and the action touches managed rooms or
    /// clients: refused to be safe.
    Unavailable,
}

impl Rule {
    /// Stable name, used in the audit log and the error body.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ColleagueCap => "colleague_cap",
            Rule::NoClientsInColleagueRooms => "no_clients_in_colleague_rooms",
            Rule::BlockedClient => "blocked_client",
            Rule::GroupDeactivated => "group_deactivated",
            Rule::ParticipantDeactivated => "participant_deactivated",
            Rule::AppointmentClosed => "appointment_closed",
            Rule::InstitutionBoundary => "institution_boundary",
            Rule::OneClientPerClientChat => "one_client_per_client_chat",
            Rule::ClientsDoNotAct => "clients_do_not_act",
            Rule::LocalOnly => "local_only",
            Rule::OwnInstitutionOnly => "own_institution_only",
            Rule::ColleagueChatForTwo => "colleague_chat_for_two",
            Rule::InviteOnly => "invite_only",
            Rule::ProtectedSetting => "protected_setting",
            Rule::ProtectedPowerLevels => "protected_power_levels",
            Rule::BotStays => "bot_stays",
            Rule::LiveChatOwner => "live_chat_owner",
            Rule::Unavailable => "unavailable",
        }
    }

    /// The explanation the affected person reads (German).
    pub fn message_de(self) -> &'static str {
        match self {
            Rule::ColleagueCap => "Ein Gruppenchat mit Kolleg:innen hat höchstens 8 Mitglieder (inklusive der Person, die ihn erstellt hat). Diese Person kann nicht hinzugefügt werden.",
            Rule::NoClientsInColleagueRooms => "Chats mit Kolleg:innen sind interne Chats: Ratsuchende können ihnen nicht beitreten.",
            Rule::BlockedClient => "Diese ratsuchende Person ist gesperrt: Sie kann keine Nachrichten senden und keinem Chat beitreten.",
            Rule::GroupDeactivated => "Dieser Gruppenchat ist deaktiviert: Alle können den Verlauf lesen, aber niemand kann schreiben.",
            Rule::ParticipantDeactivated => "Sie sind in diesem Gruppenchat deaktiviert: Sie können mitlesen, aber nicht schreiben.",
            Rule::AppointmentClosed => "Dieser Gruppen-Terminchat ist nur während seiner Termine geöffnet.",
            Rule::InstitutionBoundary => "Ratsuchende können nur von Beratenden ihrer eigenen Einrichtung erreicht werden.",
            Rule::OneClientPerClientChat => "Ein Chat mit Ratsuchenden ist für genau eine ratsuchende Person. Für mehrere Personen erstellen Sie bitte einen Gruppenchat.",
            Rule::ClientsDoNotAct => "Ratsuchende nehmen nur an Chats teil, in die sie von Beratenden eingeladen werden.",
            Rule::LocalOnly => "Dieser Chat ist nur für Personen dieser Einrichtung.",
            Rule::OwnInstitutionOnly => "Diesem Chat können nur Beratende dieser Einrichtung (und, wo vorgesehen, ihre Ratsuchenden) angehören.",
            Rule::ColleagueChatForTwo => "Ein Chat mit Kolleg:in ist für zwei Personen. Für mehr Personen erstellen Sie bitte einen Gruppenchat mit Kolleg:innen (höchstens 8 Mitglieder).",
            Rule::InviteOnly => "Diesem Chat tritt man nur auf Einladung bei. Bitte bitten Sie eine Person im Chat, Sie einzuladen.",
            Rule::ProtectedSetting => "Diese Einstellung legt assisto für diese Art von Chat fest (wer beitreten und den Verlauf lesen kann, Gastzugang, Verschlüsselung, Adressen, Raumverzeichnis, Bereiche, Widgets). Sie kann nicht geändert werden.",
            Rule::ProtectedPowerLevels => "Diese Berechtigungen sind nicht möglich: Der assisto-Bot behält seine Rechte, niemand erhält mehr Rechte als er, und Ratsuchende erhalten keine Rechte.",
            Rule::BotStays => "Der assisto-Bot gehört zu diesem Chat: Er setzt die Regeln der Einrichtung durch und kann nicht entfernt werden.",
            Rule::LiveChatOwner => "Ein Live-Chat gehört der beratenden Person, die ihn übernommen hat (und den Kolleg:innen, die sie dazuholt).",
            Rule::Unavailable => "Die Regeln der Einrichtung können gerade nicht geprüft werden. Bitte versuchen Sie es in einem Moment erneut.",
        }
    }
}

/// The outcome of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Refused by a rule.
    Deny(Rule),
}

impl Verdict {
    /// Whether the action may go ahead.
    pub fn allowed(&self) -> bool {
        matches!(self, Verdict::Allow)
    }
}

/// Who someone is, as far as the rules care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The service's bot.
    Bot,
    /// A counsellor of an institution.
    Counsellor {
        /// Institution.
        institution: String,
    },
    /// A client or guest puppet.
    Client {
        /// Institution.
        institution: String,
        /// Blocked?
        blocked: bool,
    },
    /// A puppet ID of our namespace that is not (or no longer) a known client.
    UnknownPuppet,
    /// A user of this homeserver the service does not manage.
    OtherLocal,
    /// A user of another homeserver.
    Remote,
}

impl Role {
    /// Whether this is a client (known or not).
    pub fn is_client(&self) -> bool {
        matches!(self, Role::Client { .. } | Role::UnknownPuppet)
    }
}

/// What the rules know about a room at the moment of a check.
#[derive(Clone, Debug)]
pub struct RoomFacts {
    /// The room's kind, if it is managed (or was classified at creation).
    pub kind: Option<RoomKind>,
    /// Its institution, if known.
    pub institution: Option<String>,
    /// Deactivated (read-only)?
    pub deactivated: bool,
    /// Current members who count for the colleague cap: joined and invited, not the bot.
    pub members: Vec<String>,
    /// For appointment groups: is a slot open now?
    pub appointment_open: bool,
    /// How many clients are members (joined or invited).
    pub clients_in_room: usize,
    /// Who created the room (`m.room.create` sender), if known.
    pub creator: Option<String>,
}

impl RoomFacts {
    /// Whether the room belongs to an institution (a managed room, a space or the
    /// directory room): then only that institution's people are ever in it.
    pub fn is_managed(&self) -> bool {
        self.institution.is_some()
    }

    /// Whether `user_id` is counted already (joined, invited or knocking).
    fn counts(&self, user_id: &str) -> bool {
        self.members.iter().any(|m| m == user_id)
    }
}

/// Who may be a member of a managed room at all: the bot, the institution's counsellors
/// and its clients (whether the kind admits clients is decided by the callers).
fn belongs(user: &Role, facts: &RoomFacts) -> Verdict {
    if !facts.is_managed() {
        return Verdict::Allow;
    }
    match user {
        Role::Bot => Verdict::Allow,
        Role::Remote => Verdict::Deny(Rule::LocalOnly),
        Role::OtherLocal => Verdict::Deny(Rule::OwnInstitutionOnly),
        Role::Counsellor { institution } | Role::Client { institution, .. }
            if facts.institution.as_ref() != Some(institution) =>
        {
            match user {
                Role::Client { .. } => Verdict::Deny(Rule::InstitutionBoundary),
                _ => Verdict::Deny(Rule::OwnInstitutionOnly),
            }
        }
        _ => Verdict::Allow,
    }
}

/// The caps of the kinds with a limit, for a new member (`already`: counted before).
fn cap(kind: Option<RoomKind>, user: &Role, already: bool, facts: &RoomFacts) -> Verdict {
    if already || user.is_client() || *user == Role::Bot {
        return Verdict::Allow;
    }
    match kind {
        Some(RoomKind::ColleagueGroup) if facts.members.len() >= COLLEAGUE_GROUP_MAX => {
            Verdict::Deny(Rule::ColleagueCap)
        }
        Some(RoomKind::ColleagueChat) if facts.members.len() >= COLLEAGUE_CHAT_MAX => {
            Verdict::Deny(Rule::ColleagueChatForTwo)
        }
        _ => Verdict::Allow,
    }
}

/// May `inviter` invite `invitee` into a room with `facts`?
pub fn may_invite(inviter: &Role, invitee: &Role, invitee_id: &str, facts: &RoomFacts) -> Verdict {
    if matches!(inviter, Role::Client { .. } | Role::UnknownPuppet) {
        return Verdict::Deny(Rule::ClientsDoNotAct);
    }
    if *invitee == Role::Bot {
        return Verdict::Allow;
    }
    if let Role::Client { blocked: true, .. } = invitee {
        return Verdict::Deny(Rule::BlockedClient);
    }
    if let Some(k) = facts.kind {
        if k.is_colleague() && invitee.is_client() {
            return Verdict::Deny(Rule::NoClientsInColleagueRooms);
        }
        if k == RoomKind::ClientChat && invitee.is_client() && facts.clients_in_room >= 1 {
            return Verdict::Deny(Rule::OneClientPerClientChat);
        }
    }
    if let Verdict::Deny(r) = belongs(invitee, facts) {
        return Verdict::Deny(r);
    }
    if let Verdict::Deny(r) = cap(facts.kind, invitee, facts.counts(invitee_id), facts) {
        return Verdict::Deny(r);
    }
    if let Role::Client { institution, .. } = invitee {
        match inviter {
            Role::Bot => {}
            Role::Counsellor { institution: own } if own == institution => {}
            _ => return Verdict::Deny(Rule::InstitutionBoundary),
        }
    }
    if matches!(invitee, Role::UnknownPuppet) {
        return Verdict::Deny(Rule::InstitutionBoundary);
    }
    Verdict::Allow
}

/// May `user` join a room with `facts`?
pub fn may_join(user: &Role, user_id: &str, facts: &RoomFacts) -> Verdict {
    match user {
        Role::Bot => return Verdict::Allow,
        Role::Client { blocked: true, .. } => return Verdict::Deny(Rule::BlockedClient),
        Role::UnknownPuppet => return Verdict::Deny(Rule::ClientsDoNotAct),
        // Clients join only where a counsellor invited them (`members` holds the invited).
        Role::Client { .. } if !facts.counts(user_id) => return Verdict::Deny(Rule::ClientsDoNotAct),
        _ => {}
    }
    if let Some(k) = facts.kind {
        if k.is_colleague() && user.is_client() {
            return Verdict::Deny(Rule::NoClientsInColleagueRooms);
        }
    }
    if let Verdict::Deny(r) = belongs(user, facts) {
        return Verdict::Deny(r);
    }
    let creator = facts.creator.as_deref() == Some(user_id);
    if facts.is_managed() && facts.kind.is_none() && !creator && !facts.counts(user_id) {
        // An unclassified room is classified by its first invite, before anyone but its
        // creator is in it.
        return Verdict::Deny(Rule::InviteOnly);
    }
    cap(facts.kind, user, facts.counts(user_id) || creator, facts)
}

/// May `user` knock on a room with `facts`? Managed rooms are entered by invitation; the
/// knocker learns the rule that keeps them out, or that they need an invitation.
pub fn may_knock(user: &Role, user_id: &str, facts: &RoomFacts) -> Verdict {
    if !facts.is_managed() && facts.kind.is_none() {
        return if user.is_client() { Verdict::Deny(Rule::ClientsDoNotAct) } else { Verdict::Allow };
    }
    match may_join(user, user_id, facts) {
        Verdict::Allow => Verdict::Deny(Rule::InviteOnly),
        deny => deny,
    }
}

/// May `sender` send a message event into a room with `facts`? (`participant_deactivated`:
/// whether the sender is deactivated in this room.)
pub fn may_send(sender: &Role, facts: &RoomFacts, participant_deactivated: bool) -> Verdict {
    if let Role::Client { blocked: true, .. } = sender {
        return Verdict::Deny(Rule::BlockedClient);
    }
    if matches!(sender, Role::Bot) {
        return Verdict::Allow;
    }
    if let Some(kind) = facts.kind {
        if kind.is_group() && facts.deactivated {
            return Verdict::Deny(Rule::GroupDeactivated);
        }
        if kind.is_group() && participant_deactivated {
            return Verdict::Deny(Rule::ParticipantDeactivated);
        }
        if kind == RoomKind::AppointmentGroup && !facts.appointment_open {
            return Verdict::Deny(Rule::AppointmentClosed);
        }
    }
    Verdict::Allow
}

/// The power every managed room gives the bot: the most anyone has (room creators of room
/// version 12 aside, who are above every level).
pub const BOT_POWER: i64 = 100;

/// A state change in a room, other than membership.
#[derive(Clone, Copy, Debug)]
pub struct StateChange<'a> {
    /// The room.
    pub room_id: &'a str,
    /// Event type.
    pub event_type: &'a str,
    /// State key.
    pub state_key: &'a str,
    /// Content.
    pub content: &'a Value,
    /// For `m.room.tombstone`: the room that the replacement room's creation names as its
    /// predecessor.
    pub replacement_predecessor: Option<&'a str>,
    /// For `m.room.tombstone`: whether the replacement room exists yet. An upgrade sends the
    /// tombstone before it creates the new room (whose ID, in room version 12, is the hash
    /// of its creation event).
    pub replacement_exists: bool,
}

/// State that counsellors may set in a managed room as they like (the homeserver's power
/// levels still apply): how the room looks, nothing about who gets in or reads.
const FREE_STATE: [&str; 5] =
    ["m.room.name", "m.room.topic", "m.room.avatar", "m.room.pinned_events", "io.element.widgets.layout"];

/// History visibilities a managed room may have: only members ever read.
fn history_allowed(content: &Value) -> bool {
    use ruma::events::room::history_visibility::{HistoryVisibility, RoomHistoryVisibilityEventContent};
    matches!(
        serde_json::from_value::<RoomHistoryVisibilityEventContent>(content.clone())
            .map(|c| c.history_visibility),
        Ok(HistoryVisibility::Shared | HistoryVisibility::Invited | HistoryVisibility::Joined)
    )
}

/// Whether a join rule is `invite`, the one rooms made by counsellors have.
fn join_rule_is_invite(content: &Value) -> bool {
    use ruma::events::room::join_rules::{JoinRule, RoomJoinRulesEventContent};
    matches!(
        serde_json::from_value::<RoomJoinRulesEventContent>(content.clone()).map(|c| c.join_rule),
        Ok(JoinRule::Invite)
    )
}

/// Whether guest access is forbidden.
fn guests_forbidden(content: &Value) -> bool {
    use ruma::events::room::guest_access::{GuestAccess, RoomGuestAccessEventContent};
    matches!(
        serde_json::from_value::<RoomGuestAccessEventContent>(content.clone()).map(|c| c.guest_access),
        Ok(GuestAccess::Forbidden)
    )
}

/// Whether power levels keep a managed room enforceable: the bot has [`BOT_POWER`], nobody
/// more; no threshold is out of the bot's reach; clients (and everyone by default) have no
/// power.
pub fn power_levels_allowed(content: &Value, bot: &str, is_puppet: &dyn Fn(&str) -> bool) -> bool {
    use ruma::events::room::power_levels::RoomPowerLevelsEventContent;
    let Ok(pl) = serde_json::from_value::<RoomPowerLevelsEventContent>(content.clone()) else {
        return false;
    };
    let level = |i: ruma::Int| i64::from(i);
    let bot_level = pl.users.iter().find(|(u, _)| u.as_str() == bot).map(|(_, l)| level(*l));
    if bot_level != Some(BOT_POWER) {
        return false;
    }
    if pl.users.iter().any(|(u, l)| level(*l) > BOT_POWER || (is_puppet(u.as_str()) && level(*l) > 0)) {
        return false;
    }
    let thresholds =
        [pl.ban, pl.kick, pl.redact, pl.invite, pl.state_default, pl.events_default, pl.notifications.room];
    level(pl.users_default) <= 0
        && thresholds
            .into_iter()
            // Room version 12 reserves upgrades for creators (150); the bot never upgrades.
            .chain(pl.events.iter().filter(|(t, _)| t.to_string() != "m.room.tombstone").map(|(_, l)| *l))
            .all(|t| level(t) <= BOT_POWER)
}

/// May `sender` make this state change (anything but membership) in a room with `facts`?
/// An allow-list: what is not named here is refused in managed rooms.
pub fn may_set_state(
    sender: &Role,
    facts: &RoomFacts,
    change: &StateChange<'_>,
    bot: &str,
    is_puppet: &dyn Fn(&str) -> bool,
) -> Verdict {
    if *sender == Role::Bot || !facts.is_managed() {
        return Verdict::Allow;
    }
    if sender.is_client() {
        return Verdict::Deny(Rule::ClientsDoNotAct);
    }
    if !matches!(sender, Role::Counsellor { institution } if facts.institution.as_ref() == Some(institution))
    {
        return Verdict::Deny(Rule::OwnInstitutionOnly);
    }
    let made_by_bot = facts.creator.as_deref() == Some(bot);
    let ok = match change.event_type {
        t if FREE_STATE.contains(&t) => true,
        // Rooms the service made (the web embed's, spaces) keep the rule it gave them.
        "m.room.join_rules" => !made_by_bot && join_rule_is_invite(change.content),
        "m.room.history_visibility" => history_allowed(change.content),
        "m.room.guest_access" => guests_forbidden(change.content),
        "m.room.power_levels" => {
            return if power_levels_allowed(change.content, bot, is_puppet) {
                Verdict::Allow
            } else {
                Verdict::Deny(Rule::ProtectedPowerLevels)
            }
        }
        // Only as part of an upgrade: the replacement is about to be created, or names this
        // room as its predecessor (never a tombstone pointing at some other existing room).
        "m.room.tombstone" => {
            !made_by_bot
                && (!change.replacement_exists || change.replacement_predecessor == Some(change.room_id))
        }
        _ => false,
    };
    if ok {
        Verdict::Allow
    } else {
        Verdict::Deny(Rule::ProtectedSetting)
    }
}

/// What the bot says where forced state cannot be taken back.
pub const UNREPAIRABLE_DE: &str = "Die Serveradministration hat in diesem Chat eine Einstellung erzwungen, die sich nicht zurücknehmen lässt (Ende-zu-Ende-Verschlüsselung). Bitte wenden Sie sich an die Administration.";

/// The content that repairs a refused state change: the previous content if it was
/// allowed, else what the service prescribes. `None` where nothing can undo the change
/// (end-to-end encryption stays on once it is on).
pub fn restored_state(
    event_type: &str,
    prev: Option<&Value>,
    now: &Value,
    bot: &str,
    is_puppet: &dyn Fn(&str) -> bool,
) -> Option<Value> {
    let allowed_prev = |ok: &dyn Fn(&Value) -> bool| prev.filter(|p| ok(p)).cloned();
    Some(match event_type {
        "m.room.encryption" => return None,
        "m.room.join_rules" => prev.cloned().unwrap_or_else(|| serde_json::json!({ "join_rule": "invite" })),
        "m.room.history_visibility" => allowed_prev(&history_allowed)
            .unwrap_or_else(|| serde_json::json!({ "history_visibility": "shared" })),
        "m.room.guest_access" => serde_json::json!({ "guest_access": "forbidden" }),
        "m.room.power_levels" => match allowed_prev(&|p| power_levels_allowed(p, bot, is_puppet)) {
            Some(p) => p,
            None => {
                let mut fixed = now.clone();
                if !fixed["users"].is_object() {
                    fixed["users"] = serde_json::json!({});
                }
                if let Some(users) = fixed["users"].as_object_mut() {
                    users.retain(|u, l| !is_puppet(u) && l.as_i64().is_some_and(|l| l <= BOT_POWER));
                    users.insert(bot.to_owned(), serde_json::json!(BOT_POWER));
                }
                for key in ["ban", "kick", "redact", "invite", "state_default", "events_default"] {
                    if fixed[key].as_i64().is_some_and(|l| l > BOT_POWER) {
                        fixed[key] = serde_json::json!(BOT_POWER);
                    }
                }
                if let Some(events) = fixed.get_mut("events").and_then(Value::as_object_mut) {
                    events
                        .retain(|t, l| t == "m.room.tombstone" || l.as_i64().is_some_and(|l| l <= BOT_POWER));
                }
                fixed["users_default"] = serde_json::json!(0);
                fixed
            }
        },
        "m.room.server_acl" => prev
            .cloned()
            .unwrap_or_else(|| serde_json::json!({ "allow": ["*"], "deny": [], "allow_ip_literals": true })),
        // Aliases, space links, widgets and anything else: gone again (empty content).
        _ => prev.cloned().unwrap_or_else(|| serde_json::json!({})),
    })
}

/// A `createRoom` request, as far as its shape matters for a managed room.
#[derive(Clone, Copy, Debug)]
pub struct Creation<'a> {
    /// `preset`.
    pub preset: Option<&'a str>,
    /// `visibility`.
    pub visibility: Option<&'a str>,
    /// Whether `room_alias_name` is given.
    pub alias: bool,
    /// How many `invite_3pid` entries there are.
    pub third_party_invites: usize,
    /// `initial_state`.
    pub initial_state: &'a [Value],
    /// `power_level_content_override`.
    pub power_override: Option<&'a Value>,
    /// `creation_content`.
    pub creation_content: &'a Value,
}

/// The shape the service gives a managed room at creation.
#[derive(Debug, PartialEq)]
pub struct Shape {
    /// The initial state to create the room with (replaces the request's).
    pub initial_state: Vec<Value>,
    /// Invites found inside `initial_state` (they count as invites).
    pub state_invites: Vec<String>,
}

/// Shapes a managed room's creation: refuses what would weaken it (public, aliases, a
/// readable history, guests, foreign power), drops end-to-end encryption (managed rooms are
/// not end-to-end encrypted: the rules, search, export and deletion need the server to read
/// them), turns invites in `initial_state` into invites, and sets the join rule, history
/// visibility and guest access the service prescribes.
pub fn shape_creation(c: &Creation<'_>, bot: &str, is_puppet: &dyn Fn(&str) -> bool) -> Result<Shape, Rule> {
    if c.preset == Some("public_chat") || c.visibility == Some("public") || c.alias {
        return Err(Rule::ProtectedSetting);
    }
    if c.third_party_invites > 0 {
        return Err(Rule::InviteOnly);
    }
    if c.creation_content.get("additional_creators").is_some() {
        return Err(Rule::ProtectedPowerLevels);
    }
    if let Some(o) = c.power_override {
        let mut merged = o.clone();
        if !merged.is_object() {
            return Err(Rule::ProtectedPowerLevels);
        }
        if !merged["users"].is_object() {
            merged["users"] = serde_json::json!({});
        }
        merged["users"][bot] = serde_json::json!(BOT_POWER);
        if !power_levels_allowed(&merged, bot, is_puppet) {
            return Err(Rule::ProtectedPowerLevels);
        }
    }
    let mut kept = Vec::new();
    let mut state_invites = Vec::new();
    let mut history = serde_json::json!({ "history_visibility": "shared" });
    for e in c.initial_state {
        let kind = e.get("type").and_then(Value::as_str).unwrap_or_default();
        let key = e.get("state_key").and_then(Value::as_str).unwrap_or_default();
        let content = e.get("content").cloned().unwrap_or(Value::Null);
        match kind {
            "m.room.member" => match content.get("membership").and_then(Value::as_str) {
                Some("invite") if !key.is_empty() => state_invites.push(key.to_owned()),
                _ => return Err(Rule::InviteOnly),
            },
            "m.room.encryption" => {}
            "m.room.join_rules" if join_rule_is_invite(&content) => {}
            "m.room.guest_access" if guests_forbidden(&content) => {}
            "m.room.history_visibility" if history_allowed(&content) => history = content,
            "m.room.power_levels" => return Err(Rule::ProtectedPowerLevels),
            t if FREE_STATE.contains(&t) => kept.push(e.clone()),
            _ => return Err(Rule::ProtectedSetting),
        }
    }
    let fixed =
        |t: &str, content: Value| serde_json::json!({ "type": t, "state_key": "", "content": content });
    kept.push(fixed("m.room.join_rules", serde_json::json!({ "join_rule": "invite" })));
    kept.push(fixed("m.room.history_visibility", history));
    kept.push(fixed("m.room.guest_access", serde_json::json!({ "guest_access": "forbidden" })));
    Ok(Shape { initial_state: kept, state_invites })
}

/// The kind a new room gets from how it is created: who is invited and whether it is a
/// direct chat. `None` leaves it unclassified until its first invite.
pub fn classify(invitees: &[Role], is_direct: bool) -> Option<RoomKind> {
    let clients = invitees.iter().filter(|r| r.is_client()).count();
    let others = invitees.iter().filter(|r| !r.is_client() && **r != Role::Bot).count();
    match (clients, others) {
        (0, 0) => None,
        (1, 0) if is_direct => Some(RoomKind::ClientChat),
        (c, _) if c > 0 => Some(RoomKind::Group),
        (0, 1) if is_direct => Some(RoomKind::ColleagueChat),
        _ => Some(RoomKind::ColleagueGroup),
    }
}

/// The kind an unclassified room gets from its first invite after creation. A room that
/// already has a client is a group, whoever is invited.
pub fn classify_first_invite(invitee: &Role, clients_in_room: usize) -> Option<RoomKind> {
    match invitee {
        _ if clients_in_room > 0 => Some(RoomKind::Group),
        r if r.is_client() => Some(RoomKind::Group),
        Role::Counsellor { .. } | Role::OtherLocal => Some(RoomKind::ColleagueGroup),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counsellor(i: &str) -> Role {
        Role::Counsellor { institution: i.into() }
    }
    fn client(i: &str, blocked: bool) -> Role {
        Role::Client { institution: i.into(), blocked }
    }
    fn facts(kind: Option<RoomKind>, members: usize) -> RoomFacts {
        RoomFacts {
            kind,
            institution: Some("a".into()),
            deactivated: false,
            members: (0..members).map(|i| format!("@c{i}:l")).collect(),
            appointment_open: false,
            clients_in_room: 0,
            creator: Some("@c0:l".into()),
        }
    }

    #[test]
    fn colleague_cap_refuses_the_ninth() {
        let f7 = facts(Some(RoomKind::ColleagueGroup), 7);
        assert_eq!(may_invite(&counsellor("a"), &counsellor("a"), "@new:l", &f7), Verdict::Allow);
        let f8 = facts(Some(RoomKind::ColleagueGroup), 8);
        assert_eq!(
            may_invite(&counsellor("a"), &counsellor("a"), "@new:l", &f8),
            Verdict::Deny(Rule::ColleagueCap)
        );
        assert_eq!(may_join(&counsellor("a"), "@new:l", &f8), Verdict::Deny(Rule::ColleagueCap));
        // An invited member joining is not a new member.
        assert_eq!(may_join(&counsellor("a"), "@c3:l", &f8), Verdict::Allow);
    }

    #[test]
    fn clients_never_enter_colleague_rooms() {
        for k in [RoomKind::ColleagueChat, RoomKind::ColleagueGroup] {
            let mut f = facts(Some(k), 2);
            f.members.push("@rs:l".into()); // even if somehow invited
            assert_eq!(
                may_invite(&counsellor("a"), &client("a", false), "@rs:l", &f),
                Verdict::Deny(Rule::NoClientsInColleagueRooms)
            );
            assert_eq!(
                may_join(&client("a", false), "@rs:l", &f),
                Verdict::Deny(Rule::NoClientsInColleagueRooms)
            );
        }
    }

    #[test]
    fn institution_boundary_and_blocking() {
        let f = facts(None, 1);
        assert_eq!(
            may_invite(&counsellor("b"), &client("a", false), "@rs:l", &f),
            Verdict::Deny(Rule::InstitutionBoundary)
        );
        assert_eq!(
            may_invite(&Role::OtherLocal, &client("a", false), "@rs:l", &f),
            Verdict::Deny(Rule::InstitutionBoundary)
        );
        assert_eq!(may_invite(&counsellor("a"), &client("a", false), "@rs:l", &f), Verdict::Allow);
        assert_eq!(
            may_invite(&counsellor("a"), &client("a", true), "@rs:l", &f),
            Verdict::Deny(Rule::BlockedClient)
        );
        assert_eq!(may_join(&client("a", true), "@rs:l", &f), Verdict::Deny(Rule::BlockedClient));
        assert_eq!(
            may_join(&client("a", false), "@rs:l", &f),
            Verdict::Deny(Rule::ClientsDoNotAct),
            "not invited"
        );
        let mut invited = facts(None, 1);
        invited.members.push("@rs:l".into());
        assert_eq!(may_join(&client("a", false), "@rs:l", &invited), Verdict::Allow);
        assert_eq!(may_send(&client("a", true), &f, false), Verdict::Deny(Rule::BlockedClient));
        assert_eq!(may_send(&client("a", false), &f, false), Verdict::Allow);
        assert_eq!(
            may_invite(&client("a", false), &counsellor("a"), "@c:l", &f),
            Verdict::Deny(Rule::ClientsDoNotAct)
        );
    }

    #[test]
    fn a_client_chat_has_one_client() {
        let mut f = facts(Some(RoomKind::ClientChat), 2);
        assert_eq!(may_invite(&counsellor("a"), &client("a", false), "@rs:l", &f), Verdict::Allow);
        f.clients_in_room = 1;
        assert_eq!(
            may_invite(&counsellor("a"), &client("a", false), "@rs2:l", &f),
            Verdict::Deny(Rule::OneClientPerClientChat)
        );
    }

    #[test]
    fn groups_can_be_read_only() {
        let mut f = facts(Some(RoomKind::Group), 3);
        assert_eq!(may_send(&counsellor("a"), &f, false), Verdict::Allow);
        assert_eq!(may_send(&client("a", false), &f, true), Verdict::Deny(Rule::ParticipantDeactivated));
        f.deactivated = true;
        assert_eq!(may_send(&counsellor("a"), &f, false), Verdict::Deny(Rule::GroupDeactivated));
        assert_eq!(may_send(&Role::Bot, &f, false), Verdict::Allow);
        let mut a = facts(Some(RoomKind::AppointmentGroup), 3);
        assert_eq!(may_send(&client("a", false), &a, false), Verdict::Deny(Rule::AppointmentClosed));
        a.appointment_open = true;
        assert_eq!(may_send(&client("a", false), &a, false), Verdict::Allow);
    }

    #[test]
    fn rooms_are_classified_by_how_they_are_created() {
        let c = client("a", false);
        let k = counsellor("a");
        assert_eq!(classify(std::slice::from_ref(&c), true), Some(RoomKind::ClientChat));
        assert_eq!(classify(std::slice::from_ref(&c), false), Some(RoomKind::Group));
        assert_eq!(classify(&[c.clone(), c.clone()], true), Some(RoomKind::Group));
        assert_eq!(classify(std::slice::from_ref(&k), true), Some(RoomKind::ColleagueChat));
        assert_eq!(classify(std::slice::from_ref(&k), false), Some(RoomKind::ColleagueGroup));
        assert_eq!(classify(&[k.clone(), k.clone()], true), Some(RoomKind::ColleagueGroup));
        assert_eq!(classify(&[], false), None);
        assert_eq!(classify(&[Role::Bot], false), None);
        assert_eq!(classify_first_invite(&c, 0), Some(RoomKind::Group));
        assert_eq!(classify_first_invite(&k, 0), Some(RoomKind::ColleagueGroup));
        assert_eq!(
            classify_first_invite(&k, 1),
            Some(RoomKind::Group),
            "a room with a client never becomes a colleague room"
        );
        for r in [Rule::ColleagueCap, Rule::BlockedClient, Rule::Unavailable] {
            assert!(!r.message_de().is_empty());
        }
    }

    #[test]
    fn a_colleague_chat_is_for_two_and_only_the_institution_gets_in() {
        let f = facts(Some(RoomKind::ColleagueChat), 2);
        assert_eq!(
            may_invite(&counsellor("a"), &counsellor("a"), "@new:l", &f),
            Verdict::Deny(Rule::ColleagueChatForTwo)
        );
        assert_eq!(may_join(&counsellor("a"), "@new:l", &f), Verdict::Deny(Rule::ColleagueChatForTwo));
        let one = facts(Some(RoomKind::ColleagueChat), 1);
        assert_eq!(may_invite(&counsellor("a"), &counsellor("a"), "@new:l", &one), Verdict::Allow);
        for kind in RoomKind::ALL {
            let f = facts(Some(kind), 1);
            assert_eq!(
                may_invite(&counsellor("a"), &counsellor("b"), "@b:l", &f),
                Verdict::Deny(Rule::OwnInstitutionOnly),
                "{kind}"
            );
            assert_eq!(may_join(&counsellor("b"), "@b:l", &f), Verdict::Deny(Rule::OwnInstitutionOnly));
            assert_eq!(may_join(&Role::OtherLocal, "@o:l", &f), Verdict::Deny(Rule::OwnInstitutionOnly));
            assert_eq!(
                may_invite(&counsellor("a"), &Role::Remote, "@r:x", &f),
                Verdict::Deny(Rule::LocalOnly)
            );
            assert_eq!(may_invite(&counsellor("a"), &Role::Bot, "@bot:l", &f), Verdict::Allow);
        }
    }

    #[test]
    fn unclassified_rooms_and_knocks_need_an_invitation() {
        let f = facts(None, 1);
        assert_eq!(may_join(&counsellor("a"), "@new:l", &f), Verdict::Deny(Rule::InviteOnly));
        assert_eq!(may_join(&counsellor("a"), "@c0:l", &f), Verdict::Allow, "the creator");
        let full = facts(Some(RoomKind::ColleagueGroup), 8);
        assert_eq!(may_knock(&counsellor("a"), "@new:l", &full), Verdict::Deny(Rule::ColleagueCap));
        let room = facts(Some(RoomKind::ColleagueGroup), 2);
        assert_eq!(may_knock(&counsellor("a"), "@new:l", &room), Verdict::Deny(Rule::InviteOnly));
        assert_eq!(may_knock(&counsellor("b"), "@new:l", &room), Verdict::Deny(Rule::OwnInstitutionOnly));
    }

    fn puppet(u: &str) -> bool {
        u.starts_with("@rs_")
    }

    #[test]
    fn the_security_settings_of_a_managed_room_are_an_allow_list() {
        let f = facts(Some(RoomKind::ColleagueGroup), 2);
        let set = |t: &str, c: Value| {
            let change = StateChange {
                room_id: "!r:l",
                event_type: t,
                state_key: "",
                content: &c,
                replacement_predecessor: None,
                replacement_exists: true,
            };
            may_set_state(&counsellor("a"), &f, &change, "@bot:l", &puppet)
        };
        let refused = Verdict::Deny(Rule::ProtectedSetting);
        assert_eq!(
            set("m.room.history_visibility", serde_json::json!({"history_visibility": "world_readable"})),
            refused
        );
        assert_eq!(
            set("m.room.history_visibility", serde_json::json!({"history_visibility": "joined"})),
            Verdict::Allow
        );
        assert_eq!(set("m.room.join_rules", serde_json::json!({"join_rule": "public"})), refused);
        assert_eq!(set("m.room.join_rules", serde_json::json!({"join_rule": "knock"})), refused);
        assert_eq!(set("m.room.join_rules", serde_json::json!({"join_rule": "invite"})), Verdict::Allow);
        assert_eq!(set("m.room.guest_access", serde_json::json!({"guest_access": "can_join"})), refused);
        assert_eq!(
            set("m.room.encryption", serde_json::json!({"algorithm": "m.megolm.v1.aes-sha2"})),
            refused
        );
        for t in [
            "m.room.canonical_alias",
            "m.space.parent",
            "m.space.child",
            "m.room.server_acl",
            "im.vector.modular.widgets",
            "m.room.tombstone",
            "x.custom",
        ] {
            assert_eq!(set(t, serde_json::json!({})), refused, "{t}");
        }
        assert_eq!(set("m.room.name", serde_json::json!({"name": "Neu"})), Verdict::Allow);
        let pl = |users: Value, extra: Value| {
            let mut c = serde_json::json!({"users": users});
            if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
                c.extend(e.clone());
            }
            set("m.room.power_levels", c)
        };
        let weak = Verdict::Deny(Rule::ProtectedPowerLevels);
        assert_eq!(
            pl(serde_json::json!({"@bot:l": 100, "@c0:l": 100}), serde_json::json!({})),
            Verdict::Allow
        );
        assert_eq!(pl(serde_json::json!({"@bot:l": 0}), serde_json::json!({})), weak, "the bot demoted");
        assert_eq!(pl(serde_json::json!({"@c0:l": 100}), serde_json::json!({})), weak, "the bot left out");
        assert_eq!(
            pl(serde_json::json!({"@bot:l": 100, "@rs_x:l": 50}), serde_json::json!({})),
            weak,
            "a client"
        );
        assert_eq!(pl(serde_json::json!({"@bot:l": 100, "@c0:l": 101}), serde_json::json!({})), weak);
        assert_eq!(pl(serde_json::json!({"@bot:l": 100}), serde_json::json!({"kick": 101})), weak);
        assert_eq!(pl(serde_json::json!({"@bot:l": 100}), serde_json::json!({"users_default": 50})), weak);
        // The bot and unmanaged rooms are not restricted; clients set no state.
        let c = serde_json::json!({"history_visibility": "world_readable"});
        let change = StateChange {
            room_id: "!r:l",
            event_type: "m.room.history_visibility",
            state_key: "",
            content: &c,
            replacement_predecessor: None,
            replacement_exists: true,
        };
        assert_eq!(may_set_state(&Role::Bot, &f, &change, "@bot:l", &puppet), Verdict::Allow);
        let mut unmanaged = facts(None, 1);
        unmanaged.institution = None;
        assert_eq!(may_set_state(&counsellor("a"), &unmanaged, &change, "@bot:l", &puppet), Verdict::Allow);
        assert_eq!(
            may_set_state(&client("a", false), &f, &change, "@bot:l", &puppet),
            Verdict::Deny(Rule::ClientsDoNotAct)
        );
        // A tombstone only for a real upgrade.
        let t = serde_json::json!({"replacement_room": "!new:l"});
        let mut change = StateChange {
            room_id: "!r:l",
            event_type: "m.room.tombstone",
            state_key: "",
            content: &t,
            replacement_predecessor: Some("!other:l"),
            replacement_exists: true,
        };
        assert_eq!(may_set_state(&counsellor("a"), &f, &change, "@bot:l", &puppet), refused);
        change.replacement_predecessor = Some("!r:l");
        assert_eq!(may_set_state(&counsellor("a"), &f, &change, "@bot:l", &puppet), Verdict::Allow);
        change.replacement_predecessor = None;
        change.replacement_exists = false;
        assert_eq!(
            may_set_state(&counsellor("a"), &f, &change, "@bot:l", &puppet),
            Verdict::Allow,
            "an upgrade"
        );
    }

    #[test]
    fn creation_is_shaped_and_weakening_refused() {
        let base = Creation {
            preset: Some("trusted_private_chat"),
            visibility: None,
            alias: false,
            third_party_invites: 0,
            initial_state: &[],
            power_override: None,
            creation_content: &Value::Null,
        };
        let shape = shape_creation(&base, "@bot:l", &puppet).expect("allowed");
        let types: Vec<&str> = shape.initial_state.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(types, ["m.room.join_rules", "m.room.history_visibility", "m.room.guest_access"]);
        assert_eq!(
            shape_creation(&Creation { preset: Some("public_chat"), ..base }, "@bot:l", &puppet),
            Err(Rule::ProtectedSetting)
        );
        assert_eq!(
            shape_creation(&Creation { visibility: Some("public"), ..base }, "@bot:l", &puppet),
            Err(Rule::ProtectedSetting)
        );
        assert_eq!(
            shape_creation(&Creation { alias: true, ..base }, "@bot:l", &puppet),
            Err(Rule::ProtectedSetting)
        );
        assert_eq!(
            shape_creation(&Creation { third_party_invites: 1, ..base }, "@bot:l", &puppet),
            Err(Rule::InviteOnly)
        );
        let state = |t: &str, k: &str, c: Value| serde_json::json!({"type": t, "state_key": k, "content": c});
        let invites = [
            state("m.room.member", "@a:l", serde_json::json!({"membership": "invite"})),
            state("m.room.encryption", "", serde_json::json!({"algorithm": "m.megolm.v1.aes-sha2"})),
            state("m.room.name", "", serde_json::json!({"name": "X"})),
            state("m.room.history_visibility", "", serde_json::json!({"history_visibility": "joined"})),
        ];
        let shape =
            shape_creation(&Creation { initial_state: &invites, ..base }, "@bot:l", &puppet).expect("ok");
        assert_eq!(shape.state_invites, ["@a:l"]);
        assert!(!shape
            .initial_state
            .iter()
            .any(|e| e["type"] == "m.room.encryption" || e["type"] == "m.room.member"));
        assert!(shape.initial_state.iter().any(|e| e["content"]["history_visibility"] == "joined"));
        for bad in [
            state(
                "m.room.history_visibility",
                "",
                serde_json::json!({"history_visibility": "world_readable"}),
            ),
            state("m.room.join_rules", "", serde_json::json!({"join_rule": "public"})),
            state("m.room.guest_access", "", serde_json::json!({"guest_access": "can_join"})),
            state("m.room.member", "@a:l", serde_json::json!({"membership": "join"})),
            state("m.room.power_levels", "", serde_json::json!({})),
            state("m.space.parent", "!s:l", serde_json::json!({})),
        ] {
            let list = [bad.clone()];
            assert!(
                shape_creation(&Creation { initial_state: &list, ..base }, "@bot:l", &puppet).is_err(),
                "{bad}"
            );
        }
        let over = serde_json::json!({"users": {"@rs_x:l": 100}});
        assert_eq!(
            shape_creation(&Creation { power_override: Some(&over), ..base }, "@bot:l", &puppet),
            Err(Rule::ProtectedPowerLevels)
        );
        let creators = serde_json::json!({"additional_creators": ["@x:l"]});
        assert_eq!(
            shape_creation(&Creation { creation_content: &creators, ..base }, "@bot:l", &puppet),
            Err(Rule::ProtectedPowerLevels)
        );
    }

    #[test]
    fn refused_state_is_restored() {
        let prev = serde_json::json!({"history_visibility": "joined"});
        let now = serde_json::json!({"history_visibility": "world_readable"});
        assert_eq!(
            restored_state("m.room.history_visibility", Some(&prev), &now, "@bot:l", &puppet),
            Some(prev)
        );
        assert_eq!(
            restored_state("m.room.history_visibility", Some(&now), &now, "@bot:l", &puppet),
            Some(serde_json::json!({"history_visibility": "shared"}))
        );
        assert_eq!(
            restored_state("m.room.encryption", None, &serde_json::json!({}), "@bot:l", &puppet),
            None
        );
        let weakened = serde_json::json!({"users": {"@bot:l": 0, "@rs_x:l": 100, "@c:l": 50}, "kick": 200});
        let fixed =
            restored_state("m.room.power_levels", None, &weakened, "@bot:l", &puppet).expect("fixable");
        assert!(power_levels_allowed(&fixed, "@bot:l", &puppet), "{fixed}");
        assert_eq!(fixed["users"]["@c:l"], 50);
    }
}
