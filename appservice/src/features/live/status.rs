//! Counsellors' status (what they set: online, busy, not online, not selectable; and "only
//! selectable by regular clients") and presence (what Element reports through the
//! homeserver: online, away, offline), and who can take chats now.

use std::sync::Arc;

use assisto_core::live::{self, Candidate, Presence, Status};

use crate::bus::Change;
use crate::error::Error;
use crate::features::live::store::{self, StatusRow};
use crate::features::live::LiveDesk;
use crate::features::people::store as people;
use crate::store::audit;

/// Where a status change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// A bot command in Element: the counsellor is evidently there.
    Element,
    /// The admin API (the institution's dashboard).
    Api,
}

/// A counsellor as clients may see them ([`LiveDesk::team`]).
#[derive(Clone, Debug)]
pub struct TeamEntry {
    /// Who.
    pub counsellor: people::Counsellor,
    /// Their departments.
    pub departments: Vec<String>,
    /// What they set.
    pub status: Status,
    /// "Only selectable by regular clients".
    pub only_regular: bool,
    /// What clients see.
    pub shown: live::Shown,
    /// Whether they can take a new live chat now.
    pub can_take: bool,
}

impl LiveDesk {
    /// A counsellor's status.
    pub async fn status_of(&self, user: &str) -> Result<StatusRow, Error> {
        Ok(store::status(&self.db, user).await?)
    }

    /// The live chats a counsellor owns now.
    pub async fn owned(&self, user: &str) -> Result<Vec<store::LiveChat>, Error> {
        Ok(store::owned_by(&self.db, user).await?)
    }

    /// Sets a counsellor's status (and, where given, "only regular clients" and their own
    /// limit). From Element, the counsellor is evidently present: their presence counts
    /// as online until the homeserver reports otherwise.
    pub async fn set_status(
        &self,
        user: &str,
        status: Status,
        only_regular: Option<bool>,
        max_chats: Option<Option<u32>>,
        from: From,
    ) -> Result<StatusRow, Error> {
        let c = people::counsellor_by_id(&self.db, user)
            .await?
            .ok_or_else(|| Error::not_found(format!("no counsellor {user}")))?;
        let changed = store::set_status(&self.db, user, status, only_regular, max_chats).await?;
        if from == From::Element {
            store::set_presence(&self.db, user, Presence::Online).await?;
        }
        // (Presence from Element may have changed too.)
        self.queue_moved(&c.institution_id);
        if changed {
            audit::record(&self.db, user, "live.status", user, Some(status.as_str())).await?;
            tracing::info!(status = status.as_str(), "counsellor status set");
            self.publish(Change::Availability(c.institution_id.clone())).await;
            self.publish(Change::Desk(c.institution_id.clone())).await;
            self.route(&c.institution_id).await?;
        }
        Ok(store::status(&self.db, user).await?)
    }

    /// The homeserver reports a counsellor's presence.
    pub async fn presence(&self, user: &str, presence: Presence) -> Result<(), Error> {
        let Some(c) = people::counsellor_by_id(&self.db, user).await? else { return Ok(()) };
        if store::set_presence(&self.db, user, presence).await? {
            self.queue_moved(&c.institution_id);
            tracing::debug!(presence = presence.as_str(), "counsellor presence");
            self.publish(Change::Availability(c.institution_id.clone())).await;
            self.publish(Change::Desk(c.institution_id.clone())).await;
            self.route(&c.institution_id).await?;
        }
        Ok(())
    }

    /// The counsellors of a department (`None`: every counsellor of the institution) as
    /// routing sees them: status, presence, how many chats they own or are offered, their
    /// limit.
    pub async fn candidates(
        &self,
        institution: &str,
        department: Option<&str>,
    ) -> Result<Vec<Candidate>, Error> {
        let settings = store::department_settings(&self.db, department).await?;
        let mut out = Vec::new();
        for c in people::counsellors(&self.db, institution).await? {
            if let Some(d) = department {
                if !people::departments_of(&self.db, &c.user_id).await?.iter().any(|x| x == d) {
                    continue;
                }
            }
            let st = store::status(&self.db, &c.user_id).await?;
            out.push(self.candidate(c.user_id, &st, &settings).await?);
        }
        Ok(out)
    }

    /// One counsellor as routing sees them, under a department's settings.
    async fn candidate(
        &self,
        user_id: String,
        st: &StatusRow,
        settings: &store::DepartmentSettings,
    ) -> Result<Candidate, Error> {
        let open = store::owned_by(&self.db, &user_id).await?.len() as u32
            + store::offered_to(&self.db, &user_id).await? as u32;
        Ok(Candidate {
            last_taken_ms: store::last_taken(&self.db, &user_id).await?,
            user_id,
            status: st.status,
            presence: if self.config.presence { st.presence } else { Presence::Online },
            open_chats: open,
            max_chats: st.max_chats.unwrap_or(settings.max_chats),
        })
    }

    /// The institution's team as clients may see it: everyone with their status, shown
    /// status, departments and whether they can take a new live chat now (under the general
    /// queue's settings where they set no limit of their own). Computed once per change of
    /// the queue or of a status ([`LiveDesk::queue_moved`]) for all who ask meanwhile.
    pub async fn team(&self, institution: &str) -> Result<Arc<Vec<TeamEntry>>, Error> {
        self.teams
            .get(institution, || async {
                let settings = store::department_settings(&self.db, None).await?;
                let mut out = Vec::new();
                for c in people::counsellors(&self.db, institution).await? {
                    let st = store::status(&self.db, &c.user_id).await?;
                    let candidate = self.candidate(c.user_id.clone(), &st, &settings).await?;
                    out.push(TeamEntry {
                        departments: people::departments_of(&self.db, &c.user_id).await?,
                        can_take: candidate.can_take(),
                        shown: live::shown(st.status, candidate.presence),
                        status: st.status,
                        only_regular: st.only_regular,
                        counsellor: c,
                    });
                }
                Ok::<_, Error>(Arc::new(out))
            })
            .await
    }

    /// Whether anyone of the department can take a chat now (the chat button shows): it is
    /// open, and someone can.
    pub async fn available(&self, institution: &str, department: Option<&str>) -> Result<bool, Error> {
        if !self.opening(department).await?.0 {
            return Ok(false);
        }
        Ok(self.candidates(institution, department).await?.iter().any(Candidate::can_take))
    }

    /// Whether the department is open now, and when it opens next if not (local time,
    /// `YYYY-MM-DDTHH:MM`). The general queue is always open.
    pub async fn opening(&self, department: Option<&str>) -> Result<(bool, Option<String>), Error> {
        let Some(d) = department else { return Ok((true, None)) };
        // Stored hours were checked when they were set.
        let hours =
            store::department_settings(&self.db, Some(d)).await?.opening_hours.check().unwrap_or_default();
        let now = chrono::Utc::now().with_timezone(&self.tz).naive_local();
        if hours.is_open(now) {
            return Ok((true, None));
        }
        Ok((false, hours.next_open(now).map(|t| t.format("%Y-%m-%dT%H:%M").to_string())))
    }

    /// How many of the department can take a chat now.
    pub async fn available_count(&self, institution: &str, department: Option<&str>) -> Result<u32, Error> {
        Ok(self.candidates(institution, department).await?.iter().filter(|c| c.can_take()).count() as u32)
    }

    /// What clients see of a counsellor.
    pub async fn shown(&self, user: &str) -> Result<live::Shown, Error> {
        let st = store::status(&self.db, user).await?;
        Ok(live::shown(st.status, st.presence))
    }
}
