//! The counsellor tools against the real homeserver, with real OpenID tokens: text
//! snippets (scopes, who may change them, placeholders, sent once as the counsellor's own
//! message, the bot command redacted), the phone number (toggle, normalising, invalid
//! input) and pushed links (validation), both drawn as cards in the web embed, which a
//! forged card cannot fool.

use std::time::Duration;

use assisto_tests::{
    api::OpenIdApi,
    embed::Visitor,
    eventually,
    matrix::{enc, rid, TestUser},
    TestInstitution, TestService,
};
use reqwest::Method;
use serde_json::{json, Value};

/// The tools API as one counsellor.
struct Tools(OpenIdApi);

impl Tools {
    async fn of(svc: &TestService, c: &TestUser) -> Self {
        Tools(OpenIdApi::of(svc, c, "tools/v1").await)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.0.call(method, path, body).await
    }

    async fn names(&self) -> Vec<String> {
        let (s, v) = self.call(Method::GET, "/snippets", None).await;
        assert_eq!(s, 200, "{v}");
        let mut names: Vec<String> = v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["name"].as_str().expect("name").to_owned())
            .collect();
        names.sort();
        names
    }

    async fn create(&self, body: Value) -> i64 {
        let (s, v) = self.call(Method::POST, "/snippets", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        v["snippet"]["id"].as_i64().expect("id")
    }

    /// Waits until the room is usable with the tools (the counsellor's join is processed).
    async fn room_ready(&self, room: &str) -> Value {
        eventually("the tools to work in the room", Duration::from_secs(20), || async {
            let (s, v) = self.call(Method::GET, &format!("/rooms/{}", enc(room)), None).await;
            (s == 200).then_some(v)
        })
        .await
    }
}

/// A client chat of `c` with a new client named `name`, once the tools widget is in it.
async fn client_chat(svc: &TestService, inst: &TestInstitution, c: &TestUser, name: &str) -> String {
    let client = svc.client(inst, name).await;
    let (s, v) = c.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let room = v["room_id"].as_str().expect("room").to_owned();
    let path =
        format!("/_matrix/client/v3/rooms/{}/state/im.vector.modular.widgets/assisto-werkzeuge", enc(&room));
    let widget = eventually("the tools widget in the client chat", Duration::from_secs(20), || async {
        let v = c.raw_get(&path).await;
        v.get("url").is_some().then_some(v)
    })
    .await;
    let url = widget["url"].as_str().expect("url");
    assert_eq!(
        url,
        format!("{}/_assisto/widget/werkzeuge?room=$matrix_room_id&widgetId=$matrix_widget_id", svc.url())
    );
    assert_eq!(widget["name"], "Werkzeuge");
    room
}

/// A visitor's live chat, taken by `c` (who joins it from the Live space, as in Element).
async fn taken_live_chat(svc: &TestService, inst: &TestInstitution, c: &TestUser) -> (Visitor, String) {
    let visitor = Visitor::anonymous(svc, &inst.id, None).await;
    assert_eq!(visitor.send("v1", "Hallo, ich brauche Hilfe").await.0, 201);
    let (_, chats) = svc.admin(Method::GET, &format!("/institutions/{}/live-chats", inst.id), None).await;
    let room = chats[0]["room_id"].as_str().expect("room").to_owned();
    let (s, v) =
        c.raw(Method::POST, &format!("/_matrix/client/v3/join/{}", enc(&room)), Some(json!({}))).await;
    assert_eq!(s, 200, "taking the chat: {v}");
    (visitor, room)
}

/// The claims of a JWT (its signature is the Jitsi server's business).
fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

/// The messages of `sender` in the room, as `reader` reads them (newest first).
async fn bodies_of(reader: &TestUser, room: &str, sender: &str) -> Vec<String> {
    reader
        .recent_messages(&rid(room), 50)
        .await
        .into_iter()
        .filter(|(s, _)| s == sender)
        .map(|(_, b)| b)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_snippets_have_scopes_and_placeholders_and_are_sent_once_as_the_counsellor() {
    let mut svc = TestService::start_public().await;
    let inst = svc.institution("Werkzeughaus").await;
    let south = svc.institution("Werkzeug Süd").await;
    let familie = svc.department(&inst, "Familie").await;
    let anna = svc.counsellor_in(&inst, "Anna Werkzeug", &[&familie]).await;
    let ben = svc.counsellor_in(&inst, "Ben Werkzeug", &[&familie]).await;
    let carl = svc.counsellor(&inst, "Carl Werkzeug").await;
    let dora = svc.counsellor(&inst, "Dora Werkzeug").await;
    let otto = svc.counsellor(&south, "Otto Werkzeug").await;
    let path = format!("/counsellors/{}/institution-admin", enc(&dora.user_id));
    let (s, v) = svc.admin(Method::PUT, &path, Some(json!({"institution_admin": true}))).await;
    assert_eq!((s, v["institution_admin"].as_bool()), (200, Some(true)), "{v}");
    let (a, b, c, d, o) = (
        Tools::of(&svc, &anna).await,
        Tools::of(&svc, &ben).await,
        Tools::of(&svc, &carl).await,
        Tools::of(&svc, &dora).await,
        Tools::of(&svc, &otto).await,
    );

    // Bad input: German errors, nothing stored.
    let (s, v) = a
        .call(Method::POST, "/snippets", Some(json!({"name": "Gruß", "text": "Hallo {{klient.vorname}}"})))
        .await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("Unbekannter Platzhalter"), "{v}");
    let (s, _) =
        a.call(Method::POST, "/snippets", Some(json!({"name": "x".repeat(81), "text": "Text"}))).await;
    assert_eq!(s, 400, "a name of 81 characters");
    let (s, _) = a.call(Method::POST, "/snippets", Some(json!({"name": "Leer", "text": "  \n "}))).await;
    assert_eq!(s, 400, "an empty text");
    let (s, v) = c
        .call(
            Method::POST,
            "/snippets",
            Some(json!({"name": "Fremd", "text": "x", "scope": "department", "department": familie})),
        )
        .await;
    assert_eq!(s, 403, "Carl is not in the department: {v}");
    let (s, v) = o.call(Method::GET, "/snippets", None).await;
    assert_eq!((s, v["count"].as_i64()), (200, Some(0)), "{v}");

    // Own, department, institution; and the institution's own through the admin API.
    let greeting = a
        .create(json!({"name": "Begrüßung", "text": "Hallo {{klient.name}}, hier ist {{ berater.name }} von {{einrichtung}}."}))
        .await;
    let family = a
        .create(json!({"name": "Familienberatung", "text": "Unsere Familienberatung ist montags da.", "scope": "department", "department": familie}))
        .await;
    let hours = a.create(json!({"name": "Öffnungszeiten", "text": "Wir sind täglich von 9 bis 17 Uhr da.", "scope": "institution"})).await;
    let (s, v) = svc
        .admin(
            Method::POST,
            &format!("/institutions/{}/snippets", inst.id),
            Some(json!({"name": "Datenschutz", "text": "Alles bleibt vertraulich."})),
        )
        .await;
    assert_eq!((s, v["scope"].as_str(), v["owner"].as_str()), (201, Some("institution"), None), "{v}");
    let privacy = v["id"].as_i64().expect("id");
    assert_eq!(a.names().await, ["Begrüßung", "Datenschutz", "Familienberatung", "Öffnungszeiten"]);
    assert_eq!(b.names().await, ["Datenschutz", "Familienberatung", "Öffnungszeiten"], "not Anna's own");
    assert_eq!(c.names().await, ["Datenschutz", "Öffnungszeiten"], "not the department's");
    assert_eq!(
        d.names().await,
        ["Datenschutz", "Familienberatung", "Öffnungszeiten"],
        "an admin sees the departments'"
    );
    let (_, v) = a.call(Method::GET, "/snippets?q=BEGR", None).await;
    assert_eq!((v["count"].as_i64(), v["items"][0]["name"].as_str()), (Some(1), Some("Begrüßung")), "{v}");
    let (_, v) = svc.admin(Method::GET, &format!("/institutions/{}/snippets", inst.id), None).await;
    assert_eq!(v["count"], 3, "the admin API lists the shared ones, never a counsellor's own: {v}");

    // Who may change what: the author; shared ones also the institution's admins.
    let change = json!({"name": "Familienberatung", "text": "Montags und mittwochs.", "scope": "department", "department": familie});
    let (s, v) = b.call(Method::PUT, &format!("/snippets/{family}"), Some(change.clone())).await;
    assert_eq!(s, 403, "Ben did not write it: {v}");
    let (s, v) = d.call(Method::PUT, &format!("/snippets/{family}"), Some(change)).await;
    assert_eq!((s, v["snippet"]["text"].as_str()), (200, Some("Montags und mittwochs.")), "{v}");
    let (s, _) =
        d.call(Method::PUT, &format!("/snippets/{greeting}"), Some(json!({"name": "X", "text": "Y"}))).await;
    assert_eq!(s, 404, "another counsellor's own snippet is not even visible to an admin");
    let (s, _) = d
        .call(
            Method::PUT,
            &format!("/snippets/{hours}"),
            Some(json!({"name": "Meins", "text": "Y", "scope": "own"})),
        )
        .await;
    assert_eq!(s, 403, "an admin cannot take a shared snippet as their own");
    let (s, _) = o.call(Method::DELETE, &format!("/snippets/{hours}"), None).await;
    assert_eq!(s, 404, "another institution's counsellor");
    let (s, _) = a.call(Method::DELETE, &format!("/snippets/{privacy}"), None).await;
    assert_eq!(s, 403, "the institution's own snippet is not Anna's to delete");
    let (s, _) = a.call(Method::DELETE, "/snippets/abc", None).await;
    assert_eq!(s, 404, "not a snippet ID");

    // Sent into a client chat: filled in, combined, once, as Anna.
    let room = client_chat(&svc, &inst, &anna, "Maria").await;
    let tools = a.room_ready(&room).await;
    assert_eq!(tools["kind"], "client_chat");
    assert_eq!(tools["departments"][0]["id"], familie.as_str());
    let send = json!({"ids": [greeting, hours], "txn_id": "send-1"});
    let (s, first) =
        a.call(Method::POST, &format!("/rooms/{}/snippets", enc(&room)), Some(send.clone())).await;
    assert_eq!(s, 200, "{first}");
    let (s, again) = a.call(Method::POST, &format!("/rooms/{}/snippets", enc(&room)), Some(send)).await;
    assert_eq!((s, &again["event_id"]), (200, &first["event_id"]), "the same txn_id is the same message");
    let expected =
        "Hallo Maria, hier ist Anna Werkzeug von Werkzeughaus.\n\nWir sind täglich von 9 bis 17 Uhr da.";
    let sent = eventually("the message", Duration::from_secs(20), || async {
        let b = bodies_of(&anna, &room, &anna.user_id).await;
        (!b.is_empty()).then_some(b)
    })
    .await;
    assert_eq!(sent, [expected], "one message, Anna's own");

    // Others may not send here: not in the chat, another institution, a colleague chat.
    let (s, v) = c
        .call(
            Method::POST,
            &format!("/rooms/{}/snippets", enc(&room)),
            Some(json!({"ids": [hours], "txn_id": "c1"})),
        )
        .await;
    assert_eq!(s, 403, "Carl is not in the chat: {v}");
    let (s, v) = o
        .call(
            Method::POST,
            &format!("/rooms/{}/snippets", enc(&room)),
            Some(json!({"ids": [hours], "txn_id": "o1"})),
        )
        .await;
    assert_eq!(s, 403, "another institution: {v}");
    let (s, v) = a
        .call(
            Method::POST,
            &format!("/rooms/{}/snippets", enc(&room)),
            Some(json!({"ids": [999999], "txn_id": "a2"})),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = a
        .call(
            Method::POST,
            &format!("/rooms/{}/snippets", enc(&room)),
            Some(json!({"ids": [hours], "txn_id": "a b"})),
        )
        .await;
    assert_eq!(s, 400, "a bad txn_id: {v}");
    let (s, v) = anna.create_room_raw(json!({"invite": [ben.user_id], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let colleague = v["room_id"].as_str().expect("room").to_owned();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (s, v) = a
        .call(
            Method::POST,
            &format!("/rooms/{}/snippets", enc(&colleague)),
            Some(json!({"ids": [hours], "txn_id": "a3"})),
        )
        .await;
    assert!(s == 403 || s == 404, "no tools in a colleague chat: {s} {v}");

    // The keyboard path: the snippet appears as Anna's message and the command is gone.
    let command = anna.send_text(&rid(&room), "!assisto baustein öffnungs").await;
    eventually("the snippet from the command", Duration::from_secs(20), || async {
        let b = bodies_of(&anna, &room, &anna.user_id).await;
        (b.first().map(String::as_str) == Some("Wir sind täglich von 9 bis 17 Uhr da.")).then_some(())
    })
    .await;
    let redacted = eventually("the command to be redacted", Duration::from_secs(20), || async {
        let v =
            anna.raw_get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(&command))).await;
        v["unsigned"].get("redacted_because").is_some().then_some(v)
    })
    .await;
    assert_eq!(redacted["content"], json!({}), "{redacted}");
    svc.command(&anna, &room, "!assisto baustein gibtsnicht", "gibt es nicht").await;
    svc.command(&anna, &room, "!assisto bausteine", "Öffnungszeiten").await;
    let bodies = bodies_of(&anna, &room, &anna.user_id).await;
    assert_eq!(bodies.iter().filter(|b| b.as_str() == expected).count(), 1, "{bodies:?}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_numbers_and_links_reach_the_visitor_as_cards() {
    let mut svc = TestService::start_public().await;
    let inst = svc.institution("Kartenhaus").await;
    let anna = svc.counsellor(&inst, "Anna Karte").await;
    svc.set_status(&anna.user_id, "online").await;
    let a = Tools::of(&svc, &anna).await;
    let (visitor, room) = taken_live_chat(&svc, &inst, &anna).await;
    // The live room carries the tools widget from its creation.
    let widget = anna
        .raw_get(&format!(
            "/_matrix/client/v3/rooms/{}/state/im.vector.modular.widgets/assisto-werkzeuge",
            enc(&room)
        ))
        .await;
    assert!(
        widget["url"].as_str().is_some_and(|u| u.contains("/_assisto/widget/werkzeuge?room=")),
        "{widget}"
    );
    let tools = a.room_ready(&room).await;
    assert_eq!((tools["kind"].as_str(), tools["phone"]["offered"].as_bool()), (Some("live"), Some(false)));
    let phone = format!("/rooms/{}/phone", enc(&room));

    // The toggle is off: refused (and the widget does not offer it).
    let (s, v) = a.call(Method::POST, &phone, Some(json!({"number": "0221 123456", "txn_id": "p0"}))).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("ausgeschaltet"), "{v}");
    // Settings: normalised, never cut off; invalid numbers refused.
    let (s, v) =
        a.call(Method::PUT, "/settings", Some(json!({"phone": "0221 12 ab", "allow_phone": true}))).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{v}");
    let (s, v) = a
        .call(Method::PUT, "/settings", Some(json!({"phone": "0049 (0)221 / 123-456", "allow_phone": true})))
        .await;
    assert_eq!(
        (s, v["phone"].as_str(), v["allow_phone"].as_bool()),
        (200, Some("+49221123456"), Some(true)),
        "{v}"
    );
    let (s, v) = svc.admin(Method::GET, &format!("/counsellors/{}/tools", enc(&anna.user_id)), None).await;
    assert_eq!((s, v["phone"].as_str()), (200, Some("+49221123456")), "the dashboard sees it: {v}");
    let (s, v) = a.call(Method::POST, &phone, Some(json!({"txn_id": "p1"}))).await;
    assert_eq!(s, 200, "the stored number: {v}");
    let (s, v) = a.call(Method::POST, &phone, Some(json!({"number": "12", "txn_id": "p2"}))).await;
    assert_eq!(s, 400, "{v}");

    // Links: http(s) with a host only.
    let link = format!("/rooms/{}/link", enc(&room));
    for bad in
        ["javascript:alert(1)", "https://nutzer:pw@beispiel.de", "www.beispiel.de", "ftp://beispiel.de/x"]
    {
        let (s, v) = a.call(Method::POST, &link, Some(json!({"url": bad, "txn_id": "l0"}))).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let url = "https://www.beispiel.de/hilfe?thema=schule";
    let (s, v) = a.call(Method::POST, &link, Some(json!({"url": url, "txn_id": "l1"}))).await;
    assert_eq!(s, 200, "{v}");
    let tools = a.room_ready(&room).await;
    assert_eq!(tools["recent_links"], json!([url]), "offered again");

    // A counsellor forging a card with a script link: shown as plain text, never as a card.
    let forged = json!({"msgtype": "m.text", "body": "Klick", "de.assisto.card": {"kind": "link", "href": "javascript:alert(1)"}});
    let (s, v) = anna
        .raw(
            Method::PUT,
            &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/forged1", enc(&room)),
            Some(forged),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // The keyboard path.
    anna.send_text(&rid(&room), "!assisto link https://hilfe.example.org/").await;
    anna.send_text(&rid(&room), "!assisto telefon 0800 111 0 111").await;

    let messages = eventually("the cards for the visitor", Duration::from_secs(20), || async {
        let m: Vec<Value> =
            visitor.messages().await.into_iter().filter(|m| m["from"] == "counsellor").collect();
        (m.len() >= 5).then_some(m)
    })
    .await;
    let kinds: Vec<(&str, &str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap_or_default(),
                m["text"].as_str().unwrap_or_default(),
                m["href"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("phone", "+49221123456", "tel:+49221123456"),
            ("link", "www.beispiel.de", url),
            ("text", "Klick", ""),
            ("link", "hilfe.example.org", "https://hilfe.example.org/"),
            ("phone", "08001110111", "tel:08001110111"),
        ],
        "{messages:#?}"
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_chat_needs_the_toggle_and_a_service_and_reaches_the_visitor_as_a_card() {
    let mut svc = TestService::start_public().await;
    let inst = svc.institution("Videohaus").await;
    let anna = svc.counsellor(&inst, "Anna Video").await;
    svc.set_status(&anna.user_id, "online").await;
    let a = Tools::of(&svc, &anna).await;
    let (visitor, room) = taken_live_chat(&svc, &inst, &anna).await;
    a.room_ready(&room).await;
    let start = format!("/rooms/{}/video", enc(&room));
    let video_admin = format!("/institutions/{}/video", inst.id);

    // Off, then on without a video service: refused with a clear German message.
    let (s, v) = a.call(Method::POST, &start, Some(json!({"txn_id": "v0"}))).await;
    assert!(s == 403 && v["error"].as_str().unwrap_or_default().contains("ausgeschaltet"), "{s} {v}");
    let (s, v) =
        a.call(Method::PUT, "/settings", Some(json!({"allow_phone": false, "allow_video": true}))).await;
    assert_eq!((s, v["allow_video"].as_bool()), (200, Some(true)), "{v}");
    let (s, v) = a.call(Method::POST, &start, Some(json!({"txn_id": "v0"}))).await;
    assert!(s == 403 && v["error"].as_str().unwrap_or_default().contains("kein Videodienst"), "{s} {v}");
    let tools = a.room_ready(&room).await;
    assert_eq!(tools["video"], json!({"offered": true, "configured": false}), "the widget says so: {tools}");
    let (s, _) = svc.admin(Method::GET, &video_admin, None).await;
    assert_eq!(s, 404);

    // The institution's service: validated.
    for bad in [
        json!({"service": "jitsi", "base_url": "http://meet.example.org"}),
        json!({"service": "skype", "base_url": "https://meet.example.org"}),
        json!({"service": "jitsi", "base_url": "https://meet.example.org", "jwt_app_id": "assisto"}),
        json!({"service": "element_call", "base_url": "https://call.example.org", "jwt_app_id": "a", "jwt_secret": "0123456789abcdef"}),
    ] {
        let (s, v) = svc.admin(Method::PUT, &video_admin, Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let jitsi = json!({"service": "jitsi", "base_url": "https://meet.example.org/"});
    let (s, v) = svc.admin(Method::PUT, &video_admin, Some(jitsi)).await;
    assert_eq!(
        (s, v["base_url"].as_str(), v["jwt"].as_bool()),
        (200, Some("https://meet.example.org"), Some(false)),
        "{v}"
    );

    // Started: a fresh, unguessable conference as a Jitsi widget Element shows natively.
    let (s, first) = a.call(Method::POST, &start, Some(json!({"txn_id": "v1"}))).await;
    assert_eq!(s, 200, "{first}");
    let url = first["url"].as_str().expect("url").to_owned();
    let name = url.strip_prefix("https://meet.example.org/").expect("on the institution's server").to_owned();
    assert!(name.starts_with("assisto-") && name.len() == 40, "{name}");
    let (s, again) = a.call(Method::POST, &start, Some(json!({"txn_id": "v1"}))).await;
    assert_eq!((s, &again), (200, &first), "the same request is the same conference and message");
    let widget_path =
        format!("/_matrix/client/v3/rooms/{}/state/im.vector.modular.widgets/assisto-videochat", enc(&room));
    let widget = anna.raw_get(&widget_path).await;
    assert_eq!(
        (widget["type"].as_str(), widget["data"]["conferenceId"].as_str()),
        (Some("jitsi"), Some(name.as_str()))
    );
    assert_eq!(widget["data"]["domain"], "meet.example.org", "{widget}");

    // Protected: each link carries its own JWT; the secret is never shown.
    let secret = "geheim-0123456789-abcdef";
    let protected = json!({"service": "jitsi", "base_url": "https://meet.example.org", "jwt_app_id": "assisto", "jwt_secret": secret});
    let (s, v) = svc.admin(Method::PUT, &video_admin, Some(protected)).await;
    assert_eq!((s, v["jwt"].as_bool()), (200, Some(true)), "{v}");
    assert!(!v.to_string().contains(secret), "{v}");
    let (s, second) = a.call(Method::POST, &start, Some(json!({"txn_id": "v2"}))).await;
    assert_eq!(s, 200, "{second}");
    let mine = second["url"].as_str().expect("url").to_owned();
    let (conf, token) =
        mine.strip_prefix("https://meet.example.org/").and_then(|r| r.split_once("?jwt=")).expect("a JWT");
    assert_ne!(conf, name, "a fresh conference");
    let claims = jwt_claims(token);
    assert_eq!(
        (claims["iss"].as_str(), claims["room"].as_str(), claims["aud"].as_str()),
        (Some("assisto"), Some(conf), Some("jitsi"))
    );
    let user = &claims["context"]["user"];
    assert_eq!(
        (user["moderator"].as_bool(), user["name"].as_str()),
        (Some(true), Some("Anna Video")),
        "{claims}"
    );
    let widget = anna.raw_get(&widget_path).await;
    assert_eq!(
        (widget["type"].as_str(), widget["url"].as_str()),
        (Some("m.custom"), Some(mine.as_str())),
        "{widget}"
    );

    // Element Call; and the keyboard path.
    let call = json!({"service": "element_call", "base_url": "https://call.example.org"});
    let (s, v) = svc.admin(Method::PUT, &video_admin, Some(call)).await;
    assert_eq!(s, 200, "{v}");
    anna.send_text(&rid(&room), "!assisto video").await;

    let cards = eventually("three video cards for the visitor", Duration::from_secs(20), || async {
        let m: Vec<Value> = visitor.messages().await.into_iter().filter(|m| m["kind"] == "video").collect();
        (m.len() >= 3).then_some(m)
    })
    .await;
    assert_eq!(cards[0]["href"].as_str(), Some(url.as_str()), "{cards:#?}");
    let theirs = cards[1]["href"].as_str().expect("href");
    let (their_conf, their_token) =
        theirs.strip_prefix("https://meet.example.org/").and_then(|r| r.split_once("?jwt=")).expect("a JWT");
    assert_eq!(their_conf, conf);
    assert_ne!(their_token, token, "the client's own JWT");
    assert_eq!(jwt_claims(their_token)["context"]["user"]["moderator"].as_bool(), Some(false));
    let element_call = cards[2]["href"].as_str().unwrap_or_default();
    assert!(element_call.starts_with("https://call.example.org/room/#/assisto-"), "{cards:#?}");
    let (s, _) = svc.admin(Method::DELETE, &video_admin, None).await;
    assert_eq!(s, 204);
    svc.stop().await;
}
