//! General commands: help. (`status`, which also says whether assisto is reachable, is the
//! live-chat desk's: it shows and sets a counsellor's status.)

use crate::matrix::commands::kit::Command;
use crate::matrix::commands::kit::Reply;
use crate::matrix::commands::kit::PREFIX;
use crate::matrix::event::RoomEvent;
use crate::store::now_ms;

pub(super) static COMMANDS: [Command; 1] = [Command { name: "hilfe", help: "zeigt alle Befehle", run: help }];

fn help<'a>(_: &'a crate::matrix::commands::kit::Context, _: &'a RoomEvent, _: &'a str) -> Reply<'a> {
    Box::pin(async move {
        let mut out = String::from("Befehle von assisto:");
        for c in crate::matrix::commands::all() {
            out.push_str(&format!("\n{PREFIX} {} – {}", c.name, c.help));
        }
        Ok(out)
    })
}

/// That assisto is reachable and how long the command took to be processed.
pub fn reachable(ev: &RoomEvent) -> String {
    match ev.origin_server_ts.map(|ts| (now_ms() - ts).max(0)) {
        Some(ms) => format!("assisto ist erreichbar. Ihr Befehl wurde nach {ms} ms verarbeitet."),
        None => "assisto ist erreichbar.".to_owned(),
    }
}
