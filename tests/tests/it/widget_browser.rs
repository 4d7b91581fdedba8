//! The widgets in a real browser (headless Chromium): embedded in a page that plays
//! Element's part of the widget API, they get a real OpenID token of the homeserver. The
//! client file: loaded, and a counsellor works with it by keyboard and mouse. The live-chat
//! desk: a waiting visitor appears with what they wrote, preview, take (Element is asked to
//! open the chat), close. axe-core finds no WCAG 2.1 A/AA violation on any view; both fit
//! a 320 px phone without sideways scrolling. The tools: a snippet written, ticked and sent,
//! the phone number once its toggle is on, a link. The search: a message found while
//! typing, its match marked, opened in Element; a client found by name; bad input.

use std::time::Duration;

use assisto_tests::{
    api::OpenIdApi,
    browser::{Browser, ARROW_RIGHT},
    matrix::{enc, rid},
    TestService,
};
use reqwest::Method;
use serde_json::{json, Value};

/// A page that embeds the widget like Element does and answers `get_openid` with `token`.
fn host_page(widget_url: &str, token: &str) -> String {
    host_page_approving(widget_url, token, &[])
}

/// As [`host_page`], and, like Element, asks the widget for its capabilities once it has
/// loaded and approves those of `approve` it asked for; navigation requests are recorded in
/// `window.navigated`.
fn host_page_approving(widget_url: &str, token: &str, approve: &[&str]) -> String {
    format!(
        r#"<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Element (Test)</title></head>
<body style="margin:0;overflow:hidden"><iframe id="widget" title="Widget" src="{widget_url}"
 style="display:block;width:100%;height:100vh;border:0"></iframe>
<script>
const token = {token};
const approve = {approve};
window.navigated = [];
const frame = document.getElementById("widget");
frame.addEventListener("load", () => {{
  frame.contentWindow.postMessage({{ api: "toWidget", widgetId: "w", requestId: "caps", action: "capabilities", data: {{}} }}, "*");
}});
window.addEventListener("message", (ev) => {{
  const m = ev.data;
  if (m && m.api === "toWidget" && m.action === "capabilities" && m.response) {{
    const approved = (m.response.capabilities || []).filter((c) => approve.includes(c));
    ev.source.postMessage({{ api: "toWidget", widgetId: "w", requestId: "notify", action: "notify_capabilities",
      data: {{ requested: m.response.capabilities, approved }} }}, "*");
  }}
  if (m && m.api === "fromWidget" && m.action === "org.matrix.msc2931.navigate") {{
    window.navigated.push(m.data.uri);
    ev.source.postMessage({{ ...m, response: {{}} }}, "*");
  }}
  if (m && m.api === "fromWidget" && m.action === "get_openid") {{
    ev.source.postMessage({{ ...m, response: {{ state: "allowed", access_token: token,
      token_type: "Bearer", matrix_server_name: "localhost", expires_in: 3600 }} }}, "*");
  }}
}});
</script></body></html>"#,
        token = json!(token),
        approve = json!(approve)
    )
}

async fn serve(html: String) -> String {
    let app =
        axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(html) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/")
}

async fn text(b: &Browser, css: &str) -> String {
    b.eval("return document.querySelector(arguments[0]).textContent;", json!([css]))
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn assert_accessible(b: &Browser, what: &str) {
    let violations = b.axe_violations().await;
    assert!(violations.is_empty(), "axe found WCAG 2.1 A/AA violations on {what}: {violations:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counsellor_works_with_the_client_file_widget_in_a_browser() {
    let mut svc = TestService::start_public().await;
    let inst = svc.institution("Browserhaus").await;
    let anna = svc.counsellor(&inst, "Anna Browser").await;
    let client = svc.client(&inst, "Maria").await;
    let widget = format!("{}/_assisto/widget/mappe?client={}&widgetId=w1", svc.url(), enc(&client));
    let host = serve(host_page(&widget, &anna.openid_token().await)).await;
    let api = format!("{}/_assisto/client-file/v1/clients/{}", svc.url(), enc(&client));
    let token = anna.openid_token().await;
    let get = |path: &str| {
        let url = format!("{api}{path}");
        let token = token.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("api")
                .json::<Value>()
                .await
                .expect("json")
        }
    };

    let b = Browser::start().await;
    b.goto(&host).await;
    let frame = b.find("#widget").await;
    b.enter_frame(&frame).await;
    b.wait_until(
        "the file to load",
        "return !document.getElementById('tabs').hidden;",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(text(&b, "#name").await, "– Maria");
    assert_accessible(&b, "the master data").await;

    // Keyboard: the tabs follow the arrow keys (WAI-ARIA tabs pattern).
    b.click(&b.find("#tab-stamm").await).await;
    b.keys(ARROW_RIGHT).await;
    let selected = b.eval("return document.activeElement.id;", json!([])).await;
    assert_eq!(selected, "tab-notizen");
    assert_eq!(b.eval("return document.getElementById('notizen').hidden;", json!([])).await, false);

    // A note: written, listed with the count, then edited in the same form.
    b.type_text(&b.find("#note-text").await, "Erstgespräch im Chat geführt").await;
    b.click(&b.find("#note-save").await).await;
    b.wait_until(
        "the note",
        "return document.getElementById('notes-count').textContent === '1';",
        Duration::from_secs(10),
    )
    .await;
    b.click(&b.find("#notes li button").await).await; // Bearbeiten
    let area = b.find("#note-text").await;
    b.clear(&area).await;
    b.type_text(&area, "Erstgespräch geführt, Folgetermin am Montag").await;
    b.click(&b.find("#note-save").await).await;
    b.wait_until(
        "the edited note",
        "return document.getElementById('notes').textContent.includes('Folgetermin am Montag');",
        Duration::from_secs(10),
    )
    .await;
    assert_accessible(&b, "the notes").await;
    let notes = get("/notes").await;
    assert_eq!(
        (notes["count"].as_i64(), notes["items"][0]["text"].as_str()),
        (Some(1), Some("Erstgespräch geführt, Folgetermin am Montag"))
    );

    // A note that is too short: the server's German message is shown in the alert region.
    b.type_text(&b.find("#note-text").await, "kurz").await;
    b.eval("document.getElementById('note-text').removeAttribute('minlength');", json!([])).await;
    b.click(&b.find("#note-save").await).await;
    let error = error_line(&b).await;
    assert!(error.as_str().unwrap_or_default().contains("5 bis 1000"), "{error}");

    // A monitoring.
    b.click(&b.find("#tab-monitoring").await).await;
    b.type_text(&b.find("#mon-minutes").await, "45").await;
    b.type_text(&b.find("#mon-subject").await, "Schule").await;
    b.click(&b.find("#mon-save").await).await;
    b.wait_until(
        "the monitoring",
        "return document.getElementById('mon-count').textContent === '1';",
        Duration::from_secs(10),
    )
    .await;
    assert_accessible(&b, "the monitorings").await;

    // Two documents at once through the file picker.
    b.click(&b.find("#tab-dokumente").await).await;
    let dir = tempfile::tempdir().expect("dir");
    let pdf = dir.path().join("Hilfeplan.pdf");
    let txt = dir.path().join("Gesprächsnotiz.txt");
    std::fs::write(&pdf, b"%PDF-1.4\n% Hilfeplan\n%%EOF\n").expect("pdf");
    std::fs::write(&txt, "Notiz zum Gespräch").expect("txt");
    b.type_text(&b.find("#doc-files").await, &format!("{}\n{}", pdf.display(), txt.display())).await;
    b.click(&b.find("#doc-form button[type=submit]").await).await;
    b.wait_until(
        "the documents",
        "return document.getElementById('doc-count').textContent === '2';",
        Duration::from_secs(10),
    )
    .await;
    let docs = get("/documents").await;
    assert_eq!(docs["count"], 2, "{docs}");
    assert!(text(&b, "#docs").await.contains("Gesprächsnotiz.txt"));
    assert_accessible(&b, "the documents").await;

    // Delete one, confirming the dialog.
    b.click(&b.find("#docs li button.danger").await).await;
    b.accept_dialog().await;
    b.wait_until(
        "the deletion",
        "return document.getElementById('doc-count').textContent === '1';",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(get("/documents").await["count"], 1);

    // Block, confirming; the client is blocked on the server.
    b.click(&b.find("#tab-aktionen").await).await;
    b.click(&b.find("#block").await).await;
    b.accept_dialog().await;
    b.wait_until(
        "the block",
        "return document.getElementById('block-state').textContent.includes('ist gesperrt');",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(get("").await["blocked"], true);
    assert_accessible(&b, "blocking and deletion").await;

    // Phone and desktop: nothing wider than the window; screenshots for the record.
    b.click(&b.find("#tab-stamm").await).await;
    fits_phone_and_desktop(&b, "widget-mappe").await;
    b.quit().await;
    let (_, audit) = svc.admin(Method::GET, "/audit?limit=100", None).await;
    assert!(audit.to_string().contains("client_file.document_delete"));
    svc.stop().await;
}

/// The accessibility check itself can fail: a page with known violations is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accessibility_check_reports_violations() {
    let page = r#"<!doctype html><html><head><title>x</title></head><body>
        <input id="unlabelled"><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
        <p style="color:#bbb;background:#fff">blass</p></body></html>"#;
    let url = serve(page.to_owned()).await;
    let b = Browser::start().await;
    b.goto(&url).await;
    let ids: Vec<String> =
        b.axe_violations().await.iter().filter_map(|v| v["id"].as_str().map(str::to_owned)).collect();
    b.quit().await;
    for expected in ["html-has-lang", "label", "image-alt", "color-contrast"] {
        assert!(ids.iter().any(|i| i == expected), "axe should report {expected}: {ids:?}");
    }
}

/// At 320 px (a phone) and 1280 px the widget is no wider than the window (no sideways
/// scrolling); a screenshot of each for the record (`<prefix>-320.png`, `<prefix>-1280.png`).
async fn fits_phone_and_desktop(b: &Browser, prefix: &str) {
    for width in [320, 1280] {
        b.leave_frames().await;
        b.set_size(width, 900).await;
        b.enter_frame(&b.find("#widget").await).await;
        let fits = b
            .eval(
                "return document.documentElement.scrollWidth <= document.documentElement.clientWidth;",
                json!([]),
            )
            .await;
        let wide = b
            .eval(
                "return [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth)
                    .slice(0, 5).map((e) => e.outerHTML.slice(0, 120));",
                json!([]),
            )
            .await;
        assert_eq!(fits, true, "the widget scrolls sideways at {width} px: {wide}");
        let (path, png_width) = b.screenshot(&format!("{prefix}-{width}")).await;
        assert!(png_width >= width.min(1280) / 2, "{} is {png_width} px wide", path.display());
    }
}

/// The widget's error line, once it says something.
async fn error_line(b: &Browser) -> Value {
    b.wait_until("the error", "return document.getElementById('error').textContent;", Duration::from_secs(10))
        .await
}

/// Runs `script` in the widget's frame until it is truthy.
async fn in_widget(b: &Browser, what: &str, script: &str) {
    b.wait_until(what, script, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counsellor_takes_a_waiting_visitor_from_the_live_chat_widget_in_a_browser() {
    let mut svc = TestService::start_public().await;
    let inst = svc.institution("Schreibtischhaus").await;
    let anna = svc.counsellor(&inst, "Anna Schreibtisch").await;
    svc.set_status(&anna.user_id, "online").await;
    let visitor = assisto_tests::embed::Visitor::anonymous(&svc, &inst.id, None).await;
    assert_eq!(visitor.send("t1", "Ich brauche jemanden zum Reden").await.0, 201);
    let widget = format!("{}/_assisto/widget/live?widgetId=w2", svc.url());
    let host =
        serve(host_page_approving(&widget, &anna.openid_token().await, &["org.matrix.msc2931.navigate"]))
            .await;

    let b = Browser::start().await;
    b.goto(&host).await;
    b.enter_frame(&b.find("#widget").await).await;
    in_widget(
        &b,
        "the waiting visitor with what they wrote",
        "return !document.getElementById('desk').hidden && document.getElementById('waiting-count').textContent === '1'
            && (document.querySelector('#waiting .snippet') || {}).textContent?.includes('zum Reden');",
    )
    .await;
    assert_accessible(&b, "the desk with a waiting chat").await;

    // Preview, then take.
    b.click(&b.find("#waiting li button.secondary").await).await;
    in_widget(
        &b,
        "the preview",
        "const p = document.querySelector('#waiting .preview'); return !!p && p.textContent.includes('Ich brauche jemanden');",
    )
    .await;
    assert_accessible(&b, "the preview").await;
    b.click(&b.find("#waiting li button:not(.secondary)").await).await;
    in_widget(
        &b,
        "the chat among Anna's own",
        "return document.getElementById('mine-count').textContent === '1' && document.getElementById('waiting-count').textContent === '0';",
    )
    .await;
    let (s, chats) = svc.admin(Method::GET, &format!("/institutions/{}/live-chats", inst.id), None).await;
    assert_eq!(s, 200, "{chats}");
    assert_eq!(
        (chats[0]["state"].as_str(), chats[0]["counsellor"].as_str()),
        (Some("taken"), Some(anna.user_id.as_str()))
    );
    let room = chats[0]["room_id"].as_str().expect("room").to_owned();
    b.leave_frames().await;
    let navigated = b
        .eval("return JSON.stringify(window.navigated) === JSON.stringify(['https://matrix.to/#/' + encodeURIComponent(arguments[0])]);", json!([room]))
        .await;
    assert_eq!(
        navigated,
        json!(true),
        "Element is asked to open the chat: {}",
        b.eval("return window.navigated;", json!([])).await
    );
    b.enter_frame(&b.find("#widget").await).await;

    // The close form, with its code choice and note.
    b.click(&b.find("#mine li button.danger").await).await;
    in_widget(&b, "the close form", "return !!document.querySelector('#mine form textarea');").await;
    assert_accessible(&b, "the close form").await;
    b.type_text(&b.find("#mine form textarea").await, "Gespräch beendet").await;
    b.click(&b.find("#mine form button[type=submit]").await).await;
    in_widget(&b, "the chat closed", "return document.getElementById('mine-count').textContent === '0';")
        .await;
    let (_, chats) = svc.admin(Method::GET, &format!("/institutions/{}/live-chats", inst.id), None).await;
    assert_eq!(chats, json!([]), "no open chat is left");

    fits_phone_and_desktop(&b, "widget-live").await;
    b.quit().await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counsellor_sends_snippets_a_phone_number_and_a_link_from_the_tools_widget_in_a_browser() {
    let mut svc = TestService::start_public().await;
    let inst = svc.institution("Werkzeug Browser").await;
    let anna = svc.counsellor(&inst, "Anna Werkzeugkasten").await;
    let client = svc.client(&inst, "Maria").await;
    let (s, v) = anna.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let room = v["room_id"].as_str().expect("room").to_owned();
    let token = anna.openid_token().await;
    assisto_tests::eventually("the tools to work in the client chat", Duration::from_secs(20), || async {
        let r = reqwest::Client::new()
            .get(format!("{}/_assisto/tools/v1/rooms/{}", svc.url(), enc(&room)))
            .bearer_auth(&token)
            .send()
            .await
            .expect("tools");
        (r.status() == 200).then_some(())
    })
    .await;
    let widget = format!("{}/_assisto/widget/werkzeuge?room={}&widgetId=w3", svc.url(), enc(&room));
    let host = serve(host_page(&widget, &token)).await;

    let b = Browser::start().await;
    b.goto(&host).await;
    b.enter_frame(&b.find("#widget").await).await;
    in_widget(&b, "the tools to load", "return !document.getElementById('tabs').hidden;").await;
    assert_accessible(&b, "the snippets, empty").await;

    // A snippet with a placeholder, written in the form, ticked and sent.
    b.type_text(&b.find("#s-name").await, "Begrüßung").await;
    b.type_text(&b.find("#s-text").await, "Hallo {{klient.name}}, schön, dass du schreibst.").await;
    b.click(&b.find("#s-save").await).await;
    in_widget(&b, "the snippet in the list", "return document.getElementById('count').textContent === '1';")
        .await;
    assert_accessible(&b, "the snippets").await;
    b.click(&b.find("#snippets input[type=checkbox]").await).await;
    b.click(&b.find("#send-snippets").await).await;
    in_widget(&b, "sent", "return document.getElementById('status').textContent === 'Gesendet.';").await;
    let rid = assisto_tests::matrix::rid(&room);
    assisto_tests::eventually("Anna's message", Duration::from_secs(20), || async {
        anna.recent_messages(&rid, 20)
            .await
            .iter()
            .any(|(s, body)| *s == anna.user_id && body == "Hallo Maria, schön, dass du schreibst.")
            .then_some(())
    })
    .await;

    // Phone: not offered until the toggle is on in the settings.
    b.click(&b.find("#tab-telefon").await).await;
    assert_eq!(b.eval("return document.getElementById('phone-form').hidden;", json!([])).await, true);
    b.click(&b.find("#tab-einstellungen").await).await;
    b.type_text(&b.find("#set-phone").await, "0221 / 123 456").await;
    b.click(&b.find("#set-allow-phone").await).await;
    b.click(&b.find("#settings-form button[type=submit]").await).await;
    in_widget(
        &b,
        "saved",
        "return document.getElementById('status').textContent === 'Einstellungen gespeichert.';",
    )
    .await;
    assert_accessible(&b, "the settings").await;
    b.click(&b.find("#tab-telefon").await).await;
    in_widget(
        &b,
        "the phone form with the stored number",
        "return !document.getElementById('phone-form').hidden && document.getElementById('phone-number').value === '0221123456';",
    )
    .await;
    assert_accessible(&b, "the phone number").await;
    b.click(&b.find("#phone-send").await).await;
    in_widget(
        &b,
        "the number sent",
        "return document.getElementById('status').textContent === 'Telefonnummer gesendet.';",
    )
    .await;

    // A link; a bad one shows the German error.
    b.click(&b.find("#tab-link").await).await;
    b.type_text(&b.find("#link-url").await, "https://www.beispiel.de/hilfe").await;
    b.click(&b.find("#link-send").await).await;
    in_widget(
        &b,
        "the link offered again",
        "return document.getElementById('recent').textContent.includes('https://www.beispiel.de/hilfe');",
    )
    .await;
    assert_accessible(&b, "the links").await;
    b.eval("document.getElementById('link-url').type = 'text';", json!([])).await;
    b.type_text(&b.find("#link-url").await, "ftp://beispiel.de").await;
    b.click(&b.find("#link-send").await).await;
    let error = error_line(&b).await;
    assert!(error.as_str().unwrap_or_default().contains("https://"), "{error}");
    assisto_tests::eventually("the number and the link in the chat", Duration::from_secs(20), || async {
        let m = anna.recent_messages(&rid, 20).await;
        (m.iter().any(|(_, b)| b == "Telefonnummer: 0221123456")
            && m.iter().any(|(_, b)| b == "https://www.beispiel.de/hilfe (www.beispiel.de)"))
        .then_some(())
    })
    .await;

    // Video: switched off, it says where to switch it on; on without a video service, it
    // says that instead of offering a dead button.
    b.click(&b.find("#tab-video").await).await;
    assert_eq!(b.eval("return document.getElementById('video-off').hidden;", json!([])).await, false);
    b.click(&b.find("#tab-einstellungen").await).await;
    b.click(&b.find("#set-allow-video").await).await;
    b.click(&b.find("#settings-form button[type=submit]").await).await;
    b.click(&b.find("#tab-video").await).await;
    in_widget(
        &b,
        "no video service",
        "return !document.getElementById('video-unconfigured').hidden && document.getElementById('video-start-box').hidden;",
    )
    .await;
    assert_accessible(&b, "the video chat").await;

    // Export: the PDF is made and handed to the browser as a download.
    b.click(&b.find("#tab-export").await).await;
    assert_accessible(&b, "the export").await;
    b.click(&b.find("#export-pdf").await).await;
    in_widget(
        &b,
        "the download",
        "return document.getElementById('status').textContent.includes('.pdf“ wird heruntergeladen');",
    )
    .await;

    b.click(&b.find("#tab-bausteine").await).await;
    fits_phone_and_desktop(&b, "widget-werkzeuge").await;
    b.quit().await;
    svc.stop().await;
}

/// What Element was asked to open (`window.navigated` of the host page), read from the
/// widget's frame; the test goes back into the frame afterwards.
async fn navigated(b: &Browser) -> Value {
    b.leave_frames().await;
    let v = b.eval("return window.navigated;", json!([])).await;
    b.enter_frame(&b.find("#widget").await).await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counsellor_finds_a_message_and_a_client_in_the_search_widget_in_a_browser() {
    let mut svc = TestService::start_public().await;
    let inst = svc.institution("Suchhaus Browser").await;
    let anna = svc.counsellor(&inst, "Anna Suchfenster").await;
    let (room, _) = svc.client_chat(&inst, &anna, "Maria Müller").await;
    let event = anna.send_text(&rid(&room), "Wir haben über die Schuldnerberatung gesprochen.").await;
    let api = OpenIdApi::of(&svc, &anna, "search/v1").await;
    let message = format!("https://matrix.to/#/{room}/{event}?via=localhost");
    assisto_tests::eventually("the message in the index", Duration::from_secs(10), || async {
        let (s, v) = api.call(Method::GET, "/search?q=Beratungen%20", None).await;
        (s == 200 && v["messages"][0]["event_id"] == event.as_str()).then_some(())
    })
    .await;
    let widget = format!("{}/_assisto/widget/suche?widgetId=w4", svc.url());
    let host = serve(host_page_approving(&widget, api.token(), &["org.matrix.msc2931.navigate"])).await;

    let b = Browser::start().await;
    b.goto(&host).await;
    b.enter_frame(&b.find("#widget").await).await;
    in_widget(
        &b,
        "the search form",
        "return !document.getElementById('form').hidden && document.activeElement.id === 'q';",
    )
    .await;
    assert_accessible(&b, "the empty search").await;

    // While typing: another form of the word finds the compound, the match marked.
    b.type_text(&b.find("#q").await, "Beratungen").await;
    in_widget(
        &b,
        "the message found",
        "return !document.getElementById('messages-box').hidden
            && document.querySelectorAll('#messages li').length === 1;",
    )
    .await;
    let hit = b
        .eval(
            "const li = document.querySelector('#messages li');
             return { title: li.querySelector('.hit-title').textContent, meta: li.querySelector('.meta').textContent,
               snippet: li.querySelector('.snippet').textContent,
               marks: [...li.querySelectorAll('.snippet mark')].map((m) => m.textContent),
               link: li.querySelector('a.open').textContent, href: li.querySelector('a.open').href,
               status: document.getElementById('status').textContent };",
            json!([]),
        )
        .await;
    assert_eq!(hit["snippet"], "Wir haben über die Schuldnerberatung gesprochen.", "{hit}");
    assert_eq!(hit["marks"], json!(["Schuldnerberatung"]), "{hit}");
    assert!(hit["title"].as_str().unwrap_or_default().contains("Maria Müller"), "the room: {hit}");
    let meta = hit["meta"].as_str().unwrap_or_default();
    assert!(
        meta.ends_with(" · Anna Suchfenster") && meta.chars().filter(|c| *c == '.').count() == 2,
        "when and who: {hit}"
    );
    assert_eq!((hit["link"].as_str(), hit["href"].as_str()), (Some("Zur Nachricht"), Some(message.as_str())));
    assert_eq!(hit["status"], "1 Treffer.", "{hit}");
    assert_accessible(&b, "a message found").await;

    // "Zur Nachricht": Element is asked to open the message (navigate, approved).
    b.click(&b.find("#messages li a.open").await).await;
    let asked =
        assisto_tests::eventually("Element asked to open the message", Duration::from_secs(10), || async {
            let v = navigated(&b).await;
            (v != json!([])).then_some(v)
        })
        .await;
    assert_eq!(asked, json!([message]), "Element is asked to open the message");

    // Clients only, by a part of the name typed without the umlaut.
    b.click(&b.find("#category option[value=clients]").await).await;
    let q = b.find("#q").await;
    b.clear(&q).await;
    b.type_text(&q, "muel").await;
    in_widget(
        &b,
        "Maria Müller found",
        "return !document.getElementById('people-box').hidden
            && document.getElementById('people').textContent.includes('Maria Müller')
            && document.getElementById('messages-box').hidden;",
    )
    .await;
    let person = b
        .eval(
            "const li = [...document.querySelectorAll('#people li')];
             return li.map((l) => [l.querySelector('.hit-title').textContent, l.querySelector('.meta').textContent,
               l.querySelector('a.open').textContent, l.querySelector('a.open').getAttribute('aria-label')]);",
            json!([]),
        )
        .await;
    assert_eq!(
        person,
        json!([["Maria Müller", "Ratsuchende:r", "Chat öffnen", "Chat öffnen mit Maria Müller"]]),
        "{person}"
    );
    assert_accessible(&b, "a client found").await;
    b.click(&b.find("#people li a.open").await).await;
    let asked =
        assisto_tests::eventually("Element asked to open the chat", Duration::from_secs(10), || async {
            let v = navigated(&b).await;
            (v.as_array().map(Vec::len) == Some(2)).then_some(v)
        })
        .await;
    assert_eq!(asked[1], format!("https://matrix.to/#/{room}?via=localhost").as_str(), "{asked}");

    // Only emoji and signs: the service's German error in the alert line.
    let (s, v) = api.call(Method::GET, &format!("/search?q={}", enc("🙂 :*")), None).await;
    assert_eq!(s, 400, "{v}");
    let want = v["error"].as_str().expect("error").to_owned();
    assert!(want.starts_with("Bitte geben Sie mindestens ein Wort"), "{v}");
    let q = b.find("#q").await;
    b.clear(&q).await;
    // ChromeDriver types only characters of the Basic Multilingual Plane: the emoji is
    // put in as a paste would, then the signs are typed.
    b.eval(
        "const q = document.getElementById('q'); q.value = '🙂 '; q.dispatchEvent(new Event('input', { bubbles: true }));",
        json!([]),
    )
    .await;
    b.type_text(&q, ":*").await;
    let error = error_line(&b).await;
    assert_eq!(error, want.as_str());
    let shown = b
        .eval(
            "return [document.getElementById('results').hidden, document.getElementById('status').textContent];",
            json!([]),
        )
        .await;
    assert_eq!(shown, json!([true, "Bereit."]), "no hits of an earlier search stay beside the error");
    assert_eq!(b.eval("return document.getElementById('q').value;", json!([])).await, "🙂 :*");
    assert_accessible(&b, "the error").await;

    // Back to everything: the error goes, the message is found again.
    b.click(&b.find("#category option[value=all]").await).await;
    b.clear(&q).await;
    b.type_text(&q, "Schuldnerberatung").await;
    in_widget(
        &b,
        "the message found again, without the error",
        "return document.getElementById('error').textContent === ''
            && document.querySelectorAll('#messages li').length === 1 && document.getElementById('people-box').hidden;",
    )
    .await;
    assert_accessible(&b, "the results").await;
    fits_phone_and_desktop(&b, "widget-suche").await;
    b.quit().await;
    svc.stop().await;
}

/// The rows of the table `css` (its body), each as the texts of its cells.
async fn table_rows(b: &Browser, css: &str) -> Value {
    b.eval(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]
            .map((tr) => [...tr.cells].map((c) => c.textContent));",
        json!([css]),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_institution_admin_reads_the_statistics_widget_in_a_browser() {
    let mut svc = TestService::start_public().await;
    let inst = svc.institution("Statistik Browser").await;
    let anna = svc.counsellor(&inst, "Anna Kennzahl").await;
    let carl = svc.counsellor(&inst, "Carl Kennzahl").await;
    let (s, v) = svc
        .admin(
            Method::PUT,
            &format!("/counsellors/{}/institution-admin", enc(&anna.user_id)),
            Some(json!({"institution_admin": true})),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // Six client chats of Anna's; five monitorings "Schulden" of 30 minutes and one "Wohnen".
    let mut clients = Vec::new();
    for i in 0..6 {
        clients.push(svc.client_chat(&inst, &anna, &format!("Klientin {i}")).await.1);
    }
    let file = OpenIdApi::of(&svc, &anna, "client-file/v1").await;
    for (subject, minutes) in [("Schulden", 30); 5].into_iter().chain([("Wohnen", 45)]) {
        let path = format!("/clients/{}/monitorings", enc(&clients[0]));
        let (s, v) = file
            .call(Method::POST, &path, Some(json!({"duration_minutes": minutes, "subject": subject})))
            .await;
        assert!((200..300).contains(&s), "monitoring: {s} {v}");
    }
    let api = OpenIdApi::of(&svc, &anna, "statistics/v1").await;
    let report = assisto_tests::eventually("the chats recorded", Duration::from_secs(20), || async {
        let (s, v) = api.call(Method::GET, "/statistics", None).await;
        (s == 200 && v["chats"]["clients"]["started"] == 6).then_some(v)
    })
    .await;
    let widget = format!("{}/_assisto/widget/statistik?widgetId=w5", svc.url());
    let host = serve(host_page(&widget, api.token())).await;

    // Loaded at once: the last 30 days, the service's.
    let b = Browser::start().await;
    b.goto(&host).await;
    b.enter_frame(&b.find("#widget").await).await;
    in_widget(
        &b,
        "the report",
        "return !document.getElementById('report').hidden
            && document.querySelectorAll('#t-subjects tbody tr').length > 0;",
    )
    .await;
    let (from, to) =
        (report["period"]["from"].as_str().expect("from"), report["period"]["to"].as_str().expect("to"));
    let fields = b
        .eval(
            "return [document.getElementById('from').value, document.getElementById('to').value,
                document.getElementById('status').textContent, document.getElementById('error').textContent];",
            json!([]),
        )
        .await;
    assert_eq!(fields, json!([from, to, format!("Zeitraum {from} bis {to}."), ""]), "the period");
    let overview = table_rows(&b, "#overview").await;
    assert_eq!(overview[1], json!(["Ratsuchende", "6", "0"]), "{overview}");
    assert_eq!(overview[2], json!(["Kolleg:innen", "0", "0"]), "{overview}");
    let subjects = table_rows(&b, "#t-subjects").await;
    assert_eq!(subjects, json!([["Schulden", "5", "150"], ["Weitere", "< 5", "–"]]), "{subjects}");
    assert!(!text(&b, "#report").await.contains("Wohnen"), "a subject of one is not named");
    let suppression = text(&b, "#suppression").await;
    assert!(suppression.starts_with("Zahlen von 1 bis 4 werden als „< 5“ gezeigt"), "{suppression}");
    assert_eq!(table_rows(&b, "#t-days").await.as_array().map(Vec::len), Some(30), "a row a day");

    // Each chart an image with a name, and its data in a table under it.
    let charts = b
        .eval(
            "return [...document.querySelectorAll('svg')].map((svg) => {
               const name = svg.getAttribute('aria-label')
                 || (svg.getAttribute('aria-labelledby') || '').split(' ')
                      .map((id) => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
               const details = svg.closest('figure').nextElementSibling;
               return [svg.id, svg.getAttribute('role'), name, svg.querySelectorAll('rect').length,
                 details.tagName, details.querySelectorAll('tbody tr').length];
             });",
            json!([]),
        )
        .await;
    assert_eq!(
        charts,
        json!([
            ["chart-days", "img", "Chats pro Tag", 30, "DETAILS", 30],
            ["chart-wait", "img", "Wartezeit im Live-Chat (Median pro Tag)", 30, "DETAILS", 30],
            ["chart-subjects", "img", "Monitoring-Minuten nach Thema", 2, "DETAILS", 2],
        ]),
        "{charts}"
    );
    assert_accessible(&b, "the report, tables closed").await;
    for summary in ["#t-days", "#t-wait", "#t-subjects"] {
        let css = format!("details:has({summary}) summary");
        b.click(&b.find(&css).await).await;
    }
    let open = b
        .eval(
            "return [...document.querySelectorAll('details')].map((d) => d.open
               && d.querySelector('table').getBoundingClientRect().height > 0);",
            json!([]),
        )
        .await;
    assert_eq!(open, json!([true, true, true]), "the tables open");
    assert_accessible(&b, "the report, tables open").await;
    fits_phone_and_desktop(&b, "widget-statistik").await;

    // "Von" after "Bis": the service's German error.
    let (s, v) = api.call(Method::GET, &format!("/statistics?from=2099-01-02&to={to}"), None).await;
    assert_eq!(s, 400, "{v}");
    let want = v["error"].as_str().expect("error").to_owned();
    assert!(want.starts_with("from liegt nach to"), "{v}");
    b.eval(
        "const f = document.getElementById('from'); f.value = '2099-01-02';
         f.dispatchEvent(new Event('input', { bubbles: true })); f.dispatchEvent(new Event('change', { bubbles: true }));",
        json!([]),
    )
    .await;
    b.click(&b.find("#form button[type=submit]").await).await;
    let error = error_line(&b).await;
    assert_eq!(error, want.as_str());
    assert_accessible(&b, "the error").await;

    // A counsellor who is not the institution's admin sees why, and no figures.
    b.leave_frames().await;
    b.goto(&serve(host_page(&widget, &carl.openid_token().await)).await).await;
    b.enter_frame(&b.find("#widget").await).await;
    let error = b
        .wait_until(
            "the refusal",
            "return document.getElementById('error').textContent;",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(error, "Statistiken sehen nur Administrator:innen der Einrichtung.");
    assert_eq!(b.eval("return document.getElementById('report').hidden;", json!([])).await, true);
    assert_accessible(&b, "the refusal").await;
    b.quit().await;
    svc.stop().await;
}
