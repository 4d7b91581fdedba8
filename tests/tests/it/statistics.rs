//! Statistics against the real homeserver: the test causes chats, a live chat, monitorings
//! and notes, and recomputes the figures the service reports — suppressed below the
//! threshold, exact with a threshold of 1; per institution, department and counsellor;
//! only institution admins, only their own institution; bad periods; the CSV.

use std::time::{Duration, Instant};

use assisto_tests::{
    api::OpenIdApi,
    embed::Visitor,
    eventually,
    matrix::{enc, TestUser},
    TestService,
};
use reqwest::Method;
use serde_json::{json, Value};

async fn make_admin(svc: &TestService, c: &TestUser) {
    let path = format!("/counsellors/{}/institution-admin", enc(&c.user_id));
    let (s, v) = svc.admin(Method::PUT, &path, Some(json!({"institution_admin": true}))).await;
    assert_eq!(s, 200, "{v}");
}

/// The two days up to today (so that the test does not depend on the hour it runs at).
fn period() -> String {
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Berlin).date_naive();
    format!("from={}&to={today}", today - chrono::Duration::days(1))
}

/// The statistics as `api`'s user, for the query string `q`.
async fn get(api: &OpenIdApi, q: String) -> (u16, Value) {
    api.call(Method::GET, &format!("/statistics?{q}"), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_count_what_happened_and_suppress_small_numbers() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Statistikhaus").await;
    let south = svc.institution("Statistik Süd").await;
    let familie = svc.department(&inst, "Familie").await;
    let anna = svc.counsellor_in(&inst, "Anna Zahl", &[&familie]).await;
    let ben = svc.counsellor_in(&inst, "Ben Zahl", &[&familie]).await;
    let carl = svc.counsellor(&inst, "Carl Zahl").await;
    let otto = svc.counsellor(&south, "Otto Zahl").await;
    make_admin(&svc, &anna).await;
    make_admin(&svc, &otto).await;

    // What happens: Anna's six client chats, Ben's colleague chat with Carl, one live chat
    // Anna takes, six monitorings (five on one subject), two notes.
    let mut clients = Vec::new();
    for i in 0..6 {
        clients.push(svc.client_chat(&inst, &anna, &format!("Klient {i}")).await.1);
    }
    let (s, v) = ben.create_room_raw(json!({"invite": [carl.user_id], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    svc.set_status(&anna.user_id, "online").await;
    let visitor = Visitor::anonymous(&svc, &inst.id, None).await;
    let before_queue = Instant::now();
    assert_eq!(visitor.send("v1", "Hallo").await.0, 201);
    let (_, chats) = svc.admin(Method::GET, &format!("/institutions/{}/live-chats", inst.id), None).await;
    let live = chats[0]["room_id"].as_str().expect("live chat").to_owned();
    let (s, v) =
        anna.raw(Method::POST, &format!("/_matrix/client/v3/join/{}", enc(&live)), Some(json!({}))).await;
    assert_eq!(s, 200, "taking the live chat: {v}");
    let waited_at_most = before_queue.elapsed().as_millis() as i64 + 1000;
    let file = OpenIdApi::of(&svc, &anna, "client-file/v1").await;
    for (subject, minutes) in [
        ("Schulden", 30),
        ("Schulden", 30),
        ("Schulden", 30),
        ("Schulden", 30),
        ("Schulden", 30),
        ("Wohnen", 45),
    ] {
        let path = format!("/clients/{}/monitorings", enc(&clients[0]));
        let (s, v) = file
            .call(Method::POST, &path, Some(json!({"duration_minutes": minutes, "subject": subject})))
            .await;
        assert!((200..300).contains(&s), "monitoring: {s} {v}");
    }
    for text in ["Erstes Gespräch", "Zweites Gespräch"] {
        let (s, v) = file
            .call(Method::POST, &format!("/clients/{}/notes", enc(&clients[1])), Some(json!({"text": text})))
            .await;
        assert!((200..300).contains(&s), "note: {s} {v}");
    }

    let a = OpenIdApi::of(&svc, &anna, "statistics/v1").await;
    // Suppressed: from 1 to 4 is "< 5"; sums of fewer are null; a rare subject is "Weitere".
    let v = eventually("the rooms to be recorded", Duration::from_secs(20), || async {
        let (s, v) = get(&a, period()).await;
        (s == 200 && v["chats"]["clients"]["started"] == 6 && v["chats"]["colleagues"]["started"] == "< 5")
            .then_some(v)
    })
    .await;
    assert_eq!(v["institution"], inst.id.as_str());
    assert_eq!(v["min_count"], 5);
    assert_eq!(v["chats"]["live"]["started"], "< 5", "{v}");
    assert_eq!(v["live"]["taken"], "< 5", "{v}");
    assert_eq!(v["live"]["wait_ms"]["p50"], Value::Null, "one wait is too few to show: {v}");
    assert_eq!(v["monitorings"]["count"], 6, "{v}");
    assert_eq!(v["monitorings"]["minutes"], 195, "{v}");
    assert_eq!(
        v["monitorings"]["by_subject"][0],
        json!({"subject": "Schulden", "count": 5, "minutes": 150}),
        "{v}"
    );
    assert_eq!(
        v["monitorings"]["by_subject"][1],
        json!({"subject": "Weitere", "count": "< 5", "minutes": null}),
        "{v}"
    );
    assert!(!v.to_string().contains("Wohnen"), "a subject of one is not named: {v}");
    assert_eq!(v["notes"], "< 5");
    assert_eq!(v["days"].as_array().map(Vec::len), Some(2));
    assert!(!v.to_string().contains("Klient"), "no client names: {v}");

    // Per department and counsellor.
    let (_, d) = get(&a, format!("{}&department={familie}", period())).await;
    assert_eq!(
        (d["chats"]["clients"]["started"].clone(), d["department"].clone()),
        (json!(6), json!(familie)),
        "{d}"
    );
    let (_, b) = get(&a, format!("{}&counsellor={}", period(), enc(&ben.user_id))).await;
    assert_eq!(b["chats"]["clients"]["started"], 0, "Ben made no client chat: {b}");
    assert_eq!(b["monitorings"]["count"], 0, "{b}");

    // Who may: only the institution's admins, only their own institution.
    let (s, v) = get(&OpenIdApi::of(&svc, &carl, "statistics/v1").await, period()).await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{v}");
    let o = OpenIdApi::of(&svc, &otto, "statistics/v1").await;
    let (s, v) = get(&o, format!("counsellor={}", enc(&anna.user_id))).await;
    assert_eq!(s, 403, "another institution's counsellor: {v}");
    let (s, v) = get(&o, format!("department={familie}")).await;
    assert_eq!(s, 403, "another institution's department: {v}");
    let (s, v) = get(&o, period()).await;
    assert_eq!((s, v["chats"]["clients"]["started"].clone()), (200, json!(0)), "Otto sees his own: {v}");
    let (s, _) = get(&a, "department=gibt-es-nicht".into()).await;
    assert_eq!(s, 404);
    for (q, why) in [
        ("from=03.11.2026", "German date"),
        ("from=2026-11-05&to=2026-11-04", "from after to"),
        ("from=2024-01-01&to=2026-11-04", "too long"),
        ("format=xml", "unknown format"),
        ("zeitraum=1", "unknown parameter"),
    ] {
        let (s, v) = get(&a, q.into()).await;
        assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{why}: {v}");
    }

    // The CSV, through the admin API (the dashboard's way).
    let r = reqwest::Client::new()
        .get(format!(
            "{}/_assisto/admin/v1/institutions/{}/statistics?{}&format=csv",
            svc.url(),
            inst.id,
            period()
        ))
        .bearer_auth(assisto_tests::ADMIN_API_TOKEN)
        .send()
        .await
        .expect("csv");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/csv"));
    let body = r.text().await.expect("body");
    assert!(body.starts_with('\u{feff}'), "a BOM for German Excel");
    assert!(body.contains("Chats clients;begonnen;6\r\n"), "{body}");
    assert!(body.contains("Chats colleagues;begonnen;< 5\r\n"), "{body}");

    // With a threshold of 1 every figure is exact, and the test can recompute them.
    svc.stop().await;
    svc.config.statistics.min_count = 1;
    svc.resume().await;
    let (s, v) =
        svc.admin(Method::GET, &format!("/institutions/{}/statistics?{}", inst.id, period()), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["chats"]["colleagues"]["started"], 1, "{v}");
    assert_eq!((v["live"]["queued"].clone(), v["live"]["taken"].clone()), (json!(1), json!(1)), "{v}");
    let wait = v["live"]["wait_ms"]["p50"].as_i64().expect("a wait");
    assert!((0..=waited_at_most).contains(&wait), "waited {wait} ms, at most {waited_at_most}");
    assert_eq!(
        v["monitorings"]["by_subject"][1],
        json!({"subject": "Wohnen", "count": 1, "minutes": 45}),
        "{v}"
    );
    assert_eq!(v["notes"], 2);
    let started: i64 =
        v["days"].as_array().expect("days").iter().map(|d| d["chats_started"].as_i64().unwrap_or(0)).sum();
    assert_eq!(started, 8, "six client chats, a colleague chat and a live chat: {v}");
    svc.stop().await;
}
