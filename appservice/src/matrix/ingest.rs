//! The durable record of the homeserver's transactions, out of the route: replay detection
//! (recent transaction IDs in memory, their fingerprints in the inbox) and the write of a
//! transaction's events — one synced statement when every event is well-formed, else one
//! database transaction with the dead letters.

use crate::matrix::inbox::{self, NewEvent, Recorded, Rejected};
use crate::matrix::processor::Processor;
use crate::store::Db;

/// How many recent transaction IDs are remembered in memory for replay detection.
const RECENT_TXNS: usize = 4096;

/// What the ingest keeps between transactions.
pub struct IngestState {
    /// The last numeric transaction ID, to warn when IDs go backwards.
    pub(crate) last_txn: Option<u64>,
    /// Recent transaction IDs and their fingerprints.
    recent: std::collections::HashMap<String, String>,
    order: std::collections::VecDeque<String>,
}

impl IngestState {
    /// Starts with the last transaction ID recorded before.
    pub fn new(last_txn: Option<u64>) -> Self {
        Self { last_txn, recent: Default::default(), order: Default::default() }
    }

    pub(crate) fn remember(&mut self, txn_id: &str, fingerprint: &str) {
        if self.recent.insert(txn_id.to_owned(), fingerprint.to_owned()).is_none() {
            self.order.push_back(txn_id.to_owned());
            if self.order.len() > RECENT_TXNS {
                if let Some(old) = self.order.pop_front() {
                    self.recent.remove(&old);
                }
            }
        }
    }
}

/// Records a transaction: the fast path (one statement, synced) when every event is
/// well-formed, else the full path (one database transaction with the dead letters).
pub async fn record(
    db: &Db,
    processor: &Processor,
    ingest: &mut IngestState,
    txn_id: &str,
    fingerprint: &str,
    events: &[NewEvent],
    rejected: &[Rejected],
) -> sqlx::Result<Recorded> {
    let known = ingest.recent.get(txn_id).map(|f| f == fingerprint);
    if known == Some(true) {
        return Ok(Recorded::Replay);
    }
    if !rejected.is_empty() {
        return inbox::record_transaction(db, txn_id, fingerprint, events, rejected).await;
    }
    let inserted = inbox::insert_events(db, txn_id, events).await?;
    if inserted.is_empty() && !events.is_empty() && known.is_none() {
        // Every event was known: a transaction sent again after our restart?
        if inbox::txn_fingerprint(db, txn_id).await?.as_deref() == Some(fingerprint) {
            return Ok(Recorded::Replay);
        }
    }
    processor.remember_txn(inbox::TxnRecord {
        txn_id: txn_id.to_owned(),
        fingerprint: fingerprint.to_owned(),
        event_count: events.len() as i64,
        received_at: crate::store::now_ms(),
    });
    let duplicates = (events.len() - inserted.len()) as u64;
    Ok(Recorded::New { inserted, duplicates, rejected: 0, txn_id_reused: known == Some(false) })
}
