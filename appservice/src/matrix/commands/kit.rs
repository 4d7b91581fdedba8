//! What a bot command is made of (its name, German help and handler) and what it works
//! with; the feature folders define their commands with these, `commands` runs them.

use std::{future::Future, pin::Pin};

use crate::features::institutions::Provisioning;
use crate::features::live::LiveDesk;
use crate::features::rooms::checks::Checker;
use crate::matrix::event::RoomEvent;
use crate::matrix::homeserver::HomeserverClient;
use crate::matrix::processor::HandleError;
use crate::store::Db;

/// What commands work with (the event handler builds it once): the database, the
/// homeserver as the bot, who people are, provisioning and the bot's time zone.
#[derive(Clone)]
pub struct Context {
    /// The database.
    pub db: Db,
    /// The homeserver.
    pub hs: HomeserverClient,
    /// The bot's user ID.
    pub bot_user_id: String,
    /// Who people are, what rooms are.
    pub checker: Checker,
    /// Institutions, counsellors, clients.
    pub provisioning: Provisioning,
    /// The live-chat desk.
    pub live: LiveDesk,
    /// The time zone appointments are given in.
    pub timezone: chrono_tz::Tz,
    /// The counsellor tools (snippets, phone number, links).
    pub tools: crate::features::tools::Tools,
    /// Chat exports (their one-time links are shared with the web routes).
    pub export: crate::features::export::Exporter,
    /// Search, where the service has an index.
    pub search: Option<crate::features::search::Search>,
}

pub use crate::matrix::commands::syntax::{Invocation, PREFIX};

/// The future a command handler returns.
pub type Reply<'a> = Pin<Box<dyn Future<Output = Result<String, HandleError>> + Send + 'a>>;

/// One command.
pub struct Command {
    /// Its name.
    pub name: &'static str,
    /// One line of German help.
    pub help: &'static str,
    /// Produces the answer.
    pub run: for<'a> fn(&'a Context, &'a RoomEvent, &'a str) -> Reply<'a>,
}
