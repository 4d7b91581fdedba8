//! A real browser for tests: Debian's Chromium, headless, driven over WebDriver through
//! Debian's ChromeDriver (both installed by `scripts/ensure-browser.sh`, which `make test`
//! runs). The protocol is spoken by the `fantoccini` crate (plain HTTP to ChromeDriver on
//! localhost, no TLS); `Browser` is a thin wrapper that panics with the driver's message, as
//! tests want. Accessibility checks run axe-core (npm, `tests/browser/`) in the page.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use fantoccini::{
    actions::{InputSource, KeyAction, KeyActions},
    Client, ClientBuilder, Locator,
};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

pub use fantoccini::elements::Element;

/// WebDriver's code for the right arrow key (`fantoccini::key::Key::Right`).
pub const ARROW_RIGHT: &str = "\u{E014}";

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    client: Client,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Where tests put screenshots: `target/test-output/`.
pub fn output_dir() -> PathBuf {
    let dir = crate::workspace_root().join("target").join("test-output");
    std::fs::create_dir_all(&dir).expect("creating target/test-output");
    dir
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium with a fresh profile, 1280×900.
    pub async fn start() -> Browser {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run scripts/ensure-browser.sh (make test does) to install the browser tests' tools"
            );
        }
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--lang=de-DE".into(),
            // A fake microphone that needs no permission prompt (voice messages).
            "--use-fake-ui-for-media-stream".into(),
            "--use-fake-device-for-media-stream".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), json!({"binary": "/usr/bin/chromium", "args": args}));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("chromedriver refused a session: {e}"));
        Browser { driver, client, _profile: profile }
    }

    /// Opens a URL.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("WebDriver goto {url}: {e}"));
    }

    /// The first element matching a CSS selector, if any.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => Some(e),
            Err(e) if e.is_no_such_element() => None,
            Err(e) => panic!("WebDriver find {css}: {e}"),
        }
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Element {
        match self.try_find(css).await {
            Some(e) => e,
            None => {
                let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let source = self.client.source().await.unwrap_or_default();
                let source: String = source.chars().take(2000).collect();
                panic!("no element {css} on {url}: {source}")
            }
        }
    }

    /// Waits until a script (a function body returning a value) returns something truthy.
    pub async fn wait_until(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(script, json!([])).await;
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks an element.
    pub async fn click(&self, el: &Element) {
        el.click().await.unwrap_or_else(|e| panic!("WebDriver click: {e}"));
    }

    /// Types into an element (also: file paths into `<input type=file>`, one per line).
    pub async fn type_text(&self, el: &Element, text: &str) {
        el.send_keys(text).await.unwrap_or_else(|e| panic!("WebDriver send keys: {e}"));
    }

    /// Clears an input.
    pub async fn clear(&self, el: &Element) {
        el.clear().await.unwrap_or_else(|e| panic!("WebDriver clear: {e}"));
    }

    /// Keys sent to whatever has the focus.
    pub async fn keys(&self, keys: &str) {
        let actions = keys.chars().fold(KeyActions::new("keyboard".into()), |a, c| {
            a.then(KeyAction::Down { value: c }).then(KeyAction::Up { value: c })
        });
        self.client.perform_actions(actions).await.unwrap_or_else(|e| panic!("WebDriver actions: {e}"));
    }

    /// Runs a script (a function body; `arguments` holds `args`, a JSON array) and returns its
    /// result.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.client
            .execute(script, script_args(args))
            .await
            .unwrap_or_else(|e| panic!("WebDriver execute: {e}"))
    }

    /// Accepts a `confirm()` dialog, waiting for it to appear.
    pub async fn accept_dialog(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.client.accept_alert().await {
                Ok(()) => return,
                Err(e) => assert!(Instant::now() < deadline, "no dialog appeared: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Switches into an iframe.
    pub async fn enter_frame(&self, frame: &Element) {
        frame.enter_frame().await.unwrap_or_else(|e| panic!("WebDriver enter frame: {e}"));
    }

    /// Back to the top-level page (the crate only goes up one frame at a time).
    pub async fn leave_frames(&self) {
        while self.eval("return window.self !== window.top;", json!([])).await == json!(true) {
            self.client.enter_parent_frame().await.unwrap_or_else(|e| panic!("WebDriver parent frame: {e}"));
        }
    }

    /// Resizes the window.
    pub async fn set_size(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("WebDriver window size: {e}"));
    }

    /// Takes a screenshot into `target/test-output/<name>.png` and returns its path and width.
    pub async fn screenshot(&self, name: &str) -> (PathBuf, u32) {
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("WebDriver screenshot: {e}"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 24, "a PNG screenshot");
        let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
        let path = output_dir().join(format!("{name}.png"));
        std::fs::write(&path, &png).expect("writing the screenshot");
        (path, width)
    }

    /// Runs axe-core in the current page or frame against WCAG 2.0/2.1 A and AA; returns the
    /// violations (rule ID, impact, help, and the first few elements).
    pub async fn axe_violations(&self) -> Vec<Value> {
        let axe = crate::workspace_root().join("tests/browser/node_modules/axe-core/axe.min.js");
        let source = std::fs::read_to_string(&axe).unwrap_or_else(|_| {
            panic!("{} is missing: run scripts/ensure-browser.sh (make test does)", axe.display())
        });
        self.eval(&source, json!([])).await;
        let run = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } })
              .then((r) => done(r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map((n) => n.html) }))))
              .catch((e) => done([{ id: "axe-error", help: String(e) }]));
        "#;
        let v = self
            .client
            .execute_async(run, vec![])
            .await
            .unwrap_or_else(|e| panic!("WebDriver axe-core: {e}"));
        v.as_array().cloned().unwrap_or_default()
    }

    /// Ends the session and ChromeDriver (what is left is ended on drop).
    pub async fn quit(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}

/// A script's arguments as the crate takes them: the elements of a JSON array (`null`: none).
fn script_args(args: Value) -> Vec<Value> {
    match args {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

impl Drop for Browser {
    /// A test that fails before `quit` must not leave Chromium running: its processes are
    /// found by this session's own profile directory and ended.
    fn drop(&mut self) {
        let marker = self._profile.path().display().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else { return };
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&marker) {
                let _ = std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use fantoccini::key::Key;
    use serde_json::json;

    #[test]
    fn arrow_right_is_the_crates_key() {
        assert_eq!(super::ARROW_RIGHT, &*Key::Right);
    }

    #[test]
    fn script_args_are_the_arrays_elements() {
        assert_eq!(super::script_args(json!(["a", 1])), vec![json!("a"), json!(1)]);
        assert!(super::script_args(json!([])).is_empty());
        assert!(super::script_args(serde_json::Value::Null).is_empty());
    }
}
