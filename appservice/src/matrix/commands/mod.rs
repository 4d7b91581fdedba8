//! Bot commands: `!assisto <command> [arguments]` in a room the bot is in.
//!
//! A command is data (name, German help text, handler); one file per command group.
//! Answers are notices sent with a transaction ID derived from the command's event, so a
//! command processed twice (after a crash) is answered once.

pub mod general;
pub mod kit;
pub mod syntax;

pub use kit::{Command, Context, Reply};
pub use syntax::{parse, Invocation, COMMAND_REPLY, PREFIX};

use crate::features::{
    export::commands as export, live::commands as live, people::commands as clients,
    rooms::commands as groups, search::commands as search, tools::commands as tools,
};

use crate::matrix::event::RoomEvent;
use crate::matrix::homeserver::TxnId;
use crate::matrix::processor::hs_error;
use crate::matrix::processor::HandleError;

/// Every command, in the order the help lists them.
pub fn all() -> Vec<&'static Command> {
    general::COMMANDS
        .iter()
        .chain(groups::COMMANDS.iter())
        .chain(clients::COMMANDS.iter())
        .chain(live::COMMANDS.iter())
        .chain(tools::COMMANDS.iter())
        .chain(export::COMMANDS.iter())
        .chain(search::COMMANDS.iter())
        .collect()
}

/// Runs a command and answers in the room.
pub async fn run(app: &Context, ev: &RoomEvent, inv: Invocation<'_>) -> Result<(), HandleError> {
    let name = if inv.name.is_empty() { "hilfe" } else { inv.name };
    let name = name.to_lowercase();
    let answer = match all().into_iter().find(|c| c.name == name) {
        Some(cmd) => (cmd.run)(app, ev, inv.args).await?,
        None => format!(
            "Unbekannter Befehl „{}“. Mit „{PREFIX} hilfe“ sehen Sie alle Befehle.",
            truncate(inv.name, 40)
        ),
    };
    if answer.is_empty() {
        return Ok(()); // nothing to say (e.g. the room is gone)
    }
    let txn = TxnId::derived(&ev.event_id, "command-reply");
    // Marked as a reply to a command: the web embed shows a client neither the command
    // nor the answer (a counsellor's command in a client's chat is for the counsellor).
    let content = serde_json::json!({ "msgtype": "m.notice", "body": answer, COMMAND_REPLY: true });
    app.hs
        .send_event(&ev.room_id, &app.bot_user_id, "m.room.message", &txn, &content)
        .await
        .map_err(hs_error)?;
    tracing::info!(room_id = %ev.room_id, command = %name, "command answered");
    Ok(())
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use crate::matrix::commands::*;

    #[test]
    fn parses_commands_and_ignores_other_text() {
        assert_eq!(parse("!assisto hilfe"), Some(Invocation { name: "hilfe", args: "" }));
        assert_eq!(parse("  !assisto  status  jetzt "), Some(Invocation { name: "status", args: "jetzt" }));
        assert_eq!(parse("!assisto"), Some(Invocation { name: "", args: "" }));
        assert_eq!(parse("!assistotal"), None);
        assert_eq!(parse("hallo !assisto hilfe"), None);
        assert_eq!(truncate("äöü", 2), "äö…");
    }

    #[test]
    fn every_command_has_unique_name_and_help() {
        let cmds = all();
        for c in &cmds {
            assert!(!c.help.is_empty());
            assert_eq!(cmds.iter().filter(|d| d.name == c.name).count(), 1, "{}", c.name);
        }
    }
}
