//! The served OpenAPI documents say what the service answers: schemathesis (from PyPI,
//! `scripts/ensure-schemathesis.sh`) reads each document from the running service,
//! generates requests from it — valid ones, boundary cases, wrong types, missing bodies,
//! unknown IDs, no or wrong credentials — and checks every answer: its status is listed
//! for the operation, its body has the documented type and schema, and nothing is a 500.

use std::process::Stdio;

use assisto_tests::{embed::Visitor, workspace_root, TestService, ADMIN_API_TOKEN};

/// Runs schemathesis against one document; returns its report when it found something.
async fn schemathesis(document: &str, base: &str, token: &str, extra: &[&str]) -> Option<String> {
    let bin = workspace_root().join(".venv-contract/bin/schemathesis");
    assert!(bin.exists(), "{} is missing: run scripts/ensure-schemathesis.sh", bin.display());
    // Its crash cache stays out of the tree: a fresh directory per run.
    let cwd = tempfile::tempdir().expect("tempdir");
    let out = tokio::process::Command::new(bin)
        .current_dir(cwd.path())
        .args([
            "run",
            document,
            "--url",
            base,
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "15",
            "--workers",
            "1",
            "--seed",
            "1",
            "--no-color",
        ])
        .args(extra)
        .env("SCHEMATHESIS_HOOKS", "assisto_hooks")
        .env("PYTHONPATH", workspace_root().join("tests/contract"))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("schemathesis runs");
    let report = format!(
        "{document}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (!out.status.success()).then_some(report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_document_lists_what_the_service_answers() {
    let mut svc = TestService::start().await;
    let inst = svc.institution("Vertragshaus").await;
    let anna = svc.counsellor(&inst, "Anna Vertrag").await;
    // An institution admin, so that the statistics answer her (others get 403).
    let path = format!("/counsellors/{}/institution-admin", assisto_tests::matrix::enc(&anna.user_id));
    let (s, v) =
        svc.admin(reqwest::Method::PUT, &path, Some(serde_json::json!({"institution_admin": true}))).await;
    assert_eq!(s, 200, "{v}");
    let openid = anna.openid_token().await;
    let visitor = Visitor::anonymous(&svc, &inst.id, None).await;
    let session = visitor.session.clone().expect("session");
    let base = svc.url();

    // `POST /end` ends the session the other embed operations run with: it goes last.
    let embed_doc = format!("{base}/_assisto/embed/v1/openapi.yaml");
    let embed_base = format!("{base}/_assisto/embed/v1");
    let docs = [
        (
            format!("{base}/_assisto/admin/v1/openapi.yaml"),
            format!("{base}/_assisto/admin/v1"),
            ADMIN_API_TOKEN.to_owned(),
            vec![],
        ),
        (
            format!("{base}/_assisto/client-file/v1/openapi.yaml"),
            format!("{base}/_assisto/client-file/v1"),
            openid.clone(),
            vec![],
        ),
        (
            format!("{base}/_assisto/live/v1/openapi.yaml"),
            format!("{base}/_assisto/live/v1"),
            openid.clone(),
            vec![],
        ),
        (
            format!("{base}/_assisto/tools/v1/openapi.yaml"),
            format!("{base}/_assisto/tools/v1"),
            openid.clone(),
            vec![],
        ),
        (
            format!("{base}/_assisto/search/v1/openapi.yaml"),
            format!("{base}/_assisto/search/v1"),
            openid.clone(),
            vec![],
        ),
        (
            format!("{base}/_assisto/statistics/v1/openapi.yaml"),
            format!("{base}/_assisto/statistics/v1"),
            openid.clone(),
            vec![],
        ),
        (
            format!("{base}/_assisto/counters/v1/openapi.yaml"),
            format!("{base}/_assisto/counters/v1"),
            openid,
            // The stream does not end: schemathesis would wait for it.
            vec!["--exclude-path", "/stream"],
        ),
        (embed_doc.clone(), embed_base.clone(), session.clone(), vec!["--exclude-path", "/end"]),
        (
            workspace_root().join("docs/openapi.yaml").display().to_string(),
            base.clone(),
            svc.slot.hs_token.clone(),
            vec![],
        ),
        (embed_doc, embed_base, session, vec!["--include-path", "/end"]),
    ];
    let mut found = Vec::new();
    for (doc, url, token, extra) in docs {
        if let Some(report) = schemathesis(&doc, &url, &token, &extra).await {
            found.push(report);
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n\n"));
    svc.stop().await;
}
