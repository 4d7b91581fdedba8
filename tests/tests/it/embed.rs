//! The web embed's API against the real stack: a visitor's session, messages both ways
//! (the counsellor through the real homeserver), long polling, blocking, the chat
//! configuration, the logged-in area's signed tokens, CORS and rate limits.

use std::time::Duration;

use assisto_bridge::token::{sign, Claims};
use assisto_tests::{
    embed::Visitor,
    eventually,
    matrix::{enc, rid},
    TestService,
};
use reqwest::Method;
use serde_json::{json, Value};

/// A browser's session with the embed (the harness's).
type Embed = Visitor;

/// The conversation room of a session's client (what the counsellor sees in Element).
async fn room_of(svc: &TestService, display_name: &str) -> String {
    let db = svc.running().db.clone();
    eventually("the conversation room", Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, String>(
            "SELECT e.room_id FROM embed_conversations e JOIN clients c ON c.user_id = e.client WHERE c.display_name = $1",
        )
        .bind(display_name)
        .fetch_optional(db.pool())
        .await
        .ok()
        .flatten()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_visitor_and_a_counsellor_chat_through_the_embed() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Embedhaus").await;
    let anna = svc.counsellor(&inst, "Anna Embed").await;
    svc.set_status(&anna.user_id, "online").await;

    let (s, config) =
        Embed::new(&svc).call(Method::GET, &format!("/institutions/{}/config", inst.id), None).await;
    assert_eq!(s, 200, "{config}");
    assert_eq!(config["forms"]["anonymous"], json!({"tile": false, "bubble": true}));
    assert_eq!(
        (config["available"].as_bool(), config["institution"]["name"].as_str()),
        (Some(true), Some("Embedhaus"))
    );
    let (s, _) = Embed::new(&svc).call(Method::GET, "/institutions/gibt-es-nicht/config", None).await;
    assert_eq!(s, 404);

    // The anonymous tile is off by default: refused. The bubble opens a live chat.
    let (s, v) = Embed::new(&svc)
        .call(
            Method::POST,
            &format!("/institutions/{}/sessions", inst.id),
            Some(json!({"area": "anonymous", "form": "tile"})),
        )
        .await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{v}");
    let (guest, v) = Embed::open(&svc, &inst.id, json!({"area": "anonymous", "form": "bubble"})).await;
    assert_eq!(v["client"]["display_name"], "Gast 1", "{v}");
    assert_eq!(v["conversation"]["kind"], "live");
    assert_eq!(v["state"]["waiting"], true, "nobody has taken the chat yet: {v}");

    // The visitor writes; the same txn_id never sends twice.
    let (s, first) = guest.send("t1", "Hallo, ich brauche Hilfe 🙏").await;
    assert_eq!(s, 201, "{first}");
    let (s, again) = guest.send("t1", "Hallo, ich brauche Hilfe 🙏").await;
    assert_eq!((s, &again["id"]), (201, &first["id"]), "a repeated txn_id is the same message");
    for (body, code) in [
        (json!({"txn_id": "t2", "text": "   "}), 400),
        (json!({"txn_id": "t/2", "text": "x"}), 400),
        (json!({"txn_id": "t2", "text": "x".repeat(4001)}), 413),
        (json!({"txn": "t2"}), 400),
    ] {
        let (s, v) = guest.call(Method::POST, "/messages", Some(body.clone())).await;
        assert_eq!(s, code, "{body}: {v}");
        assert!(v["errcode"].as_str().is_some_and(|e| e.starts_with("M_")), "{v}");
    }

    // The counsellor finds the chat in the Live space, joins, and sees the guest's message
    // from the guest's puppet, shown as "Gast 1".
    let room = room_of(&svc, "Gast 1").await;
    let (s, v) =
        anna.raw(Method::POST, &format!("/_matrix/client/v3/join/{}", enc(&room)), Some(json!({}))).await;
    assert_eq!(s, 200, "a counsellor of the institution may join the live chat: {v}");
    let msgs = anna.recent_messages(&rid(&room), 10).await;
    assert!(msgs.iter().any(|(_, b)| b == "Hallo, ich brauche Hilfe 🙏"), "{msgs:?}");
    let (_, members) =
        anna.raw(Method::GET, &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room)), None).await;
    assert!(members.to_string().contains("Gast 1"), "{members}");
    eventually("the visitor to see that the chat was taken", Duration::from_secs(10), || async {
        let (_, v) = guest.call(Method::GET, "/session", None).await;
        (v["state"]["waiting"] == false).then_some(())
    })
    .await;

    // The visitor was told that the chat was taken (a notice of the service).
    let told = eventually("the notice that the chat was taken", Duration::from_secs(10), || async {
        let (_, v) = guest.call(Method::GET, "/messages?limit=10", None).await;
        v["messages"].as_array().and_then(|m| m.last()).filter(|m| m["from"] == "system").cloned()
    })
    .await;
    assert!(told["text"].as_str().is_some_and(|t| t.contains("übernommen")), "{told}");

    // The counsellor answers; the visitor's long poll returns it.
    let after = told["id"].as_str().expect("id").to_owned();
    let poll = {
        let e = Embed { base: guest.base.clone(), session: guest.session.clone() };
        tokio::spawn(async move {
            e.call(Method::GET, &format!("/events?after={}&timeout=20", enc(&after)), None).await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    anna.send_text(&rid(&room), "Hallo, ich bin Anna. Ich bin für dich da.").await;
    let (s, events) = poll.await.expect("poll");
    assert_eq!(s, 200, "{events}");
    let answer = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|f| f["type"] == "message" && f["message"]["from"] == "counsellor")
        .unwrap_or_else(|| panic!("the answer in the poll: {events}"))
        .clone();
    assert_eq!(answer["message"]["sender_name"], "Anna Embed");
    assert_eq!(answer["message"]["text"], "Hallo, ich bin Anna. Ich bin für dich da.");

    // History: all three, oldest first; own messages carry the txn_id.
    let (_, h) = guest.call(Method::GET, "/messages", None).await;
    let texts: Vec<(&str, &str)> = h["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (m["from"].as_str().unwrap_or_default(), m["text"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        texts,
        vec![
            ("me", "Hallo, ich brauche Hilfe 🙏"),
            ("system", "Eine beratende Person hat deinen Chat übernommen und ist jetzt für dich da."),
            ("counsellor", "Hallo, ich bin Anna. Ich bin für dich da.")
        ],
        "{h}"
    );
    assert_eq!(h["messages"][0]["txn_id"], "t1");

    // A phone number from the counsellor becomes a card.
    anna.send_text(&rid(&room), "0800 111 0 111").await;
    let card = eventually("the phone card", Duration::from_secs(10), || async {
        let (_, h) = guest.call(Method::GET, "/messages", None).await;
        h["messages"].as_array()?.iter().find(|m| m["kind"] == "phone").cloned()
    })
    .await;
    assert_eq!(card["href"], "tel:08001110111");

    // Blocking refuses the session with a clear message; unblocking lets it in again.
    let client: String = sqlx::query_scalar("SELECT client FROM embed_conversations WHERE room_id = $1")
        .bind(&room)
        .fetch_one(svc.running().db.pool())
        .await
        .expect("client");
    let (s, _) = svc.admin(Method::POST, &format!("/clients/{}/block", enc(&client)), None).await;
    assert_eq!(s, 200);
    let (s, v) = guest.call(Method::GET, "/session", None).await;
    assert_eq!((s, v["blocked"].as_bool()), (403, Some(true)), "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("gesperrt"), "{v}");
    let (s, _) = guest.send("t3", "Darf ich noch?").await;
    assert_eq!(s, 403);
    let (s, _) = svc.admin(Method::POST, &format!("/clients/{}/unblock", enc(&client)), None).await;
    assert_eq!(s, 200);
    let (s, _) = guest.send("t4", "Danke!").await;
    assert_eq!(s, 201);

    // A forged session token gets nothing.
    let forged = Embed { base: guest.base.clone(), session: Some("gefaelschtes-token".into()) };
    let (s, v) = forged.call(Method::GET, "/messages", None).await;
    assert_eq!((s, v["errcode"].as_str()), (401, Some("M_UNKNOWN_TOKEN")), "{v}");
    let none = Embed { base: guest.base.clone(), session: None };
    let (s, _) = none.call(Method::GET, "/session", None).await;
    assert_eq!(s, 401);

    // Ending the chat: the counsellor is told, the session ends.
    let (s, _) = guest.call(Method::POST, "/end", None).await;
    assert_eq!(s, 200);
    let (s, _) = guest.call(Method::GET, "/session", None).await;
    assert_eq!(s, 401);
    eventually("the end notice", Duration::from_secs(10), || async {
        let msgs = anna.recent_messages(&rid(&room), 10).await;
        msgs.iter().any(|(_, b)| b.contains("hat den Chat beendet")).then_some(())
    })
    .await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_configuration_signed_logins_cors_and_rate_limits() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Konfighaus").await;
    let _anna = svc.counsellor(&inst, "Anna Konfig").await;
    svc.set_status(&_anna.user_id, "online").await;
    let path = format!("/institutions/{}/chat-config", inst.id);

    // Tile and bubble of the logged-in area cannot both be on; bad origins are refused.
    let both =
        json!({"anonymous": {"tile": true, "bubble": true}, "registered": {"tile": true, "bubble": true}});
    let (s, v) = svc.admin(Method::PUT, &path, Some(both)).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{v}");
    let bad_origin = json!({"anonymous": {"tile": true, "bubble": false}, "registered": {"tile": false, "bubble": true},
        "allowed_origins": ["https://beratung.example.org/pfad"]});
    let (s, _) = svc.admin(Method::PUT, &path, Some(bad_origin)).await;
    assert_eq!(s, 400);
    let ok = json!({"anonymous": {"tile": true, "bubble": false}, "registered": {"tile": false, "bubble": true},
        "allowed_origins": ["https://beratung.example.org"]});
    let (s, v) = svc.admin(Method::PUT, &path, Some(ok)).await;
    assert_eq!(s, 200, "{v}");
    // The change reaches the embed at once: the bubble is now off, the tile on.
    let (_, config) =
        Embed::new(&svc).call(Method::GET, &format!("/institutions/{}/config", inst.id), None).await;
    assert_eq!(config["forms"]["anonymous"], json!({"tile": true, "bubble": false}), "{config}");
    let (s, _) = Embed::new(&svc)
        .call(
            Method::POST,
            &format!("/institutions/{}/sessions", inst.id),
            Some(json!({"area": "anonymous", "form": "bubble"})),
        )
        .await;
    assert_eq!(s, 403, "a switched-off form opens no chat");

    // CORS: only the configured origin.
    for (origin, allowed) in [("https://beratung.example.org", true), ("https://evil.example", false)] {
        let r = reqwest::Client::new()
            .request(Method::OPTIONS, format!("{}/_assisto/embed/v1/messages", svc.url()))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .expect("preflight");
        let acao =
            r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap_or_default().to_owned());
        assert_eq!(acao.as_deref() == Some(origin), allowed, "{origin}");
    }

    // Sessions are bound to the institution's sites: another site's page gets nothing.
    for (origin, code) in [("https://evil.example", 403), ("https://beratung.example.org", 201)] {
        let r = reqwest::Client::new()
            .post(format!("{}/_assisto/embed/v1/institutions/{}/sessions", svc.url(), inst.id))
            .header("origin", origin)
            .header("x-forwarded-for", "10.9.9.9") // (another visitor: the per-address limit)
            .json(&json!({"area": "anonymous", "form": "tile"}))
            .send()
            .await
            .expect("open");
        assert_eq!(r.status().as_u16(), code, "{origin}");
    }

    // The logged-in area: no secret yet → refused; then tokens signed with it.
    let claims = |sub: &str, exp: i64| Claims {
        inst: inst.id.clone(),
        sub: sub.into(),
        name: "Maria Muster".into(),
        exp: chrono::Utc::now().timestamp() + exp,
    };
    let open = |token: String| {
        let svc_url = svc.url();
        let inst = inst.id.clone();
        async move {
            let r = reqwest::Client::new()
                .post(format!("{svc_url}/_assisto/embed/v1/institutions/{inst}/sessions"))
                .json(&json!({"area": "registered", "form": "bubble", "token": token}))
                .send()
                .await
                .expect("open");
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, _) = open(sign(b"irgendwas", &claims("u-1", 600))).await;
    assert_eq!(s, 403, "no secret configured yet");
    let (s, v) = svc.admin(Method::POST, &format!("/institutions/{}/embed-secret", inst.id), None).await;
    assert_eq!(s, 200, "{v}");
    let secret = v["secret"].as_str().expect("secret").to_owned();
    let (s, first) = open(sign(secret.as_bytes(), &claims("u-1", 600))).await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(
        (first["client"]["display_name"].as_str(), first["conversation"]["kind"].as_str()),
        (Some("Maria Muster"), Some("client_chat"))
    );
    let (s, second) = open(sign(secret.as_bytes(), &claims("u-1", 600))).await;
    assert_eq!(s, 201, "{second}");
    let clients: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM client_identities WHERE external_id = 'u-1'")
        .fetch_one(svc.running().db.pool())
        .await
        .expect("count");
    assert_eq!(clients, 1, "the same site user is the same client");
    for (token, why) in [
        (sign(b"falsch", &claims("u-1", 600)), "wrong secret"),
        (sign(secret.as_bytes(), &claims("u-1", -10)), "expired"),
        (sign(secret.as_bytes(), &claims("u-1", 3 * 86_400)), "valid too long"),
        ("v1.abc.def".to_owned(), "garbage"),
    ] {
        let (s, v) = open(token).await;
        assert_eq!((s, v["errcode"].as_str()), (401, Some("M_UNKNOWN_TOKEN")), "{why}: {v}");
    }

    // Rate limit: at most 30 messages a minute per session.
    let (e, _) = Embed::open(&svc, &inst.id, json!({"area": "anonymous", "form": "tile"})).await;
    let mut limited = None;
    for i in 0..35 {
        let (s, v) = e.send(&format!("r{i}"), "schnell").await;
        if s == 429 {
            limited = Some(v);
            break;
        }
        assert_eq!(s, 201, "{v}");
    }
    let v = limited.expect("the 31st message within a minute is refused");
    assert_eq!(v["errcode"], "M_LIMIT_EXCEEDED");
    assert!(v["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{v}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_deletes_their_data_and_nothing_of_it_is_left() {
    let mut svc = TestService::start_with(|c| c.deletion.check_interval_secs = 1).await;
    let inst = svc.institution("Loeschbubble").await;
    let anna = svc.counsellor(&inst, "Anna Loeschbubble").await;
    svc.set_status(&anna.user_id, "online").await;
    let (guest, _) = Embed::open(&svc, &inst.id, json!({"area": "anonymous", "form": "bubble"})).await;
    let (s, _) = guest.send("d1", "Bitte alles löschen").await;
    assert_eq!(s, 201);
    let room = room_of(&svc, "Gast 1").await;
    let (s, _) =
        anna.raw(Method::POST, &format!("/_matrix/client/v3/join/{}", enc(&room)), Some(json!({}))).await;
    assert_eq!(s, 200);
    let client: String = sqlx::query_scalar("SELECT client FROM embed_conversations WHERE room_id = $1")
        .bind(&room)
        .fetch_one(svc.running().db.pool())
        .await
        .expect("client");

    let (s, v) = guest.call(Method::POST, "/delete-my-data", None).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = guest.call(Method::GET, "/session", None).await;
    assert_eq!(s, 401, "the session ends at once");
    // The routine runs at once (no deletion period for the client's own request).
    eventually("the deletion to finish", Duration::from_secs(90), || async {
        let (_, done) = svc.admin(Method::GET, "/deletions?state=finished", None).await;
        done.to_string().contains(&client).then_some(())
    })
    .await;
    let (s, _) =
        anna.raw(Method::GET, &format!("/_matrix/client/v3/rooms/{}/messages?dir=b", enc(&room)), None).await;
    assert!(s == 403 || s == 404, "the live chat is gone for the counsellor too: {s}");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clients WHERE user_id = $1")
        .bind(&client)
        .fetch_one(svc.running().db.pool())
        .await
        .expect("count");
    assert_eq!(n, 0);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_voice_messages_go_both_ways_and_stay_in_their_conversation() {
    let mut svc = TestService::start_with(|c| c.files.max_document_bytes = 64 * 1024).await;
    let inst = svc.institution("Dateihaus").await;
    let anna = svc.counsellor(&inst, "Anna Datei").await;
    svc.set_status(&anna.user_id, "online").await;
    let (guest, _) = Embed::open(&svc, &inst.id, json!({"area": "anonymous", "form": "bubble"})).await;
    let (other, _) = Embed::open(&svc, &inst.id, json!({"area": "anonymous", "form": "bubble"})).await;
    let room = room_of(&svc, "Gast 1").await;
    let (s, _) =
        anna.raw(Method::POST, &format!("/_matrix/client/v3/join/{}", enc(&room)), Some(json!({}))).await;
    assert_eq!(s, 200);
    let upload = |files: Vec<(&'static str, Vec<u8>)>| {
        let base = guest.base.clone();
        let token = guest.session.clone().expect("session");
        async move {
            let mut form = reqwest::multipart::Form::new();
            for (name, bytes) in files {
                form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
            }
            let r = reqwest::Client::new()
                .post(format!("{base}/files"))
                .bearer_auth(token)
                .multipart(form)
                .send()
                .await
                .expect("upload");
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // Several files at once; the counsellor gets them as Matrix files from "Gast 1".
    let pdf = b"%PDF-1.4\n% Zeugnis\n%%EOF\n".to_vec();
    let png = b"\x89PNG\r\n\x1a\n0000".to_vec();
    let (s, v) = upload(vec![("Zeugnis.pdf", pdf.clone()), ("Bild.png", png)]).await;
    assert_eq!(s, 201, "{v}");
    let sent = v["messages"].as_array().expect("messages").clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[0]["kind"].as_str(), sent[0]["file"]["name"].as_str()),
        (Some("file"), Some("Zeugnis.pdf"))
    );
    let msgs = anna.recent_messages(&rid(&room), 10).await;
    assert!(
        msgs.iter().any(|(_, b)| b == "Zeugnis.pdf") && msgs.iter().any(|(_, b)| b == "Bild.png"),
        "{msgs:?}"
    );
    // The client downloads it back through the bridge; another visitor cannot.
    let id = sent[0]["id"].as_str().expect("id");
    let r = reqwest::Client::new()
        .get(format!("{}/media/{}", guest.base, enc(id)))
        .bearer_auth(guest.session.as_deref().expect("s"))
        .send()
        .await
        .expect("media");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), pdf);
    let (s, _) = other.call(Method::GET, &format!("/media/{}", enc(id)), None).await;
    assert_eq!(s, 404, "media of another conversation");

    // Refused: a type not accepted, a name that does not fit the content, too large.
    let (s, v) = upload(vec![("tool.exe", b"MZ\x90\x00".to_vec())]).await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = upload(vec![("ok.pdf", pdf.clone()), ("falsch.pdf", b"<html>".to_vec())]).await;
    assert_eq!(s, 400, "nothing of the upload is sent");
    let (s, v) = upload(vec![("gross.pdf", vec![b'%'; 64 * 1024 + 1])]).await;
    assert_eq!((s, v["errcode"].as_str()), (413, Some("M_TOO_LARGE")), "{v}");
    let (_, h) = guest.call(Method::GET, "/messages", None).await;
    assert_eq!(h["messages"].as_array().expect("m").iter().filter(|m| m["kind"] == "file").count(), 2);

    // A voice message: Element gets a voice message (MSC3245) with its duration.
    let webm = [b"\x1a\x45\xdf\xa3".as_slice(), &[0u8; 64]].concat();
    let r = reqwest::Client::new()
        .post(format!("{}/voice?duration_ms=3200", guest.base))
        .bearer_auth(guest.session.as_deref().expect("s"))
        .header("content-type", "audio/webm;codecs=opus")
        .body(webm)
        .send()
        .await
        .expect("voice");
    assert_eq!(r.status(), 201);
    let voice: Value = r.json().await.expect("json");
    assert_eq!((voice["kind"].as_str(), voice["file"]["duration_ms"].as_u64()), (Some("voice"), Some(3200)));
    let ev = anna
        .raw_get(&format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(&room),
            enc(voice["id"].as_str().expect("id"))
        ))
        .await;
    assert_eq!(ev["content"]["msgtype"], "m.audio", "{ev}");
    assert!(ev["content"].get("org.matrix.msc3245.voice").is_some(), "{ev}");
    let r = reqwest::Client::new()
        .post(format!("{}/voice?duration_ms=1000", guest.base))
        .bearer_auth(guest.session.as_deref().expect("s"))
        .header("content-type", "audio/webm")
        .body("kein Audio")
        .send()
        .await
        .expect("voice");
    assert_eq!(r.status(), 400, "not a recording");

    // A counsellor's file reaches the client, who can fetch it.
    let up: Value = reqwest::Client::new()
        .post(format!("{}/_matrix/media/v3/upload?filename=Info.pdf", assisto_tests::synapse::synapse().url))
        .bearer_auth(anna.client.access_token().expect("token"))
        .header("content-type", "application/pdf")
        .body(b"%PDF-1.4 Info".to_vec())
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("json");
    let (s, _) = anna
        .raw(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/info1", enc(&room)),
            Some(json!({"msgtype": "m.file", "body": "Info.pdf", "url": up["content_uri"], "info": {"mimetype": "application/pdf", "size": 13}})),
        )
        .await;
    assert_eq!(s, 200);
    let info = eventually("the counsellor's file", Duration::from_secs(10), || async {
        let (_, h) = guest.call(Method::GET, "/messages", None).await;
        h["messages"]
            .as_array()?
            .iter()
            .find(|m| m["file"]["name"] == "Info.pdf" && m["from"] == "counsellor")
            .cloned()
    })
    .await;
    let r = reqwest::Client::new()
        .get(format!("{}/media/{}", guest.base, enc(info["id"].as_str().expect("id"))))
        .bearer_auth(guest.session.as_deref().expect("s"))
        .send()
        .await
        .expect("media");
    assert_eq!(r.bytes().await.expect("bytes").as_ref(), b"%PDF-1.4 Info");

    // Deleting: own messages yes (the counsellor sees them redacted), others' no.
    let (s, _) = guest.call(Method::DELETE, &format!("/messages/{}", enc(id)), None).await;
    assert_eq!(s, 200);
    let ev = anna.raw_get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(id))).await;
    assert!(ev["content"].as_object().is_some_and(|c| c.is_empty()), "redacted: {ev}");
    let (s, _) = guest
        .call(Method::DELETE, &format!("/messages/{}", enc(info["id"].as_str().expect("id"))), None)
        .await;
    assert_eq!(s, 403);
    svc.stop().await;
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket of the embed, authenticated; returns the socket and the `ready` frame.
async fn socket(svc: &TestService, session: &str, after: Option<&str>) -> (Socket, Value) {
    use futures::SinkExt;
    let url = format!("{}/_assisto/embed/v1/ws", svc.url().replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let auth = json!({"type": "auth", "session": session, "after": after}).to_string();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(auth.into())).await.expect("auth");
    let ready = next_frame(&mut ws).await.expect("ready");
    assert_eq!(ready["type"], "ready", "{ready}");
    (ws, ready)
}

/// The next JSON frame (pings skipped), or `None` after 10 s or when closed.
async fn next_frame(ws: &mut Socket) -> Option<Value> {
    use futures::StreamExt;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.ok()??.ok()? {
            tokio_tungstenite::tungstenite::Message::Text(t) => return serde_json::from_str(&t).ok(),
            tokio_tungstenite::tungstenite::Message::Close(f) => {
                return Some(json!({"type": "closed", "code": f.map(|f| u16::from(f.code))}))
            }
            _ => {}
        }
    }
}

/// Frames until one matches, at most 10 s each.
async fn frame_where(ws: &mut Socket, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let f = next_frame(ws).await.unwrap_or_else(|| panic!("no frame: {what}"));
        if pred(&f) {
            return f;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_reconnects_without_loss_and_carries_typing_and_read_state() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Sockethaus").await;
    let anna = svc.counsellor(&inst, "Anna Socket").await;
    svc.set_status(&anna.user_id, "online").await;
    let (guest, _) = Embed::open(&svc, &inst.id, json!({"area": "anonymous", "form": "bubble"})).await;
    let session = guest.session.clone().expect("session");
    let room = room_of(&svc, "Gast 1").await;
    let (s, _) =
        anna.raw(Method::POST, &format!("/_matrix/client/v3/join/{}", enc(&room)), Some(json!({}))).await;
    assert_eq!(s, 200);

    // Live: the counsellor's message arrives on the socket.
    let (mut ws, ready) = socket(&svc, &session, None).await;
    assert_eq!(ready["state"]["blocked"], false);
    let first = anna.send_text(&rid(&room), "Erste Nachricht").await;
    let f = frame_where(&mut ws, "the first message", |f| {
        f["type"] == "message" && f["message"]["from"] == "counsellor"
    })
    .await;
    assert_eq!(
        (f["message"]["id"].as_str(), f["message"]["text"].as_str()),
        (Some(first.as_str()), Some("Erste Nachricht"))
    );

    // The counsellor types: the client sees that (not what).
    let (s, _) = anna
        .raw(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{}/typing/{}", enc(&room), enc(&anna.user_id)),
            Some(json!({"typing": true, "timeout": 10000})),
        )
        .await;
    assert_eq!(s, 200);
    frame_where(&mut ws, "counsellor typing", |f| {
        f["type"] == "state" && f["state"]["counsellor_typing"] == true
    })
    .await;

    // The counsellor reads the client's message: read state.
    let (_, mine) = guest.send("r1", "Gelesen?").await;
    let mine_id = mine["id"].as_str().expect("id").to_owned();
    let (s, _) = anna
        .raw(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/{}/receipt/m.read/{}", enc(&room), enc(&mine_id)),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200);
    frame_where(&mut ws, "the read receipt", |f| {
        f["type"] == "state" && f["state"]["read_up_to"] == mine_id.as_str()
    })
    .await;

    // The client types and reads: the counsellor's client sees both on the homeserver.
    let (s, _) = guest.call(Method::POST, "/typing", Some(json!({"typing": true}))).await;
    assert_eq!(s, 200);
    let (s, _) = guest.call(Method::POST, "/read", Some(json!({"up_to": first}))).await;
    assert_eq!(s, 200);
    eventually("the guest's receipt", Duration::from_secs(10), || async {
        let (_, v) = anna
            .raw(Method::GET, "/_matrix/client/v3/sync?timeout=0&filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A1%7D%7D%7D", None)
            .await;
        let eph = v["rooms"]["join"][&room]["ephemeral"]["events"].to_string();
        (eph.contains("m.receipt") && eph.contains(&first)).then_some(())
    })
    .await;
    let (s, v) = guest.call(Method::POST, "/read", Some(json!({"up_to": "$gibt-es-nicht"}))).await;
    assert_eq!(s, 400, "{v}");

    // Disconnected: three messages meanwhile; back with the newest ID it has, the browser
    // gets exactly those, in order, and nothing twice.
    drop(ws);
    let mut missed = Vec::new();
    for i in 1..=3 {
        missed.push(anna.send_text(&rid(&room), &format!("Verpasst {i}")).await);
    }
    let (mut ws, _) = socket(&svc, &session, Some(&mine_id)).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        let f = frame_where(&mut ws, "the missed messages", |f| f["type"] == "message").await;
        got.push(f["message"]["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(got, missed, "exactly the missed messages, in order");
    let live = anna.send_text(&rid(&room), "Wieder live").await;
    let f = frame_where(&mut ws, "the live message", |f| f["type"] == "message").await;
    assert_eq!(f["message"]["id"].as_str(), Some(live.as_str()), "no repeats before the live message");

    // The same while another tab keeps the conversation watched (the service then answers
    // from the messages it keeps in memory instead of asking the homeserver).
    let (_other_tab, _) = socket(&svc, &session, Some(&live)).await;
    drop(ws);
    let mut missed = Vec::new();
    for i in 4..=5 {
        missed.push(anna.send_text(&rid(&room), &format!("Verpasst {i}")).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut ws, _) = socket(&svc, &session, Some(&live)).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let f = frame_where(&mut ws, "the missed messages", |f| f["type"] == "message").await;
        got.push(f["message"]["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(got, missed, "exactly the missed messages, in order, from memory");

    // A forged session is closed with 4001; a block closes with 4003.
    let url = format!("{}/_assisto/embed/v1/ws", svc.url().replace("http://", "ws://"));
    let (mut bad, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    {
        use futures::SinkExt;
        let auth = json!({"type": "auth", "session": "gefaelscht", "after": null}).to_string();
        bad.send(tokio_tungstenite::tungstenite::Message::Text(auth.into())).await.expect("auth");
    }
    assert_eq!(next_frame(&mut bad).await.expect("close")["code"], 4001);
    let client: String = sqlx::query_scalar("SELECT client FROM embed_conversations WHERE room_id = $1")
        .bind(&room)
        .fetch_one(svc.running().db.pool())
        .await
        .expect("client");
    let (s, _) = svc.admin(Method::POST, &format!("/clients/{}/block", enc(&client)), None).await;
    assert_eq!(s, 200);
    let f =
        frame_where(&mut ws, "the block", |f| f["type"] == "closed" || f["state"]["blocked"] == true).await;
    if f["type"] != "closed" {
        assert_eq!(frame_where(&mut ws, "the close", |f| f["type"] == "closed").await["code"], 4003);
    }
    svc.stop().await;
}

/// A block made with the admin CLI — another process, which holds no connections — closes
/// the client's open WebSocket just as the admin API does: through the live bus's outbox,
/// within a second or two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_from_the_cli_closes_open_connections() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("CLI-Sperrhaus").await;
    let _anna = svc.counsellor(&inst, "Anna Sperre").await;
    svc.set_status(&_anna.user_id, "online").await;
    let (guest, _) = Embed::open(&svc, &inst.id, json!({"area": "anonymous", "form": "bubble"})).await;
    let session = guest.session.clone().expect("session");
    let room = room_of(&svc, "Gast 1").await;
    let client: String = sqlx::query_scalar("SELECT client FROM embed_conversations WHERE room_id = $1")
        .bind(&room)
        .fetch_one(svc.running().db.pool())
        .await
        .expect("client");
    let (mut ws, ready) = socket(&svc, &session, None).await;
    assert_eq!(ready["state"]["blocked"], false);

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("assisto.yaml");
    std::fs::write(&config, serde_norway::to_string(&svc.config).expect("yaml")).expect("config");
    let started = std::time::Instant::now();
    let (ok, out, err) = crate::cli::assisto(dir.path(), &config, &["client", "block", &client], "").await;
    assert!(ok, "client block: {err}");
    assert!(out.contains("\"blocked\": true") || out.contains("\"blocked\":true"), "{out}");
    let f =
        frame_where(&mut ws, "the block", |f| f["type"] == "closed" || f["state"]["blocked"] == true).await;
    if f["type"] != "closed" {
        assert_eq!(frame_where(&mut ws, "the close", |f| f["type"] == "closed").await["code"], 4003);
    } else {
        assert_eq!(f["code"], 4003, "{f}");
    }
    // Not a wall-time assertion on the machine's speed: the relay must not wait for a
    // reconnect or a timeout (frame_where allows 10 s per frame).
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "CLI block reached the socket");
    svc.stop().await;
}
