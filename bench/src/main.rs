//! `assisto-bench`: plays the homeserver against an application service.
//!
//! It pushes `N` transactions of `M` `m.room.message` events to
//! `PUT /_matrix/app/v1/transactions/{txnId}`, one at a time as Synapse does (the next only
//! after the previous was acknowledged with 200), and measures:
//!
//! - transactions/s and events/s over the whole run (first send to last acknowledgement);
//! - the acknowledgement latency of each transaction (p50, p99, max);
//! - "all processed after": the time from the first send until the target reports, through
//!   a counter it exposes, that it has finished every event of the run.
//!
//! The counter is read from `--processed-url`: either a plain number (the peers'
//! `GET /processed`), or, with `--processed-metric NAME`, the sum of all samples of `NAME`
//! in a Prometheus text exposition (assisto's `/metrics`, `assisto_events_processed_total`).
//!
//! Before measuring, `--warmup` transactions are pushed and waited for. Transaction IDs are
//! numeric like Synapse's and start with a run ID (milliseconds since the epoch unless
//! `--run-id` is given), and event IDs are `$bench-<run>-<txn>-<event>`, so that repeated
//! runs against one database neither replay transactions nor repeat events.
//!
//! Only ever point it at a service on this machine: it is a load generator.

use std::{
    fmt::Write as _,
    process::ExitCode,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Serialize;
use serde_json::json;

/// Largest number of transactions in one run (warm-up included): the transaction ID keeps
/// six digits for the index after the run ID.
const MAX_TRANSACTIONS: u64 = 999_999;
/// Largest number of events in one transaction (Synapse sends at most 100).
const MAX_EVENTS: usize = 1000;

#[derive(Parser, Debug)]
#[command(
    name = "assisto-bench",
    version,
    about = "Plays the homeserver: pushes transactions to an application service, one in flight, and measures it"
)]
struct Cli {
    /// Base URL of the application service, e.g. http://127.0.0.1:8009.
    #[arg(long)]
    target: String,
    /// The token the homeserver presents (`Authorization: Bearer …`).
    #[arg(long, env = "BENCH_HS_TOKEN", hide_env_values = true)]
    hs_token: String,
    /// Number of measured transactions.
    #[arg(long, short = 'n', value_parser = clap::value_parser!(u64).range(1..=MAX_TRANSACTIONS))]
    transactions: u64,
    /// Events per transaction.
    #[arg(long, short = 'm', value_parser = clap::value_parser!(u64).range(1..=MAX_EVENTS as u64))]
    events: u64,
    /// Transactions pushed (and waited for) before measuring.
    #[arg(long, default_value_t = 20)]
    warmup: u64,
    /// Number of rooms the events are spread over.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    rooms: u64,
    /// URL of the target's processed-events counter. Without it, "all processed" is not measured.
    #[arg(long)]
    processed_url: Option<String>,
    /// Read the counter as the sum of this Prometheus metric's samples at --processed-url
    /// (else the answer must be a plain number).
    #[arg(long, requires = "processed_url")]
    processed_metric: Option<String>,
    /// How long to wait, after the last acknowledgement, for everything to be processed.
    #[arg(long, default_value_t = 300)]
    processed_timeout_secs: u64,
    /// How often to read the processed counter while waiting, in milliseconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    poll_ms: u64,
    /// Timeout of one request, in seconds.
    #[arg(long, default_value_t = 60)]
    request_timeout_secs: u64,
    /// Run ID put in front of transaction and event IDs (digits; default: ms since the epoch).
    #[arg(long)]
    run_id: Option<u64>,
    /// Process ID of the target, to report its resident memory (Linux: /proc/PID/status).
    #[arg(long)]
    pid: Option<u32>,
    /// Name of the implementation in the output.
    #[arg(long, default_value = "target")]
    label: String,
    /// Print the result as one JSON object instead of a table row.
    #[arg(long)]
    json: bool,
    /// After the run, push its last K transactions again and measure those acknowledgements
    /// too: a service that recognises replays answers them without touching its disk, so
    /// this is the rest of the path (HTTP, parsing) on its own.
    #[arg(long, default_value_t = 0)]
    replays: u64,
}

/// The result of one run.
#[derive(Debug, Serialize)]
struct Report {
    label: String,
    target: String,
    transactions: u64,
    events_per_transaction: u64,
    warmup_transactions: u64,
    run_id: u64,
    elapsed_s: f64,
    transactions_per_s: f64,
    events_per_s: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    ack_max_ms: f64,
    ack_mean_ms: f64,
    /// From the first measured send until every event of the run was processed.
    all_processed_s: Option<f64>,
    /// Resident memory of `--pid` before the warm-up, in KiB.
    rss_before_kib: Option<u64>,
    /// Resident memory of `--pid` after everything was processed, in KiB.
    rss_after_kib: Option<u64>,
    /// Highest resident memory of `--pid` so far (VmHWM), in KiB.
    rss_peak_kib: Option<u64>,
    /// With `--replays`: how many, and their acknowledgement latency.
    replays: u64,
    replay_ack_p50_ms: Option<f64>,
    replay_ack_p99_ms: Option<f64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("assisto-bench: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("assisto-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let target =
        url::Url::parse(&cli.target).with_context(|| format!("--target {:?} is not a URL", cli.target))?;
    if !matches!(target.scheme(), "http" | "https") {
        bail!("--target must be an http:// or https:// URL");
    }
    if let Some(u) = &cli.processed_url {
        url::Url::parse(u).with_context(|| format!("--processed-url {u:?} is not a URL"))?;
    }
    if cli.warmup + cli.transactions > MAX_TRANSACTIONS {
        bail!("--warmup plus --transactions may be at most {MAX_TRANSACTIONS}");
    }
    let run_id = match cli.run_id {
        Some(id) => id,
        None => SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_millis()
            as u64,
    };
    // The transaction ID is `<run_id><index:06>`: it must still be a u64 like Synapse's.
    if run_id.checked_mul(1_000_000).and_then(|r| r.checked_add(MAX_TRANSACTIONS)).is_none() {
        bail!("--run-id is too large: it must leave room for six more digits in a u64");
    }

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(cli.request_timeout_secs))
        .pool_max_idle_per_host(4)
        .build()
        .context("building the HTTP client")?;
    let base = cli.target.trim_end_matches('/').to_owned();
    let counter = cli.processed_url.as_ref().map(|url| Counter {
        client: client.clone(),
        url: url.clone(),
        metric: cli.processed_metric.clone(),
    });
    let m = cli.events as usize;
    let workload = Workload { run_id, events: m, rooms: cli.rooms };
    let pusher = Pusher { client: client.clone(), base, token: cli.hs_token.clone() };
    let poll = Duration::from_millis(cli.poll_ms);
    let processed_timeout = Duration::from_secs(cli.processed_timeout_secs);

    let rss_before_kib = cli.pid.and_then(|p| proc_status_kib(p, "VmRSS"));

    // Warm-up: push, then wait until the target has processed it, so that the measured
    // run starts from an idle target.
    if cli.warmup > 0 {
        let start_count = match &counter {
            Some(c) => Some(c.read().await.context("reading the processed counter")?),
            None => None,
        };
        for i in 0..cli.warmup {
            let body = workload.transaction(i);
            pusher.push(&workload.txn_id(i), body).await.context("warm-up")?;
        }
        if let (Some(c), Some(start)) = (&counter, start_count) {
            let want = start + cli.warmup * cli.events;
            c.wait_for(want, poll, Instant::now() + processed_timeout)
                .await
                .context("waiting for the warm-up to be processed")?;
        }
    }

    // Build every body before the clock starts: the homeserver has its events at hand too.
    let first = cli.warmup;
    let bodies: Vec<(String, Vec<u8>)> =
        (first..first + cli.transactions).map(|i| (workload.txn_id(i), workload.transaction(i))).collect();
    let baseline = match &counter {
        Some(c) => Some(c.read().await.context("reading the processed counter")?),
        None => None,
    };

    let replay_from = bodies.len().saturating_sub(cli.replays as usize);
    let replay_bodies: Vec<(String, Vec<u8>)> = bodies[replay_from..].to_vec();
    let mut latencies = Vec::with_capacity(bodies.len());
    let started = Instant::now();
    for (txn_id, body) in bodies {
        let t = Instant::now();
        pusher.push(&txn_id, body).await?;
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();

    let all_processed_s = match (&counter, baseline) {
        (Some(c), Some(base)) => {
            let want = base + cli.transactions * cli.events;
            c.wait_for(want, poll, Instant::now() + processed_timeout)
                .await
                .context("waiting for the run to be processed")?;
            Some(started.elapsed().as_secs_f64())
        }
        _ => None,
    };

    let mut replayed = Vec::with_capacity(replay_bodies.len());
    for (txn_id, body) in replay_bodies {
        let t = Instant::now();
        pusher.push(&txn_id, body).await.context("replay")?;
        replayed.push(t.elapsed());
    }
    replayed.sort_unstable();

    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let secs = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let total: Duration = latencies.iter().sum();
    let report = Report {
        label: cli.label.clone(),
        target: cli.target.clone(),
        transactions: cli.transactions,
        events_per_transaction: cli.events,
        warmup_transactions: cli.warmup,
        run_id,
        elapsed_s: elapsed.as_secs_f64(),
        transactions_per_s: cli.transactions as f64 / secs,
        events_per_s: (cli.transactions * cli.events) as f64 / secs,
        ack_p50_ms: ms(percentile(&latencies, 50.0)),
        ack_p99_ms: ms(percentile(&latencies, 99.0)),
        ack_max_ms: ms(latencies.last().copied().unwrap_or_default()),
        ack_mean_ms: ms(total) / latencies.len().max(1) as f64,
        all_processed_s,
        rss_before_kib,
        rss_after_kib: cli.pid.and_then(|p| proc_status_kib(p, "VmRSS")),
        rss_peak_kib: cli.pid.and_then(|p| proc_status_kib(p, "VmHWM")),
        replays: replayed.len() as u64,
        replay_ack_p50_ms: (!replayed.is_empty()).then(|| ms(percentile(&replayed, 50.0))),
        replay_ack_p99_ms: (!replayed.is_empty()).then(|| ms(percentile(&replayed, 99.0))),
    };
    if cli.json {
        println!("{}", serde_json::to_string(&report).context("encoding the report")?);
    } else {
        print!("{}", table_row(&report));
    }
    Ok(())
}

/// The generated workload: realistic `m.room.message` events, unique per run.
struct Workload {
    run_id: u64,
    events: usize,
    rooms: u64,
}

impl Workload {
    /// Numeric like Synapse's, unique per run.
    fn txn_id(&self, index: u64) -> String {
        format!("{}{index:06}", self.run_id)
    }

    /// The JSON body of transaction `index`.
    fn transaction(&self, index: u64) -> Vec<u8> {
        let now_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
        let events: Vec<serde_json::Value> = (0..self.events)
            .map(|j| {
                let seq = index * self.events as u64 + j as u64;
                let room = seq % self.rooms;
                let mut body = format!(
                    "Message {seq} of bench run {}: hello, I would like to talk to somebody about my situation",
                    self.run_id
                );
                // About 100 characters, as a typical chat message.
                while body.len() < 100 {
                    body.push('.');
                }
                body.truncate(100);
                json!({
                    "type": "m.room.message",
                    "event_id": format!("$bench-{}-{index}-{j}", self.run_id),
                    "room_id": format!("!room{room}:localhost"),
                    "sender": "@c_bench:localhost",
                    "origin_server_ts": now_ms,
                    "content": { "msgtype": "m.text", "body": body },
                    "unsigned": { "age": 12 },
                })
            })
            .collect();
        // Serialising a json! value cannot fail.
        serde_json::to_vec(&json!({ "events": events })).unwrap_or_default()
    }
}

/// Pushes one transaction and waits for its 200.
struct Pusher {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Pusher {
    async fn push(&self, txn_id: &str, body: Vec<u8>) -> Result<()> {
        let url = format!("{}/_matrix/app/v1/transactions/{txn_id}", self.base);
        let resp = self
            .client
            .put(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("PUT transaction {txn_id} to {}", self.base))?;
        let status = resp.status();
        let text =
            resp.text().await.with_context(|| format!("reading the answer to transaction {txn_id}"))?;
        if status != reqwest::StatusCode::OK {
            bail!("transaction {txn_id} was answered {status}: {}", snippet(&text));
        }
        Ok(())
    }
}

/// The target's processed-events counter.
struct Counter {
    client: reqwest::Client,
    url: String,
    metric: Option<String>,
}

impl Counter {
    async fn read(&self) -> Result<u64> {
        let resp = self.client.get(&self.url).send().await.with_context(|| format!("GET {}", self.url))?;
        let status = resp.status();
        let text = resp.text().await.with_context(|| format!("reading {}", self.url))?;
        if !status.is_success() {
            bail!("GET {} was answered {status}: {}", self.url, snippet(&text));
        }
        match &self.metric {
            // A counter vector has no sample before its first increment: that is 0.
            Some(name) => Ok(prometheus_sum(&text, name).unwrap_or(0)),
            None => text
                .trim()
                .parse::<u64>()
                .with_context(|| format!("{} did not answer a number: {}", self.url, snippet(&text))),
        }
    }

    /// Polls until the counter reaches `want`, until `deadline`.
    async fn wait_for(&self, want: u64, every: Duration, deadline: Instant) -> Result<()> {
        loop {
            let n = self.read().await?;
            if n >= want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let hint = match &self.metric {
                    Some(name) => format!(" (is {name} the right metric at {}?)", self.url),
                    None => String::new(),
                };
                bail!("timed out: {n} events processed, waiting for {want}{hint}");
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// Sum of the samples of metric `name` in a Prometheus text exposition, `None` if it has
/// none. Samples are `name value` or `name{labels} value` (an optional timestamp may follow).
fn prometheus_sum(text: &str, name: &str) -> Option<u64> {
    let mut sum = 0.0;
    let mut seen = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else { continue };
        let rest = if rest.starts_with('{') {
            match rest.find('}') {
                Some(end) => &rest[end + 1..],
                None => continue,
            }
        } else if rest.starts_with(char::is_whitespace) {
            rest
        } else {
            // Another metric whose name starts with `name`.
            continue;
        };
        if let Some(v) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
            sum += v;
            seen = true;
        }
    }
    seen.then_some(sum.max(0.0).round() as u64)
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A field of `/proc/PID/status` in KiB (Linux only; `None` elsewhere or if the process is gone).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// At most 200 characters of an answer, for an error message.
fn snippet(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_owned(),
    }
}

/// One human-readable line (with a header line).
fn table_row(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>4} {:>6} {:>10} {:>10} {:>9} {:>9} {:>9} {:>13} {:>9}",
        "implementation",
        "M",
        "N",
        "txn/s",
        "events/s",
        "ack p50",
        "ack p99",
        "ack max",
        "all processed",
        "RSS"
    );
    let processed = r.all_processed_s.map_or("-".to_owned(), |s| format!("{s:.2} s"));
    let rss = r.rss_after_kib.map_or("-".to_owned(), |k| format!("{:.1} MB", k as f64 / 1024.0));
    let _ = writeln!(
        out,
        "{:<20} {:>4} {:>6} {:>10.0} {:>10.0} {:>6.2} ms {:>6.2} ms {:>6.2} ms {:>13} {:>9}",
        r.label,
        r.events_per_transaction,
        r.transactions,
        r.transactions_per_s,
        r.events_per_s,
        r.ack_p50_ms,
        r.ack_p99_ms,
        r.ack_max_ms,
        processed,
        rss
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_sum_adds_labelled_samples_of_one_metric_only() {
        let text = "# HELP assisto_events_processed_total Events finished\n\
                    # TYPE assisto_events_processed_total counter\n\
                    assisto_events_processed_total{outcome=\"dead_letter\"} 2\n\
                    assisto_events_processed_total{outcome=\"processed\"} 40\n\
                    assisto_events_processed_total_other 99\n\
                    assisto_events_processed 7\n";
        assert_eq!(prometheus_sum(text, "assisto_events_processed_total"), Some(42));
        assert_eq!(prometheus_sum(text, "assisto_events_processed"), Some(7));
        assert_eq!(prometheus_sum(text, "missing_metric"), None);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&d, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&d, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert_eq!(percentile(&d[..1], 99.0), Duration::from_millis(1));
    }

    #[test]
    fn workload_ids_are_unique_numeric_and_valid() {
        let w = Workload { run_id: 1_763_000_000_000, events: 3, rooms: 10 };
        assert_eq!(w.txn_id(7), "1763000000000000007");
        assert!(w.txn_id(MAX_TRANSACTIONS).parse::<u64>().is_ok());
        let body: serde_json::Value = serde_json::from_slice(&w.transaction(4)).expect("valid JSON");
        let events = body["events"].as_array().expect("events");
        assert_eq!(events.len(), 3);
        assert_eq!(events[0]["event_id"], "$bench-1763000000000-4-0");
        assert_eq!(events[2]["room_id"], "!room4:localhost");
        assert_eq!(events[0]["content"]["body"].as_str().map(str::len), Some(100));
    }
}
