//! The sale controller: what the terminal is doing at the counter, and so what the screen shows.
//!
//! One sale at a time, as one scanner and one screen allow. A sale starts from the ECR API or
//! from the keypad (amount, Enter), waits for a payment code (scanner or web mirror) or runs the
//! face module's steps, and is then handed to the engine; from there the engine's events drive
//! the screen until the outcome is shown. The controller holds a payment code only until the
//! engine takes it. It decides nothing about money.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{PaymentEvent, RunOptions, Shared, read};
use crate::config::Config;
use crate::core::authcode::{AuthCode, Wallet};
use crate::core::money::Amount;
use crate::device::DeviceEvent;
use crate::device::board::{BoardProfile, DisplayKind};
use crate::device::face::{FaceEvent, FaceHandle};
use crate::device::indicator::{Indication, IndicatorHandle};
use crate::device::serial::SimScanner;
use crate::engine::{PayRequest, new_out_trade_no};
use crate::gateway::{Credential, FaceCode, OrderDetails};
use crate::ui::display::Screens;
use crate::ui::model::{
    DeclineReason, DiagItem, DiagStatus, FaceStep, Key, Locale, RefundStep, Screen, StatusBar,
    UiInput,
};
use crate::util;

/// How a sale is to be paid. Its Debug masks the payment code (a derived one printed it).
#[derive(Clone)]
pub enum SaleMethod {
    /// A payment code: given by the caller, or read from the scanner when `None`.
    Code(Option<String>),
    Face {
        wallet: Wallet,
    },
    Qr {
        wallet: Wallet,
        notify_url: Option<String>,
    },
}

impl std::fmt::Debug for SaleMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaleMethod::Code(c) => f
                .debug_tuple("Code")
                .field(&c.as_deref().map(crate::core::authcode::mask))
                .finish(),
            SaleMethod::Face { wallet } => f.debug_struct("Face").field("wallet", wallet).finish(),
            SaleMethod::Qr { wallet, notify_url } => f
                .debug_struct("Qr")
                .field("wallet", wallet)
                .field("notify_url", notify_url)
                .finish(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SaleRequest {
    pub order_id: String,
    pub amount: Amount,
    pub method: SaleMethod,
    pub details: OrderDetails,
}

pub enum SaleCmd {
    Start {
        req: SaleRequest,
        reply: oneshot::Sender<Result<PaymentEvent, String>>,
    },
    /// Abandons a sale that has not reached the engine yet. `false`: it is not waiting here.
    Abandon {
        order_id: String,
        reply: oneshot::Sender<bool>,
    },
    /// The waiting sale's current event, if `order_id` is the one waiting here.
    Waiting {
        order_id: String,
        reply: oneshot::Sender<Option<PaymentEvent>>,
    },
    FaceDone {
        order_id: String,
        result: Result<(FaceCode, String), String>,
    },
    RefundDone {
        order_id: String,
        result: Result<(u64, String), String>,
    },
    /// A kiosk's 云闪付 contract charge takes the counter, and the screen shows it processing.
    /// `Err` (why) while a sale is at the counter; `Ok(ticket)` names it in `ContractDone`.
    ContractBegin {
        order_id: Option<String>,
        amount_fen: u64,
        reply: oneshot::Sender<Result<u64, String>>,
    },
    /// The contract charge `ticket` ended: its outcome is shown as a sale's would be (`None`:
    /// nothing to show, the counter is free again).
    ContractDone { ticket: u64, screen: Option<Screen> },
    /// The engine returned a sale's payment: its outcome ends the running phase, whatever
    /// events came (or did not come) before.
    PaymentDone {
        order_id: String,
        end: super::PayEnd,
    },
}

/// The longest a contract charge holds the counter without reporting back. Its answer always
/// comes (a dropped request reports too); this only bounds a lost one.
const CONTRACT_HOLD_MAX: Duration = Duration::from_secs(300);

enum Phase {
    Idle,
    Entering(String),
    WaitingCode {
        sale: SaleRequest,
        until: Instant,
    },
    Face {
        sale: SaleRequest,
        step: FaceStep,
    },
    Running {
        order_id: String,
        amount: Amount,
        last: Option<PaymentEvent>,
        /// When the journal was last read for this sale (see [`Controller::check_running`]).
        checked: Instant,
    },
    Showing {
        screen: Screen,
        until: Instant,
    },
    /// A sale ended without a known outcome: "uncertain — do not collect again" stays on the
    /// screen until the journal says how it ended (then that outcome is shown) or the cashier
    /// acknowledges it (any key) or starts the next sale.
    Uncertain {
        order_id: String,
        amount_fen: u64,
        checked: Instant,
    },
    /// A kiosk's contract charge runs in the ECR API; the counter waits for its outcome.
    Contract {
        ticket: u64,
        order_id: Option<String>,
        amount_fen: u64,
        until: Instant,
    },
    Diagnostics,
    Refund(RefundStep),
}

pub struct Controller {
    shared: Arc<Shared>,
    screens: Option<Screens>,
    face: Option<FaceHandle>,
    indicators: Option<IndicatorHandle>,
    sim_scanner: Option<Arc<SimScanner>>,
    phase: Phase,
    self_tx: Option<mpsc::Sender<SaleCmd>>,
    code_wait: Duration,
    /// The last contract charge's ticket.
    contract_ticket: u64,
    /// A long-lived connection for reading the running sale's attempt, and the journal's
    /// `data_version` it last saw: another thread or process committed when it changes.
    journal: Option<crate::journal::Journal>,
    seen_version: Option<i64>,
}

/// A running sale's attempt is re-read from the journal at least this often, whatever the
/// engine reports: another process (`payterm recover`, `payterm cancel`) may have settled it.
const RECHECK: Duration = Duration::from_secs(3);

/// Builds the screens the board asks for. The web mirror (if any) is served here too; its URL is
/// returned.
pub async fn screens_for(
    board: Option<&BoardProfile>,
    cfg: &Config,
    opts: &RunOptions,
    ui_tx: mpsc::Sender<UiInput>,
) -> anyhow::Result<(Option<Screens>, Option<String>)> {
    let Some(b) = board else {
        return Ok((None, None));
    };
    let d = &b.display;
    let size = if d.rotation == 90 || d.rotation == 270 {
        (d.height, d.width)
    } else {
        (d.width, d.height)
    };
    let locale: Locale = cfg.file.terminal.locale.parse().unwrap_or_default();
    let mut screens = Screens::new(size, locale)?;
    let mut mirror_url = None;
    match d.kind {
        DisplayKind::Web => {
            let (publisher, frames) = crate::ui::web::mirror_channel(size);
            screens.add(Box::new(publisher))?;
            let listen = opts
                .mirror_listen
                .clone()
                .unwrap_or_else(|| "127.0.0.1:8080".into());
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| anyhow::anyhow!("the web mirror cannot listen on {listen}: {e}"))?;
            let addr = listener.local_addr()?;
            let router = crate::ui::web::web_router(frames, ui_tx);
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
            mirror_url = Some(format!("http://{addr}/"));
        }
        DisplayKind::Png => {
            let path = d
                .device
                .clone()
                .unwrap_or_else(|| cfg.journal_path().with_file_name("screen.png"));
            screens.add(Box::new(crate::ui::display::PngDisplay::new(path, size)))?;
        }
        DisplayKind::Fbdev => {
            let dev = d.device.clone().unwrap_or_else(|| "/dev/fb0".into());
            match crate::ui::fbdev::FbDisplay::open(&dev, Some(std::path::Path::new("/dev/tty0"))) {
                Ok(fb) => screens.add(Box::new(fb))?,
                Err(e) => tracing::error!(
                    "framebuffer {}: {e}; running without a screen",
                    dev.display()
                ),
            }
        }
    }
    Ok((Some(screens), mirror_url))
}

impl Controller {
    pub fn new(
        shared: Arc<Shared>,
        screens: Option<Screens>,
        face: Option<FaceHandle>,
        indicators: Option<IndicatorHandle>,
        sim_scanner: Option<Arc<SimScanner>>,
    ) -> Controller {
        Controller {
            shared,
            screens,
            face,
            indicators,
            sim_scanner,
            phase: Phase::Idle,
            self_tx: None,
            code_wait: Duration::from_secs(60),
            contract_ticket: 0,
            journal: None,
            seen_version: None,
        }
    }

    pub async fn run(
        mut self,
        mut cmds: mpsc::Receiver<SaleCmd>,
        mut devices: mpsc::Receiver<DeviceEvent>,
        mut ui: mpsc::Receiver<UiInput>,
    ) {
        let (tx, mut own) = mpsc::channel(8);
        self.self_tx = Some(tx);
        let mut events = self.shared.events.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut last_drawn: Option<(Screen, StatusBar)> = None;
        loop {
            tokio::select! {
                Some(c) = cmds.recv() => self.on_cmd(c),
                Some(c) = own.recv() => self.on_cmd(c),
                Some(d) = devices.recv() => self.on_device(d),
                Some(i) = ui.recv() => self.on_ui(i).await,
                ev = events.recv() => match ev {
                    Ok(ev) => self.on_payment(ev),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
                _ = tick.tick() => self.on_tick(),
            }
            let now = (self.screen(), self.status());
            if last_drawn.as_ref() != Some(&now) {
                if let Some(s) = self.screens.as_mut()
                    && let Err(e) = s.show(&now.0, &now.1)
                {
                    tracing::warn!("screen: {e}");
                }
                last_drawn = Some(now);
            }
        }
    }

    fn status(&self) -> StatusBar {
        let cfg = read(&self.shared.config);
        let t = util::beijing_human(util::now_ms());
        StatusBar {
            merchant: cfg.file.terminal.merchant_name.clone(),
            time: t.get(11..16).unwrap_or("").to_string(),
            online: self.shared.online(),
            unsettled: self.shared.unsettled.load(Ordering::SeqCst) as u32,
        }
    }

    fn secs_until(at_ms: Option<i64>) -> u32 {
        at_ms
            .map(|t| ((t - util::now_ms()).max(0) / 1000) as u32)
            .unwrap_or(0)
    }

    fn screen(&self) -> Screen {
        match &self.phase {
            Phase::Idle => Screen::Idle,
            Phase::Entering(s) => Screen::AmountEntry { input: s.clone() },
            Phase::WaitingCode { sale, until } => Screen::ShowCode {
                amount_fen: sale.amount.fen(),
                seconds_left: until.saturating_duration_since(Instant::now()).as_secs() as u32,
            },
            Phase::Face { sale, step } => Screen::Face {
                amount_fen: sale.amount.fen(),
                step: *step,
            },
            Phase::Running { amount, last, .. } => match last {
                None => Screen::Processing {
                    amount_fen: amount.fen(),
                },
                Some(ev) => running_screen(ev),
            },
            Phase::Showing { screen, .. } => screen.clone(),
            Phase::Uncertain { amount_fen, .. } => Screen::Uncertain {
                amount_fen: *amount_fen,
            },
            Phase::Contract { amount_fen, .. } => Screen::Processing {
                amount_fen: *amount_fen,
            },
            Phase::Refund(step) => Screen::RefundFlow(step.clone()),
            Phase::Diagnostics => Screen::Diagnostics {
                items: self.diagnostics(),
            },
        }
    }

    fn diagnostics(&self) -> Vec<DiagItem> {
        let s = &self.shared;
        let cfg = read(&s.config);
        let ok = |b: bool| if b { DiagStatus::Ok } else { DiagStatus::Fail };
        let mut items = vec![
            DiagItem::new("version", env!("CARGO_PKG_VERSION"), DiagStatus::Info),
            DiagItem::new("terminal", cfg.file.terminal.id.clone(), DiagStatus::Info),
            DiagItem::new(
                "network",
                if s.online() { "online" } else { "OFFLINE" },
                ok(s.online()),
            ),
        ];
        items.extend(gateway_rows(
            &read(&s.gateways).names(),
            &s.health.snapshot(),
        ));
        items.extend([
            DiagItem::new(
                "journal",
                if s.safe_mode.load(Ordering::SeqCst) {
                    "DAMAGED (safe mode)"
                } else {
                    "ok"
                },
                ok(!s.safe_mode.load(Ordering::SeqCst)),
            ),
            DiagItem::new(
                "unsettled",
                s.unsettled.load(Ordering::SeqCst).to_string(),
                if s.unsettled.load(Ordering::SeqCst) == 0 {
                    DiagStatus::Ok
                } else {
                    DiagStatus::Warn
                },
            ),
            DiagItem::new(
                "clock",
                if s.clock_suspect.load(Ordering::SeqCst) {
                    "JUMPED"
                } else {
                    "ok"
                },
                ok(!s.clock_suspect.load(Ordering::SeqCst)),
            ),
            DiagItem::new(
                "face module",
                if self.face.is_some() {
                    "present"
                } else {
                    "none"
                },
                DiagStatus::Info,
            ),
        ]);
        items
    }

    fn show_for(&mut self, screen: Screen, secs: u64) {
        self.phase = Phase::Showing {
            screen,
            until: Instant::now() + Duration::from_secs(secs),
        };
    }

    fn indicate(&self, i: Indication) {
        if let Some(h) = &self.indicators {
            h.show(i);
        }
    }

    fn busy_with(&self) -> Option<String> {
        match &self.phase {
            Phase::WaitingCode { sale, .. } | Phase::Face { sale, .. } => {
                Some(sale.order_id.clone())
            }
            Phase::Running { order_id, .. } => Some(order_id.clone()),
            // The cashier's refund is with the gateway: its result must reach the screen.
            Phase::Refund(RefundStep::Processing { order, .. }) => {
                Some(format!("{order} (a refund)"))
            }
            Phase::Contract { order_id, .. } => Some(format!(
                "{} (a 云闪付 contract charge)",
                order_id.as_deref().unwrap_or("-")
            )),
            _ => None,
        }
    }

    fn on_cmd(&mut self, c: SaleCmd) {
        match c {
            SaleCmd::Start { req, reply } => {
                let _ = reply.send(self.start(req));
            }
            SaleCmd::Abandon { order_id, reply } => {
                let waiting = matches!(&self.phase, Phase::WaitingCode { sale, .. } | Phase::Face { sale, .. } if sale.order_id == order_id);
                if waiting {
                    self.abandon("cancelled before any payment request");
                }
                let _ = reply.send(waiting);
            }
            SaleCmd::Waiting { order_id, reply } => {
                let ev = match &self.phase {
                    Phase::WaitingCode { sale, until } if sale.order_id == order_id => {
                        Some(self.sale_event(
                            sale,
                            "WAITING_FOR_CODE",
                            "show your payment code",
                            Some(*until),
                        ))
                    }
                    Phase::Face { sale, .. } if sale.order_id == order_id => {
                        Some(self.sale_event(sale, "FACE", "face recognition", None))
                    }
                    _ => None,
                };
                let _ = reply.send(ev);
            }
            SaleCmd::ContractBegin {
                order_id,
                amount_fen,
                reply,
            } => {
                // The same rule as a sale from the ECR API: whatever is at the counter and has
                // not reached an outcome keeps it.
                let r = match self.busy_with() {
                    Some(o) => Err(format!(
                        "the terminal is busy with order {o}; try again when it is done"
                    )),
                    None => {
                        self.contract_ticket += 1;
                        Ok(self.contract_ticket)
                    }
                };
                let ticket = r.as_ref().ok().copied();
                // Only a request still waiting for the answer takes the counter.
                if reply.send(r).is_ok()
                    && let Some(ticket) = ticket
                {
                    self.phase = Phase::Contract {
                        ticket,
                        order_id,
                        amount_fen,
                        until: Instant::now() + CONTRACT_HOLD_MAX,
                    };
                }
            }
            SaleCmd::ContractDone { ticket, screen } => {
                if !matches!(&self.phase, Phase::Contract { ticket: t, .. } if *t == ticket) {
                    return;
                }
                match screen {
                    Some(screen) => {
                        if let Some(i) = indication_for(&screen) {
                            self.indicate(i);
                        }
                        self.show_for(screen, 6);
                    }
                    None => self.phase = Phase::Idle,
                }
            }
            SaleCmd::RefundDone { order_id, result } => {
                if !matches!(&self.phase, Phase::Refund(RefundStep::Processing { order, .. }) if *order == order_id)
                {
                    return;
                }
                match result {
                    Ok((fen, state)) if state == "DONE" => {
                        self.indicate(Indication::Paid);
                        self.show_for(Screen::Refunded { refund_fen: fen }, 6);
                    }
                    Ok((_, state)) => {
                        self.indicate(Indication::Attention);
                        self.phase = Phase::Refund(RefundStep::Failed {
                            order: order_id,
                            message: format!("refund {state}: it is journaled and will be settled"),
                        });
                    }
                    Err(message) => {
                        self.indicate(Indication::Declined);
                        self.phase = Phase::Refund(RefundStep::Failed {
                            order: order_id,
                            message: short(&message),
                        });
                    }
                }
            }
            SaleCmd::PaymentDone { order_id, end } => {
                let Phase::Running {
                    order_id: running,
                    amount,
                    ..
                } = &self.phase
                else {
                    return;
                };
                if *running != order_id {
                    return;
                }
                let amount_fen = amount.fen();
                let (screen, ind) = match end {
                    super::PayEnd::Ended(row) => match outcome_screen(
                        row.machine.state,
                        row.machine.reverse_action,
                        row.wallet.map(|w| w.paytype()),
                        &row.last_note,
                        amount_fen,
                    ) {
                        Some(x) => x,
                        None => (Screen::Uncertain { amount_fen }, Indication::Attention),
                    },
                    super::PayEnd::Uncertain(..) => {
                        (Screen::Uncertain { amount_fen }, Indication::Attention)
                    }
                    super::PayEnd::Refused(why) => (
                        Screen::Declined {
                            amount_fen,
                            reason: DeclineReason::Other(short(&why)),
                        },
                        Indication::Declined,
                    ),
                };
                self.indicate(ind);
                self.show_outcome(&order_id, screen);
            }
            SaleCmd::FaceDone { order_id, result } => {
                let Phase::Face { sale, .. } = &self.phase else {
                    return;
                };
                if sale.order_id != order_id {
                    return;
                }
                let sale = sale.clone();
                match result {
                    Ok((face_code, openid)) => {
                        let wallet = match sale.method {
                            SaleMethod::Face { wallet } => wallet,
                            _ => Wallet::Wechat,
                        };
                        self.pay(sale, Credential::Face { face_code, openid }, Some(wallet));
                    }
                    Err(why) => {
                        self.shared
                            .publish(self.sale_event(&sale, "ABANDONED", &why, None));
                        record_sale_end(&self.shared, &sale, "ABANDONED", &why, util::now_ms());
                        self.indicate(Indication::Declined);
                        self.show_for(
                            Screen::Declined {
                                amount_fen: sale.amount.fen(),
                                reason: DeclineReason::FaceNotRecognised,
                            },
                            5,
                        );
                    }
                }
            }
        }
    }

    fn sale_event(
        &self,
        sale: &SaleRequest,
        state: &str,
        note: &str,
        until: Option<Instant>,
    ) -> PaymentEvent {
        PaymentEvent {
            order_id: sale.order_id.clone(),
            out_trade_no: None,
            state: state.into(),
            amount_fen: sale.amount.fen(),
            reverse_action: None,
            wallet: None,
            code_url: None,
            note: note.into(),
            at_ms: util::now_ms(),
            deadline_ms: until.map(|u| {
                util::now_ms() + u.saturating_duration_since(Instant::now()).as_millis() as i64
            }),
            wire: Default::default(),
        }
    }

    /// Starts a sale. Only one sale is at the counter at a time.
    fn start(&mut self, req: SaleRequest) -> Result<PaymentEvent, String> {
        if let Some(why) = self.shared.sale_blocker() {
            return Err(why);
        }
        if let Some(o) = self.busy_with() {
            return Err(format!(
                "the terminal is busy with order {o}; finish or cancel it first"
            ));
        }
        match req.method.clone() {
            SaleMethod::Code(Some(code)) => {
                let rules = read(&self.shared.settings).code_rules.clone();
                let c = AuthCode::classify(&code, &rules).map_err(|e| e.to_string())?;
                let ev = self.sale_event(&req, "PROCESSING", "payment code received", None);
                self.pay(req, Credential::Code(c), None);
                Ok(ev)
            }
            SaleMethod::Code(None) => {
                let until = Instant::now() + self.code_wait;
                let ev = self.sale_event(
                    &req,
                    "WAITING_FOR_CODE",
                    "show your payment code",
                    Some(until),
                );
                self.shared.publish(ev.clone());
                self.phase = Phase::WaitingCode { sale: req, until };
                Ok(ev)
            }
            SaleMethod::Qr { wallet, notify_url } => {
                let ev = self.sale_event(&req, "PROCESSING", "creating the QR code", None);
                self.pay(req, Credential::Qr { notify_url }, Some(wallet));
                Ok(ev)
            }
            SaleMethod::Face { wallet } => {
                let Some(face) = self.face.clone() else {
                    return Err("this terminal has no face module".into());
                };
                let ev = self.sale_event(&req, "FACE", "face recognition", None);
                self.shared.publish(ev.clone());
                self.phase = Phase::Face {
                    sale: req.clone(),
                    step: FaceStep::Starting,
                };
                self.spawn_face(face, req, wallet);
                Ok(ev)
            }
        }
    }

    fn spawn_face(&self, face: FaceHandle, sale: SaleRequest, wallet: Wallet) {
        let shared = self.shared.clone();
        let tx = self.self_tx.clone();
        tokio::spawn(async move {
            let provider = if wallet == Wallet::Alipay {
                "alipay"
            } else {
                "wechat"
            };
            let result = async {
                let raw = face
                    .get_rawdata(provider)
                    .await
                    .map_err(|e| e.to_string())?;
                let gw_name = read(&shared.settings)
                    .routes
                    .get(&wallet)
                    .cloned()
                    .ok_or("no route for face payments")?;
                let gw = read(&shared.gateways)
                    .get(&gw_name)
                    .map_err(|e| e.to_string())?;
                let raw_s = raw.expose().to_string();
                let auth = tokio::task::spawn_blocking(move || gw.face_auth(wallet, &raw_s))
                    .await
                    .map_err(|e| e.to_string())??;
                face.send_authinfo(
                    provider,
                    crate::device::Secret::new(auth),
                    util::now_ms() / 1000 + 3600,
                )
                .await
                .map_err(|e| e.to_string())?;
                let out_trade_no =
                    new_out_trade_no(&read(&shared.settings).terminal_id, util::now_ms());
                let outcome = face
                    .start_face(crate::device::face::msg::StartFace {
                        txn_id: sale.order_id.clone(),
                        provider: provider.into(),
                        amount_fen: sale.amount.fen(),
                        currency: "CNY".into(),
                        out_trade_no,
                        store_id: String::new(),
                        timeout_ms: 30_000,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((
                    FaceCode::new(outcome.face_code.expose()),
                    outcome.openid.expose().to_string(),
                ))
            }
            .await;
            if let Some(tx) = tx {
                let _ = tx
                    .send(SaleCmd::FaceDone {
                        order_id: sale.order_id,
                        result,
                    })
                    .await;
            }
        });
    }

    fn pay(&mut self, sale: SaleRequest, credential: Credential, wallet: Option<Wallet>) {
        let req = PayRequest {
            order_id: Some(sale.order_id.clone()),
            amount: sale.amount,
            credential,
            wallet,
            gateway: None,
            details: sale.details.clone(),
        };
        self.phase = Phase::Running {
            order_id: sale.order_id.clone(),
            amount: sale.amount,
            last: None,
            checked: Instant::now(),
        };
        let handle = self.shared.spawn_payment(req);
        let began = util::now_ms();
        let refused_sale = sale.clone();
        let shared = self.shared.clone();
        let order = sale.order_id.clone();
        let amount = sale.amount.fen();
        let tx = self.self_tx.clone();
        tokio::spawn(async move {
            let end = handle.await.unwrap_or_else(|e| {
                super::PayEnd::Refused(format!("the payment thread failed: {e}"))
            });
            match &end {
                // A payment refused before any attempt existed (a guard, a duplicate scan) has
                // no journal event: tell the ECR stream here.
                super::PayEnd::Refused(why) => {
                    record_sale_end(&shared, &refused_sale, "REFUSED", why, began);
                    shared.publish(PaymentEvent {
                        order_id: order.clone(),
                        out_trade_no: None,
                        state: "REFUSED".into(),
                        amount_fen: amount,
                        reverse_action: None,
                        wallet: None,
                        code_url: None,
                        note: why.clone(),
                        at_ms: util::now_ms(),
                        deadline_ms: None,
                        wire: Default::default(),
                    })
                }
                // The attempt is journaled and its outcome unknown: its real state, not "declined".
                super::PayEnd::Uncertain(row, why) => {
                    shared.publish(PaymentEvent::from_row(row, &format!("uncertain: {why}")))
                }
                super::PayEnd::Ended(_) => {}
            }
            if let Some(tx) = tx {
                let _ = tx
                    .send(SaleCmd::PaymentDone {
                        order_id: order,
                        end,
                    })
                    .await;
            }
        });
    }

    fn abandon(&mut self, why: &str) {
        let began = match &self.phase {
            Phase::WaitingCode { until, .. } => {
                let left = until.saturating_duration_since(Instant::now());
                util::now_ms() - self.code_wait.saturating_sub(left).as_millis() as i64
            }
            _ => util::now_ms(),
        };
        if let Phase::WaitingCode { sale, .. } | Phase::Face { sale, .. } = &self.phase {
            let ev = self.sale_event(sale, "ABANDONED", why, None);
            self.shared.publish(ev);
            record_sale_end(&self.shared, sale, "ABANDONED", why, began);
        }
        self.phase = Phase::Idle;
    }

    fn on_payment(&mut self, ev: PaymentEvent) {
        let Phase::Running {
            order_id,
            amount,
            last,
            ..
        } = &mut self.phase
        else {
            return;
        };
        if *order_id != ev.order_id {
            return;
        }
        let amount = *amount;
        let state = crate::core::AttemptState::parse(&ev.state);
        let final_screen = state.and_then(|st| {
            outcome_screen(
                st,
                ev.reverse_action,
                ev.wallet.as_deref(),
                &ev.note,
                amount.fen(),
            )
        });
        match final_screen {
            Some((screen, ind)) => {
                self.indicate(ind);
                let order_id = ev.order_id.clone();
                self.show_outcome(&order_id, screen);
            }
            // The engine's return (PaymentDone) ends the phase in every other case.
            None => *last = Some(ev),
        }
    }

    fn on_tick(&mut self) {
        self.shared.beats.beat(super::liveness::Loop::Controller);
        self.check_running();
        self.check_uncertain();
        match &self.phase {
            Phase::WaitingCode { until, .. } if Instant::now() >= *until => {
                self.abandon("no payment code was shown in time")
            }
            Phase::Showing { until, .. } if Instant::now() >= *until => self.phase = Phase::Idle,
            Phase::Contract { until, .. } if Instant::now() >= *until => {
                tracing::warn!("a contract charge never reported its outcome; the counter is free");
                self.phase = Phase::Idle
            }
            _ => {}
        }
    }

    /// Shows a sale's outcome: a known one for a few seconds, an uncertain one until it is
    /// known or acknowledged.
    fn show_outcome(&mut self, order_id: &str, screen: Screen) {
        match screen {
            Screen::Uncertain { amount_fen } => {
                self.phase = Phase::Uncertain {
                    order_id: order_id.to_string(),
                    amount_fen,
                    checked: Instant::now(),
                }
            }
            other => self.show_for(other, 6),
        }
    }

    /// While "uncertain" is on the screen, the journal is asked again when it changed and at
    /// least every [`RECHECK`]: a settlement in the background (recovery, another process) is
    /// shown — PAID, or "not charged / refunded: take the payment again" — the moment it lands.
    fn check_uncertain(&mut self) {
        let Phase::Uncertain {
            order_id, checked, ..
        } = &self.phase
        else {
            return;
        };
        let order_id = order_id.clone();
        let due = checked.elapsed() >= RECHECK;
        let changed = self.journal_changed();
        if !(changed || due) {
            return;
        }
        if let Phase::Uncertain { checked, .. } = &mut self.phase {
            *checked = Instant::now();
        }
        let Some(row) = self.sale_attempt(&order_id) else {
            return;
        };
        let row = &row;
        if !row.machine.state.is_final() {
            return;
        }
        if let Some((screen, ind)) = outcome_screen(
            row.machine.state,
            row.machine.reverse_action,
            row.wallet.map(|w| w.paytype()),
            &row.last_note,
            row.amount.fen(),
        ) {
            tracing::info!(order = %row.order_id, state = %row.machine.state, "an uncertain sale was settled in the background");
            self.indicate(ind);
            self.show_for(screen, 10);
        }
    }

    /// The attempt that speaks for a sale's order (its PAID one, else the newest), read on the
    /// controller's own connection.
    fn sale_attempt(&self, order_id: &str) -> Option<crate::journal::AttemptRow> {
        let j = self.journal.as_ref()?;
        let mut rows = match j.by_order(order_id) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(order = %order_id, "re-reading the sale's attempt: {e}");
                return None;
            }
        };
        match rows
            .iter()
            .position(|a| a.machine.state == crate::core::AttemptState::Paid)
        {
            Some(i) => Some(rows.swap_remove(i)),
            None => rows.pop(),
        }
    }

    /// Whether another connection committed to the journal since the last look (`true` when
    /// it cannot tell).
    fn journal_changed(&mut self) -> bool {
        if self.journal.is_none() {
            match crate::journal::Journal::connect(&self.shared.journal_path) {
                Ok(j) => self.journal = Some(j),
                Err(e) => {
                    tracing::warn!("the sale controller cannot read the journal: {e}");
                    return true;
                }
            }
        }
        let v = self.journal.as_ref().and_then(|j| j.data_version().ok());
        let changed = v.is_none() || v != self.seen_version;
        self.seen_version = v;
        changed
    }

    /// A running sale ends when the journal says so, not only when its engine thread returns:
    /// another process may settle or park its attempt, the engine may be waiting far ahead on
    /// its schedule, or be stuck. The attempt is re-read when the journal changed, when the
    /// screen's countdown reached 0, and at least every [`RECHECK`]; final or parked, its
    /// outcome is shown and the counter freed. Past its deadline by more than the longest a
    /// healthy engine can take (the recovery loop's liveness bound), the sale ends uncertain:
    /// the attempt stays journaled and recovery settles it.
    fn check_running(&mut self) {
        let Phase::Running {
            order_id,
            last,
            checked,
            ..
        } = &self.phase
        else {
            return;
        };
        let order_id = order_id.clone();
        let countdown_over = last
            .as_ref()
            .and_then(|e| e.deadline_ms)
            .is_some_and(|d| util::now_ms() >= d);
        let due = checked.elapsed() >= RECHECK;
        let changed = self.journal_changed();
        if !(changed || countdown_over || due) {
            return;
        }
        if let Phase::Running { checked, .. } = &mut self.phase {
            *checked = Instant::now();
        }
        let Some(row) = self.sale_attempt(&order_id) else {
            return;
        };
        let row = &row;
        let now = util::now_ms();
        let policy = read(&self.shared.gateways)
            .get(&row.gateway)
            .ok()
            .map(|g| g.policy(row.wallet));
        let parked = policy.as_ref().is_some_and(|p| row.machine.parked(p, now));
        let overdue = now
            > row.machine.deadline_ms.saturating_add(
                super::liveness::Bounds::from_config(&read(&self.shared.config)).recovery_ms,
            );
        let amount_fen = row.amount.fen();
        let end = match outcome_screen(
            row.machine.state,
            row.machine.reverse_action,
            row.wallet.map(|w| w.paytype()),
            &row.last_note,
            amount_fen,
        ) {
            Some(x) => Some((x, row.last_note.clone())),
            None if parked => Some((
                (Screen::Uncertain { amount_fen }, Indication::Attention),
                "no answer past the deadline; settled in the background".to_string(),
            )),
            None if overdue => {
                tracing::warn!(order = %row.order_id, out_trade_no = %row.out_trade_no, state = %row.machine.state,
                    "the sale's engine has not returned long past the deadline; the counter is freed and recovery settles the attempt");
                Some((
                    (Screen::Uncertain { amount_fen }, Indication::Attention),
                    "uncertain: still being settled".to_string(),
                ))
            }
            None => None,
        };
        match end {
            Some(((screen, ind), note)) => {
                // Changes made by another process reach the event stream only from here.
                self.shared.publish(PaymentEvent::from_row(row, &note));
                self.indicate(ind);
                let order_id = row.order_id.clone();
                self.show_outcome(&order_id, screen);
            }
            None => {
                let moved = match &self.phase {
                    Phase::Running { last: Some(ev), .. } => ev.state != row.machine.state.as_str(),
                    _ => true,
                };
                if moved {
                    let ev = PaymentEvent::from_row(row, &row.last_note);
                    if let Phase::Running { last, .. } = &mut self.phase {
                        *last = Some(ev);
                    }
                }
            }
        }
    }

    fn on_device(&mut self, d: DeviceEvent) {
        match d {
            DeviceEvent::Scanned { code, source, .. } => {
                self.indicate(Indication::Read);
                match &self.phase {
                    Phase::WaitingCode { sale, .. } => {
                        let sale = sale.clone();
                        let rules = read(&self.shared.settings).code_rules.clone();
                        match AuthCode::classify(code.expose(), &rules) {
                            Ok(c) => self.pay(sale, Credential::Code(c), None),
                            Err(e) => {
                                tracing::warn!(scanner = %source, "{e}");
                                self.indicate(Indication::Attention);
                            }
                        }
                    }
                    Phase::Refund(RefundStep::EnterOrder { .. }) => {
                        // A receipt's order barcode names the payment to refund.
                        let order = code.expose().trim().to_string();
                        self.refund_order_chosen(&order);
                    }
                    _ => {
                        tracing::info!(scanner = %source, code = %code.masked(), "a code was scanned with no sale waiting; ignored")
                    }
                }
            }
            DeviceEvent::Key { key, .. } => {
                use crate::device::KeypadKey as K;
                let k = match key {
                    K::Digit(d) => Key::Digit(d),
                    K::Dot => Key::Dot,
                    K::Backspace => Key::Backspace,
                    K::Enter => Key::Enter,
                    K::Cancel | K::Clear => Key::Cancel,
                    K::Function(1) => Key::Face,
                    K::Function(2) => Key::Refund,
                    K::Function(3) => Key::Diagnostics,
                    K::Function(_) => return,
                };
                self.on_key(k);
            }
            DeviceEvent::Face(FaceEvent::Progress { txn_id, stage }) => {
                if let Phase::Face { sale, step } = &mut self.phase
                    && sale.order_id == txn_id
                {
                    *step = match stage.as_str() {
                        "look" | "look_at_camera" | "detecting" => FaceStep::LookAtCamera,
                        "recognising" | "recognizing" | "captured" => FaceStep::Recognising,
                        "confirm" | "confirm_identity" => FaceStep::ConfirmIdentity,
                        _ => *step,
                    };
                }
            }
            DeviceEvent::ScanDiscarded { source, reason } => {
                tracing::debug!(scanner = %source, "discarded: {reason}")
            }
            DeviceEvent::DeviceAdded { source, detail, .. } => {
                tracing::info!(device = %source, "{detail}")
            }
            DeviceEvent::DeviceRemoved { source, reason, .. } => {
                tracing::warn!(device = %source, "{reason}")
            }
            DeviceEvent::Face(_) => {}
        }
    }

    async fn on_ui(&mut self, i: UiInput) {
        match i {
            UiInput::Code(code) => match &self.sim_scanner {
                // The typed code goes through the simulated scanner's pty and the real decoder.
                Some(sim) => {
                    if let Err(e) = sim.scan(&code).await {
                        tracing::warn!("simulated scanner: {e}");
                    }
                }
                None => self.on_device(DeviceEvent::Scanned {
                    source: crate::device::SourceId::new("web"),
                    code: crate::device::Secret::new(code),
                    trace: Default::default(),
                }),
            },
            UiInput::Key(k) => self.on_key(k),
        }
    }

    /// The cashier's refund flow: order (typed digits, a scanned receipt, or Enter for the last
    /// paid sale) → amount (Enter alone: everything that remains) → confirm → the engine refunds.
    fn on_refund_key(&mut self, k: Key) {
        let Phase::Refund(step) = &mut self.phase else {
            return;
        };
        if k == Key::Cancel {
            self.phase = Phase::Idle;
            return;
        }
        match step {
            RefundStep::EnterOrder { input } => match k {
                Key::Digit(d) if input.len() < 32 => input.push((b'0' + d) as char),
                Key::Backspace => {
                    input.pop();
                }
                Key::Enter => {
                    let wanted = input.clone();
                    self.refund_order_chosen(&wanted);
                }
                _ => {}
            },
            RefundStep::EnterAmount {
                order,
                refundable_fen,
                input,
            } => match k {
                Key::Digit(d) => {
                    let decimals = input.split_once('.').map(|(_, f)| f.len());
                    if input.len() < 9 && decimals.is_none_or(|n| n < 2) {
                        input.push((b'0' + d) as char);
                    }
                }
                Key::Dot if !input.contains('.') => input.push('.'),
                Key::Backspace => {
                    input.pop();
                }
                Key::Enter => {
                    let fen = if input.is_empty() {
                        Some(*refundable_fen)
                    } else {
                        Amount::parse_yuan(input).ok().map(Amount::fen)
                    };
                    match fen {
                        Some(f) if f > 0 && f <= *refundable_fen => {
                            self.phase = Phase::Refund(RefundStep::Confirm {
                                order: order.clone(),
                                refund_fen: f,
                            })
                        }
                        _ => self.indicate(Indication::Attention),
                    }
                }
                _ => {}
            },
            RefundStep::Confirm { order, refund_fen } => {
                if k == Key::Enter {
                    let (order, fen) = (order.clone(), *refund_fen);
                    self.phase = Phase::Refund(RefundStep::Processing {
                        order: order.clone(),
                        refund_fen: fen,
                    });
                    let shared = self.shared.clone();
                    let tx = self.self_tx.clone();
                    tokio::spawn(async move {
                        let o = order.clone();
                        let result = tokio::task::spawn_blocking(move || {
                            shared
                                .engine()
                                .and_then(|mut e| e.refund(&o, Amount::from_fen(fen), None))
                                .map(|r| (r.amount.fen(), r.state.as_str().to_string()))
                                .map_err(|e| e.to_string())
                        })
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                        if let Some(tx) = tx {
                            let _ = tx
                                .send(SaleCmd::RefundDone {
                                    order_id: order,
                                    result,
                                })
                                .await;
                        }
                    });
                }
            }
            RefundStep::Processing { .. } => {}
            RefundStep::Failed { .. } => self.phase = Phase::Idle,
        }
    }

    /// Finds the paid order the cashier named (empty: the last paid sale) and asks for the amount.
    fn refund_order_chosen(&mut self, wanted: &str) {
        // A short local read of the journal; it does not wait on any network.
        let found = (|| -> Result<(String, u64), String> {
            let e = self.shared.engine().map_err(|e| e.to_string())?;
            let paid = e
                .journal()
                .list(&crate::journal::ListFilter {
                    limit: Some(200),
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?
                .into_iter()
                .rev()
                .find(|a| {
                    a.machine.state == crate::core::AttemptState::Paid
                        && (wanted.is_empty()
                            || a.order_id == wanted
                            || a.order_id.ends_with(wanted)
                            || a.out_trade_no.ends_with(wanted))
                })
                .ok_or_else(|| format!("no paid sale matches {wanted:?}"))?;
            let taken: u64 = e
                .journal()
                .refunds_for(paid.attempt_id)
                .map_err(|e| e.to_string())?
                .iter()
                .filter(|r| r.state != crate::journal::RefundState::Failed)
                .map(|r| r.amount.fen())
                .sum();
            Ok((paid.order_id, paid.amount.fen().saturating_sub(taken)))
        })();
        self.phase = Phase::Refund(match found {
            Ok((order, left)) if left > 0 => RefundStep::EnterAmount {
                order,
                refundable_fen: left,
                input: String::new(),
            },
            Ok((order, _)) => RefundStep::Failed {
                order,
                message: "already refunded in full".into(),
            },
            Err(message) => RefundStep::Failed {
                order: wanted.to_string(),
                message,
            },
        });
    }

    fn on_key(&mut self, k: Key) {
        match (&mut self.phase, k) {
            (Phase::Idle | Phase::Showing { .. } | Phase::Uncertain { .. }, Key::Digit(d)) => {
                self.phase = Phase::Entering(d.to_string())
            }
            (Phase::Idle | Phase::Showing { .. } | Phase::Uncertain { .. }, Key::Dot) => {
                self.phase = Phase::Entering("0.".into())
            }
            (Phase::Idle, Key::Diagnostics) => self.phase = Phase::Diagnostics,
            (Phase::Idle | Phase::Showing { .. } | Phase::Uncertain { .. }, Key::Refund) => {
                self.phase = Phase::Refund(RefundStep::EnterOrder {
                    input: String::new(),
                })
            }
            (Phase::Refund(_), _) => self.on_refund_key(k),
            (Phase::Diagnostics | Phase::Showing { .. } | Phase::Uncertain { .. }, _) => {
                self.phase = Phase::Idle
            }
            (Phase::Entering(s), Key::Digit(d)) => {
                let decimals = s.split_once('.').map(|(_, f)| f.len());
                if s.len() < 9 && decimals.is_none_or(|n| n < 2) {
                    s.push((b'0' + d) as char);
                }
            }
            (Phase::Entering(s), Key::Dot) if !s.contains('.') => {
                s.push('.');
            }
            (Phase::Entering(s), Key::Backspace) => {
                s.pop();
                if s.is_empty() {
                    self.phase = Phase::Idle;
                }
            }
            (Phase::Entering(_), Key::Cancel) => self.phase = Phase::Idle,
            (Phase::Entering(s), Key::Enter | Key::Face) => {
                let max = read(&self.shared.settings).max_amount;
                match Amount::parse_with_limit(s, max) {
                    Ok(amount) => {
                        let order_id = new_out_trade_no(
                            &read(&self.shared.settings).terminal_id,
                            util::now_ms(),
                        );
                        let method = if k == Key::Face {
                            SaleMethod::Face {
                                wallet: Wallet::Wechat,
                            }
                        } else {
                            SaleMethod::Code(None)
                        };
                        let req = SaleRequest {
                            order_id,
                            amount,
                            method,
                            details: OrderDetails {
                                body: "counter sale".into(),
                                ..Default::default()
                            },
                        };
                        if let Err(e) = self.start(req) {
                            tracing::warn!("{e}");
                            self.show_for(
                                Screen::Declined {
                                    amount_fen: amount.fen(),
                                    reason: DeclineReason::Other(short(&e)),
                                },
                                4,
                            );
                        }
                    }
                    Err(e) => {
                        tracing::info!("amount refused: {e}");
                        self.indicate(Indication::Attention);
                    }
                }
            }
            (Phase::WaitingCode { .. } | Phase::Face { .. }, Key::Cancel) => {
                self.abandon("cancelled by the cashier")
            }
            (Phase::Running { order_id, .. }, Key::Cancel) => {
                let order = order_id.clone();
                let shared = self.shared.clone();
                tokio::task::spawn_blocking(move || {
                    if let Ok(mut e) = shared.engine() {
                        let tx = shared.events.clone();
                        let mut obs = |r: &crate::journal::AttemptRow, n: &str| {
                            let _ = tx.send(PaymentEvent::from_row(r, n));
                        };
                        if let Err(err) = e.cancel(&order, &mut obs) {
                            tracing::warn!("cancel {order}: {err}");
                        }
                    }
                });
            }
            _ => {}
        }
    }
}

/// Journals how a sale without any attempt ended, so the ECR API can answer for it after the
/// counter moved on and after a restart. Off the controller's thread: the commit syncs to disk.
/// A failure is logged; the sale's outcome (nothing charged) does not depend on it.
fn record_sale_end(shared: &Arc<Shared>, sale: &SaleRequest, state: &str, note: &str, began: i64) {
    let journals = shared.journals.clone();
    let (order, state, note, amount) = (
        sale.order_id.clone(),
        state.to_string(),
        note.to_string(),
        sale.amount,
    );
    tokio::task::spawn_blocking(move || {
        let r = journals
            .get()
            .and_then(|j| j.record_sale_end(&order, &state, &note, amount, began, util::now_ms()));
        if let Err(e) = r {
            tracing::warn!(order = %order, "recording the sale's end: {e}");
        }
    });
}

/// A diagnostics row per configured gateway: whether it answered its last request, and how
/// long that took.
pub(crate) fn gateway_rows(
    names: &[String],
    health: &std::collections::BTreeMap<String, crate::engine::health::GatewayHealth>,
) -> Vec<DiagItem> {
    names
        .iter()
        .map(|n| {
            let h = health.get(n).cloned().unwrap_or_default();
            let latency = h
                .last_latency_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_else(|| "-".into());
            match h.online() {
                Some(true) => {
                    DiagItem::new(n.clone(), format!("online, {latency}"), DiagStatus::Ok)
                }
                Some(false) => DiagItem::new(
                    n.clone(),
                    format!(
                        "OFFLINE ({} unanswered; last answer {latency})",
                        h.silent_in_a_row
                    ),
                    DiagStatus::Fail,
                ),
                None => DiagItem::new(n.clone(), "not asked yet", DiagStatus::Info),
            }
        })
        .collect()
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

fn running_screen(ev: &PaymentEvent) -> Screen {
    let amount_fen = ev.amount_fen;
    if let Some(url) = &ev.code_url
        && (ev.state == "QUERYING" || ev.state == "PAY_INTENT")
    {
        return Screen::QrToScan {
            code_url: url.clone(),
            amount_fen,
            seconds_left: Controller::secs_until(ev.deadline_ms),
        };
    }
    match ev.state.as_str() {
        "QUERYING" if ev.note.contains("confirming") => Screen::CustomerConfirming {
            amount_fen,
            seconds_left: Controller::secs_until(ev.deadline_ms),
        },
        "REVERSE_INTENT" => Screen::Uncertain { amount_fen },
        _ => Screen::Processing { amount_fen },
    }
}

/// The screen for an attempt that has reached an outcome the cashier acts on; `None` while it
/// is still being worked on.
fn outcome_screen(
    state: crate::core::AttemptState,
    action: Option<crate::core::ReverseAction>,
    wallet: Option<&str>,
    note: &str,
    amount_fen: u64,
) -> Option<(Screen, Indication)> {
    use crate::core::AttemptState as S;
    Some(match state {
        S::Paid => (
            Screen::Paid {
                amount_fen,
                wallet: ui_wallet(wallet),
            },
            Indication::Paid,
        ),
        S::Failed => (
            Screen::Declined {
                amount_fen,
                reason: decline_reason(note),
            },
            Indication::Declined,
        ),
        S::Reversed => (
            Screen::Reversed {
                amount_fen,
                refunded: action == Some(crate::core::ReverseAction::Refund),
            },
            Indication::Declined,
        ),
        S::SafPending | S::ManualReview => {
            (Screen::Uncertain { amount_fen }, Indication::Attention)
        }
        S::PayIntent | S::Querying | S::ReverseIntent => return None,
    })
}

fn ui_wallet(w: Option<&str>) -> crate::ui::model::Wallet {
    use crate::ui::model::Wallet as W;
    match w {
        Some("WECHAT") => W::WeChat,
        Some("ALIPAY") => W::Alipay,
        Some("UNIONPAY") => W::UnionPay,
        _ => W::Other,
    }
}

/// The lights and beeper for an outcome screen, as a sale's outcome would have them.
fn indication_for(screen: &Screen) -> Option<Indication> {
    match screen {
        // Accepted offline: the customer may take the goods, the same as paid.
        Screen::Paid { .. } | Screen::AcceptedOffline { .. } => Some(Indication::Paid),
        Screen::Declined { .. } | Screen::Reversed { .. } => Some(Indication::Declined),
        Screen::Uncertain { .. } => Some(Indication::Attention),
        _ => None,
    }
}

/// The gateway's words mapped to what a customer can act on.
pub(crate) fn decline_reason(note: &str) -> DeclineReason {
    let n = note.to_ascii_uppercase();
    if n.contains("NOTENOUGH") || note.contains("余额不足") {
        DeclineReason::InsufficientFunds
    } else if n.contains("AUTHCODEEXPIRE") || n.contains("AUTH_CODE") || note.contains("过期") {
        DeclineReason::CodeExpired
    } else if note.contains("限额") || n.contains("LIMIT") {
        DeclineReason::LimitExceeded
    } else if note.contains("风控") || n.contains("RISK") {
        DeclineReason::RiskControl
    } else if n.contains("CLOSED") || note.contains("关闭") || note.contains("cancel") {
        DeclineReason::CustomerCancelled
    } else {
        DeclineReason::Other(short(note.trim_start_matches("declined: ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::health::Health;

    #[test]
    fn diagnostics_show_each_gateway_with_its_answers() {
        let h = Health::default();
        h.record("aggregator", true, 1_000, 42);
        h.record("acp", true, 1_000, 80);
        h.record("acp", false, 2_000, 15_000);
        let names = vec!["acp".to_string(), "aggregator".into(), "chinaums".into()];
        let rows = gateway_rows(&names, &h.snapshot());
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].label, "acp");
        assert_eq!(rows[0].status, DiagStatus::Fail);
        assert!(rows[0].value.contains("OFFLINE") && rows[0].value.contains("80 ms"));
        assert_eq!(rows[1].status, DiagStatus::Ok);
        assert_eq!(rows[1].value, "online, 42 ms");
        assert_eq!(rows[2].status, DiagStatus::Info, "never asked");
    }
}
