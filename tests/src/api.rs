//! The service's APIs for counsellors (the live-chat desk, the tools), which a Matrix
//! OpenID token of the user authenticates, as one user.

use reqwest::Method;
use serde_json::Value;

use crate::{matrix::TestUser, TestService};

/// One OpenID-authenticated API (under `/_assisto/<prefix>`) as one user.
pub struct OpenIdApi {
    base: String,
    token: String,
}

impl OpenIdApi {
    /// The API under `/_assisto/<prefix>` (e.g. `live/v1`) with a fresh token of `user`.
    pub async fn of(svc: &TestService, user: &TestUser, prefix: &str) -> Self {
        Self { base: format!("{}/_assisto/{prefix}", svc.url()), token: user.openid_token().await }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The OpenID token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Calls `path` with an optional JSON body; the status and the JSON answer (`null` for
    /// none).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req =
            reqwest::Client::new().request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}
