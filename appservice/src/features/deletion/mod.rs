//! The deletion routine (Löschroutine): deleting a client leaves nothing readable behind.
//!
//! Synapse's `erase` alone does not remove messages or media, so per client, in this order:
//! 1. redact the client's events in every room (Synapse admin API, a background job that is
//!    polled — its ID is stored, so a restart polls the same job);
//! 2. delete the client's own rooms (client chats, live chats) with purge — first noting
//!    every media item their events refer to (the counsellors' files too), so that a
//!    restart still knows them;
//! 3. delete the client's media, page by page until none is left, and the noted media;
//! 4. deactivate the puppet with erase (Synapse then takes it out of every room);
//! 5. once it is out of every room, erase what Synapse keeps in the rooms that stay and no
//!    admin API reaches (the erasure module `synapse_erasure/`: the name in every
//!    membership row, the search index of the client's messages, the unredacted JSON);
//! 6. remove the client's documents from the file store (checking that its directory is
//!    gone), the client's messages and own rooms from the search index (rewriting the
//!    segments that held them and overwriting their old files), then the client's rows
//!    from the project's own tables;
//! 7. make the deleted rows unreadable in the database files (SQLite: `secure_delete` and a
//!    truncating WAL checkpoint; PostgreSQL: `VACUUM`), and write an audit entry without
//!    personal data.
//!
//! What counsellors wrote in group chats stays (it is theirs); the client's own messages
//! there are redacted and erased.
//!
//! Each completed step is recorded, so the routine resumes after a crash at any point, and
//! every step is safe to repeat. It runs only once the institution's deadline has passed.

pub mod store;

use std::time::Duration;

use crate::error::Error;
use crate::features::client_file::files::FileStore;
use crate::features::deletion::store as deletions;
use crate::features::people::store as people;
use crate::features::rooms::members;
use crate::features::rooms::store as rooms;
use crate::matrix::homeserver::DeleteRoom;
use crate::matrix::homeserver::HomeserverClient;
use crate::matrix::homeserver::JobStatus;
use crate::store::audit;
use crate::store::now_ms;
use crate::store::Db;
use assisto_core::RoomKind;

/// The steps, in order; each name is stored when the step is complete.
pub const STEPS: [&str; 8] =
    ["pending", "redacted", "rooms_purged", "media_deleted", "deactivated", "erased", "rows_removed", "done"];

/// Runs deletions.
#[derive(Clone)]
pub struct Deleter {
    db: Db,
    hs: HomeserverClient,
    files: FileStore,
    search: Option<crate::features::search::Search>,
}

/// Whether a step finished or must be looked at again later.
enum Progress {
    Done,
    Waiting,
}

impl Deleter {
    /// A deleter.
    pub fn new(db: Db, hs: HomeserverClient, files: FileStore) -> Self {
        Self { db, hs, files, search: None }
    }

    /// Also removes a deleted client from `search`'s index.
    pub fn with_search(mut self, search: crate::features::search::Search) -> Self {
        self.search = Some(search);
        self
    }

    /// Marks a client for deletion after the institution's deletion period.
    pub async fn mark(&self, actor: &str, client: &str) -> Result<deletions::Deletion, Error> {
        let c = people::client_by_id(&self.db, client)
            .await?
            .ok_or_else(|| Error::not_found(format!("no client {client}")))?;
        let (period, _) = deletions::periods(&self.db, &c.institution_id).await?.unwrap_or((30 * 86_400, 0));
        let due = now_ms() + period * 1000;
        if deletions::mark(&self.db, client, &c.institution_id, actor, due).await? {
            audit::record(&self.db, actor, "client.delete_requested", client, None).await?;
        }
        deletions::get(&self.db, client).await?.ok_or_else(|| Error::not_found("deletion vanished"))
    }

    /// Marks a client for deletion now, on the client's own request ("delete my data"): the
    /// routine deletes at its next run, without waiting for the institution's period.
    pub async fn mark_now(&self, client: &str) -> Result<(), Error> {
        let c = people::client_by_id(&self.db, client)
            .await?
            .ok_or_else(|| Error::not_found(format!("no client {client}")))?;
        let now = now_ms();
        if deletions::mark(&self.db, client, &c.institution_id, client, now).await? {
            audit::record(&self.db, client, "client.delete_requested_by_client", client, None).await?;
        } else {
            deletions::bring_forward(&self.db, client, now).await?;
        }
        Ok(())
    }

    /// Takes a mark back before the routine started.
    pub async fn unmark(&self, actor: &str, client: &str) -> Result<(), Error> {
        if deletions::unmark(&self.db, client).await? {
            audit::record(&self.db, actor, "client.delete_cancelled", client, None).await?;
            Ok(())
        } else {
            match deletions::get(&self.db, client).await? {
                Some(_) => Err(Error::conflict("the deletion has already started and cannot be undone")),
                None => Err(Error::not_found(format!("{client} is not marked for deletion"))),
            }
        }
    }

    /// Runs every due deletion as far as it goes now.
    pub async fn run_due(&self) -> Result<usize, Error> {
        let mut finished = 0;
        for d in deletions::due(&self.db, now_ms()).await? {
            match self.run(&d.client_user_id, usize::MAX).await {
                Ok(true) => finished += 1,
                Ok(false) => {}
                Err(e) => {
                    let msg = e.to_string();
                    tracing::warn!(error = %msg, "deletion step failed; will retry");
                    deletions::set_error(&self.db, &d.client_user_id, &msg).await?;
                }
            }
        }
        Ok(finished)
    }

    /// Advances one client's deletion by at most `max_steps` steps (never before its
    /// deadline). `true` when it is complete.
    pub async fn run(&self, client: &str, max_steps: usize) -> Result<bool, Error> {
        let Some(d) = deletions::get(&self.db, client).await? else { return Ok(false) };
        if d.finished_at.is_some() {
            return Ok(true);
        }
        if d.due_at > now_ms() {
            return Ok(false);
        }
        let mut step = d.step.clone();
        let mut job = d.job_id.clone();
        for _ in 0..max_steps {
            let progress = match step.as_str() {
                "pending" => self.redact(client, job.as_deref()).await?,
                "redacted" => self.purge_rooms(client).await?,
                "rooms_purged" => self.delete_media(client).await?,
                "media_deleted" => self.deactivate(client).await?,
                "deactivated" => self.erase_in_synapse(client).await?,
                "erased" => {
                    // Files first: should this stop half-way, the rows still say whose
                    // directory to remove when the step is repeated.
                    self.files.remove_client(client).await.map_err(|e| {
                        Error::invalid(format!("removing the client's documents failed: {e}"))
                    })?;
                    let purged = self.own_rooms(client).await?;
                    if let Some(search) = &self.search {
                        search.forget_client(client, &purged).await?;
                    }
                    deletions::remove_client_rows(&self.db, client, &purged).await?;
                    Progress::Done
                }
                "rows_removed" => {
                    self.db.erase_freed(&deletions::TABLES).await?;
                    // The puppet's ID is random; no name or content goes into the log.
                    audit::record(&self.db, "assisto", "client.deleted", client, None).await?;
                    deletions::finish(&self.db, client).await?;
                    tracing::info!("a client's data was deleted");
                    return Ok(true);
                }
                _ => return Ok(true),
            };
            match progress {
                Progress::Waiting => return Ok(false),
                Progress::Done => {
                    let next = STEPS.iter().position(|s| *s == step).map(|i| STEPS[i + 1]).unwrap_or("done");
                    deletions::set_step(&self.db, client, next).await?;
                    step = next.to_owned();
                    job = None;
                }
            }
        }
        Ok(false)
    }

    /// The client's own rooms (client chats, live chats), which are purged whole.
    async fn own_rooms(&self, client: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for room in members::rooms_of_user(&self.db, client).await? {
            if let Some(r) = rooms::get(&self.db, &room).await? {
                if matches!(r.kind, RoomKind::ClientChat | RoomKind::Live) {
                    out.push(room);
                }
            }
        }
        Ok(out)
    }

    async fn redact(&self, client: &str, job: Option<&str>) -> Result<Progress, Error> {
        let job = match job {
            Some(j) => j.to_owned(),
            None => {
                let rooms = members::rooms_of_user(&self.db, client).await?;
                let id = self.hs.admin_redact_user(client, &rooms, "Gelöscht (Löschroutine)").await?;
                deletions::set_job(&self.db, client, &id).await?;
                id
            }
        };
        // Wait a little for the job here; a long one is looked at again on the next run.
        for _ in 0..60 {
            match self.hs.admin_redact_status(&job).await {
                Ok(JobStatus::Complete) => return Ok(Progress::Done),
                Ok(JobStatus::Failed) => {
                    deletions::set_step(&self.db, client, "pending").await?; // start a new job
                    return Err(Error::invalid("redaction job failed; it will be started again"));
                }
                Ok(JobStatus::Running) => tokio::time::sleep(Duration::from_millis(250)).await,
                // Synapse forgets finished jobs after a while (or after a restart).
                Err(e) if e.errcode() == Some("M_NOT_FOUND") => {
                    deletions::set_step(&self.db, client, "pending").await?;
                    return Ok(Progress::Waiting);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Progress::Waiting)
    }

    async fn purge_rooms(&self, client: &str) -> Result<Progress, Error> {
        for room in self.own_rooms(client).await? {
            if self.hs.admin_room_exists(&room).await? {
                // Everything the room's events refer to goes with it (the counsellors'
                // files too), noted before the purge makes the events unreadable.
                let media = self.hs.admin_room_media(&room).await?;
                let mxcs: Vec<String> = media.local.into_iter().chain(media.remote).collect();
                deletions::add_room_media(&self.db, client, &mxcs).await?;
                let how = DeleteRoom { purge: true, block: false, force_purge: Some(true), message: None };
                let deletion = self.hs.admin_delete_room(&room, &how).await?;
                if !self.wait_for_room_deletion(&deletion.delete_id).await? {
                    return Ok(Progress::Waiting);
                }
            }
            rooms::set_deleted(&self.db, &room).await?;
        }
        Ok(Progress::Done)
    }

    async fn wait_for_room_deletion(&self, delete_id: &str) -> Result<bool, Error> {
        for _ in 0..120 {
            match self.hs.admin_room_delete_status(delete_id).await? {
                JobStatus::Complete => return Ok(true),
                JobStatus::Failed => return Err(Error::invalid("room purge failed; it will be retried")),
                JobStatus::Running => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        Ok(false)
    }

    async fn delete_media(&self, client: &str) -> Result<Progress, Error> {
        // The media of the purged rooms, whoever uploaded it.
        for mxc in deletions::room_media(&self.db, client).await? {
            let Some((server, id)) = mxc.strip_prefix("mxc://").and_then(|r| r.split_once('/')) else {
                continue;
            };
            if server != self.hs.server_name() {
                continue; // another homeserver's media: not ours to delete (no federation)
            }
            match self.hs.admin_delete_media(server, id).await {
                Ok(()) => {}
                Err(e) if e.errcode() == Some("M_NOT_FOUND") => {}
                Err(e) => return Err(e.into()),
            }
        }
        // The client's own uploads: page until none is left (each call deletes up to `limit`).
        for _ in 0..1000 {
            let listed = match self.hs.admin_user_media(client).await {
                Ok(m) => m,
                Err(e) if e.errcode() == Some("M_NOT_FOUND") => return Ok(Progress::Done),
                Err(e) => return Err(e.into()),
            };
            if listed.total == 0 {
                return Ok(Progress::Done);
            }
            self.hs.admin_delete_user_media(client).await?;
        }
        Ok(Progress::Waiting)
    }

    /// Waits until Synapse has taken the deactivated puppet out of every room (a background
    /// job of its own), then has the erasure module erase what stays of the client in the
    /// remaining rooms.
    async fn erase_in_synapse(&self, client: &str) -> Result<Progress, Error> {
        let mut parted = false;
        for _ in 0..120 {
            match self.hs.admin_user_joined_rooms(client).await {
                Ok(r) if r.total == Some(0) => {
                    parted = true;
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                Err(e) if e.errcode() == Some("M_NOT_FOUND") => {
                    parted = true;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !parted {
            return Ok(Progress::Waiting);
        }
        match self.hs.erase_user(client).await {
            Ok(()) => Ok(Progress::Done),
            Err(e) if matches!(e.errcode(), Some("M_UNRECOGNIZED") | Some("M_NOT_FOUND")) => {
                Err(Error::invalid(
                    "Synapse has no erasure module (assisto_erasure.AssistoErasure, see docs/operations.md); \
                     the client's names and messages would stay in Synapse's database",
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn deactivate(&self, client: &str) -> Result<Progress, Error> {
        match self.hs.admin_user(client).await {
            Ok(u) if u.deactivated && u.erased => return Ok(Progress::Done),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => return Ok(Progress::Done),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        self.hs.admin_deactivate(client, true).await?;
        Ok(Progress::Done)
    }
}
