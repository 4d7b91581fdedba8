//! One folder per feature: its service, its SQL (`store.rs`), its routes, its bot commands
//! and its reactions to events. A feature owns its tables; others call its functions.

pub mod client_file;
pub mod counters;
pub mod deletion;
pub mod embed;
pub mod export;
pub mod institutions;
pub mod live;
pub mod people;
pub mod rooms;
pub mod search;
pub mod statistics;
pub mod tools;
