//! assisto's client side: the web embed through which clients chat, and the import of
//! conversations from the legacy messenger.
//!
//! It will reach the core (the `appservice` crate) only through a small trait defined here,
//! in its own terms (conversations, messages, clients), never in Matrix wire types, so that
//! a second client channel is another implementation of the same trait.
//!
//! Nothing is implemented yet: the web embed is its own issue. This crate exists so that the
//! workspace has the shape of the architecture (see `docs/architecture.md`).
