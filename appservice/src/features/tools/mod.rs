//! The counsellor tools: text snippets (Textbausteine), sending the counsellor's phone
//! number, pushing a link, starting a video chat (`video`). Used from the "Werkzeuge" widget in every chat with clients
//! (`routes`, `widget/werkzeuge.html`) and by bot commands (`commands`), which both end
//! here.
//!
//! What the tools send appears as the counsellor's own message (the service may act for
//! counsellors: their namespace is non-exclusive), once: every send carries a transaction
//! ID derived from the caller's request (or the command's event), so a retried request
//! sends nothing twice. Phone numbers and links carry a card (`de.assisto.card`) that the
//! web embed draws; the embed checks the card again and never trusts it.
//!
//! What decides (scopes, limits, placeholders, normalising numbers, checking links) is
//! pure, in `assisto_core::tools`.

pub mod commands;
pub mod routes;
pub mod store;
pub mod video;

use assisto_core::tools::{self as rules, Reader, SnippetFacts, SnippetScope, Values};
use assisto_core::RoomKind;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::Error;
use crate::features::institutions::store as institutions;
use crate::features::people::store as people;
use crate::features::rooms::checks::Checker;
use crate::features::rooms::members::{self, MembershipState};
use crate::features::rooms::store as rooms;
use crate::matrix::homeserver::{HomeserverClient, HsError, TxnId};
use crate::store::Db;

/// The content key of a card the web embed draws (`{"kind": "phone" | "link", "href"}`).
pub const CARD: &str = "de.assisto.card";

/// State key of the tools widget in chats with clients.
pub const WIDGET_ID: &str = "assisto-werkzeuge";

/// The tools widget's `im.vector.modular.widgets` content (Element puts in the room's ID).
pub fn widget_content(public_url: &str, bot: &str) -> Value {
    json!({
        "type": "m.custom",
        "url": format!(
            "{}/_assisto/widget/werkzeuge?room=$matrix_room_id&widgetId=$matrix_widget_id",
            public_url.trim_end_matches('/')
        ),
        "name": "Werkzeuge",
        "id": WIDGET_ID,
        "creatorUserId": bot,
        "data": { "title": "Werkzeuge" },
    })
}

/// Rooms the tools work in: those with clients.
pub fn has_clients(kind: RoomKind) -> bool {
    matches!(kind, RoomKind::ClientChat | RoomKind::Group | RoomKind::AppointmentGroup | RoomKind::Live)
}

/// The tools' service.
#[derive(Clone)]
pub struct Tools {
    db: Db,
    hs: HomeserverClient,
    checker: Checker,
    bot: String,
}

/// A counsellor using the tools, with what decides what they see.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who they are.
    pub counsellor: people::Counsellor,
    /// Their departments.
    pub departments: Vec<String>,
}

impl Caller {
    fn reader(&self) -> Reader<'_> {
        Reader {
            user_id: &self.counsellor.user_id,
            departments: &self.departments,
            institution_admin: self.counsellor.institution_admin,
        }
    }
}

/// A snippet as a counsellor sees it: with whether they may change it.
#[derive(Debug, Clone, Serialize)]
pub struct SnippetView {
    /// The snippet.
    #[serde(flatten)]
    pub snippet: store::Snippet,
    /// Whether the caller may change and delete it.
    pub may_edit: bool,
}

/// A new or changed snippet, as asked for (unchecked).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnippetRequest {
    /// Name.
    pub name: String,
    /// Text.
    pub text: String,
    /// `own` (default), `department` or `institution`.
    #[serde(default)]
    pub scope: Option<String>,
    /// The department, for department scope.
    #[serde(default)]
    pub department: Option<String>,
}

fn facts(s: &store::Snippet) -> SnippetFacts<'_> {
    SnippetFacts { scope: s.scope(), owner: s.owner.as_deref(), department: s.department_id.as_deref() }
}

impl Tools {
    /// The tools of this service (`bot`: the bot's user ID, which sets the video widget).
    pub fn new(db: Db, hs: HomeserverClient, checker: Checker, bot: String) -> Self {
        Self { db, hs, checker, bot }
    }

    /// The counsellor behind `user_id`; anyone else is refused.
    pub async fn caller(&self, user_id: &str) -> Result<Caller, Error> {
        let counsellor = people::counsellor_by_id(&self.db, user_id)
            .await?
            .ok_or_else(|| Error::forbidden("Die Werkzeuge gibt es nur für Beratende einer Einrichtung."))?;
        let departments = people::departments_of(&self.db, user_id).await?;
        Ok(Caller { counsellor, departments })
    }

    /// The snippets the caller may use, by name; with `query`, those whose name contains it
    /// (case and umlauts as typed: „Begrüßung“ is found by „begr“).
    pub async fn snippets(&self, c: &Caller, query: Option<&str>) -> Result<Vec<SnippetView>, Error> {
        let q = query.map(str::trim).filter(|q| !q.is_empty()).map(str::to_lowercase);
        let r = c.reader();
        Ok(store::of_institution(&self.db, &c.counsellor.institution_id)
            .await?
            .into_iter()
            .filter(|s| rules::may_read_snippet(&r, &facts(s)))
            .filter(|s| q.as_ref().is_none_or(|q| s.name.to_lowercase().contains(q)))
            .map(|s| {
                let may_edit = rules::may_edit_snippet(&r, &facts(&s));
                SnippetView { snippet: s, may_edit }
            })
            .collect())
    }

    /// Checks a requested snippet against the institution (and, without `caller`, for the
    /// admin API: shared scopes only).
    async fn checked<'a>(
        &self,
        institution: &str,
        caller: Option<&Caller>,
        req: &'a SnippetRequest,
    ) -> Result<(SnippetScope, Option<&'a str>, String, String), Error> {
        let name = rules::check_snippet_name(&req.name)?;
        let text = rules::check_snippet_text(&req.text)?;
        let scope = match req.scope.as_deref() {
            None if caller.is_some() => SnippetScope::Own,
            None => SnippetScope::Institution,
            Some(s) => SnippetScope::parse(s)
                .ok_or_else(|| Error::invalid("„scope“ ist „own“, „department“ oder „institution“."))?,
        };
        if scope == SnippetScope::Own && caller.is_none() {
            return Err(Error::invalid(
                "Die Einrichtung legt nur geteilte Textbausteine an (department oder institution).",
            ));
        }
        let department = match (scope, req.department.as_deref()) {
            (SnippetScope::Department, Some(d)) => {
                match institutions::department(&self.db, d).await? {
                    Some((inst, _)) if inst == institution => {}
                    _ => return Err(Error::invalid("Diese Abteilung gibt es in der Einrichtung nicht.")),
                }
                if let Some(c) = caller {
                    if !c.counsellor.institution_admin && !c.departments.iter().any(|m| m == d) {
                        return Err(Error::forbidden(
                            "Sie können Textbausteine nur mit Abteilungen teilen, zu denen Sie gehören.",
                        ));
                    }
                }
                Some(d)
            }
            (SnippetScope::Department, None) => {
                return Err(Error::invalid("Für einen Abteilungs-Textbaustein fehlt „department“."));
            }
            (_, Some(_)) => {
                return Err(Error::invalid("„department“ gibt es nur für Abteilungs-Textbausteine."));
            }
            (_, None) => None,
        };
        Ok((scope, department, name, text))
    }

    /// Adds a snippet: the caller's (any scope), or the institution's (admin API, shared).
    pub async fn create_snippet(
        &self,
        institution: &str,
        caller: Option<&Caller>,
        req: &SnippetRequest,
    ) -> Result<store::Snippet, Error> {
        let (scope, department_id, name, text) = self.checked(institution, caller, req).await?;
        let input = store::SnippetInput { scope, department_id, name: &name, text: &text };
        let owner = caller.map(|c| c.counsellor.user_id.as_str());
        Ok(store::insert(&self.db, institution, owner, &input).await?)
    }

    /// A snippet the caller may change (`None`: the admin API, any of the institution's).
    async fn editable(
        &self,
        id: i64,
        caller: Option<&Caller>,
        institution: &str,
    ) -> Result<store::Snippet, Error> {
        let missing = || Error::not_found("Diesen Textbaustein gibt es nicht.");
        let s = store::get(&self.db, id)
            .await?
            .filter(|s| s.institution_id == institution)
            .ok_or_else(missing)?;
        match caller {
            None if s.scope() == SnippetScope::Own => Err(missing()),
            None => Ok(s),
            Some(c) if !rules::may_read_snippet(&c.reader(), &facts(&s)) => Err(missing()),
            Some(c) if !rules::may_edit_snippet(&c.reader(), &facts(&s)) => Err(Error::forbidden(
                "Diesen Textbaustein können nur die Person, die ihn angelegt hat, und Admins der Einrichtung ändern.",
            )),
            Some(_) => Ok(s),
        }
    }

    /// Changes a snippet.
    pub async fn update_snippet(
        &self,
        institution: &str,
        caller: Option<&Caller>,
        id: i64,
        req: &SnippetRequest,
    ) -> Result<store::Snippet, Error> {
        let old = self.editable(id, caller, institution).await?;
        let (scope, department_id, name, text) = self.checked(institution, caller, req).await?;
        let owner_asks = caller.is_some_and(|c| old.owner.as_deref() == Some(c.counsellor.user_id.as_str()));
        if scope == SnippetScope::Own && !owner_asks {
            return Err(Error::forbidden(
                "Nur wer den Textbaustein angelegt hat, kann ihn zu einem eigenen machen.",
            ));
        }
        let input = store::SnippetInput { scope, department_id, name: &name, text: &text };
        store::update(&self.db, id, &input)
            .await?
            .ok_or_else(|| Error::not_found("Diesen Textbaustein gibt es nicht."))
    }

    /// Deletes a snippet.
    pub async fn delete_snippet(
        &self,
        institution: &str,
        caller: Option<&Caller>,
        id: i64,
    ) -> Result<(), Error> {
        self.editable(id, caller, institution).await?;
        store::delete(&self.db, id).await?;
        Ok(())
    }

    /// The room the caller uses a tool in: a chat with clients of their institution, that
    /// they are in.
    pub async fn room(&self, c: &Caller, room_id: &str) -> Result<rooms::ManagedRoom, Error> {
        let room = rooms::get(&self.db, room_id)
            .await?
            .filter(|r| r.deleted_at.is_none())
            .ok_or_else(|| Error::not_found("Diesen Chat gibt es nicht."))?;
        if room.institution_id != c.counsellor.institution_id {
            return Err(Error::forbidden("Das geht nur in Chats Ihrer Einrichtung."));
        }
        if !has_clients(room.kind) {
            return Err(Error::forbidden("Die Werkzeuge gibt es nur in Chats mit Ratsuchenden."));
        }
        let joined = members::of_room(&self.db, room_id)
            .await?
            .into_iter()
            .any(|(u, m)| u == c.counsellor.user_id && m == MembershipState::Join);
        if !joined {
            return Err(Error::forbidden("Sie sind nicht in diesem Chat."));
        }
        if room.deactivated {
            return Err(Error::forbidden("Dieser Chat ist deaktiviert; hier kann niemand schreiben."));
        }
        Ok(room)
    }

    /// What the placeholders stand for in this room, for this counsellor.
    async fn values(&self, c: &Caller, room: &rooms::ManagedRoom) -> Result<Values, Error> {
        let clients = self.checker.clients_in(&room.room_id).await?;
        let client_name = match clients.as_slice() {
            [one] => people::client_by_id(&self.db, one).await?.map(|c| c.display_name),
            _ => None,
        };
        let institution = institutions::get(&self.db, &room.institution_id).await?.map(|i| i.name);
        Ok(Values { client_name, counsellor_name: Some(c.counsellor.display_name.clone()), institution })
    }

    /// Sends the chosen snippets, filled in and combined, as the caller's message.
    pub async fn send_snippets(
        &self,
        c: &Caller,
        room_id: &str,
        ids: &[i64],
        txn: &TxnId,
    ) -> Result<String, Error> {
        let room = self.room(c, room_id).await?;
        if ids.is_empty() || ids.len() > rules::SNIPPETS_PER_MESSAGE {
            return Err(Error::invalid(format!(
                "Bitte wählen Sie 1 bis {} Textbausteine.",
                rules::SNIPPETS_PER_MESSAGE
            )));
        }
        let values = self.values(c, &room).await?;
        let mut texts = Vec::with_capacity(ids.len());
        for id in ids {
            let s = store::get(&self.db, *id)
                .await?
                .filter(|s| {
                    s.institution_id == c.counsellor.institution_id
                        && rules::may_read_snippet(&c.reader(), &facts(s))
                })
                .ok_or_else(|| Error::not_found(format!("Den Textbaustein {id} gibt es nicht.")))?;
            texts.push(rules::render(&s.text, &values)?);
        }
        let body = rules::combine(&texts)?;
        self.send(c, room_id, txn, &json!({ "msgtype": "m.text", "body": body })).await
    }

    /// Sends the caller's phone number (the stored one, or `number`) as a card.
    pub async fn send_phone(
        &self,
        c: &Caller,
        room_id: &str,
        number: Option<&str>,
        txn: &TxnId,
    ) -> Result<String, Error> {
        let settings = store::settings(&self.db, &c.counsellor.user_id).await?;
        if !settings.allow_phone {
            return Err(Error::forbidden(
                "Telefonnummer senden ist ausgeschaltet. Sie können es in den Werkzeugen unter „Einstellungen“ einschalten (Erlaube Anfrage für Telefonnummer im Chat).",
            ));
        }
        self.room(c, room_id).await?;
        let number = match number.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => n.to_owned(),
            None => settings.phone.ok_or_else(|| {
                Error::invalid("Sie haben keine Telefonnummer hinterlegt; bitte geben Sie eine ein.")
            })?,
        };
        let phone = rules::normalise_phone(&number)?;
        let href = phone.href();
        let n = phone.as_str();
        let content = json!({
            "msgtype": "m.text",
            "body": format!("Telefonnummer: {n}"),
            "format": "org.matrix.custom.html",
            "formatted_body": format!("Telefonnummer: <a href=\"{href}\">{n}</a>"),
            CARD: { "kind": "phone", "href": href },
        });
        self.send(c, room_id, txn, &content).await
    }

    /// Sends a web address as a link card and offers it again later.
    pub async fn send_link(
        &self,
        c: &Caller,
        room_id: &str,
        url: &str,
        txn: &TxnId,
    ) -> Result<String, Error> {
        let link = rules::check_link(url)?;
        self.room(c, room_id).await?;
        let html_url = html_escape(&link.url);
        let content = json!({
            "msgtype": "m.text",
            "body": format!("{} ({})", link.url, link.host),
            "format": "org.matrix.custom.html",
            "formatted_body": format!("<a href=\"{html_url}\">{html_url}</a> ({})", html_escape(&link.host)),
            CARD: { "kind": "link", "href": link.url },
        });
        let event = self.send(c, room_id, txn, &content).await?;
        store::remember_link(&self.db, &c.counsellor.user_id, &link.url).await?;
        Ok(event)
    }

    /// The links the caller pushed lately.
    pub async fn recent_links(&self, c: &Caller) -> Result<Vec<String>, Error> {
        Ok(store::recent_links(&self.db, &c.counsellor.user_id).await?)
    }

    /// The caller's settings.
    pub async fn settings(&self, user_id: &str) -> Result<store::Settings, Error> {
        Ok(store::settings(&self.db, user_id).await?)
    }

    /// Changes a counsellor's settings; the phone number is normalised (an empty one is
    /// removed); `allow_video` stays as it was when not given.
    pub async fn set_settings(
        &self,
        user_id: &str,
        phone: Option<&str>,
        allow_phone: bool,
        allow_video: Option<bool>,
    ) -> Result<store::Settings, Error> {
        let phone = match phone.map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => Some(rules::normalise_phone(p)?.as_str().to_owned()),
            None => None,
        };
        let allow_video = match allow_video {
            Some(v) => v,
            None => store::settings(&self.db, user_id).await?.allow_video,
        };
        let s = store::Settings { phone, allow_phone, allow_video };
        store::set_settings(&self.db, user_id, &s).await?;
        Ok(s)
    }

    /// The bot's user ID.
    fn bot(&self) -> &str {
        &self.bot
    }

    /// Sends `content` into the room as the counsellor, once per `txn`.
    pub(crate) async fn send(
        &self,
        c: &Caller,
        room_id: &str,
        txn: &TxnId,
        content: &Value,
    ) -> Result<String, Error> {
        match self.hs.send_event(room_id, &c.counsellor.user_id, "m.room.message", txn, content).await {
            Ok(sent) => {
                tracing::info!(room_id, "tool message sent as the counsellor");
                Ok(sent.event_id)
            }
            Err(e @ HsError::Matrix { .. }) if !e.is_transient() => {
                tracing::info!(room_id, errcode = ?e.errcode(), "the homeserver refused a tool message");
                Err(Error::forbidden("Die Nachricht kann in diesem Chat gerade nicht gesendet werden."))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Redacts a counsellor's own event (the bot command that triggered a tool).
    pub async fn redact_own(&self, user_id: &str, room_id: &str, event_id: &str) -> Result<(), Error> {
        let txn = TxnId::derived(event_id, "tool-command-redaction");
        match self.hs.redact(room_id, user_id, event_id, &txn).await {
            Ok(()) => Ok(()),
            Err(e) if !e.is_transient() => {
                tracing::info!(room_id, errcode = ?e.errcode(), "could not redact a tool command");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Escapes text for `formatted_body`.
pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A transaction ID for a widget's request: the same request ID of the same counsellor is
/// the same send.
pub fn request_txn(user_id: &str, request_id: &str, purpose: &str) -> Result<TxnId, Error> {
    let ok = (1..=64).contains(&request_id.len())
        && request_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c));
    if !ok {
        return Err(Error::invalid("„txn_id“ hat 1 bis 64 Zeichen aus A–Z, a–z, 0–9 und -_.~."));
    }
    Ok(TxnId::derived(&format!("{user_id}\u{0}{request_id}"), purpose))
}
