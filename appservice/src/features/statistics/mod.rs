//! Statistics (Statistische Auswertung) per institution, department or counsellor for a
//! period: chats started and ended per category, the live chats' waiting times and
//! outcomes, monitorings (count, minutes, by subject), notes and documents. IDs and
//! numbers only; small numbers suppressed ([`assisto_core::statistics`]).
//!
//! The facts come from the features that own them (rooms, the live desk's chats and log,
//! the client file), read for the period; the core counts them. Days are the service's
//! time zone's (`bot.timezone`). What the deletion routine removes is no longer counted:
//! a deleted client's monitorings, notes and documents drop out of later reports.

pub mod routes;

use assisto_core::statistics::{self as stats, Facts, LiveFact, MonitoringFact, Period, Report, RoomFact};
use assisto_core::{Category, RoomKind};
use chrono::{NaiveDate, TimeZone};
use serde::Serialize;

use crate::error::Error;
use crate::features::client_file::store as client_file;
use crate::features::institutions::store as institutions;
use crate::features::live::store as live;
use crate::features::people::store as people;
use crate::features::rooms::store as rooms;
use crate::store::Db;

/// Whose figures: a whole institution, one of its departments, or one counsellor.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    /// A department of the institution.
    pub department: Option<String>,
    /// A counsellor of the institution.
    pub counsellor: Option<String>,
}

/// A report with what it is of.
#[derive(Debug, Serialize)]
pub struct Statistics {
    /// The institution.
    pub institution: String,
    /// The department, if one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// The counsellor, if one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counsellor: Option<String>,
    /// The figures.
    #[serde(flatten)]
    pub report: Report,
}

/// The statistics service.
#[derive(Clone)]
pub struct StatisticsService {
    db: Db,
    tz: chrono_tz::Tz,
    min_count: u64,
}

impl StatisticsService {
    /// Statistics over `db`, days in `tz`, counts below `min_count` suppressed.
    pub fn new(db: Db, tz: chrono_tz::Tz, min_count: u64) -> Self {
        Self { db, tz, min_count: min_count.max(1) }
    }

    /// Today in the service's time zone.
    pub fn today(&self) -> NaiveDate {
        chrono::Utc::now().with_timezone(&self.tz).date_naive()
    }

    fn day(&self, ms: i64) -> Option<NaiveDate> {
        self.tz.timestamp_millis_opt(ms).single().map(|t| t.date_naive())
    }

    fn start_of(&self, d: NaiveDate) -> i64 {
        let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        self.tz
            .from_local_datetime(&midnight)
            .earliest()
            .map_or_else(|| midnight.and_utc().timestamp_millis(), |t| t.timestamp_millis())
    }

    /// Checks that `subject` belongs to `institution` (German errors: 404 for an unknown
    /// department or counsellor, 403 for another institution's).
    pub async fn check_subject(&self, institution: &str, subject: &Subject) -> Result<(), Error> {
        if let Some(d) = &subject.department {
            match institutions::department(&self.db, d).await? {
                None => return Err(Error::not_found("Diese Abteilung gibt es nicht.")),
                Some((inst, _)) if inst != institution => {
                    return Err(Error::forbidden("Das ist eine Abteilung einer anderen Einrichtung."))
                }
                Some(_) => {}
            }
        }
        if let Some(c) = &subject.counsellor {
            match people::counsellor_by_id(&self.db, c).await? {
                None => return Err(Error::not_found("Diese beratende Person gibt es nicht.")),
                Some(x) if x.institution_id != institution => {
                    return Err(Error::forbidden("Das ist eine beratende Person einer anderen Einrichtung."))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The report of `subject` in `institution` for `period`.
    pub async fn report(
        &self,
        institution: &str,
        subject: &Subject,
        period: Period,
    ) -> Result<Statistics, Error> {
        if institutions::get(&self.db, institution).await?.is_none() {
            return Err(Error::not_found("Diese Einrichtung gibt es nicht."));
        }
        self.check_subject(institution, subject).await?;
        let (from, until) =
            (self.start_of(period.from), self.start_of(period.to + chrono::Duration::days(1)));
        let members = match &subject.department {
            Some(d) => Some(people::members_of_department(&self.db, d).await?),
            None => None,
        };
        // Whether a counsellor's act counts for the subject.
        let counts = |who: Option<&str>| match (&subject.counsellor, &members) {
            (Some(c), _) => who == Some(c.as_str()),
            (None, Some(m)) => who.is_some_and(|w| m.iter().any(|x| x == w)),
            (None, None) => true,
        };
        let mut facts = Facts::default();
        for (kind, creator, created, deleted) in
            rooms::made_or_ended(&self.db, institution, from, until).await?
        {
            if !counts(Some(&creator)) || kind == RoomKind::Live {
                continue;
            }
            let Some(started) = self.day(created) else { continue };
            facts.rooms.push(RoomFact {
                category: kind.category(),
                started,
                ended: deleted.and_then(|d| self.day(d)),
            });
        }
        for c in live::chat_times(&self.db, institution, from, until).await? {
            let ours = match (&subject.counsellor, &subject.department) {
                (Some(_), _) => counts(c.counsellor.as_deref()),
                (None, Some(d)) => c.department_id.as_deref() == Some(d.as_str()),
                (None, None) => true,
            };
            if !ours {
                continue;
            }
            let queued = self.day(c.queued_at);
            let closed = c.closed_at.and_then(|t| self.day(t));
            if let Some(started) = queued {
                facts.rooms.push(RoomFact { category: Category::Live, started, ended: closed });
            }
            let waited = c.taken_at.map(|t| (t - c.queued_at).max(0));
            facts.live.push(LiveFact {
                queued: queued.filter(|d| period.contains(*d)),
                waited_ms: waited,
                duration_ms: match (c.taken_at, c.closed_at) {
                    (Some(t), Some(e)) => Some((e - t).max(0)),
                    _ => None,
                },
                abandoned: c.abandoned,
                closed: c.closed_at.is_some(),
            });
        }
        let logged = |entries: Vec<(Option<String>, Option<String>)>| {
            entries
                .iter()
                .filter(|(dept, who)| match (&subject.counsellor, &subject.department) {
                    (Some(_), _) => counts(who.as_deref()),
                    (None, Some(d)) => dept.as_deref() == Some(d.as_str()),
                    (None, None) => true,
                })
                .count() as u64
        };
        facts.returned = logged(live::logged(&self.db, institution, "returned", from, until).await?);
        facts.forwarded = logged(live::logged(&self.db, institution, "forwarded", from, until).await?);
        for (author, minutes, subject_text, at) in
            client_file::monitoring_times(&self.db, institution, from, until).await?
        {
            if let (true, Some(day)) = (counts(Some(&author)), self.day(at)) {
                facts.monitorings.push(MonitoringFact {
                    day,
                    minutes: u64::try_from(minutes).unwrap_or_default(),
                    subject: subject_text.trim().to_owned(),
                });
            }
        }
        let count_authors =
            |authors: Vec<String>| authors.iter().filter(|a| counts(Some(a.as_str()))).count() as u64;
        facts.notes = count_authors(
            client_file::authors(&self.db, client_file::Counted::Notes, institution, from, until).await?,
        );
        facts.documents = count_authors(
            client_file::authors(&self.db, client_file::Counted::Documents, institution, from, until).await?,
        );
        Ok(Statistics {
            institution: institution.to_owned(),
            department: subject.department.clone(),
            counsellor: subject.counsellor.clone(),
            report: stats::report(period, &facts, self.min_count),
        })
    }
}

/// The report as CSV rows (`Bereich;Kennzahl;Wert`), German Excel's way (UTF-8 with BOM,
/// `;`, CRLF); suppressed figures as "< 5", left-out ones empty.
pub fn csv(s: &Statistics) -> Vec<u8> {
    let r = &s.report;
    let mut rows: Vec<[String; 3]> = vec![
        ["Einrichtung".into(), String::new(), s.institution.clone()],
        ["Zeitraum".into(), "von".into(), r.period.from.to_string()],
        ["Zeitraum".into(), "bis".into(), r.period.to.to_string()],
        ["Unterdrückung".into(), "kleinste gezeigte Zahl".into(), r.min_count.to_string()],
    ];
    if let Some(d) = &s.department {
        rows.push(["Abteilung".into(), String::new(), d.clone()]);
    }
    if let Some(c) = &s.counsellor {
        rows.push(["Beratende Person".into(), String::new(), c.clone()]);
    }
    let opt = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    let optu = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
    for (cat, se) in &r.chats {
        rows.push([format!("Chats {cat}"), "begonnen".into(), se.started.text()]);
        rows.push([format!("Chats {cat}"), "beendet".into(), se.ended.text()]);
    }
    let l = &r.live;
    for (k, v) in [
        ("eingereiht", l.queued),
        ("übernommen", l.taken),
        ("zurückgegeben", l.returned),
        ("weitergeleitet", l.forwarded),
        ("abgebrochen", l.abandoned),
        ("beendet", l.closed),
    ] {
        rows.push(["Live-Chats".into(), k.into(), v.text()]);
    }
    rows.push(["Live-Chats".into(), "Wartezeit p50 (ms)".into(), opt(l.wait_ms.p50)]);
    rows.push(["Live-Chats".into(), "Wartezeit p90 (ms)".into(), opt(l.wait_ms.p90)]);
    rows.push(["Live-Chats".into(), "Dauer p50 (ms)".into(), opt(l.duration_ms.p50)]);
    rows.push(["Live-Chats".into(), "Dauer p90 (ms)".into(), opt(l.duration_ms.p90)]);
    rows.push(["Monitorings".into(), "Anzahl".into(), r.monitorings.count.text()]);
    rows.push(["Monitorings".into(), "Minuten".into(), optu(r.monitorings.minutes)]);
    for t in &r.monitorings.by_subject {
        rows.push([format!("Monitorings: {}", t.subject), "Anzahl".into(), t.count.text()]);
        rows.push([format!("Monitorings: {}", t.subject), "Minuten".into(), optu(t.minutes)]);
    }
    rows.push(["Notizen".into(), "Anzahl".into(), r.notes.text()]);
    rows.push(["Dokumente".into(), "Anzahl".into(), r.documents.text()]);
    for d in &r.days {
        let date = d.date.to_string();
        rows.push([format!("Tag {date}"), "Chats begonnen".into(), d.chats_started.text()]);
        rows.push([format!("Tag {date}"), "Live-Chats eingereiht".into(), d.live_queued.text()]);
        rows.push([format!("Tag {date}"), "Wartezeit p50 (ms)".into(), opt(d.live_wait_p50_ms)]);
        rows.push([format!("Tag {date}"), "Monitoring-Minuten".into(), optu(d.monitoring_minutes)]);
    }
    use crate::features::export::csv::{defused, rows as csv_rows};
    let mut out = "\u{feff}".as_bytes().to_vec();
    out.extend(csv_rows(&[["Bereich", "Kennzahl", "Wert"]]));
    // A subject is the counsellors' own words: defused like the export's fields.
    let cells: Vec<[String; 3]> = rows.iter().map(|r| r.clone().map(|c| defused(&c))).collect();
    out.extend(csv_rows(&cells));
    out
}
