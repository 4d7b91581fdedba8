//! The live-chat desk's bot commands, the keyboard path beside joining from the Live space:
//! `status`, `warteschlange`, `übernehmen`, and in a live chat `zurückgeben`,
//! `weiterleiten`, `beenden`; `codes` lists the classification codes.

use assisto_core::live::{LiveError, Status};

use crate::features::institutions::store as institutions;
use crate::features::live::status::From;
use crate::features::live::store::{self, LiveChat};
use crate::features::live::{Stepped, Via};
use crate::features::people::store as people;
use crate::matrix::commands::general;
use crate::matrix::commands::kit::{Command, Context, Reply, PREFIX};
use crate::matrix::event::RoomEvent;
use crate::matrix::processor::{db_error, HandleError};

pub(crate) static COMMANDS: [Command; 7] = [
    Command {
        name: "status",
        help: "prüft, ob assisto erreichbar ist, und zeigt oder setzt Ihren Status: online, beschäftigt, nicht-online, nicht-anwählbar",
        run: status,
    },
    Command {
        name: "warteschlange",
        help: "zeigt die wartenden Live-Chats Ihrer Abteilungen",
        run: queue,
    },
    Command {
        name: "übernehmen",
        help: "übernimmt einen wartenden Live-Chat: „übernehmen 12“ den Live-Chat 12, ohne Nummer den am längsten wartenden",
        run: take,
    },
    Command {
        name: "zurückgeben",
        help: "gibt diesen Live-Chat zurück in die Warteschlange (mit „zurückgeben ja“ bestätigen)",
        run: give_back,
    },
    Command {
        name: "weiterleiten",
        help: "leitet diesen Live-Chat weiter: „weiterleiten <Abteilung>“ oder „weiterleiten @person:server“",
        run: forward,
    },
    Command {
        name: "beenden",
        help: "beendet diesen Live-Chat: „beenden [Code] [Notiz]“ (manche Abteilungen verlangen einen Code)",
        run: close,
    },
    Command { name: "codes", help: "zeigt die Klassifizierungscodes für Live-Chats", run: codes },
];

fn err(e: crate::error::Error) -> HandleError {
    match e {
        crate::error::Error::Database(e) => db_error(e),
        other => HandleError::Transient(other.to_string()),
    }
}

/// The sender, if they are a counsellor.
async fn counsellor(app: &Context, ev: &RoomEvent) -> Result<Option<people::Counsellor>, HandleError> {
    people::counsellor_by_id(&app.db, &ev.sender).await.map_err(db_error)
}

const ONLY_COUNSELLORS: &str = "Das können nur Beratende einer Einrichtung.";
const NOT_LIVE: &str = "Das geht nur in einem Live-Chat.";

fn status<'a>(app: &'a Context, ev: &'a RoomEvent, args: &'a str) -> Reply<'a> {
    Box::pin(async move {
        let is_counsellor = counsellor(app, ev).await?.is_some();
        if args.is_empty() {
            let mut out = general::reachable(ev);
            if is_counsellor {
                let st = app.live.status_of(&ev.sender).await.map_err(err)?;
                let own = app.live.owned(&ev.sender).await.map_err(err)?.len();
                out.push_str(&format!(
                    "\nIhr Status: {}. Sie führen {own} Live-Chat(s). Ändern mit „{PREFIX} status online“, „beschäftigt“, „nicht-online“ oder „nicht-anwählbar“.",
                    st.status.label_de()
                ));
            }
            return Ok(out);
        }
        if !is_counsellor {
            return Ok(ONLY_COUNSELLORS.into());
        }
        let Some(status) = Status::parse(args) else {
            return Ok(format!(
                "Unbekannter Status „{}“. Möglich sind: online, beschäftigt, nicht-online, nicht-anwählbar.",
                args.chars().take(40).collect::<String>()
            ));
        };
        app.live.set_status(&ev.sender, status, None, None, From::Element).await.map_err(err)?;
        Ok(match status {
            Status::Online => "Ihr Status ist jetzt „online“: Ihnen werden Live-Chats angeboten.".into(),
            Status::Busy => "Ihr Status ist jetzt „beschäftigt“: Sie führen Ihre Live-Chats weiter, neue werden Ihnen nicht angeboten.".into(),
            Status::NotOnline => "Ihr Status ist jetzt „nicht online“: Ihnen werden keine Live-Chats angeboten; Ihre offenen Live-Chats gehen nach einer kurzen Frist zurück in die Warteschlange.".into(),
            Status::NotSelectable => "Ihr Status ist jetzt „nicht anwählbar“: Niemand kann Ihnen schreiben; Ihre offenen Live-Chats gehen nach einer kurzen Frist zurück in die Warteschlange.".into(),
        })
    })
}

fn minutes_since(ms: i64) -> i64 {
    ((crate::store::now_ms() - ms).max(0) + 59_999) / 60_000
}

fn queue<'a>(app: &'a Context, ev: &'a RoomEvent, _: &'a str) -> Reply<'a> {
    Box::pin(async move {
        let Some(c) = counsellor(app, ev).await? else { return Ok(ONLY_COUNSELLORS.into()) };
        let waiting = app.live.waiting_for(&ev.sender).await.map_err(err)?;
        if waiting.is_empty() {
            return Ok("Gerade wartet niemand auf einen Live-Chat.".into());
        }
        let departments = institutions::departments(&app.db, &c.institution_id).await.map_err(db_error)?;
        let mut lines = vec![format!("Wartende Live-Chats ({}):", waiting.len())];
        for w in waiting {
            let dept = w
                .department_id
                .as_deref()
                .and_then(|d| departments.iter().find(|x| x.id == d))
                .map_or("allgemein".to_owned(), |d| d.name.clone());
            let offered = if w.offered { ", wird gerade angeboten" } else { "" };
            lines.push(format!(
                "• Live {} – {dept}, Platz {}, wartet seit {} Min.{offered}",
                w.number,
                w.position,
                minutes_since(w.queued_at)
            ));
        }
        lines.push(format!("Übernehmen mit „{PREFIX} übernehmen <Nummer>“."));
        Ok(lines.join("\n"))
    })
}

/// The German answer to a step's result.
fn answer(r: Stepped, ok: impl FnOnce(&LiveChat) -> String) -> String {
    match r {
        Ok(chat) => ok(&chat),
        Err(e) => e.to_string(),
    }
}

fn take<'a>(app: &'a Context, ev: &'a RoomEvent, args: &'a str) -> Reply<'a> {
    Box::pin(async move {
        let Some(c) = counsellor(app, ev).await? else { return Ok(ONLY_COUNSELLORS.into()) };
        let room = if args.is_empty() {
            match app.live.waiting_for(&ev.sender).await.map_err(err)?.into_iter().find(|w| !w.offered) {
                Some(w) => w.room_id,
                None => return Ok("Gerade wartet niemand auf einen Live-Chat.".into()),
            }
        } else {
            let Ok(n) = args.trim_start_matches('#').parse::<i64>() else {
                return Ok(format!(
                    "„{PREFIX} übernehmen <Nummer>“: Die Nummer steht in „{PREFIX} warteschlange“."
                ));
            };
            match store::chat_by_number(&app.db, &c.institution_id, n).await.map_err(db_error)? {
                Some(chat) => chat.room_id,
                None => return Ok(format!("Einen Live-Chat {n} gibt es nicht.")),
            }
        };
        let r = app.live.take(&room, &ev.sender, Via::Command).await.map_err(err)?;
        Ok(answer(r, |chat| {
            format!("Sie haben Live {} übernommen: Der Chat ist jetzt in Ihrer Raumliste.", chat.number)
        }))
    })
}

/// The live chat of the room the command was given in, if it is the sender's to act on.
async fn this_chat(app: &Context, ev: &RoomEvent) -> Result<Option<LiveChat>, HandleError> {
    store::chat(&app.db, &ev.room_id).await.map_err(db_error)
}

fn give_back<'a>(app: &'a Context, ev: &'a RoomEvent, args: &'a str) -> Reply<'a> {
    Box::pin(async move {
        if this_chat(app, ev).await?.is_none() {
            return Ok(NOT_LIVE.into());
        }
        if !matches!(args.to_lowercase().as_str(), "ja" | "bestätigen") {
            return Ok(format!(
                "Wirklich zurück in die Warteschlange? Sie verlassen dann diesen Chat. Bestätigen mit „{PREFIX} zurückgeben ja“."
            ));
        }
        let r = app.live.give_back(&ev.room_id, &ev.sender).await.map_err(err)?;
        Ok(answer(r, |_| String::new()))
    })
}

fn forward<'a>(app: &'a Context, ev: &'a RoomEvent, args: &'a str) -> Reply<'a> {
    Box::pin(async move {
        let Some(chat) = this_chat(app, ev).await? else { return Ok(NOT_LIVE.into()) };
        let target = args.trim();
        if target.is_empty() {
            return Ok(format!(
                "„{PREFIX} weiterleiten <Abteilung>“ oder „{PREFIX} weiterleiten @person:server“."
            ));
        }
        let r = if target.starts_with('@') {
            match people::counsellor_by_id(&app.db, target).await.map_err(db_error)? {
                Some(c) if c.institution_id == chat.institution_id => {
                    app.live.forward_to_counsellor(&ev.room_id, &ev.sender, target).await.map_err(err)?
                }
                _ => return Ok("Diese Person ist keine beratende Person Ihrer Einrichtung.".into()),
            }
        } else {
            let departments =
                institutions::departments(&app.db, &chat.institution_id).await.map_err(db_error)?;
            let wanted = target.to_lowercase();
            let Some(d) = departments.iter().find(|d| d.id == target || d.name.to_lowercase() == wanted)
            else {
                let names: Vec<&str> = departments.iter().map(|d| d.name.as_str()).collect();
                return Ok(format!(
                    "Diese Abteilung gibt es nicht. Abteilungen: {}.",
                    if names.is_empty() { "keine".into() } else { names.join(", ") }
                ));
            };
            app.live.forward_to_department(&ev.room_id, &ev.sender, Some(&d.id)).await.map_err(err)?
        };
        // The sender has left the room: an answer there would not reach them.
        Ok(match r {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        })
    })
}

fn close<'a>(app: &'a Context, ev: &'a RoomEvent, args: &'a str) -> Reply<'a> {
    Box::pin(async move {
        let Some(chat) = this_chat(app, ev).await? else { return Ok(NOT_LIVE.into()) };
        let (first, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        let codes = store::codes(&app.db, &chat.institution_id).await.map_err(db_error)?;
        // The first word is a code if it is one of the institution's; else it is the note.
        let (code, note) = if !first.is_empty() && codes.iter().any(|c| c.code == first) {
            (Some(first), rest.trim())
        } else {
            (None, args.trim())
        };
        let note = (!note.is_empty()).then_some(note);
        if note.is_some_and(|n| n.chars().count() > 2000) {
            return Ok("Die Notiz ist zu lang (höchstens 2000 Zeichen).".into());
        }
        let r = app.live.close(&ev.room_id, &ev.sender, code, note).await.map_err(err)?;
        Ok(match r {
            Ok(chat) => format!("Live {} ist beendet.", chat.number),
            Err(LiveError::CodeRequired) if !codes.is_empty() => {
                let list: Vec<String> = codes.iter().map(|c| format!("{} ({})", c.code, c.label)).collect();
                format!("{} Codes: {}.", LiveError::CodeRequired, list.join(", "))
            }
            Err(e) => e.to_string(),
        })
    })
}

fn codes<'a>(app: &'a Context, ev: &'a RoomEvent, _: &'a str) -> Reply<'a> {
    Box::pin(async move {
        let Some(c) = counsellor(app, ev).await? else { return Ok(ONLY_COUNSELLORS.into()) };
        let codes = store::codes(&app.db, &c.institution_id).await.map_err(db_error)?;
        if codes.is_empty() {
            return Ok("Ihre Einrichtung hat keine Klassifizierungscodes festgelegt.".into());
        }
        let list: Vec<String> = codes.iter().map(|c| format!("• {} – {}", c.code, c.label)).collect();
        Ok(format!("Klassifizierungscodes:\n{}", list.join("\n")))
    })
}
