//! `live-bench`: the live-chat desk under a rush, against the real stack (Synapse from the
//! project's venv, the real `assisto` binary in its own process).
//!
//! `BENCH_VISITORS` visitors (default 1,000) arrive evenly within `BENCH_SECONDS` (default
//! 60); each opens a session, holds a WebSocket and writes a first message.
//! `BENCH_COUNSELLORS` counsellors (default 20, online, up to 50 chats each) take the
//! waiting chats as fast as they can: each reloads the live-chat widget's desk and takes
//! one of the waiting chats with its "Übernehmen" (the widget's API, OpenID like the
//! widget); with `BENCH_TAKE=join`, by joining the room from the Live space instead. A
//! counsellor who loses a race takes the next.
//!
//! Measured: visible (the session's opening, which creates the room and queues the chat,
//! until the chat is in the queue), taken (the first message until a counsellor's take
//! succeeded), both p50/p99, the races lost, and the queue-position updates delivered
//! to the visitors' sockets per second. Run it with `make bench-live`
//! (`scripts/bench-live.sh`), which builds in release mode and writes the table into
//! `docs/benchmarks.md`.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use assisto_tests::{
    bench::{env_usize, percentile},
    matrix::enc,
    TestService,
};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// When each visitor's first message was sent, by room.
type Sent = Arc<Mutex<HashMap<String, Instant>>>;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let visitors = env_usize("BENCH_VISITORS", 1000);
    let seconds = env_usize("BENCH_SECONDS", 60).max(1);
    let counsellors = env_usize("BENCH_COUNSELLORS", 20).max(1);

    let svc = TestService::prepare(|c| {
        c.logging.level = "warn".into();
        // The simulated counsellors do not sync like Element: their status alone counts.
        c.live.presence = false;
    })
    .await;
    let child = svc.spawn_binary().await;
    let inst = svc.institution("Ansturm").await;
    let mut team = Vec::new();
    for i in 0..counsellors {
        let c = svc.counsellor(&inst, &format!("Berater {i}")).await;
        let path = format!("/counsellors/{}/status", enc(&c.user_id));
        let (s, v) =
            svc.admin(reqwest::Method::PUT, &path, Some(json!({"status": "online", "max_chats": 50}))).await;
        assert_eq!(s, 200, "{v}");
        team.push(c);
    }
    let http = reqwest::Client::new();
    let base = format!("{}/_assisto/embed/v1", svc.url());
    let ws_url = format!("{}/ws", base.replace("http://", "ws://"));
    let sent: Sent = Arc::default();
    let taken: Arc<Mutex<Vec<f64>>> = Arc::default();
    let lost = Arc::new(AtomicUsize::new(0));
    let state_frames = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));

    // The counsellors: each takes one of the waiting chats, again and again — through the
    // live-chat widget's API (its desk and "Übernehmen", as in Element) or, with
    // BENCH_TAKE=join, by joining the room from the Live space.
    let by_join = std::env::var("BENCH_TAKE").is_ok_and(|v| v == "join");
    let mut working = Vec::new();
    for (n, c) in team.into_iter().enumerate() {
        let (svc_url, sent, taken, lost, done) =
            (svc.url(), sent.clone(), taken.clone(), lost.clone(), done.clone());
        let http = http.clone();
        let openid = c.openid_token().await;
        working.push(tokio::spawn(async move {
            let desk = format!("{svc_url}/_assisto/live/v1/desk");
            while done.load(Ordering::Relaxed) < visitors {
                let listed: Value = match http.get(&desk).bearer_auth(&openid).send().await {
                    Ok(r) => r.json().await.unwrap_or_default(),
                    Err(_) => Value::Null,
                };
                // Of the chats whose visitor has written, counsellor n looks at the n-th (as
                // people in front of the same list pick different lines); all may collide.
                let waiting: Vec<String> = {
                    let sent = sent.lock().unwrap_or_else(|p| p.into_inner());
                    listed["waiting"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|ch| ch["room_id"].as_str())
                        .filter(|room| sent.contains_key(*room))
                        .map(str::to_owned)
                        .collect()
                };
                let Some(room) = (!waiting.is_empty()).then(|| waiting[n % waiting.len()].clone()) else {
                    // A widget reloads its desk when told of a change; under a rush that is
                    // several times a second.
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                };
                let won = if by_join {
                    let path = format!("/_matrix/client/v3/join/{}", enc(&room));
                    c.raw(reqwest::Method::POST, &path, Some(json!({}))).await.0 == 200
                } else {
                    let take = format!("{svc_url}/_assisto/live/v1/chats/{}/take", enc(&room));
                    match http.post(&take).bearer_auth(&openid).send().await {
                        Ok(r) => r.status() == 200,
                        Err(_) => false,
                    }
                };
                if won {
                    let at = sent.lock().unwrap_or_else(|p| p.into_inner()).get(&room).copied();
                    if let Some(t0) = at {
                        taken
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    // The visitors: evenly spread over the minute.
    let db = assisto_appservice::store::Db::connect(&svc.config.database).await.expect("database");
    let gap = Duration::from_secs_f64(seconds as f64 / visitors as f64);
    let started = Instant::now();
    let mut arriving = Vec::new();
    let mut sockets = Vec::new();
    for i in 0..visitors {
        tokio::time::sleep_until((started + gap * i as u32).into()).await;
        let (http, base, ws_url, inst_id, sent, frames, db) = (
            http.clone(),
            base.clone(),
            ws_url.clone(),
            inst.id.clone(),
            sent.clone(),
            state_frames.clone(),
            db.clone(),
        );
        arriving.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = http
                .post(format!("{base}/institutions/{inst_id}/sessions"))
                .header("x-forwarded-for", format!("10.2.{}.{}", i / 250, i % 250))
                .json(&json!({"area": "anonymous", "form": "bubble"}))
                .send()
                .await
                .ok()?;
            let v: Value = r.json().await.ok()?;
            let visible = t0.elapsed().as_secs_f64() * 1000.0;
            // Refused (the homeserver overwhelmed): counted, not fatal.
            let token = v["session"].as_str()?.to_owned();
            let name = v["client"]["display_name"].as_str().expect("name").to_owned();
            let room: String = sqlx::query_scalar(
                "SELECT e.room_id FROM embed_conversations e JOIN clients c ON c.user_id = e.client \
                 WHERE c.display_name = $1 AND c.institution_id = $2",
            )
            .bind(&name)
            .bind(&inst_id)
            .fetch_one(db.pool())
            .await
            .ok()?;
            let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.ok()?;
            let auth = json!({"type": "auth", "session": token, "after": null}).to_string();
            ws.send(WsMessage::Text(auth.into())).await.ok()?;
            let socket = tokio::spawn(async move {
                while let Some(Ok(m)) = ws.next().await {
                    if let WsMessage::Text(t) = m {
                        if t.contains("\"type\":\"state\"") {
                            frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
            sent.lock().unwrap_or_else(|p| p.into_inner()).insert(room.clone(), Instant::now());
            let r = http
                .post(format!("{base}/messages"))
                .bearer_auth(&token)
                .json(&json!({"txn_id": "m1", "text": "Ich brauche jemanden zum Reden."}))
                .send()
                .await
                .ok()?;
            (r.status() == 201).then_some((visible, socket))
        }));
    }
    let mut visible = Vec::new();
    let mut refused = 0;
    for a in arriving {
        match a.await.expect("visitor") {
            Some((v, socket)) => {
                visible.push(v);
                sockets.push(socket);
            }
            None => refused += 1,
        }
    }
    let expected = visitors - refused;
    let arrived_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(300);
    while done.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total_secs = started.elapsed().as_secs_f64();
    for w in working {
        w.abort();
    }
    let frames = state_frames.load(Ordering::Relaxed);
    let mut taken = taken.lock().unwrap_or_else(|p| p.into_inner()).clone();
    visible.sort_by(f64::total_cmp);
    taken.sort_by(f64::total_cmp);
    let table = format!(
        "| measure | value |\n|---|---|\n\
         | visitors arrived / refused / taken | {visitors} in {arrived_secs:.1} s / {refused} / {} after {total_secs:.1} s |\n\
         | counsellors | {counsellors} (online, up to 50 chats each), each taking one of the waiting chats {how} |\n\
         | visible (session opened: room created, chat queued), p50 / p99 (ms) | {:.0} / {:.0} |\n\
         | taken (first message → a counsellor's take succeeded), p50 / p99 (ms) | {:.0} / {:.0} |\n\
         | takes refused because another counsellor was first | {} |\n\
         | queue-position updates delivered to visitors' sockets | {frames} ({:.0} per second) |\n",
        taken.len(),
        percentile(&visible, 0.5),
        percentile(&visible, 0.99),
        percentile(&taken, 0.5),
        percentile(&taken, 0.99),
        lost.load(Ordering::Relaxed),
        frames as f64 / total_secs,
        how = if by_join { "by joining it from the Live space" } else { "in the live-chat widget (its API)" },
    );
    println!("{table}");
    if let Ok(out) = std::env::var("BENCH_OUT") {
        std::fs::write(out, &table).expect("writing the table");
    }
    for s in sockets {
        s.abort();
    }
    // For finding where the time goes: Synapse's log (access lines with each request's
    // time) is removed with its directory, unless copied out first.
    if let Ok(to) = std::env::var("BENCH_SYNAPSE_LOG") {
        let log = assisto_tests::synapse::synapse().dir.join("homeserver.log");
        std::fs::copy(log, to).expect("copying Synapse's log");
    }
    drop(child);
}
