//! The admin CLI: the same operations as the admin HTTP API, run directly against the
//! database and the homeserver (safe beside a running service). Prints JSON.

use std::io::Read;

use clap::Subcommand;
use serde::Serialize;

use crate::{
    config::Config,
    db::{audit, institutions, people, rooms},
    domain::DomainError,
};

/// `assisto institution …`
#[derive(Subcommand)]
pub enum InstitutionCmd {
    /// Create an institution with its four spaces and directory room (repeatable).
    Create {
        /// Slug: a-z, 0-9 and '-', e.g. beratung-koeln.
        id: String,
        /// Name, e.g. "Beratungsstelle Köln".
        name: String,
    },
    /// List institutions.
    List,
    /// Show one institution with its rooms.
    Show {
        /// Slug.
        id: String,
    },
    /// Show or change how long data is kept (days).
    Retention {
        /// Slug.
        id: String,
        /// Days between marking a client for deletion and the deletion.
        #[arg(long)]
        deletion_days: Option<i64>,
        /// Days closed anonymous live chats are kept.
        #[arg(long)]
        live_days: Option<i64>,
    },
}

/// `assisto department …`
#[derive(Subcommand)]
pub enum DepartmentCmd {
    /// Create a department.
    Create {
        /// Institution slug.
        institution: String,
        /// Name.
        name: String,
    },
    /// List an institution's departments.
    List {
        /// Institution slug.
        institution: String,
    },
}

/// `assisto counsellor …`
#[derive(Subcommand)]
pub enum CounsellorCmd {
    /// Make a local user a counsellor of an institution (creating the account with
    /// --password-stdin, which needs homeserver.admin_token).
    Add {
        /// Institution slug.
        institution: String,
        /// Matrix localpart, e.g. anna.berger.
        localpart: String,
        /// Display name, e.g. "Anna Berger".
        display_name: String,
        /// Read a password from standard input and create (or reset) the account.
        #[arg(long)]
        password_stdin: bool,
        /// Department IDs (repeatable).
        #[arg(long = "department")]
        departments: Vec<String>,
    },
    /// List an institution's counsellors.
    List {
        /// Institution slug.
        institution: String,
    },
}

/// `assisto client …`
#[derive(Subcommand)]
pub enum ClientCmd {
    /// Create a client (a puppet) with the name they chose.
    Create {
        /// Institution slug.
        institution: String,
        /// The client's chosen name.
        display_name: String,
    },
    /// List an institution's clients.
    List {
        /// Institution slug.
        institution: String,
    },
    /// Block a client: no sending, no joining; the history stays.
    Block {
        /// The puppet's user ID.
        user_id: String,
    },
    /// Unblock a client.
    Unblock {
        /// The puppet's user ID.
        user_id: String,
    },
    /// Mark a client for deletion after the institution's deletion period.
    Delete {
        /// The puppet's user ID.
        user_id: String,
    },
    /// Take a deletion mark back (before the deletion started).
    Undelete {
        /// The puppet's user ID.
        user_id: String,
    },
}

/// `assisto deletion …`
#[derive(Subcommand)]
pub enum DeletionCmd {
    /// List deletions: all, or only pending or finished ones.
    List {
        /// `pending` or `finished`.
        #[arg(long)]
        state: Option<String>,
    },
}

/// `assisto room …`
#[derive(Subcommand)]
pub enum RoomCmd {
    /// List an institution's managed rooms.
    List {
        /// Institution slug.
        institution: String,
    },
}

fn print<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn fail(e: DomainError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

const ACTOR: &str = "cli";

/// Runs an institution command.
pub async fn institution(config: Config, cmd: InstitutionCmd) -> anyhow::Result<()> {
    let p = crate::app::provisioning(config).await?;
    match cmd {
        InstitutionCmd::Create { id, name } => {
            print(&p.create_institution(ACTOR, &id, &name).await.map_err(fail)?)
        }
        InstitutionCmd::List => print(&institutions::list(&p.db).await?),
        InstitutionCmd::Show { id } => print(&p.institution(&id).await.map_err(fail)?),
        InstitutionCmd::Retention { id, deletion_days, live_days } => {
            let now = p.retention(&id).await.map_err(fail)?;
            if deletion_days.is_none() && live_days.is_none() {
                return print(&now);
            }
            let r = crate::domain::provisioning::Retention {
                deletion_period_secs: deletion_days
                    .map_or(now.deletion_period_secs, |d| d.saturating_mul(86_400)),
                live_retention_secs: live_days.map_or(now.live_retention_secs, |d| d.saturating_mul(86_400)),
            };
            print(&p.set_retention(ACTOR, &id, &r).await.map_err(fail)?)
        }
    }
}

/// Runs a department command.
pub async fn department(config: Config, cmd: DepartmentCmd) -> anyhow::Result<()> {
    let p = crate::app::provisioning(config).await?;
    match cmd {
        DepartmentCmd::Create { institution, name } => {
            print(&p.create_department(ACTOR, &institution, &name).await.map_err(fail)?)
        }
        DepartmentCmd::List { institution } => print(&institutions::departments(&p.db, &institution).await?),
    }
}

/// Runs a counsellor command.
pub async fn counsellor(config: Config, cmd: CounsellorCmd) -> anyhow::Result<()> {
    let p = crate::app::provisioning(config).await?;
    match cmd {
        CounsellorCmd::Add { institution, localpart, display_name, password_stdin, departments } => {
            let password = if password_stdin {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                Some(s.trim_end_matches(['\n', '\r']).to_owned())
            } else {
                None
            };
            let c = p
                .add_counsellor(
                    ACTOR,
                    &institution,
                    &localpart,
                    &display_name,
                    password.as_deref(),
                    &departments,
                )
                .await
                .map_err(fail)?;
            print(&c)
        }
        CounsellorCmd::List { institution } => print(&people::counsellors(&p.db, &institution).await?),
    }
}

/// Runs a client command.
pub async fn client(config: Config, cmd: ClientCmd) -> anyhow::Result<()> {
    let p = crate::app::provisioning(config).await?;
    match cmd {
        ClientCmd::Create { institution, display_name } => {
            print(&p.create_client(ACTOR, &institution, &display_name).await.map_err(fail)?)
        }
        ClientCmd::List { institution } => print(&people::clients(&p.db, &institution).await?),
        ClientCmd::Block { user_id } => print(&p.set_blocked(ACTOR, &user_id, true).await.map_err(fail)?),
        ClientCmd::Unblock { user_id } => print(&p.set_blocked(ACTOR, &user_id, false).await.map_err(fail)?),
        ClientCmd::Delete { user_id } => {
            let d = crate::domain::deletion::Deleter::new(p.db.clone(), p.hs.clone(), p.files.clone());
            print(&d.mark(ACTOR, &user_id).await.map_err(fail)?)
        }
        ClientCmd::Undelete { user_id } => {
            let d = crate::domain::deletion::Deleter::new(p.db.clone(), p.hs.clone(), p.files.clone());
            d.unmark(ACTOR, &user_id).await.map_err(fail)?;
            println!("{{}}");
            Ok(())
        }
    }
}

/// Runs a room command.
pub async fn room(config: Config, cmd: RoomCmd) -> anyhow::Result<()> {
    let p = crate::app::provisioning(config).await?;
    match cmd {
        RoomCmd::List { institution } => print(&rooms::list(&p.db, &institution).await?),
    }
}

/// Prints the newest audit entries.
pub async fn audit_log(config: Config, limit: i64) -> anyhow::Result<()> {
    let p = crate::app::provisioning(config).await?;
    print(&audit::recent(&p.db, limit.clamp(1, 10_000)).await?)
}

/// Runs a deletion command.
pub async fn deletion(config: Config, cmd: DeletionCmd) -> anyhow::Result<()> {
    let p = crate::app::provisioning(config).await?;
    match cmd {
        DeletionCmd::List { state } => {
            let finished = match state.as_deref() {
                None => None,
                Some("pending") => Some(false),
                Some("finished") => Some(true),
                Some(other) => anyhow::bail!("--state must be pending or finished, not {other}"),
            };
            print(&crate::db::deletions::list(&p.db, finished).await?)
        }
    }
}
