//! The live bus through the database (`live_changes`): another process (the admin CLI)
//! writes a change; the running service relays it to its in-process bus within
//! [`RELAY_EVERY`] and removes it after [`KEEP_MS`].

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

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

/// Relays the outbox to an in-process bus, one [`Relay::step`] at a time (the service's job
/// runner calls it every [`RELAY_EVERY`]). Changes written before the first step are not
/// relayed (nobody who saw them is still waiting); rows older than [`KEEP_MS`] are removed.
pub struct Relay {
    db: Db,
    bus: Arc<InProcessBus>,
    seen: Option<i64>,
    last_prune: i64,
}

impl Relay {
    /// A relay from `db`'s outbox to `bus`.
    pub fn new(db: Db, bus: Arc<InProcessBus>) -> Self {
        Self { db, bus, seen: None, last_prune: 0 }
    }

    /// Delivers what was written since the last step.
    pub async fn step(&mut self) -> sqlx::Result<()> {
        let Some(seen) = self.seen else {
            self.seen = Some(sqlx::query_scalar::<_, i64>(NEWEST).fetch_one(self.db.pool()).await?);
            return Ok(());
        };
        let (changes, newest) = read_after(&self.db, seen).await?;
        self.seen = Some(newest);
        for c in &changes {
            self.bus.deliver(c).await;
        }
        let now = now_ms();
        if now - self.last_prune > KEEP_MS {
            self.last_prune = now;
            let _w = self.db.write_guard().await;
            sqlx::query(PRUNE).bind(now - KEEP_MS).execute(self.db.pool()).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Seen;

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
        let mut relay = Relay::new(db.clone(), bus);
        relay.step().await.expect("first step");
        // The CLI's connection is another pool on the same file.
        let cli = Db::connect(&cfg).await.expect("db");
        OutboxBus::new(cli).publish(Change::Client("@rs_1:hs".into())).await.expect("publish");
        relay.step().await.expect("step");
        relay.step().await.expect("step");
        assert_eq!(*seen.0.lock().expect("lock"), vec![Change::Client("@rs_1:hs".into())]);
    }
}
