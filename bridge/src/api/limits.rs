//! The rate limits (per session, and per address for new sessions) and the caller's
//! address they count against.
//!
//! Each quota is a keyed GCRA limiter ([`governor`]): a key may spend its whole quota at
//! once, after which one call comes free every minute / quota (2 s for 30 a minute), so any
//! span of time lets through at most the quota plus what that span replenishes. (Fixed
//! one-minute windows let a client send the quota at the end of one window and again at the
//! start of the next: twice the quota within moments.)
//! Keys that have been idle long enough to be back at a full quota are dropped every
//! [`SWEEP_EVERY`] calls, so memory stays bounded by the keys active in the last minute.

use std::{
    net::SocketAddr,
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use axum::{extract::ConnectInfo, http::StatusCode};
use governor::{
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    state::keyed::DefaultKeyedStateStore,
    InsufficientCapacity, Quota, RateLimiter,
};
use serde_json::json;

use super::ApiError;

/// Sends per session per minute.
pub(super) const SENDS_PER_MINUTE: u32 = 30;
/// New sessions per address per minute.
pub(super) const SESSIONS_PER_MINUTE: u32 = 10;
/// Other calls per session per minute (typing, read, history, polls).
pub(super) const CALLS_PER_MINUTE: u32 = 300;

/// After this many calls (passed or refused), idle keys are dropped.
const SWEEP_EVERY: u64 = 10_000;

/// Which quota a call counts against.
#[derive(Clone, Copy, Debug)]
pub(super) enum Limit {
    /// Messages, voice messages and files, per session: [`SENDS_PER_MINUTE`].
    Send,
    /// New sessions, per address: [`SESSIONS_PER_MINUTE`].
    Session,
    /// Every call with a session token, per session: [`CALLS_PER_MINUTE`].
    Call,
}

impl Limit {
    const fn per_minute(self) -> u32 {
        match self {
            Limit::Send => SENDS_PER_MINUTE,
            Limit::Session => SESSIONS_PER_MINUTE,
            Limit::Call => CALLS_PER_MINUTE,
        }
    }

    const fn quota(self) -> Quota {
        match NonZeroU32::new(self.per_minute()) {
            Some(n) => Quota::per_minute(n),
            None => panic!("a quota allows at least one call a minute"),
        }
    }
}

type Keyed<C> = RateLimiter<String, DefaultKeyedStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Over a limit: the wait until the call would pass.
#[derive(Debug)]
pub(super) struct Limited(pub(super) Duration);

impl From<Limited> for ApiError {
    fn from(Limited(wait): Limited) -> Self {
        // Whole milliseconds, rounded up, at least 1.
        let ms = u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX).max(1);
        ApiError {
            extra: json!({ "retry_after_ms": ms }),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "M_LIMIT_EXCEEDED",
                "Zu viele Anfragen in kurzer Zeit. Bitte warte einen Moment.",
            )
        }
    }
}

/// The bridge's rate limits, one keyed limiter per [`Limit`]; `C` is the clock (a fake one
/// in tests).
pub(super) struct Limits<C: Clock = DefaultClock> {
    send: Keyed<C>,
    session: Keyed<C>,
    call: Keyed<C>,
    /// Calls since start, to sweep idle keys every [`SWEEP_EVERY`].
    calls: AtomicU64,
}

impl Default for Limits {
    fn default() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limits<C> {
    fn with_clock(clock: C) -> Self {
        let keyed =
            |limit: Limit| RateLimiter::new(limit.quota(), DefaultKeyedStateStore::default(), clock.clone());
        Self {
            send: keyed(Limit::Send),
            session: keyed(Limit::Session),
            call: keyed(Limit::Call),
            calls: AtomicU64::new(0),
        }
    }
}

impl<C: Clock> Limits<C> {
    fn limiter(&self, limit: Limit) -> &Keyed<C> {
        match limit {
            Limit::Send => &self.send,
            Limit::Session => &self.session,
            Limit::Call => &self.call,
        }
    }

    /// Counts one call for `key` against `limit`.
    pub(super) fn check(&self, limit: Limit, key: &str) -> Result<(), Limited> {
        self.check_n(limit, key, 1)
    }

    /// Counts `n` calls at once for `key` against `limit`: all pass or none is counted.
    pub(super) fn check_n(&self, limit: Limit, key: &str, n: usize) -> Result<(), Limited> {
        if self.calls.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let Some(n) = NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)) else { return Ok(()) };
        let limiter = self.limiter(limit);
        match limiter.check_key_n(&key.to_owned(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Limited(not_until.wait_time_from(limiter.clock().now()))),
            // More than a whole minute's quota at once never passes; as with the fixed
            // windows, the answer is a refusal with a minute to wait.
            Err(InsufficientCapacity(_)) => Err(Limited(Duration::from_secs(60))),
        }
    }

    /// Drops the keys that are back at a full quota (indistinguishable from new ones).
    fn sweep(&self) {
        for limiter in [&self.send, &self.session, &self.call] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Keys held, over all limits.
    #[cfg(test)]
    fn len(&self) -> usize {
        [&self.send, &self.session, &self.call].iter().map(|l| l.len()).sum()
    }
}

/// The peer's address, when the server runs with connect info (else empty).
pub(super) struct PeerIp(pub(super) String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip());
        // Behind a reverse proxy on the same host or network, the proxy's last
        // `X-Forwarded-For` entry is the visitor's address.
        let forwarded = || {
            parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
        };
        let ip = match peer {
            Some(p) if is_local_network(p) => forwarded().unwrap_or(p).to_string(),
            Some(p) => p.to_string(),
            None => String::new(),
        };
        Ok(PeerIp(ip))
    }
}

fn is_local_network(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limits() -> (Limits<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (Limits::with_clock(clock.clone()), clock)
    }

    /// How many of `n` calls at the same instant pass.
    fn passing(l: &Limits<FakeRelativeClock>, limit: Limit, key: &str, n: u32) -> u32 {
        (0..n).map(|_| u32::from(l.check(limit, key).is_ok())).sum()
    }

    #[test]
    fn a_burst_of_exactly_the_quota_passes_and_the_next_call_waits() {
        for limit in [Limit::Send, Limit::Session, Limit::Call] {
            let (l, _) = limits();
            let quota = limit.per_minute();
            assert_eq!(passing(&l, limit, "a", quota), quota, "{limit:?}");
            let Err(Limited(wait)) = l.check(limit, "a") else {
                panic!("{limit:?}: call {} passed", quota + 1)
            };
            // One call comes back after a minute / quota.
            let interval = Duration::from_secs(60) / quota;
            assert!(wait > Duration::ZERO && wait <= interval, "{limit:?}: {wait:?}");
        }
    }

    #[test]
    fn the_refusal_says_when_to_try_again() {
        let (l, clock) = limits();
        assert_eq!(passing(&l, Limit::Send, "a", SENDS_PER_MINUTE), SENDS_PER_MINUTE);
        clock.advance(Duration::from_millis(500));
        let Err(limited) = l.check(Limit::Send, "a") else { panic!("over the quota") };
        assert_eq!(limited.0, Duration::from_millis(1500), "one send comes back every 2 s");
        let e = ApiError::from(limited);
        assert_eq!((e.status, e.errcode), (StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED"));
        assert_eq!(e.message, "Zu viele Anfragen in kurzer Zeit. Bitte warte einen Moment.");
        assert_eq!(e.extra, json!({ "retry_after_ms": 1500 }));
        // After that wait, exactly one more passes.
        clock.advance(Duration::from_millis(1500));
        assert_eq!(passing(&l, Limit::Send, "a", 2), 1);
    }

    #[test]
    fn retry_after_ms_is_rounded_up_and_never_zero() {
        let ms = |wait| ApiError::from(Limited(wait)).extra["retry_after_ms"].as_u64();
        assert_eq!(ms(Duration::from_nanos(1)), Some(1));
        assert_eq!(ms(Duration::ZERO), Some(1));
        assert_eq!(ms(Duration::from_micros(41_000_001)), Some(41_001));
    }

    #[test]
    fn keys_and_limits_are_independent() {
        let (l, _) = limits();
        assert_eq!(passing(&l, Limit::Send, "a", SENDS_PER_MINUTE + 1), SENDS_PER_MINUTE);
        assert_eq!(passing(&l, Limit::Send, "b", SENDS_PER_MINUTE + 1), SENDS_PER_MINUTE, "another session");
        assert!(l.check(Limit::Call, "a").is_ok(), "the calls quota of the same session");
        assert!(l.check(Limit::Session, "a").is_ok(), "the sessions quota");
    }

    #[test]
    fn a_window_edge_does_not_let_twice_the_quota_through() {
        let (l, clock) = limits();
        // With fixed windows: the first call opens a window, the rest of the quota goes just
        // before it ends and a whole quota again just after: 2 × 30 within 0.2 s.
        assert!(l.check(Limit::Send, "a").is_ok());
        clock.advance(Duration::from_millis(59_900));
        let before = passing(&l, Limit::Send, "a", SENDS_PER_MINUTE);
        clock.advance(Duration::from_millis(200));
        let after = passing(&l, Limit::Send, "a", SENDS_PER_MINUTE);
        assert!(before + after <= SENDS_PER_MINUTE, "{before} + {after} sends within 0.2 s");
    }

    #[test]
    fn a_client_calling_constantly_gets_the_quota_a_minute() {
        let (l, clock) = limits();
        // Every 100 ms for ten minutes.
        let mut passed = Vec::new();
        for tick in 0..6000u64 {
            if l.check(Limit::Send, "a").is_ok() {
                passed.push(tick);
            }
            clock.advance(Duration::from_millis(100));
        }
        // The first burst, then the quota a minute.
        assert!((300..=330).contains(&passed.len()), "{} sends in ten minutes", passed.len());
        for (i, &t) in passed.iter().enumerate().filter(|&(_, &t)| t >= 600) {
            let minute = passed[i..].iter().take_while(|&&u| u < t + 600).count();
            assert!(minute <= 30, "{minute} sends in the minute from {} s", t / 10);
        }
    }

    #[test]
    fn several_files_count_all_or_none() {
        let (l, _) = limits();
        assert!(l.check_n(Limit::Send, "a", 28).is_ok());
        let Err(Limited(wait)) = l.check_n(Limit::Send, "a", 3) else { panic!("31 sends") };
        // Three are needed, two are left: one more comes back in 2 s.
        assert_eq!(wait, Duration::from_secs(2));
        assert_eq!(passing(&l, Limit::Send, "a", 3), 2, "the refused upload counted nothing");
        assert!(l.check_n(Limit::Send, "b", SENDS_PER_MINUTE as usize + 1).is_err(), "never passes");
        assert!(l.check_n(Limit::Send, "b", 0).is_ok());
        assert_eq!(passing(&l, Limit::Send, "b", SENDS_PER_MINUTE + 1), SENDS_PER_MINUTE);
    }

    #[test]
    fn idle_keys_are_dropped_so_memory_stays_bounded() {
        let (l, clock) = limits();
        for i in 0..SWEEP_EVERY - 1 {
            let _ = l.check(Limit::Call, &format!("s{i}"));
        }
        assert_eq!(l.len() as u64, SWEEP_EVERY - 1);
        // A minute later they are all back at a full quota; the next call sweeps.
        clock.advance(Duration::from_secs(60));
        assert!(l.check(Limit::Send, "active").is_ok());
        assert_eq!(l.len(), 1, "only the key used since");
        // A key still short of its quota is kept.
        for _ in 0..SWEEP_EVERY {
            let _ = l.check(Limit::Session, "busy");
        }
        assert!(l.check(Limit::Session, "busy").is_err(), "its state survived the sweep");
    }
}
