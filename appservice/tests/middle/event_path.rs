//! The event path under what a homeserver may legitimately send, and under what only a
//! hostile or broken one would: the stream is never blocked (every transaction gets its
//! answer, what cannot be recorded becomes a dead letter), nothing a rule needs is hidden
//! by its shape, and memory stays bounded however long the backlog.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use wiremock::{Request, ResponseTemplate};

use crate::{bot, Service, HS_TOKEN};

fn member(id: &str, room: &str, sender: &str, target: &str, membership: &str) -> Value {
    json!({"type": "m.room.member", "event_id": id, "room_id": room, "sender": sender, "state_key": target,
        "origin_server_ts": 1_700_000_000_000i64, "content": {"membership": membership}})
}

/// A transaction with one bot invite whose content carries `depth` levels of nesting
/// beside the membership, as JSON text (a `Value` that deep would overflow the test's own
/// stack when dropped).
fn deep_invite(id: &str, room: &str, depth: usize) -> String {
    let ev = member(id, room, "@anna:localhost", &bot(), "invite").to_string();
    let nested = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let ev = ev.replacen(r#""membership":"invite""#, &format!(r#""membership":"invite","x":{nested}"#), 1);
    format!(r#"{{"events":[{ev}]}}"#)
}

async fn push_text(svc: &Service, txn_id: &str, body: &str) -> (u16, Value) {
    svc.call_raw(Method::PUT, &format!("/_matrix/app/v1/transactions/{txn_id}"), Some(HS_TOKEN), body).await
}

/// The bot's joins of `room`.
async fn bot_joins(svc: &Service, room: &str) -> usize {
    let calls = svc.hs.calls("POST", &format!("/_matrix/client/v3/rooms/{room}/join")).await;
    calls.iter().filter(|r| r.user_id() == Some(bot().as_str())).count()
}

/// Dead letters of one transaction: (event_id, reason, whether a body was kept).
async fn dead_letters(svc: &Service, txn_id: &str) -> Vec<(Option<String>, String, bool)> {
    let rows: Vec<(Option<String>, String, Option<String>)> =
        sqlx::query_as("SELECT event_id, reason, body FROM dead_letters WHERE txn_id = $1 ORDER BY id")
            .bind(txn_id)
            .fetch_all(svc.db().pool())
            .await
            .expect("dead letters");
    rows.into_iter().map(|(e, r, b)| (e, r, b.is_some())).collect()
}

async fn inbox_count(svc: &Service, txn_id: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE txn_id = $1")
        .bind(txn_id)
        .fetch_one(svc.db().pool())
        .await
        .expect("inbox")
}

#[tokio::test]
async fn the_largest_transaction_synapse_can_send_is_recorded_whole() {
    let svc = Service::start().await;
    // 100 state events of 64 KiB with the 64 KiB they replaced, 100 ephemeral events under
    // both keys, 100 to-device messages: about 20 MB (the old limit was 7 MB).
    let big = "x".repeat(64 * 1024 - 200);
    let events: Vec<Value> = (0..100)
        .map(|i| {
            json!({"type": "de.example.gross", "event_id": format!("$big{i}"), "room_id": "!gross:localhost",
                "sender": "@anna:localhost", "state_key": format!("{i}"), "origin_server_ts": 1,
                "content": {"text": big}, "unsigned": {"prev_content": {"text": big}, "age": 5}})
        })
        .collect();
    let ephemeral: Vec<Value> = (0..100)
        .map(|i| json!({"type": "m.receipt", "room_id": "!gross:localhost", "content": {"pad": big, "i": i}}))
        .collect();
    let to_device: Vec<Value> = (0..100)
        .map(|i| {
            json!({"type": "m.room_key_request", "sender": "@anna:localhost",
            "to_user_id": bot(), "to_device_id": "ASSISTO", "content": {"pad": big, "i": i}})
        })
        .collect();
    let body = json!({"events": events, "ephemeral": ephemeral,
        "de.sorunome.msc2409.ephemeral": ephemeral, "de.sorunome.msc2409.to_device": to_device});
    let text = body.to_string();
    assert!(text.len() > 19_000_000, "{} bytes", text.len());
    let (s, v) = svc.call_raw(Method::PUT, "/_matrix/app/v1/transactions/gross", Some(HS_TOKEN), &text).await;
    assert_eq!((s, &v), (200, &json!({})));
    assert_eq!(inbox_count(&svc, "gross").await, 100, "every event recorded");
    assert!(dead_letters(&svc, "gross").await.is_empty());
    svc.finish().await;
}

#[tokio::test]
async fn a_transaction_over_the_limit_is_a_dead_letter_and_the_stream_goes_on() {
    let svc = Service::start_with(|c| c.appservice.max_body_bytes = 64 * 1024).await;
    let room = "!zuvoll:localhost";
    let pad = "x".repeat(70 * 1024);
    let mut invite = member("$zu-gross", room, "@anna:localhost", &bot(), "invite");
    invite["content"]["pad"] = json!(pad);
    assert_eq!(svc.push("7", json!([invite])).await, (200, json!({})), "acknowledged, not refused");
    let dead = dead_letters(&svc, "7").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].1.contains("exceeds appservice.max_body_bytes (65536)"), "{dead:?}");
    assert!(!dead[0].2, "nothing of its content is kept");
    assert_eq!(inbox_count(&svc, "7").await, 0);

    // Sent again (the homeserver did not get the answer): still one dead letter.
    let mut again = member("$zu-gross", room, "@anna:localhost", &bot(), "invite");
    again["content"]["pad"] = json!(pad);
    assert_eq!(svc.push("7", json!([again])).await.0, 200);
    assert_eq!(dead_letters(&svc, "7").await.len(), 1);

    // The next transaction is processed as usual.
    assert_eq!(
        svc.push("8", json!([member("$klein", room, "@anna:localhost", &bot(), "invite")])).await.0,
        200
    );
    svc.hs.wait_for("POST", &format!("/_matrix/client/v3/rooms/{room}/join"), 1).await;
    svc.finish().await;
}

#[tokio::test]
async fn an_event_nested_as_deep_as_synapse_accepts_still_reaches_the_rules() {
    let svc = Service::start().await;
    // Synapse accepts content nested up to Python's recursion limit (about 1,000 levels);
    // serde_json alone stops at 128. The invite must be acted on, not dead-lettered.
    let room = "!tief:localhost";
    assert_eq!(push_text(&svc, "1", &deep_invite("$tief", room, 900)).await, (200, json!({})));
    svc.hs.wait_for("POST", &format!("/_matrix/client/v3/rooms/{room}/join"), 1).await;
    assert_eq!(bot_joins(&svc, room).await, 1);
    assert!(dead_letters(&svc, "1").await.is_empty());
    // Up to the limit we accept (2,048 levels, for a Synapse with a raised recursion limit).
    let room = "!tiefer:localhost";
    assert_eq!(push_text(&svc, "1b", &deep_invite("$tiefer", room, 2040)).await, (200, json!({})));
    svc.hs.wait_for("POST", &format!("/_matrix/client/v3/rooms/{room}/join"), 1).await;
    assert!(dead_letters(&svc, "1b").await.is_empty());

    // Deeper than any homeserver sends (and than could be dropped safely): a dead letter
    // that says why, and the stream goes on.
    let deeper = "!zutief:localhost";
    assert_eq!(push_text(&svc, "2", &deep_invite("$zutief", deeper, 5000)).await, (200, json!({})));
    let dead = dead_letters(&svc, "2").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].1.contains("levels deep"), "{dead:?}");
    assert_eq!(bot_joins(&svc, deeper).await, 0);
    svc.finish().await;
}

#[tokio::test]
async fn odd_ids_and_odd_bodies_get_clear_answers() {
    let svc = Service::start().await;
    let room = "!ids:localhost";
    // Event IDs over the spec's 255 bytes and IDs with a NUL become dead letters; the rest
    // of the transaction is recorded. A NUL in the transaction ID is stored escaped.
    let long = format!("${}", "a".repeat(300));
    let events = json!([
        member(&long, room, "@anna:localhost", &bot(), "invite"),
        member("$nul\u{0}id", room, "@anna:localhost", &bot(), "invite"),
        member("$ok", room, "@anna:localhost", &bot(), "invite"),
    ]);
    assert_eq!(svc.push("a%00b", events).await, (200, json!({})));
    let dead = dead_letters(&svc, "a\\u0000b").await;
    let reasons: Vec<&str> = dead.iter().map(|d| d.1.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{dead:?}");
    assert!(reasons[0].contains("more than 255"), "{reasons:?}");
    assert!(reasons[1].contains("control character"), "{reasons:?}");
    assert_eq!(dead[1].0.as_deref(), Some("$nul\\u0000id"), "the ID is kept, escaped");
    assert_eq!(inbox_count(&svc, "a\\u0000b").await, 1);
    svc.hs.wait_for("POST", &format!("/_matrix/client/v3/rooms/{room}/join"), 1).await;

    // An array is not a transaction (serde would read a struct from one).
    let path = "/_matrix/app/v1/transactions/9";
    let (s, v) = svc.call_raw(Method::PUT, path, Some(HS_TOKEN), r#"[[]]"#).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_BAD_JSON")), "{v}");

    // The Bearer scheme is case-insensitive (RFC 7235).
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = reqwest::Client::new()
            .put(format!("{}{path}", svc.base))
            .header("authorization", format!("{scheme} {HS_TOKEN}"))
            .json(&json!({"events": []}))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 200, "{scheme}");
    }
    let r = reqwest::Client::new()
        .put(format!("{}{path}", svc.base))
        .header("authorization", format!("Basic {HS_TOKEN}"))
        .json(&json!({"events": []}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 403, "another scheme is refused");
    svc.finish().await;
}

#[tokio::test]
async fn an_unreachable_homeserver_is_a_502_for_the_user_query_too() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let svc = Service::start_with(|c| c.homeserver.url = dead).await;
    let path = format!("/_matrix/app/v1/users/{}", crate::enc(&bot()));
    let (s, v) = svc.call(Method::GET, &path, Some(HS_TOKEN), None).await;
    assert_eq!((s, v["errcode"].as_str()), (502, Some("M_UNKNOWN")), "{v}");
    svc.finish().await;
}

#[tokio::test]
async fn a_missing_admin_token_is_a_configuration_error() {
    let svc = Service::start_with(|c| c.homeserver.admin_token = None).await;
    let (s, v) =
        svc.admin(Method::POST, "/institutions", Some(json!({"id": "nord", "name": "Beratung Nord"}))).await;
    assert_eq!(s, 201, "{v}");
    let body = json!({"localpart": "anna", "display_name": "Anna", "password": "ein-langes-passwort"});
    let (s, v) = svc.admin(Method::POST, "/institutions/nord/counsellors", Some(body)).await;
    assert_eq!(s, 500, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("homeserver.admin_token")), "{v}");
    svc.finish().await;
}

#[tokio::test]
async fn a_long_backlog_is_read_in_a_bounded_window() {
    const WINDOW: usize = 20;
    let hs = crate::mock_hs::MockHomeserver::start().await;
    // Every room's first event waits on the homeserver (the bot's join).
    hs.mock_join()
        .respond_with(|r: &Request| {
            let room = crate::mock_hs::Seen::from_request(r).segment(4).to_owned();
            ResponseTemplate::new(200)
                .set_body_json(json!({ "room_id": room }))
                .set_delay(Duration::from_millis(40))
        })
        .priority(1)
        .mount()
        .await;
    let svc = Service::start_on(hs, |c| {
        c.processing.window_events = WINDOW;
        c.processing.concurrency = 8;
    })
    .await;
    // 200 rooms, 10 invites per transaction, pushed at once.
    for t in 0..20 {
        let events: Vec<Value> = (0..10)
            .map(|i| {
                let n = t * 10 + i;
                member(&format!("$b{n}"), &format!("!r{n}:localhost"), "@anna:localhost", &bot(), "invite")
            })
            .collect();
        assert_eq!(svc.push(&format!("{t}"), json!(events)).await.0, 200);
    }
    let mut most = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        most = most.max(svc.metrics().in_memory.get());
        let joined = svc.hs.calls("POST", "/_matrix/client/v3/rooms/*/join").await.len();
        if joined >= 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {joined} of 200 joined");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // One hand-over (a transaction of 10) may overshoot the window.
    assert!(most > 0 && most <= (WINDOW + 10) as i64, "{most} events were in memory at once");
    svc.finish().await;
}
