//! Counsellors and clients: who they are (`store`), and the bot commands that block,
//! deactivate and reactivate clients.

pub mod commands;
pub mod store;
