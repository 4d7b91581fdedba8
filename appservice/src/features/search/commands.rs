//! `!assisto suche [live|ratsuchende|kollegen|gruppen] Wörter`: the keyboard path to search.
//!
//! Answered only in the counsellor's direct chat with the bot (nobody else joined): the
//! hits are the counsellor's own, and in a shared room others would read them.

use assisto_core::Category;

use crate::error::Error;
use crate::features::rooms::members::{self, MembershipState};
use crate::matrix::commands::kit::{Command, Context, Reply, PREFIX};
use crate::matrix::event::RoomEvent;
use crate::matrix::processor::{db_error, HandleError};

pub(crate) static COMMANDS: [Command; 1] = [Command {
    name: "suche",
    help: "durchsucht Ihre Chats (nur im Chat mit assisto): „suche Beratung“, „suche gruppen Mut“; Kategorien: live, ratsuchende, kollegen, gruppen",
    run: search,
}];

/// Hits listed in the answer.
const SHOWN: usize = 10;

/// A leading category word, if more words follow it.
fn category(args: &str) -> (Option<Category>, &str) {
    let args = args.trim();
    let Some((first, rest)) = args.split_once(char::is_whitespace) else { return (None, args) };
    let c = match first.to_lowercase().trim_end_matches(':') {
        "live" | "livechat" | "live-chat" => Category::Live,
        "ratsuchende" | "klienten" | "klient:innen" | "klientinnen" => Category::Clients,
        "kollegen" | "kolleg:innen" | "kolleginnen" | "kollegium" => Category::Colleagues,
        "gruppen" | "gruppenchats" | "gruppe" => Category::Groups,
        _ => return (None, args),
    };
    (Some(c), rest.trim())
}

fn search<'a>(app: &'a Context, ev: &'a RoomEvent, args: &'a str) -> Reply<'a> {
    Box::pin(async move {
        let Some(search) = &app.search else {
            return Ok("Die Suche ist auf diesem Server nicht eingerichtet.".into());
        };
        let joined = members::of_room(&app.db, &ev.room_id)
            .await
            .map_err(db_error)?
            .into_iter()
            .filter(|(u, m)| *m == MembershipState::Join && *u != app.bot_user_id && *u != ev.sender)
            .count();
        if joined > 0 {
            return Ok(format!(
                "Suchen Sie bitte im Chat, in dem nur Sie und assisto sind: dort sieht niemand sonst die Treffer („{PREFIX} suche …“)."
            ));
        }
        let (cat, words) = category(args);
        let found = match search.search(&ev.sender, words, cat, SHOWN).await {
            Ok(f) => f,
            Err(Error::Domain(e)) => return Ok(e.to_string()),
            Err(Error::Database(e)) => return Err(db_error(e)),
            Err(e) => return Err(HandleError::Transient(e.to_string())),
        };
        let mut out = Vec::new();
        for p in &found.people {
            let what = if p.kind == "client" { "Ratsuchende:r" } else { "Kolleg:in" };
            out.push(format!("• {what} {} — {}", p.name, p.link));
        }
        for g in &found.groups {
            out.push(format!("• Gruppe {} — {}", g.name, g.link));
        }
        for m in &found.messages {
            out.push(format!("• {} · {} · {}: {} — {}", m.time, m.room, m.sender, m.snippet, m.link));
        }
        if out.is_empty() {
            return Ok(format!("Nichts gefunden für „{}“.", words.trim()));
        }
        Ok(format!("Treffer für „{}“:\n{}", words.trim(), out.join("\n")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_category_word_needs_more_words() {
        assert_eq!(category("gruppen Mut"), (Some(Category::Groups), "Mut"));
        assert_eq!(category("Ratsuchende: Maria"), (Some(Category::Clients), "Maria"));
        assert_eq!(category("live"), (None, "live"));
        assert_eq!(category("Beratung Schulden"), (None, "Beratung Schulden"));
    }
}
