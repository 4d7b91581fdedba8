//! `export-bench`: the chat export of a long chat, against the real stack (Synapse from
//! the project's venv, the release `assisto` binary in its own process).
//!
//! A client chat gets `BENCH_MESSAGES` messages (default 10,000; German text with umlauts,
//! ß and emoji, one in ten long enough to wrap over several lines, counsellor and client
//! taking turns), sent through the homeserver as real history. Then the CSV and the PDF
//! are exported `BENCH_RUNS` times each (default 3) through the tools API as the
//! counsellor: time to the first byte and to the whole file (median of the runs), the
//! size, and the assisto process's resident memory before and at its peak (VmHWM, after
//! the runs). Run it with `make bench-export` (`scripts/bench-export.sh`), which builds in
//! release mode and writes the table into `docs/benchmarks.md`.

use std::time::{Duration, Instant};

use assisto_tests::{bench::env_usize, eventually, matrix::enc, TestService};
use futures::StreamExt;
use serde_json::json;

fn rss_kib(pid: u32, field: &str) -> u64 {
    assisto_tests::bench::status_kib(pid, field)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let messages = env_usize("BENCH_MESSAGES", 10_000);
    let runs = env_usize("BENCH_RUNS", 3).max(1);
    let svc = TestService::prepare(|c| c.logging.level = "warn".into()).await;
    let child = svc.spawn_binary().await;
    let pid = child.id().expect("pid");
    let inst = svc.institution("Exportbank").await;
    let anna = svc.counsellor(&inst, "Anna Messung").await;
    let client = svc.client(&inst, "Jürgen Groß").await;
    let (s, v) = anna.create_room_raw(json!({"invite": [client], "is_direct": true})).await;
    assert_eq!(s, 200, "{v}");
    let room = v["room_id"].as_str().expect("room").to_owned();
    eventually("the client in the chat", Duration::from_secs(30), || async {
        anna.joined_members(&assisto_tests::matrix::rid(&room)).await.contains(&client).then_some(())
    })
    .await;

    // The history: sent through the homeserver as the counsellor and the client (the
    // service may act for both), four at a time.
    let hs = svc.hs_client();
    let started = Instant::now();
    let long = "Das ist eine längere Nachricht über die Woche, die Schule und die Familie – mit Umlauten (äöü), ß und Emoji 😊🧡, die über mehrere Zeilen umbricht. ".repeat(3);
    futures::stream::iter(0..messages)
        .map(|i| {
            let (hs, room) = (hs.clone(), room.clone());
            let who = if i % 2 == 0 { anna.user_id.clone() } else { client.clone() };
            let text = if i % 10 == 9 {
                format!("{i}: {long}")
            } else {
                format!("{i}: Grüße aus Köln, schöne Straße 😊")
            };
            async move {
                let txn =
                    assisto_appservice::matrix::homeserver::TxnId::derived(&format!("{room}/{i}"), "bench");
                hs.send_event(
                    &room,
                    &who,
                    "m.room.message",
                    &txn,
                    &json!({"msgtype": "m.text", "body": text}),
                )
                .await
                .expect("send");
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    eprintln!("{messages} messages sent in {:.0} s", started.elapsed().as_secs_f64());

    let token = anna.openid_token().await;
    let http = reqwest::Client::new();
    let rss_before = rss_kib(pid, "VmRSS:");
    let mut table = String::from(
        "| export | messages | first byte (ms) | whole (ms) | size (KiB) |\n|---|---:|---:|---:|---:|\n",
    );
    for format in ["csv", "pdf"] {
        let mut first = Vec::new();
        let mut whole = Vec::new();
        let mut size = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let r = http
                .get(format!("{}/_assisto/tools/v1/rooms/{}/export?format={format}", svc.url(), enc(&room)))
                .bearer_auth(&token)
                .send()
                .await
                .expect("export");
            assert_eq!(r.status(), 200);
            let mut body = r.bytes_stream();
            let mut got = 0usize;
            let mut ttfb = None;
            while let Some(chunk) = body.next().await {
                ttfb.get_or_insert_with(|| t.elapsed());
                got += chunk.expect("chunk").len();
            }
            first.push(ttfb.unwrap_or_default().as_secs_f64() * 1000.0);
            whole.push(t.elapsed().as_secs_f64() * 1000.0);
            size = got;
        }
        first.sort_by(f64::total_cmp);
        whole.sort_by(f64::total_cmp);
        let (f, w) = (first[first.len() / 2], whole[whole.len() / 2]);
        eprintln!("{format}: first byte {f:.0} ms, whole {w:.0} ms, {} KiB", size / 1024);
        table.push_str(&format!("| {format} | {messages} | {f:.0} | {w:.0} | {} |\n", size / 1024));
    }
    let peak = rss_kib(pid, "VmHWM:");
    table.push_str(&format!(
        "\nassisto's resident memory: {} MiB before the exports, {} MiB at its peak (VmHWM, over {runs} CSV and {runs} PDF exports; medians of the runs above).\n",
        rss_before / 1024,
        peak / 1024
    ));
    print!("{table}");
    if let Ok(out) = std::env::var("BENCH_OUT") {
        std::fs::write(out, table).expect("write the table");
    }
    drop(child);
}
