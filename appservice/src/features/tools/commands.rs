//! The tools' bot commands, the keyboard path beside the widget: `baustein` sends text
//! snippets as the counsellor's message, `bausteine` lists them, `telefon` sends the phone
//! number, `link` pushes a web address, `video` starts a video chat. A command that sent something is redacted, so the
//! chat shows the counsellor's message once and nothing else; a refused one is answered.

use crate::error::Error;
use crate::features::tools::{store::Snippet, Caller, SnippetView};
use crate::matrix::commands::kit::{Command, Context, Reply, PREFIX};
use crate::matrix::event::RoomEvent;
use crate::matrix::homeserver::TxnId;
use crate::matrix::processor::{db_error, HandleError};

pub(crate) static COMMANDS: [Command; 5] = [
    Command {
        name: "baustein",
        help: "sendet Textbausteine als Ihre Nachricht: „baustein Begrüßung“, mehrere mit „;“ getrennt („baustein Begrüßung; Termine“)",
        run: snippet,
    },
    Command {
        name: "bausteine",
        help: "zeigt Ihre Textbausteine: „bausteine“ alle, „bausteine begr“ die, deren Name so anfängt oder das enthält",
        run: list,
    },
    Command {
        name: "telefon",
        help: "sendet Ihre hinterlegte Telefonnummer als Karte, oder eine andere: „telefon 0221 123456“",
        run: phone,
    },
    Command { name: "link", help: "sendet eine Webadresse als Link-Karte: „link https://www.beispiel.de“", run: link },
    Command {
        name: "video",
        help: "startet einen Videochat: er erscheint oben im Chat, die ratsuchende Person bekommt einen Link",
        run: video,
    },
];

/// A refusal becomes the bot's answer; failures of the homeserver or database are retried.
fn answer(r: Result<String, Error>) -> Result<String, HandleError> {
    match r {
        Ok(s) => Ok(s),
        Err(Error::Domain(e)) => Ok(e.to_string()),
        Err(Error::Database(e)) => Err(db_error(e)),
        Err(e) => Err(HandleError::Transient(e.to_string())),
    }
}

/// Sent: the command goes, nothing is answered.
async fn sent(app: &Context, ev: &RoomEvent) -> Result<String, Error> {
    app.tools.redact_own(&ev.sender, &ev.room_id, &ev.event_id).await?;
    Ok(String::new())
}

/// The snippet named `name` among `all`: the one with exactly that name (ignoring case),
/// else the only one whose name starts with it.
fn find<'a>(all: &'a [SnippetView], name: &str) -> Result<&'a Snippet, Error> {
    let n = name.trim().to_lowercase();
    if let Some(v) = all.iter().find(|v| v.snippet.name.to_lowercase() == n) {
        return Ok(&v.snippet);
    }
    let starts: Vec<&SnippetView> =
        all.iter().filter(|v| v.snippet.name.to_lowercase().starts_with(&n)).collect();
    match starts.as_slice() {
        [one] => Ok(&one.snippet),
        [] => Err(Error::not_found(format!(
            "Einen Textbaustein „{}“ gibt es nicht. „{PREFIX} bausteine“ zeigt alle.",
            name.trim().chars().take(80).collect::<String>()
        ))),
        many => Err(Error::invalid(format!(
            "„{}“ passt zu mehreren Textbausteinen: {}. Bitte genauer.",
            name.trim().chars().take(80).collect::<String>(),
            many.iter().take(5).map(|v| format!("„{}“", v.snippet.name)).collect::<Vec<_>>().join(", ")
        ))),
    }
}

async fn caller(app: &Context, ev: &RoomEvent) -> Result<Caller, Error> {
    app.tools.caller(&ev.sender).await
}

fn snippet<'a>(app: &'a Context, ev: &'a RoomEvent, args: &'a str) -> Reply<'a> {
    Box::pin(tool(app, ev, "tools-snippets", move |c, txn| async move {
        if args.trim().is_empty() {
            return Err(Error::invalid(format!(
                "Welcher Textbaustein? Zum Beispiel „{PREFIX} baustein Begrüßung“; „{PREFIX} bausteine“ zeigt alle."
            )));
        }
        let all = app.tools.snippets(&c, None).await?;
        let mut ids = Vec::new();
        for name in args.split(';').filter(|n| !n.trim().is_empty()) {
            ids.push(find(&all, name)?.id);
        }
        app.tools.send_snippets(&c, &ev.room_id, &ids, &txn).await.map(|_| ())
    }))
}

fn list<'a>(app: &'a Context, ev: &'a RoomEvent, args: &'a str) -> Reply<'a> {
    Box::pin(async move {
        answer(
            async {
                let c = caller(app, ev).await?;
                let all = app.tools.snippets(&c, Some(args)).await?;
                if all.is_empty() {
                    return Ok(if args.trim().is_empty() {
                        "Sie haben noch keine Textbausteine. Anlegen können Sie sie im Widget „Werkzeuge“."
                            .into()
                    } else {
                        "Kein Textbaustein passt.".into()
                    });
                }
                let lines: Vec<String> = all
                    .iter()
                    .map(|v| format!("• {} ({})", v.snippet.name, v.snippet.scope().label_de()))
                    .collect();
                Ok(format!(
                    "Ihre Textbausteine:\n{}\nSenden mit „{PREFIX} baustein <Name>“.",
                    lines.join("\n")
                ))
            }
            .await,
        )
    })
}

/// Runs a tool for the command's sender (with a transaction ID derived from the command),
/// then redacts the command; a refusal is the bot's answer.
async fn tool<'a, Fut>(
    app: &'a Context,
    ev: &'a RoomEvent,
    purpose: &str,
    run: impl FnOnce(Caller, TxnId) -> Fut,
) -> Result<String, HandleError>
where
    Fut: std::future::Future<Output = Result<(), Error>> + 'a,
{
    answer(
        async {
            let c = caller(app, ev).await?;
            run(c, TxnId::derived(&ev.event_id, purpose)).await?;
            sent(app, ev).await
        }
        .await,
    )
}

fn phone<'a>(app: &'a Context, ev: &'a RoomEvent, args: &'a str) -> Reply<'a> {
    let number = Some(args).filter(|a| !a.trim().is_empty());
    Box::pin(tool(app, ev, "tools-phone", move |c, txn| async move {
        app.tools.send_phone(&c, &ev.room_id, number, &txn).await.map(|_| ())
    }))
}

fn link<'a>(app: &'a Context, ev: &'a RoomEvent, args: &'a str) -> Reply<'a> {
    Box::pin(tool(app, ev, "tools-link", move |c, txn| async move {
        app.tools.send_link(&c, &ev.room_id, args, &txn).await.map(|_| ())
    }))
}

fn video<'a>(app: &'a Context, ev: &'a RoomEvent, _: &'a str) -> Reply<'a> {
    Box::pin(tool(app, ev, "tools-video", move |c, txn| async move {
        app.tools.start_video(&c, &ev.room_id, &txn).await.map(|_| ())
    }))
}
