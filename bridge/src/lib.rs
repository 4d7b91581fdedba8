//! assisto's client side: the web embed through which clients chat (and, later, the import
//! of conversations from the legacy messenger).
//!
//! The bridge reaches the core only through [`core::Core`], in its own terms
//! (institutions, sessions, conversations, messages), never in Matrix wire types: the
//! appservice implements it on Matrix, and a second client channel would be another user of
//! the same trait. Live updates come through the [`hub::Hub`], which the core publishes to.
//!
//! - [`api`]: the embed's HTTP API, WebSocket and long-poll fallback (`docs/embed-protocol.md`)
//! - [`token`]: the signed token of the logged-in area
//! - [`core`]: the trait and its types
//! - [`hub`]: live frames per conversation

pub mod api;
pub mod core;
pub mod hub;
pub mod token;

pub use api::{router, Bridge};
