//! The `assisto` binary: runs the service, or writes a registration.

use std::path::PathBuf;

use anyhow::Context;
use assisto_appservice::app::cli;
use assisto_appservice::app::config::Config;
use assisto_appservice::app::logging;
use assisto_appservice::matrix::registration::Registration;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "assisto", version, about = "assisto: online counselling on Matrix")]
struct Cli {
    /// Configuration file (YAML). ASSISTO_… environment variables override it.
    #[arg(long, short, env = "ASSISTO_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Run,
    /// Write a registration file with fresh random tokens for the homeserver.
    GenerateRegistration {
        /// The URL at which the homeserver reaches this service.
        #[arg(long, default_value = "http://localhost:8009")]
        url: String,
        /// The application service's ID on the homeserver.
        #[arg(long, default_value = "assisto")]
        id: String,
        /// Where to write it; refuses to overwrite unless --force.
        #[arg(long, short, default_value = "registration.yaml")]
        output: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Check the configuration and exit.
    CheckConfig,
    /// Institutions and their spaces.
    #[command(subcommand)]
    Institution(cli::InstitutionCmd),
    /// Departments of an institution.
    #[command(subcommand)]
    Department(cli::DepartmentCmd),
    /// Counsellors (local Matrix users).
    #[command(subcommand)]
    Counsellor(cli::CounsellorCmd),
    /// Clients (puppets).
    #[command(subcommand)]
    Client(cli::ClientCmd),
    /// Managed rooms.
    #[command(subcommand)]
    Room(cli::RoomCmd),
    /// Deletions of clients (pending and finished).
    #[command(subcommand)]
    Deletion(cli::DeletionCmd),
    /// The search index.
    #[command(subcommand)]
    Search(cli::SearchCmd),
    /// The newest audit-log entries.
    Audit {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            logging::init(&config.logging);
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            rt.block_on(run(config))
        }
        Command::GenerateRegistration { url, id, output, force } => {
            if output.exists() && !force {
                anyhow::bail!("{} exists; use --force to overwrite it", output.display());
            }
            let reg = Registration::generate(&config, &id, &url);
            let header = "assisto application-service registration. Contains secrets: keep it \
                          private.\nGive this file to the homeserver (app_service_config_files) \
                          and point appservice.registration at it.";
            std::fs::write(&output, reg.to_yaml(header))
                .with_context(|| format!("writing {}", output.display()))?;
            restrict_permissions(&output);
            println!("wrote {}", output.display());
            Ok(())
        }
        Command::CheckConfig => {
            println!("{config:#?}");
            Ok(())
        }
        Command::Institution(c) => admin(|| cli::institution(config, c)),
        Command::Department(c) => admin(|| cli::department(config, c)),
        Command::Counsellor(c) => admin(|| cli::counsellor(config, c)),
        Command::Client(c) => admin(|| cli::client(config, c)),
        Command::Room(c) => admin(|| cli::room(config, c)),
        Command::Deletion(c) => admin(|| cli::deletion(config, c)),
        Command::Search(c) => admin(|| cli::search(config, c)),
        Command::Audit { limit } => admin(|| cli::audit_log(config, limit)),
    }
}

/// Runs an admin command on a small runtime, logging only warnings.
fn admin<F, Fut>(f: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    logging::init(&assisto_appservice::app::config::LoggingConfig {
        level: "warn".into(),
        ..Default::default()
    });
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(f())
}

#[cfg(unix)]
fn restrict_permissions(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_: &std::path::Path) {}

async fn run(config: Config) -> anyhow::Result<()> {
    let running = assisto_appservice::start(config).await?;
    wait_for_signal().await;
    tracing::info!("stopping");
    running.stop().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
