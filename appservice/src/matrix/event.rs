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
    /// Checks an event as pushed by the homeserver and takes it apart (its `content` and
    /// `unsigned.prev_content` are moved, not copied). The error says what is wrong,
    /// without quoting content.
    pub fn from_value(mut v: Value) -> Result<Self, String> {
        let obj = v.as_object_mut().ok_or("event is not a JSON object")?;
        let text = |k: &str| -> Result<String, String> {
            obj.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("`{k}` is missing or not a string"))
        };
        let event_id = text("event_id")?;
        check_id("event_id", &event_id)?;
        EventId::parse(&event_id).map_err(|e| format!("`event_id` is invalid: {e}"))?;
        let room_id = text("room_id")?;
        check_id("room_id", &room_id)?;
        RoomId::parse(&room_id).map_err(|e| format!("`room_id` is invalid: {e}"))?;
        let sender = text("sender")?;
        check_id("sender", &sender)?;
        UserId::parse(&sender).map_err(|e| format!("`sender` is invalid: {e}"))?;
        let kind = text("type")?;
        if kind.is_empty() {
            return Err("`type` is empty".into());
        }
        let content = obj.remove("content").unwrap_or(Value::Object(Default::default()));
        if !content.is_object() {
            return Err("`content` is not a JSON object".into());
        }
        let state_key = match obj.get("state_key") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("`state_key` is not a string".into()),
        };
        let redacts =
            obj.get("redacts").or_else(|| content.get("redacts")).and_then(Value::as_str).map(str::to_owned);
        let prev_content = obj
            .get_mut("unsigned")
            .and_then(Value::as_object_mut)
            .and_then(|u| u.remove("prev_content"))
            .filter(Value::is_object);
        Ok(RoomEvent {
            event_id,
            room_id,
            sender,
            kind,
            state_key,
            origin_server_ts: obj.get("origin_server_ts").and_then(Value::as_i64),
            redacts,
            prev_content,
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
        let ev = parse_json(&nested(1000)).and_then(RoomEvent::from_value).expect("parses");
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
        let err = RoomEvent::from_value(ev(&long, "!r:localhost")).expect_err("too long");
        assert!(err.contains("more than 255"), "{err}");
        assert!(RoomEvent::from_value(ev(&long[..255], "!r:localhost")).is_ok(), "255 bytes are allowed");
        let err = RoomEvent::from_value(ev("$a\u{0}b", "!r:localhost")).expect_err("NUL");
        assert!(err.contains("`event_id` contains a control character"), "{err}");
        let err = RoomEvent::from_value(ev("$ab", "!r\u{0}:localhost")).expect_err("NUL");
        assert!(err.contains("`room_id`"), "{err}");
        assert_eq!(storable("a\u{0}b"), "a\\u0000b");
        assert!(matches!(storable("ab"), std::borrow::Cow::Borrowed("ab")));
    }

    #[test]
    fn content_prev_content_and_redacts_are_taken_over() {
        let state = json!({"event_id": "$s", "room_id": "!r:localhost", "sender": "@a:localhost",
                           "type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"},
                           "unsigned": {"age": 1, "prev_content": {"join_rule": "public"}}});
        let ev = RoomEvent::from_value(state).expect("valid");
        assert_eq!(ev.content["join_rule"], "invite");
        assert_eq!(ev.prev_content.as_ref().map(|c| c["join_rule"].clone()), Some(json!("public")));
        assert_eq!(ev.state_key.as_deref(), Some(""));
        assert!(ev.is_state());
        let not_an_object = json!({"event_id": "$t", "room_id": "!r:localhost", "sender": "@a:localhost",
                                   "type": "m.room.topic", "state_key": "", "unsigned": {"prev_content": 3}});
        assert_eq!(RoomEvent::from_value(not_an_object).expect("valid").prev_content, None);
        for (redaction, want) in
            [(json!({"redacts": "$old"}), "$old"), (json!({"content": {"redacts": "$v11"}}), "$v11")]
        {
            let mut v = json!({"event_id": "$x", "room_id": "!r:localhost", "sender": "@a:localhost",
                               "type": "m.room.redaction", "origin_server_ts": 7});
            if let (Some(o), Some(extra)) = (v.as_object_mut(), redaction.as_object()) {
                o.extend(extra.clone());
            }
            let ev = RoomEvent::from_value(v).expect("valid");
            assert_eq!(ev.redacts.as_deref(), Some(want));
            assert_eq!(ev.origin_server_ts, Some(7));
        }
    }

    #[test]
    fn accepts_a_valid_event_and_explains_invalid_ones() {
        let good = json!({"event_id": "$abc", "room_id": "!r:localhost", "sender": "@a:localhost",
                          "type": "m.room.message", "content": {"body": "x"}});
        assert!(RoomEvent::from_value(good.clone()).is_ok());
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
            let err = RoomEvent::from_value(v.clone()).expect_err("must be refused");
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }
}
