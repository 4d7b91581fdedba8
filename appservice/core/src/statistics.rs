//! Statistics (Statistische Auswertung): what happened in a period, counted, with small
//! numbers suppressed.
//!
//! Pure: the service gathers the facts (IDs, days and durations only — never content or a
//! client's name) and [`report`] counts them. Every count below the threshold (`min`, 5 by
//! default) is shown as "< 5", as German church and welfare data-protection rules expect
//! against re-identification; sums and percentiles of fewer than `min` cases are left out;
//! monitoring subjects with fewer than `min` cases are merged into "Weitere".

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Serialize, Serializer};

use crate::{Category, DomainError};

/// Longest period, in days.
pub const PERIOD_MAX_DAYS: i64 = 366;
/// The subject under which rare monitoring subjects are counted together.
pub const OTHER_SUBJECTS: &str = "Weitere";

/// A period of whole days, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
}

impl Period {
    /// The days of the period, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        let to = self.to;
        self.from.iter_days().take_while(move |d| *d <= to)
    }

    /// Whether `day` lies in it.
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }
}

/// Parses a period from `from` and `to` (`YYYY-MM-DD`); without them the 30 days up to
/// `today`. German errors.
pub fn parse_period(from: Option<&str>, to: Option<&str>, today: NaiveDate) -> Result<Period, DomainError> {
    let parse = |name: &str, s: &str| {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
            DomainError::Invalid(format!(
                "{name}: ein Datum als JJJJ-MM-TT, z. B. 2026-12-01 (nicht „{}“).",
                truncated(s)
            ))
        })
    };
    let to = match to {
        Some(t) => parse("to", t)?,
        None => today,
    };
    let from = match from {
        Some(f) => parse("from", f)?,
        None => to - chrono::Duration::days(29),
    };
    if from > to {
        return Err(DomainError::Invalid("from liegt nach to: der Zeitraum ist leer.".into()));
    }
    if (to - from).num_days() + 1 > PERIOD_MAX_DAYS {
        return Err(DomainError::Invalid(format!(
            "Der Zeitraum ist zu lang: höchstens {PERIOD_MAX_DAYS} Tage."
        )));
    }
    Ok(Period { from, to })
}

fn truncated(s: &str) -> String {
    s.chars().take(20).collect()
}

/// A count as it may be shown: exactly, or "fewer than the threshold".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    /// The number.
    Exact(u64),
    /// Fewer than this many (and more than none).
    Below(u64),
}

impl Figure {
    /// `n`, suppressed if it is between 1 and `min - 1`.
    pub fn of(n: u64, min: u64) -> Self {
        if n > 0 && n < min {
            Figure::Below(min)
        } else {
            Figure::Exact(n)
        }
    }

    /// As shown: "12", "< 5".
    pub fn text(&self) -> String {
        match self {
            Figure::Exact(n) => n.to_string(),
            Figure::Below(m) => format!("< {m}"),
        }
    }
}

impl Serialize for Figure {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Figure::Exact(n) => s.serialize_u64(*n),
            Figure::Below(_) => s.serialize_str(&self.text()),
        }
    }
}

/// A managed room: its category, the day it was made and the day it ended (deleted; for
/// live chats: closed).
#[derive(Clone, Debug)]
pub struct RoomFact {
    /// Its category.
    pub category: Category,
    /// The day it was created, in the service's time zone.
    pub started: NaiveDate,
    /// The day it ended, if it did.
    pub ended: Option<NaiveDate>,
}

/// A live chat.
#[derive(Clone, Debug, Default)]
pub struct LiveFact {
    /// The day it was queued.
    pub queued: Option<NaiveDate>,
    /// How long the visitor waited until it was taken (ms), if it was.
    pub waited_ms: Option<i64>,
    /// How long it ran from taken to closed (ms), if both happened.
    pub duration_ms: Option<i64>,
    /// Whether the visitor left while queued.
    pub abandoned: bool,
    /// Whether it was closed.
    pub closed: bool,
}

/// A monitoring of the client file.
#[derive(Clone, Debug)]
pub struct MonitoringFact {
    /// Its day.
    pub day: NaiveDate,
    /// Its minutes.
    pub minutes: u64,
    /// Its subject (the counsellor's words for the topic).
    pub subject: String,
}

/// What the service gathered for a period.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// Rooms made or ended in the period.
    pub rooms: Vec<RoomFact>,
    /// Live chats queued in the period.
    pub live: Vec<LiveFact>,
    /// Live chats returned to the queue in the period.
    pub returned: u64,
    /// Live chats forwarded in the period.
    pub forwarded: u64,
    /// Monitorings in the period.
    pub monitorings: Vec<MonitoringFact>,
    /// Notes written in the period.
    pub notes: u64,
    /// Documents uploaded in the period.
    pub documents: u64,
}

/// Started and ended chats of a category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StartedEnded {
    /// Started in the period.
    pub started: Figure,
    /// Ended in the period.
    pub ended: Figure,
}

/// p50 and p90 of durations (ms); `None` for fewer than `min` cases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Spread {
    /// Median.
    pub p50: Option<i64>,
    /// 90th percentile.
    pub p90: Option<i64>,
    /// How many cases.
    pub cases: Figure,
}

/// The live chats of a period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveReport {
    /// Arrived in the queue.
    pub queued: Figure,
    /// Taken by a counsellor.
    pub taken: Figure,
    /// Returned to the queue.
    pub returned: Figure,
    /// Forwarded.
    pub forwarded: Figure,
    /// The visitor left while queued.
    pub abandoned: Figure,
    /// Closed.
    pub closed: Figure,
    /// Time from arrival to being taken.
    pub wait_ms: Spread,
    /// Time from taken to closed.
    pub duration_ms: Spread,
}

/// Monitorings of one subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubjectReport {
    /// The subject ([`OTHER_SUBJECTS`] for the rare ones together).
    pub subject: String,
    /// How many.
    pub count: Figure,
    /// Their minutes (`None` when suppressed).
    pub minutes: Option<u64>,
}

/// Monitorings of a period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonitoringReport {
    /// How many.
    pub count: Figure,
    /// Their minutes (`None` when suppressed).
    pub minutes: Option<u64>,
    /// By subject, most minutes first.
    pub by_subject: Vec<SubjectReport>,
}

/// One day of the period (for the charts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayReport {
    /// The day.
    pub date: NaiveDate,
    /// Chats started (all categories).
    pub chats_started: Figure,
    /// Live chats queued.
    pub live_queued: Figure,
    /// Median wait of the live chats taken that day (ms); `None` for fewer than `min`.
    pub live_wait_p50_ms: Option<i64>,
    /// Monitoring minutes (`None` when suppressed).
    pub monitoring_minutes: Option<u64>,
}

/// The report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The period.
    pub period: Period,
    /// The suppression threshold.
    pub min_count: u64,
    /// Chats per category.
    pub chats: BTreeMap<&'static str, StartedEnded>,
    /// Live chats.
    pub live: LiveReport,
    /// Monitorings.
    pub monitorings: MonitoringReport,
    /// Notes written.
    pub notes: Figure,
    /// Documents uploaded.
    pub documents: Figure,
    /// Per day.
    pub days: Vec<DayReport>,
}

/// The nearest-rank percentile `p` (0–100) of `values`.
pub fn percentile(values: &mut [i64], p: u32) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (u64::from(p.min(100)) * values.len() as u64).div_ceil(100).max(1) as usize;
    values.get(rank - 1).copied()
}

fn spread(mut values: Vec<i64>, min: u64) -> Spread {
    let n = values.len() as u64;
    let shown = n >= min;
    Spread {
        p50: if shown { percentile(&mut values, 50) } else { None },
        p90: if shown { percentile(&mut values, 90) } else { None },
        cases: Figure::of(n, min),
    }
}

fn minutes(count: u64, minutes: u64, min: u64) -> Option<u64> {
    (count == 0 || count >= min).then_some(minutes)
}

/// Counts `facts` for `period` with threshold `min` (at least 1).
pub fn report(period: Period, facts: &Facts, min: u64) -> Report {
    let min = min.max(1);
    let f = |n: usize| Figure::of(n as u64, min);
    let mut chats = BTreeMap::new();
    for c in Category::SPACES {
        let of: Vec<&RoomFact> = facts.rooms.iter().filter(|r| r.category == c).collect();
        let started = of.iter().filter(|r| period.contains(r.started)).count();
        let ended = of.iter().filter(|r| r.ended.is_some_and(|d| period.contains(d))).count();
        chats.insert(c.as_str(), StartedEnded { started: f(started), ended: f(ended) });
    }
    let live_in: Vec<&LiveFact> =
        facts.live.iter().filter(|l| l.queued.is_some_and(|d| period.contains(d))).collect();
    let live = LiveReport {
        queued: f(live_in.len()),
        taken: f(live_in.iter().filter(|l| l.waited_ms.is_some()).count()),
        returned: Figure::of(facts.returned, min),
        forwarded: Figure::of(facts.forwarded, min),
        abandoned: f(live_in.iter().filter(|l| l.abandoned).count()),
        closed: f(live_in.iter().filter(|l| l.closed).count()),
        wait_ms: spread(live_in.iter().filter_map(|l| l.waited_ms).collect(), min),
        duration_ms: spread(live_in.iter().filter_map(|l| l.duration_ms).collect(), min),
    };
    let mons: Vec<&MonitoringFact> = facts.monitorings.iter().filter(|m| period.contains(m.day)).collect();
    let mut subjects: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for m in &mons {
        let e = subjects.entry(m.subject.as_str()).or_default();
        e.0 += 1;
        e.1 += m.minutes;
    }
    let (mut by_subject, mut rare) = (Vec::new(), (0u64, 0u64));
    for (s, (n, mins)) in subjects {
        if n >= min {
            by_subject.push(SubjectReport {
                subject: s.to_owned(),
                count: Figure::Exact(n),
                minutes: Some(mins),
            });
        } else {
            rare.0 += n;
            rare.1 += mins;
        }
    }
    by_subject.sort_by(|a, b| b.minutes.cmp(&a.minutes).then_with(|| a.subject.cmp(&b.subject)));
    if rare.0 > 0 {
        by_subject.push(SubjectReport {
            subject: OTHER_SUBJECTS.into(),
            count: Figure::of(rare.0, min),
            minutes: minutes(rare.0, rare.1, min),
        });
    }
    let total_minutes: u64 = mons.iter().map(|m| m.minutes).sum();
    let monitorings = MonitoringReport {
        count: f(mons.len()),
        minutes: minutes(mons.len() as u64, total_minutes, min),
        by_subject,
    };
    let days = period
        .days()
        .map(|d| {
            let started = facts.rooms.iter().filter(|r| r.started == d).count();
            let queued: Vec<&&LiveFact> = live_in.iter().filter(|l| l.queued == Some(d)).collect();
            let mut waits: Vec<i64> = queued.iter().filter_map(|l| l.waited_ms).collect();
            let day_mons: Vec<&&MonitoringFact> = mons.iter().filter(|m| m.day == d).collect();
            DayReport {
                date: d,
                chats_started: f(started),
                live_queued: f(queued.len()),
                live_wait_p50_ms: if waits.len() as u64 >= min { percentile(&mut waits, 50) } else { None },
                monitoring_minutes: minutes(
                    day_mons.len() as u64,
                    day_mons.iter().map(|m| m.minutes).sum(),
                    min,
                ),
            }
        })
        .collect();
    Report {
        period,
        min_count: min,
        chats,
        live,
        monitorings,
        notes: Figure::of(facts.notes, min),
        documents: Figure::of(facts.documents, min),
        days,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("a day")
    }

    #[test]
    fn periods_are_validated_in_german() {
        let today = day(30);
        assert_eq!(parse_period(None, None, today).expect("default"), Period { from: day(1), to: day(30) });
        let p = parse_period(Some("2026-11-03"), Some("2026-11-04"), today).expect("two days");
        assert_eq!(p.days().count(), 2);
        assert!(
            matches!(parse_period(Some("3.11.2026"), None, today), Err(DomainError::Invalid(m)) if m.contains("JJJJ-MM-TT"))
        );
        assert!(parse_period(Some("2026-11-05"), Some("2026-11-04"), today).is_err());
        assert!(parse_period(Some("2024-01-01"), Some("2026-11-04"), today).is_err());
    }

    #[test]
    fn small_numbers_are_suppressed_and_rare_subjects_merged() {
        let mut facts = Facts::default();
        for i in 0..6 {
            facts.live.push(LiveFact {
                queued: Some(day(2)),
                waited_ms: Some(1000 * (i + 1)),
                duration_ms: (i < 2).then_some(60_000),
                closed: i < 2,
                ..Default::default()
            });
        }
        for _ in 0..5 {
            facts.monitorings.push(MonitoringFact { day: day(2), minutes: 30, subject: "Schulden".into() });
        }
        facts.monitorings.push(MonitoringFact { day: day(3), minutes: 45, subject: "Selten".into() });
        facts.rooms.push(RoomFact { category: Category::Clients, started: day(2), ended: None });
        let r = report(Period { from: day(1), to: day(30) }, &facts, 5);
        assert_eq!(r.live.queued, Figure::Exact(6));
        assert_eq!(r.live.wait_ms.p50, Some(3000));
        assert_eq!(r.live.wait_ms.p90, Some(6000));
        assert_eq!(r.live.closed, Figure::Below(5));
        assert_eq!(r.live.duration_ms.p50, None, "two durations are too few");
        assert_eq!(r.chats["clients"].started, Figure::Below(5));
        assert_eq!(r.chats["clients"].ended, Figure::Exact(0));
        assert_eq!(serde_json::to_value(r.chats["clients"].started).expect("json"), "< 5");
        assert_eq!(r.monitorings.count, Figure::Exact(6));
        assert_eq!(r.monitorings.minutes, Some(195));
        assert_eq!(r.monitorings.by_subject[0].subject, "Schulden");
        assert_eq!(r.monitorings.by_subject[1].subject, OTHER_SUBJECTS, "a subject of one is not named");
        assert_eq!(r.monitorings.by_subject[1].minutes, None);
        assert_eq!(r.days.len(), 30);
        assert_eq!(r.days[1].live_queued, Figure::Exact(6));
        assert_eq!(r.days[2].monitoring_minutes, None);
        let open = report(Period { from: day(1), to: day(30) }, &facts, 1);
        assert_eq!(open.chats["clients"].started, Figure::Exact(1), "a threshold of 1 suppresses nothing");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&mut [], 50), None);
        assert_eq!(percentile(&mut [7], 90), Some(7));
        assert_eq!(percentile(&mut [4, 1, 3, 2], 50), Some(2));
        assert_eq!(percentile(&mut (1..=10).collect::<Vec<_>>(), 90), Some(9));
    }

    proptest! {
        #[test]
        fn no_shown_count_is_between_one_and_the_threshold(n in 0u64..50, min in 1u64..10) {
            match Figure::of(n, min) {
                Figure::Exact(x) => prop_assert!(x == 0 || x >= min),
                Figure::Below(m) => prop_assert!(m == min && n > 0 && n < min),
            }
        }

        #[test]
        fn every_day_of_the_period_has_a_row(from in 1u32..28, len in 0u32..3) {
            let p = Period { from: day(from), to: day((from + len).min(30)) };
            let r = report(p, &Facts::default(), 5);
            prop_assert_eq!(r.days.len() as i64, (p.to - p.from).num_days() + 1);
        }
    }
}
