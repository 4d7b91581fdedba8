//! General commands: help and status.

use crate::matrix::commands::kit::Command;
use crate::matrix::commands::kit::Reply;
use crate::matrix::commands::kit::PREFIX;
use crate::matrix::event::RoomEvent;
use crate::store::now_ms;

pub(super) static COMMANDS: [Command; 2] = [
    Command { name: "hilfe", help: "zeigt alle Befehle", run: help },
    Command {
        name: "status",
        help: "prüft, ob assisto erreichbar ist und Nachrichten verarbeitet",
        run: status,
    },
];

fn help<'a>(_: &'a crate::matrix::commands::kit::Context, _: &'a RoomEvent, _: &'a str) -> Reply<'a> {
    Box::pin(async move {
        let mut out = String::from("Befehle von assisto:");
        for c in crate::matrix::commands::all() {
            out.push_str(&format!("\n{PREFIX} {} – {}", c.name, c.help));
        }
        Ok(out)
    })
}

fn status<'a>(_: &'a crate::matrix::commands::kit::Context, ev: &'a RoomEvent, _: &'a str) -> Reply<'a> {
    Box::pin(async move {
        let delay = ev.origin_server_ts.map(|ts| (now_ms() - ts).max(0));
        Ok(match delay {
            Some(ms) => format!("assisto ist erreichbar. Ihr Befehl wurde nach {ms} ms verarbeitet."),
            None => "assisto ist erreichbar.".to_owned(),
        })
    })
}
