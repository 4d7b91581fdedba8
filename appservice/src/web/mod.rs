//! The product's own HTTP: the admin API, authentication of its callers, the one error
//! answer, OpenID verification of counsellors, health and metrics.

pub mod admin;
pub mod auth;
pub mod error;
pub mod openid;
pub mod openid_cache;
pub mod ops;
