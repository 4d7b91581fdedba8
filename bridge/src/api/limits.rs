//! The rate limits (per session, and per address for new sessions) and the caller's
//! address they count against.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{extract::ConnectInfo, http::StatusCode};
use serde_json::json;

use super::{ApiError, Bridge};

/// Fixed one-minute windows per key.
#[derive(Default)]
pub(super) struct RateLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// Counts one call for `key`; `Err(ms)` when over `per_minute`.
    pub(super) fn hit(&self, key: String, per_minute: u32) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = map.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > per_minute {
            let left = Duration::from_secs(60).saturating_sub(now.duration_since(entry.0));
            return Err(left.as_millis() as u64 + 1);
        }
        Ok(())
    }
}

pub(super) fn limited(b: &Bridge, key: String, per_minute: u32) -> Result<(), ApiError> {
    b.limits.hit(key, per_minute).map_err(|ms| ApiError {
        extra: json!({ "retry_after_ms": ms }),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "M_LIMIT_EXCEEDED",
            "Zu viele Anfragen in kurzer Zeit. Bitte warte einen Moment.",
        )
    })
}

/// Sends per session per minute.
pub(super) const SENDS_PER_MINUTE: u32 = 30;
/// New sessions per address per minute.
pub(super) const SESSIONS_PER_MINUTE: u32 = 10;
/// Other calls per session per minute (typing, read, history, polls).
pub(super) const CALLS_PER_MINUTE: u32 = 300;

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
    use super::*;

    #[test]
    fn the_rate_limiter_counts_per_key() {
        let r = RateLimiter::default();
        for _ in 0..3 {
            assert!(r.hit("a".into(), 3).is_ok());
        }
        assert!(r.hit("a".into(), 3).is_err());
        assert!(r.hit("b".into(), 3).is_ok());
    }
}
