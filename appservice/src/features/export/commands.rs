//! `!assisto export [csv|pdf]`: the bot answers with a one-time download link (ten
//! minutes, once), so that nothing of the export is stored on the homeserver.

use crate::error::Error;
use crate::features::export::{Format, LINK_TTL};
use crate::matrix::commands::kit::{Command, Context, Reply, PREFIX};
use crate::matrix::event::RoomEvent;
use crate::matrix::processor::{db_error, HandleError};

pub(crate) static COMMANDS: [Command; 1] = [Command {
    name: "export",
    help: "exportiert diesen Chat: „export pdf“ (Standard) oder „export csv“; Sie bekommen einen Link, der 10 Minuten und einmal gilt",
    run: export,
}];

fn export<'a>(app: &'a Context, ev: &'a RoomEvent, args: &'a str) -> Reply<'a> {
    Box::pin(async move {
        let format = match args.trim() {
            "" => Format::Pdf,
            f => match Format::parse(f) {
                Some(f) => f,
                None => return Ok(format!("„{PREFIX} export pdf“ oder „{PREFIX} export csv“.")),
            },
        };
        let Some(base) = app.provisioning.config.appservice.public_url.as_deref() else {
            return Ok("Export per Befehl braucht die öffentliche Adresse des Dienstes (appservice.public_url). Bitte nutzen Sie das Widget „Werkzeuge“.".into());
        };
        match app.export.subject(Some(&ev.sender), &ev.room_id).await {
            Ok(_) => {}
            Err(Error::Domain(e)) => return Ok(e.to_string()),
            Err(Error::Database(e)) => return Err(db_error(e)),
            Err(e) => return Err(HandleError::Transient(e.to_string())),
        }
        let token = app.export.link(&ev.sender, &ev.room_id, format);
        Ok(format!(
            "Der Export ({}) ist bereit: {}/_assisto/tools/v1/exports/{token} — der Link gilt {} Minuten und nur einmal.",
            format.extension().to_uppercase(),
            base.trim_end_matches('/'),
            LINK_TTL.as_secs() / 60
        ))
    })
}
