//! The queue as its people see it — the visitor's place and estimated wait, the
//! counsellors' list of waiting chats — and the desk's tick: offers that lapse, automatic
//! routing, and the chats of counsellors who are gone.

use assisto_core::live::{self, ChatState, Presence, Status, Step};
use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::bus::Change;
use crate::error::Error;
use crate::features::live::store::{self, Extra, LiveChat, Routing};
use crate::features::live::{Guard, LiveDesk};
use crate::features::people::store as people;
use crate::store::now_ms;

/// How long after a take the owner must be in the room (else the chat goes back).
const NEVER_JOINED_MS: i64 = 60_000;

/// How long a counsellor's opening the preview of a queued chat tells its visitor that
/// someone is coming.
const PREVIEW_COUNTS_MS: i64 = 120_000;

/// How many recent waits the estimate averages.
const RECENT_WAITS: i64 = 20;

/// A visitor's place in the queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Place {
    /// 1 = next.
    pub position: u32,
    /// Estimated wait in seconds, when there is anything to estimate it from.
    pub estimated_wait_secs: Option<u32>,
    /// A counsellor has been offered the chat: someone is coming.
    pub someone_coming: bool,
}

/// What places in an institution's queue are computed from (see `LiveDesk::snapshot`).
pub(super) struct QueueSnapshot {
    queued: Vec<LiveChat>,
    /// Per department among the queued chats: how many can take a chat, recent waits.
    departments: HashMap<Option<String>, (u32, Vec<u32>)>,
}

/// How long a queue snapshot serves without a change (a safety net: every change to the
/// queue forgets it).
pub(super) const SNAPSHOT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(2);

/// A queued chat as counsellors see it in their list.
#[derive(Clone, Debug, Serialize)]
pub struct Waiting {
    /// The chat's number ("Live 12").
    pub number: i64,
    /// Its room.
    pub room_id: String,
    /// Its department.
    pub department_id: Option<String>,
    /// Its place in its department's queue.
    pub position: u32,
    /// Since when it waits (ms).
    pub queued_at: i64,
    /// Whether it is offered to someone now.
    pub offered: bool,
}

impl LiveDesk {
    /// What every waiting visitor's place is computed from: the institution's queued
    /// chats and, per department among them, how many can take a chat and the recent
    /// waits. Shared by all visitors' pages that read their place after the same change
    /// (each change to the queue forgets it, [`LiveDesk::queue_moved`]).
    async fn snapshot(&self, institution: &str) -> Result<Arc<QueueSnapshot>, Error> {
        self.snapshots
            .get(institution, || async {
                let queued = store::queued(&self.db, institution).await?;
                let mut departments = HashMap::new();
                for c in &queued {
                    let d = c.chat.department.clone();
                    if departments.contains_key(&d) {
                        continue;
                    }
                    let available = self.available_count(institution, d.as_deref()).await?;
                    let waits =
                        store::recent_waits(&self.db, institution, d.as_deref(), RECENT_WAITS).await?;
                    departments.insert(d, (available, waits));
                }
                Ok::<_, Error>(Arc::new(QueueSnapshot { queued, departments }))
            })
            .await
    }

    /// The queue of an institution changed (a chat arrived, moved, was offered, taken,
    /// previewed, closed; a counsellor's status or presence): places are computed afresh.
    pub(super) fn queue_moved(&self, institution: &str) {
        self.snapshots.forget(institution);
        self.teams.forget(institution);
    }

    /// The institution's set-up changed elsewhere (departments, the team, the chat
    /// configuration; heard from the live bus): the team and places are computed afresh.
    pub fn setup_changed(&self, institution: &str) {
        self.queue_moved(institution);
    }

    /// The visitor's place, while their chat is queued.
    pub async fn place(&self, room_id: &str) -> Result<Option<Place>, Error> {
        let Some(institution) = store::chat(&self.db, room_id).await?.map(|c| c.institution_id) else {
            return Ok(None);
        };
        let snap = self.snapshot(&institution).await?;
        let Some(chat) = snap.queued.iter().find(|c| c.room_id == room_id) else { return Ok(None) };
        let same: Vec<(&str, &live::Chat)> = snap
            .queued
            .iter()
            .filter(|c| c.chat.department == chat.chat.department)
            .map(|c| (c.room_id.as_str(), &c.chat))
            .collect();
        let Some(position) = live::positions(same).into_iter().find(|(id, _)| *id == room_id).map(|(_, p)| p)
        else {
            return Ok(None);
        };
        let (available, waits) =
            snap.departments.get(&chat.chat.department).map_or((0, &[][..]), |(a, w)| (*a, w.as_slice()));
        Ok(Some(Place {
            position,
            estimated_wait_secs: live::estimated_wait_secs(position, available, waits),
            someone_coming: matches!(chat.chat.state, ChatState::Offered { .. })
                || chat
                    .previewed_at
                    .is_some_and(|p| p >= chat.state_since && now_ms() - p < PREVIEW_COUNTS_MS),
        }))
    }

    /// The queued chats a counsellor may take: those of their departments and of the
    /// general queue, first arrived first.
    pub async fn waiting_for(&self, user: &str) -> Result<Vec<Waiting>, Error> {
        let Some(c) = people::counsellor_by_id(&self.db, user).await? else { return Ok(vec![]) };
        let mine = people::departments_of(&self.db, user).await?;
        let queued = store::queued(&self.db, &c.institution_id).await?;
        let mut out = Vec::new();
        for chat in &queued {
            let dept = chat.chat.department.as_deref();
            if dept.is_some_and(|d| !mine.iter().any(|m| m == d)) {
                continue;
            }
            let same = queued
                .iter()
                .filter(|o| o.chat.department == chat.chat.department)
                .map(|o| (o.room_id.as_str(), &o.chat));
            let position =
                live::positions(same).into_iter().find(|(id, _)| *id == chat.room_id).map_or(0, |(_, p)| p);
            out.push(Waiting {
                number: chat.number,
                room_id: chat.room_id.clone(),
                department_id: chat.chat.department.clone(),
                position,
                queued_at: chat.chat.queued_at,
                offered: matches!(chat.chat.state, ChatState::Offered { .. }),
            });
        }
        Ok(out)
    }

    /// The queue of an institution moved: every waiting visitor's page reads its place again.
    pub(super) async fn queue_changed(&self, institution: &str) -> Result<(), Error> {
        for chat in store::queued(&self.db, institution).await? {
            self.publish(Change::Conversation(chat.room_id)).await;
        }
        self.publish(Change::Availability(institution.to_owned())).await;
        self.publish(Change::Desk(institution.to_owned())).await;
        Ok(())
    }

    /// Automatic routing: each waiting chat of a department in automatic mode is offered
    /// (as an invite) to the least busy counsellor who can take it and has not let its
    /// offer lapse.
    pub(super) async fn route(&self, institution: &str) -> Result<(), Error> {
        for chat in store::queued(&self.db, institution).await? {
            if chat.chat.state != ChatState::Waiting {
                continue;
            }
            let department = chat.chat.department.as_deref();
            if store::department_settings(&self.db, department).await?.routing != Routing::Auto {
                continue;
            }
            let candidates = self.candidates(institution, department).await?;
            let Some(pick) = live::pick(&candidates, &chat.chat.declined) else { continue };
            let to = pick.user_id.clone();
            let offered = self
                .apply(
                    &chat.room_id,
                    Guard::None,
                    Step::Offer { to: to.clone(), at_ms: now_ms() },
                    &Extra::default(),
                )
                .await?;
            if let Ok(chat) = offered {
                store::log(&self.db, &chat, "offered", Some(&to)).await?;
                self.hs.invite(&chat.room_id, self.bot(), &to).await.or_else(super::ignore_refusal)?;
                self.publish(Change::Conversation(chat.room_id.clone())).await;
                self.publish(Change::Desk(chat.institution_id.clone())).await;
            }
        }
        Ok(())
    }

    /// One round of the desk's timers: offers past their time lapse (the invite is
    /// withdrawn, the chat waits again and goes to the next counsellor); chats of owners who
    /// are not online, not selectable or offline for longer than the grace period go back
    /// to the queue.
    pub async fn tick(&self) -> Result<(), Error> {
        let now = now_ms();
        for chat in store::all_queued(&self.db).await? {
            let ChatState::Offered { to, since_ms } = &chat.chat.state else { continue };
            let timeout = store::department_settings(&self.db, chat.chat.department.as_deref())
                .await?
                .offer_timeout_secs;
            if now - since_ms < i64::from(timeout) * 1000 {
                continue;
            }
            let to = to.clone();
            if let Ok(after) = self
                .apply(&chat.room_id, Guard::None, Step::Lapse { to: to.clone() }, &Extra::default())
                .await?
            {
                store::log(&self.db, &after, "lapsed", Some(&to)).await?;
                if store::was_chosen(&self.db, &chat.room_id, &to).await? {
                    self.tell_visitor(&after, "chosen-lapsed", super::CHOSEN_NOT_FREE).await?;
                }
                match self.hs.kick(&chat.room_id, self.bot(), &to, "Das Angebot ist abgelaufen.").await {
                    Ok(()) => {}
                    Err(e) if !e.is_transient() => {}
                    Err(e) => return Err(e.into()),
                }
                self.publish(Change::Conversation(chat.room_id.clone())).await;
                self.publish(Change::Desk(chat.institution_id.clone())).await;
            }
        }
        self.abandoned(now).await?;
        self.opening_hours_passed().await?;
        for institution in store::institutions_with_queue(&self.db).await? {
            self.route(&institution).await?;
        }
        self.reminders(now).await?;
        let grace = i64::try_from(self.config.grace_secs).unwrap_or(i64::MAX).saturating_mul(1000);
        for chat in store::all_taken(&self.db).await? {
            let ChatState::Taken { owner } = &chat.chat.state else { continue };
            if let Some(gone_since) = self.gone_since(owner).await? {
                if now - gone_since >= grace {
                    self.owner_gone(&chat, owner).await?;
                    continue;
                }
            }
            // Taken, but the owner never got in (the join failed at the homeserver after the
            // desk said yes): back to the queue rather than lost.
            if now - chat.state_since >= NEVER_JOINED_MS && !self.joined(&chat.room_id, owner).await? {
                tracing::info!(room_id = %chat.room_id, "owner never joined: live chat back in the queue");
                self.owner_gone(&chat, owner).await?;
            }
        }
        Ok(())
    }

    /// The response reminder (Antworterinnerung): a taken chat whose visitor waits for an
    /// answer carries 🟢, after `live.reminder_yellow_secs` 🟡, after
    /// `live.reminder_red_secs` 🔴 in front of its room's name, which Element shows in the
    /// room list; an answer (or the chat leaving its owner) takes the marker off.
    async fn reminders(&self, now: i64) -> Result<(), Error> {
        let (yellow, red) = (self.config.reminder_yellow_secs, self.config.reminder_red_secs);
        for r in store::reminders(&self.db).await? {
            let marker =
                if r.taken { live::reminder(r.unanswered_since, now, yellow, red).marker() } else { "" };
            if marker == r.marker {
                continue;
            }
            let base =
                people::client_by_id(&self.db, &r.client).await?.map(|c| c.display_name).unwrap_or_default();
            let name = if marker.is_empty() { base } else { format!("{marker} {base}") };
            match self
                .hs
                .set_state(&r.room_id, self.bot(), "m.room.name", "", &serde_json::json!({ "name": name }))
                .await
            {
                Ok(_) => {}
                Err(e) if !e.is_transient() => {
                    tracing::info!(room_id = %r.room_id, errcode = ?e.errcode(), "reminder not shown")
                }
                Err(e) => return Err(e.into()),
            }
            store::set_marker(&self.db, &r.room_id, marker).await?;
            if let Some(chat) = store::chat(&self.db, &r.room_id).await? {
                self.publish(Change::Desk(chat.institution_id)).await;
            }
        }
        Ok(())
    }

    /// A message in a room: in a live chat, the visitor's starts the response reminder's
    /// clock and a counsellor's stops it (commands are no answer).
    pub async fn message(
        &self,
        room_id: &str,
        sender: &str,
        at_ms: i64,
        is_command: bool,
        content: &serde_json::Value,
    ) -> Result<(), Error> {
        if sender == self.bot() || is_command {
            return Ok(());
        }
        let Some(chat) = store::chat(&self.db, room_id).await? else { return Ok(()) };
        let from_visitor = sender == chat.client;
        store::message(&self.db, room_id, from_visitor, at_ms).await?;
        if from_visitor {
            self.visitor_wrote(room_id, content);
        }
        // Desks show what a waiting visitor wrote last and whether an owner's visitor waits
        // for an answer.
        if from_visitor || chat.unanswered_since.is_some() {
            self.publish(Change::Desk(chat.institution_id)).await;
        }
        Ok(())
    }

    /// A department opened or closed (its hours passed a boundary): open pages learn it.
    async fn opening_hours_passed(&self) -> Result<(), Error> {
        let local = chrono::Utc::now().with_timezone(&self.tz).naive_local();
        let mut changed = Vec::new();
        {
            let rows = store::departments_with_hours(&self.db).await?;
            let mut was = self.was_open.lock().unwrap_or_else(|p| p.into_inner());
            for (department, institution, hours) in rows {
                let open = hours.check().map(|h| h.is_open(local)).unwrap_or(true);
                if was.insert(department, open).is_some_and(|before| before != open) {
                    changed.push(institution);
                }
            }
        }
        changed.dedup();
        for institution in changed {
            self.publish(Change::Availability(institution)).await;
        }
        Ok(())
    }

    /// Queued visitors whose page has been closed longer than `live.abandon_after_secs`
    /// have left: their chats close as abandoned. (After a restart the clock starts again:
    /// browsers reconnect within seconds.)
    async fn abandoned(&self, now: i64) -> Result<(), Error> {
        let Some(watching) = self.watching.get() else { return Ok(()) };
        let after = i64::try_from(self.config.abandon_after_secs).unwrap_or(i64::MAX).saturating_mul(1000);
        let queued = store::all_queued(&self.db).await?;
        let mut gone = Vec::new();
        {
            let mut unwatched = self.unwatched.lock().unwrap_or_else(|p| p.into_inner());
            unwatched.retain(|room, _| queued.iter().any(|c| c.room_id == *room));
            for chat in &queued {
                if watching.watched(&chat.room_id) {
                    unwatched.remove(&chat.room_id);
                } else if now - *unwatched.entry(chat.room_id.clone()).or_insert(now) >= after {
                    gone.push(chat.room_id.clone());
                }
            }
        }
        for room in gone {
            if self.visitor_left(&room).await?.is_ok() {
                tracing::info!(room_id = %room, "queued visitor left: live chat abandoned");
            }
            self.unwatched.lock().unwrap_or_else(|p| p.into_inner()).remove(&room);
        }
        Ok(())
    }

    /// Whether `user` is joined to the room, as the service saw its membership events.
    async fn joined(&self, room_id: &str, user: &str) -> Result<bool, Error> {
        use crate::features::rooms::members::{self, MembershipState};
        Ok(members::of_room(&self.db, room_id)
            .await?
            .iter()
            .any(|(u, m)| u == user && *m == MembershipState::Join))
    }

    /// Since when a counsellor has been unable to carry on their chats (not online, not
    /// selectable, or Element closed), if they are.
    async fn gone_since(&self, user: &str) -> Result<Option<i64>, Error> {
        let st = store::status(&self.db, user).await?;
        let by_status =
            matches!(st.status, Status::NotOnline | Status::NotSelectable).then_some(st.status_at);
        let by_presence =
            (self.config.presence && st.presence == Presence::Offline).then_some(st.presence_at);
        Ok(match (by_status, by_presence) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// The owner is gone: the chat goes back to the queue, the visitor is told.
    async fn owner_gone(&self, chat: &LiveChat, owner: &str) -> Result<(), Error> {
        let r = self
            .apply(&chat.room_id, Guard::None, Step::Return { by: owner.to_owned() }, &Extra::default())
            .await?;
        if let Ok(after) = r {
            tracing::info!(room_id = %chat.room_id, "owner gone: live chat back in the queue");
            self.after_owner_change(
                &after,
                owner,
                "returned",
                "Die beratende Person ist gerade nicht mehr erreichbar. Du bist wieder in der Warteschlange – gleich ist jemand anderes für dich da.",
            )
            .await?;
        }
        Ok(())
    }
}
