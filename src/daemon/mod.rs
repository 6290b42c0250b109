//! The daemon (`payterm run`): wires devices → sale controller → engine → journal and gateways →
//! screens, serves the ECR API, and keeps the journal settled in the background.
//!
//! Threads and tasks: payments run on blocking threads (the engine is synchronous and bounded
//! by HTTP timeouts), each with its own journal connection; one recovery thread drains the
//! store-and-forward queue at start-up (in the background: READY does not wait for it), on a
//! timer and on reconnect; a probe thread sends each gateway a harmless signed request while
//! idle, and "online" is what the gateways' answers say ([`Health`]), never a TCP connect; the
//! sale controller owns the screen. The recovery loop, the probe loop and the controller's tick
//! each beat in [`liveness`]; the watchdog pings systemd only while every one of them is alive. SIGTERM stops taking sales and lets in-flight payments persist their state;
//! SIGHUP reloads the configuration. Nothing here decides an outcome: the engine does.

pub mod demo;
pub mod liveness;
pub mod sale;
pub mod sdnotify;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::config::Config;
use crate::core::machine::{AttemptState, ReverseAction};
use crate::engine::health::Health;
use crate::engine::recovery::OfflineDrain;
use crate::engine::{Engine, EngineError, Gateways, PayRequest, Settings};
use crate::gateway::upapi::Upapi;
use crate::journal::{AttemptRow, Journal, JournalError};
use crate::util;

/// A change of a payment's state, as the ECR event stream and the screen see it.
#[derive(Clone, Debug, Serialize)]
pub struct PaymentEvent {
    pub order_id: String,
    pub out_trade_no: Option<String>,
    /// An attempt state, or a sale step before any attempt exists (`WAITING_FOR_CODE`, …).
    pub state: String,
    pub amount_fen: u64,
    pub reverse_action: Option<ReverseAction>,
    pub wallet: Option<String>,
    pub code_url: Option<String>,
    pub note: String,
    pub at_ms: i64,
    /// Seconds the customer has left (show-code, confirming, QR).
    pub deadline_ms: Option<i64>,
    /// The ECR stream's JSON, shared by every subscriber's copy of the event.
    #[serde(skip)]
    pub wire: Wire,
}

/// Written once per event, by the first subscriber that sends it ([`PaymentEvent::wire_json`]).
#[derive(Clone, Debug, Default)]
pub struct Wire(Arc<std::sync::OnceLock<String>>);

impl PaymentEvent {
    pub fn from_row(r: &AttemptRow, note: &str) -> PaymentEvent {
        PaymentEvent {
            order_id: r.order_id.clone(),
            out_trade_no: Some(r.out_trade_no.clone()),
            state: r.machine.state.as_str().to_string(),
            amount_fen: r.amount.fen(),
            reverse_action: r.machine.reverse_action,
            wallet: r.wallet.map(|w| w.paytype().to_string()),
            code_url: r.code_url.clone(),
            note: note.to_string(),
            at_ms: util::now_ms(),
            deadline_ms: Some(r.machine.deadline_ms),
            wire: Wire::default(),
        }
    }

    /// The event as `/v1/events` sends it, serialised once however many streams are open.
    pub fn wire_json(&self) -> &str {
        self.wire.0.get_or_init(|| {
            serde_json::json!({
                "order_id": self.order_id, "out_trade_no": self.out_trade_no, "state": self.state,
                "amount_fen": self.amount_fen, "reverse_action": self.reverse_action,
                "wallet": self.wallet, "code_url": self.code_url, "note": self.note,
                "at_ms": self.at_ms,
            })
            .to_string()
        })
    }
}

/// Counters for the Prometheus endpoint.
#[derive(Default)]
pub struct Metrics {
    pub payments_started: AtomicU64,
    pub ecr_requests: AtomicU64,
    pub ecr_errors: AtomicU64,
    pub recovery_passes: AtomicU64,
    pub notifications: AtomicU64,
}

/// State every task of the daemon shares.
pub struct Shared {
    pub config: RwLock<Config>,
    pub journal_path: PathBuf,
    /// The journal connections every engine, lookup and count of this daemon borrows: kept
    /// for the process's life (see [`crate::journal::Pool`] for what a fresh one costs).
    pub journals: crate::journal::Pool,
    pub gateways: RwLock<Gateways>,
    pub settings: RwLock<Settings>,
    pub events: broadcast::Sender<PaymentEvent>,
    /// The journal failed its integrity check: no sales, the file is preserved.
    pub safe_mode: AtomicBool,
    /// The journal is open and checked: sales may start (start-up recovery runs beside them).
    pub ready: AtomicBool,
    /// Every gateway request's outcome, from every engine this daemon makes: "online" is read
    /// from here.
    pub health: Health,
    /// False after SIGTERM.
    pub accepting: AtomicBool,
    /// Set on SIGTERM: every engine stops its attempts at the next safe point (state durable).
    pub stop: Arc<AtomicBool>,
    /// The wall clock jumped against the monotonic clock: sales are frozen.
    pub clock_suspect: AtomicBool,
    /// Payments running on blocking threads.
    pub inflight: AtomicUsize,
    /// The loops' signs of life, for the watchdog.
    pub beats: liveness::Beats,
    pub unsettled: AtomicU64,
    pub metrics: Metrics,
    /// Wakes the recovery thread (reconnect, SIGHUP, a finished payment).
    pub recovery_kick: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
    /// The 云闪付 open-platform client when `[gateways.upapi]` is configured: one per daemon,
    /// so its backendToken is fetched once and shared by every contract charge and notice.
    pub upapi: RwLock<Option<Arc<Upapi>>>,
    /// The attempts being driven by some thread now: the recovery loop leaves them alone.
    pub claims: crate::engine::claims::Claims,
}

impl Shared {
    pub fn new(
        config: Config,
        journal_path: PathBuf,
        gateways: Gateways,
        settings: Settings,
    ) -> Arc<Shared> {
        let (events, _) = broadcast::channel(256);
        Arc::new(Shared {
            config: RwLock::new(config),
            // A sale, a recovery pass, the probe and a couple of ECR lookups at once.
            journals: crate::journal::Pool::new(&journal_path, 6),
            journal_path,
            gateways: RwLock::new(gateways),
            settings: RwLock::new(settings),
            events,
            safe_mode: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            health: Health::default(),
            accepting: AtomicBool::new(true),
            stop: Arc::new(AtomicBool::new(false)),
            clock_suspect: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
            beats: liveness::Beats::default(),
            unsettled: AtomicU64::new(0),
            metrics: Metrics::default(),
            recovery_kick: std::sync::Mutex::new(None),
            upapi: RwLock::new(None),
            claims: Default::default(),
        })
    }

    /// The 云闪付 client, if 无感支付 is configured.
    pub fn upapi(&self) -> Option<Arc<Upapi>> {
        read(&self.upapi).clone()
    }

    /// A fresh engine on a kept journal connection (given back when the engine is dropped).
    pub fn engine(&self) -> Result<Engine, EngineError> {
        let j = self.journals.get()?;
        let g = read(&self.gateways).clone();
        let s = read(&self.settings).clone();
        Ok(Engine::new(j, g, s)
            .stop_when(self.stop.clone())
            .with_claims(self.claims.clone())
            .with_health(self.health.clone()))
    }

    /// Online: every gateway that was asked answered its last request. Nothing asked yet
    /// counts as online (the first probe runs at start).
    pub fn online(&self) -> bool {
        self.health.all_online().unwrap_or(true)
    }

    /// Why a new sale cannot start now, if it cannot.
    pub fn sale_blocker(&self) -> Option<String> {
        if self.safe_mode.load(Ordering::SeqCst) {
            return Some(
                "the journal is damaged: payterm is in safe mode (see the log); no sales".into(),
            );
        }
        if !self.accepting.load(Ordering::SeqCst) {
            return Some("payterm is shutting down".into());
        }
        if !self.ready.load(Ordering::SeqCst) {
            return Some("start-up recovery is still running; try again in a moment".into());
        }
        if self.clock_suspect.load(Ordering::SeqCst) {
            return Some("the clock jumped; sales are frozen until the time is checked and payterm reloaded (SIGHUP)".into());
        }
        None
    }

    pub fn publish(&self, ev: PaymentEvent) {
        // The engine logs every attempt step it commits; a sale's steps before any attempt
        // (waiting for a code, abandoned, refused) are logged here.
        if ev.out_trade_no.is_none() {
            tracing::info!(order = %ev.order_id, state = %ev.state, "{}", ev.note);
        }
        let _ = self.events.send(ev);
    }

    pub fn kick_recovery(&self) {
        if let Ok(g) = self.recovery_kick.lock()
            && let Some(tx) = g.as_ref()
        {
            let _ = tx.send(());
        }
    }

    pub fn refresh_unsettled(&self) {
        if let Ok(j) = self.journals.get()
            && let Ok((n, _, _)) = j.uncertain()
        {
            self.unsettled.store(n as u64, Ordering::SeqCst);
        }
    }

    /// Runs a payment on a blocking thread, publishing every durable change. An error after
    /// the attempt was journaled comes back as [`PayEnd::Uncertain`] with the attempt, never as
    /// a refusal: money may have moved.
    pub fn spawn_payment(self: &Arc<Self>, req: PayRequest) -> tokio::task::JoinHandle<PayEnd> {
        let me = self.clone();
        me.inflight.fetch_add(1, Ordering::SeqCst);
        me.metrics.payments_started.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let result = match me.engine() {
                Err(e) => PayEnd::Refused(e.to_string()),
                Ok(mut e) => {
                    let tx = me.events.clone();
                    let mut obs = |r: &AttemptRow, note: &str| {
                        let _ = tx.send(PaymentEvent::from_row(r, note));
                    };
                    match e.pay(req, &mut obs) {
                        Ok(row) => PayEnd::Ended(Box::new(row)),
                        Err(err) => match err.attempt() {
                            Some(row) => {
                                tracing::error!(order = %row.order_id, "{err}");
                                PayEnd::Uncertain(Box::new(row.clone()), err.to_string())
                            }
                            None => PayEnd::Refused(err.to_string()),
                        },
                    }
                }
            };
            me.inflight.fetch_sub(1, Ordering::SeqCst);
            me.refresh_unsettled();
            let open = match &result {
                PayEnd::Ended(r) => r.machine.state.needs_work(),
                PayEnd::Uncertain(..) => true,
                PayEnd::Refused(_) => false,
            };
            if open {
                me.kick_recovery();
            }
            result
        })
    }
}

/// How a payment run by the daemon ended.
#[derive(Debug)]
pub enum PayEnd {
    /// The engine returned the attempt: final, or parked for recovery (uncertain).
    Ended(Box<AttemptRow>),
    /// Refused before any attempt was journaled: nothing was sent, no money moved.
    Refused(String),
    /// Failed after the attempt was journaled: its outcome is unknown.
    Uncertain(Box<AttemptRow>, String),
}

pub(crate) fn read<T: Clone>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match l.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Options of `payterm run` beyond the configuration.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Overrides `[ecr] listen`.
    pub ecr_listen: Option<String>,
    /// Where the web mirror listens when the board's display is `web`.
    pub mirror_listen: Option<String>,
    /// Overrides the journal path.
    pub journal: Option<PathBuf>,
}

/// What `run` tells its caller once it is serving (the demo prints it).
#[derive(Clone)]
pub struct Serving {
    pub ecr: String,
    pub mirror: Option<String>,
    /// The simulated scanner of a `sim` board: the demo and the tests type codes through it.
    pub sim_scanner: Option<Arc<crate::device::serial::SimScanner>>,
}

/// Runs the daemon until SIGTERM/SIGINT (or `stop` resolves). `started` receives the addresses.
pub async fn run(
    config_path: PathBuf,
    opts: RunOptions,
    started: Option<tokio::sync::oneshot::Sender<Serving>>,
    stop: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    use anyhow::Context;
    // Signals first: a SIGTERM during start-up recovery must end in a clean stop, not in the
    // default action.
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::pin!(stop);
    let cfg = Config::load(&config_path)?;
    let journal_path = opts.journal.clone().unwrap_or_else(|| cfg.journal_path());
    let gateways = Gateways::from_config(&cfg)?;
    let settings = Settings::from_config(&cfg)?;
    let shared = Shared::new(cfg.clone(), journal_path.clone(), gateways, settings);
    *shared.upapi.write().unwrap_or_else(|p| p.into_inner()) = upapi_from(&cfg)?;
    sdnotify::notify("STATUS=checking the journal");
    match Journal::open(&journal_path) {
        // Open, checked and migrated: sales may start. Start-up recovery runs in the background
        // (a silent gateway holds each of its requests for a whole timeout, so waiting for it
        // kept the counter closed for minutes); the claims keep it off a sale's attempt, and the
        // guards (open queue, uncertain total) decide as for any sale.
        Ok(_) => shared.ready.store(true, Ordering::SeqCst),
        Err(e @ JournalError::Damaged { .. }) => {
            tracing::error!("{e}");
            shared.safe_mode.store(true, Ordering::SeqCst);
        }
        Err(e) => return Err(e).context("opening the journal"),
    }

    // Start-up recovery, then the periodic store-and-forward drain.
    let (kick_tx, kick_rx) = std::sync::mpsc::channel::<()>();
    if let Ok(mut g) = shared.recovery_kick.lock() {
        *g = Some(kick_tx);
    }
    let rec = shared.clone();
    let recovery_thread = std::thread::Builder::new()
        .name("recovery".into())
        .spawn(move || recovery_loop(rec, kick_rx))
        .context("starting the recovery thread")?;

    // Devices, screens and the sale controller.
    let board = match &cfg.file.board {
        Some(b) => {
            Some(crate::device::load_board(&cfg.resolve(b)).context("loading the board profile")?)
        }
        None => None,
    };
    let (dev_tx, dev_rx) = mpsc::channel(64);
    let mut devices = board
        .as_ref()
        .map(|b| crate::device::start_input_devices(b, dev_tx.clone()));
    let face = match board.as_ref().and_then(|b| b.face.clone()) {
        Some(fc) => match crate::device::face::open_face_module(&fc, dev_tx.clone()) {
            Ok((h, _task)) => Some(h),
            Err(e) => {
                tracing::error!("face module: {e}");
                None
            }
        },
        None => None,
    };
    let indicators = board.as_ref().and_then(|b| b.gpio.clone()).and_then(|g| {
        match crate::device::indicator::start_indicators(&g) {
            Ok((h, _)) => Some(h),
            Err(e) => {
                tracing::warn!("indicators: {e}");
                None
            }
        }
    });
    let sim_scanner = devices
        .as_mut()
        .and_then(|d| d.sim_scanners.pop())
        .map(Arc::new);
    let (ui_tx, ui_rx) = mpsc::channel(64);
    let (screens, mirror) = sale::screens_for(board.as_ref(), &cfg, &opts, ui_tx.clone()).await?;
    let (sale_tx, sale_rx) = mpsc::channel(64);
    let controller = sale::Controller::new(
        shared.clone(),
        screens,
        face,
        indicators,
        sim_scanner.clone(),
    );
    tokio::spawn(controller.run(sale_rx, dev_rx, ui_rx));

    // The ECR API.
    let ecr_listen = opts
        .ecr_listen
        .clone()
        .unwrap_or_else(|| cfg.file.ecr.listen.clone());
    let token = match &cfg.file.ecr.token_file {
        Some(t) => Some(cfg.read_secret("ECR token", t)?),
        None => None,
    };
    let router = crate::ecr::router(shared.clone(), sale_tx.clone(), token);
    let ecr_addr = crate::ecr::serve(&ecr_listen, router).await?;

    // The gateway probes and the watchdog.
    let prober = shared.clone();
    std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || probe_loop(prober))
        .context("starting the probe thread")?;
    tokio::spawn(watchdog(shared.clone()));
    tokio::spawn(clock_watch(shared.clone()));

    // Ready once the journal is open and checked; a stop before that skips straight to
    // shutting down.
    let mut stopped = false;
    while !shared.ready.load(Ordering::SeqCst) && !shared.safe_mode.load(Ordering::SeqCst) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = term.recv() => { stopped = true; break; }
            _ = int.recv() => { stopped = true; break; }
            _ = &mut stop => { stopped = true; break; }
        }
    }
    if !stopped {
        sdnotify::notify("READY=1\nSTATUS=taking payments");
        tracing::info!(ecr = %ecr_addr, mirror = ?mirror, "payterm is running");
        if let Some(s) = started {
            let _ = s.send(Serving {
                ecr: ecr_addr,
                mirror,
                sim_scanner,
            });
        }
        loop {
            tokio::select! {
                _ = hup.recv() => reload(&shared, &config_path),
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = &mut stop => break,
            }
        }
    } else {
        tracing::info!("stop requested during start-up recovery");
    }
    sdnotify::notify("STOPPING=1\nSTATUS=finishing in-flight payments");
    shared.accepting.store(false, Ordering::SeqCst);
    // In-flight payments persist every step and stop at their next wait (or after the gateway
    // call in flight); recovery resumes them at the next start. Without this they ran their
    // whole query schedule, and the runtime's exit waited for them past systemd's stop timeout.
    shared.stop.store(true, Ordering::SeqCst);
    for _ in 0..100 {
        if shared.inflight.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Ok(mut g) = shared.recovery_kick.lock() {
        *g = None;
    }
    let _ = tokio::task::spawn_blocking(move || recovery_thread.join()).await;
    if let Some(d) = devices {
        for t in d.tasks {
            t.abort();
        }
    }
    crate::ecr::cleanup(&ecr_listen);
    tracing::info!("payterm stopped");
    Ok(())
}

/// The 云闪付 client for `[gateways.upapi]`, if configured.
fn upapi_from(cfg: &Config) -> Result<Option<Arc<Upapi>>, crate::config::ConfigError> {
    match &cfg.file.gateways.upapi {
        None => Ok(None),
        Some(u) => Upapi::from_config(cfg, u)
            .map(|c| Some(Arc::new(c)))
            .map_err(|e| crate::config::ConfigError::Invalid(format!("gateways.upapi: {e}"))),
    }
}

fn reload(shared: &Arc<Shared>, path: &std::path::Path) {
    match Config::load(path).and_then(|c| {
        Ok((
            Gateways::from_config(&c)?,
            Settings::from_config(&c)?,
            upapi_from(&c)?,
            c,
        ))
    }) {
        Ok((g, s, u, c)) => {
            *shared.gateways.write().unwrap_or_else(|p| p.into_inner()) = g;
            *shared.upapi.write().unwrap_or_else(|p| p.into_inner()) = u;
            *shared.settings.write().unwrap_or_else(|p| p.into_inner()) = s;
            *shared.config.write().unwrap_or_else(|p| p.into_inner()) = c;
            shared.clock_suspect.store(false, Ordering::SeqCst);
            tracing::info!(
                "configuration reloaded (board and listen addresses take effect at restart)"
            );
            shared.kick_recovery();
        }
        Err(e) => tracing::error!("reload refused, keeping the running configuration: {e}"),
    }
}

/// How often the journal is checked again (`quick_check`) and pruned, after start-up.
const DAILY: Duration = Duration::from_secs(24 * 3600);

/// Start-up recovery, then the store-and-forward drain whenever something is due. It beats
/// between attempts, after every journaled step and while it waits; one gateway request may
/// hold it for the request's whole timeout, which its liveness bound allows.
///
/// Between passes it sleeps until the earliest due time the journal gives
/// ([`Journal::recovery_due`]), a kick, or `recovery.interval_ms` at most (another process
/// may have left work); a wake with nothing due costs two index lookups, whatever the
/// journal's size. A full pass runs at start, on a kick and when something is due.
fn recovery_loop(shared: Arc<Shared>, kick: std::sync::mpsc::Receiver<()>) {
    let beat = |s: &Shared| s.beats.beat(liveness::Loop::Recovery);
    let mut first = true;
    let mut kicked = false;
    // `Journal::open` checked the journal at start; the first prune runs after the first pass.
    let mut checked = std::time::Instant::now();
    let mut pruned: Option<std::time::Instant> = None;
    loop {
        beat(&shared);
        let due = recovery_due(&shared);
        if !shared.safe_mode.load(Ordering::SeqCst)
            && (first || kicked || due.is_some_and(|t| t <= util::now_ms()))
        {
            recovery_pass(&shared, first);
        }
        shared.refresh_unsettled();
        if !shared.safe_mode.load(Ordering::SeqCst) {
            if checked.elapsed() >= DAILY {
                checked = std::time::Instant::now();
                daily_check(&shared);
            }
            if pruned.is_none_or(|t| t.elapsed() >= DAILY) {
                pruned = Some(std::time::Instant::now());
                daily_prune(&shared);
            }
        }
        first = false;
        kicked = false;
        let interval =
            Duration::from_millis(read(&shared.config).file.recovery.interval_ms.max(100));
        let wait = match recovery_due(&shared) {
            Some(t) if t > util::now_ms() => Duration::from_millis((t - util::now_ms()) as u64)
                .clamp(Duration::from_millis(100), interval),
            _ => interval,
        };
        let until = std::time::Instant::now() + wait;
        loop {
            beat(&shared);
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match kick.recv_timeout(left.min(Duration::from_secs(1))) {
                Ok(()) => {
                    kicked = true;
                    break;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// The journal's next due time; on an error, now (a pass will report it).
fn recovery_due(shared: &Shared) -> Option<i64> {
    match shared
        .journals
        .get()
        .and_then(|j| j.recovery_due(util::now_ms()))
    {
        Ok(due) => due,
        Err(e) => {
            tracing::debug!("recovery: reading the due time: {e}");
            Some(util::now_ms())
        }
    }
}

fn recovery_pass(shared: &Arc<Shared>, first: bool) {
    match shared.engine() {
        Ok(mut e) => {
            let hb = shared.clone();
            let tx = shared.events.clone();
            let mut obs = |r: &AttemptRow, note: &str| {
                hb.beats.beat(liveness::Loop::Recovery);
                let _ = tx.send(PaymentEvent::from_row(r, note));
            };
            // At start-up, settle what can be settled now without long waits.
            let wait = if first { 2_000 } else { 1_000 };
            // Offline contract deductions: the configured tries, and only sent once
            // the 云闪付 platform answers again.
            let mut drain = OfflineDrain::from_config(&read(&shared.config));
            if let Some(u) = shared.upapi() {
                drain.submit = crate::engine::offline::uplink_answers(&mut e, &u);
            }
            // Pre-authorisation operations left unknown (engine::preauth): their
            // clients are built only when one needs a query.
            let preauth =
                crate::engine::preauth::PreAuthChannels::from_config(&read(&shared.config));
            match e.recover_all(wait, drain, &preauth, &mut obs) {
                Ok(rep) => {
                    if !rep.attempts.is_empty() || !rep.preauths.is_empty() {
                        tracing::info!(
                            looked_at = rep.attempts.len(),
                            preauths = rep.preauths.len(),
                            still_open = rep.still_open(),
                            "recovery pass"
                        );
                    }
                }
                Err(e) => {
                    tracing::error!("recovery: {e}");
                    if matches!(e, EngineError::Journal(JournalError::Damaged { .. })) {
                        shared.safe_mode.store(true, Ordering::SeqCst);
                    }
                }
            }
            shared
                .metrics
                .recovery_passes
                .fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::error!("recovery cannot open the journal: {e}"),
    }
}

/// The daily integrity check: a journal damaged while running stops new sales as one damaged
/// at start does.
fn daily_check(shared: &Shared) {
    match shared.journals.get().and_then(|j| j.check()) {
        Ok(()) => tracing::debug!("daily journal check: ok"),
        Err(e @ JournalError::Damaged { .. }) => {
            tracing::error!("{e}");
            shared.safe_mode.store(true, Ordering::SeqCst);
        }
        Err(e) => tracing::warn!("daily journal check could not run: {e}"),
    }
}

/// Retention (`[journal] keep_days`): settled orders older than that are archived, then
/// removed ([`Journal::prune`]).
fn daily_prune(shared: &Shared) {
    let keep_days = read(&shared.config).file.journal.keep_days;
    if keep_days == 0 {
        return;
    }
    let now = util::now_ms();
    let cutoff = now - i64::from(keep_days) * 86_400_000;
    match shared.journals.get().and_then(|mut j| j.prune(cutoff, now)) {
        Ok(r) if r.orders > 0 || r.sales > 0 => tracing::info!(
            orders = r.orders,
            attempts = r.attempts,
            sales = r.sales,
            archive = %r.archive.display(),
            "pruned settled orders older than {keep_days} days"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("pruning the journal: {e}"),
    }
}

/// Pings systemd every quarter interval while every loop beat within its bound
/// ([`liveness::Bounds`]), and stops when one did not: systemd then restarts payterm one
/// interval later. A loop blocked in one gateway request is alive; a loop silent past its
/// request timeout and a margin is wedged.
async fn watchdog(shared: Arc<Shared>) {
    let Some(interval) = sdnotify::watchdog_interval() else {
        return;
    };
    let mut told = false;
    loop {
        let bounds = liveness::Bounds::from_config(&read(&shared.config));
        match shared.beats.stuck(&bounds) {
            None => {
                sdnotify::notify("WATCHDOG=1");
                told = false;
            }
            Some((l, silent_ms)) if !told => {
                told = true;
                tracing::error!(
                    silent_ms,
                    "the {} is stuck; letting the watchdog restart payterm",
                    l.name()
                );
            }
            Some(_) => {}
        }
        tokio::time::sleep(interval / 4).await;
    }
}

/// Asks each gateway a harmless signed question every `recovery.interval_ms` (2–30 s) while no
/// payment is running (a payment's own requests are recorded then), one probe at a time. The
/// answers, and every other request's, make "online"; a return to online wakes recovery.
fn probe_loop(shared: Arc<Shared>) {
    let beat = |s: &Shared| s.beats.beat(liveness::Loop::Probe);
    let mut was = shared.online();
    while !shared.stop.load(Ordering::SeqCst) {
        beat(&shared);
        if !shared.safe_mode.load(Ordering::SeqCst) && shared.inflight.load(Ordering::SeqCst) == 0 {
            match shared.engine() {
                Ok(e) => {
                    for (gateway, answered, why) in e.probe_gateways() {
                        if !answered {
                            tracing::debug!(%gateway, "probe unanswered: {why}");
                        }
                    }
                }
                Err(e) => tracing::warn!("probe: {e}"),
            }
            beat(&shared);
        }
        let now = shared.online();
        if now && !was {
            tracing::info!("the gateways answer again: draining the queue");
            shared.kick_recovery();
        } else if !now && was {
            tracing::warn!(
                "a gateway does not answer: new payments will be uncertain until it does"
            );
        }
        was = now;
        let every = read(&shared.config)
            .file
            .recovery
            .interval_ms
            .clamp(2_000, 30_000);
        let until = std::time::Instant::now() + Duration::from_millis(every);
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || shared.stop.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(200)));
            beat(&shared);
        }
    }
}

/// Compares the wall clock with the monotonic clock; a jump freezes new sales.
async fn clock_watch(shared: Arc<Shared>) {
    let start = std::time::Instant::now();
    let wall0 = util::now_ms();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mono = start.elapsed().as_millis() as i64;
        let drift = (util::now_ms() - wall0) - mono;
        let limit = read(&shared.settings).clock_jump_ms;
        if drift.abs() > limit && !shared.clock_suspect.swap(true, Ordering::SeqCst) {
            tracing::error!(
                drift_ms = drift,
                "the wall clock jumped; new sales are frozen"
            );
        }
    }
}

impl AttemptState {
    /// What the cashier should be told, in one short sentence.
    pub fn cashier_words(self, action: Option<ReverseAction>) -> &'static str {
        match (self, action) {
            (AttemptState::Paid, _) => "PAID",
            (AttemptState::Failed, _) => "Payment failed — customer was not charged",
            (AttemptState::Reversed, Some(ReverseAction::Refund)) => {
                "Payment failed — customer will be refunded"
            }
            (AttemptState::Reversed, _) => "Payment failed — customer was not charged",
            (AttemptState::PayIntent | AttemptState::Querying, _) => {
                "Waiting for the payment result"
            }
            _ => "Payment uncertain — do NOT collect again; it is being settled",
        }
    }
}
