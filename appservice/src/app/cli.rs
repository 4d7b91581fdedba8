//! The admin CLI: the same operations as the admin HTTP API, run directly against the
//! database and the homeserver (safe beside a running service). Prints JSON.

use std::io::Read;

use clap::Subcommand;
use serde::Serialize;

use crate::app::config::Config;
use crate::features::institutions::store as institutions;
use crate::features::people::store as people;
use crate::features::rooms::store as rooms;
use crate::store::audit;

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
    /// Show or change how long data is kept (1 second to 10 years each, as in the admin API).
    Retention {
        /// Slug.
        id: String,
        /// Time between marking a client for deletion and the deletion: a duration such as
        /// 90s, 15m, 12h, 30d, 2w or 1d12h.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
        deletion_period: Option<i64>,
        /// How long closed anonymous live chats are kept: a duration, as above.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
        live_retention: Option<i64>,
        /// The same as --deletion-period in whole days (--deletion-days 30 = 30d).
        #[arg(long, value_name = "DAYS", conflicts_with = "deletion_period")]
        deletion_days: Option<i64>,
        /// The same as --live-retention in whole days.
        #[arg(long, value_name = "DAYS", conflicts_with = "live_retention")]
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

/// `assisto search …`
#[derive(Subcommand)]
pub enum SearchCmd {
    /// Rebuild the search index from the homeserver (every managed room's messages and group
    /// names), with a progress bar. While the service runs it holds the index: then use
    /// `POST /_assisto/admin/v1/search/rebuild`, or stop the service first.
    Reindex,
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

const DAY: i64 = 86_400;

/// Parses a duration into seconds: one or more numbers, each with its unit — `s`, `m`
/// (minutes), `h`, `d` or `w` — e.g. `90s`, `12h`, `30d`, `1d12h`. A bare number is refused
/// (seconds or days? the unit says it). Whether the value is allowed is for the caller.
pub fn parse_duration_secs(text: &str) -> Result<i64, String> {
    let hint = "a duration such as 90s, 15m, 12h, 30d, 2w or 1d12h";
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("empty; give {hint}"));
    }
    let mut total: i64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        let factor = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => DAY,
            "w" => 7 * DAY,
            "" if digits > 0 && after.is_empty() => {
                return Err(format!("{text:?} has no unit; give {hint}"));
            }
            _ => return Err(format!("{text:?} is not {hint}")),
        };
        let n: i64 = number.parse().map_err(|_| format!("{text:?} is not {hint}"))?;
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?} is too long"))?;
        rest = after;
    }
    Ok(total)
}

fn print<T: Serialize>(v: &T) -> anyhow::Result<()> {
    use std::io::Write;
    // A reader that stops early (`| head`) is not an error.
    match writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(v)?) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn fail(e: crate::error::Error) -> anyhow::Error {
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
        InstitutionCmd::Retention { id, deletion_period, live_retention, deletion_days, live_days } => {
            let now = p.retention(&id).await.map_err(fail)?;
            let days = |d: i64| d.saturating_mul(DAY);
            let deletion = deletion_period.or(deletion_days.map(days));
            let live = live_retention.or(live_days.map(days));
            if deletion.is_none() && live.is_none() {
                return print(&now);
            }
            // The same checks as the admin API's (set_retention: 1 s to 10 years).
            let r = crate::features::institutions::Retention {
                deletion_period_secs: deletion.unwrap_or(now.deletion_period_secs),
                live_retention_secs: live.unwrap_or(now.live_retention_secs),
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
            let d = p.deleter();
            print(&d.mark(ACTOR, &user_id).await.map_err(fail)?)
        }
        ClientCmd::Undelete { user_id } => {
            let d = p.deleter();
            d.unmark(ACTOR, &user_id).await.map_err(fail)?;
            print(&serde_json::json!({}))
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
            print(&crate::features::deletion::store::list(&p.db, finished).await?)
        }
    }
}

/// Runs a search command.
pub async fn search(config: Config, cmd: SearchCmd) -> anyhow::Result<()> {
    match cmd {
        SearchCmd::Reindex => reindex(config).await,
    }
}

async fn reindex(config: Config) -> anyhow::Result<()> {
    use crate::features::search::{index::IndexError, index::SearchIndex, Rebuild, Search};
    let dir = config.search_dir()?;
    let tz = config.bot.timezone.parse().unwrap_or(chrono_tz::Europe::Berlin);
    let p = crate::app::provisioning(config).await?;
    let index = match SearchIndex::open(&dir) {
        Ok(i) => i,
        Err(IndexError::Busy(_)) => anyhow::bail!(
            "the running service holds the search index at {}: rebuild it through the admin API \
             (POST /_assisto/admin/v1/search/rebuild, progress at GET …/search/rebuild), or stop \
             the service and run this again",
            dir.display()
        ),
        Err(e) => return Err(e.into()),
    };
    let search = Search::new(p.db.clone(), p.hs.clone(), p.bot.clone(), index, tz);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {bar:30} {pos}/{len} Räume · {msg} · {elapsed_precise} (noch {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let show = |r: &Rebuild| {
        bar.set_length(r.rooms_total as u64);
        bar.set_position(r.rooms_done as u64);
        let rate = r.messages as f64 / started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!("{} Nachrichten ({rate:.0}/s)", r.messages));
    };
    let result = search.rebuild(&show).await;
    bar.finish();
    let report = result.map_err(fail)?;
    print(&report)
}

#[cfg(test)]
mod tests {
    use crate::app::cli::parse_duration_secs as p;

    #[test]
    fn durations_parse_with_their_units() {
        assert_eq!(p("90s"), Ok(90));
        assert_eq!(p("1s"), Ok(1));
        assert_eq!(p("15m"), Ok(900));
        assert_eq!(p("12h"), Ok(43_200));
        assert_eq!(p("30d"), Ok(30 * 86_400));
        assert_eq!(p("2w"), Ok(14 * 86_400));
        assert_eq!(p("1d12h"), Ok(86_400 + 43_200));
        assert_eq!(p(" 3650d "), Ok(3650 * 86_400));
        // Zero parses; the range (1 s to 10 years) is Provisioning::set_retention's to check.
        assert_eq!(p("0s"), Ok(0));
    }

    #[test]
    fn durations_without_unit_or_malformed_are_refused() {
        for bad in ["", "30", "d", "30x", "-5d", "1.5d", "30 d", "5d3", "99999999999999999999s"] {
            assert!(p(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(p("30").expect_err("bare").contains("no unit"));
        assert!(p("9223372036854775807w").expect_err("overflow").contains("too long"));
    }
}
