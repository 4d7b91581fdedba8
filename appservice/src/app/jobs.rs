//! The background jobs and their one runner: each job is a step that runs, then waits its
//! interval, until the service stops. A failed step is logged and tried again at the next
//! interval; nothing a job does depends on the step before having succeeded.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::{sync::watch, task::JoinHandle};

use crate::bus::{outbox::Relay, InProcessBus};
use crate::features::deletion::Deleter;
use crate::matrix::{homeserver::HomeserverClient, inbox};
use crate::store::{now_ms, Db};

/// One background job.
#[async_trait]
pub trait Job: Send + 'static {
    /// For the logs.
    fn name(&self) -> &'static str;
    /// How long to wait after each step.
    fn every(&self) -> Duration;
    /// One step.
    async fn step(&mut self) -> anyhow::Result<()>;
}

/// Runs `job` until `stop` says so.
pub fn spawn(mut job: impl Job, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = job.step().await {
                tracing::warn!(job = job.name(), error = %e, "a background job failed; it runs again");
            }
            tokio::select! {
                _ = tokio::time::sleep(job.every()) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}

/// Terminchat notices, every 15 s for the window since the last step.
pub struct Appointments {
    /// The database.
    pub db: Db,
    /// The homeserver.
    pub hs: HomeserverClient,
    /// The bot, who announces.
    pub bot: String,
    /// The time zone slots are told in.
    pub tz: chrono_tz::Tz,
    /// The end of the last window announced.
    pub after: i64,
}

#[async_trait]
impl Job for Appointments {
    fn name(&self) -> &'static str {
        "appointments"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(15)
    }

    async fn step(&mut self) -> anyhow::Result<()> {
        let until = now_ms();
        crate::features::rooms::appointments::announce(
            &self.db, &self.hs, &self.bot, self.tz, self.after, until,
        )
        .await?;
        self.after = until;
        Ok(())
    }
}

/// The deletion routine: clients past their deadline.
pub struct Deletions {
    /// The routine.
    pub deleter: Deleter,
    /// How often.
    pub every: Duration,
}

#[async_trait]
impl Job for Deletions {
    fn name(&self) -> &'static str {
        "deletions"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn step(&mut self) -> anyhow::Result<()> {
        let n = self.deleter.run_due().await?;
        if n > 0 {
            tracing::info!(finished = n, "deletions finished");
        }
        Ok(())
    }
}

/// Old de-duplication records of the inbox, hourly.
pub struct InboxPrune {
    /// The database.
    pub db: Db,
    /// How long records are kept.
    pub retention: Duration,
}

#[async_trait]
impl Job for InboxPrune {
    fn name(&self) -> &'static str {
        "inbox-prune"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(3600)
    }

    async fn step(&mut self) -> anyhow::Result<()> {
        let n = inbox::prune(&self.db, now_ms() - self.retention.as_millis() as i64).await?;
        if n > 0 {
            tracing::info!(rows = n, "pruned old de-duplication records");
        }
        Ok(())
    }
}

/// The live bus's outbox (changes of the admin CLI) to the in-process bus.
pub struct BusRelay(pub Relay);

impl BusRelay {
    /// From `db`'s outbox to `bus`.
    pub fn new(db: Db, bus: Arc<InProcessBus>) -> Self {
        Self(Relay::new(db, bus))
    }
}

#[async_trait]
impl Job for BusRelay {
    fn name(&self) -> &'static str {
        "live-bus-relay"
    }

    fn every(&self) -> Duration {
        crate::bus::outbox::RELAY_EVERY
    }

    async fn step(&mut self) -> anyhow::Result<()> {
        Ok(self.0.step().await?)
    }
}

/// The live-chat desk's timers: offers that lapse, automatic routing, the chats of
/// counsellors who are gone.
pub struct LiveTick {
    /// The desk.
    pub desk: crate::features::live::LiveDesk,
    /// How often.
    pub every: Duration,
}

#[async_trait]
impl Job for LiveTick {
    fn name(&self) -> &'static str {
        "live-desk"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn step(&mut self) -> anyhow::Result<()> {
        Ok(self.desk.tick().await?)
    }
}

/// Commits the search index every [`crate::features::search::COMMIT_EVERY`] (when something
/// changed), and every few seconds overwrites the files of merged segments.
pub struct SearchCommit {
    search: crate::features::search::Search,
    ticks: u32,
}

impl SearchCommit {
    /// The commit job of `search`.
    pub fn new(search: crate::features::search::Search) -> Self {
        Self { search, ticks: 0 }
    }
}

#[async_trait]
impl Job for SearchCommit {
    fn name(&self) -> &'static str {
        "search-commit"
    }

    fn every(&self) -> Duration {
        crate::features::search::COMMIT_EVERY
    }

    async fn step(&mut self) -> anyhow::Result<()> {
        self.search.commit().await?;
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(20) {
            self.search.empty_trash().await?;
        }
        Ok(())
    }
}
