//! The service's view of a room event: the fields every handler needs, checked with ruma's
//! identifier types, and the untouched JSON.

use ruma::{EventId, RoomId, UserId};
use serde_json::Value;

pub use crate::json::parse_value as parse_json;

/// The longest identifier the spec allows (event, room and user IDs: 255 bytes).
const MAX_ID_BYTES: usize = 255;

/// Checks an identifier beyond ruma's grammar: at most 255 bytes (the spec's limit) and
/// no control characters (PostgreSQL cannot store NUL in text, and no grammar allows them).
fn check_id(key: &str, id: &str) -> Result<(), String> {
    if id.len() > MAX_ID_BYTES {
        return Err(format!("`{key}` is {} bytes long, more than {MAX_ID_BYTES}", id.len()));
    }
    if id.chars().any(char::is_control) {
        return Err(format!("`{key}` contains a control character"));
    }
    Ok(())
}

/// A timeline event that passed the structural checks.
#[derive(Debug, Clone)]
pub struct RoomEvent {
    /// `event_id`.
    pub event_id: String,
    /// `room_id`.
    pub room_id: String,
    /// `sender`.
    pub sender: String,
    /// `type`.
    pub kind: String,
    /// `state_key`, for state events.
    pub state_key: Option<String>,
    /// `content`.
    pub content: Value,
    /// `origin_server_ts`, if given.
    pub origin_server_ts: Option<i64>,
    /// For redactions: the event redacted (top level in older room versions, in the
    /// content from v11 on).
    pub redacts: Option<String>,
    /// For state events: the content it replaced (`unsigned.prev_content`), if given.
    pub prev_content: Option<Value>,
}

impl RoomEvent {
    /// Checks an event as pushed by the homeserver. The error says what is wrong, without
    /// quoting content.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let obj = v.as_object().ok_or("event is not a JSON object")?;
        let text = |k: &str| -> Result<&str, String> {
            obj.get(k).and_then(Value::as_str).ok_or_else(|| format!("`{k}` is missing or not a string"))
        };
        let event_id = text("event_id")?;
        check_id("event_id", event_id)?;
        EventId::parse(event_id).map_err(|e| format!("`event_id` is invalid: {e}"))?;
        let room_id = text("room_id")?;
        check_id("room_id", room_id)?;
        RoomId::parse(room_id).map_err(|e| format!("`room_id` is invalid: {e}"))?;
        let sender = text("sender")?;
        check_id("sender", sender)?;
        UserId::parse(sender).map_err(|e| format!("`sender` is invalid: {e}"))?;
        let kind = text("type")?;
        if kind.is_empty() {
            return Err("`type` is empty".into());
        }
        let content = obj.get("content").cloned().unwrap_or(Value::Object(Default::default()));
        if !content.is_object() {
            return Err("`content` is not a JSON object".into());
        }
        let state_key = match obj.get("state_key") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("`state_key` is not a string".into()),
        };
        Ok(RoomEvent {
            event_id: event_id.to_owned(),
            room_id: room_id.to_owned(),
            sender: sender.to_owned(),
            kind: kind.to_owned(),
            state_key,
            origin_server_ts: obj.get("origin_server_ts").and_then(Value::as_i64),
            redacts: obj
                .get("redacts")
                .or_else(|| content.get("redacts"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            prev_content: obj
                .get("unsigned")
                .and_then(|u| u.get("prev_content"))
                .filter(|c| c.is_object())
                .cloned(),
            content,
        })
    }

    /// Whether this is a state event (decided by `state_key`, as the spec says).
    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::json::MAX_DEPTH;
    use crate::matrix::event::{parse_json, RoomEvent};
    use crate::store::storable;

    fn nested(depth: usize) -> String {
        format!(
            r#"{{"event_id":"$deep","room_id":"!r:localhost","sender":"@a:localhost","type":"m.room.member","state_key":"@a:localhost","content":{{"membership":"join","x":{}1{}}}}}"#,
            r#"{"a":"#.repeat(depth),
            "}".repeat(depth)
        )
    }

    #[test]
    fn events_nested_as_deep_as_synapse_allows_parse_and_deeper_ones_are_refused() {
        // Synapse accepts up to about 1,000 levels (Python's recursion limit).
        let ev = parse_json(&nested(1000)).and_then(|v| RoomEvent::from_json(&v)).expect("parses");
        assert_eq!(ev.content["membership"], "join");
        let copy = ev.clone();
        assert!(serde_json::to_string(&copy.content).expect("serialises").len() > 6000);
        drop((ev, copy));
        let at_limit = parse_json(&nested(MAX_DEPTH - 2)).expect("the limit parses");
        drop(at_limit);
        let err = parse_json(&nested(MAX_DEPTH + 10)).expect_err("too deep");
        assert!(err.contains("levels deep"), "{err}");
        // Brackets in strings do not count, and broken JSON is still refused.
        let text = format!(r#"{{"s":"{}","t":{}1{}}}"#, "[".repeat(5000), "[".repeat(200), "]".repeat(200));
        assert!(parse_json(&text).is_ok());
        let broken = format!("{}1", "[".repeat(300));
        assert!(parse_json(&broken).expect_err("broken").starts_with("not JSON"));
    }

    #[test]
    fn ids_longer_than_the_spec_allows_or_with_control_characters_are_refused() {
        let ev = |id: &str, room: &str| json!({"event_id": id, "room_id": room, "sender": "@a:localhost", "type": "m.room.message"});
        let long = format!("${}", "a".repeat(255));
        let err = RoomEvent::from_json(&ev(&long, "!r:localhost")).expect_err("too long");
        assert!(err.contains("more than 255"), "{err}");
        assert!(RoomEvent::from_json(&ev(&long[..255], "!r:localhost")).is_ok(), "255 bytes are allowed");
        let err = RoomEvent::from_json(&ev("$a\u{0}b", "!r:localhost")).expect_err("NUL");
        assert!(err.contains("`event_id` contains a control character"), "{err}");
        let err = RoomEvent::from_json(&ev("$ab", "!r\u{0}:localhost")).expect_err("NUL");
        assert!(err.contains("`room_id`"), "{err}");
        assert_eq!(storable("a\u{0}b"), "a\\u0000b");
        assert!(matches!(storable("ab"), std::borrow::Cow::Borrowed("ab")));
    }

    #[test]
    fn accepts_a_valid_event_and_explains_invalid_ones() {
        let good = json!({"event_id": "$abc", "room_id": "!r:localhost", "sender": "@a:localhost",
                          "type": "m.room.message", "content": {"body": "x"}});
        assert!(RoomEvent::from_json(&good).is_ok());
        let cases = [
            (json!([1]), "not a JSON object"),
            (json!({"room_id": "!r:l", "sender": "@a:l", "type": "t"}), "`event_id`"),
            (
                json!({"event_id": "abc", "room_id": "!r:l", "sender": "@a:l", "type": "t"}),
                "`event_id` is invalid",
            ),
            (
                json!({"event_id": "$a", "room_id": "r", "sender": "@a:l", "type": "t"}),
                "`room_id` is invalid",
            ),
            (json!({"event_id": "$a", "room_id": "!r:l", "sender": 5, "type": "t"}), "`sender`"),
            (
                json!({"event_id": "$a", "room_id": "!r:l", "sender": "@a:l", "type": "t", "content": "s"}),
                "`content`",
            ),
            (
                json!({"event_id": "$a", "room_id": "!r:l", "sender": "@a:l", "type": "t", "state_key": 1}),
                "`state_key`",
            ),
        ];
        for (v, want) in cases {
            let err = RoomEvent::from_json(&v).expect_err("must be refused");
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }
}
