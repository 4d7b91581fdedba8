//! Group-chat commands: what Element cannot express. Counsellors of the group's
//! institution only; everything is written to the audit log.
//!
//! - `!assisto gruppe deaktivieren|aktivieren` — read-only for everyone, and back.
//! - `!assisto gruppe löschen bestätigen` — deletes the group for good (purged).
//! - `!assisto teilnehmer deaktivieren|aktivieren @nutzer:server` — one participant reads
//!   but does not write.
//! - `!assisto termin hinzufügen TT.MM.JJJJ HH:MM HH:MM`, `termin liste`,
//!   `termin entfernen N` — the group becomes a Terminchat, open only in its slots.
//! - `!assisto beschreibung …` — the description is for counsellors only; it is set and
//!   read in a chat without clients (e.g. the direct chat with assisto), never in the group.

use chrono::{NaiveDate, NaiveTime, TimeZone};

use crate::features::rooms::members;
use crate::features::rooms::store as rooms;
use crate::features::rooms::store::ManagedRoom;
use crate::matrix::commands::kit::Command;
use crate::matrix::commands::kit::Reply;
use crate::matrix::event::RoomEvent;
use crate::matrix::homeserver::DeleteRoom;
use crate::matrix::processor::db_error;
use crate::matrix::processor::HandleError;
use crate::store::audit;
use crate::store::now_ms;
use assisto_core::rules::Role;
use assisto_core::RoomKind;

pub(crate) static COMMANDS: [Command; 4] = [
    Command { name: "gruppe", help: "gruppe deaktivieren | aktivieren | löschen bestätigen – Gruppenchat schreibgeschützt machen, wieder öffnen oder löschen", run: group },
    Command { name: "teilnehmer", help: "teilnehmer deaktivieren | aktivieren @name:server – eine Person liest nur noch mit, oder wieder mit", run: participant },
    Command { name: "termin", help: "termin hinzufügen TT.MM.JJJJ HH:MM HH:MM | liste | entfernen N – Termine eines Gruppen-Terminchats", run: appointment },
    Command { name: "beschreibung", help: "beschreibung !raum:server Text – Beschreibung eines Gruppenchats (nur für Beratende; im Chat mit assisto)", run: description },
];

/// The managed group this command is about, if the sender may manage it.
async fn group_for(
    app: &crate::matrix::commands::kit::Context,
    ev: &RoomEvent,
    room_id: &str,
) -> Result<Result<ManagedRoom, String>, HandleError> {
    let Some(room) = rooms::get(&app.db, room_id).await.map_err(db_error)? else {
        return Ok(Err("Das geht nur in einem Gruppenchat.".into()));
    };
    if !room.kind.is_group() || room.deleted_at.is_some() {
        return Ok(Err("Das geht nur in einem Gruppenchat.".into()));
    }
    match app.checker.role(&ev.sender).await.map_err(db_error)? {
        Role::Counsellor { institution } if institution == room.institution_id => Ok(Ok(room)),
        _ => Ok(Err("Nur Beratende der Einrichtung können Gruppenchats verwalten.".into())),
    }
}

fn group<'a>(app: &'a crate::matrix::commands::kit::Context, ev: &'a RoomEvent, args: &'a str) -> Reply<'a> {
    Box::pin(async move {
        let room = match group_for(app, ev, &ev.room_id).await? {
            Ok(r) => r,
            Err(msg) => return Ok(msg),
        };
        let words: Vec<&str> = args.split_whitespace().collect();
        match words.as_slice() {
            ["deaktivieren"] => {
                rooms::set_deactivated(&app.db, &room.room_id, true).await.map_err(db_error)?;
                audit::record(&app.db, &ev.sender, "group.deactivate", &room.room_id, None).await.map_err(db_error)?;
                Ok("Der Gruppenchat ist deaktiviert: Alle können den Verlauf lesen, aber niemand kann schreiben. Mit „!assisto gruppe aktivieren“ wird er wieder geöffnet.".into())
            }
            ["aktivieren"] => {
                rooms::set_deactivated(&app.db, &room.room_id, false).await.map_err(db_error)?;
                audit::record(&app.db, &ev.sender, "group.activate", &room.room_id, None).await.map_err(db_error)?;
                Ok("Der Gruppenchat ist wieder aktiv: Alle Teilnehmenden können schreiben.".into())
            }
            ["löschen"] | ["loeschen"] => Ok("Soll der Gruppenchat mit seinem ganzen Verlauf für alle gelöscht werden? Das kann nicht rückgängig gemacht werden. Zum Bestätigen: „!assisto gruppe löschen bestätigen“".into()),
            ["löschen", "bestätigen"] | ["loeschen", "bestaetigen"] => {
                if !app.hs.has_admin_token() {
                    return Ok("Löschen ist auf diesem Server nicht eingerichtet (homeserver.admin_token fehlt). Bitte wenden Sie sich an die Administration.".into());
                }
                rooms::set_deleted(&app.db, &room.room_id).await.map_err(db_error)?;
                audit::record(&app.db, &ev.sender, "group.delete", &room.room_id, None).await.map_err(db_error)?;
                let how = DeleteRoom {
                    purge: true,
                    block: false,
                    force_purge: None,
                    message: Some("Dieser Gruppenchat wurde gelöscht.".into()),
                };
                app.hs
                    .admin_delete_room(&room.room_id, &how)
                    .await
                    .map_err(crate::matrix::processor::hs_error)?;
                Ok(String::new())
            }
            _ => Ok("Bitte so: „!assisto gruppe deaktivieren“, „!assisto gruppe aktivieren“ oder „!assisto gruppe löschen“.".into()),
        }
    })
}

fn participant<'a>(
    app: &'a crate::matrix::commands::kit::Context,
    ev: &'a RoomEvent,
    args: &'a str,
) -> Reply<'a> {
    Box::pin(async move {
        let room = match group_for(app, ev, &ev.room_id).await? {
            Ok(r) => r,
            Err(msg) => return Ok(msg),
        };
        let words: Vec<&str> = args.split_whitespace().collect();
        let (deactivate, user) = match words.as_slice() {
            ["deaktivieren", user] => (true, *user),
            ["aktivieren", user] => (false, *user),
            _ => return Ok(
                "Bitte so: „!assisto teilnehmer deaktivieren @name:server“ oder „… aktivieren @name:server“."
                    .into(),
            ),
        };
        let is_member = members::of_room(&app.db, &room.room_id)
            .await
            .map_err(db_error)?
            .iter()
            .any(|(u, m)| u == user && members::holds_place(m));
        if !is_member || user == app.bot_user_id {
            return Ok(format!("{user} nimmt an diesem Gruppenchat nicht teil."));
        }
        rooms::set_participant_deactivated(&app.db, &room.room_id, user, deactivate)
            .await
            .map_err(db_error)?;
        let action = if deactivate { "group.participant_deactivate" } else { "group.participant_activate" };
        audit::record(&app.db, &ev.sender, action, &room.room_id, Some(user)).await.map_err(db_error)?;
        Ok(if deactivate {
            format!("{user} ist in diesem Gruppenchat deaktiviert und kann nur noch mitlesen.")
        } else {
            format!("{user} kann in diesem Gruppenchat wieder schreiben.")
        })
    })
}

/// Parses `TT.MM.JJJJ HH:MM HH:MM` in the institution's time zone into ms since the epoch.
pub fn parse_slot(tz: chrono_tz::Tz, date: &str, from: &str, to: &str) -> Result<(i64, i64), String> {
    let d = NaiveDate::parse_from_str(date, "%d.%m.%Y")
        .map_err(|_| format!("„{date}“ ist kein Datum im Format TT.MM.JJJJ."))?;
    let t = |s: &str| {
        NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("„{s}“ ist keine Uhrzeit im Format HH:MM."))
    };
    let (a, b) = (t(from)?, t(to)?);
    if b <= a {
        return Err("Das Ende muss nach dem Beginn liegen.".into());
    }
    let at = |time| {
        tz.from_local_datetime(&d.and_time(time))
            .earliest()
            .map(|dt| dt.timestamp_millis())
            .ok_or_else(|| "Diese Uhrzeit gibt es an diesem Tag nicht (Zeitumstellung).".to_string())
    };
    Ok((at(a)?, at(b)?))
}

/// Formats a slot for counsellors.
pub fn format_slot(tz: chrono_tz::Tz, starts: i64, ends: i64) -> String {
    let f = |ms: i64, fmt: &str| {
        tz.timestamp_millis_opt(ms).single().map(|d| d.format(fmt).to_string()).unwrap_or_default()
    };
    format!("{} {}–{}", f(starts, "%d.%m.%Y"), f(starts, "%H:%M"), f(ends, "%H:%M"))
}

fn appointment<'a>(
    app: &'a crate::matrix::commands::kit::Context,
    ev: &'a RoomEvent,
    args: &'a str,
) -> Reply<'a> {
    Box::pin(async move {
        let room = match group_for(app, ev, &ev.room_id).await? {
            Ok(r) => r,
            Err(msg) => return Ok(msg),
        };
        let tz = app.timezone;
        let words: Vec<&str> = args.split_whitespace().collect();
        match words.as_slice() {
            ["hinzufügen" | "hinzufuegen", date, from, to] => {
                let (starts, ends) = match parse_slot(tz, date, from, to) {
                    Ok(s) => s,
                    Err(msg) => return Ok(msg),
                };
                if ends <= now_ms() {
                    return Ok("Dieser Termin liegt in der Vergangenheit.".into());
                }
                rooms::add_appointment(&app.db, &room.room_id, starts, ends).await.map_err(db_error)?;
                if room.kind != RoomKind::AppointmentGroup {
                    rooms::set_kind(&app.db, &room.room_id, RoomKind::AppointmentGroup).await.map_err(db_error)?;
                }
                audit::record(&app.db, &ev.sender, "group.appointment_add", &room.room_id, None).await.map_err(db_error)?;
                Ok(format!("Termin {} eingetragen. Dieser Gruppenchat ist jetzt ein Terminchat: außerhalb seiner Termine kann niemand schreiben.", format_slot(tz, starts, ends)))
            }
            ["liste"] | [] => {
                let list = rooms::appointments(&app.db, &room.room_id).await.map_err(db_error)?;
                if list.is_empty() {
                    return Ok("Keine Termine eingetragen.".into());
                }
                let mut out = String::from("Termine:");
                for a in list {
                    out.push_str(&format!("\n{} – {}", a.id, format_slot(tz, a.starts_at, a.ends_at)));
                }
                Ok(out)
            }
            ["entfernen", id] => {
                let Ok(id) = id.parse::<i64>() else { return Ok("Bitte die Nummer des Termins angeben (siehe „!assisto termin liste“).".into()) };
                if !rooms::remove_appointment(&app.db, &room.room_id, id).await.map_err(db_error)? {
                    return Ok(format!("Es gibt keinen Termin {id}."));
                }
                audit::record(&app.db, &ev.sender, "group.appointment_remove", &room.room_id, None).await.map_err(db_error)?;
                if rooms::appointments(&app.db, &room.room_id).await.map_err(db_error)?.is_empty() {
                    rooms::set_kind(&app.db, &room.room_id, RoomKind::Group).await.map_err(db_error)?;
                    return Ok("Termin entfernt. Es gibt keine Termine mehr: Der Chat ist wieder ein gewöhnlicher Gruppenchat.".into());
                }
                Ok("Termin entfernt.".into())
            }
            _ => Ok("Bitte so: „!assisto termin hinzufügen 24.12.2026 18:00 19:30“, „!assisto termin liste“ oder „!assisto termin entfernen 3“.".into()),
        }
    })
}

fn description<'a>(
    app: &'a crate::matrix::commands::kit::Context,
    ev: &'a RoomEvent,
    args: &'a str,
) -> Reply<'a> {
    Box::pin(async move {
        // Never in a room with clients: they would read the command itself.
        let here = members::of_room(&app.db, &ev.room_id).await.map_err(db_error)?;
        for (u, m) in &here {
            if members::holds_place(m) && app.checker.role(u).await.map_err(db_error)?.is_client() {
                return Ok("Die Beschreibung ist nur für Beratende sichtbar. Bitte setzen oder lesen Sie sie im Chat mit assisto, nicht hier: „!assisto beschreibung !raum:server Text“.".into());
            }
        }
        let (target, text) =
            args.split_once(char::is_whitespace).map(|(a, b)| (a, b.trim())).unwrap_or((args, ""));
        if !target.starts_with('!') {
            return Ok(
                "Bitte so: „!assisto beschreibung !raum:server Text“ (ohne Text: die Beschreibung anzeigen)."
                    .into(),
            );
        }
        let room = match group_for(app, ev, target).await? {
            Ok(r) => r,
            Err(msg) => return Ok(msg),
        };
        if text.is_empty() {
            return Ok(match room.description {
                Some(d) => format!("Beschreibung: {d}"),
                None => "Dieser Gruppenchat hat keine Beschreibung.".into(),
            });
        }
        if text.chars().count() > 1000 {
            return Ok("Die Beschreibung darf höchstens 1000 Zeichen lang sein.".into());
        }
        rooms::set_description(&app.db, &room.room_id, Some(text)).await.map_err(db_error)?;
        audit::record(&app.db, &ev.sender, "group.description", &room.room_id, None)
            .await
            .map_err(db_error)?;
        Ok("Beschreibung gespeichert (nur für Beratende sichtbar).".into())
    })
}

#[cfg(test)]
mod tests {
    use crate::features::rooms::commands::*;

    #[test]
    fn slots_are_read_in_the_institutions_time_zone() {
        let tz = chrono_tz::Europe::Berlin;
        let (a, b) = parse_slot(tz, "24.12.2026", "18:00", "19:30").expect("valid");
        assert_eq!(b - a, 90 * 60 * 1000);
        // 18:00 in Berlin in winter is 17:00 UTC.
        assert_eq!(
            chrono::DateTime::from_timestamp_millis(a).expect("ts").format("%H:%M").to_string(),
            "17:00"
        );
        assert_eq!(format_slot(tz, a, b), "24.12.2026 18:00–19:30");
        assert!(parse_slot(tz, "31.02.2026", "18:00", "19:00").is_err());
        assert!(parse_slot(tz, "24.12.2026", "19:00", "18:00").is_err());
        assert!(parse_slot(tz, "24.12.2026", "25:00", "26:00").is_err());
    }
}
