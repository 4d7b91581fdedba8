//! The homeserver client under faults a real Synapse won't produce on demand: rate limits,
//! server errors, dead connections. A small mock server injects them.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use assisto_appservice::app::config::HomeserverConfig;

use assisto_appservice::matrix::homeserver::HomeserverClient;

use assisto_appservice::matrix::homeserver::HsError;

use assisto_appservice::matrix::homeserver::RetryPolicy;

use assisto_appservice::matrix::homeserver::TxnId;

use assisto_appservice::app::metrics::Metrics;
use axum::{
    http::{HeaderMap, StatusCode, Uri},
    response::IntoResponse,
    routing::any,
    Json, Router,
};
use serde_json::json;

/// Answers with `script[n]` on the n-th request (the last one repeats), and records what
/// it was asked.
async fn mock(
    script: Vec<(u16, serde_json::Value, Option<&'static str>)>,
) -> (String, Arc<AtomicU32>, Arc<std::sync::Mutex<Vec<String>>>) {
    let hits = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (h, s) = (hits.clone(), seen.clone());
    let script = Arc::new(script);
    let app = Router::new().fallback(any(move |uri: Uri, headers: HeaderMap| {
        let (h, s, script) = (h.clone(), s.clone(), script.clone());
        async move {
            let n = h.fetch_add(1, Ordering::SeqCst) as usize;
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            s.lock().expect("lock").push(format!("{uri} {auth}"));
            let (status, body, retry_after) = script[n.min(script.len() - 1)].clone();
            let mut resp = (StatusCode::from_u16(status).expect("status"), Json(body)).into_response();
            if let Some(ra) = retry_after {
                resp.headers_mut().insert("retry-after", ra.parse().expect("header"));
            }
            resp
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}"), hits, seen)
}

fn client(url: &str) -> (HomeserverClient, Metrics) {
    let cfg = HomeserverConfig {
        url: url.into(),
        server_name: "localhost".into(),
        request_timeout_secs: 2,
        max_retries: 3,
        admin_token: None,
    };
    let metrics = Metrics::new();
    let c = HomeserverClient::new(&cfg, "the-as-token".into(), metrics.clone()).expect("client").with_retry(
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
    );
    (c, metrics)
}

#[tokio::test]
async fn rate_limits_are_honoured_with_retry_after_ms_and_the_header() {
    let (url, hits, seen) = mock(vec![
        (429, json!({"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 300}), None),
        (429, json!({"errcode": "M_LIMIT_EXCEEDED"}), Some("1")),
        (200, json!({"event_id": "$sent"}), None),
    ])
    .await;
    let (c, metrics) = client(&url);
    let started = Instant::now();
    let sent = c
        .send_notice("!room:localhost", "@rs_1:localhost", &TxnId::derived("$cause", "t"), "Hallo")
        .await
        .expect("sent after the rate limit");
    assert_eq!(sent.event_id, "$sent");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert!(started.elapsed() >= Duration::from_millis(1300), "waited as told: {:?}", started.elapsed());
    assert_eq!(metrics.homeserver_retries.with_label_values(&["rate_limited"]).get(), 2);
    // Masquerading, the token and the same transaction ID on every retry.
    let seen = seen.lock().expect("lock").clone();
    assert!(
        seen.iter().all(|s| s.contains("user_id=%40rs_1%3Alocalhost") && s.ends_with("Bearer the-as-token")),
        "{seen:?}"
    );
    let first_path = seen[0].split('?').next().expect("path").to_owned();
    assert!(seen.iter().all(|s| s.starts_with(&first_path)), "same txn id on retry: {seen:?}");
    assert!(first_path.contains("/rooms/!room:localhost/send/m.room.message/assisto-"), "{first_path}");
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let (url, hits, _) = mock(vec![
        (502, json!({}), None),
        (500, json!({}), None),
        (200, json!({"room_id": "!r:localhost"}), None),
    ])
    .await;
    let (c, metrics) = client(&url);
    c.join_room("!r:localhost", "@assisto:localhost").await.expect("joined after two 5xx");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(metrics.homeserver_retries.with_label_values(&["server_error"]).get(), 2);

    let (url, hits, _) = mock(vec![(500, json!({"errcode": "M_UNKNOWN"}), None)]).await;
    let (c, _) = client(&url);
    let err = c.join_room("!r:localhost", "@assisto:localhost").await.expect_err("gives up");
    assert!(err.is_transient());
    assert_eq!(hits.load(Ordering::SeqCst), 4, "1 try + 3 retries");
}

#[tokio::test]
async fn refusals_are_not_retried_and_keep_their_errcode() {
    let (url, hits, _) = mock(vec![(403, json!({"errcode": "M_FORBIDDEN", "error": "no"}), None)]).await;
    let (c, _) = client(&url);
    let err = c.join_room("!r:localhost", "@assisto:localhost").await.expect_err("refused");
    assert_eq!(err.errcode(), Some("M_FORBIDDEN"));
    assert!(!err.is_transient());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unreachable_homeserver_fails_after_bounded_retries() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let (c, metrics) = client(&format!("http://127.0.0.1:{port}"));
    let err = c.versions().await.expect_err("unreachable");
    assert!(matches!(err, HsError::Transport(_)), "{err:?}");
    assert_eq!(metrics.homeserver_retries.with_label_values(&["connection"]).get(), 3);
    assert!(!err.to_string().contains("the-as-token"));
}
