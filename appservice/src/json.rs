//! JSON from the homeserver, parsed as deep as it may be nested. serde_json stops at 128
//! levels; Synapse accepts what Python's `json` parses (up to its recursion limit, 1,000 by
//! default), and an event we cannot parse would be hidden from the rules. The usual case
//! costs nothing extra: only what serde_json's own limit refuses is measured and parsed
//! again on a growing stack (serde_stacker).

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The deepest nesting accepted. Synapse parses and signs events with Python's `json`,
/// which stops at the interpreter's recursion limit (1,000 by default), so no event it
/// accepted is deeper; serde_json alone stops at 128. Deeper still is refused so that a
/// hostile homeserver cannot make dropping the value overflow the stack.
pub const MAX_DEPTH: usize = 2048;

/// Why JSON text was not accepted.
#[derive(Debug)]
pub enum JsonError {
    /// Not JSON at all, or nested deeper than [`MAX_DEPTH`].
    Syntax(String),
    /// JSON, but not of the expected shape.
    Data(String),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::Syntax(m) | JsonError::Data(m) => f.write_str(m),
        }
    }
}

/// Parses JSON text into `T`, as deep as [`MAX_DEPTH`].
pub fn from_slice<T: DeserializeOwned>(text: &[u8]) -> Result<T, JsonError> {
    let classify = |e: serde_json::Error| {
        if e.is_data() {
            JsonError::Data(e.to_string())
        } else {
            JsonError::Syntax(e.to_string())
        }
    };
    match serde_json::from_slice::<T>(text) {
        Ok(v) => Ok(v),
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => {
            let depth = nesting_depth(text);
            if depth > MAX_DEPTH {
                return Err(JsonError::Syntax(format!(
                    "nested {depth} levels deep, more than the {MAX_DEPTH} accepted"
                )));
            }
            let mut de = serde_json::Deserializer::from_slice(text);
            de.disable_recursion_limit();
            let value = T::deserialize(serde_stacker::Deserializer::new(&mut de)).map_err(classify)?;
            de.end().map_err(classify)?;
            Ok(value)
        }
        Err(e) => Err(classify(e)),
    }
}

/// Parses an event or other JSON value; the error says what is wrong, without content.
pub fn parse_value(text: &str) -> Result<Value, String> {
    from_slice(text.as_bytes()).map_err(|e| match e {
        JsonError::Syntax(m) if m.starts_with("nested") => m,
        e => format!("not JSON: {e}"),
    })
}

/// The deepest nesting of arrays and objects in JSON text (brackets inside strings do not
/// count).
fn nesting_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}
