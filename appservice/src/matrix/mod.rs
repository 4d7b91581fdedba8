//! Everything on the Matrix wire: the application-service API the homeserver calls
//! (`as_api`), the Synapse module's questions (`module_api`), the durable inbox, the
//! processor and the dispatch of events to the features, the bot commands, and the one
//! client for every client-server and admin call (`homeserver`).

pub mod as_api;
pub mod commands;
pub mod dispatch;
pub mod event;
pub mod homeserver;
pub mod inbox;
pub mod ingest;
pub mod module_api;
pub mod processor;
pub mod registration;
