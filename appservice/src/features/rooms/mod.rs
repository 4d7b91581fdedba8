//! Managed rooms: their kinds and members (`store`, `members`), the Synapse module's
//! questions answered by the core's rules (`checks`), and the group and appointment bot
//! commands.

pub mod appointments;
pub mod checks;
pub mod commands;
pub mod members;
pub mod store;
