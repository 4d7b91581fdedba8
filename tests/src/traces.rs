//! Looking for traces of deleted data in every store: each table of a database, raw
//! database files, directory trees (names and contents) and logs.
//!
//! Each search returns where a needle was found ("table.column", a file path), so a failing
//! test says what survived.

use std::path::{Path, PathBuf};

use sqlx::{Connection, Row};

/// Every table and column of a SQLite database (virtual tables such as FTS indexes and
/// their shadow tables included) whose value contains one of `needles` (bytes compared, so
/// blobs count too): `"table.column: needle"`.
pub async fn in_sqlite_tables(path: &Path, needles: &[String]) -> Vec<String> {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn =
        sqlx::SqliteConnection::connect(&url).await.unwrap_or_else(|e| panic!("opening {url}: {e}"));
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .expect("tables");
    let mut found = Vec::new();
    for t in tables {
        let cols: Vec<String> =
            match sqlx::query(&format!("PRAGMA table_info(\"{t}\")")).fetch_all(&mut conn).await {
                Ok(rows) => rows.iter().map(|r| r.get::<String, _>("name")).collect(),
                Err(_) => continue,
            };
        for c in cols {
            for n in needles {
                let sql = format!(
                    "SELECT COUNT(*) FROM \"{t}\" WHERE instr(CAST(\"{c}\" AS BLOB), CAST(?1 AS BLOB)) > 0"
                );
                // A virtual table whose module is not loaded here cannot be read; its
                // shadow tables (plain tables) still are.
                if let Ok(k) = sqlx::query_scalar::<_, i64>(&sql).bind(n).fetch_one(&mut conn).await {
                    if k > 0 {
                        found.push(format!("{t}.{c}: {n} ({k} rows)"));
                    }
                }
            }
        }
    }
    conn.close().await.ok();
    found
}

/// Every table and column of a PostgreSQL database (schema `public`) whose text form
/// contains one of `needles`.
pub async fn in_postgres_tables(url: &str, needles: &[String]) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| panic!("opening {url}: {e}"));
    let cols: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut conn)
    .await
    .expect("columns");
    let mut found = Vec::new();
    for (t, c) in cols {
        for n in needles {
            let sql = format!("SELECT COUNT(*) FROM \"{t}\" WHERE position($1 in \"{c}\"::text) > 0");
            let k: i64 = sqlx::query_scalar(&sql).bind(n).fetch_one(&mut conn).await.unwrap_or(0);
            if k > 0 {
                found.push(format!("{t}.{c}: {n} ({k} rows)"));
            }
        }
    }
    conn.close().await.ok();
    found
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Files whose raw bytes contain one of `needles`: `"path: needle"` (missing files are
/// skipped).
pub fn in_files(paths: &[PathBuf], needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for p in paths {
        let Ok(bytes) = std::fs::read(p) else { continue };
        for n in needles {
            if contains(&bytes, n.as_bytes()) {
                found.push(format!("{}: {n}", p.display()));
            }
        }
    }
    found
}

/// Every file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Names (of files and directories) and contents of files below `dir` that contain one of
/// `needles`.
pub fn in_tree(dir: &Path, needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    fn names(dir: &Path, needles: &[String], found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            for n in needles {
                if name.contains(n.as_str()) {
                    found.push(format!("file name {}: {n}", e.path().display()));
                }
            }
            if e.path().is_dir() {
                names(&e.path(), needles, found);
            }
        }
    }
    names(dir, needles, &mut found);
    found.extend(in_files(&files_below(dir), needles));
    found
}
