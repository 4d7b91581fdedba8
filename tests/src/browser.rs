//! A real browser for tests: Debian's Chromium, headless, driven over WebDriver through
//! Debian's ChromeDriver (both installed by `scripts/ensure-browser.sh`, which `make test`
//! runs). The WebDriver protocol is plain JSON over HTTP, so this is a small client of our
//! own on `reqwest`. Accessibility checks run axe-core (npm, `tests/browser/`) in the page.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// The key WebDriver uses for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// WebDriver's code for the right arrow key.
pub const ARROW_RIGHT: &str = "\u{E014}";

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// An element of the current page (or frame).
#[derive(Clone, Debug)]
pub struct Element(String);

impl Element {
    fn json(&self) -> Value {
        json!({ ELEMENT: self.0 })
    }
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
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r.json::<Value>().await.ok().is_some_and(|v| v["value"]["ready"] == json!(true)),
                Err(_) => false,
            };
            if ready {
                break;
            }
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
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused a session: {r}"))
            .to_owned();
        Browser { driver, base, session, http, _profile: profile }
    }

    /// One WebDriver command; panics with the driver's message on error.
    pub async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), url);
        if let Some(b) = body {
            req = req.json(&b);
        } else if method == Method::POST {
            req = req.json(&json!({}));
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        let ok = r.status().is_success();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(ok, "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    /// Opens a URL.
    pub async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The first element matching a CSS selector, if any.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        let url = format!("{}/session/{}/element", self.base, self.session);
        let r = self
            .http
            .post(url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .expect("find");
        let v: Value = r.json().await.unwrap_or(Value::Null);
        v["value"][ELEMENT].as_str().map(|id| Element(id.to_owned()))
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Element {
        match self.try_find(css).await {
            Some(e) => e,
            None => {
                let url = self.cmd(Method::GET, "/url", None).await;
                let source = self.cmd(Method::GET, "/source", None).await;
                let source: String = source.as_str().unwrap_or_default().chars().take(2000).collect();
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
        self.cmd(Method::POST, &format!("/element/{}/click", el.0), None).await;
    }

    /// Types into an element (also: file paths into `<input type=file>`, one per line).
    pub async fn type_text(&self, el: &Element, text: &str) {
        self.cmd(Method::POST, &format!("/element/{}/value", el.0), Some(json!({"text": text}))).await;
    }

    /// Clears an input.
    pub async fn clear(&self, el: &Element) {
        self.cmd(Method::POST, &format!("/element/{}/clear", el.0), None).await;
    }

    /// Keys sent to whatever has the focus.
    pub async fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.cmd(
            Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
    }

    /// Runs a script (a function body; `arguments` holds `args`) and returns its result.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.cmd(Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Accepts a `confirm()` dialog, waiting for it to appear.
    pub async fn accept_dialog(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}/session/{}/alert/accept", self.base, self.session);
            let r = self.http.post(url).json(&json!({})).send().await.expect("accept");
            if r.status().is_success() {
                return;
            }
            assert!(Instant::now() < deadline, "no dialog appeared");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Switches into an iframe.
    pub async fn enter_frame(&self, frame: &Element) {
        self.cmd(Method::POST, "/frame", Some(json!({"id": frame.json()}))).await;
    }

    /// Back to the top-level page.
    pub async fn leave_frames(&self) {
        self.cmd(Method::POST, "/frame", Some(json!({"id": null}))).await;
    }

    /// Resizes the window.
    pub async fn set_size(&self, width: u32, height: u32) {
        self.cmd(Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// Takes a screenshot into `target/test-output/<name>.png` and returns its path and width.
    pub async fn screenshot(&self, name: &str) -> (PathBuf, u32) {
        let b64 = self.cmd(Method::GET, "/screenshot", None).await;
        let png = base64_decode(b64.as_str().expect("screenshot data"));
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
        let v = self.cmd(Method::POST, "/execute/async", Some(json!({"script": run, "args": []}))).await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Ends the session and ChromeDriver (what is left is ended on drop).
    pub async fn quit(mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
        let _ = self.driver.kill().await;
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

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() {
        assert_eq!(super::base64_decode("aGFsbG8="), b"hallo");
        assert_eq!(super::base64_decode("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
    }
}
