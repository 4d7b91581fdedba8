//! The application-service API answers as the spec says, and only to the homeserver.

use assisto_tests::{message_event, TestService};
use serde_json::{json, Value};

async fn call(method: reqwest::Method, url: &str, token: Option<&str>, body: Option<String>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_tokens_never_reach_a_handler() {
    let mut svc = TestService::start().await;
    let base = format!("{}/_matrix/app/v1", svc.url());
    let token = svc.slot.hs_token.clone();
    let txn =
        json!({"events": [message_event("$authcheck", "!r:localhost", "@c_x:localhost", "x")]}).to_string();
    let put = reqwest::Method::PUT;

    let (s, v) = call(put.clone(), &format!("{base}/transactions/1"), None, Some(txn.clone())).await;
    assert_eq!((s, v["errcode"].as_str()), (401, Some("M_UNAUTHORIZED")));
    let (s, v) = call(put.clone(), &format!("{base}/transactions/1"), Some("wrong"), Some(txn.clone())).await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
    // A token of the same length but different content.
    let same_len: String = token.chars().rev().collect();
    let (s, _) =
        call(put.clone(), &format!("{base}/transactions/1"), Some(&same_len), Some(txn.clone())).await;
    assert_eq!(s, 403);
    // The legacy query parameter alone is refused, even with the right token.
    let (s, v) =
        call(put.clone(), &format!("{base}/transactions/1?access_token={token}"), None, Some(txn.clone()))
            .await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")));
    // … and when it disagrees with the header.
    let (s, _) = call(
        put.clone(),
        &format!("{base}/transactions/1?access_token=other"),
        Some(&token),
        Some(txn.clone()),
    )
    .await;
    assert_eq!(s, 403);
    // Other endpoints are guarded the same way.
    let (s, _) =
        call(reqwest::Method::GET, &format!("{base}/users/%40x%3Alocalhost"), Some("wrong"), None).await;
    assert_eq!(s, 403);
    let (s, _) = call(reqwest::Method::POST, &format!("{base}/ping"), None, Some("{}".into())).await;
    assert_eq!(s, 401);

    // Nothing of the refused requests was recorded.
    let db = svc.running().db.clone();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE room_id = '!r:localhost'")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(n, 0, "a refused transaction must not be recorded");

    // The header, and the header with an equal query parameter, are accepted.
    let (s, _) =
        call(put.clone(), &format!("{base}/transactions/1?access_token={token}"), Some(&token), Some(txn))
            .await;
    assert_eq!(s, 200);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE room_id = '!r:localhost'")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(n, 1);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_answer_as_the_spec_says() {
    let mut svc = TestService::start().await;
    let base = format!("{}/_matrix/app/v1", svc.url());
    let t = Some(svc.slot.hs_token.as_str());
    let get = reqwest::Method::GET;

    let (s, v) =
        call(reqwest::Method::POST, &format!("{base}/ping"), t, Some(r#"{"transaction_id":"x"}"#.into()))
            .await;
    assert_eq!((s, v), (200, json!({})));
    let (s, v) = call(get.clone(), &format!("{base}/users/%40nobody%3Alocalhost"), t, None).await;
    assert_eq!((s, v["errcode"].as_str()), (404, Some("M_NOT_FOUND")));
    let bot = svc.bot().replace('@', "%40").replace(':', "%3A");
    let (s, v) = call(get.clone(), &format!("{base}/users/{bot}"), t, None).await;
    assert_eq!((s, v), (200, json!({})), "the bot exists on demand");
    let (s, v) = call(get.clone(), &format!("{base}/rooms/%23x%3Alocalhost"), t, None).await;
    assert_eq!((s, v["errcode"].as_str()), (404, Some("M_NOT_FOUND")));
    for path in [
        "thirdparty/protocol/irc",
        "thirdparty/user/irc",
        "thirdparty/location/irc",
        "thirdparty/user?userid=%40a%3Alocalhost",
        "thirdparty/location?alias=%23a%3Alocalhost",
    ] {
        let (s, v) = call(get.clone(), &format!("{base}/{path}"), t, None).await;
        assert_eq!((s, v["errcode"].as_str()), (404, Some("M_NOT_FOUND")), "{path}");
    }
    let (s, v) = call(get.clone(), &format!("{base}/no/such/endpoint"), t, None).await;
    assert_eq!((s, v["errcode"].as_str()), (404, Some("M_UNRECOGNIZED")));
    let (s, v) = call(get.clone(), &format!("{}/_matrix/other", svc.url()), None, None).await;
    assert_eq!((s, v["errcode"].as_str()), (404, Some("M_UNRECOGNIZED")));
    let (s, v) = call(get.clone(), &format!("{base}/transactions/1"), t, None).await;
    assert_eq!((s, v["errcode"].as_str()), (405, Some("M_UNRECOGNIZED")));

    let put = reqwest::Method::PUT;
    let (s, v) = call(put.clone(), &format!("{base}/transactions/2"), t, Some("{not json".into())).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_NOT_JSON")));
    let (s, v) =
        call(put.clone(), &format!("{base}/transactions/3"), t, Some(r#"{"evnts": []}"#.into())).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_BAD_JSON")));
    let (s, v) =
        call(put.clone(), &format!("{base}/transactions/4"), t, Some(r#"{"events": {}}"#.into())).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_BAD_JSON")));

    // 100 events of 64 KiB each fit; a body far beyond that is refused with M_TOO_LARGE.
    let big = "x".repeat(64 * 1024 - 300);
    let events: Vec<Value> = (0..100)
        .map(|i| message_event(&format!("$big{i}"), "!big:localhost", "@c_x:localhost", &big))
        .collect();
    let (s, _) =
        call(put.clone(), &format!("{base}/transactions/5"), t, Some(json!({"events": events}).to_string()))
            .await;
    assert_eq!(s, 200, "100 events of 64 KiB must be accepted");
    let huge = "y".repeat(svc.config.appservice.max_body_bytes + 1);
    let (s, v) =
        call(put, &format!("{base}/transactions/6"), t, Some(json!({"events": [], "pad": huge}).to_string()))
            .await;
    // Over the limit: not refused (the homeserver would retry it forever) but recorded as
    // one dead letter, without its content.
    assert_eq!((s, &v), (200, &json!({})));
    let db = svc.running().db.clone();
    let dead: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT reason, body FROM dead_letters WHERE txn_id = '6'")
            .fetch_all(db.pool())
            .await
            .expect("dead letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].0.contains("exceeds appservice.max_body_bytes") && dead[0].1.is_none(), "{dead:?}");

    let (s, v) = call(get.clone(), &format!("{}/health", svc.url()), None, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["database"], "ok");
    assert_eq!(v["homeserver"], "ok");
    let metrics =
        reqwest::get(format!("{}/metrics", svc.url())).await.expect("metrics").text().await.expect("text");
    for name in [
        "assisto_transactions_total",
        "assisto_events_received_total",
        "assisto_inbox_depth",
        "assisto_processing_latency_seconds_bucket",
        "assisto_dead_letters_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homeserver_ping_round_trip_works() {
    let mut svc = TestService::start().await;
    let hs = assisto_appservice::matrix::homeserver::HomeserverClient::new(
        &svc.config.homeserver,
        svc.slot.as_token.clone(),
        assisto_appservice::app::metrics::Metrics::new(),
    )
    .expect("client");
    // Synapse calls our /ping with its hs_token and reports the round trip.
    hs.ping_via_homeserver(&svc.slot.id).await.expect("Synapse reached the service with the right token");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_an_id_or_the_transaction_id_never_blocks_the_stream() {
    // PostgreSQL cannot store NUL in text; a transaction with one used to fail whole (500,
    // retried forever). Such events are dead letters, the rest is recorded, the answer 200
    // — on SQLite and on PostgreSQL (TEST_POSTGRES_URL).
    let mut svc = TestService::start().await;
    let hs = svc.as_homeserver();
    let events = json!({"events": [
        message_event("$nul\u{0}event", "!nul:localhost", "@c_x:localhost", "x"),
        message_event("$nulroom", "!nul\u{0}:localhost", "@c_x:localhost", "x"),
        message_event("$nulgood", "!nul:localhost", "@c_x:localhost", "x"),
    ]});
    let (s, v) = hs.push("nul%00txn", &events).await;
    assert_eq!((s, &v), (200, &json!({})));
    let db = svc.running().db.clone();
    let stored: Vec<String> = sqlx::query_scalar("SELECT event_id FROM inbox WHERE txn_id = $1")
        .bind("nul\\u0000txn")
        .fetch_all(db.pool())
        .await
        .expect("inbox");
    assert_eq!(stored, vec!["$nulgood".to_owned()]);
    let dead: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT event_id, reason FROM dead_letters WHERE txn_id = $1 ORDER BY id")
            .bind("nul\\u0000txn")
            .fetch_all(db.pool())
            .await
            .expect("dead letters");
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].0.as_deref(), Some("$nul\\u0000event"));
    assert!(dead.iter().all(|(_, r)| r.contains("control character")), "{dead:?}");
    // The same transaction again is a replay: nothing doubled.
    assert_eq!(hs.push("nul%00txn", &events).await.0, 200);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters WHERE txn_id = $1")
        .bind("nul\\u0000txn")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(n, 2);
    svc.stop().await;
}
