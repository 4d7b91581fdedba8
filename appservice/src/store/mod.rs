//! The project's own database: SQLite (embedded default) or PostgreSQL, chosen by the URL.
//!
//! SQL is written once with `$N` placeholders, which both drivers understand; where the
//! dialects differ, the migrations have a variant per dialect. One file per table group,
//! SQL as named constants.

pub mod audit;
pub mod state;
pub mod writer;

use std::{sync::Arc, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyPool, ConnectOptions, Executor,
};
use tokio::sync::Mutex;

use crate::app::config::DatabaseConfig;

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    /// SQLite, a file next to the service.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A handle to the database: a pool plus a lock that serialises writers.
///
/// SQLite allows one writer at a time and a deferred transaction that later writes can
/// fail with `SQLITE_BUSY` instead of waiting; taking `write_lock` around every write
/// transaction avoids that. It also makes inbox sequence numbers commit in order, which the
/// processor relies on, on PostgreSQL too.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// SQLite only: one connection whose commits are not synced to disk on their own
    /// (`synchronous = NORMAL`), for bookkeeping whose loss in a power cut costs nothing
    /// but repeated work, such as marking events processed. The next synced commit on the
    /// main pool syncs its pages too.
    relaxed: Option<AnyPool>,
    kind: DbKind,
    write_lock: Arc<Mutex<()>>,
    /// SQLite in a file: the writer thread of the hot path (see `writer`).
    writer: Option<Arc<writer::SqliteWriter>>,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    /// Connects (creating a SQLite file if needed) and applies all migrations.
    pub async fn connect(cfg: &DatabaseConfig) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let (kind, url) = if cfg.url.starts_with("sqlite:") {
            let mut url = cfg.url.clone();
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
            }
            (DbKind::Sqlite, url)
        } else {
            (DbKind::Postgres, cfg.url.clone())
        };
        let opts: AnyConnectOptions = url.parse::<AnyConnectOptions>()?.disable_statement_logging();
        // A database file gets the writer connection and its checkpoint thread.
        let writer_file = match kind {
            DbKind::Sqlite => writer::sqlite_file(&cfg.url),
            DbKind::Postgres => None,
        };
        let no_autocheckpoint = if writer_file.is_some() { writer::NO_AUTOCHECKPOINT } else { "" };
        let relaxed = if kind == DbKind::Sqlite {
            Some(
                AnyPoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            conn.execute(writer::CONNECTION_PRAGMAS).await?;
                            conn.execute(no_autocheckpoint).await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            Ok(())
                        })
                    })
                    .connect_lazy_with(opts.clone()),
            )
        } else {
            None
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if kind == DbKind::Sqlite {
                cfg.max_connections.max(2)
            } else {
                cfg.max_connections
            })
            .acquire_timeout(Duration::from_secs(10))
            // A broken connection shows as a failed query, which callers retry; pinging on
            // every acquire would cost a round trip on the hot path.
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if kind == DbKind::Sqlite {
                        // WAL for readers beside the writer; FULL so that an acknowledged
                        // transaction survives a power loss, not only a process crash;
                        // secure_delete so that deleted content is overwritten with zeros,
                        // not left readable in free pages (the deletion routine relies on
                        // it, with a truncating checkpoint for the WAL).
                        // (`writer::CONNECTION_PRAGMAS` also leaves checkpoints to the
                        // writer's checkpoint thread.)
                        conn.execute(writer::CONNECTION_PRAGMAS).await?;
                        conn.execute(no_autocheckpoint).await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        let mut db = Db { pool, relaxed, kind, write_lock: Arc::new(Mutex::new(())), writer: None };
        db.migrate().await?;
        if let Some(file) = writer_file {
            let w = Arc::new(writer::SqliteWriter::open(file)?);
            tokio::spawn(checkpoints(Arc::downgrade(&w), Arc::downgrade(&db.write_lock)));
            db.writer = Some(w);
        }
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        let m = match self.kind {
            DbKind::Sqlite => &SQLITE_MIGRATOR,
            DbKind::Postgres => &POSTGRES_MIGRATOR,
        };
        m.run(&self.pool).await.map_err(|e| sqlx::Error::Migrate(Box::new(e)))
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for bookkeeping that needs no sync of its own (see `relaxed`).
    pub fn relaxed_pool(&self) -> &AnyPool {
        self.relaxed.as_ref().unwrap_or(&self.pool)
    }

    /// SQLite in a file: the hot path's writer thread. Take `write_guard` around its writes.
    pub fn sqlite_writer(&self) -> Option<&writer::SqliteWriter> {
        self.writer.as_deref()
    }

    /// Which database this is.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// Takes the writer lock; hold it for the whole of a write transaction.
    pub async fn write_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().await
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    /// After deleting personal data: makes sure no copy of it stays readable in the
    /// database's files. SQLite (with `secure_delete` on every connection, deleted content
    /// is already zeroed in the database file): a `TRUNCATE` checkpoint moves every page of
    /// the WAL into the database and empties the WAL, whose older frames still hold the
    /// deleted rows. PostgreSQL: `VACUUM` of `tables` removes the dead row versions, so
    /// that the space is reused (it is not zeroed; WAL segments, archives and backups are
    /// the operator's part, see docs/operations.md).
    pub async fn erase_freed(&self, tables: &[&str]) -> Result<(), sqlx::Error> {
        match self.kind {
            DbKind::Sqlite => {
                // A checkpoint waits for readers (busy_timeout); a reader that stays
                // longer makes it report busy, and it is tried again.
                for attempt in 0..20 {
                    let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.pool).await?;
                    let busy: i64 = sqlx::Row::try_get(&row, 0)?;
                    if busy == 0 {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
                }
                Err(sqlx::Error::Protocol("the WAL checkpoint stayed busy".into()))
            }
            DbKind::Postgres => {
                // Not in a transaction (VACUUM refuses one); the simple query protocol.
                self.pool.execute(format!("VACUUM {}", tables.join(", ")).as_str()).await.map(|_| ())
            }
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        if let Some(r) = &self.relaxed {
            r.close().await;
        }
        self.pool.close().await;
    }
}

/// The WAL's checkpoints while a writer connection exists (see `writer`): a round every
/// `CHECKPOINT_EVERY`, until the database is dropped.
async fn checkpoints(writer: std::sync::Weak<writer::SqliteWriter>, lock: std::sync::Weak<Mutex<()>>) {
    let mut every = tokio::time::interval(writer::CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let (Some(w), Some(lock)) = (writer.upgrade(), lock.upgrade()) else { return };
        let round = async {
            let beside = w.checkpoint_beside()?;
            if beside.frames >= writer::CHECKPOINT_FRAMES {
                let _w = lock.lock().await;
                w.checkpoint_through()?;
            }
            Ok::<_, sqlx::Error>(())
        };
        if let Err(e) = round.await {
            tracing::warn!(error = %e, "WAL checkpoint failed; trying again");
        }
    }
}

/// The outcome of an `INSERT` whose unique constraint may already hold the row: `false`
/// for a unique violation (the row exists), the error otherwise.
pub fn inserted(result: Result<sqlx::any::AnyQueryResult, sqlx::Error>) -> sqlx::Result<bool> {
    match result {
        Ok(r) => Ok(r.rows_affected() > 0),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Text safe to store in any of our databases: NUL (which PostgreSQL refuses in text) is
/// written as the JSON escape `\u0000`.
pub fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\\u0000"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}
