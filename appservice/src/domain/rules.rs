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

use super::RoomKind;

/// The most members a colleague group may have, its creator included.
pub const COLLEAGUE_GROUP_MAX: usize = 8;

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
}

/// May `inviter` invite `invitee` into a room with `facts`?
pub fn may_invite(inviter: &Role, invitee: &Role, invitee_id: &str, facts: &RoomFacts) -> Verdict {
    if matches!(inviter, Role::Client { .. } | Role::UnknownPuppet) {
        return Verdict::Deny(Rule::ClientsDoNotAct);
    }
    if let Role::Client { blocked: true, .. } = invitee {
        return Verdict::Deny(Rule::BlockedClient);
    }
    match (facts.kind, invitee) {
        (Some(k), r) if k.is_colleague() && r.is_client() => {
            return Verdict::Deny(Rule::NoClientsInColleagueRooms)
        }
        (Some(RoomKind::ColleagueGroup), Role::Counsellor { .. } | Role::OtherLocal) => {
            let already = facts.members.iter().any(|m| m == invitee_id);
            if !already && facts.members.len() >= COLLEAGUE_GROUP_MAX {
                return Verdict::Deny(Rule::ColleagueCap);
            }
        }
        (Some(RoomKind::ClientChat), r) if r.is_client() && facts.clients_in_room >= 1 => {
            return Verdict::Deny(Rule::OneClientPerClientChat)
        }
        (Some(k), Role::Remote) if k != RoomKind::Live => return Verdict::Deny(Rule::LocalOnly),
        _ => {}
    }
    if let Role::Client { institution, .. } = invitee {
        match inviter {
            Role::Bot => {}
            Role::Counsellor { institution: own } if own == institution => {}
            _ => return Verdict::Deny(Rule::InstitutionBoundary),
        }
        if facts.institution.as_ref().is_some_and(|i| i != institution) {
            return Verdict::Deny(Rule::InstitutionBoundary);
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
        Role::Client { blocked: true, .. } => return Verdict::Deny(Rule::BlockedClient),
        Role::UnknownPuppet => return Verdict::Deny(Rule::ClientsDoNotAct),
        // Clients join only where a counsellor invited them (`members` holds the invited).
        Role::Client { .. } if !facts.members.iter().any(|m| m == user_id) => {
            return Verdict::Deny(Rule::ClientsDoNotAct)
        }
        _ => {}
    }
    match (facts.kind, user) {
        (Some(k), u) if k.is_colleague() && u.is_client() => Verdict::Deny(Rule::NoClientsInColleagueRooms),
        (Some(RoomKind::ColleagueGroup), Role::Counsellor { .. } | Role::OtherLocal) => {
            let already = facts.members.iter().any(|m| m == user_id);
            if !already && facts.members.len() >= COLLEAGUE_GROUP_MAX {
                Verdict::Deny(Rule::ColleagueCap)
            } else {
                Verdict::Allow
            }
        }
        (Some(_), Role::Client { institution, .. })
            if facts.institution.as_ref().is_some_and(|i| i != institution) =>
        {
            Verdict::Deny(Rule::InstitutionBoundary)
        }
        _ => Verdict::Allow,
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
}
