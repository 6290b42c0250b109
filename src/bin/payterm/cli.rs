//! The command line's grammar: every clap type, its flags, defaults, environment variables and
//! help text. What a user may type is decided here and only here, so a change to a flag is a
//! change to this file. It must not run anything: turning typed arguments into library values
//! (a small `into_…`/`to_…` conversion) is as far as it goes; commands/ does the work.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};

use payterm::gateway::OrderDetails;

#[derive(Parser)]
#[command(
    name = "payterm",
    version,
    about = "Payment agent for Linux point-of-sale terminals"
)]
pub(crate) struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        env = "PAYTERM_CONFIG",
        default_value = "/etc/payterm/payterm.toml"
    )]
    pub(crate) config: PathBuf,
    /// Print one JSON object per line.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Use this journal file instead of the configured one.
    #[arg(long, global = true, env = "PAYTERM_JOURNAL")]
    pub(crate) journal: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(clap::Args, Clone, Default)]
pub(crate) struct Details {
    /// What is sold (the gateway's body).
    #[arg(long, default_value = "payterm")]
    pub(crate) body: String,
    /// Merchant data returned as is.
    #[arg(long)]
    pub(crate) attach: Option<String>,
    /// Goods as a JSON array (goods_detail).
    #[arg(long)]
    pub(crate) goods: Option<String>,
    /// Promotion tag (goods_tag).
    #[arg(long)]
    pub(crate) goods_tag: Option<String>,
    /// Operator (cashier) id.
    #[arg(long)]
    pub(crate) operator: Option<String>,
    /// Store id.
    #[arg(long)]
    pub(crate) store: Option<String>,
    /// Device id.
    #[arg(long)]
    pub(crate) device: Option<String>,
}

impl Details {
    pub(crate) fn into_order(self) -> Result<OrderDetails> {
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
pub(crate) enum Cmd {
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
        /// The screen's size in pixels, WIDTHxHEIGHT.
        #[arg(long, default_value = "480x320")]
        size: String,
        /// The language of the screen's text: zh or en.
        #[arg(long, default_value = "zh")]
        locale: String,
        /// The PNG file to write.
        #[arg(long, default_value = "screen.png")]
        out: PathBuf,
    },
    /// For installers: prints every code the configured scanners decode (masked) and the
    /// events that made it. Ctrl-C stops.
    ScanTest,
    /// Runs the sandbox gateways alone, on loopback.
    Sandbox {
        /// Where the sandbox listens (port 0: any free port, printed at start).
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
        /// Our order id (the cash register's); a new one when absent.
        #[arg(long)]
        order: Option<String>,
        /// The gateway to use (aggregator, acp, chinaums) instead of the configured route.
        #[arg(long)]
        gateway: Option<String>,
        #[command(flatten)]
        details: Details,
    },
    /// Takes a face payment with the face module's face code and openid.
    FacePay {
        /// Amount in yuan, e.g. 12.34.
        #[arg(long)]
        amount: String,
        /// The face module's face code (never stored).
        #[arg(long, env = "PAYTERM_FACE_CODE", hide_env_values = true)]
        face_code: String,
        /// The customer's openid, from the face module.
        #[arg(long)]
        openid: String,
        /// The wallet of the face payment: WECHAT or ALIPAY.
        #[arg(long, default_value = "WECHAT")]
        wallet: String,
        /// Our order id; a new one when absent.
        #[arg(long)]
        order: Option<String>,
        #[command(flatten)]
        details: Details,
    },
    /// Shows a QR code for the customer to scan (pre-order) and waits for the payment.
    QrPay {
        /// Amount in yuan, e.g. 12.34.
        #[arg(long)]
        amount: String,
        /// Whose QR code: WECHAT or ALIPAY.
        #[arg(long, default_value = "WECHAT")]
        wallet: String,
        /// Our order id; a new one when absent.
        #[arg(long)]
        order: Option<String>,
        /// Where the gateway posts the result (defaults to the configured notify_url).
        #[arg(long)]
        notify_url: Option<String>,
        #[command(flatten)]
        details: Details,
    },
    /// Asks the gateway about an order now (the journal is not changed).
    Query {
        /// The order id (or an attempt's out_trade_no).
        order: String,
    },
    /// Cancels an order: an unsettled one is fenced, a paid one reversed within its window.
    Cancel {
        /// The order id.
        order: String,
    },
    /// Refunds part or all of a paid order.
    Refund {
        /// The order id.
        order: String,
        /// The amount to refund, in yuan.
        #[arg(long)]
        amount: String,
        /// Our refund number (a new one when absent); the same number refunds only once.
        #[arg(long)]
        refund_id: Option<String>,
    },
    /// Asks the gateway about a refund and records the answer.
    RefundQuery {
        /// The refund number (out_refund_no).
        refund_id: String,
    },
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
    /// The merchant's registered names (aggregator GetMchInfo); the same as `merchant info`.
    MerchantInfo,
    /// The aggregator's merchant operations (运维管理): register, SMS code, merchant id,
    /// WeChat sub-merchant ids, merchant information.
    Merchant {
        #[command(subcommand)]
        cmd: MerchantCmd,
    },
    /// WeChat mini-program operations through the aggregator.
    Miniprogram {
        #[command(subcommand)]
        cmd: MiniprogramCmd,
    },
    /// UnionPay ACP tools.
    Acp {
        #[command(subcommand)]
        cmd: AcpCmd,
    },
    /// Downloads the ACP reconciliation file of a clearing date (YYYY-MM-DD) and lists every
    /// difference against the journal: exit 0 none, 2 differences.
    Reconcile {
        /// The clearing date, YYYY-MM-DD.
        date: String,
    },
    /// ChinaUMS netpay bills: the pre-authorisation family.
    Chinaums {
        #[command(subcommand)]
        cmd: ChinaumsCmd,
    },
    /// Shifts (签退): open one for an operator, close it with its totals printed and kept.
    Shift {
        #[command(subcommand)]
        cmd: ShiftCmd,
    },
    /// Totals (日结): per gateway and wallet, paid, refunded and net, with what is unsettled
    /// or in review. Without a flag: the open shift, or else today (Beijing time).
    Totals {
        /// A shift, open or closed (a closed one prints its stored totals).
        #[arg(long, conflicts_with = "day")]
        shift: Option<i64>,
        /// A Beijing calendar day, yyyy-mm-dd.
        #[arg(long)]
        day: Option<String>,
    },
    /// Writes an order's receipt (小票) as ESC/POS bytes, or prints its text.
    Receipt {
        /// The order id (or an out_trade_no) whose receipt to lay out.
        order: String,
        /// Paper width in millimetres: 58 (32 columns) or 80 (48 columns); default the
        /// board's printer, else 58.
        #[arg(long)]
        width: Option<u16>,
        /// Write the printer's bytes here instead of printing the text.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// 云闪付 无感支付 contract customers: sign, query, cancel, charge (offline within limits
    /// when the uplink is down), refund, the cancel notification, offline deductions.
    Contract {
        #[command(subcommand)]
        cmd: ContractCmd,
    },
}

#[derive(Subcommand)]
pub(crate) enum ContractCmd {
    /// Signs a contract with the authorization code the customer's 云闪付 app produced.
    Sign {
        /// The authorization code from the customer's 云闪付 app.
        #[arg(long)]
        auth_code: String,
        /// Our agreement number (letters and digits, at most 32).
        #[arg(long)]
        contract_code: String,
    },
    /// Confirms the contract and the customer's arrears online (what offline acceptance trusts).
    Query {
        /// The contract id (from `contract sign`).
        contract_id: String,
    },
    /// Cancels (解约) the contract.
    Cancel {
        /// The contract id.
        contract_id: String,
    },
    /// Charges the contract customer (online; offline within the limits if the uplink is down).
    Charge {
        /// The contract id.
        contract_id: String,
        /// Amount in yuan.
        #[arg(long)]
        amount: String,
        /// Our order id; a new one when absent.
        #[arg(long)]
        order: Option<String>,
    },
    /// Refunds part or all of a paid contract charge.
    Refund {
        /// The order id of the charge.
        order: String,
        /// The amount to refund, in yuan.
        #[arg(long)]
        amount: String,
        /// Our refund number (a new one when absent).
        #[arg(long)]
        refund_id: Option<String>,
    },
    /// Handles a cancel notification (the query string of 云闪付's GET); prints the answer.
    Notify {
        /// The notification's query string, as received.
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
pub(crate) struct BillArgs {
    /// billNo of the pre-authorised bill.
    #[arg(long)]
    pub(crate) bill_no: String,
    /// billDate, yyyy-MM-dd.
    #[arg(long)]
    pub(crate) bill_date: String,
    /// merOrderId of the pre-authorisation.
    #[arg(long)]
    pub(crate) mer_order_id: String,
    /// authIdRespCd, the authorisation code.
    #[arg(long, default_value = "")]
    pub(crate) auth_code: String,
    /// Our request number for the journal (8 to 40 letters or digits; a new one when absent).
    /// The same number again never sends the operation twice. bill-query ignores it.
    #[arg(long)]
    pub(crate) request_no: Option<String>,
}

impl BillArgs {
    pub(crate) fn to_ref(&self) -> payterm::gateway::chinaums::PreAuthRef {
        payterm::gateway::chinaums::PreAuthRef {
            bill_no: self.bill_no.clone(),
            bill_date: self.bill_date.clone(),
            mer_order_id: self.mer_order_id.clone(),
            auth_id_resp_cd: self.auth_code.clone(),
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum ChinaumsCmd {
    /// 预授权撤销: releases a pre-authorisation that was not completed.
    PreauthCancel(BillArgs),
    /// 预授权完成: takes an amount (yuan) from a pre-authorisation.
    PreauthComplete {
        #[command(flatten)]
        bill: BillArgs,
        /// The amount to complete, in yuan.
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
pub(crate) struct AcpOrig {
    /// queryId of the original (the pre-authorisation, or the completion for its undo).
    #[arg(long)]
    pub(crate) orig_query_id: Option<String>,
    /// orderId of the original (with --orig-txn-time).
    #[arg(long)]
    pub(crate) orig_order_id: Option<String>,
    /// txnTime of the original, YYYYMMDDhhmmss.
    #[arg(long)]
    pub(crate) orig_txn_time: Option<String>,
}

impl AcpOrig {
    pub(crate) fn to_args(&self) -> crate::commands::acp::OrigArgs {
        crate::commands::acp::OrigArgs {
            query_id: self.orig_query_id.clone(),
            order_id: self.orig_order_id.clone(),
            txn_time: self.orig_txn_time.clone(),
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum AcpCmd {
    /// QR pre-authorisation (02): holds an amount (yuan) on the customer's UnionPay code.
    Preauth {
        /// The amount to hold, in yuan.
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
        /// Our request number, the orderId (new when absent); the same again never sends twice.
        #[arg(long)]
        request_no: Option<String>,
    },
    /// Pre-authorisation completion (03): takes an amount (yuan) from the hold.
    PreauthComplete {
        #[command(flatten)]
        orig: AcpOrig,
        /// The amount to complete, in yuan.
        #[arg(long)]
        amount: String,
        /// Our request number, the orderId (new when absent); the same again never sends twice.
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
        /// Our request number, the orderId (new when absent); the same again never sends twice.
        #[arg(long)]
        request_no: Option<String>,
    },
    /// Verifies a saved ACP reply or notification step by step: exit 0 verified, 1 not.
    Verify {
        /// The saved reply or notification (the form body as received).
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
    pub(crate) fn preauth(
        &self,
    ) -> Option<(
        crate::commands::acp::AcpPreAuthCmd,
        crate::commands::acp::OrigArgs,
        &str,
        &Option<String>,
    )> {
        use crate::commands::acp::AcpPreAuthCmd as P;
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
pub(crate) enum JournalCmd {
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
        /// Only attempts of this Beijing date, YYYY-MM-DD.
        #[arg(long, value_parser = iso_date, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// Shows an order's attempts (or a pre-authorisation operation, by request number) with
    /// their whole history.
    Show {
        /// The order id, an out_trade_no, or a pre-authorisation request number.
        order: String,
    },
    /// Writes every attempt with its history as JSON lines.
    Export,
    /// Settles what waits for a person once they have checked it with the channel: a
    /// pre-authorisation operation in REVIEW (`--done` it took effect, `--failed` it did not;
    /// until then it blocks other operations on the same pre-authorisation), or an order in
    /// MANUAL_REVIEW (`--done` paid, `--failed` never charged, `--refunded` money returned).
    Resolve {
        /// A pre-authorisation operation's request number, or an order (or its out_trade_no)
        /// with an attempt in manual review.
        request_no: String,
        /// The operation went through / the order was paid and the store keeps the money.
        #[arg(long, conflicts_with_all = ["failed", "refunded"], required_unless_present_any = ["failed", "refunded"])]
        done: bool,
        /// The operation did not happen / the customer was never charged.
        #[arg(long, conflicts_with = "refunded")]
        failed: bool,
        /// An order only: the customer was charged and the money went back.
        #[arg(long)]
        refunded: bool,
        /// What the person found, and where (kept in the history).
        #[arg(long)]
        note: String,
    },
}

/// A calendar date as YYYY-MM-DD: anything else would silently match nothing.
fn iso_date(s: &str) -> Result<String, String> {
    match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(_) if s.len() == 10 => Ok(s.to_string()),
        _ => Err(format!(
            "the date must be YYYY-MM-DD, e.g. 2026-03-12, not {s:?}"
        )),
    }
}

/// `KEY=VALUE`, as Mch_Reg's parameters are given.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[derive(Subcommand)]
pub(crate) enum MerchantCmd {
    /// Mch_Reg: registers a virtual merchant. Its parameters are agreed with the aggregator's
    /// support per integration, so they are given as KEY=VALUE pairs.
    Register {
        /// The registration parameters, e.g. `mch_name=小店 mobile=13800000000`.
        #[arg(value_parser = key_value, required = true, value_name = "KEY=VALUE")]
        params: Vec<(String, String)>,
    },
    /// GetMchSMSValid: has the aggregator text a verification code to a mobile number.
    Sms {
        /// The mobile number (11 digits).
        #[arg(long)]
        mobile: String,
    },
    /// GetMchId: the merchant id for a mobile number and its SMS code, or a username and password.
    Id {
        /// The mobile number the SMS code went to (with --valid).
        #[arg(long, requires = "valid", conflicts_with = "username")]
        mobile: Option<String>,
        /// The SMS verification code (from `payterm merchant sms`).
        #[arg(long, requires = "mobile")]
        valid: Option<String>,
        /// The merchant's username (with --password).
        #[arg(long, requires = "password")]
        username: Option<String>,
        /// The merchant's password (better through PAYTERM_MCH_PASSWORD: a command line is
        /// visible to other users).
        #[arg(long, env = "PAYTERM_MCH_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Print the merchant trade code (商户交易码) in full instead of masked.
        #[arg(long)]
        show_trade_code: bool,
    },
    /// GetPartnerId: the merchant's WeChat sub-merchant ids, per payment channel.
    Partner {
        /// Whose ids (default: the configured mch_id).
        #[arg(long)]
        mch_id: Option<String>,
    },
    /// GetMchInfo: the merchant's registered full and short names.
    Info,
}

#[derive(Subcommand)]
pub(crate) enum MiniprogramCmd {
    /// WXA_Code2Session: a mini-program user's openid (and unionid) from their login code. The
    /// session key is a secret: only whether one was returned is printed.
    Session {
        /// The login code (js_code) from wx.login().
        #[arg(long, env = "PAYTERM_WXA_CODE", hide_env_values = true)]
        code: String,
        /// The mini-program's appid.
        #[arg(long, env = "PAYTERM_WXA_APPID")]
        appid: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum ShiftCmd {
    /// Opens a shift; refused while another is open.
    Open {
        /// The operator (cashier) id: letters, digits, '-' or '_'.
        #[arg(long)]
        operator: String,
    },
    /// Closes the open shift: prints its totals and keeps them in the journal.
    Close,
}

#[derive(Subcommand)]
pub(crate) enum ConfigCmd {
    /// Explains every problem in the configuration.
    Check {
        /// Also send one harmless signed request to each configured aggregator (GetMchInfo,
        /// which moves no money) to prove its URL, key and ids, and explain any failure.
        #[arg(long)]
        online: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag and argument explains itself in --help.
    #[test]
    fn every_option_has_help_text() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                let builtin = matches!(a.get_id().as_str(), "help" | "version");
                if !builtin && a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for s in c.get_subcommands() {
                walk(s, &format!("{path} {}", s.get_name()), missing);
            }
        }
        let mut missing = vec![];
        walk(&super::Cli::command(), "payterm", &mut missing);
        assert!(missing.is_empty(), "options without help: {missing:#?}");
    }

    #[test]
    fn dates_are_iso_only() {
        assert!(super::iso_date("2026-03-12").is_ok());
        for bad in [
            "12/03",
            "2026-3-12",
            "2026-02-30",
            "20260312",
            "2026-03-12x",
        ] {
            assert!(super::iso_date(bad).is_err(), "{bad}");
        }
    }
}
