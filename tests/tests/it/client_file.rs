//! The client file (Ratsuchendenmappe) through its API, authenticated with real OpenID
//! tokens of the homeserver.

use assisto_tests::{
    matrix::{enc, login_token_on, register_user_on, TestUser},
    TestService,
};
use reqwest::Method;
use serde_json::{json, Value};

async fn openid_token(u: &TestUser) -> String {
    u.openid_token().await
}

struct Api {
    base: String,
    token: Option<String>,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_file_validates_and_is_only_for_the_institutions_counsellors() {
    let mut svc = TestService::start().await;
    let north = svc.institution("Mappe Nord").await;
    let south = svc.institution("Mappe Sued").await;
    let anna = svc.counsellor(&north, "Anna Mappe").await;
    let otto = svc.counsellor(&south, "Otto Mappe").await;
    let client = svc.client(&north, "Maria").await;
    let base = format!("{}/_assisto/client-file/v1/clients/{}", svc.url(), enc(&client));
    let api = Api { base: base.clone(), token: Some(openid_token(&anna).await) };

    // Master data; the display name follows on the homeserver.
    let (s, v) = api.call(Method::GET, "", None).await;
    assert_eq!((s, v["display_name"].as_str()), (200, Some("Maria")), "{v}");
    let (s, v) = api
        .call(Method::PUT, "", Some(json!({"display_name": "Maria K.", "profile": {"email": "maria@example.org", "postcode": "50667"}})))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["profile"]["postcode"], "50667");
    let name = svc.hs_client().displayname(&client).await.expect("profile").expect("exists");
    assert_eq!(name, "Maria K.");
    let (s, v) = api
        .call(Method::PUT, "", Some(json!({"display_name": "Maria", "profile": {"email": "kein-at"}})))
        .await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{v}");

    // Notes: 5 to 1000 characters, newest first, with a count; edit and delete.
    let (s, v) = api.call(Method::POST, "/notes", Some(json!({"text": "kurz"}))).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "4 characters: {v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("5 bis 1000"), "{v}");
    let (s, _) = api.call(Method::POST, "/notes", Some(json!({"text": "x".repeat(1001)}))).await;
    assert_eq!(s, 400, "1001 characters");
    let (s, first) = api.call(Method::POST, "/notes", Some(json!({"text": "Erstgespräch geführt"}))).await;
    assert_eq!(s, 201, "{first}");
    let (s, _) = api.call(Method::POST, "/notes", Some(json!({"text": "x".repeat(1000)}))).await;
    assert_eq!(s, 201, "1000 characters are fine");
    let (_, list) = api.call(Method::GET, "/notes", None).await;
    assert_eq!(list["count"], 2);
    assert_eq!(list["items"][1]["text"], "Erstgespräch geführt", "newest first: {list}");
    let id = first["id"].as_i64().expect("id");
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/notes/{id}"),
            Some(json!({"text": "Erstgespräch geführt, Folgetermin vereinbart"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = api.call(Method::DELETE, &format!("/notes/{id}"), None).await;
    assert_eq!(s, 200);
    let (s, _) = api.call(Method::DELETE, &format!("/notes/{id}"), None).await;
    assert_eq!(s, 404);
    let (_, list) = api.call(Method::GET, "/notes", None).await;
    assert_eq!(list["count"], 1);

    // Monitorings: duration and subject required.
    let (s, v) = api.call(Method::POST, "/monitorings", Some(json!({"duration_minutes": 45}))).await;
    assert_eq!(s, 400, "missing subject: {v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("Thema"), "{v}");
    let (s, _) = api.call(Method::POST, "/monitorings", Some(json!({"subject": "Schule"}))).await;
    assert_eq!(s, 400, "missing duration");
    let (s, _) = api
        .call(Method::POST, "/monitorings", Some(json!({"subject": "Schule", "duration_minutes": 0})))
        .await;
    assert_eq!(s, 400, "zero minutes");
    let (s, m) = api
        .call(
            Method::POST,
            "/monitorings",
            Some(json!({"subject": "Schule", "duration_minutes": 45, "details": {"contact_type": "Chat"}})),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    let mid = m["id"].as_i64().expect("id");
    let (s, v) = api.call(Method::GET, &format!("/monitorings/{mid}"), None).await;
    assert_eq!((s, v["details"]["contact_type"].as_str()), (200, Some("Chat")));
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/monitorings/{mid}"),
            Some(json!({"subject": "Schule und Familie", "duration_minutes": 50})),
        )
        .await;
    assert_eq!((s, v["duration_minutes"].as_i64()), (200, Some(50)), "{v}");
    let (_, list) = api.call(Method::GET, "/monitorings", None).await;
    assert_eq!(list["count"], 1);
    let (s, _) = api.call(Method::DELETE, &format!("/monitorings/{mid}"), None).await;
    assert_eq!(s, 200);

    // Access: another institution's counsellor, a forged token, no token.
    let foreign = Api { base: base.clone(), token: Some(openid_token(&otto).await) };
    for path in ["", "/notes", "/monitorings"] {
        let (s, v) = foreign.call(Method::GET, path, None).await;
        assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{path}: {v}");
    }
    let (s, _) = foreign.call(Method::POST, "/notes", Some(json!({"text": "Darf ich nicht"}))).await;
    assert_eq!(s, 403);
    let forged = Api { base: base.clone(), token: Some("forged-openid-token".into()) };
    let (s, v) = forged.call(Method::GET, "", None).await;
    assert_eq!((s, v["errcode"].as_str()), (401, Some("M_UNKNOWN_TOKEN")), "{v}");
    // A client-server access token is not an OpenID token either.
    let cs = Api { base: base.clone(), token: anna.client.access_token() };
    let (s, _) = cs.call(Method::GET, "", None).await;
    assert_eq!(s, 401);
    let none = Api { base, token: None };
    let (s, v) = none.call(Method::GET, "", None).await;
    assert_eq!((s, v["errcode"].as_str()), (401, Some("M_UNAUTHORIZED")));

    // Blocking from the file is audited with the counsellor as actor.
    let (s, v) = api.call(Method::POST, "/block", None).await;
    assert_eq!((s, v["blocked"].as_bool()), (200, Some(true)), "{v}");
    let (s, _) = api.call(Method::POST, "/unblock", None).await;
    assert_eq!(s, 200);
    let (_, audit) = svc.admin(Method::GET, "/audit", None).await;
    assert!(audit
        .as_array()
        .expect("audit")
        .iter()
        .any(|e| e["action"] == "client.block" && e["actor"] == anna.user_id.as_str()));
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_chat_gets_the_client_file_widget() {
    let mut svc = TestService::start_public().await;
    let inst = svc.institution("Widgethaus").await;
    let anna = svc.counsellor(&inst, "Anna Widget").await;
    let client = svc.client(&inst, "Mia").await;
    let (s, v) = anna.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let room = v["room_id"].as_str().expect("room").to_owned();
    let path =
        format!("/_matrix/client/v3/rooms/{}/state/im.vector.modular.widgets/assisto-mappe", enc(&room));
    let widget = assisto_tests::eventually(
        "the widget in the client chat",
        std::time::Duration::from_secs(20),
        || async {
            let v = anna.raw_get(&path).await;
            v.get("url").is_some().then_some(v)
        },
    )
    .await;
    let url = widget["url"].as_str().expect("url");
    assert!(url.starts_with(&format!("{}/_assisto/widget/mappe?client=", svc.url())), "{url}");
    assert!(url.contains(&enc(&client)) && url.contains("$matrix_widget_id"), "{url}");
    assert_eq!(widget["name"], "Ratsuchendenmappe");

    // The page: German, with a security policy, and labelled controls.
    let r = reqwest::get(url.replace("$matrix_widget_id", "w1")).await.expect("widget page");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-security-policy"].to_str().expect("csp").contains("default-src 'none'"));
    let html = r.text().await.expect("html");
    assert!(html.contains(r#"<html lang="de">"#) && html.contains("Ratsuchendenmappe"));
    for id in ["display_name", "note-text", "mon-minutes", "mon-subject"] {
        assert!(html.contains(&format!(r#"<label for="{id}">"#)), "control {id} has a label");
    }
    // Colleague chats get no widget.
    let ben = svc.counsellor(&inst, "Ben Widget").await;
    let (s, v) = anna.create_room_raw(json!({"invite": [ben.user_id], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let colleague = v["room_id"].as_str().expect("room").to_owned();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let v = anna
        .raw_get(&format!(
            "/_matrix/client/v3/rooms/{}/state/im.vector.modular.widgets/assisto-mappe",
            enc(&colleague)
        ))
        .await;
    assert!(v.get("url").is_none(), "no widget outside client chats: {v}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_tokens_of_another_homeserver_are_refused() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Fremdhaus").await;
    let anna = svc.counsellor(&inst, "Anna Fremd").await;
    let client = svc.client(&inst, "Jana").await;
    let base = format!("{}/_assisto/client-file/v1/clients/{}", svc.url(), enc(&client));

    // A user of another, real homeserver — with the same localpart as a counsellor here —
    // gets a real OpenID token from it.
    let foreign =
        tokio::task::spawn_blocking(assisto_tests::synapse::foreign_synapse).await.expect("foreign");
    let localpart = anna.user_id.trim_start_matches('@').split(':').next().expect("localpart").to_owned();
    register_user_on(foreign, &localpart, "fremd-pw", false).await;
    let access = login_token_on(foreign, &localpart, "fremd-pw").await;
    let foreign_user = format!("@{localpart}:fremd.test");
    let r: Value = reqwest::Client::new()
        .post(format!("{}/_matrix/client/v3/user/{}/openid/request_token", foreign.url, enc(&foreign_user)))
        .bearer_auth(access)
        .json(&json!({}))
        .send()
        .await
        .expect("openid")
        .json()
        .await
        .expect("json");
    assert_eq!(r["matrix_server_name"], "fremd.test", "{r}");
    let token = r["access_token"].as_str().expect("token").to_owned();
    // The token is genuine: its own homeserver vouches for it.
    let info: Value =
        reqwest::get(format!("{}/_matrix/federation/v1/openid/userinfo?access_token={token}", foreign.url))
            .await
            .expect("userinfo")
            .json()
            .await
            .expect("json");
    assert_eq!(info["sub"], foreign_user.as_str());

    // The client file refuses it; the counsellor's own token works.
    let api = Api { base: base.clone(), token: Some(token) };
    for path in ["", "/notes", "/documents"] {
        let (s, v) = api.call(Method::GET, path, None).await;
        assert_eq!((s, v["errcode"].as_str()), (401, Some("M_UNKNOWN_TOKEN")), "{path}: {v}");
    }
    let own = Api { base, token: Some(openid_token(&anna).await) };
    let (s, v) = own.call(Method::GET, "", None).await;
    assert_eq!(s, 200, "{v}");
    svc.stop().await;
}

/// Should the homeserver ever vouch for a user of another server, the service still refuses:
/// only this homeserver's counsellors open client files. (A real Synapse answers only for
/// its own users, so a mock homeserver injects that answer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_vouched_for_a_user_of_another_server_is_refused() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Namenshaus").await;
    let anna = svc.counsellor(&inst, "Anna Name").await;
    let client = svc.client(&inst, "Ida").await;
    let localpart = anna.user_id.trim_start_matches('@').split(':').next().expect("localpart").to_owned();
    svc.stop().await;

    let sub = format!("@{localpart}:fremd.test");
    let app = axum::Router::new().route(
        "/_matrix/federation/v1/openid/userinfo",
        axum::routing::get(move || {
            let sub = sub.clone();
            async move { axum::Json(json!({ "sub": sub })) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mock = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    svc.config.homeserver.url = mock;
    svc.resume().await;
    let api = Api {
        base: format!("{}/_assisto/client-file/v1/clients/{}", svc.url(), enc(&client)),
        token: Some("token-from-elsewhere".into()),
    };
    let (s, v) = api.call(Method::GET, "", None).await;
    assert_eq!((s, v["errcode"].as_str()), (403, Some("M_FORBIDDEN")), "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("dieses Servers"), "{v}");
    svc.stop().await;
}
