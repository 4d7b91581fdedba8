//! SQLite only: the hot path's own connection, used in place.
//!
//! The homeserver waits for every transaction's durable record, so the few writes on that
//! path (recording a transaction's events, marking them processed) skip sqlx: through its
//! pool, a statement is several messages between the async task and the pooled
//! connection's worker thread, each a thread wake-up (tens of microseconds on a small
//! machine, more than the SQL itself), plus the `Any` driver's conversions. Here the
//! statements run on the calling thread, on one connection with statements prepared once
//! and cached; on a multi-threaded runtime inside `block_in_place`, so that the runtime
//! moves its other tasks to another worker meanwhile.
//!
//! The connection has the pool's settings (WAL, `synchronous = FULL`, `secure_delete`), so
//! what it commits is as durable. [`SqliteWriter::write_relaxed`] commits without a sync
//! of its own (`synchronous = NORMAL` for that transaction), for bookkeeping whose loss in
//! a power cut only means repeated work; the next synced commit syncs it too.
//!
//! Checkpoints: a commit that finds the WAL over SQLite's auto-checkpoint size (1,000
//! pages) copies the WAL into the database and syncs it before it returns, which, on the
//! hot path, is the acknowledgement's slowest percentile. So no connection checkpoints on
//! commit (`wal_autocheckpoint = 0` here and on the pool's connections); instead
//! [`Db`](crate::store::Db) runs a round every [`CHECKPOINT_EVERY`]: a `PASSIVE` checkpoint
//! on a connection of its own, which copies and syncs without holding writers up
//! ([`SqliteWriter::checkpoint_beside`]), then, once the WAL is over
//! [`CHECKPOINT_FRAMES`], a second one under the write guard for the few frames written
//! meanwhile ([`SqliteWriter::checkpoint_through`]). Only a WAL copied whole is started
//! over from its beginning by the next write, so that the WAL file keeps its size and a
//! commit overwrites it in place rather than growing it.
//!
//! Callers take [`Db::write_guard`](crate::store::Db::write_guard) around a write here, as
//! around any other, so that writers never meet SQLite's busy handler and inbox sequence
//! numbers commit in order. The connection's own mutex is then never contended.

use std::{path::Path, sync::Mutex, time::Duration};

use rusqlite::{Connection, OpenFlags};
use tokio::runtime::{Handle, RuntimeFlavor};

/// Statements kept prepared on the connection (one per distinct SQL text).
const STATEMENT_CACHE: usize = 32;

/// How often the WAL is copied into the database.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// From how many WAL frames on a round finishes its checkpoint under the write guard.
pub const CHECKPOINT_FRAMES: i64 = 256;

/// The pragmas of every connection to the database file (sqlx's pool too).
pub const CONNECTION_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
     PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;";
/// For every connection while a writer's checkpoint thread runs.
pub const NO_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 0;";

/// The hot path's connection, and the checkpoints' own.
pub struct SqliteWriter {
    conn: Mutex<Connection>,
    checkpoints: Mutex<Connection>,
}

/// What a checkpoint found and did, in WAL frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpointed {
    /// Frames in the WAL.
    pub frames: i64,
    /// Of these, copied into the database (now or before).
    pub copied: i64,
}

impl SqliteWriter {
    /// Opens the database file (which must exist, migrated): the writer's connection and
    /// the checkpoints' own.
    pub fn open(path: &Path) -> sqlx::Result<Self> {
        let conn = connect(path)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // The checkpoints' connection is FULL too: a checkpoint syncs the database file
        // before the WAL may be reused.
        Ok(Self { conn: Mutex::new(conn), checkpoints: Mutex::new(connect(path)?) })
    }

    /// A `PASSIVE` checkpoint on the checkpoints' own connection: writers go on meanwhile.
    pub fn checkpoint_beside(&self) -> sqlx::Result<Checkpointed> {
        on(&self.checkpoints, |c| passive_checkpoint(c))
    }

    /// A `PASSIVE` checkpoint on the writer's connection. Hold the write guard: then no
    /// frame is added meanwhile, it copies the WAL whole (unless a reader still needs a
    /// part), and the next write starts the WAL over.
    pub fn checkpoint_through(&self) -> sqlx::Result<Checkpointed> {
        on(&self.conn, |c| passive_checkpoint(c))
    }

    /// Runs `f` on the connection (synced commits), on this thread.
    pub fn write<R>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>) -> sqlx::Result<R> {
        on(&self.conn, f)
    }

    /// Runs `f` with commits that are not synced on their own (see the module).
    pub fn write_relaxed<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> sqlx::Result<R> {
        on(&self.conn, |conn| {
            conn.execute_batch("PRAGMA synchronous = NORMAL")?;
            let result = f(conn);
            // Whatever `f` did, the next caller's commits are synced again; a connection
            // that cannot even do that is unusable.
            conn.execute_batch("PRAGMA synchronous = FULL")?;
            result
        })
    }
}

/// A connection to the database file with every connection's pragmas, synced commits and
/// no checkpoints on commit.
fn connect(path: &Path) -> sqlx::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(to_sqlx)?;
    conn.execute_batch(CONNECTION_PRAGMAS).map_err(to_sqlx)?;
    conn.execute_batch(NO_AUTOCHECKPOINT).map_err(to_sqlx)?;
    conn.execute_batch("PRAGMA synchronous = FULL").map_err(to_sqlx)?;
    Ok(conn)
}

/// Runs `f` on one of the connections, in place.
fn on<R>(
    conn: &Mutex<Connection>,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
) -> sqlx::Result<R> {
    in_place(|| {
        let mut conn = conn.lock().map_err(|_| poisoned())?;
        f(&mut conn).map_err(to_sqlx)
    })
}

fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<Checkpointed> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Checkpointed { frames: r.get(1)?, copied: r.get(2)? })
    })
}

/// Runs blocking work on this thread; on a multi-threaded runtime, the runtime's other
/// tasks move to another worker meanwhile (`block_in_place` panics on a current-thread
/// runtime, where there is no other worker to move to).
fn in_place<R>(f: impl FnOnce() -> R) -> R {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(e))
}

fn poisoned() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other("the SQLite writer's connection was poisoned by a panic"))
}

/// The file of a `sqlite:` URL, or `None` for an in-memory database.
pub fn sqlite_file(url: &str) -> Option<&Path> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let file = rest.split('?').next().unwrap_or_default();
    (!file.is_empty() && file != ":memory:" && !url.contains("mode=memory")).then(|| Path::new(file))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::store::writer::{sqlite_file, SqliteWriter};

    #[test]
    fn urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite://assisto.db"), Some(Path::new("assisto.db")));
        assert_eq!(sqlite_file("sqlite:///var/lib/a.db?mode=rwc"), Some(Path::new("/var/lib/a.db")));
        assert_eq!(sqlite_file("sqlite:a.db"), Some(Path::new("a.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://x?mode=memory"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }

    fn synchronous(w: &SqliteWriter) -> i64 {
        w.write(|c| c.query_row("PRAGMA synchronous", [], |r| r.get(0))).expect("pragma")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_are_synced_and_relaxed_writes_leave_them_synced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        rusqlite::Connection::open(&path)
            .expect("create")
            .execute_batch("CREATE TABLE t (x)")
            .expect("table");
        let w = SqliteWriter::open(&path).expect("open");
        let n = w
            .write(|c| {
                c.execute("INSERT INTO t VALUES (1), (2)", [])?;
                c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))
            })
            .expect("sql");
        assert_eq!(n, 2);
        let mode = w.write(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0)));
        assert_eq!(mode.expect("sql"), "wal");
        assert_eq!(synchronous(&w), 2, "FULL");
        let inside = w.write_relaxed(|c| c.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0)));
        assert_eq!(inside.expect("sql"), 1, "NORMAL inside");
        // A failing relaxed write leaves the connection synced.
        assert!(w.write_relaxed(|c| c.execute("INSERT INTO missing VALUES (1)", [])).is_err());
        assert_eq!(synchronous(&w), 2, "FULL again");
    }
}
