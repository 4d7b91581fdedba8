//! The live-chat desk: departments' queues of anonymous visitors, taking over (exactly one
//! counsellor wins), returning, forwarding, closing, and counsellors' status.
//!
//! The state machine is the core's ([`assisto_core::live`]); this service keeps one row per
//! chat (`store.rs`) and applies each step as one compare-and-set on the row's version, so
//! that of any number of counsellors taking a chat at the same moment — by joining it from
//! the Live space, by command, by accepting an offer — exactly one succeeds. The Synapse
//! module asks before every join of a live chat ([`LiveDesk::gate_join`]): the loser's join
//! is refused before Synapse applies it, so they never read the chat. Who may take a chat
//! (department, status, limit) is the core's [`assisto_core::live::may_take`].
//!
//! Around a step: the visitor is told in plain German (a notice in the room, which the
//! embed shows), the previous owner leaves the room on a return or forward (so they read
//! nothing further), the queue's positions are pushed to the waiting visitors' pages
//! through the live bus, and the desk's log gets a line (IDs and times only).
//!
//! Files: `store.rs` (the tables), `status.rs` (status, presence, who is available),
//! `queue.rs` (positions, the counsellors' view, the tick: offers that lapse, automatic
//! routing, owners gone), `commands.rs` (bot commands).

pub mod commands;
pub mod desk;
pub mod desk_routes;
pub mod queue;
pub mod routes;
pub mod status;
pub mod store;

use std::sync::Arc;

use assisto_core::ids::{Ids, UserClass};
use assisto_core::live::{self, ChatState, LiveError, Step, Taker};

use crate::app::config::LiveConfig;
use crate::bus::{Change, LiveBus};
use crate::error::Error;
use crate::features::deletion::store as deletions;
use crate::features::embed::store as embed;
use crate::features::live::store::{Extra, LiveChat};
use crate::features::people::store as people;
use crate::matrix::homeserver::{HomeserverClient, HsError, TxnId};
use crate::store::audit;
use crate::store::now_ms;
use crate::store::Db;

/// How often a step is tried again when another writer changed the row in between (each
/// retry re-reads it; a take that lost sees the winner and is refused).
const CAS_ATTEMPTS: usize = 8;

/// What a visitor is told when the counsellor they chose cannot take their chat.
const CHOSEN_NOT_FREE: &str =
    "Die gewählte beratende Person ist gerade nicht frei. Dein Chat wartet jetzt auf die nächste freie beratende Person.";

/// How many desk changes an open widget may fall behind before it just reads its desk
/// again.
const DESK_CHANGES: usize = 256;

/// Through which door a counsellor takes a chat (for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Joining the room (from the Live space, or accepting an offer's invite).
    Join,
    /// A bot command.
    Command,
    /// The admin API (the institution's dashboard).
    Api,
    /// The live-chat widget in Element.
    Widget,
}

/// Whether a visitor's page is open (the web embed knows: a WebSocket or long poll
/// watching the conversation).
pub trait Watching: Send + Sync {
    /// Whether anybody watches the conversation now.
    fn watched(&self, room_id: &str) -> bool;
}

/// The desk.
#[derive(Clone)]
pub struct LiveDesk {
    db: Db,
    hs: HomeserverClient,
    ids: Ids,
    bus: Arc<dyn LiveBus>,
    config: LiveConfig,
    /// The time zone of opening hours (`bot.timezone`).
    tz: chrono_tz::Tz,
    /// Who knows whether visitors' pages are open (set once the embed exists).
    watching: Arc<std::sync::OnceLock<Arc<dyn Watching>>>,
    /// Since when queued chats have had no open page (ms), as seen by the desk's tick.
    unwatched: Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
    /// Whether each department with opening hours was open at the last tick.
    was_open: Arc<std::sync::Mutex<std::collections::HashMap<String, bool>>>,
    /// Institutions whose desks changed, for open desk widgets (fed by the live bus).
    desk_tx: tokio::sync::broadcast::Sender<String>,
    /// What queued chats' visitors wrote last, for the desks.
    snippets: Arc<desk::Snippets>,
    /// Per institution, what waiting visitors' places are computed from, shared by all of
    /// them after each change (`queue.rs`).
    snapshots: Arc<crate::shared::Shared<Arc<queue::QueueSnapshot>>>,
    /// Per institution, the team as clients see it (`status.rs`), shared the same way:
    /// every page's configuration and every chosen counsellor read it.
    teams: Arc<crate::shared::Shared<Arc<Vec<status::TeamEntry>>>>,
}

/// A step's result: the chat after it, or the refusal.
pub type Stepped = Result<LiveChat, LiveError>;

impl LiveDesk {
    /// The desk over the service's database and homeserver, publishing to `bus`.
    pub fn new(
        db: Db,
        hs: HomeserverClient,
        ids: Ids,
        bus: Arc<dyn LiveBus>,
        config: LiveConfig,
        tz: chrono_tz::Tz,
    ) -> Self {
        Self {
            db,
            hs,
            ids,
            bus,
            config,
            tz,
            watching: Arc::default(),
            unwatched: Arc::default(),
            was_open: Arc::default(),
            desk_tx: tokio::sync::broadcast::channel(DESK_CHANGES).0,
            snippets: Arc::default(),
            snapshots: Arc::new(crate::shared::Shared::new(queue::SNAPSHOT_MAX_AGE)),
            teams: Arc::new(crate::shared::Shared::new(queue::SNAPSHOT_MAX_AGE)),
        }
    }

    /// Lets the desk ask whether visitors' pages are open (queued visitors who left are
    /// taken out of the queue after `live.abandon_after_secs`).
    pub fn set_watching(&self, w: Arc<dyn Watching>) {
        let _ = self.watching.set(w);
    }

    /// The bot's user ID.
    fn bot(&self) -> &str {
        self.ids.bot()
    }

    /// A visitor's new live chat enters its department's queue; where the visitor chose a
    /// counsellor, it is offered to them first (see [`LiveDesk::offer_chosen`]).
    pub async fn open_chat(
        &self,
        room_id: &str,
        institution: &str,
        department: Option<&str>,
        client: &str,
        chosen: Option<&str>,
    ) -> Result<(), Error> {
        let number = store::next_number(&self.db, institution).await?;
        if store::insert_chat(&self.db, room_id, institution, department, number, client, now_ms()).await? {
            self.queue_moved(institution);
            if let Some(chat) = store::chat(&self.db, room_id).await? {
                store::log(&self.db, &chat, "queued", None).await?;
                if let Some(to) = chosen {
                    self.offer_chosen(&chat, to).await?;
                }
            }
            self.route(institution).await?;
            self.publish(Change::Conversation(room_id.to_owned())).await;
            self.publish(Change::Desk(institution.to_owned())).await;
        }
        Ok(())
    }

    /// The visitor chose a counsellor: the chat is offered to them (an invite) if they can
    /// take it now and are not "only selectable by regular clients" (a new visitor is
    /// nobody's regular client); otherwise, or when the offer lapses, it waits for the next
    /// free counsellor, and the visitor is told so.
    async fn offer_chosen(&self, chat: &LiveChat, to: &str) -> Result<(), Error> {
        let free = self
            .team(&chat.institution_id)
            .await?
            .iter()
            .any(|m| m.counsellor.user_id == to && m.can_take && !m.only_regular);
        let offered = if free {
            let step = Step::Offer { to: to.to_owned(), at_ms: now_ms() };
            self.apply(&chat.room_id, Guard::None, step, &Extra::default()).await?.ok()
        } else {
            None
        };
        match offered {
            Some(after) => {
                store::log(&self.db, &after, "chosen", Some(to)).await?;
                self.hs.invite(&after.room_id, self.bot(), to).await.or_else(ignore_refusal)?;
            }
            None => self.tell_visitor(chat, "chosen-busy", CHOSEN_NOT_FREE).await?,
        }
        Ok(())
    }

    /// Applies `step` to a room's chat by compare-and-set, re-reading the row when another
    /// writer came first. `check` may refuse on the current row (who may, which code).
    async fn apply(
        &self,
        room_id: &str,
        guard: Guard<'_>,
        s: Step,
        extra: &Extra<'_>,
    ) -> Result<Stepped, Error> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(current) = store::chat(&self.db, room_id).await? else {
                return Ok(Err(LiveError::Closed));
            };
            let next = match live::step(&current.chat, &s) {
                Ok(n) => n,
                Err(e) => return Ok(Err(e)),
            };
            let allowed = match guard {
                Guard::None => Ok(None),
                Guard::Take(by) => self.taker(by, &current).await?.map(Some),
                Guard::Close(code) => self.code_ok(&current, code).await?.map(|()| None),
            };
            let owner_limit = match allowed {
                Ok(limit) => limit,
                Err(e) => return Ok(Err(e)),
            };
            // A take writes only while the taker is still below their limit: a take of
            // another chat in between makes this one retry, and the retry sees it.
            if store::compare_and_set(&self.db, &current, &next, extra, owner_limit).await? {
                self.queue_moved(&current.institution_id);
                let after = store::chat(&self.db, room_id)
                    .await?
                    .ok_or_else(|| Error::not_found("live chat vanished"))?;
                return Ok(Ok(after));
            }
        }
        Err(Error::conflict("the live chat changed too often at once; try again"))
    }

    /// Whether `user` may take chats of `chat`'s department now; if so, the most chats they
    /// may own.
    async fn taker(&self, user: &str, chat: &LiveChat) -> Result<Result<u32, LiveError>, Error> {
        let in_institution = people::counsellor_by_id(&self.db, user)
            .await?
            .is_some_and(|c| c.institution_id == chat.institution_id);
        // An offer (a colleague forwarding the chat to them by name) is permission enough.
        let offered = matches!(&chat.chat.state, ChatState::Offered { to, .. } if to == user);
        let in_department = in_institution
            && (offered
                || match &chat.chat.department {
                    None => true,
                    Some(d) => people::departments_of(&self.db, user).await?.contains(d),
                });
        let st = store::status(&self.db, user).await?;
        let settings = store::department_settings(&self.db, chat.chat.department.as_deref()).await?;
        let open = store::owned_by(&self.db, user).await?.len() as u32;
        let max_chats = st.max_chats.unwrap_or(settings.max_chats);
        Ok(live::may_take(&Taker { in_department, status: st.status, open_chats: open, max_chats })
            .map(|()| max_chats))
    }

    /// Whether `code` is acceptable for closing `chat`.
    async fn code_ok(&self, chat: &LiveChat, code: Option<&str>) -> Result<Result<(), LiveError>, Error> {
        let settings = store::department_settings(&self.db, chat.chat.department.as_deref()).await?;
        let codes = store::codes(&self.db, &chat.institution_id).await?;
        let known: Vec<&str> = codes.iter().map(|c| c.code.as_str()).collect();
        Ok(live::may_close(code, settings.code_required, &known))
    }

    /// A counsellor takes a chat. Exactly one of any number taking it at once succeeds.
    pub async fn take(&self, room_id: &str, by: &str, via: Via) -> Result<Stepped, Error> {
        let taken =
            self.apply(room_id, Guard::Take(by), Step::Take { by: by.to_owned() }, &Extra::default()).await?;
        let Ok(chat) = &taken else { return Ok(taken) };
        store::log(&self.db, chat, "taken", Some(by)).await?;
        audit::record(&self.db, by, "live.take", room_id, Some(via_name(via))).await?;
        tracing::info!(room_id, via = via_name(via), "live chat taken");
        if via != Via::Join {
            // Taken by command or API: the counsellor joins now (the module lets the owner in).
            match self.hs.join_room(room_id, by).await {
                Ok(_) => {}
                Err(e) if !e.is_transient() => {
                    // Not joinable as them (e.g. not in the Live space): an invite reaches them.
                    tracing::info!(room_id, errcode = ?e.errcode(), "joining the owner failed; inviting");
                    self.hs.invite(room_id, self.bot(), by).await.or_else(ignore_refusal)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if via == Via::Join {
            // The module is waiting for the verdict (and Synapse, with the join): tell the
            // visitor and move the queue after answering.
            let (desk, chat) = (self.clone(), chat.clone());
            tokio::spawn(async move {
                if let Err(e) = desk.after_take(&chat).await {
                    tracing::warn!(error = %e, "live chat taken; telling the visitor failed");
                }
            });
        } else {
            self.after_take(chat).await?;
        }
        Ok(taken)
    }

    /// What follows a take: the visitor is told, the queue moves.
    async fn after_take(&self, chat: &LiveChat) -> Result<(), Error> {
        let told = "Eine beratende Person hat deinen Chat übernommen und ist jetzt für dich da.";
        self.tell_visitor(chat, "taken", told).await?;
        self.queue_changed(&chat.institution_id).await
    }

    /// The Synapse module asks whether `user` may join `room_id` (`invited`: they hold an
    /// invite now). `None` if the room is no live chat or `user` is not a counsellor (the
    /// rules decide); otherwise the verdict: the owner and colleagues the owner invited come
    /// in, a counsellor joining a queued chat takes it (or is refused), nobody joins a
    /// chat someone else owns or a closed one.
    pub async fn gate_join(
        &self,
        room_id: &str,
        user: &str,
        invited: bool,
    ) -> Result<Option<Result<(), LiveError>>, Error> {
        if !matches!(self.ids.classify(user), UserClass::Local) {
            return Ok(None);
        }
        let Some(chat) = store::chat(&self.db, room_id).await? else { return Ok(None) };
        Ok(Some(match &chat.chat.state {
            ChatState::Taken { owner } if owner == user => Ok(()),
            ChatState::Taken { .. } if invited => Ok(()),
            ChatState::Taken { .. } => Err(LiveError::Taken),
            ChatState::Closed { .. } => Err(LiveError::Closed),
            ChatState::Waiting | ChatState::Offered { .. } => {
                self.take(room_id, user, Via::Join).await.map(|r| r.map(|_| ()))?
            }
        }))
    }

    /// The Synapse module asks whether `inviter` may invite the counsellor `invitee` into a
    /// live chat: only its owner may (a consultation or conference), and the bot (offers).
    pub async fn gate_invite(
        &self,
        room_id: &str,
        inviter: &str,
        invitee: &str,
    ) -> Result<Option<Result<(), LiveError>>, Error> {
        if inviter == self.bot() || !matches!(self.ids.classify(invitee), UserClass::Local) {
            return Ok(None);
        }
        let Some(chat) = store::chat(&self.db, room_id).await? else { return Ok(None) };
        Ok(Some(match &chat.chat.state {
            ChatState::Taken { owner } if owner == inviter => Ok(()),
            ChatState::Taken { .. } => Err(LiveError::NotOwner),
            ChatState::Closed { .. } => Err(LiveError::Closed),
            _ => Err(LiveError::NotTaken),
        }))
    }

    /// The owner gives the chat back to the queue.
    pub async fn give_back(&self, room_id: &str, by: &str) -> Result<Stepped, Error> {
        let r =
            self.apply(room_id, Guard::None, Step::Return { by: by.to_owned() }, &Extra::default()).await?;
        if let Ok(chat) = &r {
            self.after_owner_change(
                chat,
                by,
                "returned",
                "Du bist wieder in der Warteschlange. Gleich ist jemand für dich da.",
            )
            .await?;
        }
        Ok(r)
    }

    /// The owner forwards the chat to another department (`None`: the general queue). It
    /// waits there, whether or not anyone of the department is online.
    pub async fn forward_to_department(
        &self,
        room_id: &str,
        by: &str,
        department: Option<&str>,
    ) -> Result<Stepped, Error> {
        let step = Step::ToDepartment { by: by.to_owned(), department: department.map(str::to_owned) };
        self.forward(room_id, by, step, None).await
    }

    /// The owner forwards the chat to a named counsellor: it is offered to them (an
    /// invite); if they do not accept within the department's offer time it waits in the
    /// queue.
    pub async fn forward_to_counsellor(&self, room_id: &str, by: &str, to: &str) -> Result<Stepped, Error> {
        let step = Step::ToCounsellor { by: by.to_owned(), to: to.to_owned(), at_ms: now_ms() };
        self.forward(room_id, by, step, Some(to)).await
    }

    /// A forward: the step, the previous owner out, the visitor told, the invite of a named
    /// counsellor.
    async fn forward(
        &self,
        room_id: &str,
        by: &str,
        step: Step,
        invite: Option<&str>,
    ) -> Result<Stepped, Error> {
        let r = self.apply(room_id, Guard::None, step, &Extra::default()).await?;
        if let Ok(chat) = &r {
            let told = "Dein Chat wurde weitergegeben. Gleich ist jemand für dich da.";
            self.after_owner_change(chat, by, "forwarded", told).await?;
            if let Some(to) = invite {
                self.hs.invite(room_id, self.bot(), to).await.or_else(ignore_refusal)?;
            }
        }
        Ok(r)
    }

    /// The owner closes the chat, with a classification code (required where the
    /// department says so) and a note.
    pub async fn close(
        &self,
        room_id: &str,
        by: &str,
        code: Option<&str>,
        note: Option<&str>,
    ) -> Result<Stepped, Error> {
        let extra = Extra { code, note };
        let r = self.apply(room_id, Guard::Close(code), Step::Close { by: by.to_owned() }, &extra).await?;
        if let Ok(chat) = &r {
            store::log(&self.db, chat, "closed", Some(by)).await?;
            audit::record(&self.db, by, "live.close", room_id, code).await?;
            self.tell_visitor(chat, "closed", "Die beratende Person hat den Chat beendet. Du kannst den Verlauf noch lesen und herunterladen.")
                .await?;
            self.closed(chat).await?;
        }
        Ok(r)
    }

    /// The visitor ended the chat (or left the queue): it is over.
    pub async fn visitor_left(&self, room_id: &str) -> Result<Stepped, Error> {
        let r = self.apply(room_id, Guard::None, Step::VisitorLeft, &Extra::default()).await?;
        if let Ok(chat) = &r {
            let what = if matches!(chat.chat.state, ChatState::Closed { abandoned: true }) {
                "abandoned"
            } else {
                "closed"
            };
            store::log(&self.db, chat, what, None).await?;
            self.closed(chat).await?;
            self.queue_changed(&chat.institution_id).await?;
        }
        Ok(r)
    }

    /// The owner left the room (Element's "leave"): the chat goes back to the queue rather
    /// than being lost.
    pub async fn owner_left(&self, room_id: &str, user: &str) -> Result<(), Error> {
        let Some(chat) = store::chat(&self.db, room_id).await? else { return Ok(()) };
        if matches!(&chat.chat.state, ChatState::Taken { owner } if owner == user) {
            let _ = self.give_back(room_id, user).await?;
        }
        Ok(())
    }

    /// What follows a return or forward: the previous owner leaves the room (they read
    /// nothing further), the visitor is told, the queue moves.
    async fn after_owner_change(
        &self,
        chat: &LiveChat,
        by: &str,
        what: &str,
        notice: &str,
    ) -> Result<(), Error> {
        store::log(&self.db, chat, what, Some(by)).await?;
        audit::record(&self.db, by, &format!("live.{what}"), &chat.room_id, None).await?;
        match self
            .hs
            .kick(&chat.room_id, self.bot(), by, "Der Live-Chat ist zurück in der Warteschlange.")
            .await
        {
            Ok(()) => {}
            Err(e) if !e.is_transient() => {} // already out
            Err(e) => return Err(e.into()),
        }
        self.tell_visitor(chat, what, notice).await?;
        self.route(&chat.institution_id).await?;
        self.queue_changed(&chat.institution_id).await
    }

    /// A chat is over: the visitor's conversation ends (they keep reading and can download
    /// it), and the institution's live-chat retention starts.
    async fn closed(&self, chat: &LiveChat) -> Result<(), Error> {
        embed::end_conversation(&self.db, &chat.room_id).await?;
        let retention = deletions::periods(&self.db, &chat.institution_id)
            .await?
            .map(|(_, live)| live)
            .unwrap_or(30 * 86_400);
        let due = now_ms() + retention.max(0) * 1000;
        if deletions::mark(&self.db, &chat.client, &chat.institution_id, "live", due).await? {
            audit::record(&self.db, "live", "client.delete_scheduled", &chat.client, None).await?;
        }
        self.publish(Change::Conversation(chat.room_id.clone())).await;
        self.publish(Change::Desk(chat.institution_id.clone())).await;
        Ok(())
    }

    /// A notice to the visitor (and whoever is in the room), sent once per step.
    async fn tell_visitor(&self, chat: &LiveChat, what: &str, text: &str) -> Result<(), Error> {
        let txn = TxnId::derived(&format!("{}/{}", chat.room_id, chat.version), &format!("live-{what}"));
        match self.hs.send_notice(&chat.room_id, self.bot(), &txn, text).await {
            Ok(_) => Ok(()),
            Err(e) if !e.is_transient() => {
                tracing::info!(room_id = %chat.room_id, errcode = ?e.errcode(), "live notice not sent");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Publishes a change; a lost change only delays open pages until their next read.
    async fn publish(&self, change: Change) {
        if let Err(e) = self.bus.publish(change).await {
            tracing::warn!(error = %e, "live change not published");
        }
    }
}

fn via_name(via: Via) -> &'static str {
    match via {
        Via::Join => "join",
        Via::Command => "command",
        Via::Api => "api",
        Via::Widget => "widget",
    }
}

fn ignore_refusal(e: HsError) -> Result<(), HsError> {
    if e.is_transient() {
        Err(e)
    } else {
        Ok(())
    }
}

/// What is checked on the current row before a step is written (beyond the state
/// machine's own rules).
#[derive(Clone, Copy)]
enum Guard<'a> {
    /// Nothing more.
    None,
    /// The counsellor may take chats of this department now.
    Take(&'a str),
    /// The classification code suits the department.
    Close(Option<&'a str>),
}
