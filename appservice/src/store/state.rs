//! `service_state`: small named values of the service.

use sqlx::{Any, Executor};

const GET: &str = "SELECT value FROM service_state WHERE name = $1";
const PUT: &str = "INSERT INTO service_state (name, value) VALUES ($1, $2) \
                   ON CONFLICT (name) DO UPDATE SET value = excluded.value";

/// Reads a value.
pub async fn get<'e, E: Executor<'e, Database = Any>>(ex: E, name: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(GET).bind(name).fetch_optional(ex).await
}

/// Writes a value.
pub async fn put<'e, E: Executor<'e, Database = Any>>(ex: E, name: &str, value: &str) -> sqlx::Result<()> {
    sqlx::query(PUT).bind(name).bind(value).execute(ex).await.map(|_| ())
}
