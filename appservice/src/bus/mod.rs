//! The live bus: a change made through any entry point (admin API, bot command, widget,
//! CLI) reaches whatever holds open connections — today the web embed — within a second.
//!
//! [`LiveBus`] is what features publish to. Inside the running service it is the
//! [`InProcessBus`], which calls its [`Subscriber`]s directly. A process without
//! subscribers (the admin CLI) publishes through the [`outbox::OutboxBus`] into the
//! database, and the running service's [`outbox::Relay`] job hands those changes to its
//! in-process bus. The scale-out issue adds a cross-process implementation beside these.

pub mod outbox;

use std::sync::{Arc, RwLock};

use async_trait::async_trait;

/// Something that open connections must learn about. Carries opaque IDs only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A client's state changed (blocked, unblocked): their open embed connections read
    /// it again, and a block closes them.
    Client(String),
    /// A conversation's state changed (its place in the live-chat queue, taken, closed):
    /// its open embed connections read it again.
    Conversation(String),
    /// Who can take live chats in an institution changed: open pages learn whether the
    /// chat button shows.
    Availability(String),
    /// An institution's live-chat desk changed (a chat arrived, was taken, returned,
    /// closed; a counsellor's status): counsellors' open desk widgets read it again.
    Desk(String),
}

impl Change {
    /// The stored kind and subject.
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            Change::Client(c) => ("client", c),
            Change::Conversation(r) => ("conversation", r),
            Change::Availability(i) => ("availability", i),
            Change::Desk(i) => ("desk", i),
        }
    }

    /// From the stored kind and subject; `None` for a kind this version doesn't know.
    pub fn from_parts(kind: &str, subject: String) -> Option<Self> {
        match kind {
            "client" => Some(Change::Client(subject)),
            "conversation" => Some(Change::Conversation(subject)),
            "availability" => Some(Change::Availability(subject)),
            "desk" => Some(Change::Desk(subject)),
            _ => None,
        }
    }
}

/// Where features publish changes.
#[async_trait]
pub trait LiveBus: Send + Sync {
    /// Publishes a change; an error means it was not published (the caller's operation
    /// has happened, and the change is lost only for connections already open).
    async fn publish(&self, change: Change) -> Result<(), sqlx::Error>;
}

/// What holds connections and wants to hear of changes.
#[async_trait]
pub trait Subscriber: Send + Sync {
    /// Called once per change.
    async fn changed(&self, change: &Change);
}

/// The bus inside one process: each change goes straight to every subscriber.
#[derive(Default)]
pub struct InProcessBus {
    subscribers: RwLock<Vec<Arc<dyn Subscriber>>>,
}

impl InProcessBus {
    /// A bus without subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscriber.
    pub fn subscribe(&self, s: Arc<dyn Subscriber>) {
        self.subscribers.write().unwrap_or_else(|p| p.into_inner()).push(s);
    }

    /// Hands a change to every subscriber.
    pub async fn deliver(&self, change: &Change) {
        let subs = self.subscribers.read().unwrap_or_else(|p| p.into_inner()).clone();
        for s in subs {
            s.changed(change).await;
        }
    }
}

#[async_trait]
impl LiveBus for InProcessBus {
    async fn publish(&self, change: Change) -> Result<(), sqlx::Error> {
        self.deliver(&change).await;
        Ok(())
    }
}

/// A subscriber that keeps what it heard, for the bus's tests.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Seen(pub(crate) std::sync::Mutex<Vec<Change>>);

#[cfg(test)]
#[async_trait]
impl Subscriber for Seen {
    async fn changed(&self, change: &Change) {
        self.0.lock().expect("lock").push(change.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_hears_every_change_once() {
        let bus = InProcessBus::new();
        let (a, b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
        bus.subscribe(a.clone());
        bus.subscribe(b.clone());
        bus.publish(Change::Client("@rs_1:hs".into())).await.expect("publish");
        for s in [&a, &b] {
            assert_eq!(*s.0.lock().expect("lock"), vec![Change::Client("@rs_1:hs".into())]);
        }
    }

    #[test]
    fn changes_survive_storage() {
        let c = Change::Client("@rs_1:hs".into());
        let (kind, subject) = c.parts();
        assert_eq!(Change::from_parts(kind, subject.to_owned()), Some(c));
        assert_eq!(Change::from_parts("später", "x".into()), None);
    }
}
