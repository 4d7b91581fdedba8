//! # `PUT /_matrix/app/v1/transactions/{txnId}`
//!
//! The homeserver pushes events (spec: `application-service/transactions.yaml`).
//!
//! The answer 200 means: every event is durably recorded in the inbox (or, if malformed,
//! as a dead letter). Processing happens afterwards, per room and in order. A repeated
//! transaction is a no-op; events are also de-duplicated by `event_id`, so a homeserver
//! whose transaction counter starts over loses nothing.

use std::{sync::Arc, time::Instant};

use axum::{
    body::{Body, Bytes},
    extract::State,
    Json,
};
use bytes::BytesMut;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, value::RawValue, Value};
use sha2::{Digest, Sha256};

use crate::app::services::Services;
use crate::matrix::event;
use crate::matrix::event::RoomEvent;
use crate::matrix::inbox;
use crate::matrix::inbox::NewEvent;
use crate::matrix::inbox::Recorded;
use crate::matrix::inbox::Rejected;
use crate::matrix::ingest;
use crate::web::error::MatrixError;
use crate::web::path::Path;

/// The transaction body; events are kept as the raw JSON received.
#[derive(Deserialize)]
struct TxnBody<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    ephemeral: Option<Vec<&'a RawValue>>,
    /// MSC2409's unstable key, sent by homeservers before Matrix 1.13.
    #[serde(borrow, default, rename = "de.sorunome.msc2409.ephemeral")]
    ephemeral_unstable: Option<Vec<&'a RawValue>>,
}

/// Records the transaction durably, then acknowledges it.
pub(super) async fn push_events_route(
    State(state): State<Arc<Services>>,
    Path(txn_id): Path<String>,
    body: Body,
) -> Result<Json<Value>, MatrixError> {
    let started = Instant::now();
    // A NUL (`%00`) in the path is possible; PostgreSQL cannot store it.
    let txn_id = crate::store::storable(&txn_id).into_owned();
    let limit = state.config.appservice.max_body_bytes;
    let bytes = match read_body(body, limit).await? {
        ReadBody::Whole(bytes) => bytes,
        ReadBody::TooLarge(size) => return oversized(&state, &txn_id, size, limit, started).await,
    };
    let txn: TxnBody<'_> = serde_json::from_slice(&bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => MatrixError::bad_json(format!("Invalid transaction: {e}")),
            _ => MatrixError::not_json("Content not JSON"),
        }
    })?;
    // serde reads a struct from an array too; a transaction is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(MatrixError::bad_json("A transaction is a JSON object"));
    }

    let mut events = Vec::with_capacity(txn.events.len());
    let mut checked_events = std::collections::HashMap::with_capacity(txn.events.len());
    let mut rejected = Vec::new();
    let mut fingerprint = Sha256::new();
    for raw in &txn.events {
        match event::parse_json(raw.get()).and_then(RoomEvent::from_value) {
            Ok(ev) => {
                fingerprint.update(ev.event_id.as_bytes());
                fingerprint.update(b"\n");
                let body = raw.get().to_owned();
                events.push(NewEvent { event_id: ev.event_id.clone(), room_id: ev.room_id.clone(), body });
                checked_events.insert(ev.event_id.clone(), (Arc::new(ev), raw.get().len()));
            }
            Err(reason) => {
                fingerprint.update(raw.get().as_bytes());
                fingerprint.update(b"\n");
                // Refused: parsed once more (rarely) for the IDs it may have.
                let parsed = event::parse_json(raw.get());
                let v = parsed.as_ref().ok();
                let id = |k: &str| {
                    let id = v.and_then(|v| v.get(k)).and_then(Value::as_str)?;
                    Some(crate::store::storable(id).into_owned())
                };
                let (event_id, room_id) = (id("event_id"), id("room_id"));
                rejected.push(Rejected { event_id, room_id, reason, body: Some(raw.get().to_owned()) });
            }
        }
    }
    let fingerprint = hex::encode(fingerprint.finalize());

    let mut ingest = state.as_api.ingest.lock().await;
    let recorded =
        ingest::record(&state.db, &state.processor, &mut ingest, &txn_id, &fingerprint, &events, &rejected)
            .await?;
    let went_backwards_from = match (txn_id.parse::<u64>().ok(), ingest.last_txn) {
        (Some(n), Some(prev)) if n < prev && recorded != Recorded::Replay => Some(prev),
        _ => None,
    };
    if recorded != Recorded::Replay {
        if let Ok(n) = txn_id.parse::<u64>() {
            ingest.last_txn = Some(n);
        }
        ingest.remember(&txn_id, &fingerprint);
    }
    if let Recorded::New { inserted, .. } = &recorded {
        // Hand the events to the processor in memory while still holding the ingest lock,
        // so they arrive in inbox order.
        let received_at = crate::store::now_ms();
        let pending = inserted
            .iter()
            .filter_map(|(seq, id)| {
                let (ev, size) = checked_events.remove(id)?;
                Some(inbox::Pending {
                    seq: *seq,
                    event_id: id.clone(),
                    room_id: ev.room_id.clone(),
                    body: String::new(),
                    size,
                    received_at,
                    event: Some(ev),
                })
            })
            .collect::<Vec<_>>();
        state.processor.submit(pending);
    }
    drop(ingest);

    let m = &state.metrics;
    match recorded {
        Recorded::Replay => {
            m.transactions.with_label_values(&["replay"]).inc();
            tracing::debug!(%txn_id, "transaction already recorded");
        }
        Recorded::New { inserted, duplicates, rejected: n_rejected, txn_id_reused } => {
            let inserted = inserted.len() as u64;
            m.transactions.with_label_values(&["recorded"]).inc();
            m.events_received.with_label_values(&["timeline"]).inc_by(inserted);
            m.events_received.with_label_values(&["duplicate"]).inc_by(duplicates);
            m.dead_letters.with_label_values(&["ingest"]).inc_by(n_rejected);
            m.inbox_depth.add(inserted as i64);
            if txn_id_reused {
                tracing::warn!(%txn_id, "transaction ID reused with other events: the homeserver's transaction counter started over; events are de-duplicated by event ID");
            }
            if let Some(prev) = went_backwards_from {
                tracing::warn!(%txn_id, previous = prev, "transaction IDs went backwards: was the homeserver restored or the registration regenerated?");
            }
            for r in &rejected {
                tracing::warn!(%txn_id, event_id = ?r.event_id, reason = %r.reason, "malformed event dead-lettered");
            }
            let ephemeral = txn.ephemeral.or(txn.ephemeral_unstable).unwrap_or_default();
            m.events_received.with_label_values(&["ephemeral"]).inc_by(ephemeral.len() as u64);
            for raw in ephemeral {
                if let Ok(v) = event::parse_json(raw.get()) {
                    state.processor.ephemeral(v);
                }
            }
        }
    }
    m.ack_latency.observe(started.elapsed().as_secs_f64());
    Ok(Json(json!({})))
}

/// A request body read up to the limit.
enum ReadBody {
    Whole(Bytes),
    /// Over the limit: read to the end and dropped; how many bytes it had.
    TooLarge(u64),
}

/// Reads the body; past `limit` it keeps reading (so the homeserver gets an answer) but
/// keeps nothing.
async fn read_body(body: Body, limit: usize) -> Result<ReadBody, MatrixError> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| MatrixError::not_json("The request body could not be read"))?;
        size += chunk.len() as u64;
        if size <= limit as u64 {
            buf.extend_from_slice(&chunk);
        } else if !buf.is_empty() {
            buf = BytesMut::new();
        }
    }
    Ok(if size > limit as u64 { ReadBody::TooLarge(size) } else { ReadBody::Whole(buf.freeze()) })
}

/// A transaction over `appservice.max_body_bytes`: no homeserver that keeps the spec's and
/// its own limits sends one (the default is derived from Synapse's), but refusing it would
/// block the stream, since the homeserver retries it forever. It is recorded as one dead
/// letter (its size; nothing of its content) and acknowledged.
async fn oversized(
    state: &Services,
    txn_id: &str,
    size: u64,
    limit: usize,
    started: Instant,
) -> Result<Json<Value>, MatrixError> {
    let reason = format!(
        "transaction body of {size} bytes exceeds appservice.max_body_bytes ({limit}); its events were not recorded"
    );
    let fingerprint = hex::encode(Sha256::digest(format!("oversized:{size}").as_bytes()));
    let rejected = [Rejected { event_id: None, room_id: None, reason, body: None }];
    let mut ingest = state.as_api.ingest.lock().await;
    let recorded = inbox::record_transaction(&state.db, txn_id, &fingerprint, &[], &rejected).await?;
    if recorded != Recorded::Replay {
        ingest.remember(txn_id, &fingerprint);
        state.metrics.transactions.with_label_values(&["oversized"]).inc();
        state.metrics.dead_letters.with_label_values(&["ingest"]).inc();
        tracing::error!(%txn_id, size, limit, "transaction over the body limit dead-lettered whole; raise appservice.max_body_bytes");
    }
    drop(ingest);
    state.metrics.ack_latency.observe(started.elapsed().as_secs_f64());
    Ok(Json(json!({})))
}
