//! The deletion routine: never before the deadline, nothing readable after it, resumable.

use std::time::Duration;

use assisto_appservice::store::Db;

use assisto_appservice::features::deletion::Deleter;

use assisto_appservice::matrix::homeserver::TxnId;
use assisto_bridge::token::{sign, Claims};
use assisto_tests::{
    captured_log, eventually,
    matrix::{admin_token, enc, joined, TestUser},
    synapse, traces, TestService,
};
use reqwest::Method;
use serde_json::{json, Value};

struct Scene {
    anna: TestUser,
    client: String,
    chat: String,
    group: String,
    /// The client's upload (through the embed) and the counsellor's upload into the chat.
    media_ids: Vec<String>,
    /// The marker text, the client's name and the site's ID: none of them may be found
    /// anywhere after the routine.
    needles: Vec<String>,
}

fn search_dir(svc: &TestService) -> std::path::PathBuf {
    svc.config.search_dir().expect("search dir")
}

fn tag(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// An institution with a short deletion period and a client the institution's site logged
/// in (the site's ID), whose name and a marker text are everywhere: the client chat (text,
/// the client's file, a counsellor's file), a group message, and the client file (master
/// data, note, monitoring, document).
async fn scene(svc: &TestService, period_secs: i64) -> Scene {
    let (marker, name_tag, site_tag) = (tag("Mk"), tag("Nm"), tag("Si"));
    let name = format!("Paula {name_tag}");
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
    svc.set_status(&anna.user_id, "online").await;
    let other = svc.client(&inst, "Otto").await;
    let hs = svc.hs_client();
    let http = reqwest::Client::new();
    let embed = format!("{}/_assisto/embed/v1", svc.url());

    // The client logs in on the institution's site: a signed token with the site's ID.
    let (s, v) = svc.admin(Method::POST, &format!("/institutions/{}/embed-secret", inst.id), None).await;
    assert_eq!(s, 200, "{v}");
    let claims = Claims {
        inst: inst.id.clone(),
        sub: format!("kunde-{site_tag}"),
        name: name.clone(),
        exp: chrono::Utc::now().timestamp() + 600,
    };
    let token = sign(v["secret"].as_str().expect("secret").as_bytes(), &claims);
    let r = http
        .post(format!("{embed}/institutions/{}/sessions", inst.id))
        .json(&json!({"area": "registered", "form": "tile", "token": token}))
        .send()
        .await
        .expect("open a session");
    assert_eq!(r.status(), 201);
    let session: Value = r.json().await.expect("session json");
    let session = session["session"].as_str().expect("session").to_owned();
    let db = svc.running().db.clone();
    let client: String = sqlx::query_scalar("SELECT client FROM client_identities WHERE external_id = $1")
        .bind(&claims.sub)
        .fetch_one(db.pool())
        .await
        .expect("the site's client");
    let chat: String = eventually("the client chat", Duration::from_secs(20), || async {
        sqlx::query_scalar("SELECT room_id FROM embed_conversations WHERE client = $1")
            .bind(&client)
            .fetch_optional(db.pool())
            .await
            .ok()
            .flatten()
    })
    .await;
    let (s, v) =
        anna.raw(Method::POST, &format!("/_matrix/client/v3/join/{}", enc(&chat)), Some(json!({}))).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = anna.create_room_raw(json!({"name": "Gruppe", "invite": [client, other]})).await;
    assert_eq!(s, 200, "{v}");
    let group = v["room_id"].as_str().expect("room").to_owned();
    eventually("the client to join the group", Duration::from_secs(20), || async {
        joined(&anna, &group).await.contains(&client).then_some(())
    })
    .await;

    // The client writes and sends a file through the embed (as the bridge does).
    let r = http
        .post(format!("{embed}/messages"))
        .bearer_auth(&session)
        .json(&json!({"txn_id": "m1", "text": format!("Geheimnis im Einzelchat {marker}")}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(marker.as_bytes());
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(png).file_name(format!("bild-{marker}.png")));
    let r = http
        .post(format!("{embed}/files"))
        .bearer_auth(&session)
        .multipart(form)
        .send()
        .await
        .expect("files");
    assert_eq!(r.status(), 201);
    let text = |b: String| json!({"msgtype": "m.text", "body": b});
    hs.send_event(
        &group,
        &client,
        "m.room.message",
        &TxnId::random(),
        &text(format!("Gruppennachricht {marker}")),
    )
    .await
    .expect("send");
    // A counsellor's file in the client chat (uploaded as Element does, name in the URL).
    let file_name = format!("{marker}-Bericht.pdf");
    let up: Value = http
        .post(format!("{}/_matrix/media/v3/upload?filename={}", synapse().url, enc(&file_name)))
        .bearer_auth(anna.client.access_token().expect("token"))
        .header("content-type", "application/pdf")
        .body(format!("%PDF-1.4 Bericht {marker}"))
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload json");
    let uri = up["content_uri"].as_str().unwrap_or_else(|| panic!("upload failed: {up}")).to_owned();
    let file = json!({"msgtype": "m.file", "body": file_name, "filename": file_name, "url": uri});
    let (s, v) = anna
        .raw(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/f1", enc(&chat)),
            Some(file),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, media) = admin_get(&format!("/_synapse/admin/v1/users/{}/media", enc(&client))).await;
    let mut media_ids: Vec<String> = media["media"]
        .as_array()
        .expect("media")
        .iter()
        .filter_map(|m| m["media_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(media_ids.len(), 1, "{media}");
    media_ids.push(uri.rsplit('/').next().expect("media id").to_owned());

    // The client file: master data, a note, a monitoring and a document.
    let openid = anna.openid_token().await;
    let file_api = format!("{}/_assisto/client-file/v1/clients/{}", svc.url(), enc(&client));
    for (method, path, body) in [
        (
            Method::PUT,
            "",
            json!({"display_name": name, "profile": {"first_name": "Paula", "last_name": name_tag, "street": format!("Weg {marker}")}}),
        ),
        (Method::POST, "/notes", json!({"text": format!("Notiz {marker}")})),
        (Method::POST, "/monitorings", json!({"duration_minutes": 30, "subject": format!("Thema {marker}")})),
    ] {
        let r =
            http.request(method, format!("{file_api}{path}")).bearer_auth(&openid).json(&body).send().await;
        let r = r.expect("client file");
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(format!("%PDF-1.4 Hilfeplan {marker}").into_bytes())
            .file_name(format!("Hilfeplan-{marker}.pdf")),
    );
    let r = http.post(format!("{file_api}/documents")).bearer_auth(&openid).multipart(form).send().await;
    assert_eq!(r.expect("upload a document").status(), 201);
    assert_eq!(svc.stored_documents(), 1);
    // The service has seen the client's memberships.
    eventually("memberships recorded", Duration::from_secs(20), || async {
        let rooms = assisto_appservice::features::rooms::members::rooms_of_user(&db, &client).await.ok()?;
        (rooms.contains(&chat) && rooms.contains(&group)).then_some(())
    })
    .await;
    Scene { anna, client, chat, group, media_ids, needles: vec![marker, name_tag, site_tag] }
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
    tokio::time::sleep(Duration::from_secs(3)).await;
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
        !msgs.to_string().contains(&sc.needles[0]),
        "the client's group message must be redacted: {msgs}"
    );
    // Media gone, account deactivated and erased.
    let (_, media) = admin_get(&format!("/_synapse/admin/v1/users/{}/media", enc(&sc.client))).await;
    assert_eq!(media["total"], 0, "{media}");
    for id in &sc.media_ids {
        let (s, _) = sc
            .anna
            .raw(Method::GET, &format!("/_matrix/client/v1/media/download/localhost/{id}"), None)
            .await;
        assert_eq!(s, 404, "media of the client chat must be gone: {id}");
        let (s, _) = admin_get(&format!("/_synapse/admin/v1/media/localhost/{id}")).await;
        assert_eq!(s, 404, "media of the client chat must be gone: {id}");
    }
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
    assert!(!entry.to_string().contains(&sc.needles[1]), "no personal data in the audit entry: {entry}");
    assert_no_trace(svc, sc).await;
}

/// Nothing of the client is left anywhere the project writes or configures: every table of
/// Synapse's database, its media store and log, the project's database (every table, and on
/// SQLite the raw bytes of the database file, its WAL and shared memory), the file store and
/// the service's log; nor does the user directory or the profile API know the client.
async fn assert_no_trace(svc: &TestService, sc: &Scene) {
    let hs = synapse();
    let mut found = Vec::new();
    let mut add =
        |store: &str, hits: Vec<String>| found.extend(hits.into_iter().map(|h| format!("{store}: {h}")));
    // The harness's Synapse runs on SQLite in its data directory.
    add("Synapse table", traces::in_sqlite_tables(&hs.dir.join("homeserver.db"), &sc.needles).await);
    add("Synapse media store", traces::in_tree(&hs.dir.join("media"), &sc.needles));
    add(
        "Synapse log",
        traces::in_files(&[hs.dir.join("homeserver.log"), hs.dir.join("stdout.log")], &sc.needles),
    );
    let url = &svc.config.database.url;
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            let path = std::path::PathBuf::from(path.split('?').next().unwrap_or(path));
            add("assisto table", traces::in_sqlite_tables(&path, &sc.needles).await);
            let raw =
                ["", "-wal", "-shm"].map(|s| std::path::PathBuf::from(format!("{}{s}", path.display())));
            add("assisto database file", traces::in_files(&raw, &sc.needles));
        }
        None => add("assisto table", traces::in_postgres_tables(url, &sc.needles).await),
    }
    add("file store", traces::in_tree(&svc.config.files.dir, &sc.needles));
    add("search index", traces::in_tree(&search_dir(svc), &sc.needles));
    let log = captured_log();
    add("assisto log", sc.needles.iter().filter(|n| log.contains(n.as_str())).cloned().collect());
    for n in &sc.needles {
        let hits = sc.anna.search_users(n).await;
        add("user directory", hits.into_iter().map(|u| format!("{n} → {u}")).collect());
    }
    let (_, profile) =
        sc.anna.raw(Method::GET, &format!("/_matrix/client/v3/profile/{}", enc(&sc.client)), None).await;
    add(
        "profile API",
        sc.needles.iter().filter(|n| profile.to_string().contains(n.as_str())).cloned().collect(),
    );
    assert!(found.is_empty(), "traces of the deleted client survived:\n{}", found.join("\n"));
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
    assert!(msgs.iter().any(|(_, b)| b.contains(&sc.needles[0])), "deleted before the deadline");
    assert_eq!(svc.stored_documents(), 1, "documents deleted before the deadline");
    // The search index holds the client's messages (the check below can see them).
    eventually("the client's messages in the search index", Duration::from_secs(20), || async {
        (!traces::in_tree(&search_dir(&svc), &sc.needles[..1]).is_empty()).then_some(())
    })
    .await;
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
    let files = assisto_appservice::features::client_file::files::FileStore::open(&svc.config.files.dir)
        .await
        .expect("file store");
    let deleter = Deleter::new(db.clone(), svc.hs_client(), files);
    assert!(!deleter.run(&sc.client, 2).await.expect("two steps"));
    let d =
        assisto_appservice::features::deletion::store::get(&db, &sc.client).await.expect("db").expect("row");
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
