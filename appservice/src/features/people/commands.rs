//! Client commands, in a client chat: block and unblock the room's client.
//! Counsellors of the client's institution only; audited like blocking from the client file.

use crate::features::rooms::members;
use crate::features::rooms::store as rooms;
use crate::matrix::commands::kit::Command;
use crate::matrix::commands::kit::Reply;
use crate::matrix::event::RoomEvent;
use crate::matrix::processor::db_error;
use assisto_core::rules::Role;
use assisto_core::RoomKind;

pub(crate) static COMMANDS: [Command; 2] = [
    Command {
        name: "sperren",
        help:
            "sperrt die ratsuchende Person dieses Chats (sie kann nicht mehr schreiben; der Verlauf bleibt)",
        run: block,
    },
    Command {
        name: "entsperren",
        help: "hebt die Sperre der ratsuchenden Person dieses Chats auf",
        run: unblock,
    },
];

fn block<'a>(app: &'a crate::matrix::commands::kit::Context, ev: &'a RoomEvent, _: &'a str) -> Reply<'a> {
    Box::pin(set_blocked(app, ev, true))
}

fn unblock<'a>(app: &'a crate::matrix::commands::kit::Context, ev: &'a RoomEvent, _: &'a str) -> Reply<'a> {
    Box::pin(set_blocked(app, ev, false))
}

async fn set_blocked(
    app: &crate::matrix::commands::kit::Context,
    ev: &RoomEvent,
    blocked: bool,
) -> Result<String, crate::matrix::processor::HandleError> {
    let Some(room) = rooms::get(&app.db, &ev.room_id).await.map_err(db_error)? else {
        return Ok("Das geht nur in einem Chat mit einer ratsuchenden Person.".into());
    };
    if room.kind != RoomKind::ClientChat {
        return Ok("Das geht nur in einem Chat mit einer ratsuchenden Person.".into());
    }
    match app.checker.role(&ev.sender).await.map_err(db_error)? {
        Role::Counsellor { institution } if institution == room.institution_id => {}
        _ => return Ok("Nur Beratende der Einrichtung können Ratsuchende sperren.".into()),
    }
    let mut client = None;
    for (u, m) in members::of_room(&app.db, &ev.room_id).await.map_err(db_error)? {
        if m != members::MembershipState::Leave
            && matches!(app.checker.role(&u).await.map_err(db_error)?, Role::Client { .. })
        {
            client = Some(u);
        }
    }
    let Some(client) = client else { return Ok("In diesem Chat ist keine ratsuchende Person.".into()) };
    app.provisioning
        .set_blocked(&ev.sender, &client, blocked)
        .await
        .map_err(|e| crate::matrix::processor::HandleError::Transient(e.to_string()))?;
    Ok(if blocked {
        "Die ratsuchende Person ist gesperrt: Sie kann nicht mehr schreiben; der Verlauf bleibt erhalten. „!assisto entsperren“ hebt die Sperre auf.".into()
    } else {
        "Die Sperre ist aufgehoben: Die ratsuchende Person kann wieder schreiben.".into()
    })
}
