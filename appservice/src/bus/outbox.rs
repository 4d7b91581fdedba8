//! The live bus through the database (`live_changes`): another process (the admin CLI)
//! writes a change; the running service relays it to its in-process bus within
//! [`RELAY_EVERY`] and removes it after [`KEEP_MS`].

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::sync::watch;

use super::{Change, InProcessBus, LiveBus};
use crate::store::{now_ms, Db};

/// How often the running service looks for changes.
pub const RELAY_EVERY: Duration = Duration::from_millis(250);
/// How long a change stays in the table.
pub const KEEP_MS: i64 = 60_000;

const INSERT: &str = "INSERT INTO live_changes (kind, subject, created_ms) VALUES ($1, $2, $3)";
const AFTER: &str = "SELECT id, kind, subject FROM live_changes WHERE id > $1 ORDER BY id LIMIT 500";
const NEWEST: &str = "SELECT COALESCE(MAX(id), 0) FROM live_changes";
const PRUNE: &str = "DELETE FROM live_changes WHERE created_ms < $1";

/// Publishes into the database, for a process whose changes the running service relays.
pub struct OutboxBus {
    db: Db,
}

impl OutboxBus {
    /// The outbox of `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait]
impl LiveBus for OutboxBus {
    async fn publish(&self, change: Change) -> Result<(), sqlx::Error> {
        let (kind, subject) = change.parts();
        let _w = self.db.write_guard().await;
        sqlx::query(INSERT).bind(kind).bind(subject).bind(now_ms()).execute(self.db.pool()).await?;
        Ok(())
    }
}

/// The changes written after `after`, with the newest ID read.
async fn read_after(db: &Db, after: i64) -> sqlx::Result<(Vec<Change>, i64)> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(AFTER).bind(after).fetch_all(db.pool()).await?;
    let newest = rows.last().map_or(after, |r| r.0);
    Ok((rows.into_iter().filter_map(|(_, k, s)| Change::from_parts(&k, s)).collect(), newest))
}

/// Relays the outbox to `bus` until `stop`; changes written before the start are not
/// relayed (nobody who saw them is still waiting), old rows are removed.
pub async fn relay(db: Db, bus: Arc<InProcessBus>, mut stop: watch::Receiver<bool>) {
    let mut seen = loop {
        match sqlx::query_scalar::<_, i64>(NEWEST).fetch_one(db.pool()).await {
            Ok(n) => break n,
            Err(e) => tracing::warn!(error = %e, "reading the live bus failed; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    };
    let mut last_prune = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RELAY_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match read_after(&db, seen).await {
            Ok((changes, newest)) => {
                seen = newest;
                for c in &changes {
                    bus.deliver(c).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the live bus failed"),
        }
        let now = now_ms();
        if now - last_prune > KEEP_MS {
            last_prune = now;
            let _w = db.write_guard().await;
            if let Err(e) = sqlx::query(PRUNE).bind(now - KEEP_MS).execute(db.pool()).await {
                tracing::warn!(error = %e, "pruning the live bus failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::bus::Subscriber;

    #[derive(Default)]
    struct Seen(Mutex<Vec<Change>>);

    #[async_trait]
    impl Subscriber for Seen {
        async fn changed(&self, change: &Change) {
            self.0.lock().expect("lock").push(change.clone());
        }
    }

    #[tokio::test]
    async fn a_change_of_another_process_is_relayed_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let cfg: crate::app::config::DatabaseConfig =
            serde_json::from_value(serde_json::json!({ "url": url })).expect("config");
        let db = Db::connect(&cfg).await.expect("db");
        // Written before the service looked: not relayed.
        OutboxBus::new(db.clone()).publish(Change::Client("@rs_old:hs".into())).await.expect("publish");
        let bus = Arc::new(InProcessBus::new());
        let seen = Arc::new(Seen::default());
        bus.subscribe(seen.clone());
        let (stop, rx) = watch::channel(false);
        let job = tokio::spawn(relay(db.clone(), bus, rx));
        tokio::time::sleep(RELAY_EVERY * 2).await;
        // The CLI's connection is another pool on the same file.
        let cli = Db::connect(&cfg).await.expect("db");
        OutboxBus::new(cli).publish(Change::Client("@rs_1:hs".into())).await.expect("publish");
        for _ in 0..40 {
            if !seen.0.lock().expect("lock").is_empty() {
                break;
            }
            tokio::time::sleep(RELAY_EVERY).await;
        }
        tokio::time::sleep(RELAY_EVERY * 2).await;
        assert_eq!(*seen.0.lock().expect("lock"), vec![Change::Client("@rs_1:hs".into())]);
        let _ = stop.send(true);
        job.await.expect("relay");
    }
}
