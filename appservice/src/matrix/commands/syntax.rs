//! What a bot command looks like on the wire, with nothing else attached (so that anyone may
//! recognise one — the embed hides them from clients, the export leaves them out — without
//! depending on the commands themselves): the prefix, parsing a line, and the key that marks
//! the bot's answers.

/// The prefix that addresses the bot.
pub const PREFIX: &str = "!assisto";

/// The content key that marks the bot's answer to a command.
pub const COMMAND_REPLY: &str = "de.assisto.command_reply";

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation<'a> {
    /// The command name, lower-cased by the caller's convention.
    pub name: &'a str,
    /// The rest of the line.
    pub args: &'a str,
}

/// Parses `!assisto name args`; `None` if the text does not address the bot.
pub fn parse(body: &str) -> Option<Invocation<'_>> {
    let rest = body.trim_start().strip_prefix(PREFIX)?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None; // e.g. "!assistotal"
    }
    let rest = rest.trim();
    let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    Some(Invocation { name, args: args.trim() })
}
