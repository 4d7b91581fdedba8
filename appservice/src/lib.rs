//! assisto's application service. The folder tree is the architecture: `app/` (lifecycle),
//! `matrix/` (everything on the Matrix wire), `web/` (the product's HTTP), `features/` (one
//! folder per feature), `store/` (the database); the pure domain is the `assisto-core` crate.
//!
//! See `docs/architecture.md` for what each module owns.

pub mod app;
pub mod bus;
pub mod error;
pub mod features;
pub mod json;
pub mod matrix;
pub mod shared;
pub mod store;
pub mod web;

pub use app::config::Config;
pub use app::{start, Running};
