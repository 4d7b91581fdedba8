//! `embed-bench`: what one `assisto` process does for the web embed, against the real stack
//! (Synapse from the project's venv, the real `assisto` binary in its own process):
//!
//! 1. **Connections held**: opens `BENCH_CONNECTIONS` WebSockets (default 10,000), spread over
//!    `BENCH_SESSIONS` sessions (default 20, as several tabs of few visitors: creating
//!    thousands of guests would measure Synapse's room creation instead), each authenticated
//!    and idle; reads the process's resident memory before and after.
//! 2. **Latency the bridge adds**: `BENCH_SAMPLES` (default 200) times, a visitor's message
//!    through the embed (`POST /messages`) and the same puppet's message sent straight to
//!    Synapse, alternating, each timed until it arrives in the counsellor's `/sync`.
//!
//! Run it with `make bench-embed` (`scripts/bench-embed.sh`), which builds in release mode
//! and writes the table into `docs/benchmarks.md`. Timings are noisy on a shared machine:
//! compare the two paths measured in the same run.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use assisto_tests::{
    bench::{env_usize, percentile},
    matrix::enc,
    synapse::synapse,
    TestService,
};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// When each marker text arrived in the counsellor's sync.
#[derive(Default)]
struct Arrivals {
    seen: Mutex<HashMap<String, Instant>>,
    notify: Notify,
}

impl Arrivals {
    async fn wait(&self, marker: &str) -> Instant {
        loop {
            let notified = self.notify.notified();
            if let Some(t) = self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(marker) {
                return *t;
            }
            if tokio::time::timeout(Duration::from_secs(30), notified).await.is_err() {
                panic!("{marker} never arrived in the counsellor's sync");
            }
        }
    }
}

/// The counsellor's sync loop: records when each message body arrives.
async fn sync_loop(token: String, arrivals: Arc<Arrivals>) {
    let http = reqwest::Client::new();
    let base = format!("{}/_matrix/client/v3/sync", synapse().url);
    let filter = json!({"room": {"timeline": {"limit": 50}, "state": {"lazy_load_members": true}},
        "presence": {"not_types": ["*"]}, "account_data": {"not_types": ["*"]}})
    .to_string();
    let mut since: Option<String> = None;
    loop {
        let mut q = vec![("timeout", "30000".to_owned()), ("filter", filter.clone())];
        if let Some(s) = &since {
            q.push(("since", s.clone()));
        }
        let Ok(r) = http.get(&base).bearer_auth(&token).query(&q).send().await else { continue };
        let Ok(v) = r.json::<Value>().await else { continue };
        let now = Instant::now();
        if let Some(rooms) = v["rooms"]["join"].as_object() {
            let mut seen = arrivals.seen.lock().unwrap_or_else(|p| p.into_inner());
            for room in rooms.values() {
                for ev in room["timeline"]["events"].as_array().into_iter().flatten() {
                    if let Some(body) = ev["content"]["body"].as_str() {
                        seen.entry(body.to_owned()).or_insert(now);
                    }
                }
            }
        }
        arrivals.notify.notify_waiters();
        since = v["next_batch"].as_str().map(str::to_owned).or(since);
    }
}

struct Visitor {
    token: String,
    room: String,
    puppet: String,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let connections = env_usize("BENCH_CONNECTIONS", 10_000);
    let sessions = env_usize("BENCH_SESSIONS", 20).max(1);
    let samples = env_usize("BENCH_SAMPLES", 200);

    let svc = TestService::prepare(|c| c.logging.level = "warn".into()).await;
    let child = svc.spawn_binary().await;
    let pid = child.id().expect("pid");
    let inst = svc.institution("Benchhaus").await;
    let anna = svc.counsellor(&inst, "Anna Bench").await;
    let db = assisto_appservice::store::Db::connect(&svc.config.database).await.expect("database");
    let http = reqwest::Client::new();
    let base = format!("{}/_assisto/embed/v1", svc.url());

    // Visitors, each with a live chat the counsellor has joined.
    let mut visitors = Vec::new();
    for _ in 0..sessions {
        let v: Value = http
            .post(format!("{base}/institutions/{}/sessions", inst.id))
            .header("x-forwarded-for", format!("10.1.{}.{}", visitors.len() / 250, visitors.len() % 250))
            .json(&json!({"area": "anonymous", "form": "bubble"}))
            .send()
            .await
            .expect("session")
            .json()
            .await
            .expect("session json");
        let token = v["session"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_owned();
        let name = v["client"]["display_name"].as_str().expect("name").to_owned();
        let (room, puppet): (String, String) = sqlx::query_as(
            "SELECT e.room_id, e.client FROM embed_conversations e JOIN clients c ON c.user_id = e.client \
             WHERE c.display_name = $1 AND c.institution_id = $2",
        )
        .bind(&name)
        .bind(&inst.id)
        .fetch_one(db.pool())
        .await
        .expect("conversation");
        let (s, _) = anna
            .raw(reqwest::Method::POST, &format!("/_matrix/client/v3/join/{}", enc(&room)), Some(json!({})))
            .await;
        assert_eq!(s, 200, "the counsellor joins");
        visitors.push(Visitor { token, room, puppet });
    }

    // 1. Connections held, and memory per connection.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss_kib(pid);
    let ws_url = format!("{}/ws", base.replace("http://", "ws://"));
    let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut held = Vec::with_capacity(connections);
    for batch in (0..connections).collect::<Vec<_>>().chunks(250) {
        let mut opening = Vec::new();
        for &i in batch {
            let url = ws_url.clone();
            let token = visitors[i % visitors.len()].token.clone();
            let ready = ready.clone();
            opening.push(tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
                let auth = json!({"type": "auth", "session": token, "after": null}).to_string();
                ws.send(WsMessage::Text(auth.into())).await.ok()?;
                while let Some(Ok(m)) = ws.next().await {
                    if let WsMessage::Text(t) = m {
                        if t.contains("\"ready\"") {
                            ready.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                    }
                }
                // Idle, answering pings, until the benchmark ends.
                Some(tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} }))
            }));
        }
        for o in opening {
            if let Ok(Some(h)) = o.await {
                held.push(h);
            }
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_kib(pid);
    let ready_n = ready.load(std::sync::atomic::Ordering::Relaxed);
    let per_conn = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / ready_n.max(1) as f64;

    // 2. Latency: through the embed vs straight to Synapse, alternating.
    let arrivals = Arc::new(Arrivals::default());
    let sync = tokio::spawn(sync_loop(anna.client.access_token().expect("token"), arrivals.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut via_embed, mut direct) = (Vec::new(), Vec::new());
    let as_token = svc.slot.as_token.clone();
    for i in 0..samples {
        let v = &visitors[i % visitors.len()];
        let marker = format!("bench-embed-{i}-{}", uuid::Uuid::new_v4().simple());
        let t0 = Instant::now();
        let r = http
            .post(format!("{base}/messages"))
            .bearer_auth(&v.token)
            .json(&json!({"txn_id": format!("b{i}"), "text": marker}))
            .send()
            .await
            .expect("embed send");
        assert_eq!(r.status(), 201, "embed send: {}", r.text().await.unwrap_or_default());
        via_embed.push(arrivals.wait(&marker).await.duration_since(t0).as_secs_f64() * 1000.0);

        let marker = format!("bench-direct-{i}-{}", uuid::Uuid::new_v4().simple());
        let t0 = Instant::now();
        let url = format!(
            "{}/_matrix/client/v3/rooms/{}/send/m.room.message/d{i}-{}?user_id={}",
            synapse().url,
            enc(&v.room),
            uuid::Uuid::new_v4().simple(),
            enc(&v.puppet)
        );
        let r = http
            .put(url)
            .bearer_auth(&as_token)
            .json(&json!({"msgtype": "m.text", "body": marker}))
            .send()
            .await
            .expect("direct send");
        assert!(r.status().is_success(), "direct send: {}", r.text().await.unwrap_or_default());
        direct.push(arrivals.wait(&marker).await.duration_since(t0).as_secs_f64() * 1000.0);
    }
    sync.abort();
    let still_open = held.iter().filter(|h| !h.is_finished()).count();
    via_embed.sort_by(f64::total_cmp);
    direct.sort_by(f64::total_cmp);

    let table = format!(
        "| measure | value |\n|---|---|\n\
         | WebSocket connections authenticated and held | {ready_n} of {connections} ({sessions} sessions), opened in {open_secs:.1} s, {still_open} still open at the end |\n\
         | assisto resident memory before → after | {:.1} MiB → {:.1} MiB |\n\
         | memory per idle connection | {:.1} KiB |\n\
         | embed → counsellor's sync, p50 / p99 (ms) | {:.1} / {:.1} |\n\
         | straight to Synapse → counsellor's sync, p50 / p99 (ms) | {:.1} / {:.1} |\n\
         | added by the bridge, p50 / p99 (ms) | {:.1} / {:.1} |\n\
         | samples | {samples} of each, alternating |\n",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        per_conn / 1024.0,
        percentile(&via_embed, 0.5),
        percentile(&via_embed, 0.99),
        percentile(&direct, 0.5),
        percentile(&direct, 0.99),
        percentile(&via_embed, 0.5) - percentile(&direct, 0.5),
        percentile(&via_embed, 0.99) - percentile(&direct, 0.99),
    );
    println!("{table}");
    if let Ok(out) = std::env::var("BENCH_OUT") {
        std::fs::write(out, &table).expect("writing the table");
    }
    for h in held {
        h.abort();
    }
    drop(child);
}
