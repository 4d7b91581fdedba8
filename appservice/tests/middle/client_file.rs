//! The client file (`/_assisto/client-file/v1`): counsellors authenticate with a Matrix
//! OpenID token that the service checks at the homeserver
//! (`GET /_matrix/federation/v1/openid/userinfo`, mocked here), and only counsellors of the
//! client's institution get in.

use reqwest::Method;
use serde_json::{json, Value};

use crate::{bot, enc, Answer, Service};

const USERINFO: &str = "/_matrix/federation/v1/openid/userinfo";

/// Calls the client file of `client` at `path` with `token`.
async fn file(
    svc: &Service,
    token: Option<&str>,
    method: Method,
    client: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let p = format!("/_assisto/client-file/v1/clients/{}{path}", enc(client));
    svc.call(method, &p, token, body).await
}

#[track_caller]
fn assert_error(a: &Answer, status: u16, errcode: &str) {
    assert_eq!((a.0, a.1["errcode"].as_str()), (status, Some(errcode)), "{}", a.1);
}

#[tokio::test]
async fn a_counsellor_of_the_institution_reads_and_writes_the_client_file() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let maria = svc.client(&nord, "Maria").await;
    svc.hs.vouch_openid("tok-anna", &anna).await;
    let t = Some("tok-anna");

    let (s, v) = file(&svc, t, Method::GET, &maria, "", None).await;
    assert_eq!(
        (s, v["display_name"].as_str(), v["blocked"].as_bool()),
        (200, Some("Maria"), Some(false)),
        "{v}"
    );
    assert_eq!(v["kind"], "registered");

    // Notes: written, listed (with author and count), edited, deleted.
    let (s, note) =
        file(&svc, t, Method::POST, &maria, "/notes", Some(json!({"text": "Erstgespräch geführt."}))).await;
    assert_eq!(s, 201, "{note}");
    assert_eq!(
        (note["author"].as_str(), note["text"].as_str()),
        (Some(anna.as_str()), Some("Erstgespräch geführt."))
    );
    let id = note["id"].as_i64().expect("note id");
    let (s, list) = file(&svc, t, Method::GET, &maria, "/notes", None).await;
    assert_eq!((s, list["count"].as_i64()), (200, Some(1)), "{list}");
    assert_eq!(list["items"][0]["text"], "Erstgespräch geführt.");
    let (s, v) = file(
        &svc,
        t,
        Method::PUT,
        &maria,
        &format!("/notes/{id}"),
        Some(json!({"text": "Folgetermin vereinbart."})),
    )
    .await;
    assert_eq!((s, v["text"].as_str()), (200, Some("Folgetermin vereinbart.")), "{v}");
    let (s, _) = file(&svc, t, Method::DELETE, &maria, &format!("/notes/{id}"), None).await;
    assert_eq!(s, 200);
    let (_, list) = file(&svc, t, Method::GET, &maria, "/notes", None).await;
    assert_eq!(list["count"], 0, "{list}");
    assert_error(
        &file(&svc, t, Method::DELETE, &maria, &format!("/notes/{id}"), None).await,
        404,
        "M_NOT_FOUND",
    );

    // A monitoring.
    let m = json!({"duration_minutes": 45, "subject": "Wohnungssuche", "details": {"contact_type": "chat"}});
    let (s, v) = file(&svc, t, Method::POST, &maria, "/monitorings", Some(m)).await;
    assert_eq!((s, v["duration_minutes"].as_i64()), (201, Some(45)), "{v}");

    // Master data; the display name follows on the homeserver, set as the client's puppet.
    let body =
        json!({"display_name": "Maria K.", "profile": {"email": "maria@example.org", "postcode": "50667"}});
    let (s, v) = file(&svc, t, Method::PUT, &maria, "", Some(body)).await;
    assert_eq!((s, v["profile"]["postcode"].as_str()), (200, Some("50667")), "{v}");
    let renamed = svc.hs.calls("PUT", &format!("/_matrix/client/v3/profile/{maria}/displayname")).await;
    let last = renamed.last().expect("the display name was set");
    assert_eq!((last.user_id(), &last.body), (Some(maria.as_str()), &json!({"displayname": "Maria K."})));

    // Blocking from the client file: the rules refuse her messages from now on.
    let (s, v) = file(&svc, t, Method::POST, &maria, "/block", None).await;
    assert_eq!((s, v["blocked"].as_bool()), (200, Some(true)), "{v}");
    let chat = crate::room_state(Some("client_chat"), "nord", &anna, &[&bot(), &anna, &maria], &[]);
    let v = svc
        .check(json!({"action": "send", "user": maria, "room_id": "!chat:localhost",
            "event_type": "m.room.message", "room": chat}))
        .await;
    assert_eq!(v["rule"], "blocked_client", "{v}");

    // The token was checked once (then cached), without the service's own credentials: the
    // OpenID endpoint takes only the token.
    let asked = svc.hs.calls("GET", USERINFO).await;
    assert_eq!(asked.len(), 1, "verified once, then cached: {asked:?}");
    assert_eq!(asked[0].query("access_token"), Some("tok-anna"));
    assert_eq!(asked[0].authorization, None, "no as_token towards the OpenID endpoint");
    let actions = svc.audit_actions().await;
    for a in [
        "client_file.note_add",
        "client_file.note_edit",
        "client_file.note_delete",
        "client_file.master_data",
        "client.block",
    ] {
        assert!(actions.contains(&a.to_owned()), "{a} audited: {actions:?}");
    }
    svc.finish().await;
}

#[tokio::test]
async fn others_and_bad_tokens_are_refused() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let sued = svc.institution("sued", "Beratung Süd").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let otto = svc.counsellor(&sued, "otto", "Otto Süd").await;
    let maria = svc.client(&nord, "Maria").await;
    svc.hs.vouch_openid("tok-anna", &anna).await;
    svc.hs.vouch_openid("tok-otto", &otto).await;
    svc.hs.vouch_openid("tok-eve", "@eve:fremd.test").await;

    // Another institution's counsellor: 403 with the German reason, for reading and writing.
    let a = file(&svc, Some("tok-otto"), Method::GET, &maria, "", None).await;
    assert_error(&a, 403, "M_FORBIDDEN");
    assert_eq!(a.1["error"], "Nur Beratende der Einrichtung dieser Person haben Zugriff auf ihre Mappe.");
    let a = file(
        &svc,
        Some("tok-otto"),
        Method::POST,
        &maria,
        "/notes",
        Some(json!({"text": "Von außen geschrieben."})),
    )
    .await;
    assert_error(&a, 403, "M_FORBIDDEN");
    assert_error(
        &file(&svc, Some("tok-otto"), Method::POST, &maria, "/block", None).await,
        403,
        "M_FORBIDDEN",
    );
    let (_, list) = file(&svc, Some("tok-anna"), Method::GET, &maria, "/notes", None).await;
    assert_eq!(list["count"], 0, "nothing was written: {list}");
    let (_, v) = file(&svc, Some("tok-anna"), Method::GET, &maria, "", None).await;
    assert_eq!(v["blocked"], false, "nor blocked: {v}");

    // No token: 401 before anything else.
    assert_error(&file(&svc, None, Method::GET, &maria, "", None).await, 401, "M_UNAUTHORIZED");
    // A token the homeserver does not know (userinfo 401): 401 M_UNKNOWN_TOKEN.
    let a = file(&svc, Some("tok-unknown"), Method::GET, &maria, "", None).await;
    assert_error(&a, 401, "M_UNKNOWN_TOKEN");
    assert_eq!(a.1["error"], "Die Anmeldung ist ungültig oder abgelaufen.");
    // A user of another homeserver: 403.
    let a = file(&svc, Some("tok-eve"), Method::GET, &maria, "", None).await;
    assert_error(&a, 403, "M_FORBIDDEN");
    assert_eq!(a.1["error"], "Nur Beratende dieses Servers haben Zugriff.");
    // An unknown client: 404.
    let a = file(&svc, Some("tok-anna"), Method::GET, "@rs_gibtsnicht:localhost", "", None).await;
    assert_error(&a, 404, "M_NOT_FOUND");

    // The homeserver failing to answer (5xx): 502, and a failure is not remembered — the
    // next try, once the homeserver answers again, gets in.
    svc.hs
        .mock_openid_userinfo()
        .with_query("access_token", "tok-flaky")
        .error(500, "M_UNKNOWN", "boom")
        .up_to(1)
        .priority(1)
        .mount()
        .await;
    svc.hs.vouch_openid("tok-flaky", &anna).await;
    let a = file(&svc, Some("tok-flaky"), Method::GET, &maria, "", None).await;
    assert_error(&a, 502, "M_UNKNOWN");
    assert_eq!(a.1["error"], "Die Anmeldung kann gerade nicht geprüft werden.");
    let (s, v) = file(&svc, Some("tok-flaky"), Method::GET, &maria, "", None).await;
    assert_eq!(s, 200, "{v}");
    svc.finish().await;
}

#[tokio::test]
async fn an_unreachable_homeserver_is_a_502() {
    // Nothing listens at this address any more.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let svc = Service::start_with(|c| c.homeserver.url = dead).await;
    let a = file(&svc, Some("tok-anna"), Method::GET, "@rs_maria:localhost", "/notes", None).await;
    assert_error(&a, 502, "M_UNKNOWN");
    assert_eq!(a.1["error"], "Die Anmeldung kann gerade nicht geprüft werden.");
    // The mock was not asked: this service talks to a dead address.
    assert!(svc.hs.calls("GET", USERINFO).await.is_empty());
    svc.finish().await;
}

#[tokio::test]
async fn bad_bodies_get_matrix_errcodes_in_german() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let maria = svc.client(&nord, "Maria").await;
    svc.hs.vouch_openid("tok-anna", &anna).await;
    let t = Some("tok-anna");
    let notes = format!("/_assisto/client-file/v1/clients/{}/notes", enc(&maria));

    let a = svc.call_raw(Method::POST, &notes, t, "{kein json").await;
    assert_error(&a, 400, "M_NOT_JSON");
    assert_eq!(a.1["error"], "Die Anfrage ist kein JSON.");
    let a = svc.call(Method::POST, &notes, t, Some(json!({"txt": "Falsches Feld"}))).await;
    assert_error(&a, 400, "M_BAD_JSON");
    assert!(a.1["error"].as_str().unwrap_or_default().starts_with("Ungültige Angaben"), "{}", a.1);
    let a = svc.call(Method::POST, &notes, t, Some(json!({"text": 42}))).await;
    assert_error(&a, 400, "M_BAD_JSON");
    let a = svc.call(Method::POST, &notes, t, Some(json!({"text": "kurz"}))).await;
    assert_error(&a, 400, "M_INVALID_PARAM");
    assert_eq!(a.1["error"], "Eine Notiz hat 5 bis 1000 Zeichen (diese hat 4).");
    let a = file(
        &svc,
        t,
        Method::PUT,
        &maria,
        "",
        Some(json!({"display_name": "Maria", "profile": {"shoe_size": "42"}})),
    )
    .await;
    assert_error(&a, 400, "M_INVALID_PARAM");
    assert_eq!(a.1["error"], "Unbekanntes Feld „shoe_size“.");
    let a = file(
        &svc,
        t,
        Method::POST,
        &maria,
        "/monitorings",
        Some(json!({"duration_minutes": 0, "subject": "x"})),
    )
    .await;
    assert_error(&a, 400, "M_INVALID_PARAM");
    assert_eq!(a.1["error"], "Die Dauer liegt zwischen 1 und 1440 Minuten.");

    // Nothing was stored, and the display name was never touched.
    let (_, list) = svc.call(Method::GET, &notes, t, None).await;
    assert_eq!(list["count"], 0, "{list}");
    let renamed = svc.hs.calls("PUT", &format!("/_matrix/client/v3/profile/{maria}/displayname")).await;
    assert_eq!(renamed.len(), 1, "only at creation: {renamed:?}");
    svc.finish().await;
}

#[tokio::test]
async fn documents_are_checked_by_content_and_kept_per_client() {
    let svc = Service::start().await;
    let nord = svc.institution("nord", "Beratung Nord").await;
    let anna = svc.counsellor(&nord, "anna", "Anna Berger").await;
    let maria = svc.client(&nord, "Maria").await;
    svc.hs.vouch_openid("tok-anna", &anna).await;
    let url = format!("{}/_assisto/client-file/v1/clients/{}/documents", svc.base, enc(&maria));
    let http = reqwest::Client::new();
    let upload = |name: &'static str, bytes: &'static [u8]| {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name);
        http.post(&url)
            .bearer_auth("tok-anna")
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
    };

    let r = upload("Bericht.pdf", b"%PDF-1.7\nHallo").await.expect("upload");
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("json");
    assert_eq!(status, 201, "{v}");
    // A file whose content does not match its name is refused (415).
    let r = upload("Bericht2.pdf", b"<html>nope</html>").await.expect("upload");
    assert_eq!(r.status().as_u16(), 415);
    let r = http.get(&url).bearer_auth("tok-anna").send().await.expect("list");
    let list: Value = r.json().await.expect("json");
    let docs = list["items"].as_array().or(list.as_array()).cloned().unwrap_or_default();
    assert_eq!(docs.len(), 1, "{list}");
    assert_eq!(
        (docs[0]["file_name"].as_str(), docs[0]["content_type"].as_str()),
        (Some("Bericht.pdf"), Some("application/pdf"))
    );
    let id = docs[0]["id"].as_i64().expect("id");
    let r = http.get(format!("{url}/{id}")).bearer_auth("tok-anna").send().await.expect("download");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(&r.bytes().await.expect("bytes")[..], b"%PDF-1.7\nHallo");
    // Documents never go to the homeserver.
    assert!(svc.hs.calls("POST", "/_matrix/media/v3/upload").await.is_empty());
    svc.finish().await;
}
