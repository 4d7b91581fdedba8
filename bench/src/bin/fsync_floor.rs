//! `fsync-floor`: the latency floor of a durable acknowledgement on one disk.
//!
//! Appends `--bytes` to a fresh file in `--dir` and `fdatasync`s it, `--samples` times, and
//! prints the p50, p99 and max of one append-and-sync. No service that acknowledges only
//! after its record is on disk can answer faster than this at one transaction in flight;
//! `scripts/bench.sh` measures it in the same run as the services and prints each ack
//! latency as a ratio of it.

use std::{
    fs::OpenOptions,
    io::Write as _,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(name = "fsync-floor", version, about = "Measures append + fdatasync latency on a disk")]
struct Cli {
    /// Directory on the disk to measure (the file is removed afterwards).
    #[arg(long)]
    dir: PathBuf,
    /// Appends measured.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
    samples: u64,
    /// Bytes per append (one SQLite WAL frame of a 4 KiB page is 4,120 bytes).
    #[arg(long, default_value_t = 4120, value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    bytes: u64,
    /// Appends before measuring.
    #[arg(long, default_value_t = 50)]
    warmup: u64,
}

#[derive(Serialize)]
struct Floor {
    samples: u64,
    bytes: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(floor) => match serde_json::to_string(&floor) {
            Ok(s) => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("fsync-floor: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("fsync-floor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<Floor> {
    let path = cli.dir.join(format!("fsync-floor-{}.bin", std::process::id()));
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let block = vec![0x5au8; cli.bytes as usize];
    let mut times = Vec::with_capacity(cli.samples as usize);
    let result = (|| -> Result<()> {
        for i in 0..cli.warmup + cli.samples {
            let t = Instant::now();
            file.write_all(&block).context("appending")?;
            file.sync_data().context("fdatasync")?;
            if i >= cli.warmup {
                times.push(t.elapsed());
            }
        }
        Ok(())
    })();
    drop(file);
    let _ = std::fs::remove_file(&path);
    result?;
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| {
        let rank = ((p / 100.0) * times.len() as f64).ceil() as usize;
        times[rank.clamp(1, times.len()) - 1]
    };
    Ok(Floor {
        samples: cli.samples,
        bytes: cli.bytes,
        p50_ms: ms(pct(50.0)),
        p99_ms: ms(pct(99.0)),
        max_ms: ms(times.last().copied().unwrap_or_default()),
    })
}
