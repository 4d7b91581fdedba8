//! Documents of the client file: several at once, newest first, download, delete, limits —
//! through the client-file API with real OpenID tokens of the homeserver.

use assisto_tests::{matrix::enc, TestService};
use reqwest::{multipart, Method, StatusCode};
use serde_json::Value;

const LIMIT: u64 = 64 * 1024;

struct Docs {
    base: String,
    token: String,
}

impl Docs {
    async fn upload(&self, files: &[(&str, Vec<u8>)]) -> (u16, Value) {
        let mut form = multipart::Form::new();
        for (name, bytes) in files {
            form = form.part("file", multipart::Part::bytes(bytes.clone()).file_name(name.to_string()));
        }
        let r = reqwest::Client::new()
            .post(format!("{}/documents", self.base))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn call(&self, method: Method, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .request(method, format!("{}/documents{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request")
    }

    async fn list(&self) -> Value {
        let r = self.call(Method::GET, "").await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("json")
    }
}

fn pdf(text: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {text}\n%%EOF\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_uploaded_listed_downloaded_and_deleted_within_limits() {
    let mut svc = TestService::start_with(|c| {
        c.files.max_document_bytes = LIMIT;
        c.files.max_documents_per_upload = 3;
    })
    .await;
    let north = svc.institution("Dokumente Nord").await;
    let south = svc.institution("Dokumente Sued").await;
    let anna = svc.counsellor(&north, "Anna Dokument").await;
    let otto = svc.counsellor(&south, "Otto Dokument").await;
    let client = svc.client(&north, "Lea").await;
    let base = format!("{}/_assisto/client-file/v1/clients/{}", svc.url(), enc(&client));
    let docs = Docs { base: base.clone(), token: anna.openid_token().await };

    // Several at once.
    let (s, v) = docs
        .upload(&[("Bericht Jugendamt.pdf", pdf("Bericht")), ("Notiz äöü.txt", "Grüße aus Köln".into())])
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["count"], 2, "{v}");
    let (s, v) = docs.upload(&[("Foto.png", b"\x89PNG\r\n\x1a\n....".to_vec())]).await;
    assert_eq!(s, 201, "{v}");
    let list = docs.list().await;
    assert_eq!(list["count"], 3, "{list}");
    let names: Vec<&str> =
        list["items"].as_array().expect("items").iter().filter_map(|d| d["file_name"].as_str()).collect();
    assert_eq!(names[0], "Foto.png", "newest first: {names:?}");
    assert_eq!(list["limits"]["max_document_bytes"], LIMIT);
    assert_eq!(list["items"][0]["content_type"], "image/png");
    assert!(list["items"][0].get("storage_key").is_none(), "where files lie is not shown");
    assert_eq!(svc.stored_documents(), 3);

    // Download: the same bytes, offered as an attachment with the original name.
    let txt = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|d| d["file_name"] == "Notiz äöü.txt")
        .expect("txt");
    let r = docs.call(Method::GET, &format!("/{}", txt["id"])).await;
    assert_eq!(r.status(), StatusCode::OK);
    let disposition = r.headers()["content-disposition"].to_str().expect("ascii").to_owned();
    assert!(
        disposition.starts_with("attachment;") && disposition.contains("Notiz%20%C3%A4%C3%B6%C3%BC.txt"),
        "{disposition}"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.text().await.expect("body"), "Grüße aus Köln");

    // Too large, wrong type, content not matching the name, too many, empty, not multipart:
    // clear errors, and nothing of the whole upload is stored.
    let (s, v) = docs.upload(&[("ok.pdf", pdf("ok")), ("gross.pdf", vec![b'%'; LIMIT as usize + 1])]).await;
    assert_eq!((s, v["errcode"].as_str()), (413, Some("M_TOO_LARGE")), "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("gross.pdf"), "names the file: {v}");
    let (s, v) = docs.upload(&[("programm.exe", b"MZ\x90\x00".to_vec())]).await;
    assert_eq!(s, 415, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("Erlaubt sind"), "{v}");
    let (s, v) = docs.upload(&[("ok.pdf", pdf("ok")), ("falsch.pdf", b"<html>nope</html>".to_vec())]).await;
    assert_eq!(s, 415, "{v}");
    let four: Vec<(&str, Vec<u8>)> = (0..4).map(|_| ("x.pdf", pdf("x"))).collect();
    let (s, v) = docs.upload(&four).await;
    assert_eq!((s, v["errcode"].as_str()), (400, Some("M_INVALID_PARAM")), "{v}");
    let (s, v) = docs.upload(&[("leer.txt", Vec::new())]).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = docs.upload(&[]).await;
    assert_eq!(s, 400, "{v}");
    let r = reqwest::Client::new()
        .post(format!("{base}/documents"))
        .bearer_auth(&docs.token)
        .json(&serde_json::json!({"file": "x"}))
        .send()
        .await
        .expect("json upload");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(docs.list().await["count"], 3, "nothing of a refused upload is listed");
    assert_eq!(svc.stored_documents(), 3, "nothing of a refused upload is stored");

    // Another institution's counsellor sees, fetches, adds and deletes nothing.
    let foreign = Docs { base: base.clone(), token: otto.openid_token().await };
    let id = txt["id"].as_i64().expect("id");
    for (method, path) in
        [(Method::GET, String::new()), (Method::GET, format!("/{id}")), (Method::DELETE, format!("/{id}"))]
    {
        let r = foreign.call(method.clone(), &path).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
    let (s, _) = foreign.upload(&[("fremd.pdf", pdf("fremd"))]).await;
    assert_eq!(s, 403);
    let none = reqwest::get(format!("{base}/documents/{id}")).await.expect("no token");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);

    // Delete: the entry and the file are gone.
    assert_eq!(docs.call(Method::DELETE, &format!("/{id}")).await.status(), StatusCode::OK);
    assert_eq!(docs.call(Method::GET, &format!("/{id}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(docs.call(Method::DELETE, &format!("/{id}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(docs.list().await["count"], 2);
    assert_eq!(svc.stored_documents(), 2);

    // Every access is in the audit log, without file names.
    let (_, audit) = svc.admin(Method::GET, "/audit?limit=100", None).await;
    for action in ["client_file.document_add", "client_file.document_download", "client_file.document_delete"]
    {
        assert!(audit.as_array().expect("audit").iter().any(|e| e["action"] == action), "{action}");
    }
    assert!(!audit.to_string().contains("Jugendamt"), "no file names in the audit log");
    svc.stop().await;
}
