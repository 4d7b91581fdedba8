//! Starting and stopping the whole service: database, homeserver client, processor and
//! HTTP listener.

pub mod cli;
pub mod config;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod router;
pub mod services;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::app::config::Config;
use crate::app::metrics::Metrics;
use crate::app::services::{AsApiState, Services, WebState};
use crate::features::client_file::files::FileStore;
use crate::matrix::dispatch::Assisto;
use crate::matrix::homeserver::HomeserverClient;
use crate::matrix::inbox;
use crate::matrix::ingest::IngestState;
use crate::matrix::processor::Processor;
use crate::matrix::processor::ProcessorTasks;
use crate::matrix::registration::Registration;
use crate::store::now_ms;
use crate::store::Db;

/// A running service.
pub struct Running {
    /// The address the listener is bound to.
    pub addr: SocketAddr,
    /// The database (tests inspect it).
    pub db: Db,
    /// The metrics.
    pub metrics: Metrics,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
    processor: Processor,
    processor_tasks: ProcessorTasks,
    search: crate::features::search::Search,
}

/// The tokens, from the configuration or else the registration file.
fn tokens(config: &Config) -> anyhow::Result<(String, String)> {
    let a = &config.appservice;
    if let (Some(as_t), Some(hs_t)) = (&a.as_token, &a.hs_token) {
        return Ok((as_t.clone(), hs_t.clone()));
    }
    let reg = Registration::load(&a.registration)?;
    if reg.sender_localpart != config.bot.localpart {
        anyhow::bail!(
            "bot.localpart ({}) differs from the registration's sender_localpart ({})",
            config.bot.localpart,
            reg.sender_localpart
        );
    }
    Ok((a.as_token.clone().unwrap_or(reg.as_token), a.hs_token.clone().unwrap_or(reg.hs_token)))
}

/// Starts everything and returns once the listener accepts connections.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let config = Arc::new(config);
    let (as_token, hs_token) = tokens(&config)?;
    // Bind first: if the address is taken, nothing else has been started yet.
    let listener = TcpListener::bind(config.appservice.bind)
        .await
        .with_context(|| format!("binding {}", config.appservice.bind))?;
    let db = Db::connect(&config.database).await.context("opening the database")?;
    let metrics = Metrics::new();
    let hs = HomeserverClient::new(&config.homeserver, as_token, metrics.clone())?;
    let bot_user_id = hs.user_id(&config.bot.localpart);
    let files_dir = config.files_dir()?;
    let files = FileStore::open(&files_dir)
        .await
        .with_context(|| format!("opening the file store {}", files_dir.display()))?;
    let hub = Arc::new(assisto_bridge::hub::Hub::new());
    let bus = Arc::new(crate::bus::InProcessBus::new());
    let provisioning = crate::features::institutions::Provisioning {
        db: db.clone(),
        hs: hs.clone(),
        bot: bot_user_id.clone(),
        config: config.clone(),
        files: files.clone(),
        bus: bus.clone(),
    };
    let checker = crate::features::rooms::checks::Checker::new(db.clone(), &config);
    let tz = config.bot.timezone.parse().unwrap_or(chrono_tz::Europe::Berlin);
    let live = crate::features::live::LiveDesk::new(
        db.clone(),
        hs.clone(),
        config.ids(),
        bus.clone(),
        config.live.clone(),
        tz,
    );
    let embed = crate::features::embed::EmbedCore::new(provisioning.clone(), live.clone(), hub.clone());
    bus.subscribe(Arc::new(EmbedSubscriber(embed.clone())));
    bus.subscribe(Arc::new(live.desk_subscriber()));
    live.set_watching(embed.clone());
    let export = crate::features::export::Exporter::new(
        db.clone(),
        hs.clone(),
        checker.clone(),
        bot_user_id.clone(),
        tz,
    );
    let search_dir = config.search_dir()?;
    let index = crate::features::search::index::SearchIndex::open(&search_dir)
        .with_context(|| format!("opening the search index {}", search_dir.display()))?;
    let search = crate::features::search::Search::new(db.clone(), hs.clone(), bot_user_id.clone(), index, tz);
    let counters = crate::features::counters::Counters::new(db.clone(), hs.clone(), live.clone());
    let handler = Arc::new(
        Assisto::new(provisioning.clone(), checker.clone(), live.clone())
            .with_counters(counters.clone())
            .with_embed(embed.clone())
            .with_export(export.clone())
            .with_search(search.clone()),
    );
    let p = &config.processing;
    let (processor, processor_tasks) =
        Processor::start(db.clone(), handler, metrics.clone(), p).await.context("starting the processor")?;
    if p.paused {
        tracing::warn!("processing is paused: transactions are recorded but not processed");
    }

    let desks = provisioning.clone();
    let tools =
        crate::features::tools::Tools::new(db.clone(), hs.clone(), checker.clone(), bot_user_id.clone());
    let state = Arc::new(Services {
        config: config.clone(),
        db: db.clone(),
        hs: hs.clone(),
        processor: processor.clone(),
        metrics: metrics.clone(),
        bot_user_id,
        checker,
        deleter: provisioning.deleter().with_search(search.clone()),
        live: live.clone(),
        tools,
        export,
        search: search.clone(),
        counters,
        statistics: crate::features::statistics::StatisticsService::new(
            db.clone(),
            tz,
            config.statistics.min_count,
        ),
        provisioning,
        as_api: AsApiState {
            hs_token_digest: crate::web::auth::digest(&hs_token),
            ingest: tokio::sync::Mutex::new(IngestState::new(
                inbox::last_txn_id(&db).await?.and_then(|t| t.parse::<u64>().ok()),
            )),
        },
        web: WebState {
            module_token_digest: config.appservice.module_token.as_deref().map(crate::web::auth::digest),
            admin_token_digest: config.appservice.admin_api_token.as_deref().map(crate::web::auth::digest),
            openid: Default::default(),
        },
    });
    let addr = listener.local_addr()?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let bridge = assisto_bridge::Bridge::new(
        embed,
        hub,
        config.files.max_document_bytes,
        config.files.max_documents_per_upload,
    );
    let deleter = state.deleter.clone();
    let router = router::router(state).nest_service("/_assisto/embed/v1", assisto_bridge::router(bridge));
    let mut rx = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(%addr, "application service listening");

    let mut background = Vec::new();
    background.push(tokio::spawn(setup_bot(hs.clone(), config.clone(), desks, shutdown_rx.clone())));
    background.push(jobs::spawn(
        jobs::Appointments {
            db: db.clone(),
            hs: hs.clone(),
            bot: hs.user_id(&config.bot.localpart),
            tz: config.bot.timezone.parse().unwrap_or(chrono_tz::Europe::Berlin),
            after: now_ms(),
        },
        shutdown_rx.clone(),
    ));
    let every = Duration::from_secs(config.deletion.check_interval_secs.max(1));
    background.push(jobs::spawn(jobs::Deletions { deleter, every }, shutdown_rx.clone()));
    background.push(jobs::spawn(jobs::BusRelay::new(db.clone(), bus), shutdown_rx.clone()));
    let every = Duration::from_millis(config.live.tick_ms.max(100));
    background.push(jobs::spawn(jobs::LiveTick { desk: live, every }, shutdown_rx.clone()));
    background.push(tokio::spawn(search_at_start(search.clone())));
    background.push(jobs::spawn(jobs::SearchCommit::new(search.clone()), shutdown_rx.clone()));
    let retention = Duration::from_secs(config.processing.dedup_retention_hours * 3600);
    background.push(jobs::spawn(jobs::InboxPrune { db: db.clone(), retention }, shutdown_rx));

    Ok(Running { addr, db, metrics, shutdown, server, background, processor, processor_tasks, search })
}

/// Brings the search index in step at start: the events processed since its last commit
/// (after a crash), or the whole index from the homeserver if it is new while rooms exist.
async fn search_at_start(search: crate::features::search::Search) {
    match search.catch_up().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(events = n, "search index caught up"),
        Err(e) => {
            tracing::warn!(error = %e, "catching up the search index failed; `assisto search reindex` rebuilds it")
        }
    }
    match search.needs_rebuild().await {
        Ok(true) => {
            tracing::info!("the search index is new: building it from the homeserver");
            let report = |r: &crate::features::search::Rebuild| {
                tracing::info!(
                    rooms = r.rooms_done,
                    of = r.rooms_total,
                    messages = r.messages,
                    "search index: building"
                );
            };
            if let Err(e) = search.rebuild(&report).await {
                tracing::warn!(error = %e, "building the search index failed; `assisto search reindex` tries again");
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "could not tell whether the search index needs building"),
    }
}

/// The web embed hears of changes from the live bus.
struct EmbedSubscriber(Arc<crate::features::embed::EmbedCore>);

#[async_trait::async_trait]
impl crate::bus::Subscriber for EmbedSubscriber {
    async fn changed(&self, change: &crate::bus::Change) {
        match change {
            crate::bus::Change::Client(client) => self.0.client_changed(client).await,
            crate::bus::Change::Conversation(room) => self.0.conversation_changed(room),
            crate::bus::Change::Availability(institution) => self.0.availability_changed(institution),
            crate::bus::Change::Desk(_) => {}
        }
    }
}

/// Registers the bot and sets its display name, retrying until the homeserver answers;
/// then makes sure every institution has its live-chat desk room (institutions created by
/// an earlier version get it now).
async fn setup_bot(
    hs: HomeserverClient,
    config: Arc<Config>,
    desks: crate::features::institutions::Provisioning,
    mut stop: watch::Receiver<bool>,
) {
    let bot = &config.bot;
    let user_id = hs.user_id(&bot.localpart);
    let mut wait = Duration::from_millis(500);
    loop {
        let result = async {
            hs.register_appservice_user(&bot.localpart).await?;
            hs.set_displayname(&user_id, &bot.displayname).await
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(bot = %user_id, "bot ready");
                ensure_desks(&desks).await;
                return;
            }
            Err(e) => tracing::warn!(error = %e, "setting up the bot failed; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// Every institution's desk room (see [`crate::features::institutions::Provisioning::ensure_desk`]);
/// one that fails is tried again at the next start or creation of the institution.
async fn ensure_desks(p: &crate::features::institutions::Provisioning) {
    let list = match crate::features::institutions::store::list(&p.db).await {
        Ok(l) => l,
        Err(e) => return tracing::warn!(error = %e, "listing institutions for their desk rooms failed"),
    };
    for inst in list {
        if let Err(e) = p.ensure_desk(&inst.id).await {
            tracing::warn!(institution = %inst.id, error = %e, "setting up the live-chat desk room failed");
        }
    }
}

impl Running {
    /// Stops accepting requests, lets running work finish, and closes the database.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        self.processor.shutdown(self.processor_tasks, Duration::from_secs(10)).await;
        for t in self.background {
            t.abort();
        }
        if let Err(e) = self.search.commit().await {
            tracing::warn!(error = %e, "the last commit of the search index failed; it catches up at the next start");
        }
        self.db.close().await;
        tracing::info!("stopped");
    }
}

/// Provisioning without the HTTP listener or the processor: for the admin CLI, which may
/// run beside the service on the same database.
///
/// It creates nothing on disk: a SQLite database must exist already (the service creates
/// it at its first start), and the file store is only named, not opened (opening it would
/// create its directories and clear uploads the running service is receiving).
pub async fn provisioning(config: Config) -> anyhow::Result<crate::features::institutions::Provisioning> {
    let config = Arc::new(config);
    let (as_token, _) = tokens(&config)?;
    if let Some(path) = config.database.sqlite_path() {
        if !path.exists() {
            anyhow::bail!(
                "no database at {} (database.url); start the service once to create it, or check \
                 the configuration (ASSISTO_CONFIG)",
                path.display()
            );
        }
    }
    let db = Db::connect(&config.database).await.context("opening the database")?;
    let hs = HomeserverClient::new(&config.homeserver, as_token, Metrics::new())?;
    let files = FileStore::at(&config.files_dir()?);
    Ok(crate::features::institutions::Provisioning {
        db: db.clone(),
        bot: hs.user_id(&config.bot.localpart),
        hs,
        config,
        files,
        // The CLI holds no connections: its changes reach the running service's through
        // the database.
        bus: Arc::new(crate::bus::outbox::OutboxBus::new(db.clone())),
    })
}
