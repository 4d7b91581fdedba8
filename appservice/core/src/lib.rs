//! assisto's domain core: who a user is ([`ids`]), what a managed room is ([`RoomKind`],
//! [`Category`]), every rule as a pure function ([`rules`]), the live-chat desk ([`live`]), the counsellor tools ([`tools`]), how search reads German ([`search`]), statistics with suppression ([`statistics`]),
//! validation and [`DomainError`].
//!
//! Pure: no I/O, no HTTP, no database, no clock. The service gathers the facts and asks;
//! this crate decides. Unit- and property-tested on its own (`cargo test -p assisto-core`).

pub mod ids;
pub mod live;
pub mod rules;
pub mod search;
pub mod statistics;
pub mod tools;

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a managed room is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// One client puppet and counsellor(s) (Einzelchat).
    ClientChat,
    /// Any number of clients and counsellors (Gruppenchat).
    Group,
    /// A group that is open only in its scheduled slots (Terminchat).
    AppointmentGroup,
    /// Two counsellors.
    ColleagueChat,
    /// At most eight counsellors, the creator included.
    ColleagueGroup,
    /// An anonymous guest and the counsellor who took the chat.
    Live,
}

impl RoomKind {
    /// All kinds.
    pub const ALL: [RoomKind; 6] = [
        RoomKind::ClientChat,
        RoomKind::Group,
        RoomKind::AppointmentGroup,
        RoomKind::ColleagueChat,
        RoomKind::ColleagueGroup,
        RoomKind::Live,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::ClientChat => "client_chat",
            RoomKind::Group => "group",
            RoomKind::AppointmentGroup => "appointment_group",
            RoomKind::ColleagueChat => "colleague_chat",
            RoomKind::ColleagueGroup => "colleague_group",
            RoomKind::Live => "live",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether only counsellors may ever be members.
    pub fn is_colleague(self) -> bool {
        matches!(self, RoomKind::ColleagueChat | RoomKind::ColleagueGroup)
    }

    /// Whether this is a group chat (with or without appointments).
    pub fn is_group(self) -> bool {
        matches!(self, RoomKind::Group | RoomKind::AppointmentGroup)
    }

    /// The space the room is listed in.
    pub fn category(self) -> Category {
        match self {
            RoomKind::ClientChat => Category::Clients,
            RoomKind::Group | RoomKind::AppointmentGroup => Category::Groups,
            RoomKind::ColleagueChat | RoomKind::ColleagueGroup => Category::Colleagues,
            RoomKind::Live => Category::Live,
        }
    }

    /// German name, as counsellors read it.
    pub fn label_de(self) -> &'static str {
        match self {
            RoomKind::ClientChat => "Chat mit Ratsuchenden",
            RoomKind::Group => "Gruppenchat",
            RoomKind::AppointmentGroup => "Gruppen-Terminchat",
            RoomKind::ColleagueChat => "Chat mit Kolleg:in",
            RoomKind::ColleagueGroup => "Gruppenchat mit Kolleg:innen",
            RoomKind::Live => "Live-Chat",
        }
    }
}

impl fmt::Display for RoomKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rooms an institution owns besides managed rooms: four spaces, one per tab of the
/// product, the directory room and the live-chat desk room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Space "Live".
    Live,
    /// Space "Ratsuchende".
    Clients,
    /// Space "Kolleg:innen".
    Colleagues,
    /// Space "Gruppenchats".
    Groups,
    /// The private room through which counsellors find the institution's clients and each
    /// other in the user directory.
    Directory,
    /// The counsellors' room "Live-Chat-Schreibtisch" in the Live space, which carries the
    /// live-chat widget (Element shows widgets in rooms, not in spaces).
    Desk,
}

impl Category {
    /// The four spaces, in tab order.
    pub const SPACES: [Category; 4] =
        [Category::Live, Category::Clients, Category::Colleagues, Category::Groups];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Live => "live",
            Category::Clients => "clients",
            Category::Colleagues => "colleagues",
            Category::Groups => "groups",
            Category::Directory => "directory",
            Category::Desk => "desk",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Live, Self::Clients, Self::Colleagues, Self::Groups, Self::Directory, Self::Desk]
            .into_iter()
            .find(|c| c.as_str() == s)
    }

    /// The German name counsellors see.
    pub fn label_de(self) -> &'static str {
        match self {
            Category::Live => "Live",
            Category::Clients => "Ratsuchende",
            Category::Colleagues => "Kolleg:innen",
            Category::Groups => "Gruppenchats",
            Category::Directory => "Verzeichnis",
            Category::Desk => "Live-Chat-Schreibtisch",
        }
    }
}

/// Why a domain operation was refused. Pure: the service wraps it with its I/O failures
/// (`assisto_appservice::Error`) and its web layer maps it to an HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The input is invalid; the text says which field and why.
    #[error("{0}")]
    Invalid(String),
    /// The thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It exists already.
    #[error("{0}")]
    Conflict(String),
    /// Not allowed.
    #[error("{0}")]
    Forbidden(String),
}

/// Validates a slug: 2–64 of a-z, 0-9 and '-', not starting or ending with '-'.
pub fn check_slug(field: &str, s: &str) -> Result<(), DomainError> {
    let ok = (2..=64).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!(
            "{field} must be 2 to 64 characters of a-z, 0-9 and '-', not starting or ending with '-'"
        )))
    }
}

/// Validates a human-readable name: 1–100 characters after trimming, no control characters.
pub fn check_name(field: &str, s: &str) -> Result<String, DomainError> {
    let t = s.trim();
    let n = t.chars().count();
    if n == 0 || n > 100 || t.chars().any(char::is_control) {
        return Err(DomainError::Invalid(format!(
            "{field} must be 1 to 100 characters without control characters"
        )));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_categories_round_trip() {
        for k in RoomKind::ALL {
            assert_eq!(RoomKind::parse(k.as_str()), Some(k));
        }
        assert!(RoomKind::ColleagueGroup.is_colleague());
        assert!(!RoomKind::Group.is_colleague());
        assert_eq!(RoomKind::AppointmentGroup.category(), Category::Groups);
        for c in Category::SPACES {
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn slugs_and_names_are_validated() {
        assert!(check_slug("id", "beratung-koeln").is_ok());
        for bad in ["a", "-x", "x-", "Gross", "mit leer", &"a".repeat(65)] {
            assert!(check_slug("id", bad).is_err(), "{bad}");
        }
        assert_eq!(check_name("name", "  Anna Berger ").expect("ok"), "Anna Berger");
        assert!(check_name("name", "   ").is_err());
        assert!(check_name("name", "a\u{0}b").is_err());
        assert!(check_name("name", &"x".repeat(101)).is_err());
    }
}
