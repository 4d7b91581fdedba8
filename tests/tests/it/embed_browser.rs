//! The web embed in a real browser (headless Chromium), against the real stack: an
//! anonymous visitor on an institution's page opens the chat bubble and writes, sends files
//! and a voice message; a counsellor
//! (a real Matrix client of the real homeserver) takes the chat and answers; the visitor
//! sees the answer live, over WebSocket and over the long-poll fallback, and after a reload.
//! axe-core finds no WCAG 2.1 A/AA violation on the open chat; screenshots at 320 px and
//! 1280 px land in `target/test-output/`.

use std::time::Duration;

use assisto_tests::{
    browser::Browser,
    matrix::{enc, rid},
    TestService,
};
use reqwest::Method;
use serde_json::json;

/// The institution's page, on its own origin, with the chat bubble of the anonymous area.
async fn institution_page(svc_url: &str, inst: &str) -> String {
    page_with(
        svc_url,
        &format!(r#"data-institution="{inst}" data-form="bubble" data-area="anonymous" data-test="1""#),
    )
    .await
}

async fn count(b: &Browser, css: &str) -> i64 {
    b.eval("return document.querySelectorAll(arguments[0]).length;", json!([css])).await.as_i64().unwrap_or(0)
}

async fn has_message(b: &Browser, from: &str, text: &str) -> bool {
    b.eval(
        "return [...document.querySelectorAll('.assisto-msg[data-from=\"' + arguments[0] + '\"]')]
            .some((m) => m.textContent.includes(arguments[1]) && m.getAttribute('data-pending') !== 'true');",
        json!([from, text]),
    )
    .await
        == json!(true)
}

async fn wait_message(b: &Browser, from: &str, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !has_message(b, from, text).await {
        assert!(std::time::Instant::now() < deadline, "the message from {from} did not appear: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn open_bubble(b: &Browser) {
    b.wait_until(
        "the launcher",
        "return !!document.querySelector('.assisto-launcher');",
        Duration::from_secs(20),
    )
    .await;
    b.click(&b.find(".assisto-launcher").await).await;
    start_chat(b).await;
}

/// Where the visitor is asked first (a counsellor is proposed, or there are departments),
/// starts with the preselected choice ("the next free counsellor"); waits for the composer.
async fn start_chat(b: &Browser) {
    b.wait_until(
        "the chooser or the composer",
        "const i = document.querySelector('.assisto-input'); \
         return !!document.querySelector('.assisto-start-chat') || (!!i && i.offsetParent !== null);",
        Duration::from_secs(20),
    )
    .await;
    if let Some(start) = b.try_find(".assisto-start-chat").await {
        b.click(&start).await;
    }
    b.wait_until(
        "the composer",
        "const i = document.querySelector('.assisto-input'); return !!i && !i.disabled && i.offsetParent !== null;",
        Duration::from_secs(20),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_chats_with_a_counsellor_through_the_bubble() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Bubblehaus").await;
    let anna = svc.counsellor(&inst, "Anna Bubble").await;
    svc.set_status(&anna.user_id, "online").await;
    let page = institution_page(&svc.url(), &inst.id).await;
    let config = json!({"anonymous": {"tile": false, "bubble": true}, "registered": {"tile": true, "bubble": false},
        "allowed_origins": [page]});
    let (s, v) =
        svc.admin(Method::PUT, &format!("/institutions/{}/chat-config", inst.id), Some(config)).await;
    assert_eq!(s, 200, "{v}");

    let b = Browser::start().await;
    b.goto(&page).await;
    open_bubble(&b).await;
    b.wait_until(
        "the WebSocket",
        "return document.querySelector('.assisto-root').getAttribute('data-transport') === 'ws';",
        Duration::from_secs(20),
    )
    .await;
    let input = b.find(".assisto-input").await;
    b.type_text(&input, "Hallo, ich brauche Hilfe 🙏").await;
    b.click(&b.find(".assisto-send").await).await;
    wait_message(&b, "me", "Hallo, ich brauche Hilfe 🙏").await;
    assert!(count(&b, ".assisto-waiting").await > 0, "the visitor is told to wait");

    // The counsellor takes the chat from the Live space and sees the guest's message.
    let db = svc.running().db.clone();
    let room: String = sqlx::query_scalar(
        "SELECT e.room_id FROM embed_conversations e JOIN clients c ON c.user_id = e.client WHERE c.display_name = 'Gast 1'",
    )
    .fetch_one(db.pool())
    .await
    .expect("the live chat");
    let (s, v) =
        anna.raw(Method::POST, &format!("/_matrix/client/v3/join/{}", enc(&room)), Some(json!({}))).await;
    assert_eq!(s, 200, "{v}");
    let msgs = anna.recent_messages(&rid(&room), 10).await;
    let guest = msgs
        .iter()
        .find(|(_, body)| body == "Hallo, ich brauche Hilfe 🙏")
        .map(|(sender, _)| sender.clone())
        .unwrap_or_else(|| panic!("the counsellor sees the message: {msgs:?}"));
    let (_, members) =
        anna.raw(Method::GET, &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room)), None).await;
    assert_eq!(members["joined"][&guest]["display_name"], "Gast 1", "{members}");
    b.wait_until(
        "the end of waiting",
        "return !document.querySelector('.assisto-waiting');",
        Duration::from_secs(20),
    )
    .await;

    // The answer arrives live.
    anna.send_text(&rid(&room), "Hallo, hier ist Anna. Ich bin für dich da.").await;
    wait_message(&b, "counsellor", "Hallo, hier ist Anna.").await;
    assert_eq!(
        b.eval("return document.querySelector('.assisto-log').getAttribute('aria-live');", json!([])).await,
        "polite",
        "new messages are announced"
    );

    // Several files at once, through the attach button's file picker.
    let dir = tempfile::tempdir().expect("dir");
    let pdf = dir.path().join("Hilfeplan.pdf");
    let png = dir.path().join("Foto.png");
    std::fs::write(&pdf, b"%PDF-1.4\n% Hilfeplan\n%%EOF\n").expect("pdf");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n0000").expect("png");
    b.type_text(&b.find(".assisto-file-input").await, &format!("{}\n{}", pdf.display(), png.display())).await;
    b.wait_until(
        "the two files",
        "return document.querySelectorAll('.assisto-msg[data-kind=\"file\"][data-from=\"me\"][data-id]').length === 2;",
        Duration::from_secs(20),
    )
    .await;
    let msgs = anna.recent_messages(&rid(&room), 20).await;
    assert!(msgs.iter().any(|(s, body)| *s == guest && body == "Hilfeplan.pdf"), "{msgs:?}");
    assert!(msgs.iter().any(|(s, body)| *s == guest && body == "Foto.png"), "{msgs:?}");
    // The counsellor's client fetches the file itself from the homeserver's media API.
    let (_, timeline) = anna
        .raw(Method::GET, &format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=20", enc(&room)), None)
        .await;
    let event = timeline["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .find(|e| e["content"]["body"] == "Hilfeplan.pdf")
        .cloned()
        .expect("the file event");
    assert_eq!(
        (event["sender"].as_str(), event["content"]["msgtype"].as_str()),
        (Some(guest.as_str()), Some("m.file"))
    );
    let mxc = event["content"]["url"].as_str().expect("mxc").trim_start_matches("mxc://").to_owned();
    let media = reqwest::Client::new()
        .get(format!("{}/_matrix/client/v1/media/download/{mxc}", assisto_tests::synapse::synapse().url))
        .bearer_auth(anna.client.access_token().expect("token"))
        .send()
        .await
        .expect("download");
    assert_eq!(media.bytes().await.expect("bytes").as_ref(), b"%PDF-1.4\n% Hilfeplan\n%%EOF\n");

    // A voice message, recorded in the browser (Chromium's fake microphone).
    b.click(&b.find(".assisto-record").await).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.click(&b.find(".assisto-record").await).await;
    b.wait_until(
        "the recording to be ready",
        "const s = document.querySelector('.assisto-rec-send'); return !!s && !s.hidden && s.offsetParent !== null;",
        Duration::from_secs(10),
    )
    .await;
    b.click(&b.find(".assisto-rec-send").await).await;
    b.wait_until(
        "the voice message",
        "return !!document.querySelector('.assisto-msg[data-kind=\"voice\"][data-from=\"me\"][data-id]');",
        Duration::from_secs(20),
    )
    .await;
    let voice_id = b
        .eval(
            "return document.querySelector('.assisto-msg[data-kind=\"voice\"][data-from=\"me\"]').getAttribute('data-id');",
            json!([]),
        )
        .await;
    let ev = anna
        .raw_get(&format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(&room),
            enc(voice_id.as_str().expect("voice id"))
        ))
        .await;
    assert_eq!(
        (ev["sender"].as_str(), ev["content"]["msgtype"].as_str()),
        (Some(guest.as_str()), Some("m.audio")),
        "{ev}"
    );
    assert!(
        ev["content"].get("org.matrix.msc3245.voice").is_some(),
        "a voice message in Element's terms: {ev}"
    );
    assert!(ev["content"]["info"]["duration"].as_u64().is_some_and(|d| d >= 1000), "{ev}");

    let violations = b.axe_violations().await;
    assert!(violations.is_empty(), "axe: WCAG 2.1 A/AA violations on the open chat: {violations:#?}");

    // Phone and desktop.
    for (width, name) in [(320, "embed-bubble-320"), (1280, "embed-bubble-1280")] {
        b.set_size(width, 800).await;
        let fits = b
            .eval(
                "return document.documentElement.scrollWidth <= document.documentElement.clientWidth;",
                json!([]),
            )
            .await;
        assert_eq!(fits, true, "the page scrolls sideways at {width} px");
        let (path, px) = b.screenshot(name).await;
        assert!(px >= width / 2, "{} is {px} px wide", path.display());
    }

    // The long-poll fallback (for proxies that drop WebSockets) delivers too.
    b.eval("window.assistoEmbed.forcePolling();", json!([])).await;
    b.wait_until(
        "long polling",
        "return document.querySelector('.assisto-root').getAttribute('data-transport') === 'poll';",
        Duration::from_secs(10),
    )
    .await;
    anna.send_text(&rid(&room), "Über die Ausweichverbindung").await;
    wait_message(&b, "counsellor", "Über die Ausweichverbindung").await;

    // After a reload: the same chat, with its history, and no message twice.
    b.goto(&page).await;
    open_bubble(&b).await;
    wait_message(&b, "me", "Hallo, ich brauche Hilfe 🙏").await;
    wait_message(&b, "counsellor", "Über die Ausweichverbindung").await;
    let ids = b
        .eval(
            "const ids = [...document.querySelectorAll('.assisto-msg[data-id]')].map((m) => m.getAttribute('data-id'));
             return ids.length === new Set(ids).size;",
            json!([]),
        )
        .await;
    assert_eq!(ids, true, "no message is shown twice");

    // Blocked: the visitor is told so and can no longer write.
    let client: String = sqlx::query_scalar("SELECT client FROM embed_conversations WHERE room_id = $1")
        .bind(&room)
        .fetch_one(db.pool())
        .await
        .expect("client");
    let (s, _) = svc.admin(Method::POST, &format!("/clients/{}/block", enc(&client)), None).await;
    assert_eq!(s, 200);
    b.wait_until(
        "the blocked view",
        "return !document.querySelector('.assisto-input') || document.querySelector('.assisto-alert')?.textContent.length > 0;",
        Duration::from_secs(20),
    )
    .await;
    b.quit().await;
    svc.stop().await;
}

/// A page of an institution with one embed script tag (`attrs` are its data attributes)
/// and, for tiles, a container.
async fn page_with(svc_url: &str, attrs: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let html = format!(
        r#"<!doctype html><html lang="de"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Mein Bereich</title></head>
<body><main><h1>Mein Bereich</h1><div id="chat"></div></main>
<script src="{svc_url}/_assisto/embed/v1/embed.js" async {attrs}></script></body></html>"#
    );
    let app =
        axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(html) }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    origin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logged_in_tile_in_english_switched_off_forms_and_nobody_available() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Kachelhaus").await;
    let _anna = svc.counsellor(&inst, "Anna Kachel").await;
    svc.set_status(&_anna.user_id, "online").await;
    let token = assisto_tests::embed::site_token(&svc, &inst.id, "site-user-7", "Maria Muster").await;
    let tile = page_with(
        &svc.url(),
        &format!(
            r##"data-institution="{}" data-form="tile" data-area="registered" data-target="#chat" data-lang="en" data-token="{token}""##,
            inst.id
        ),
    )
    .await;
    let bubble_off = page_with(
        &svc.url(),
        &format!(
            r#"data-institution="{}" data-form="bubble" data-area="registered" data-token="{token}""#,
            inst.id
        ),
    )
    .await;
    let config = json!({"anonymous": {"tile": false, "bubble": true}, "registered": {"tile": true, "bubble": false},
        "allowed_origins": [tile, bubble_off]});
    let (s, v) =
        svc.admin(Method::PUT, &format!("/institutions/{}/chat-config", inst.id), Some(config)).await;
    assert_eq!(s, 200, "{v}");

    let b = Browser::start().await;
    // The logged-in tile, in English, inline in the page.
    b.goto(&tile).await;
    b.wait_until(
        "the tile's composer",
        "const i = document.querySelector('#chat .assisto-input'); return !!i && !i.disabled && i.offsetParent !== null;",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        b.eval("return document.querySelector('.assisto-root').getAttribute('lang');", json!([])).await,
        "en"
    );
    assert_eq!(
        b.eval("return document.querySelector('.assisto-send').textContent.trim();", json!([])).await,
        "Send"
    );
    b.type_text(&b.find(".assisto-input").await, "Hello from the logged-in area").await;
    b.click(&b.find(".assisto-send").await).await;
    wait_message(&b, "me", "Hello from the logged-in area").await;
    let violations = b.axe_violations().await;
    assert!(violations.is_empty(), "axe on the tile: {violations:#?}");
    let (path, _) = b.screenshot("embed-tile-en-1280").await;
    assert!(path.exists());
    // The site's user is one client, shown to counsellors by the site's name.
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM clients WHERE display_name = 'Maria Muster' AND kind = 'registered'",
    )
    .fetch_one(svc.running().db.pool())
    .await
    .expect("count");
    assert_eq!(n, 1);

    // A form that is switched off shows nothing at all.
    b.goto(&bubble_off).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&b, ".assisto-root, .assisto-launcher").await, 0, "nothing where the form is off");

    // Without any counsellor the bubble says so instead of offering a dead chat.
    let empty = svc.institution("Leerhaus").await;
    let nobody = page_with(
        &svc.url(),
        &format!(r#"data-institution="{}" data-form="bubble" data-area="anonymous""#, empty.id),
    )
    .await;
    let config = json!({"anonymous": {"tile": false, "bubble": true}, "registered": {"tile": true, "bubble": false},
        "allowed_origins": [nobody]});
    let (s, _) =
        svc.admin(Method::PUT, &format!("/institutions/{}/chat-config", empty.id), Some(config)).await;
    assert_eq!(s, 200);
    b.goto(&nobody).await;
    b.wait_until(
        "the launcher",
        "return !!document.querySelector('.assisto-launcher');",
        Duration::from_secs(20),
    )
    .await;
    b.click(&b.find(".assisto-launcher").await).await;
    b.wait_until(
        "the notice",
        "const u = document.querySelector('.assisto-unavailable'); return !!u && u.textContent.includes('keine Beraterin');",
        Duration::from_secs(10),
    )
    .await;
    let visible_inputs = b
        .eval(
            "return [...document.querySelectorAll('.assisto-input')].filter((i) => i.offsetParent !== null).length;",
            json!([]),
        )
        .await;
    assert_eq!(visible_inputs, 0, "no composer when nobody can answer");
    b.quit().await;
    svc.stop().await;
}

/// Whether the focused element has a class.
async fn focused(b: &Browser, class: &str) -> bool {
    b.eval(
        "return !!document.activeElement && document.activeElement.classList.contains(arguments[0]);",
        json!([class]),
    )
    .await
        == json!(true)
}

/// Whether the focus is inside the bubble's panel.
async fn focus_in_panel(b: &Browser) -> bool {
    b.eval("return document.querySelector('.assisto-panel').contains(document.activeElement);", json!([]))
        .await
        == json!(true)
}

/// Presses Tab (at most `max` times) until the element with `class` has the focus.
async fn tab_to(b: &Browser, class: &str, max: usize) -> bool {
    for _ in 0..max {
        if focused(b, class).await {
            return true;
        }
        b.keys("\u{E004}").await;
    }
    focused(b, class).await
}

/// Keyboard only: Tab to the bubble, Enter opens it, focus moves into the chat, Enter sends,
/// Escape closes it and gives the focus back to the bubble.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bubble_works_by_keyboard_alone() {
    const TAB: &str = "\u{E004}";
    const ENTER: &str = "\u{E007}";
    const ESCAPE: &str = "\u{E00C}";
    let mut svc = TestService::start().await;
    let inst = svc.institution("Tastaturhaus").await;
    let _anna = svc.counsellor(&inst, "Anna Tastatur").await;
    svc.set_status(&_anna.user_id, "online").await;
    let page = institution_page(&svc.url(), &inst.id).await;
    let config = json!({"anonymous": {"tile": false, "bubble": true}, "registered": {"tile": true, "bubble": false},
        "allowed_origins": [page]});
    let (s, _) =
        svc.admin(Method::PUT, &format!("/institutions/{}/chat-config", inst.id), Some(config)).await;
    assert_eq!(s, 200);

    let b = Browser::start().await;
    b.goto(&page).await;
    b.wait_until(
        "the launcher",
        "return !!document.querySelector('.assisto-launcher');",
        Duration::from_secs(20),
    )
    .await;
    for _ in 0..10 {
        if focused(&b, "assisto-launcher").await {
            break;
        }
        b.keys(TAB).await;
    }
    assert!(focused(&b, "assisto-launcher").await, "the bubble is reachable with Tab");
    b.keys(ENTER).await;
    b.wait_until(
        "the panel",
        "return document.querySelector('.assisto-launcher').getAttribute('aria-expanded') === 'true';",
        Duration::from_secs(10),
    )
    .await;
    // Anna is proposed: the visitor is asked first, and answers by keyboard too.
    b.wait_until(
        "the chooser",
        "return !!document.querySelector('.assisto-start-chat');",
        Duration::from_secs(20),
    )
    .await;
    assert!(focus_in_panel(&b).await, "the focus moves into the chat's chooser");
    assert!(tab_to(&b, "assisto-start-chat", 10).await, "the start button is reachable with Tab");
    b.keys(ENTER).await;
    b.wait_until(
        "the composer",
        "const i = document.querySelector('.assisto-input'); return !!i && !i.disabled && i.offsetParent !== null;",
        Duration::from_secs(20),
    )
    .await;
    assert!(focus_in_panel(&b).await, "the focus moves into the chat");
    assert!(tab_to(&b, "assisto-input", 20).await, "the message field is reachable with Tab");
    b.keys("Per Tastatur geschrieben").await;
    b.keys(ENTER).await;
    wait_message(&b, "me", "Per Tastatur geschrieben").await;
    b.keys(ESCAPE).await;
    b.wait_until(
        "the bubble to close",
        "return document.querySelector('.assisto-launcher').getAttribute('aria-expanded') === 'false' \
         && document.activeElement === document.querySelector('.assisto-launcher');",
        Duration::from_secs(10),
    )
    .await;
    b.quit().await;
    svc.stop().await;
}

/// A counsellor of `departments`, online.
async fn counsellor_in(
    svc: &TestService,
    inst: &assisto_tests::TestInstitution,
    name: &str,
    departments: &[&str],
) -> assisto_tests::matrix::TestUser {
    let localpart = svc.counsellor_localpart(&name.to_lowercase().replace(' ', "."));
    let password = format!("pw-{}", uuid::Uuid::new_v4());
    let body = json!({"localpart": localpart, "display_name": name, "password": password, "departments": departments});
    let (s, v) = svc.admin(Method::POST, &format!("/institutions/{}/counsellors", inst.id), Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let c = assisto_tests::matrix::TestUser::login(&localpart, &password).await;
    svc.set_status(&c.user_id, "online").await;
    c
}

async fn choice_labels(b: &Browser, legend_index: usize) -> Vec<String> {
    let v = b
        .eval(
            "const f = document.querySelectorAll('.assisto-chooser fieldset')[arguments[0]];
             return f ? [...f.querySelectorAll('.assisto-choice label')].map((l) => l.textContent) : [];",
            json!([legend_index]),
        )
        .await;
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// The visitor picks a department and a proposed counsellor before the chat starts, waits
/// in the queue (told that someone is coming), and a logged-in client writes to a
/// counsellor of "Unser Team". axe-core on the chooser, the queue view and the team
/// dialog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_chooses_department_and_counsellor_and_a_client_writes_to_our_team() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Wahlseite").await;
    let dept = |name: &'static str| {
        let (svc, inst) = (&svc, &inst);
        async move {
            let (s, v) = svc
                .admin(
                    Method::POST,
                    &format!("/institutions/{}/departments", inst.id),
                    Some(json!({"name": name})),
                )
                .await;
            assert_eq!(s, 201, "{v}");
            v["id"].as_str().expect("id").to_owned()
        }
    };
    let youth = dept("Jugendberatung").await;
    let family = dept("Familienberatung").await;
    let bea = counsellor_in(&svc, &inst, "Bea Jugend", &[&youth]).await;
    let carl = counsellor_in(&svc, &inst, "Carl Familie", &[&family]).await;
    let token = assisto_tests::embed::site_token(&svc, &inst.id, "wahl-7", "Mia Muster").await;
    let page = institution_page(&svc.url(), &inst.id).await;
    let tile = page_with(
        &svc.url(),
        &format!(r##"data-institution="{}" data-form="tile" data-area="registered" data-target="#chat" data-token="{token}""##, inst.id),
    )
    .await;
    let config = json!({"anonymous": {"tile": false, "bubble": true}, "registered": {"tile": true, "bubble": false},
        "allowed_origins": [page, tile]});
    let (s, v) =
        svc.admin(Method::PUT, &format!("/institutions/{}/chat-config", inst.id), Some(config)).await;
    assert_eq!(s, 200, "{v}");

    let b = Browser::start().await;
    b.goto(&page).await;
    b.wait_until(
        "the launcher",
        "return !!document.querySelector('.assisto-launcher');",
        Duration::from_secs(20),
    )
    .await;
    b.click(&b.find(".assisto-launcher").await).await;
    b.wait_until(
        "the chooser",
        "return !!document.querySelector('.assisto-chooser');",
        Duration::from_secs(20),
    )
    .await;
    let mut departments = choice_labels(&b, 0).await;
    departments.sort();
    assert_eq!(departments, ["Familienberatung", "Jugendberatung"]);
    let violations = b.axe_violations().await;
    assert!(violations.is_empty(), "axe on the chooser: {violations:#?}");
    let (path, _) = b.screenshot("embed-chooser-1280").await;
    assert!(path.exists());

    // Family counselling: only Carl is proposed (beside the next free counsellor).
    b.click(&b.find(&format!(".assisto-chooser input[value=\"{family}\"]")).await).await;
    b.wait_until(
        "the family's counsellors",
        "const f = document.querySelectorAll('.assisto-chooser fieldset')[1];
         return !!f && f.textContent.includes('Carl Familie') && !f.textContent.includes('Bea Jugend');",
        Duration::from_secs(10),
    )
    .await;
    let who = choice_labels(&b, 1).await;
    assert_eq!(who, ["Mit der nächsten freien beratenden Person", "Carl Familie"]);
    b.eval(
        "[...document.querySelectorAll('.assisto-choice')].find((c) => c.textContent.includes('Carl'))
            .querySelector('input').click(); return true;",
        json!([]),
    )
    .await;
    b.click(&b.find(".assisto-start-chat").await).await;
    b.wait_until(
        "the composer",
        "const i = document.querySelector('.assisto-input'); return !!i && !i.disabled && i.offsetParent !== null;",
        Duration::from_secs(20),
    )
    .await;

    // The chat waits in the family queue, offered to Carl; the visitor is told someone comes.
    let (s, chats) = svc.admin(Method::GET, &format!("/institutions/{}/live-chats", inst.id), None).await;
    assert_eq!(s, 200, "{chats}");
    assert_eq!(chats[0]["state"], "offered", "{chats}");
    assert_eq!(chats[0]["counsellor"], carl.user_id.as_str(), "{chats}");
    assert_eq!(chats[0]["department_id"], family.as_str(), "{chats}");
    b.wait_until(
        "the queue view",
        "const w = document.querySelector('.assisto-waiting'); return !!w && w.textContent.includes('kommt gleich');",
        Duration::from_secs(20),
    )
    .await;
    let violations = b.axe_violations().await;
    assert!(violations.is_empty(), "axe on the queue view: {violations:#?}");
    b.set_size(320, 640).await;
    let (path, _) = b.screenshot("embed-queue-320").await;
    assert!(path.exists());
    b.set_size(1280, 900).await;

    // The logged-in area: "Unser Team" lists both with their status; writing to Bea
    // brings her into the client's chat.
    b.goto(&tile).await;
    b.wait_until(
        "the tile's composer",
        "const i = document.querySelector('#chat .assisto-input'); return !!i && !i.disabled && i.offsetParent !== null;",
        Duration::from_secs(20),
    )
    .await;
    b.click(&b.find(".assisto-team-btn").await).await;
    b.wait_until(
        "the team dialog",
        "const d = document.querySelector('.assisto-team-dialog'); return !!d && d.open && d.querySelectorAll('.assisto-team-member').length === 2;",
        Duration::from_secs(10),
    )
    .await;
    let listed = b
        .eval(
            "return [...document.querySelectorAll('.assisto-team-member')].map((m) => m.querySelector('.assisto-team-name').textContent + ': ' + m.querySelector('.assisto-team-status').textContent).sort();",
            json!([]),
        )
        .await;
    assert_eq!(listed, json!(["Bea Jugend: online", "Carl Familie: online"]));
    let violations = b.axe_violations().await;
    assert!(violations.is_empty(), "axe on the team dialog: {violations:#?}");
    b.click(&b.find(".assisto-write-to[aria-label=\"Bea Jugend schreiben\"]").await).await;
    b.wait_until(
        "the dialog to close",
        "return !document.querySelector('.assisto-team-dialog').open;",
        Duration::from_secs(10),
    )
    .await;
    wait_message(&b, "system", "Bea Jugend geschrieben").await;
    let room: String = sqlx::query_scalar(
        "SELECT e.room_id FROM embed_conversations e JOIN clients c ON c.user_id = e.client WHERE c.display_name = 'Mia Muster'",
    )
    .fetch_one(svc.running().db.pool())
    .await
    .expect("the client's chat");
    let (_, sync) = bea.raw(Method::GET, "/_matrix/client/v3/sync?timeout=0", None).await;
    assert!(sync["rooms"]["invite"].get(&room).is_some(), "Bea holds the invite: {sync}");
    b.quit().await;
    svc.stop().await;
}
