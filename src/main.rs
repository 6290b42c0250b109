//! The `payterm` command line (DESIGN.md §4). Parsing, wiring and printing only: every command
//! calls the library and maps its result to an exit code — 0 done, 1 bad input or configuration,
//! 2 declined or failed (no money moved), 3 outcome unknown (journaled, settled by recovery).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use serde_json::json;

use payterm::config::{Config, Severity};
use payterm::core::authcode::{AuthCode, Wallet};
use payterm::core::machine::{AttemptState, ReverseAction};
use payterm::core::money::Amount;
use payterm::engine::{Engine, EngineError, Gateways, PayRequest, Settings};
use payterm::gateway::{Credential, FaceCode, OrderDetails};
use payterm::journal::{AttemptRow, Journal, ListFilter, PreAuthState, RefundState};
use payterm::util;

#[derive(Parser)]
#[command(
    name = "payterm",
    version,
    about = "Payment agent for Linux point-of-sale terminals"
)]
struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        env = "PAYTERM_CONFIG",
        default_value = "/etc/payterm/payterm.toml"
    )]
    config: PathBuf,
    /// Print one JSON object per line.
    #[arg(long, global = true)]
    json: bool,
    /// Use this journal file instead of the configured one.
    #[arg(long, global = true, env = "PAYTERM_JOURNAL")]
    journal: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone, Default)]
struct Details {
    /// What is sold (the gateway's body).
    #[arg(long, default_value = "payterm")]
    body: String,
    /// Merchant data returned as is.
    #[arg(long)]
    attach: Option<String>,
    /// Goods as a JSON array (goods_detail).
    #[arg(long)]
    goods: Option<String>,
    /// Promotion tag (goods_tag).
    #[arg(long)]
    goods_tag: Option<String>,
    /// Operator (cashier) id.
    #[arg(long)]
    operator: Option<String>,
    /// Store id.
    #[arg(long)]
    store: Option<String>,
    /// Device id.
    #[arg(long)]
    device: Option<String>,
}

impl Details {
    fn into_order(self) -> Result<OrderDetails> {
        if let Some(g) = &self.goods {
            let v: serde_json::Value = serde_json::from_str(g).context("--goods is not JSON")?;
            if !v.is_array() {
                return Err(anyhow!("--goods must be a JSON array of goods"));
            }
        }
        Ok(OrderDetails {
            body: self.body,
            attach: self.attach,
            goods_detail: self.goods,
            goods_tag: self.goods_tag,
            operator: self.operator,
            store_id: self.store,
            device_id: self.device,
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// A whole simulated terminal: sandbox gateways, simulated scanner and face module, and the
    /// screen mirrored as a web page. Prints the URL and what to try.
    Demo {
        /// Where the screen's web mirror listens (loopback).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Keep the demo's journal and keys in this folder (default: a new temporary folder).
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// The daemon, as systemd starts it.
    Run {
        /// Overrides [ecr] listen (unix:/path or IP:PORT).
        #[arg(long)]
        ecr_listen: Option<String>,
        /// Where the web mirror listens when the board's display is "web".
        #[arg(long)]
        mirror_listen: Option<String>,
    },
    /// Renders a sample screen to PNG, for designers and docs.
    Render {
        /// A sample name (`payterm render list` prints them).
        screen: String,
        #[arg(long, default_value = "480x320")]
        size: String,
        #[arg(long, default_value = "zh")]
        locale: String,
        #[arg(long, default_value = "screen.png")]
        out: PathBuf,
    },
    /// For installers: prints every code the configured scanners decode (masked) and the
    /// events that made it. Ctrl-C stops.
    ScanTest,
    /// Runs the sandbox gateways alone, on loopback.
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:8917")]
        listen: std::net::SocketAddr,
        /// How long a reply that "never comes" is held, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        hang_ms: u64,
    },
    /// Takes a payment with a scanned payment code.
    Pay {
        /// Amount in yuan, e.g. 12.34.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// The customer's payment code (read it from a scanner; it is never stored).
        #[arg(long, env = "PAYTERM_CODE", hide_env_values = true)]
        code: String,
        #[arg(long)]
        order: Option<String>,
        #[arg(long)]
        gateway: Option<String>,
        #[command(flatten)]
        details: Details,
    },
    /// Takes a face payment with the face module's face code and openid.
    FacePay {
        #[arg(long)]
        amount: String,
        #[arg(long, env = "PAYTERM_FACE_CODE", hide_env_values = true)]
        face_code: String,
        #[arg(long)]
        openid: String,
        #[arg(long, default_value = "WECHAT")]
        wallet: String,
        #[arg(long)]
        order: Option<String>,
        #[command(flatten)]
        details: Details,
    },
    /// Shows a QR code for the customer to scan (pre-order) and waits for the payment.
    QrPay {
        #[arg(long)]
        amount: String,
        #[arg(long, default_value = "WECHAT")]
        wallet: String,
        #[arg(long)]
        order: Option<String>,
        /// Where the gateway posts the result (defaults to the configured notify_url).
        #[arg(long)]
        notify_url: Option<String>,
        #[command(flatten)]
        details: Details,
    },
    /// Asks the gateway about an order now (the journal is not changed).
    Query { order: String },
    /// Cancels an order: an unsettled one is fenced, a paid one reversed within its window.
    Cancel { order: String },
    /// Refunds part or all of a paid order.
    Refund {
        order: String,
        #[arg(long)]
        amount: String,
        #[arg(long)]
        refund_id: Option<String>,
    },
    /// Asks the gateway about a refund and records the answer.
    RefundQuery { refund_id: String },
    /// Settles every unsettled attempt and refund now.
    Recover {
        /// The longest single wait (e.g. for a cancel window to open), in milliseconds.
        #[arg(long, default_value_t = 20_000)]
        max_wait_ms: i64,
    },
    /// The journal: list, show, export.
    Journal {
        #[command(subcommand)]
        cmd: JournalCmd,
    },
    /// Configuration.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// The merchant's registered names (aggregator GetMchInfo).
    MerchantInfo,
    /// UnionPay ACP tools.
    Acp {
        #[command(subcommand)]
        cmd: AcpCmd,
    },
    /// Downloads the ACP reconciliation file of a clearing date (YYYY-MM-DD) and lists every
    /// difference against the journal: exit 0 none, 2 differences.
    Reconcile { date: String },
    /// ChinaUMS netpay bills: the pre-authorisation family.
    Chinaums {
        #[command(subcommand)]
        cmd: ChinaumsCmd,
    },
    /// 云闪付 无感支付 contract customers: sign, query, cancel, charge (offline within limits
    /// when the uplink is down), refund, the cancel notification, offline deductions.
    Contract {
        #[command(subcommand)]
        cmd: ContractCmd,
    },
}

#[derive(Subcommand)]
enum ContractCmd {
    /// Signs a contract with the authorization code the customer's 云闪付 app produced.
    Sign {
        #[arg(long)]
        auth_code: String,
        /// Our agreement number (letters and digits, at most 32).
        #[arg(long)]
        contract_code: String,
    },
    /// Confirms the contract and the customer's arrears online (what offline acceptance trusts).
    Query { contract_id: String },
    /// Cancels (解约) the contract.
    Cancel { contract_id: String },
    /// Charges the contract customer (online; offline within the limits if the uplink is down).
    Charge {
        contract_id: String,
        #[arg(long)]
        amount: String,
        #[arg(long)]
        order: Option<String>,
    },
    /// Refunds part or all of a paid contract charge.
    Refund {
        order: String,
        #[arg(long)]
        amount: String,
        #[arg(long)]
        refund_id: Option<String>,
    },
    /// Handles a cancel notification (the query string of 云闪付's GET); prints the answer.
    Notify {
        #[arg(long)]
        query: String,
    },
    /// Lists offline deductions.
    Deductions {
        /// Only those not yet settled.
        #[arg(long)]
        open: bool,
    },
    /// 加密公钥更新查询: fetches UnionPay's current encryption certificate (ACP 95).
    UpdateKey,
}

#[derive(clap::Args, Clone)]
struct BillArgs {
    /// billNo of the pre-authorised bill.
    #[arg(long)]
    bill_no: String,
    /// billDate, yyyy-MM-dd.
    #[arg(long)]
    bill_date: String,
    /// merOrderId of the pre-authorisation.
    #[arg(long)]
    mer_order_id: String,
    /// authIdRespCd, the authorisation code.
    #[arg(long, default_value = "")]
    auth_code: String,
    /// Our request number for the journal (8 to 40 letters or digits; a new one when absent).
    /// The same number again never sends the operation twice. bill-query ignores it.
    #[arg(long)]
    request_no: Option<String>,
}

impl BillArgs {
    fn to_ref(&self) -> payterm::gateway::chinaums::PreAuthRef {
        payterm::gateway::chinaums::PreAuthRef {
            bill_no: self.bill_no.clone(),
            bill_date: self.bill_date.clone(),
            mer_order_id: self.mer_order_id.clone(),
            auth_id_resp_cd: self.auth_code.clone(),
        }
    }
}

#[derive(Subcommand)]
enum ChinaumsCmd {
    /// 预授权撤销: releases a pre-authorisation that was not completed.
    PreauthCancel(BillArgs),
    /// 预授权完成: takes an amount (yuan) from a pre-authorisation.
    PreauthComplete {
        #[command(flatten)]
        bill: BillArgs,
        #[arg(long)]
        amount: String,
    },
    /// 预授权完成撤销: undoes a completion.
    PreauthCompleteCancel(BillArgs),
    /// The bill's current state.
    BillQuery(BillArgs),
}

/// The original transaction of an ACP pre-authorisation follow-up.
#[derive(clap::Args, Clone)]
struct AcpOrig {
    /// queryId of the original (the pre-authorisation, or the completion for its undo).
    #[arg(long)]
    orig_query_id: Option<String>,
    /// orderId of the original (with --orig-txn-time).
    #[arg(long)]
    orig_order_id: Option<String>,
    /// txnTime of the original, YYYYMMDDhhmmss.
    #[arg(long)]
    orig_txn_time: Option<String>,
}

impl AcpOrig {
    fn to_args(&self) -> payterm::gateway::unionpay::cli::OrigArgs {
        payterm::gateway::unionpay::cli::OrigArgs {
            query_id: self.orig_query_id.clone(),
            order_id: self.orig_order_id.clone(),
            txn_time: self.orig_txn_time.clone(),
        }
    }
}

#[derive(Subcommand)]
enum AcpCmd {
    /// QR pre-authorisation (02): holds an amount (yuan) on the customer's UnionPay code.
    Preauth {
        #[arg(long)]
        amount: String,
        /// The customer's code (qrNo); it is never stored.
        #[arg(long, env = "PAYTERM_CODE", hide_env_values = true)]
        code: String,
        /// Our request number, the orderId (8 to 40 letters or digits; new when absent).
        #[arg(long)]
        request_no: Option<String>,
    },
    /// Pre-authorisation undo (32): releases the whole hold.
    PreauthUndo {
        #[command(flatten)]
        orig: AcpOrig,
        /// The pre-authorised amount (yuan).
        #[arg(long)]
        amount: String,
        #[arg(long)]
        request_no: Option<String>,
    },
    /// Pre-authorisation completion (03): takes an amount (yuan) from the hold.
    PreauthComplete {
        #[command(flatten)]
        orig: AcpOrig,
        #[arg(long)]
        amount: String,
        #[arg(long)]
        request_no: Option<String>,
    },
    /// Completion undo (33): gives the whole completion back; the hold stands again.
    PreauthCompleteUndo {
        #[command(flatten)]
        orig: AcpOrig,
        /// The completed amount (yuan).
        #[arg(long)]
        amount: String,
        #[arg(long)]
        request_no: Option<String>,
    },
    /// Verifies a saved ACP reply or notification step by step: exit 0 verified, 1 not.
    Verify {
        file: PathBuf,
        /// Trust UnionPay's public test chain in DIR (acp_test_middle.cer, acp_test_root.cer,
        /// here or in the parent folder) instead of the configured [gateways.acp] one.
        #[arg(long, value_name = "DIR")]
        test_chain: Option<PathBuf>,
        /// When certificate validity is judged: now (default), message (its txnTime) or
        /// YYYYMMDDhhmmss (Beijing).
        #[arg(long)]
        at: Option<String>,
    },
}

impl AcpCmd {
    /// The pre-authorisation family's commands as (operation, original, amount, request number).
    fn preauth(
        &self,
    ) -> Option<(
        payterm::gateway::unionpay::cli::AcpPreAuthCmd,
        payterm::gateway::unionpay::cli::OrigArgs,
        &str,
        &Option<String>,
    )> {
        use payterm::gateway::unionpay::cli::AcpPreAuthCmd as P;
        Some(match self {
            AcpCmd::Preauth {
                amount,
                code,
                request_no,
            } => (
                P::PreAuth { code: code.clone() },
                Default::default(),
                amount,
                request_no,
            ),
            AcpCmd::PreauthUndo {
                orig,
                amount,
                request_no,
            } => (P::Undo, orig.to_args(), amount, request_no),
            AcpCmd::PreauthComplete {
                orig,
                amount,
                request_no,
            } => (P::Complete, orig.to_args(), amount, request_no),
            AcpCmd::PreauthCompleteUndo {
                orig,
                amount,
                request_no,
            } => (P::CompleteUndo, orig.to_args(), amount, request_no),
            AcpCmd::Verify { .. } => return None,
        })
    }
}

#[derive(Subcommand)]
enum JournalCmd {
    /// Lists attempts, then the pre-authorisation family's operations (request numbers).
    List {
        /// Only unsettled attempts, and pre-authorisation operations whose outcome is not yet
        /// known (INTENT, UNKNOWN: `payterm recover` resolves them).
        #[arg(long)]
        open: bool,
        /// Only attempts in manual review, and every unresolved pre-authorisation operation
        /// (INTENT, UNKNOWN, and REVIEW: a person must settle it; its note says how).
        #[arg(long)]
        review: bool,
        /// Only attempts of this Beijing date (yyyy-mm-dd).
        #[arg(long)]
        date: Option<String>,
    },
    /// Shows an order's attempts (or a pre-authorisation operation, by request number) with
    /// their whole history.
    Show { order: String },
    /// Writes every attempt with its history as JSON lines.
    Export,
    /// Settles a pre-authorisation operation in REVIEW once a person has checked it with the
    /// channel (bill or transaction query, or the acquirer): `--done` it took effect,
    /// `--failed` it did not. Until then it blocks other operations on the same
    /// pre-authorisation.
    Resolve {
        request_no: String,
        #[arg(long, conflicts_with = "failed", required_unless_present = "failed")]
        done: bool,
        #[arg(long)]
        failed: bool,
        /// What the person found, and where (kept in the history).
        #[arg(long)]
        note: String,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Explains every problem in the configuration.
    Check,
}

/// An error with the exit code it deserves.
struct Fail(u8, anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Fail {
    fn from(e: E) -> Fail {
        Fail(1, e.into())
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // Help and version are not errors; any other usage mistake is bad input (exit 1).
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    // The daemon logs its addresses and every payment's state changes by default (journald
    // under systemd); a one-shot command only warnings, its result is on stdout.
    let level = match cli.cmd {
        Cmd::Sandbox { .. } => "info",
        Cmd::Run { .. } => "warn,payterm=info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PAYTERM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // journald stores escape codes verbatim: colours only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, e)) => {
            eprintln!("payterm: {e:#}");
            ExitCode::from(code)
        }
    }
}

struct Out {
    json: bool,
}

impl Out {
    fn line(&self, human: impl AsRef<str>, value: serde_json::Value) {
        let mut o = std::io::stdout().lock();
        if self.json {
            let _ = writeln!(o, "{value}");
        } else {
            let _ = writeln!(o, "{}", human.as_ref());
        }
    }

    fn progress(&self, row: &AttemptRow, note: &str) {
        if self.json {
            self.line("", json!({"event": "progress", "order": row.order_id, "out_trade_no": row.out_trade_no, "state": row.machine.state, "note": note}));
        } else {
            eprintln!(
                "  [{}] {:<14} {note}",
                util::beijing_human(util::now_ms()),
                row.machine.state.as_str()
            );
        }
    }
}

fn load(cli: &Cli) -> Result<Config, Fail> {
    Config::load(&cli.config).map_err(|e| Fail(1, e.into()))
}

fn engine(cli: &Cli, cfg: &Config) -> Result<Engine, Fail> {
    let path = cli.journal.clone().unwrap_or_else(|| cfg.journal_path());
    let journal = Journal::open(&path).map_err(|e| Fail(1, e.into()))?;
    let gateways = Gateways::from_config(cfg).map_err(|e| Fail(1, e.into()))?;
    let settings = Settings::from_config(cfg).map_err(|e| Fail(1, e.into()))?;
    Ok(Engine::new(journal, gateways, settings))
}

/// A typed refund id the order's gateway could not send, refused before it is journaled.
fn check_refund_id(e: &Engine, order: &str, refund_id: Option<&str>) -> Result<(), Fail> {
    let Some(id) = refund_id else { return Ok(()) };
    let row = e.latest(order).map_err(engine_err)?;
    payterm::gateway::unionpay::cli::check_refund_id(&row.gateway, id)
        .map_err(|why| Fail(1, anyhow::anyhow!(why)))
}

fn engine_err(e: EngineError) -> Fail {
    let code = match &e {
        // After the attempt was journaled, or without an answer: the outcome is unknown.
        e if e.is_uncertain() => 3,
        EngineError::Journal(payterm::journal::JournalError::NotFound(_)) => 1,
        e if e.is_bad_input() => 1,
        EngineError::Journal(payterm::journal::JournalError::Damaged { .. }) => 1,
        _ => 2,
    };
    Fail(code, e.into())
}

fn run(cli: Cli) -> Result<u8, Fail> {
    let out = Out { json: cli.json };
    match &cli.cmd {
        Cmd::Sandbox { listen, hang_ms } => sandbox(&cli, &out, *listen, *hang_ms),
        Cmd::Demo { listen, state } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(payterm::daemon::demo::demo(listen.clone(), state.clone()))?;
            Ok(0)
        }
        Cmd::Run {
            ecr_listen,
            mirror_listen,
        } => {
            let opts = payterm::daemon::RunOptions {
                ecr_listen: ecr_listen.clone(),
                mirror_listen: mirror_listen.clone(),
                journal: cli.journal.clone(),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(payterm::daemon::run(
                cli.config.clone(),
                opts,
                None,
                std::future::pending(),
            ))?;
            Ok(0)
        }
        Cmd::Render {
            screen,
            size,
            locale,
            out: path,
        } => {
            if screen == "list" {
                for n in payterm::ui::SAMPLE_NAMES {
                    println!("{n}");
                }
                return Ok(0);
            }
            let size = payterm::ui::parse_size(size)?;
            let locale: payterm::ui::model::Locale = locale.parse()?;
            payterm::ui::render_sample_to_file(screen, size, locale, path)?;
            out.line(
                format!("wrote {}", path.display()),
                json!({"result": "ok", "file": path}),
            );
            Ok(0)
        }
        Cmd::ScanTest => {
            let cfg = load(&cli)?;
            let b = cfg
                .file
                .board
                .as_ref()
                .ok_or_else(|| anyhow!("the configuration names no board profile"))?;
            let board = payterm::device::load_board(&cfg.resolve(b))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let summary = rt.block_on(payterm::device::scan_test(
                &board,
                std::io::stdout(),
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
            ))?;
            eprintln!("{summary:?}");
            Ok(0)
        }
        Cmd::Pay {
            amount,
            code,
            order,
            gateway,
            details,
        } => take_payment(&cli, &out, amount, order, details, |cfg| {
            let code =
                AuthCode::classify(code, &cfg.code_rules()).map_err(|e| Fail(1, e.into()))?;
            Ok((Credential::Code(code), None, gateway.clone()))
        }),
        Cmd::FacePay {
            amount,
            face_code,
            openid,
            wallet,
            order,
            details,
        } => take_payment(&cli, &out, amount, order, details, |_| {
            let wallet = parse_wallet(wallet)?;
            if face_code.trim().is_empty() || openid.trim().is_empty() {
                return Err(Fail(
                    1,
                    anyhow!("--face-code and --openid must not be empty"),
                ));
            }
            let face = Credential::Face {
                face_code: FaceCode::new(face_code.trim()),
                openid: openid.trim().to_string(),
            };
            Ok((face, Some(wallet), None))
        }),
        Cmd::QrPay {
            amount,
            wallet,
            order,
            notify_url,
            details,
        } => take_payment(&cli, &out, amount, order, details, |_| {
            let wallet = parse_wallet(wallet)?;
            if !matches!(wallet, Wallet::Wechat | Wallet::Alipay) {
                return Err(Fail(
                    1,
                    anyhow!("QR pre-orders exist for WECHAT and ALIPAY only"),
                ));
            }
            let qr = Credential::Qr {
                notify_url: notify_url.clone(),
            };
            Ok((qr, Some(wallet), None))
        }),
        Cmd::Query { order } => {
            let cfg = load(&cli)?;
            let e = engine(&cli, &cfg)?;
            let (row, reply) = e.query(order).map_err(engine_err)?;
            out.line(
                format!("{} ({} yuan): journal says {}; the gateway says {} [{}]", row.out_trade_no, row.amount, row.machine.state, reply.reply.describe(), reply.detail),
                json!({"order": row.order_id, "out_trade_no": row.out_trade_no, "journal_state": row.machine.state, "gateway": reply.reply.describe(), "detail": reply.detail}),
            );
            Ok(0)
        }
        Cmd::Cancel { order } => {
            let cfg = load(&cli)?;
            let mut e = engine(&cli, &cfg)?;
            let mut obs = |r: &AttemptRow, n: &str| out.progress(r, n);
            let row = e.cancel(order, &mut obs).map_err(engine_err)?;
            Ok(finish(&out, &row))
        }
        Cmd::Refund {
            order,
            amount,
            refund_id,
        } => {
            let cfg = load(&cli)?;
            let amount = Amount::parse_yuan(amount).map_err(|e| Fail(1, e.into()))?;
            let mut e = engine(&cli, &cfg)?;
            check_refund_id(&e, order, refund_id.as_deref())?;
            let r = e
                .refund(order, amount, refund_id.clone())
                .map_err(|err| match err {
                    EngineError::Journal(payterm::journal::JournalError::RefundTooLarge {
                        ..
                    }) => Fail(1, err.into()),
                    other => engine_err(other),
                })?;
            Ok(print_refund(&out, &r))
        }
        Cmd::RefundQuery { refund_id } => {
            let cfg = load(&cli)?;
            let mut e = engine(&cli, &cfg)?;
            let r = e.refund_query(refund_id).map_err(engine_err)?;
            Ok(print_refund(&out, &r))
        }
        Cmd::Recover { max_wait_ms } => {
            let cfg = load(&cli)?;
            let path = cli.journal.clone().unwrap_or_else(|| cfg.journal_path());
            if let Err(err @ payterm::journal::JournalError::Damaged { .. }) = Journal::open(&path)
            {
                // Safe mode: never write to a damaged journal; save what can be saved for a person.
                let s = payterm::journal::salvage(&path, util::now_ms())?;
                out.line(
                    format!(
                        "{err}\nsafe mode: the journal is kept as it is; a copy is at {} and the {} unsettled attempts that could be read are in {}{}.\nSettle them with the gateway (payterm query works once a journal opens), then move the damaged file away to start a new journal.",
                        s.copy.display(),
                        s.open_attempts,
                        s.export.display(),
                        s.unreadable.as_ref().map(|u| format!(" (reading stopped early: {u})")).unwrap_or_default()
                    ),
                    json!({"result": "safe_mode", "copy": s.copy, "export": s.export, "open_attempts": s.open_attempts, "unreadable": s.unreadable}),
                );
                return Ok(1);
            }
            let mut e = engine(&cli, &cfg)?;
            let mut obs = |r: &AttemptRow, n: &str| out.progress(r, n);
            let drain = payterm::engine::recovery::OfflineDrain::from_config(&cfg);
            let preauth = payterm::engine::preauth::PreAuthChannels::from_config(&cfg);
            let report = e
                .recover_all(*max_wait_ms, drain, &preauth, &mut obs)
                .map_err(engine_err)?;
            for (order, no, before, after) in &report.attempts {
                out.line(
                    format!("{no} (order {order}): {before} -> {after}"),
                    json!({"event": "recovered", "order": order, "out_trade_no": no, "from": before, "to": after}),
                );
            }
            for (no, st) in &report.refunds {
                out.line(
                    format!("refund {no}: {}", st.as_str()),
                    json!({"event": "refund", "out_refund_no": no, "state": st}),
                );
            }
            for (no, before, after) in &report.preauths {
                out.line(
                    format!(
                        "pre-auth operation {no}: {} -> {}",
                        before.as_str(),
                        after.as_str()
                    ),
                    json!({"event": "preauth", "request_no": no, "from": before, "to": after}),
                );
            }
            for err in &report.errors {
                eprintln!("payterm: {err}");
            }
            let open = report.still_open();
            out.line(
                format!(
                    "recovery done: {} attempts and {} refunds looked at; {open} still unsettled, {} in manual review",
                    report.attempts.len(),
                    report.refunds.len(),
                    report.in_review()
                ),
                json!({"result": "recovered", "attempts": report.attempts.len(), "refunds": report.refunds.len(), "still_open": open, "review": report.in_review()}),
            );
            Ok(if open > 0 { 3 } else { 0 })
        }
        Cmd::Journal { cmd } => journal_cmd(&cli, &out, cmd),
        Cmd::Config {
            cmd: ConfigCmd::Check,
        } => config_check(&cli, &out),
        Cmd::Acp {
            cmd:
                AcpCmd::Verify {
                    file,
                    test_chain,
                    at,
                },
        } => {
            let (code, text) = payterm::gateway::unionpay::cli::verify_command(
                &cli.config,
                file,
                test_chain.as_deref(),
                at.as_deref(),
            );
            print!("{text}");
            Ok(code)
        }
        Cmd::Acp { cmd } => {
            let Some((op, orig, amount, request_no)) = cmd.preauth() else {
                return Err(Fail(1, anyhow!("not a pre-authorisation command")));
            };
            let (code, value, human) = payterm::gateway::unionpay::cli::preauth_command(
                &cli.config,
                cli.journal.as_deref(),
                op,
                &orig,
                amount,
                request_no.clone(),
            );
            out.line(human, value);
            Ok(code)
        }
        Cmd::Reconcile { date } => {
            let (code, text) = payterm::gateway::unionpay::cli::reconcile_command(
                &cli.config,
                cli.journal.as_deref(),
                date,
            );
            print!("{text}");
            Ok(code)
        }
        Cmd::Contract { cmd } => contract_cmd(&cli, &out, cmd),
        Cmd::Chinaums { cmd } => {
            use payterm::gateway::chinaums::cli::{BillOp, bill_command};
            let (op, bill) = match cmd {
                ChinaumsCmd::PreauthCancel(b) => (BillOp::PreAuthCancel, b),
                ChinaumsCmd::PreauthComplete { bill, amount } => (
                    BillOp::PreAuthComplete {
                        amount: amount.clone(),
                    },
                    bill,
                ),
                ChinaumsCmd::PreauthCompleteCancel(b) => (BillOp::PreAuthCompleteCancel, b),
                ChinaumsCmd::BillQuery(b) => (BillOp::Query, b),
            };
            let (code, value, human) = bill_command(
                &cli.config,
                cli.journal.as_deref(),
                op,
                bill.to_ref(),
                bill.request_no.clone(),
            );
            out.line(human, value);
            Ok(code)
        }
        Cmd::MerchantInfo => {
            let cfg = load(&cli)?;
            let a = cfg
                .file
                .gateways
                .aggregator
                .clone()
                .ok_or_else(|| anyhow!("no aggregator is configured"))?;
            let key = cfg.read_secret("aggregator key", &a.key_file)?;
            let agg = payterm::gateway::aggregator::Aggregator::new(a, key);
            let m = agg.merchant_info().map_err(|e| Fail(3, e.into()))?;
            out.line(
                format!("merchant {}: {} ({})", m.mch_id, m.full_name, m.short_name),
                json!({"mch_id": m.mch_id, "full_name": m.full_name, "short_name": m.short_name}),
            );
            Ok(0)
        }
    }
}

fn parse_wallet(s: &str) -> Result<Wallet, Fail> {
    Wallet::from_paytype(&s.to_ascii_uppercase()).ok_or_else(|| {
        Fail(
            1,
            anyhow!(
                "unknown wallet {s:?}: use WECHAT, ALIPAY, UNIONPAY, JDPAY, QQ, BESTPAY or ECNY"
            ),
        )
    })
}

/// The three ways to pay from the command line: the configuration loaded, the amount checked
/// against its limit, then `credential` says what the customer showed (with the wallet, when
/// it is not read from a code, and a gateway override).
fn take_payment(
    cli: &Cli,
    out: &Out,
    amount: &str,
    order: &Option<String>,
    details: &Details,
    credential: impl FnOnce(&Config) -> Result<(Credential, Option<Wallet>, Option<String>), Fail>,
) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let amount =
        Amount::parse_with_limit(amount, cfg.max_amount()).map_err(|e| Fail(1, e.into()))?;
    let (credential, wallet, gateway) = credential(&cfg)?;
    let req = PayRequest {
        order_id: order.clone(),
        amount,
        credential,
        wallet,
        gateway,
        details: details.clone().into_order()?,
    };
    pay(cli, &cfg, out, req)
}

fn pay(cli: &Cli, cfg: &Config, out: &Out, req: PayRequest) -> Result<u8, Fail> {
    let mut e = engine(cli, cfg)?;
    let mut shown_url = false;
    let mut obs = |r: &AttemptRow, n: &str| {
        if let (Some(url), false) = (&r.code_url, shown_url) {
            shown_url = true;
            out.line(
                format!("show this QR code to the customer: {url}"),
                json!({"event": "qr", "order": r.order_id, "code_url": url}),
            );
        }
        out.progress(r, n)
    };
    let row = e.pay(req, &mut obs).map_err(engine_err)?;
    Ok(finish(out, &row))
}

/// Prints where an attempt ended and returns the exit code for it.
fn contract_err(e: payterm::engine::offline::ContractError) -> Fail {
    use payterm::engine::offline::ContractError as C;
    let code = match &e {
        C::Refused(_) => 2,
        C::Upapi(u) if u.is_unreachable() => 3,
        C::Upapi(payterm::gateway::upapi::UpapiError::Refused { .. }) => 2,
        C::Engine(en) => return engine_err_ref(en, e.to_string()),
        _ => 1,
    };
    Fail(code, anyhow!("{e}"))
}

fn engine_err_ref(e: &EngineError, text: String) -> Fail {
    let code = match e {
        e if e.is_uncertain() => 3,
        EngineError::Journal(payterm::journal::JournalError::NotFound(_)) => 1,
        e if e.is_bad_input() => 1,
        _ => 2,
    };
    Fail(code, anyhow!("{text}"))
}

fn contract_cmd(cli: &Cli, out: &Out, cmd: &ContractCmd) -> Result<u8, Fail> {
    use payterm::engine::offline;
    let cfg = load(cli)?;
    let u = cfg
        .file
        .gateways
        .upapi
        .clone()
        .ok_or_else(|| Fail(1, anyhow!("no [gateways.upapi] is configured")))?;
    let mut e = engine(cli, &cfg)?;
    let upapi =
        || payterm::gateway::upapi::Upapi::from_config(&cfg, &u).map_err(|err| Fail(1, err.into()));
    let show = |c: &payterm::journal::offline::ContractRow| {
        out.line(
            format!(
                "contract {} of {} ({}): {}, {} unpaid order(s), checked {}",
                c.contract_id,
                c.open_id,
                c.masked_mobile.as_deref().unwrap_or("-"),
                c.status,
                c.arrears,
                util::beijing_human(c.checked_ms)
            ),
            json!({"result": c.status, "contract": c, "exit": 0}),
        )
    };
    match cmd {
        ContractCmd::Sign {
            auth_code,
            contract_code,
        } => {
            let c = offline::sign_contract(&mut e, &upapi()?, auth_code, contract_code)
                .map_err(contract_err)?;
            show(&c);
            Ok(0)
        }
        ContractCmd::Query { contract_id } => {
            let c =
                offline::check_contract(&mut e, &upapi()?, contract_id).map_err(contract_err)?;
            show(&c);
            Ok(if c.is_signed() && c.arrears == 0 {
                0
            } else {
                2
            })
        }
        ContractCmd::Cancel { contract_id } => {
            let c =
                offline::cancel_contract(&mut e, &upapi()?, contract_id).map_err(contract_err)?;
            show(&c);
            Ok(0)
        }
        ContractCmd::Charge {
            contract_id,
            amount,
            order,
        } => {
            let amount = Amount::parse_with_limit(amount, cfg.max_amount())
                .map_err(|err| Fail(1, err.into()))?;
            let mut obs = |r: &AttemptRow, n: &str| out.progress(r, n);
            let c = offline::charge(
                &mut e,
                &upapi()?,
                contract_id,
                amount,
                order.clone(),
                &mut obs,
            )
            .map_err(contract_err)?;
            match c {
                offline::Charge::Online { attempt } => Ok(finish(out, &attempt)),
                offline::Charge::Offline { deduction: d } => {
                    out.line(
                        format!(
                            "ACCEPTED OFFLINE: {} yuan for contract {} stored as {}; it is charged when the network returns",
                            d.amount, d.contract_id, d.deduction_id
                        ),
                        json!({"result": "OFFLINE_ACCEPTED", "deduction": d, "exit": 0}),
                    );
                    Ok(0)
                }
            }
        }
        ContractCmd::Refund {
            order,
            amount,
            refund_id,
        } => {
            let amount = Amount::parse_yuan(amount).map_err(|err| Fail(1, err.into()))?;
            check_refund_id(&e, order, refund_id.as_deref())?;
            let r = e
                .refund(order, amount, refund_id.clone())
                .map_err(|err| match err {
                    EngineError::Journal(payterm::journal::JournalError::RefundTooLarge {
                        ..
                    }) => Fail(1, err.into()),
                    other => engine_err(other),
                })?;
            Ok(print_refund(out, &r))
        }
        ContractCmd::Notify { query } => {
            let (answer, r) = offline::relieve_notice(&mut e, &upapi()?, query);
            let code = match &r {
                Ok((n, fresh)) => {
                    out.line(
                        format!(
                            "contract {} cancelled by the customer ({}); answer {answer}",
                            n.contract_id,
                            if *fresh { "recorded" } else { "already recorded" }
                        ),
                        json!({"result": "ok", "contract_id": n.contract_id, "fresh": fresh, "answer": answer, "exit": 0}),
                    );
                    0
                }
                Err(err) => {
                    out.line(
                        format!("notification refused: {err}; answer {answer}"),
                        json!({"result": "refused", "error": err.to_string(), "answer": answer, "exit": 1}),
                    );
                    1
                }
            };
            Ok(code)
        }
        ContractCmd::Deductions { open } => {
            let ds = e.journal().deductions(*open)?;
            for d in &ds {
                out.line(
                    format!(
                        "{} {:<13} {:>10} contract {} tries {} {} {}",
                        util::beijing_human(d.created_ms),
                        d.state.as_str(),
                        d.amount.to_string(),
                        d.contract_id,
                        d.tries,
                        d.out_trade_no.as_deref().unwrap_or("-"),
                        d.note
                    ),
                    json!({"deduction": d}),
                );
            }
            let open_n = ds.iter().filter(|d| !d.state.is_final()).count();
            out.line(
                format!("{} deductions, {open_n} not settled", ds.len()),
                json!({"result": "listed", "count": ds.len(), "open": open_n, "exit": 0}),
            );
            Ok(0)
        }
        ContractCmd::UpdateKey => {
            let g = payterm::gateway::upapi::ContractGateway::from_config(&cfg, &u)
                .map_err(|err| Fail(1, err.into()))?;
            let r = g
                .update_encryption_cert()
                .map_err(|err| Fail(3, err.into()))?;
            out.line(
                format!("{r:?}"),
                json!({"result": "ok", "update": format!("{r:?}"), "exit": 0}),
            );
            Ok(0)
        }
    }
}

fn finish(out: &Out, row: &AttemptRow) -> u8 {
    let who = row.wallet.map(|w| w.display_name()).unwrap_or("the wallet");
    let (code, human) = match (row.machine.state, row.machine.reverse_action) {
        (AttemptState::Paid, _) => (
            0,
            format!(
                "PAID {} yuan by {who}: order {} ({})",
                row.amount, row.order_id, row.out_trade_no
            ),
        ),
        (AttemptState::Failed, _) => (
            2,
            format!(
                "DECLINED: {} — the customer was not charged (order {})",
                row.last_note.trim_start_matches("declined: "),
                row.order_id
            ),
        ),
        (AttemptState::Reversed, Some(ReverseAction::Refund)) => (
            2,
            format!(
                "CANCELLED: the payment was reversed and the customer refunded (order {})",
                row.order_id
            ),
        ),
        (AttemptState::Reversed, _) => (
            2,
            format!(
                "NOT PAID: the order was closed; the customer was not charged (order {})",
                row.order_id
            ),
        ),
        (s, _) => (
            3,
            format!(
                "OUTCOME UNKNOWN ({s}): do NOT charge again with the same code. It is journaled as order {} ({}) and will be settled by recovery: {}",
                row.order_id, row.out_trade_no, row.last_note
            ),
        ),
    };
    out.line(
        human,
        json!({"result": row.machine.state, "reverse_action": row.machine.reverse_action, "order": row.order_id, "out_trade_no": row.out_trade_no, "amount_fen": row.amount.fen(), "note": row.last_note, "exit": code}),
    );
    code
}

fn print_refund(out: &Out, r: &payterm::journal::RefundRow) -> u8 {
    let code = match r.state {
        RefundState::Done => 0,
        RefundState::Failed => 2,
        _ => 3,
    };
    out.line(
        format!("refund {} of {} yuan: {} ({})", r.out_refund_no, r.amount, r.state.as_str(), r.note),
        json!({"result": r.state, "out_refund_no": r.out_refund_no, "amount_fen": r.amount.fen(), "note": r.note, "exit": code}),
    );
    code
}

fn journal_cmd(cli: &Cli, out: &Out, cmd: &JournalCmd) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let path = cli.journal.clone().unwrap_or_else(|| cfg.journal_path());
    let j = Journal::open(&path)?;
    match cmd {
        JournalCmd::List { open, review, date } => {
            let filter = ListFilter {
                open: *open,
                review: *review,
                date: date.clone(),
                limit: None,
            };
            let rows = j.list(&filter)?;
            if !out.json {
                println!(
                    "{:<20} {:<28} {:>10} {:<15} {:<10} order",
                    "created", "out_trade_no", "yuan", "state", "wallet"
                );
            }
            for a in &rows {
                out.line(
                    format!(
                        "{:<20} {:<28} {:>10} {:<15} {:<10} {}",
                        util::beijing_human(a.machine.created_ms),
                        a.out_trade_no,
                        a.amount.to_string(),
                        a.machine.state.as_str(),
                        a.wallet.map(|w| w.paytype()).unwrap_or("-"),
                        a.order_id
                    ),
                    serde_json::to_value(a).unwrap_or_default(),
                );
            }
            // The pre-authorisation family's operations (engine::preauth), under the same
            // filters: --open the unresolved ones, --review those and the ones for a person.
            let ops = j.preauth_list(&filter)?;
            if !ops.is_empty() && !out.json {
                println!("pre-authorisation operations:");
            }
            for p in &ops {
                out.line(
                    format!(
                        "{:<20} {:<28} {:>10} {:<15} {}/{} {} {}",
                        util::beijing_human(p.created_ms),
                        p.request_no,
                        p.amount.to_string(),
                        p.state.as_str(),
                        p.gateway,
                        p.operation.as_str(),
                        p.target_key,
                        p.last_note
                    ),
                    json!({"preauth": p}),
                );
            }
            Ok(0)
        }
        JournalCmd::Show { order } => {
            // A pre-authorisation operation's request number: the operation and its history.
            if let Some(p) = j.preauth_by_request_no(order)? {
                let history = j.preauth_history(p.op_id)?;
                if out.json {
                    out.line("", json!({"preauth": p, "history": history}));
                    return Ok(0);
                }
                println!(
                    "{} {} via {} on {}: {} yuan, state {}{}",
                    p.request_no,
                    p.operation.describe(),
                    p.gateway,
                    p.target_key,
                    p.amount,
                    p.state.as_str(),
                    p.chan_ref
                        .as_ref()
                        .map(|c| format!(", channel ref {c}"))
                        .unwrap_or_default()
                );
                for ev in &history {
                    println!(
                        "  {} {:>8} -> {:<8} {}{}",
                        util::beijing_human(ev.at_ms),
                        ev.from_state.as_deref().unwrap_or("-"),
                        ev.to_state,
                        ev.note,
                        if ev.detail.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", ev.detail)
                        }
                    );
                }
                return Ok(0);
            }
            let rows = j.find(order)?;
            for a in &rows {
                let refunds = j.refunds_for(a.attempt_id)?;
                let history = j.history(a.attempt_id)?;
                if out.json {
                    out.line(
                        "",
                        json!({"attempt": a, "history": history, "refunds": refunds}),
                    );
                    continue;
                }
                println!(
                    "attempt {} of order {}: {} yuan via {} ({}), code {}, state {}{}",
                    a.out_trade_no,
                    a.order_id,
                    a.amount,
                    a.gateway,
                    a.wallet.map(|w| w.display_name()).unwrap_or("-"),
                    a.code_mask.as_deref().unwrap_or("-"),
                    a.machine.state,
                    a.machine
                        .reverse_action
                        .map(|r| format!(" ({})", r.as_str()))
                        .unwrap_or_default()
                );
                if let Some(t) = &a.chan_trade_no {
                    println!("  channel trade no {t}; txn time {}", a.chan_txn_time);
                }
                for ev in &history {
                    println!(
                        "  {} {:>14} -> {:<15} {}{}{}",
                        util::beijing_human(ev.at_ms),
                        ev.from_state.as_deref().unwrap_or("-"),
                        ev.to_state,
                        ev.op
                            .as_deref()
                            .map(|o| format!("[{o}] "))
                            .unwrap_or_default(),
                        ev.note,
                        if ev.detail.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", ev.detail)
                        }
                    );
                }
                for r in &refunds {
                    println!(
                        "  refund {} {} yuan: {} ({})",
                        r.out_refund_no,
                        r.amount,
                        r.state.as_str(),
                        r.note
                    );
                }
            }
            Ok(0)
        }
        JournalCmd::Export => {
            let mut o = std::io::stdout().lock();
            j.export_jsonl(&mut o)?;
            Ok(0)
        }
        JournalCmd::Resolve {
            request_no,
            done,
            failed: _,
            note,
        } => {
            if note.trim().is_empty() {
                return Err(Fail(
                    1,
                    anyhow!("--note must say what was found, and where"),
                ));
            }
            let to = if *done {
                PreAuthState::Done
            } else {
                PreAuthState::Failed
            };
            let mut j = j;
            let r = j
                .preauth_resolve(request_no, to, note.trim(), util::now_ms())
                .map_err(|e| Fail(2, e.into()))?;
            out.line(
                format!("{} is now {}", r.request_no, r.state.as_str()),
                json!({"result": r.state.as_str(), "preauth": r, "exit": 0}),
            );
            Ok(0)
        }
    }
}

fn config_check(cli: &Cli, out: &Out) -> Result<u8, Fail> {
    let text = std::fs::read_to_string(&cli.config)
        .map_err(|e| Fail(1, anyhow!("cannot read {}: {e}", cli.config.display())))?;
    let file: payterm::config::File = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            out.line(
                format!("error: {}: {e}", cli.config.display()),
                json!({"severity": "error", "message": e.to_string()}),
            );
            return Ok(1);
        }
    };
    let dir = cli
        .config
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let cfg = Config {
        file,
        path: cli.config.clone(),
        dir,
    };
    let mut problems = cfg.problems();
    if let Some(b) = &cfg.file.board {
        match payterm::device::load_board(&cfg.resolve(b)) {
            Ok(board) => {
                for p in payterm::device::check_board(&board) {
                    let field = format!("board {}", board.name);
                    problems.push(match p.severity {
                        payterm::device::board::Severity::Error => {
                            payterm::config::Problem::error(field, p.to_string())
                        }
                        _ => payterm::config::Problem::warning(field, p.to_string()),
                    });
                }
            }
            Err(e) => problems.push(payterm::config::Problem::error("board", e.to_string())),
        }
    }
    for p in &problems {
        out.line(p.to_string(), json!({"severity": if p.severity == Severity::Error { "error" } else { "warning" }, "field": p.field, "message": p.message}));
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    out.line(
        format!("{}: {errors} errors, {} warnings", cli.config.display(), problems.len() - errors),
        json!({"result": if errors == 0 { "ok" } else { "invalid" }, "errors": errors, "warnings": problems.len() - errors}),
    );
    Ok(if errors == 0 { 0 } else { 1 })
}

fn sandbox(cli: &Cli, out: &Out, listen: std::net::SocketAddr, hang_ms: u64) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let a = cfg.file.gateways.aggregator.clone().ok_or_else(|| {
        anyhow!("the sandbox needs [gateways.aggregator] in the configuration for its credentials")
    })?;
    let key = cfg.read_secret("aggregator key", &a.key_file)?;
    let mut sc = payterm::sandbox::SandboxConfig::new(&a.agent_id, &a.mch_id, &key);
    sc.hang_ms = hang_ms;
    if let Some(c) = &cfg.file.gateways.chinaums {
        let mut u = payterm::sandbox::chinaums::UmsSandboxConfig::builtin();
        u.app_id = c.app_id.clone();
        u.app_key = cfg.read_secret("ChinaUMS AppKey", &c.app_key_file)?;
        u.merchant_code = c.merchant_code.clone();
        u.terminal_code = c.terminal_code.clone();
        if let Some(b) = &c.bills {
            u.bills_mid = b.mid.clone();
            u.bills_tid = b.tid.clone();
        }
        sc.chinaums = Some(u);
    }
    if let Some(c) = &cfg.file.gateways.upapi {
        let mut u = payterm::sandbox::upapi::UpapiSandboxConfig::builtin();
        u.app_id = c.app_id.clone();
        u.secret = cfg.read_secret("云闪付 secret", &c.secret_file)?;
        u.symmetric_key_hex = cfg.read_secret("云闪付 symmetricKey", &c.symmetric_key_file)?;
        u.plan_id = c.plan_id.clone();
        sc.upapi = Some(u);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sb = payterm::sandbox::Sandbox::new(sc);
        let (addr, handle) = sb
            .spawn(listen)
            .await
            .map_err(|e| Fail(1, anyhow!("cannot listen on {listen}: {e}")))?;
        out.line(
            format!("sandbox gateways on http://{addr} (ledger: /_sandbox/ledger); Ctrl-C stops"),
            json!({"event": "listening", "url": format!("http://{addr}")}),
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate() => {}
            _ = handle => {}
        }
        Ok::<u8, Fail>(0)
    })
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}
