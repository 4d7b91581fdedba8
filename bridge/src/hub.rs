//! Live frames per conversation: the core publishes, each connected browser subscribes.
//! Publishing to a conversation nobody watches costs one map lookup.

use std::{collections::HashMap, sync::Mutex};

use tokio::sync::broadcast;

use crate::core::Message;

/// Something happened in a conversation.
#[derive(Clone, Debug)]
pub enum Frame {
    /// A new message.
    Message(Box<Message>),
    /// A message was removed.
    Redacted(String),
    /// The state changed (waiting, blocked, ended, typing, read): ask the core for it.
    StateChanged,
}

/// The hub's key under which an institution's open pages hear that who can take a chat
/// changed (room IDs, the conversations' keys, start with `!`: no clash).
pub fn availability_key(institution: &str) -> String {
    format!("availability/{institution}")
}

/// How many frames a slow browser may fall behind before it catches up from history.
const BUFFER: usize = 64;

/// The hub.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<Frame>>>,
}

impl Hub {
    /// A new, empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts watching a conversation.
    pub fn subscribe(&self, conversation: &str) -> broadcast::Receiver<Frame> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(conversation.to_owned()).or_insert_with(|| broadcast::channel(BUFFER).0).subscribe()
    }

    /// Whether anybody watches a conversation.
    pub fn watched(&self, conversation: &str) -> bool {
        let map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.get(conversation).is_some_and(|s| s.receiver_count() > 0)
    }

    /// Sends a frame to everybody watching; forgets conversations nobody watches any more.
    pub fn publish(&self, conversation: &str, frame: Frame) {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(conversation) {
            if tx.send(frame).is_err() {
                map.remove(conversation);
            }
        }
    }

    /// How many conversations are watched (for metrics).
    pub fn conversations(&self) -> usize {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, tx| tx.receiver_count() > 0);
        map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_reach_subscribers_of_their_conversation_only() {
        let hub = Hub::new();
        let mut a = hub.subscribe("a");
        let mut b = hub.subscribe("b");
        hub.publish("a", Frame::StateChanged);
        assert!(matches!(a.recv().await, Ok(Frame::StateChanged)));
        assert!(b.try_recv().is_err());
        assert!(hub.watched("a"));
        drop(a);
        hub.publish("a", Frame::StateChanged);
        assert!(!hub.watched("a"));
        assert_eq!(hub.conversations(), 1);
    }
}
