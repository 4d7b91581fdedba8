//! The `assisto` binary's admin commands as an operator runs them: configured by one YAML
//! file (`ASSISTO_CONFIG`) and nothing else, from an unrelated working directory. None of
//! these needs a homeserver.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn registration() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../registration.yaml")
}

/// Runs `assisto ARGS` in `cwd` with no environment but `ASSISTO_CONFIG=config`.
fn assisto(cwd: &Path, config: &Path, args: &[&str]) -> Output {
    // TEST_ASSISTO_BIN: a checkout sharing its target directory with others names its own.
    Command::new(std::env::var_os("TEST_ASSISTO_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_assisto").into()))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("ASSISTO_CONFIG", config)
        .output()
        .expect("running assisto")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn write_config(path: &Path, db: &Path) {
    std::fs::write(
        path,
        format!(
            "appservice:\n  registration: {}\ndatabase:\n  url: sqlite://{}\nhomeserver:\n  admin_token: \
             secret-admin-token\n",
            registration().display(),
            db.display()
        ),
    )
    .expect("write config");
}

#[test]
fn the_cli_creates_nothing_and_refuses_a_missing_database() {
    let data = tempfile::tempdir().expect("tempdir");
    let cwd = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("assisto.yaml");
    let db = data.path().join("db").join("assisto.db");
    write_config(&config, &db);

    let out = assisto(cwd.path(), &config, &["institution", "list"]);
    assert!(!out.status.success(), "a missing database must be refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no database at") && err.contains("assisto.db"), "{err}");
    assert!(entries(cwd.path()).is_empty(), "the working directory got {:?}", entries(cwd.path()));
    assert_eq!(entries(data.path()), ["assisto.yaml"], "nothing may be created beside the config");
}

#[test]
fn the_cli_reads_everything_from_the_config_file_and_keeps_data_beside_the_database() {
    let data = tempfile::tempdir().expect("tempdir");
    let cwd = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("assisto.yaml");
    let db = data.path().join("assisto.db");
    write_config(&config, &db);
    // The service creates the database at its first start; here the library does.
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(async {
        let cfg = assisto_appservice::app::config::Config::load(Some(&config)).expect("config");
        assisto_appservice::store::Db::connect(&cfg.database).await.expect("db").close().await;
    });

    // The effective configuration: the admin token from the file (redacted), the file store
    // beside the database.
    let out = assisto(cwd.path(), &config, &["check-config"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(!shown.contains("secret-admin-token"), "{shown}");
    let files = data.path().join("assisto-files");
    assert!(shown.contains(&format!("{:?}", files)), "{shown}");

    let out = assisto(cwd.path(), &config, &["institution", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");

    // A bare number is refused before anything is opened: seconds or days?
    let out = assisto(cwd.path(), &config, &["institution", "retention", "x", "--deletion-period", "30"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no unit"));
    let out = assisto(
        cwd.path(),
        &config,
        &["institution", "retention", "x", "--deletion-period", "30d", "--deletion-days", "30"],
    );
    assert!(!out.status.success(), "the old and the new flag together are refused");

    assert!(entries(cwd.path()).is_empty(), "the working directory got {:?}", entries(cwd.path()));
    assert!(!files.exists(), "the CLI must not create the file store");
}
