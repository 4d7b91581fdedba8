//! The deletion routine: never before the deadline, nothing readable after it, resumable.

use std::time::Duration;

use assisto_appservice::{db::Db, domain::deletion::Deleter, homeserver::TxnId};
use assisto_tests::{
    eventually,
    matrix::{admin_token, enc, joined, TestUser},
    synapse, TestService,
};
use reqwest::Method;
use serde_json::{json, Value};

struct Scene {
    anna: TestUser,
    client: String,
    chat: String,
    group: String,
    media_id: String,
}

/// An institution with a short deletion period, a client with a chat (text and an image)
/// and a group message.
async fn scene(svc: &TestService, period_secs: i64) -> Scene {
    let inst = svc.institution("Loeschhaus").await;
    let (s, v) = svc
        .admin(
            Method::PUT,
            &format!("/institutions/{}/retention", inst.id),
            Some(json!({"deletion_period_secs": period_secs, "live_retention_secs": 86400})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let anna = svc.counsellor(&inst, "Anna Loesch").await;
    let client = svc.client(&inst, "Paula").await;
    let other = svc.client(&inst, "Otto").await;
    let hs = svc.hs_client();

    let (s, v) = anna.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let chat = v["room_id"].as_str().expect("room").to_owned();
    let (s, v) = anna.create_room_raw(json!({"name": "Gruppe", "invite": [client, other]})).await;
    assert_eq!(s, 200, "{v}");
    let group = v["room_id"].as_str().expect("room").to_owned();
    for room in [&chat, &group] {
        eventually("the client to join", Duration::from_secs(20), || async {
            joined(&anna, room).await.contains(&client).then_some(())
        })
        .await;
    }
    let text = |b: &str| json!({"msgtype": "m.text", "body": b});
    hs.send_event(&chat, &client, "m.room.message", &TxnId::random(), &text("Geheimnis im Einzelchat"))
        .await
        .expect("send");
    hs.send_event(&group, &client, "m.room.message", &TxnId::random(), &text("Gruppennachricht von Paula"))
        .await
        .expect("send");
    // The client's image, uploaded as the client (as the bridge will).
    let up: Value = reqwest::Client::new()
        .post(format!("{}/_matrix/media/v3/upload?user_id={}&filename=bild.png", synapse().url, enc(&client)))
        .bearer_auth(&svc.slot.as_token)
        .header("content-type", "image/png")
        .body(vec![0x89, b'P', b'N', b'G', 1, 2, 3, 4])
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload json");
    let uri = up["content_uri"].as_str().unwrap_or_else(|| panic!("upload failed: {up}")).to_owned();
    let media_id = uri.rsplit('/').next().expect("media id").to_owned();
    let image = json!({"msgtype": "m.image", "body": "bild.png", "url": uri});
    hs.send_event(&chat, &client, "m.room.message", &TxnId::random(), &image).await.expect("send image");
    // A document in the client file.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"%PDF-1.4 Hilfeplan Paula".to_vec()).file_name("Hilfeplan.pdf"),
    );
    let r = reqwest::Client::new()
        .post(format!("{}/_assisto/client-file/v1/clients/{}/documents", svc.url(), enc(&client)))
        .bearer_auth(anna.openid_token().await)
        .multipart(form)
        .send()
        .await
        .expect("upload a document");
    assert_eq!(r.status(), 201);
    assert_eq!(svc.stored_documents(), 1);
    // The service has seen the client's memberships.
    let db = svc.running().db.clone();
    eventually("memberships recorded", Duration::from_secs(20), || async {
        let rooms = assisto_appservice::db::members::rooms_of_user(&db, &client).await.ok()?;
        (rooms.contains(&chat) && rooms.contains(&group)).then_some(())
    })
    .await;
    Scene { anna, client, chat, group, media_id }
}

async fn admin_get(path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", synapse().url))
        .bearer_auth(admin_token().await)
        .send()
        .await
        .expect("admin request");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn count(db: &Db, sql: &str, arg: &str) -> i64 {
    sqlx::query_scalar(sql).bind(arg).fetch_one(db.pool()).await.expect(sql)
}

async fn assert_nothing_left(svc: &TestService, sc: &Scene) {
    // The client chat is purged: no member can read it, Synapse no longer knows it.
    let (s, _) = sc
        .anna
        .raw(Method::GET, &format!("/_matrix/client/v3/rooms/{}/messages?dir=b", enc(&sc.chat)), None)
        .await;
    assert!(s == 403 || s == 404, "client chat still readable: {s}");
    let (s, _) = admin_get(&format!("/_synapse/admin/v1/rooms/{}", enc(&sc.chat))).await;
    assert_eq!(s, 404, "the client chat must be purged");
    // In the group, the client's message is redacted.
    let (_, msgs) = sc
        .anna
        .raw(
            Method::GET,
            &format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100", enc(&sc.group)),
            None,
        )
        .await;
    assert!(
        !msgs.to_string().contains("Gruppennachricht von Paula"),
        "the client's group message must be redacted"
    );
    // Media gone, account deactivated and erased.
    let (_, media) = admin_get(&format!("/_synapse/admin/v1/users/{}/media", enc(&sc.client))).await;
    assert_eq!(media["total"], 0, "{media}");
    let (s, _) = sc
        .anna
        .raw(Method::GET, &format!("/_matrix/client/v1/media/download/localhost/{}", sc.media_id), None)
        .await;
    assert_eq!(s, 404, "the client's media must be gone");
    let (_, user) = admin_get(&format!("/_synapse/admin/v2/users/{}", enc(&sc.client))).await;
    assert_eq!((user["deactivated"].as_bool(), user["erased"].as_bool()), (Some(true), Some(true)), "{user}");
    // The project's own stores hold nothing of the client.
    let db = svc.running().db.clone();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM clients WHERE user_id = $1", &sc.client).await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM client_documents WHERE client = $1", &sc.client).await, 0);
    assert_eq!(svc.stored_documents(), 0, "the client's documents must be gone from the file store");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM room_members WHERE user_id = $1", &sc.client).await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inbox WHERE room_id = $1", &sc.chat).await, 0);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM dead_letters WHERE body LIKE '%' || $1 || '%'", &sc.client).await,
        0
    );
    let (_, audit) = svc.admin(Method::GET, "/audit?limit=500", None).await;
    let entry = audit
        .as_array()
        .expect("audit")
        .iter()
        .find(|e| e["action"] == "client.deleted")
        .cloned()
        .expect("audit entry");
    assert!(!entry.to_string().contains("Paula"), "no personal data in the audit entry: {entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_waits_for_its_deadline_and_then_leaves_nothing() {
    let mut svc = TestService::start_with(|c| c.deletion.check_interval_secs = 1).await;
    let sc = scene(&svc, 4).await;
    let (s, v) = svc.admin(Method::POST, &format!("/clients/{}/deletion", enc(&sc.client)), None).await;
    assert_eq!(s, 200, "{v}");
    // Before the deadline nothing happens.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (_, pending) = svc.admin(Method::GET, "/deletions?state=pending", None).await;
    assert!(pending.to_string().contains(&sc.client), "{pending}");
    assert_eq!(pending[0]["step"], "pending");
    let msgs = sc.anna.recent_messages(&assisto_tests::matrix::rid(&sc.chat), 20).await;
    assert!(msgs.iter().any(|(_, b)| b == "Geheimnis im Einzelchat"), "deleted before the deadline");
    assert_eq!(svc.stored_documents(), 1, "documents deleted before the deadline");
    // After it, everything goes.
    eventually("the deletion to finish", Duration::from_secs(90), || async {
        let (_, done) = svc.admin(Method::GET, "/deletions?state=finished", None).await;
        done.to_string().contains(&sc.client).then_some(())
    })
    .await;
    assert_nothing_left(&svc, &sc).await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_mark_can_be_undone_before_the_deadline() {
    let mut svc = TestService::start_with(|c| c.deletion.check_interval_secs = 1).await;
    let inst = svc.institution("Rueckgaengig").await;
    let client = svc.client(&inst, "Rita").await;
    let (s, _) = svc.admin(Method::POST, &format!("/clients/{}/deletion", enc(&client)), None).await;
    assert_eq!(s, 200);
    let (s, v) = svc.admin(Method::DELETE, &format!("/clients/{}/deletion", enc(&client)), None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = svc.admin(Method::DELETE, &format!("/clients/{}/deletion", enc(&client)), None).await;
    assert_eq!((s, v["errcode"].as_str()), (404, Some("M_NOT_FOUND")));
    let (_, pending) = svc.admin(Method::GET, "/deletions", None).await;
    assert!(!pending.to_string().contains(&client));
    let (_, clients) = svc.admin(Method::GET, &format!("/institutions/{}/clients", inst.id), None).await;
    assert!(clients.to_string().contains(&client), "the client stays");
    let (s, v) =
        svc.admin(Method::POST, &format!("/clients/{}/deletion", enc("@rs_nobody:localhost")), None).await;
    assert_eq!((s, v["errcode"].as_str()), (404, Some("M_NOT_FOUND")));
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_stopped_half_way_completes_after_a_restart() {
    // The routine runs only when started by hand here, until the restart.
    let mut svc = TestService::start_with(|c| c.deletion.check_interval_secs = 3600).await;
    let sc = scene(&svc, 1).await;
    let (s, _) = svc.admin(Method::POST, &format!("/clients/{}/deletion", enc(&sc.client)), None).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Two steps (redact, purge the client's rooms), then the process "dies".
    let db = svc.running().db.clone();
    let files = assisto_appservice::files::FileStore::open(&svc.config.files.dir).await.expect("file store");
    let deleter = Deleter::new(db.clone(), svc.hs_client(), files);
    assert!(!deleter.run(&sc.client, 2).await.expect("two steps"));
    let d = assisto_appservice::db::deletions::get(&db, &sc.client).await.expect("db").expect("row");
    assert_eq!(d.step, "rooms_purged");
    svc.stop().await;
    // At the next start the routine picks it up and finishes.
    svc.resume().await;
    eventually("the deletion to finish after the restart", Duration::from_secs(90), || async {
        let (_, done) = svc.admin(Method::GET, "/deletions?state=finished", None).await;
        done.to_string().contains(&sc.client).then_some(())
    })
    .await;
    assert_nothing_left(&svc, &sc).await;
    svc.stop().await;
}
