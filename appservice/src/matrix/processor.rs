//! Processing the inbox: per room, in order, at least once.
//!
//! The dispatcher reads unprocessed events from the inbox in sequence order and appends
//! each to its room's queue; a room's queue is worked by one task at a time, so events of
//! a room are handled strictly in the order received, while different rooms proceed in
//! parallel (bounded by `processing.concurrency`). Finished events are marked in batches.
//!
//! Memory is bounded however long the backlog: at most `processing.window_events` events
//! (and about `processing.window_bytes` of them) are queued for processing at a time, and
//! as many more may wait in the hand-over from the ingest; the rest stays in the inbox and
//! is read as events finish.
//! After a crash, whatever was not marked is processed again: handlers are idempotent
//! (sends use transaction IDs derived from the causing event).

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::app::config::ProcessingConfig;
use crate::app::metrics::Metrics;
use crate::matrix::event::RoomEvent;
use crate::matrix::inbox;
use crate::matrix::inbox::Done;
use crate::matrix::inbox::Outcome;
use crate::matrix::inbox::Pending;
use crate::store::now_ms;
use crate::store::Db;

/// Why handling an event failed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth trying again (the homeserver was unreachable, the database busy).
    #[error("transient: {0}")]
    Transient(String),
    /// Will never work (malformed content, a refusal): dead-letter it.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// What the processor hands events to.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Handles one timeline event. Must be idempotent.
    async fn handle_event(&self, event: &RoomEvent) -> Result<(), HandleError>;
    /// Handles one ephemeral event (typing, receipt, presence). Best effort.
    async fn handle_ephemeral(&self, _event: &Value) {}
}

/// Batches the ingest may hand over before the dispatcher must read the inbox instead.
const HANDOFF_CAPACITY: usize = 1024;
/// How often an idle dispatcher reads the inbox anyway (one indexed query).
const INBOX_RECHECK: Duration = Duration::from_secs(1);
/// Events per dispatcher read (fewer when the window has less room).
const DISPATCH_BATCH: usize = 500;
/// Finished events per database write.
const DONE_BATCH: usize = 1000;
/// How long finished events are gathered before they are written.
const DONE_GATHER: Duration = Duration::from_millis(5);

/// The running processor.
#[derive(Clone)]
pub struct Processor {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    handler: Arc<dyn EventHandler>,
    metrics: Metrics,
    max_attempts: u32,
    wake: Notify,
    queues: Mutex<HashMap<String, VecDeque<Pending>>>,
    permits: Semaphore,
    done_tx: mpsc::UnboundedSender<Finished>,
    stopping: AtomicBool,
    /// Events recorded since the dispatcher last read the inbox could not be handed over
    /// in memory: it must read the inbox before taking more from `handoff`.
    backlog: AtomicBool,
    handoff_tx: mpsc::Sender<Vec<Pending>>,
    /// Events handed over and not yet taken by the dispatcher.
    handoff_events: AtomicUsize,
    window: Window,
    active_workers: AtomicUsize,
    idle: Notify,
    ephemeral_tx: mpsc::Sender<Value>,
}

/// What is queued for processing: events the dispatcher enqueued and that have not
/// finished. The dispatcher takes more (from the inbox or the hand-over) only while there
/// is room; a single batch may overshoot by its own size.
struct Window {
    events: AtomicUsize,
    bytes: AtomicUsize,
    max_events: usize,
    max_bytes: usize,
    freed: Notify,
}

impl Window {
    /// How many more events may be taken now.
    fn room(&self) -> usize {
        if self.bytes.load(Ordering::SeqCst) >= self.max_bytes {
            return 0;
        }
        self.max_events.saturating_sub(self.events.load(Ordering::SeqCst))
    }

    fn take(&self, item: &Pending, metrics: &Metrics) {
        self.events.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(item.size, Ordering::SeqCst);
        metrics.in_memory.inc();
    }

    fn release(&self, item: &Pending, metrics: &Metrics) {
        self.events.fetch_sub(1, Ordering::SeqCst);
        self.bytes.fetch_sub(item.size, Ordering::SeqCst);
        metrics.in_memory.dec();
        self.freed.notify_one();
    }

    /// Waits until there is room (or a second passed, to look at `stopping` again).
    async fn wait_for_room(&self) {
        let freed = self.freed.notified();
        if self.room() > 0 {
            return;
        }
        let _ = tokio::time::timeout(INBOX_RECHECK, freed).await;
    }
}

/// Handles to the processor's background tasks.
pub struct ProcessorTasks {
    dispatcher: Option<tokio::task::JoinHandle<()>>,
    flusher: tokio::task::JoinHandle<()>,
    ephemeral: tokio::task::JoinHandle<()>,
}

impl Processor {
    /// Starts the processor. With `config.paused`, events are only recorded, not processed.
    pub async fn start(
        db: Db,
        handler: Arc<dyn EventHandler>,
        metrics: Metrics,
        config: &ProcessingConfig,
    ) -> sqlx::Result<(Self, ProcessorTasks)> {
        let paused = config.paused;
        let depth = inbox::unprocessed_count(&db).await?;
        metrics.inbox_depth.set(depth);
        let next_processed_seq = inbox::max_processed_seq(&db).await? + 1;
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (ephemeral_tx, ephemeral_rx) = mpsc::channel(1024);
        let (handoff_tx, handoff_rx) = mpsc::channel(HANDOFF_CAPACITY);
        let inner = Arc::new(Inner {
            db,
            handler,
            metrics,
            max_attempts: config.max_attempts,
            wake: Notify::new(),
            queues: Mutex::new(HashMap::new()),
            permits: Semaphore::new(config.concurrency.max(1)),
            done_tx,
            stopping: AtomicBool::new(false),
            backlog: AtomicBool::new(false),
            handoff_tx,
            handoff_events: AtomicUsize::new(0),
            window: Window {
                events: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
                max_events: config.window_events.max(1),
                max_bytes: config.window_bytes.max(1),
                freed: Notify::new(),
            },
            active_workers: AtomicUsize::new(0),
            idle: Notify::new(),
            ephemeral_tx,
        });
        if depth > 0 && !paused {
            tracing::info!(depth, "resuming unprocessed events from the inbox");
        }
        let dispatcher = (!paused).then(|| tokio::spawn(dispatch_loop(inner.clone(), handoff_rx)));
        let flusher = tokio::spawn(flush_loop(inner.clone(), done_rx, next_processed_seq));
        let ephemeral = tokio::spawn(ephemeral_loop(inner.clone(), ephemeral_rx));
        Ok((Self { inner }, ProcessorTasks { dispatcher, flusher, ephemeral }))
    }

    /// Hands over events just recorded, in inbox order. Call it for each recorded
    /// transaction, in the order they were committed. If the processor is far behind (the
    /// hand-over holds a window's worth already), it reads them from the inbox instead.
    pub fn submit(&self, events: Vec<Pending>) {
        if events.is_empty() {
            return;
        }
        let inner = &self.inner;
        let n = events.len();
        // Once one hand-over failed, none may overtake it: the dispatcher reads the inbox.
        let full = inner.handoff_events.load(Ordering::SeqCst) + n > inner.window.max_events;
        if inner.backlog.load(Ordering::SeqCst) || full {
            inner.backlog.store(true, Ordering::SeqCst);
            inner.wake.notify_one();
            return;
        }
        inner.handoff_events.fetch_add(n, Ordering::SeqCst);
        if inner.handoff_tx.try_send(events).is_err() {
            inner.handoff_events.fetch_sub(n, Ordering::SeqCst);
            inner.backlog.store(true, Ordering::SeqCst);
            inner.wake.notify_one();
        }
    }

    /// Remembers a recorded transaction's ID with the next batch of processed marks.
    pub fn remember_txn(&self, record: inbox::TxnRecord) {
        let _ = self.inner.done_tx.send(Finished::Txn(record));
    }

    /// Passes an ephemeral event on; dropped if the handler is far behind.
    pub fn ephemeral(&self, event: Value) {
        if self.inner.ephemeral_tx.try_send(event).is_err() {
            tracing::debug!("ephemeral queue full, dropping one ephemeral event");
        }
    }

    /// Stops taking new events, lets running handlers finish (up to `grace`) and writes
    /// what finished.
    pub async fn shutdown(&self, tasks: ProcessorTasks, grace: Duration) {
        let inner = &self.inner;
        inner.stopping.store(true, Ordering::SeqCst);
        inner.wake.notify_one();
        if let Some(d) = tasks.dispatcher {
            d.abort();
        }
        let wait_idle = async {
            while inner.active_workers.load(Ordering::SeqCst) > 0 {
                let idle = inner.idle.notified();
                if inner.active_workers.load(Ordering::SeqCst) == 0 {
                    break;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(grace, wait_idle).await;
        tasks.ephemeral.abort();
        // Messages are handled in order, so every event finished before this point is
        // written before the flusher answers.
        let (tx, rx) = tokio::sync::oneshot::channel();
        if inner.done_tx.send(Finished::Stop(tx)).is_ok() {
            let _ = tokio::time::timeout(grace, rx).await;
        }
        tasks.flusher.abort();
    }
}

/// A message to the flusher.
enum Finished {
    /// An event is finished; the `i64` is when it was received.
    Event(Done, i64),
    /// A transaction ID to remember.
    Txn(inbox::TxnRecord),
    /// Write what is pending and stop.
    Stop(tokio::sync::oneshot::Sender<()>),
}

async fn dispatch_loop(inner: Arc<Inner>, mut handoff: mpsc::Receiver<Vec<Pending>>) {
    // Everything up to `cursor` has been enqueued. Events arrive in inbox order, from the
    // inbox (at start and after a failed hand-over) or in memory; whatever is at or below
    // the cursor was enqueued already and is skipped.
    let mut cursor = 0i64;
    let mut read_inbox = true;
    loop {
        if inner.stopping.load(Ordering::SeqCst) {
            return;
        }
        if read_inbox || inner.backlog.swap(false, Ordering::SeqCst) {
            // Until the inbox is read to its end, nothing may come from the hand-over
            // (it would overtake what the inbox still holds): wait for room instead.
            read_inbox = true;
            let room = inner.window.room().min(DISPATCH_BATCH);
            if room == 0 {
                inner.window.wait_for_room().await;
                continue;
            }
            match inbox::unprocessed_after(&inner.db, cursor, room as i64).await {
                Ok(rows) if !rows.is_empty() => {
                    for row in rows {
                        cursor = row.seq;
                        enqueue(&inner, row);
                    }
                    read_inbox = true; // there may be more
                    continue;
                }
                Ok(_) => read_inbox = false,
                Err(e) => {
                    tracing::error!(error = %e, "reading the inbox failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let woken = inner.wake.notified();
        let has_room = inner.window.room() > 0;
        tokio::select! {
            batch = handoff.recv(), if has_room => match batch {
                Some(batch) => {
                    inner.handoff_events.fetch_sub(batch.len(), Ordering::SeqCst);
                    for p in batch {
                        if p.seq > cursor {
                            cursor = p.seq;
                            enqueue(&inner, p);
                        }
                    }
                }
                None => return,
            },
            _ = inner.window.freed.notified(), if !has_room => {}
            _ = woken => read_inbox = true,
            // A safety net: when idle, look at the inbox every second, so that nothing
            // recorded waits long even if a hand-over went astray.
            _ = tokio::time::sleep(INBOX_RECHECK) => read_inbox = true,
        }
    }
}

fn enqueue(inner: &Arc<Inner>, item: Pending) {
    inner.window.take(&item, &inner.metrics);
    let room = item.room_id.clone();
    let start_worker = {
        let mut queues = inner.queues.lock().unwrap_or_else(|p| p.into_inner());
        match queues.get_mut(&room) {
            Some(q) => {
                q.push_back(item);
                false
            }
            None => {
                queues.insert(room.clone(), VecDeque::from([item]));
                true
            }
        }
    };
    if start_worker {
        inner.active_workers.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(room_worker(inner.clone(), room));
    }
}

/// Works one room's queue until it is empty; then the room has no worker until the next
/// event arrives. Taking the last item and removing the queue happen under one lock, so an
/// event is never left in a queue without a worker.
async fn room_worker(inner: Arc<Inner>, room: String) {
    loop {
        let next = {
            let mut queues = inner.queues.lock().unwrap_or_else(|p| p.into_inner());
            let item = queues.get_mut(&room).and_then(VecDeque::pop_front);
            if item.is_none() || inner.stopping.load(Ordering::SeqCst) {
                queues.remove(&room);
            }
            item
        };
        let Some(item) = next else { break };
        if inner.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(_permit) = inner.permits.acquire().await else { break };
        let Some(outcome) = process_one(&inner, &item).await else { break };
        let _ = inner.done_tx.send(Finished::Event(Done { seq: item.seq, outcome }, item.received_at));
        inner.window.release(&item, &inner.metrics);
    }
    if inner.active_workers.fetch_sub(1, Ordering::SeqCst) == 1 {
        inner.idle.notify_waiters();
    }
}

/// Handles one event with retries. `None` means the processor is stopping and the event
/// stays unprocessed (it is processed after the restart).
async fn process_one(inner: &Inner, item: &Pending) -> Option<Outcome> {
    let event = match &item.event {
        Some(ev) => ev.clone(),
        None => match crate::matrix::event::parse_json(&item.body)
            .map_err(|e| format!("stored event: {e}"))
            .and_then(RoomEvent::from_value)
        {
            Ok(ev) => Arc::new(ev),
            Err(reason) => return Some(Outcome::DeadLetter(reason)),
        },
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match inner.handler.handle_event(&event).await {
            Ok(()) => return Some(Outcome::Processed),
            Err(HandleError::Permanent(reason)) => return Some(Outcome::DeadLetter(reason)),
            Err(HandleError::Transient(reason)) => {
                if attempt >= inner.max_attempts {
                    return Some(Outcome::DeadLetter(format!("gave up after {attempt} attempts: {reason}")));
                }
                inner.metrics.processing_retries.inc();
                tracing::warn!(event_id = %event.event_id, attempt, %reason, "handling failed, retrying");
                let wait = Duration::from_millis(250u64 << attempt.min(7));
                tokio::time::sleep(wait).await;
                if inner.stopping.load(Ordering::SeqCst) {
                    return None;
                }
            }
        }
    }
}

async fn flush_loop(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<Finished>,
    mut next_processed_seq: i64,
) {
    let mut batch: Vec<(Done, i64)> = Vec::new();
    let mut txns: Vec<inbox::TxnRecord> = Vec::new();
    let mut stop = None;
    loop {
        if batch.is_empty() && txns.is_empty() && stop.is_none() {
            match rx.recv().await {
                Some(m) => take(m, &mut batch, &mut txns, &mut stop),
                None => return,
            }
        }
        // Gather for a moment: one write for many finished events keeps the database
        // free for recording transactions, which the homeserver waits for.
        let gather_until = tokio::time::Instant::now() + DONE_GATHER;
        while batch.len() < DONE_BATCH && stop.is_none() {
            match rx.try_recv() {
                Ok(m) => take(m, &mut batch, &mut txns, &mut stop),
                Err(_) => match tokio::time::timeout_at(gather_until, rx.recv()).await {
                    Ok(Some(m)) => take(m, &mut batch, &mut txns, &mut stop),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        if !batch.is_empty() || !txns.is_empty() {
            let dones: Vec<Done> = batch.iter().map(|(d, _)| d.clone()).collect();
            if let Err(e) = inbox::mark_done(&inner.db, &dones, next_processed_seq, &txns).await {
                // Keep the batch and try again: nothing finished may be forgotten.
                tracing::error!(error = %e, "recording processed events failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            next_processed_seq += dones.len() as i64;
            txns.clear();
            record_metrics(&inner.metrics, batch.drain(..));
        }
        if let Some(s) = stop.take() {
            let _ = s.send(());
            return;
        }
    }
}

fn take(
    m: Finished,
    batch: &mut Vec<(Done, i64)>,
    txns: &mut Vec<inbox::TxnRecord>,
    stop: &mut Option<tokio::sync::oneshot::Sender<()>>,
) {
    match m {
        Finished::Event(d, at) => batch.push((d, at)),
        Finished::Txn(t) => txns.push(t),
        Finished::Stop(s) => *stop = Some(s),
    }
}

fn record_metrics(metrics: &Metrics, finished: impl Iterator<Item = (Done, i64)>) {
    let now = now_ms();
    for (d, received_at) in finished {
        let label = match d.outcome {
            Outcome::Processed => "processed",
            Outcome::DeadLetter(ref reason) => {
                tracing::warn!(seq = d.seq, %reason, "event dead-lettered");
                metrics.dead_letters.with_label_values(&["processing"]).inc();
                "dead_letter"
            }
        };
        metrics.events_processed.with_label_values(&[label]).inc();
        metrics.processing_latency.observe((now - received_at).max(0) as f64 / 1000.0);
        metrics.inbox_depth.dec();
    }
}

async fn ephemeral_loop(inner: Arc<Inner>, mut rx: mpsc::Receiver<Value>) {
    while let Some(ev) = rx.recv().await {
        inner.handler.handle_ephemeral(&ev).await;
    }
}

/// A database error is worth a retry.
pub(crate) fn db_error(e: sqlx::Error) -> HandleError {
    HandleError::Transient(format!("database: {e}"))
}

/// A homeserver error: transient ones are retried, refusals are final.
pub(crate) fn hs_error(e: crate::matrix::homeserver::HsError) -> HandleError {
    if e.is_transient() {
        HandleError::Transient(e.to_string())
    } else {
        HandleError::Permanent(e.to_string())
    }
}
