//! Chat export against the real homeserver: the CSV parsed back equals the messages (in
//! order, senders as counsellors see them, redacted messages and bot commands left out,
//! formulas defused), the PDF's text read back with pdftotext has the German text with
//! umlauts, ß and emoji; other institutions' counsellors and counsellors outside the chat
//! are refused; the bot command's link works once; every export is audited.

use std::time::Duration;

use assisto_tests::{
    eventually,
    matrix::{enc, rid},
    TestService,
};
use reqwest::Method;
use serde_json::{json, Value};

async fn get(url: &str, token: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, ct, r.bytes().await.expect("body").to_vec())
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    let text = text.strip_prefix('\u{feff}').expect("a byte order mark for Excel");
    csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("RFC 4180").iter().map(str::to_owned).collect())
        .collect()
}

fn pdf_text(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("export.pdf");
    std::fs::write(&path, bytes).expect("write");
    let out = std::process::Command::new("pdftotext")
        .arg("-enc")
        .arg("UTF-8")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    assert!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_is_exported_as_csv_and_pdf_with_what_counsellors_saw() {
    let mut svc = TestService::start_public().await;
    let inst = svc.institution("Exporthaus Köln").await;
    let south = svc.institution("Export Süd").await;
    let anna = svc.counsellor(&inst, "Anna Export").await;
    let carl = svc.counsellor(&inst, "Carl Export").await;
    let otto = svc.counsellor(&south, "Otto Export").await;
    let client = svc.client(&inst, "Jürgen Groß").await;
    let (s, v) = anna.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let room = v["room_id"].as_str().expect("room").to_owned();
    let hs = svc.hs_client();
    eventually("the client in the chat", Duration::from_secs(20), || async {
        anna.joined_members(&rid(&room)).await.contains(&client).then_some(())
    })
    .await;

    let said = [
        (anna.user_id.as_str(), "Grüße aus Köln – schöne Straße 😊🧡"),
        (client.as_str(), "Danke!\nZweite Zeile; mit \"Anführungszeichen\""),
        (anna.user_id.as_str(), "Das wird gelöscht"),
        (anna.user_id.as_str(), "!assisto hilfe"),
        (client.as_str(), "=HYPERLINK(\"http://x\")"),
        (anna.user_id.as_str(), "Bis bald, Jürgen."),
    ];
    let mut ids = Vec::new();
    for (i, (who, text)) in said.iter().enumerate() {
        let txn =
            assisto_appservice::matrix::homeserver::TxnId::derived(&format!("{room}{i}"), "export-test");
        let sent = hs
            .send_event(&room, who, "m.room.message", &txn, &json!({"msgtype": "m.text", "body": text}))
            .await
            .expect("send");
        ids.push(sent.event_id);
    }
    let redact = assisto_appservice::matrix::homeserver::TxnId::derived(&ids[2], "export-test-redact");
    hs.redact(&room, &anna.user_id, &ids[2], &redact).await.expect("redact");
    let token = anna.openid_token().await;
    let base = format!("{}/_assisto/tools/v1/rooms/{}/export", svc.url(), enc(&room));

    // CSV: parsed back, it is what was said, minus the redacted message and the command.
    let (s, ct, body) = get(&format!("{base}?format=csv"), Some(&token)).await;
    assert_eq!((s, ct.as_str()), (200, "text/csv; charset=utf-8"), "{}", String::from_utf8_lossy(&body));
    let rows = eventually("the bot's answer to be left out too", Duration::from_secs(20), || async {
        let (_, _, body) = get(&format!("{base}?format=csv"), Some(&token)).await;
        let rows = csv_rows(&body);
        (rows.len() == 5).then_some(rows)
    })
    .await;
    assert_eq!(rows[0], ["Datum", "Uhrzeit", "Absender", "Nachricht"]);
    let got: Vec<(&str, &str)> = rows[1..].iter().map(|r| (r[2].as_str(), r[3].as_str())).collect();
    assert_eq!(
        got,
        [
            ("Anna Export", "Grüße aus Köln – schöne Straße 😊🧡"),
            ("Jürgen Groß", "Danke!\nZweite Zeile; mit \"Anführungszeichen\""),
            ("Jürgen Groß", "'=HYPERLINK(\"http://x\")"),
            ("Anna Export", "Bis bald, Jürgen."),
        ]
    );
    assert!(rows[1][0].len() == 10 && rows[1][1].len() == 8, "dd.mm.yyyy and hh:mm:ss: {:?}", rows[1]);

    // PDF: a real PDF whose text has the umlauts, ß and the emoji.
    let (s, ct, pdf) = get(&base, Some(&token)).await;
    assert_eq!((s, ct.as_str()), (200, "application/pdf"));
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    std::fs::write(assisto_tests::browser::output_dir().join("export.pdf"), &pdf)
        .expect("kept for the record");
    let text = pdf_text(&pdf);
    for needle in [
        "Chatverlauf",
        "Exporthaus Köln",
        "Jürgen Groß",
        "Grüße aus Köln – schöne Straße",
        "😊",
        "Anführungszeichen",
        "Bis bald, Jürgen.",
        "Seite 1",
    ] {
        assert!(text.contains(needle), "{needle:?} is not in the PDF's text:\n{text}");
    }
    assert!(!text.contains("Das wird gelöscht") && !text.contains("!assisto"), "{text}");

    // Who may not: another institution, a colleague who is not in the chat, no token.
    let (s, _, _) = get(&base, Some(&otto.openid_token().await)).await;
    assert_eq!(s, 403, "another institution's counsellor");
    let (s, _, _) = get(&base, Some(&carl.openid_token().await)).await;
    assert_eq!(s, 403, "a counsellor outside the chat");
    let (s, _, _) = get(&base, None).await;
    assert_eq!(s, 401);
    let (s, _, _) = get(&format!("{base}?format=docx"), Some(&token)).await;
    assert_eq!(s, 400);
    // The institution, through the admin API.
    let r = reqwest::Client::new()
        .get(format!("{}/_assisto/admin/v1/rooms/{}/export?format=csv", svc.url(), enc(&room)))
        .bearer_auth(assisto_tests::ADMIN_API_TOKEN)
        .send()
        .await
        .expect("admin export");
    assert_eq!(r.status(), 200);
    assert_eq!(csv_rows(&r.bytes().await.expect("body")).len(), 5);

    // The bot command: a link that works once.
    svc.command(&anna, &room, "!assisto export csv", "/_assisto/tools/v1/exports/").await;
    let answer = anna
        .recent_messages(&rid(&room), 10)
        .await
        .into_iter()
        .find(|(s, b)| *s == svc.bot() && b.contains("/exports/"))
        .map(|(_, b)| b)
        .expect("the link");
    let link = answer
        .split_whitespace()
        .find(|w| w.contains("/_assisto/tools/v1/exports/"))
        .expect("url")
        .to_owned();
    let (s, ct, body) = get(&link, None).await;
    assert_eq!((s, ct.as_str()), (200, "text/csv; charset=utf-8"));
    assert_eq!(csv_rows(&body).len(), 5);
    let (s, _, _) = get(&link, None).await;
    assert_eq!(s, 404, "once");

    let (_, audit) = svc.admin(Method::GET, "/audit?limit=100", None).await;
    let exports: Vec<&Value> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["action"].as_str().is_some_and(|a| a.starts_with("export.")))
        .collect();
    assert!(exports.len() >= 5, "{audit}");
    assert!(!audit.to_string().contains("Jürgen"), "IDs only in the audit log");
    svc.stop().await;
}
