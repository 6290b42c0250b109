//! `payterm pay`, `face-pay` and `qr-pay`: the three ways to take a payment, sharing one path
//! (configuration, amount limit, engine, progress, final sentence). Each command only says what
//! the customer showed; the engine journals and settles the attempt. Nothing here retries or
//! interprets a gateway's answer, so the exit code is always the one output::finish gives.

use anyhow::anyhow;
use serde_json::json;

use payterm::config::Config;
use payterm::core::authcode::{AuthCode, Wallet};
use payterm::core::money::Amount;
use payterm::engine::PayRequest;
use payterm::gateway::{Credential, FaceCode};
use payterm::journal::AttemptRow;

use crate::cli::{Cli, Details};
use crate::context::{engine, engine_err, load};
use crate::output::{Fail, Out, finish};

pub(crate) fn pay(
    cli: &Cli,
    out: &Out,
    amount: &str,
    code: &str,
    order: &Option<String>,
    gateway: &Option<String>,
    details: &Details,
) -> Result<u8, Fail> {
    take_payment(cli, out, amount, order, details, |cfg| {
        let code = AuthCode::classify(code, &cfg.code_rules()).map_err(|e| Fail(1, e.into()))?;
        Ok((Credential::Code(code), None, gateway.clone()))
    })
}

// face-pay's flags one by one, as clap parsed them: a struct for them would only repeat Cmd.
#[allow(clippy::too_many_arguments)]
pub(crate) fn face_pay(
    cli: &Cli,
    out: &Out,
    amount: &str,
    face_code: &str,
    openid: &str,
    wallet: &str,
    order: &Option<String>,
    details: &Details,
) -> Result<u8, Fail> {
    take_payment(cli, out, amount, order, details, |_| {
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
    })
}

pub(crate) fn qr_pay(
    cli: &Cli,
    out: &Out,
    amount: &str,
    wallet: &str,
    order: &Option<String>,
    notify_url: &Option<String>,
    details: &Details,
) -> Result<u8, Fail> {
    take_payment(cli, out, amount, order, details, |_| {
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
    })
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
    submit(cli, &cfg, out, req)
}

fn submit(cli: &Cli, cfg: &Config, out: &Out, req: PayRequest) -> Result<u8, Fail> {
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
