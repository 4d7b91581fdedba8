//! The counselling domain's services: provisioning, the module's checks, deletion. The
//! pure part (room kinds, categories, rules, validation) is the `assisto-core` crate.

pub mod checks;
pub mod deletion;
pub mod provisioning;

pub use assisto_core::{check_name, check_slug, rules, Category, DomainError, RoomKind};
