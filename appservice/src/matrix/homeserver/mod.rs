//! The one client for the homeserver's client-server and Synapse admin APIs.
//!
//! It authenticates with the `as_token`, acts for puppets and counsellors by masquerading
//! (`user_id` query parameter), honours 429 (`retry_after_ms` and `Retry-After`), retries
//! 5xx answers and connection errors a bounded number of times with backoff, and gives every
//! request a timeout. Tokens never appear in logs or errors.
//!
//! Every endpoint the service calls is one typed method, named in its doc comment, in a
//! file by area: `endpoints.rs` (registration, profiles, joining, sending, state, media,
//! OpenID), `rooms.rs` (reading a room as a member: events, `/messages`, `/context`,
//! typing, receipts, redactions) and `admin.rs` (the Synapse admin API and the erasure
//! module). No `_matrix/…` or `_synapse/…` path is built outside this module.

mod admin;
mod endpoints;
mod rooms;

use std::{sync::Arc, time::Duration};

use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::app::config::HomeserverConfig;
use crate::app::metrics::Metrics;

pub use admin::{AdminUser, DeleteRoom, JobStatus, RoomDeletion, RoomMedia, UserJoinedRooms, UserMedia};
pub use endpoints::{CreatedRoom, JoinedRoom, SentEvent, TxnId};
pub use rooms::{Direction, EventContext, Messages, UnreadSync};

/// The longest we wait on one 429 before trying again.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// How often a rate-limited request is tried before giving up.
const MAX_RATE_LIMITED_ATTEMPTS: u32 = 10;

/// An error from the homeserver or the way to it.
#[derive(Debug, thiserror::Error)]
pub enum HsError {
    /// The homeserver answered with an error.
    #[error("homeserver answered {status} {errcode}: {error}")]
    Matrix {
        /// HTTP status.
        status: StatusCode,
        /// `errcode` (or `M_UNKNOWN` if the body had none).
        errcode: String,
        /// `error` text.
        error: String,
    },
    /// The homeserver could not be reached (after the retries).
    #[error("homeserver unreachable: {0}")]
    Transport(String),
    /// The answer was not what the API promises.
    #[error("unexpected answer from homeserver: {0}")]
    Decode(String),
    /// The Synapse admin API is needed but `homeserver.admin_token` is not set.
    #[error("homeserver.admin_token is not configured")]
    NoAdminToken,
}

impl HsError {
    /// The Matrix `errcode`, if the homeserver gave one.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            HsError::Matrix { errcode, .. } => Some(errcode),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (as opposed to a refusal).
    pub fn is_transient(&self) -> bool {
        match self {
            HsError::Matrix { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            HsError::Transport(_) => true,
            HsError::Decode(_) | HsError::NoAdminToken => false,
        }
    }
}

/// How requests are retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after a 5xx or a connection error.
    pub max_retries: u32,
    /// First backoff; doubled each time, with jitter.
    pub base_delay: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 5, base_delay: Duration::from_millis(200), max_delay: Duration::from_secs(10) }
    }
}

/// A client of the homeserver, cheap to clone.
#[derive(Clone)]
pub struct HomeserverClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    as_token: String,
    admin_token: Option<String>,
    server_name: String,
    retry: RetryPolicy,
    metrics: Metrics,
}

impl HomeserverClient {
    /// Builds a client.
    pub fn new(cfg: &HomeserverConfig, as_token: String, metrics: Metrics) -> Result<Self, HsError> {
        let base = Url::parse(&cfg.url).map_err(|e| HsError::Transport(format!("bad URL: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.request_timeout_secs))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("assisto/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HsError::Transport(e.to_string()))?;
        let retry = RetryPolicy { max_retries: cfg.max_retries, ..RetryPolicy::default() };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                as_token,
                admin_token: cfg.admin_token.clone(),
                server_name: cfg.server_name.clone(),
                retry,
                metrics,
            }),
        })
    }

    /// The service's metrics (shared with the rest of the service).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry(self, retry: RetryPolicy) -> Self {
        let i = &self.inner;
        Self {
            inner: Arc::new(Inner {
                http: i.http.clone(),
                base: i.base.clone(),
                as_token: i.as_token.clone(),
                admin_token: i.admin_token.clone(),
                server_name: i.server_name.clone(),
                retry,
                metrics: i.metrics.clone(),
            }),
        }
    }

    /// The homeserver's server name.
    pub fn server_name(&self) -> &str {
        &self.inner.server_name
    }

    /// Sends one request and decodes the JSON answer, with retries.
    ///
    /// `path` is a list of segments after the base URL, each percent-encoded here;
    /// `as_user` masquerades as that user.
    ///
    /// The service calls the typed endpoint methods (one per endpoint, in this module's
    /// files); this stays public for the integration tests, which read rooms as a client.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        as_user: Option<&str>,
        body: Option<&Value>,
    ) -> Result<T, HsError> {
        self.send(method, path, query, as_user, body, &self.inner.as_token).await
    }

    /// Like [`HomeserverClient::request`], for the Synapse admin API, authenticated with the
    /// configured admin token (`homeserver.admin_token`). Only for the endpoint methods of
    /// this module (see `admin.rs`).
    async fn admin_request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&Value>,
    ) -> Result<T, HsError> {
        let token = self.inner.admin_token.as_deref().ok_or(HsError::NoAdminToken)?;
        self.send(method, path, &[], None, body, token).await
    }

    /// A request without any token (for endpoints that take their credential elsewhere).
    async fn request_unauthenticated<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T, HsError> {
        self.send(method, path, query, None, None, "").await
    }

    /// Whether an admin token is configured.
    pub fn has_admin_token(&self) -> bool {
        self.inner.admin_token.is_some()
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        as_user: Option<&str>,
        body: Option<&Value>,
        token: &str,
    ) -> Result<T, HsError> {
        let mut url = self.inner.base.clone();
        {
            let mut segs = url
                .path_segments_mut()
                .map_err(|_| HsError::Transport("homeserver URL cannot be a base".into()))?;
            segs.pop_if_empty();
            segs.extend(path);
        }
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
            if let Some(u) = as_user {
                q.append_pair("user_id", u);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }

        let retry = &self.inner.retry;
        let mut failures = 0u32;
        let mut rate_limited = 0u32;
        loop {
            let mut req = self.inner.http.request(method.clone(), url.clone());
            if !token.is_empty() {
                req = req.bearer_auth(token);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let outcome = req.send().await;
            let resp = match outcome {
                Ok(r) => r,
                Err(e) => {
                    failures += 1;
                    // Never include the URL: it may carry a user ID.
                    let what = if e.is_timeout() { "timeout" } else { "connection error" };
                    if failures > retry.max_retries {
                        return Err(HsError::Transport(what.into()));
                    }
                    self.inner.metrics.homeserver_retries.with_label_values(&["connection"]).inc();
                    tracing::debug!(attempt = failures, what, "homeserver request failed, retrying");
                    tokio::time::sleep(self.backoff(failures)).await;
                    continue;
                }
            };
            let status = resp.status();
            if status.is_success() {
                let bytes = resp.bytes().await.map_err(|e| HsError::Transport(e.to_string()))?;
                let slice: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
                // As deep as the homeserver nests content (a timeline page with one deeply
                // nested message must still load).
                return crate::json::from_slice(slice).map_err(|e| HsError::Decode(e.to_string()));
            }
            let retry_after_header = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = resp.bytes().await.unwrap_or_default();
            let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let errcode = json["errcode"].as_str().unwrap_or("M_UNKNOWN").to_owned();
            let error = json["error"].as_str().unwrap_or_default().to_owned();

            if status == StatusCode::TOO_MANY_REQUESTS {
                rate_limited += 1;
                if rate_limited >= MAX_RATE_LIMITED_ATTEMPTS {
                    return Err(HsError::Matrix { status, errcode, error });
                }
                let wait = json["retry_after_ms"]
                    .as_u64()
                    .map(Duration::from_millis)
                    .or(retry_after_header)
                    .unwrap_or_else(|| self.backoff(rate_limited))
                    .min(MAX_RATE_LIMIT_WAIT);
                self.inner.metrics.homeserver_retries.with_label_values(&["rate_limited"]).inc();
                tracing::debug!(wait_ms = wait.as_millis() as u64, "rate limited by homeserver");
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && failures < retry.max_retries {
                failures += 1;
                self.inner.metrics.homeserver_retries.with_label_values(&["server_error"]).inc();
                tracing::debug!(attempt = failures, %status, "homeserver error, retrying");
                tokio::time::sleep(retry_after_header.unwrap_or_else(|| self.backoff(failures))).await;
                continue;
            }
            return Err(HsError::Matrix { status, errcode, error });
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let r = &self.inner.retry;
        let exp = r.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(r.max_delay);
        // ±25 % jitter so that many waiting requests do not return at once.
        let jitter = rand::thread_rng().gen_range(0.75..1.25);
        capped.mul_f64(jitter)
    }

    /// The full user ID of a localpart on this homeserver.
    pub fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.inner.server_name)
    }
}

impl HomeserverClient {
    /// One `GET /_matrix/client/versions` without retries: whether the homeserver answers
    /// within `timeout`.
    pub async fn reachable(&self, timeout: Duration) -> bool {
        let mut url = self.inner.base.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.pop_if_empty().extend(["_matrix", "client", "versions"]);
        }
        matches!(
            self.inner.http.get(url).timeout(timeout).send().await,
            Ok(r) if r.status().is_success()
        )
    }
}
