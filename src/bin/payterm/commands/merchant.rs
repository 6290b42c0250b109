//! `payterm merchant register|sms|id|partner|info` and `payterm miniprogram session`: the
//! aggregator's 运维管理 group, one library call each. Nothing here moves money, so nothing is
//! journaled. Secrets in the replies (the mini-program session key, the merchant trade code)
//! are never printed in full unless a flag asks for the trade code.

use anyhow::anyhow;
use serde_json::json;

use payterm::gateway::aggregator::AggregatorError;
use payterm::gateway::aggregator::merchant::MchLogin;

use crate::cli::{Cli, MerchantCmd, MiniprogramCmd};
use crate::context::{aggregator, load};
use crate::output::{Fail, Out};

/// Refused before sending: 1; refused by the aggregator: 2; no believable answer: 3 (a
/// registration may have happened).
fn fail(e: AggregatorError) -> Fail {
    let code = match &e {
        AggregatorError::BadInput(_) => 1,
        AggregatorError::Refused { .. } => 2,
        _ => 3,
    };
    Fail(code, e.into())
}

/// Enough of a code to recognise it, not enough to use it.
fn mask(s: &str) -> String {
    let head: String = s.chars().take(2).collect();
    format!("{head}{}", "*".repeat(s.chars().count().saturating_sub(2)))
}

pub(crate) fn run(cli: &Cli, out: &Out, cmd: &MerchantCmd) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let agg = aggregator(&cfg)?;
    match cmd {
        MerchantCmd::Register { params } => {
            let r = agg.register_merchant(params).map_err(fail)?;
            out.line(
                format!("registered: virtual merchant {}", r.mch_id),
                json!({"result": "ok", "mch_id": r.mch_id, "exit": 0}),
            );
        }
        MerchantCmd::Sms { mobile } => {
            let r = agg.send_sms_code(mobile).map_err(fail)?;
            let valid = r
                .valid_minutes
                .map(|m| format!(", valid {m} minutes"))
                .unwrap_or_default();
            out.line(
                format!("SMS code sent to {mobile}{valid}: {}", r.msg),
                json!({"result": "ok", "mobile": mobile, "valid_minutes": r.valid_minutes, "msg": r.msg, "exit": 0}),
            );
        }
        MerchantCmd::Id {
            mobile,
            valid,
            username,
            password,
            show_trade_code,
        } => {
            let login = match (mobile, valid, username, password) {
                (Some(m), Some(v), _, _) => MchLogin::Sms {
                    mobile: m.clone(),
                    valid: v.clone(),
                },
                (_, _, Some(u), Some(p)) => MchLogin::Password {
                    username: u.clone(),
                    password: p.clone(),
                },
                _ => {
                    return Err(Fail(
                        1,
                        anyhow!("give --mobile and --valid, or --username and --password"),
                    ));
                }
            };
            let m = agg.merchant_id(&login).map_err(fail)?;
            let code = if *show_trade_code {
                m.mch_trade_code.clone()
            } else {
                mask(&m.mch_trade_code)
            };
            out.line(
                format!(
                    "merchant {}: {} ({}), {}; trade code {code}",
                    m.mch_id,
                    m.full_name,
                    m.short_name,
                    m.state_words()
                ),
                json!({"result": "ok", "mch_id": m.mch_id, "full_name": m.full_name, "short_name": m.short_name, "mch_state": m.mch_state, "mch_trade_code": code, "exit": 0}),
            );
        }
        MerchantCmd::Partner { mch_id } => {
            let p = agg.partner_ids(mch_id.as_deref()).map_err(fail)?;
            let human: Vec<String> = p
                .partners
                .iter()
                .map(|x| {
                    format!(
                        "  {}: sub-merchant {} (appid {})",
                        x.pay_channel,
                        x.partner_id
                            .as_deref()
                            .filter(|s| !s.is_empty())
                            .unwrap_or("not yet approved by WeChat"),
                        x.appid.as_deref().unwrap_or("-")
                    )
                })
                .collect();
            out.line(
                format!(
                    "merchant {}: {} WeChat sub-merchant entries\n{}",
                    p.mch_id,
                    p.partners.len(),
                    human.join("\n")
                ),
                json!({"result": "ok", "mch_id": p.mch_id, "partners": p.partners, "exit": 0}),
            );
        }
        MerchantCmd::Info => {
            let m = agg.merchant_info().map_err(fail)?;
            out.line(
                format!("merchant {}: {} ({})", m.mch_id, m.full_name, m.short_name),
                json!({"result": "ok", "mch_id": m.mch_id, "full_name": m.full_name, "short_name": m.short_name, "exit": 0}),
            );
        }
    }
    Ok(0)
}

pub(crate) fn miniprogram(cli: &Cli, out: &Out, cmd: &MiniprogramCmd) -> Result<u8, Fail> {
    let cfg = load(cli)?;
    let agg = aggregator(&cfg)?;
    match cmd {
        MiniprogramCmd::Session { code, appid } => {
            let s = agg.code_to_session(appid, code).map_err(fail)?;
            let key = s
                .session_key
                .as_ref()
                .map(|k| k.masked())
                .unwrap_or_else(|| "(none returned)".into());
            out.line(
                format!(
                    "openid {}, unionid {}, expires in {} s; session_key {key}",
                    s.openid,
                    s.unionid.as_deref().unwrap_or("-"),
                    s.expires_in
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "?".into())
                ),
                json!({"result": "ok", "openid": s.openid, "unionid": s.unionid, "expires_in": s.expires_in, "session_key_returned": s.session_key.is_some(), "exit": 0}),
            );
        }
    }
    Ok(0)
}
