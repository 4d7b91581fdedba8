//! assisto's application service: the Matrix side and the domain.
//!
//! See `docs/architecture.md` for what each module owns.

pub mod api;
pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod embed;
pub mod error;
pub mod event;
pub mod files;
pub mod handler;
pub mod homeserver;
pub mod logging;
pub mod metrics;
pub mod processor;
pub mod registration;

pub use app::{start, Running};
pub use config::Config;
