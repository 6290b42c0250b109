//! `payterm contract …`: 云闪付 无感支付 contract customers (sign, query, cancel, charge, refund,
//! the cancel notification, offline deductions, the encryption key update). The contract rules
//! and offline acceptance are payterm::engine::offline's; this file maps their errors to exit
//! codes (a refusal 2, no answer 3) and prints, and must not decide whether to accept offline.

use anyhow::anyhow;
use serde_json::json;

use payterm::core::money::Amount;
use payterm::engine::EngineError;
use payterm::journal::AttemptRow;
use payterm::util;

use crate::cli::{Cli, ContractCmd};
use crate::commands::refund::check_refund_id;
use crate::context::{engine, engine_err, engine_err_ref, load};
use crate::output::{Fail, Out, finish, print_refund};

/// A contract operation's error with the exit code it deserves.
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

pub(crate) fn run(cli: &Cli, out: &Out, cmd: &ContractCmd) -> Result<u8, Fail> {
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
