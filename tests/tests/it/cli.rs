//! The admin CLI against a real Synapse, as the README's walkthrough runs it: the real
//! binary with `ASSISTO_CONFIG` and no other variable, from an unrelated directory.

use std::{path::Path, process::Stdio};

use assisto_tests::{assisto_binary, matrix, TestService};
use tokio::io::AsyncWriteExt;

/// Runs `assisto ARGS` with only `ASSISTO_CONFIG`, optionally writing `stdin`.
pub(crate) async fn assisto(cwd: &Path, config: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = tokio::process::Command::new(assisto_binary())
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("ASSISTO_CONFIG", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting assisto");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).await.expect("stdin");
    drop(input);
    let out = child.wait_with_output().await.expect("assisto");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_works_from_the_config_file_alone() {
    let svc = TestService::start().await;
    let inst = svc.institution("Beratungsstelle CLI").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = tempfile::tempdir().expect("tempdir");
    // Everything the service has, secrets included, in one file (as `make run` writes it).
    let config = dir.path().join("assisto.yaml");
    std::fs::write(&config, serde_norway::to_string(&svc.config).expect("yaml")).expect("config");

    // Creating an account needs homeserver.admin_token: from the file.
    let localpart = svc.counsellor_localpart("kim.test");
    let (ok, out, err) = assisto(
        cwd.path(),
        &config,
        &["counsellor", "add", &inst.id, &localpart, "Kim Test", "--password-stdin"],
        "ein-langes-passwort\n",
    )
    .await;
    assert!(ok, "counsellor add: {err}");
    assert!(out.contains(&localpart), "{out}");
    matrix::TestUser::login(&localpart, "ein-langes-passwort").await;

    // The deletion period in seconds, with the admin API's limits (1 s to 10 years).
    fn retention<'a>(id: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        [&["institution", "retention", id][..], args].concat()
    }
    let (ok, out, err) =
        assisto(cwd.path(), &config, &retention(&inst.id, &["--deletion-period", "90s"]), "").await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["deletion_period_secs"], 90, "{v}");
    let (ok, out, err) = assisto(
        cwd.path(),
        &config,
        &retention(&inst.id, &["--deletion-days", "2", "--live-retention", "12h"]),
        "",
    )
    .await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (v["deletion_period_secs"].as_i64(), v["live_retention_secs"].as_i64()),
        (Some(172_800), Some(43_200))
    );
    for bad in [["--deletion-period", "0s"], ["--deletion-period", "3700d"]] {
        let (ok, _, err) = assisto(cwd.path(), &config, &retention(&inst.id, &bad), "").await;
        assert!(!ok && err.contains("between 1 and"), "{bad:?}: {err}");
    }
    let (_, out, _) = assisto(cwd.path(), &config, &retention(&inst.id, &[]), "").await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["deletion_period_secs"], 172_800, "refused values change nothing: {v}");

    let stray: Vec<_> = std::fs::read_dir(cwd.path()).expect("cwd").collect();
    assert!(stray.is_empty(), "the CLI created {stray:?} in its working directory");
}
