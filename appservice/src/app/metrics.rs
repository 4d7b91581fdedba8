//! Prometheus metrics, served at `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Every metric of the service, registered in its own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Transactions pushed by the homeserver, by result (`recorded`, `replay`, `refused`).
    pub transactions: IntCounterVec,
    /// Events received, by kind (`timeline`, `ephemeral`, `duplicate`).
    pub events_received: IntCounterVec,
    /// Events finished, by outcome (`processed`, `dead_letter`).
    pub events_processed: IntCounterVec,
    /// Dead letters, by stage (`ingest`, `processing`).
    pub dead_letters: IntCounterVec,
    /// Seconds from receiving an event to finishing its processing.
    pub processing_latency: Histogram,
    /// Seconds from receiving a transaction to acknowledging it.
    pub ack_latency: Histogram,
    /// Requests to the homeserver that were retried, by reason.
    pub homeserver_retries: IntCounterVec,
    /// Events recorded but not yet processed.
    pub inbox_depth: IntGauge,
    /// Events read into memory for processing and not yet finished (bounded by
    /// `processing.window_events`).
    pub in_memory: IntGauge,
    /// Attempts to process an event that failed and will be retried.
    pub processing_retries: IntCounter,
    /// Repairs of what was forced past the rules module, by outcome (`repaired`, `failed`,
    /// `impossible`).
    pub repairs: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("assisto".into()), None).unwrap_or_else(|_| Registry::new());
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label])
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            registry.register(Box::new(c.clone())).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            c
        };
        let transactions =
            counter_vec("transactions_total", "Transactions pushed by the homeserver, by result", "result");
        let events_received = counter_vec("events_received_total", "Events received, by kind", "kind");
        let events_processed =
            counter_vec("events_processed_total", "Events finished, by outcome", "outcome");
        let dead_letters = counter_vec("dead_letters_total", "Dead letters, by stage", "stage");
        let repairs = counter_vec(
            "rule_repairs_total",
            "Repairs of what was forced past the rules module, by outcome",
            "outcome",
        );
        let homeserver_retries = counter_vec(
            "homeserver_retries_total",
            "Requests to the homeserver that were retried, by reason",
            "reason",
        );
        let buckets =
            vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        let histogram = |name: &str, help: &str| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.clone()))
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            registry.register(Box::new(h.clone())).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            h
        };
        let processing_latency = histogram(
            "processing_latency_seconds",
            "Seconds from receiving an event to finishing its processing",
        );
        let ack_latency =
            histogram("transaction_ack_seconds", "Seconds from receiving a transaction to acknowledging it");
        let inbox_depth = IntGauge::new("inbox_depth", "Events recorded but not yet processed")
            .unwrap_or_else(|e| panic!("metric inbox_depth: {e}"));
        registry.register(Box::new(inbox_depth.clone())).unwrap_or_else(|e| panic!("{e}"));
        let in_memory = IntGauge::new(
            "processing_in_memory",
            "Events read into memory for processing and not yet finished",
        )
        .unwrap_or_else(|e| panic!("metric processing_in_memory: {e}"));
        registry.register(Box::new(in_memory.clone())).unwrap_or_else(|e| panic!("{e}"));
        let processing_retries = IntCounter::new(
            "processing_retries_total",
            "Failed attempts to process an event that will be retried",
        )
        .unwrap_or_else(|e| panic!("metric processing_retries: {e}"));
        registry.register(Box::new(processing_retries.clone())).unwrap_or_else(|e| panic!("{e}"));
        Self {
            registry,
            transactions,
            events_received,
            events_processed,
            dead_letters,
            processing_latency,
            ack_latency,
            homeserver_retries,
            inbox_depth,
            in_memory,
            processing_retries,
            repairs,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
