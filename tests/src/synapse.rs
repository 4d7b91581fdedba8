//! The shared Synapse of a test run.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use assisto_appservice::app::config::Config;

use assisto_appservice::matrix::registration::Registration;

/// How many test services may run at once.
pub const SLOTS: usize = 6;

/// One application-service registration of the shared Synapse.
#[derive(Clone, Debug)]
pub struct Slot {
    /// Index.
    pub index: usize,
    /// Registration ID (as Synapse knows it).
    pub id: String,
    /// Port the service listens on.
    pub port: u16,
    /// The registration file.
    pub registration_path: PathBuf,
    /// The token Synapse sends us.
    pub hs_token: String,
    /// The token we send Synapse.
    pub as_token: String,
    /// Bot localpart.
    pub bot_localpart: String,
    /// Client puppet prefix.
    pub client_prefix: String,
    /// Guest puppet prefix.
    pub guest_prefix: String,
    /// Counsellor localpart prefix (non-exclusive namespace).
    pub counsellor_prefix: String,
    /// Token the Synapse module uses towards this slot's service.
    pub module_token: String,
}

/// The running Synapse.
pub struct Synapse {
    /// Client-server base URL.
    pub url: String,
    /// Its data directory.
    pub dir: PathBuf,
    /// Shared secret for admin registration.
    pub shared_secret: String,
    /// The registrations.
    pub slots: Vec<Slot>,
}

static SYNAPSE: OnceLock<Synapse> = OnceLock::new();
static FREE: Mutex<[bool; SLOTS]> = Mutex::new([true; SLOTS]);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// The shared Synapse, started on first use.
pub fn synapse() -> &'static Synapse {
    SYNAPSE.get_or_init(start)
}

fn python() -> PathBuf {
    std::env::var_os("ASSISTO_SYNAPSE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".venv/bin/python"))
}

/// `PYTHONPATH` for Synapse: the erasure module (`synapse_erasure/`) of this workspace first,
/// so that Synapse finds it even in a venv whose `.pth` files predate it.
fn python_path() -> std::ffi::OsString {
    let mut paths = vec![crate::workspace_root().join("synapse_erasure")];
    if let Some(p) = std::env::var_os("PYTHONPATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).expect("PYTHONPATH")
}

fn start() -> Synapse {
    let python = python();
    assert!(python.exists(), "{} not found: run `make test` (it creates the venv)", python.display());
    let dir = std::env::temp_dir().join(format!("assisto-test-synapse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("synapse dir");
    let port = free_port();

    let mut slots = Vec::new();
    for k in 0..SLOTS {
        let mut cfg = Config::default();
        cfg.bot.localpart = format!("assisto_s{k}");
        cfg.namespaces.client_prefix = format!("rs{k}_");
        cfg.namespaces.guest_prefix = format!("guest{k}_");
        cfg.namespaces.counsellor_regex = format!("c{k}_.*");
        let sport = free_port();
        let id = format!("assisto-test-{k}");
        let reg = Registration::generate(&cfg, &id, &format!("http://127.0.0.1:{sport}"));
        let path = dir.join(format!("registration-{k}.yaml"));
        std::fs::write(&path, reg.to_yaml("test registration")).expect("write registration");
        slots.push(Slot {
            index: k,
            id,
            port: sport,
            registration_path: path,
            hs_token: reg.hs_token,
            as_token: reg.as_token,
            bot_localpart: cfg.bot.localpart,
            client_prefix: cfg.namespaces.client_prefix,
            guest_prefix: cfg.namespaces.guest_prefix,
            counsellor_prefix: format!("c{k}_"),
            module_token: assisto_appservice::matrix::registration::random_token(),
        });
    }

    let script = crate::workspace_root().join("scripts/synapse_config.py");
    let mut gen = Command::new(&python);
    gen.env("PYTHONPATH", python_path())
        .arg(&script)
        .arg("--dir")
        .arg(&dir)
        .arg("--port")
        .arg(port.to_string())
        .arg("--profile")
        .arg("test");
    for s in &slots {
        gen.arg("--registration").arg(&s.registration_path);
    }
    // Synapse on PostgreSQL (an empty database, C collation) instead of its SQLite file:
    // the production set-up, for the benchmarks.
    if let Ok(url) = std::env::var("TEST_SYNAPSE_POSTGRES_URL") {
        gen.arg("--database").arg(url);
    }
    // The rules module, with one backend per slot, each deciding for its own namespaces.
    let backends: Vec<serde_json::Value> = slots
        .iter()
        .map(|s| {
            serde_json::json!({
                "url": format!("http://127.0.0.1:{}", s.port),
                "token": s.module_token,
                "bot": format!("@{}:localhost", s.bot_localpart),
                "users": format!("@{}.*:localhost", s.counsellor_prefix),
                "puppets": format!("@({}|{}).+:localhost", s.client_prefix, s.guest_prefix),
            })
        })
        .collect();
    let module = serde_json::json!({
        "module": "assisto_synapse.AssistoRules",
        "config": { "timeout_seconds": 5, "backends": backends },
    });
    gen.arg("--module").arg(module.to_string());
    let out = gen.output().expect("running synapse_config.py");
    assert!(out.status.success(), "synapse_config.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let (url, shared_secret) = launch(&python, &dir, port);
    Synapse { url, dir, shared_secret, slots }
}

/// A second, plain homeserver (`fremd.test`: no application services, no rules module),
/// started on first use: the "foreign homeserver" of tests about federation-facing checks.
pub fn foreign_synapse() -> &'static Synapse {
    static FOREIGN: OnceLock<Synapse> = OnceLock::new();
    FOREIGN.get_or_init(|| {
        let python = python();
        let dir = std::env::temp_dir().join(format!("assisto-test-foreign-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("synapse dir");
        let port = free_port();
        let script = crate::workspace_root().join("scripts/synapse_config.py");
        let out = Command::new(&python)
            .env("PYTHONPATH", python_path())
            .arg(&script)
            .args(["--dir", &dir.display().to_string(), "--port", &port.to_string()])
            .args(["--profile", "test", "--server-name", "fremd.test"])
            .output()
            .expect("running synapse_config.py");
        assert!(out.status.success(), "synapse_config.py failed: {}", String::from_utf8_lossy(&out.stderr));
        let (url, shared_secret) = launch(&python, &dir, port);
        Synapse { url, dir, shared_secret, slots: Vec::new() }
    })
}

/// Runs Synapse with `dir/homeserver.yaml` until this test process ends, waits until it
/// answers, and returns its URL and registration shared secret.
fn launch(python: &std::path::Path, dir: &std::path::Path, port: u16) -> (String, String) {
    let config_path = dir.join("homeserver.yaml");

    // A small shell guard runs Synapse and ends it (and removes its data) when this test
    // process is gone, however it ends.
    let guard = format!(
        "\"$1\" -m synapse.app.homeserver -c \"$2\" >\"$3/stdout.log\" 2>&1 & hs=$!; \
         while kill -0 {pid} 2>/dev/null && kill -0 $hs 2>/dev/null; do sleep 0.5; done; \
         kill $hs 2>/dev/null; wait $hs; rm -rf \"$3\"",
        pid = std::process::id()
    );
    // The guard outlives this process on purpose (it cleans up after it), so it is not
    // waited for here.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .env("PYTHONPATH", python_path())
        .arg("-c")
        .arg(guard)
        .arg("synapse-guard")
        .arg(python)
        .arg(&config_path)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting synapse");

    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let versions = format!("{url}/_matrix/client/versions");
    loop {
        if let Ok(r) = blocking_get(&versions) {
            if r == 200 {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            let log = std::fs::read_to_string(dir.join("homeserver.log")).unwrap_or_default();
            let out = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
            panic!("Synapse did not start within 120 s.\n{out}\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let secrets: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("secrets.yaml")).expect("secrets"))
            .expect("secrets yaml");
    let shared_secret = secrets["registration_shared_secret"].as_str().expect("shared secret").to_owned();
    (url, shared_secret)
}

/// A plain blocking GET returning the status, without an async runtime.
fn blocking_get(url: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let u = url::Url::parse(url).map_err(std::io::Error::other)?;
    let addr = format!("{}:{}", u.host_str().unwrap_or("127.0.0.1"), u.port().unwrap_or(80));
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {} HTTP/1.0\r\nHost: localhost\r\n\r\n", u.path())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    buf.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad response"))
}

/// A slot held by one test; released on drop.
pub struct SlotGuard(Slot);

impl std::ops::Deref for SlotGuard {
    type Target = Slot;
    fn deref(&self) -> &Slot {
        &self.0
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        free[self.0.index] = true;
    }
}

/// Waits for a free slot.
pub async fn acquire_slot() -> SlotGuard {
    let hs = synapse();
    loop {
        {
            let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(k) = free.iter().position(|f| *f) {
                free[k] = false;
                return SlotGuard(hs.slots[k].clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
