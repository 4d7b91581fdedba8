//! The dashboard's counters against the real homeserver: a counsellor's unread messages per
//! category and status, as a Server-Sent Events stream that changes when a message arrives,
//! when it is read, and when the status is set; and who may read them.

use std::time::Duration;

use assisto_appservice::matrix::homeserver::TxnId;
use assisto_tests::{
    eventually,
    matrix::{enc, rid, TestUser},
    TestService,
};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

/// An open counters stream: the `counts` events as they come.
struct Stream {
    body: futures::stream::BoxStream<'static, reqwest::Result<String>>,
    buffer: String,
}

impl Stream {
    async fn open(svc: &TestService, user: &TestUser) -> Self {
        let r = reqwest::Client::new()
            .get(format!("{}/_assisto/counters/v1/stream", svc.url()))
            .bearer_auth(user.openid_token().await)
            .send()
            .await
            .expect("stream");
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/event-stream"));
        let body = r.bytes_stream().map(|c| c.map(|b| String::from_utf8_lossy(&b).into_owned())).boxed();
        Stream { body, buffer: String::new() }
    }

    /// The next `counts` event.
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if frame.lines().any(|l| l == "event: counts") {
                    let data = frame.lines().find_map(|l| l.strip_prefix("data: ")).expect("data");
                    return serde_json::from_str(data).expect("json");
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.body.next())
                .await
                .expect("an event within 20 s")
                .expect("the stream is open")
                .expect("bytes");
            self.buffer.push_str(&chunk);
        }
    }

    /// Waits until an event satisfies `want`; answers it.
    async fn until(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..20 {
            let v = self.next().await;
            if want(&v) {
                return v;
            }
        }
        panic!("no counts event with {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counters_stream_changes_when_a_message_arrives_is_read_and_the_status_changes() {
    let svc = TestService::start().await;
    let inst = svc.institution("Zählerhaus").await;
    let anna = svc.counsellor(&inst, "Anna Zaehler").await;
    let ben = svc.counsellor(&inst, "Ben Zaehler").await;
    let client = svc.client(&inst, "Klara Klient").await;
    let (s, v) = anna.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let chat = v["room_id"].as_str().expect("room").to_owned();
    let (s, v) = ben.create_room_raw(json!({"invite": [anna.user_id], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let colleague = v["room_id"].as_str().expect("room").to_owned();
    let (s, v) = anna
        .raw(Method::POST, &format!("/_matrix/client/v3/join/{}", enc(&colleague)), Some(json!({})))
        .await;
    assert_eq!(s, 200, "{v}");
    eventually("the client in the chat", Duration::from_secs(20), || async {
        anna.joined_members(&rid(&chat)).await.contains(&client).then_some(())
    })
    .await;

    let mut stream = Stream::open(&svc, &anna).await;
    let first = stream.next().await;
    assert_eq!(first["user_id"], anna.user_id.as_str(), "{first}");
    assert_eq!(first["total"], 0, "{first}");
    assert_eq!(first["status"], "not_online", "{first}");

    // The client writes (as the web embed does, through the puppet): Ratsuchende 1.
    let hs = svc.hs_client();
    let text = |b: &str| json!({"msgtype": "m.text", "body": b});
    let sent = hs
        .send_event(&chat, &client, "m.room.message", &TxnId::random(), &text("Hallo, sind Sie da?"))
        .await
        .expect("send");
    let v = stream.until("a client message", |v| v["unread"]["clients"] == 1).await;
    assert_eq!((v["total"].clone(), v["unread"]["colleagues"].clone()), (json!(1), json!(0)), "{v}");
    // A colleague writes: Kolleg:innen 1, together 2.
    ben.send_text(&rid(&colleague), "Hast du kurz Zeit?").await;
    let v = stream.until("a colleague's message", |v| v["unread"]["colleagues"] == 1).await;
    assert_eq!(v["total"], 2, "{v}");
    // Anna reads the client chat: back to 0 there.
    let (s, r) = anna
        .raw(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/receipt/m.read/{}", enc(&chat), enc(&sent.event_id)),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let v = stream.until("the chat read", |v| v["unread"]["clients"] == 0).await;
    assert_eq!(v["total"], 1, "{v}");
    // Her status, set through the admin API (the dashboard's way).
    svc.set_status(&anna.user_id, "busy").await;
    let v = stream.until("the status", |v| v["status"] == "busy").await;
    assert_eq!(v["total"], 1, "{v}");
    // The one-off read agrees.
    let (s, counts) = assisto_tests::api::OpenIdApi::of(&svc, &anna, "counters/v1")
        .await
        .call(Method::GET, "/counts", None)
        .await;
    assert_eq!(
        (s, counts["total"].clone(), counts["status"].clone()),
        (200, json!(1), json!("busy")),
        "{counts}"
    );

    // Who may: a counsellor only; no token, no counters.
    let plain = TestUser::new(&format!("niemand{}", &uuid::Uuid::new_v4().simple().to_string()[..8])).await;
    let (s, v) = assisto_tests::api::OpenIdApi::of(&svc, &plain, "counters/v1")
        .await
        .call(Method::GET, "/counts", None)
        .await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{v}");
    let r = reqwest::Client::new()
        .get(format!("{}/_assisto/counters/v1/stream", svc.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
}
