//! A visitor of the web embed, speaking its HTTP API as the browser script does.

use reqwest::Method;
use serde_json::{json, Value};

use crate::TestService;

/// A browser's session with the embed.
pub struct Visitor {
    /// The embed API's base URL.
    pub base: String,
    /// The session token, once opened.
    pub session: Option<String>,
}

impl Visitor {
    /// A visitor without a session.
    pub fn new(svc: &TestService) -> Self {
        Visitor { base: format!("{}/_assisto/embed/v1", svc.url()), session: None }
    }

    /// Calls the embed API; returns status and JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(s) = &self.session {
            req = req.bearer_auth(s);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Opens a session with `body` (`area`, `form`, …); panics unless it is created.
    pub async fn open(svc: &TestService, inst: &str, body: Value) -> (Self, Value) {
        let mut v = Visitor::new(svc);
        let (s, r) = v.call(Method::POST, &format!("/institutions/{inst}/sessions"), Some(body)).await;
        assert_eq!(s, 201, "{r}");
        v.session = Some(r["session"].as_str().expect("session").to_owned());
        (v, r)
    }

    /// An anonymous visitor of the chat bubble, in `department`'s queue if given.
    pub async fn anonymous(svc: &TestService, inst: &str, department: Option<&str>) -> Self {
        let mut body = json!({"area": "anonymous", "form": "bubble"});
        if let Some(d) = department {
            body["department"] = json!(d);
        }
        Self::open(svc, inst, body).await.0
    }

    /// Sends a text.
    pub async fn send(&self, txn: &str, text: &str) -> (u16, Value) {
        self.call(Method::POST, "/messages", Some(json!({"txn_id": txn, "text": text}))).await
    }

    /// The conversation's state as the session reports it.
    pub async fn state(&self) -> Value {
        let (s, v) = self.call(Method::GET, "/session", None).await;
        assert_eq!(s, 200, "{v}");
        v["state"].clone()
    }

    /// The newest messages (oldest first).
    pub async fn messages(&self) -> Vec<Value> {
        let (s, v) = self.call(Method::GET, "/messages?limit=50", None).await;
        assert_eq!(s, 200, "{v}");
        v["messages"].as_array().cloned().unwrap_or_default()
    }
}

/// Gives the institution a (new) embed secret and signs, with it, the site's token for the
/// logged-in area: the site's user `sub` named `name`, valid for an hour. A second call
/// replaces the secret, so earlier tokens stop working.
pub async fn site_token(svc: &TestService, inst: &str, sub: &str, name: &str) -> String {
    let (s, v) = svc.admin(Method::POST, &format!("/institutions/{inst}/embed-secret"), None).await;
    assert_eq!(s, 200, "{v}");
    assisto_bridge::token::sign(
        v["secret"].as_str().expect("secret").as_bytes(),
        &assisto_bridge::token::Claims {
            inst: inst.to_owned(),
            sub: sub.into(),
            name: name.into(),
            exp: chrono::Utc::now().timestamp() + 3600,
        },
    )
}
