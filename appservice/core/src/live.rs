//! The live-chat desk's pure part: counsellor status, the state machine of a live chat in
//! its department's queue, queue positions, routing (whom to offer a chat), the estimated
//! wait and the response reminder.
//!
//! The service keeps one row per chat and applies a [`Step`] with [`step`] in one
//! compare-and-set update (`… WHERE version = ?`): of any number of counsellors taking the
//! same chat at once, exactly one update succeeds, the others re-read the row and get
//! [`LiveError::Taken`]. [`Queue`] is the same machine over many chats, for the property
//! tests of its invariants (a chat has at most one owner, positions are 1..n without gaps,
//! nothing disappears).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a counsellor set (Status anpassen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Offered live chats, shown online.
    Online,
    /// Finishing current chats; no new ones (beschäftigt).
    Busy,
    /// Not offered live chats; clients who know them can still write (nicht online).
    NotOnline,
    /// Cannot be written to at all; shown offline (nicht anwählbar).
    NotSelectable,
}

impl Status {
    /// Stable name (database, API).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Busy => "busy",
            Status::NotOnline => "not_online",
            Status::NotSelectable => "not_selectable",
        }
    }

    /// Parses the stable name or the German word a counsellor types
    /// (`online`, `beschäftigt`, `nicht-online`/`offline`, `nicht-anwählbar`).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_lowercase().replace([' ', '_'], "-");
        Some(match s.as_str() {
            "online" | "verfügbar" | "da" => Status::Online,
            "busy" | "beschäftigt" | "beschaeftigt" => Status::Busy,
            "not-online" | "nicht-online" | "offline" | "abgemeldet" => Status::NotOnline,
            "not-selectable" | "nicht-anwählbar" | "nicht-anwaehlbar" | "unerreichbar" => {
                Status::NotSelectable
            }
            _ => return None,
        })
    }

    /// The German label a counsellor reads.
    pub fn label_de(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Busy => "beschäftigt",
            Status::NotOnline => "nicht online",
            Status::NotSelectable => "nicht anwählbar",
        }
    }
}

/// What the homeserver reports (Matrix presence, from Element).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Element is open and in use.
    Online,
    /// Element is open but idle (Matrix `unavailable`).
    Away,
    /// Element is closed, or the counsellor logged out.
    Offline,
}

impl Presence {
    /// From Matrix's `presence` value (unknown values count as offline: never silently
    /// available).
    pub fn from_matrix(s: &str) -> Self {
        match s {
            "online" => Presence::Online,
            "unavailable" => Presence::Away,
            _ => Presence::Offline,
        }
    }

    /// Stable name (database).
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Online => "online",
            Presence::Away => "away",
            Presence::Offline => "offline",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "online" => Presence::Online,
            "away" => Presence::Away,
            "offline" => Presence::Offline,
            _ => return None,
        })
    }
}

/// What clients see of a counsellor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    /// Online.
    Online,
    /// Online but idle.
    Away,
    /// Busy: finishing current chats.
    Busy,
    /// Offline.
    Offline,
}

impl Shown {
    /// German label.
    pub fn label_de(self) -> &'static str {
        match self {
            Shown::Online => "online",
            Shown::Away => "abwesend",
            Shown::Busy => "beschäftigt",
            Shown::Offline => "offline",
        }
    }
}

/// What clients see of a counsellor with this status and presence.
pub fn shown(status: Status, presence: Presence) -> Shown {
    match (status, presence) {
        (Status::NotSelectable | Status::NotOnline, _) | (_, Presence::Offline) => Shown::Offline,
        (Status::Busy, _) => Shown::Busy,
        (Status::Online, Presence::Away) => Shown::Away,
        (Status::Online, Presence::Online) => Shown::Online,
    }
}

/// Whether a counsellor with this status and presence is offered new live chats. Away
/// (idle) does not stop it, as in the peers; offline (Element closed, logged out) does.
pub fn takes_new_chats(status: Status, presence: Presence) -> bool {
    status == Status::Online && presence != Presence::Offline
}

/// Whether a client may choose (write to) a counsellor: never one who is not selectable;
/// one who is "only selectable by regular clients" only if the client already has a chat
/// with them.
pub fn selectable(status: Status, only_regular: bool, client_is_regular: bool) -> bool {
    status != Status::NotSelectable && (!only_regular || client_is_regular)
}

/// A counsellor as routing sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// User ID.
    pub user_id: String,
    /// Their status.
    pub status: Status,
    /// Their presence.
    pub presence: Presence,
    /// Live chats they own now.
    pub open_chats: u32,
    /// The most live chats they may own at once.
    pub max_chats: u32,
    /// When they last took a live chat (ms), to spread the work.
    pub last_taken_ms: i64,
}

impl Candidate {
    /// Whether they can take one more chat now.
    pub fn can_take(&self) -> bool {
        takes_new_chats(self.status, self.presence) && self.open_chats < self.max_chats
    }
}

/// Whom to offer a waiting chat (automatic routing): of those who can take one and have not
/// let this chat's offer lapse, the least busy; then who waited longest since their last
/// chat; then by ID, so the choice is deterministic.
pub fn pick<'a>(candidates: &'a [Candidate], declined: &[String]) -> Option<&'a Candidate> {
    candidates.iter().filter(|c| c.can_take() && !declined.contains(&c.user_id)).min_by(|a, b| {
        a.open_chats
            .cmp(&b.open_chats)
            .then(a.last_taken_ms.cmp(&b.last_taken_ms))
            .then(a.user_id.cmp(&b.user_id))
    })
}

/// Where a live chat is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ChatState {
    /// In its department's queue.
    Waiting,
    /// Offered to one counsellor (automatic routing, the visitor's choice, a forward to a
    /// named counsellor); still in the queue, back to waiting when the offer lapses.
    Offered {
        /// The counsellor it is offered to.
        to: String,
        /// Since when (ms).
        since_ms: i64,
    },
    /// Taken: one counsellor owns it.
    Taken {
        /// The owner.
        owner: String,
    },
    /// Over (by the counsellor, the visitor, or a visitor who left while queued).
    Closed {
        /// The visitor left (or ended) before anyone took the chat.
        abandoned: bool,
    },
}

impl ChatState {
    /// Stable name (database).
    pub fn name(&self) -> &'static str {
        match self {
            ChatState::Waiting => "waiting",
            ChatState::Offered { .. } => "offered",
            ChatState::Taken { .. } => "taken",
            ChatState::Closed { .. } => "closed",
        }
    }

    /// Whether the chat is in the queue (waiting or offered).
    pub fn queued(&self) -> bool {
        matches!(self, ChatState::Waiting | ChatState::Offered { .. })
    }

    /// The counsellor it is offered to or owned by.
    pub fn counsellor(&self) -> Option<&str> {
        match self {
            ChatState::Offered { to, .. } => Some(to),
            ChatState::Taken { owner } => Some(owner),
            _ => None,
        }
    }
}

/// One live chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chat {
    /// The department whose queue it is in (`None`: the institution's general queue).
    pub department: Option<String>,
    /// Where it is.
    pub state: ChatState,
    /// When it first joined the queue (ms). Kept when it is returned or forwarded, so a
    /// visitor never loses their place.
    pub queued_at: i64,
    /// Counsellors whose offer of this chat lapsed (automatic routing skips them).
    pub declined: Vec<String>,
}

/// A change to a live chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A counsellor takes the chat (from the widget, a command, by joining, by accepting
    /// an offer). The service has checked they may (department, status, capacity).
    Take {
        /// Who.
        by: String,
    },
    /// The chat is offered to a counsellor.
    Offer {
        /// To whom.
        to: String,
        /// Now (ms).
        at_ms: i64,
    },
    /// The offer to `to` lapsed or was declined: back to waiting. Names whose offer, so
    /// that a late timer cannot end a newer offer to someone else.
    Lapse {
        /// Whose offer.
        to: String,
    },
    /// The owner gives the chat back to the queue (or their status or absence does, after
    /// the grace period: `by` is then the owner too).
    Return {
        /// Who.
        by: String,
    },
    /// The owner forwards the chat to another department: it waits there.
    ToDepartment {
        /// Who.
        by: String,
        /// The department.
        department: Option<String>,
    },
    /// The owner forwards the chat to a named counsellor: it is offered to them, and goes
    /// back to the queue if they do not accept.
    ToCounsellor {
        /// Who.
        by: String,
        /// To whom.
        to: String,
        /// Now (ms).
        at_ms: i64,
    },
    /// The owner closes the chat (classification code checked by the service).
    Close {
        /// Who.
        by: String,
    },
    /// The visitor ended the chat or left.
    VisitorLeft,
}

/// Why a step was refused. The texts are German: counsellors read them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// Someone else owns the chat.
    #[error("Dieser Live-Chat wurde bereits von einer anderen beratenden Person übernommen.")]
    Taken,
    /// It is offered to someone else right now.
    #[error("Dieser Live-Chat wird gerade einer anderen beratenden Person angeboten.")]
    OfferedToOther,
    /// It is over.
    #[error("Dieser Live-Chat ist beendet.")]
    Closed,
    /// Only the owner may do that.
    #[error("Das kann nur die beratende Person, die den Live-Chat übernommen hat.")]
    NotOwner,
    /// It is waiting; nobody owns it.
    #[error("Dieser Live-Chat wartet noch: Niemand hat ihn übernommen.")]
    NotTaken,
    /// Already theirs.
    #[error("Sie haben diesen Live-Chat bereits übernommen.")]
    AlreadyYours,
    /// A forward to oneself.
    #[error("Sie können den Live-Chat nicht an sich selbst weiterleiten.")]
    ToSelf,
    /// Not a counsellor of the chat's institution or department.
    #[error("Dieser Live-Chat gehört zu einer Abteilung, der Sie nicht angehören.")]
    NotInDepartment,
    /// Their status keeps them from taking chats.
    #[error("Ihr Status ist „{}“: Live-Chats übernehmen Sie im Status „online“ („!assisto status online“).", .0.label_de())]
    NotOnline(Status),
    /// They own as many chats as they may.
    #[error("Sie führen bereits {0} Live-Chats – so viele, wie Sie gleichzeitig führen können. Beenden oder übergeben Sie zuerst einen.")]
    Full(u32),
    /// Closing needs a classification code.
    #[error(
        "Diese Abteilung verlangt zum Beenden einen Klassifizierungscode: „!assisto beenden <Code> [Notiz]“."
    )]
    CodeRequired,
    /// The code is not one of the institution's.
    #[error("Diesen Klassifizierungscode gibt es nicht. Mit „!assisto codes“ sehen Sie die Codes der Einrichtung.")]
    UnknownCode,
}

/// What decides whether a counsellor may take a chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taker {
    /// A counsellor of the chat's institution and, if the chat has a department, of it.
    pub in_department: bool,
    /// What they set.
    pub status: Status,
    /// Live chats they own now.
    pub open_chats: u32,
    /// The most they may own at once.
    pub max_chats: u32,
}

/// Whether a counsellor may take a chat (beside the chat's state, which [`step`] checks):
/// of its department, online (presence aside: acting from Element shows they are there),
/// below their limit.
pub fn may_take(t: &Taker) -> Result<(), LiveError> {
    if !t.in_department {
        return Err(LiveError::NotInDepartment);
    }
    if t.status != Status::Online {
        return Err(LiveError::NotOnline(t.status));
    }
    if t.open_chats >= t.max_chats {
        return Err(LiveError::Full(t.max_chats));
    }
    Ok(())
}

/// Whether a chat may be closed with `code` in a department that does (not) require one,
/// given the institution's codes.
pub fn may_close(code: Option<&str>, required: bool, known: &[&str]) -> Result<(), LiveError> {
    match code {
        None if required => Err(LiveError::CodeRequired),
        None => Ok(()),
        Some(c) if known.contains(&c) => Ok(()),
        Some(_) => Err(LiveError::UnknownCode),
    }
}

/// Applies a step to a chat: the new chat, or why not. Pure; permission beyond ownership
/// (department, status, capacity, classification code) is the caller's.
pub fn step(chat: &Chat, s: &Step) -> Result<Chat, LiveError> {
    use ChatState as C;
    let mut next = chat.clone();
    let owner_only = |by: &str| match &chat.state {
        C::Taken { owner } if owner == by => Ok(()),
        C::Taken { .. } => Err(LiveError::NotOwner),
        C::Closed { .. } => Err(LiveError::Closed),
        C::Waiting | C::Offered { .. } => Err(LiveError::NotTaken),
    };
    match s {
        Step::Take { by } => {
            match &chat.state {
                C::Waiting => {}
                C::Offered { to, .. } if to == by => {}
                C::Offered { .. } => return Err(LiveError::OfferedToOther),
                C::Taken { owner } if owner == by => return Err(LiveError::AlreadyYours),
                C::Taken { .. } => return Err(LiveError::Taken),
                C::Closed { .. } => return Err(LiveError::Closed),
            }
            next.state = C::Taken { owner: by.clone() };
            next.declined.clear();
        }
        Step::Offer { to, at_ms } => {
            match &chat.state {
                C::Waiting => {}
                C::Offered { .. } => return Err(LiveError::OfferedToOther),
                C::Taken { .. } => return Err(LiveError::Taken),
                C::Closed { .. } => return Err(LiveError::Closed),
            }
            next.state = C::Offered { to: to.clone(), since_ms: *at_ms };
        }
        Step::Lapse { to: lapsed } => match &chat.state {
            C::Offered { to, .. } if to == lapsed => {
                if !next.declined.contains(to) {
                    next.declined.push(to.clone());
                }
                next.state = C::Waiting;
            }
            C::Offered { .. } => return Err(LiveError::OfferedToOther),
            // Back to waiting meanwhile (a return, another lapse): nothing to do.
            C::Waiting => return Ok(next),
            C::Taken { .. } => return Err(LiveError::Taken),
            C::Closed { .. } => return Err(LiveError::Closed),
        },
        Step::Return { by } => {
            owner_only(by)?;
            next.state = C::Waiting;
            if !next.declined.contains(by) {
                next.declined.push(by.clone());
            }
        }
        Step::ToDepartment { by, department } => {
            owner_only(by)?;
            next.state = C::Waiting;
            next.department = department.clone();
            next.declined.clear();
            next.declined.push(by.clone());
        }
        Step::ToCounsellor { by, to, at_ms } => {
            owner_only(by)?;
            if to == by {
                return Err(LiveError::ToSelf);
            }
            next.state = C::Offered { to: to.clone(), since_ms: *at_ms };
            next.declined.clear();
            next.declined.push(by.clone());
        }
        Step::Close { by } => {
            owner_only(by)?;
            next.state = C::Closed { abandoned: false };
        }
        Step::VisitorLeft => match &chat.state {
            C::Closed { .. } => return Err(LiveError::Closed),
            C::Taken { .. } => next.state = C::Closed { abandoned: false },
            C::Waiting | C::Offered { .. } => next.state = C::Closed { abandoned: true },
        },
    }
    Ok(next)
}

/// The queue positions (1-based) of the queued chats of one department, in queue order:
/// first arrived, first served (ties broken by the chat's ID).
pub fn positions<'a, I>(chats: I) -> Vec<(&'a str, u32)>
where
    I: IntoIterator<Item = (&'a str, &'a Chat)>,
{
    let mut queued: Vec<(&str, i64)> =
        chats.into_iter().filter(|(_, c)| c.state.queued()).map(|(id, c)| (id, c.queued_at)).collect();
    queued.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
    queued.into_iter().enumerate().map(|(i, (id, _))| (id, i as u32 + 1)).collect()
}

/// The estimated wait at `position`, in seconds: the chats ahead are served by the
/// `available` counsellors in rounds of the average time a chat waited to be taken
/// recently (`recent_wait_secs`), rounded up to a full minute. `None` without counsellors
/// or without history: the visitor is then shown the position only.
pub fn estimated_wait_secs(position: u32, available: u32, recent_wait_secs: &[u32]) -> Option<u32> {
    if position == 0 || available == 0 || recent_wait_secs.is_empty() {
        return None;
    }
    // The average (at least 30 s) times the rounds, rounded up once, at the end: rounding the
    // average down first would lose up to a second per round, and could promise less.
    let n = recent_wait_secs.len() as u128;
    let total = recent_wait_secs.iter().map(|&s| u128::from(s)).sum::<u128>().max(30 * n);
    let rounds = u128::from(position.div_ceil(available));
    let secs = (total * rounds).div_ceil(60 * n) * 60;
    Some(secs.min(u128::from(u32::MAX)) as u32)
}

/// The response reminder of a taken chat (Antworterinnerung).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reminder {
    /// Nothing unanswered.
    None,
    /// The visitor waits for an answer, not long yet.
    Green,
    /// Waiting longer than the first threshold.
    Yellow,
    /// Waiting longer than the second threshold.
    Red,
}

impl Reminder {
    /// The marker shown in front of the room's name in Element.
    pub fn marker(self) -> &'static str {
        match self {
            Reminder::None => "",
            Reminder::Green => "🟢",
            Reminder::Yellow => "🟡",
            Reminder::Red => "🔴",
        }
    }
}

/// The reminder when the visitor's oldest unanswered message is from `unanswered_since`
/// (ms; `None`: the counsellor answered last).
pub fn reminder(
    unanswered_since: Option<i64>,
    now_ms: i64,
    yellow_after_secs: u32,
    red_after_secs: u32,
) -> Reminder {
    let Some(since) = unanswered_since else { return Reminder::None };
    let waited = (now_ms - since).max(0) / 1000;
    if waited >= i64::from(red_after_secs) {
        Reminder::Red
    } else if waited >= i64::from(yellow_after_secs) {
        Reminder::Yellow
    } else {
        Reminder::Green
    }
}

/// Many chats under the same machine, for checking the invariants over any sequence of
/// steps (and for the benchmark's simulated counsellors).
#[derive(Clone, Debug, Default)]
pub struct Queue {
    chats: BTreeMap<String, Chat>,
}

impl Queue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// A visitor arrives: a new waiting chat. `false` if the ID exists.
    pub fn arrive(&mut self, id: &str, department: Option<&str>, at_ms: i64) -> bool {
        if self.chats.contains_key(id) {
            return false;
        }
        self.chats.insert(
            id.to_owned(),
            Chat {
                department: department.map(str::to_owned),
                state: ChatState::Waiting,
                queued_at: at_ms,
                declined: vec![],
            },
        );
        true
    }

    /// Applies a step to one chat.
    pub fn apply(&mut self, id: &str, s: &Step) -> Result<(), LiveError> {
        let chat = self.chats.get(id).ok_or(LiveError::Closed)?;
        let next = step(chat, s)?;
        self.chats.insert(id.to_owned(), next);
        Ok(())
    }

    /// A chat.
    pub fn get(&self, id: &str) -> Option<&Chat> {
        self.chats.get(id)
    }

    /// Every chat.
    pub fn chats(&self) -> impl Iterator<Item = (&str, &Chat)> {
        self.chats.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The positions in one department's queue.
    pub fn positions(&self, department: Option<&str>) -> Vec<(&str, u32)> {
        positions(self.chats().filter(|(_, c)| c.department.as_deref() == department))
    }

    /// How many chats a counsellor owns.
    pub fn owned_by(&self, user_id: &str) -> usize {
        self.chats
            .values()
            .filter(|c| matches!(&c.state, ChatState::Taken { owner } if owner == user_id))
            .count()
    }
}

/// A department's opening hours as configured: per weekday (`mon` … `sun`) a list of
/// `HH:MM-HH:MM` intervals, and holidays (`YYYY-MM-DD`) on which it is closed. No weekday
/// listed: open around the clock (holidays aside).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpeningHours {
    /// Intervals per weekday.
    #[serde(default)]
    pub weekly: BTreeMap<String, Vec<String>>,
    /// Closed on these dates.
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// Opening hours, checked: minutes of the day per weekday (Monday first), and holidays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hours {
    days: [Vec<(u32, u32)>; 7],
    scheduled: bool,
    holidays: std::collections::BTreeSet<chrono::NaiveDate>,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn minute_of(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60 && s.len() == 5).then_some(h * 60 + m)
}

impl OpeningHours {
    /// Checks the configuration: known weekdays, `HH:MM-HH:MM` with start before end, at
    /// most 10 intervals a day, at most 400 holidays as `YYYY-MM-DD`.
    pub fn check(&self) -> Result<Hours, String> {
        let mut h = Hours::default();
        for (day, intervals) in &self.weekly {
            let i = WEEKDAYS
                .iter()
                .position(|d| d == day)
                .ok_or_else(|| format!("unknown weekday {day:?} (mon … sun)"))?;
            if intervals.len() > 10 {
                return Err(format!("at most 10 intervals on {day}"));
            }
            for iv in intervals {
                let parsed = iv.split_once('-').and_then(|(a, b)| Some((minute_of(a)?, minute_of(b)?)));
                match parsed {
                    Some((a, b)) if a < b => h.days[i].push((a, b)),
                    _ => {
                        return Err(format!("{day}: {iv:?} is not HH:MM-HH:MM with the start before the end"))
                    }
                }
            }
            h.days[i].sort_unstable();
            h.scheduled = true;
        }
        if self.holidays.len() > 400 {
            return Err("at most 400 holidays".into());
        }
        for d in &self.holidays {
            let date = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| format!("holiday {d:?} is not YYYY-MM-DD"))?;
            h.holidays.insert(date);
        }
        Ok(h)
    }
}

impl Hours {
    /// Whether the department is open at this local time.
    pub fn is_open(&self, at: chrono::NaiveDateTime) -> bool {
        use chrono::{Datelike, Timelike};
        if self.holidays.contains(&at.date()) {
            return false;
        }
        if !self.scheduled {
            return true;
        }
        let minute = at.hour() * 60 + at.minute();
        self.days[at.weekday().num_days_from_monday() as usize]
            .iter()
            .any(|&(a, b)| a <= minute && minute < b)
    }

    /// When it is next open, from `at` on (`at` itself if open), looking two weeks ahead.
    pub fn next_open(&self, at: chrono::NaiveDateTime) -> Option<chrono::NaiveDateTime> {
        use chrono::{Datelike, Timelike};
        if self.is_open(at) {
            return Some(at);
        }
        let minute = at.hour() * 60 + at.minute();
        for ahead in 0..=14 {
            let date = at.date() + chrono::Days::new(ahead);
            if self.holidays.contains(&date) {
                continue;
            }
            let starts: Vec<u32> = if self.scheduled {
                self.days[date.weekday().num_days_from_monday() as usize].iter().map(|&(a, _)| a).collect()
            } else {
                vec![0]
            };
            if let Some(start) = starts.into_iter().find(|&a| ahead > 0 || a > minute) {
                return date.and_hms_opt(start / 60, start % 60, 0);
            }
        }
        None
    }
}
