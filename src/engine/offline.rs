//! 无感支付 contract customers at the kiosk, and offline deductions when the uplink is down.
//!
//! Contract operations (sign, check, cancel, the cancel notification) call the 云闪付 open
//! platform through [`Upapi`] and record what they learn in the journal. A charge checks the
//! contract and the customer's arrears online and debits through the engine (gateway `upapi`),
//! like any attempt. When the open platform cannot be reached, a *known* contract customer —
//! signed, without arrears, and confirmed online within `fresh_within_s` — may be accepted
//! offline within the configured limits (per customer, in total, and by age of the oldest stored
//! deduction); the deduction is stored durably before the customer is told yes. Above a limit
//! the customer is refused with a message they understand. Stored deductions are submitted
//! through the engine by the recovery pass; each ends SETTLED or in MANUAL_REVIEW, never lost.

use serde::Serialize;
use thiserror::Error;

use super::{Engine, EngineError, Observer, PayRequest};
use crate::core::authcode::Wallet;
use crate::core::machine::AttemptState;
use crate::core::money::Amount;
use crate::gateway::upapi::{
    ContractStatus, OfflineConfig, RelieveNotice, Upapi, UpapiError, notice_reply,
};
use crate::gateway::{Credential, OrderDetails};
use crate::journal::offline::{ContractRow, DeductionRow, DeductionState};
use crate::journal::{AttemptRow, JournalError};
use crate::util;

/// Attempts per deduction when the caller does not say (the recovery pass).
pub const DEFAULT_MAX_TRIES: u32 = 3;

/// Why a customer cannot be accepted offline: every message is meant to be shown to them.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OfflineRefusal {
    #[error(
        "离线免密支付未开启 / offline payment is not enabled on this terminal; please pay with a payment code"
    )]
    Disabled,
    #[error(
        "未找到您的免密支付协议 / we do not know your 云闪付 contract on this terminal; please pay with a payment code"
    )]
    UnknownContract,
    #[error(
        "您的免密支付协议已解约 / your 云闪付 contract has been cancelled; please pay with a payment code"
    )]
    Relieved,
    #[error(
        "您在云闪付有未支付订单 / you have {0} unpaid 云闪付 order(s); please settle them in the 云闪付 app first"
    )]
    Arrears(u32),
    #[error(
        "网络中断且您的协议状态已超过 {minutes} 分钟未确认 / the network is down and your contract was last confirmed {minutes} minutes ago; please pay with a payment code"
    )]
    Stale { minutes: i64 },
    #[error(
        "已达到您的离线消费额度 / this would bring your offline charges to {would} yuan, above the limit of {limit} yuan; please pay with a payment code"
    )]
    PerCustomer { would: Amount, limit: Amount },
    #[error(
        "本机离线消费总额已满 / this terminal has reached its offline limit ({limit} yuan); please pay with a payment code"
    )]
    Total { limit: Amount },
    #[error(
        "网络中断时间过长，暂停离线消费 / the network has been down too long ({minutes} minutes) to accept more offline charges; please pay with a payment code"
    )]
    TooOld { minutes: i64 },
}

#[derive(Debug, Error)]
pub enum ContractError {
    #[error(transparent)]
    Upapi(#[from] UpapiError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("refused: {0}")]
    Refused(#[from] OfflineRefusal),
    #[error("the amount must be positive")]
    BadAmount,
}

/// How a charge was taken.
#[derive(Debug, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Charge {
    /// Debited online through the engine; the attempt says how it ended.
    Online { attempt: Box<AttemptRow> },
    /// Accepted offline and stored; it is submitted when the uplink returns.
    Offline { deduction: DeductionRow },
}

fn parse_limit(s: &str) -> Amount {
    Amount::parse_yuan(s).unwrap_or(Amount::from_fen(0))
}

/// Signs a contract for the user whose app produced `auth_code`, and records it.
pub fn sign_contract(
    engine: &mut Engine,
    upapi: &Upapi,
    auth_code: &str,
    contract_code: &str,
) -> Result<ContractRow, ContractError> {
    let user = upapi.user_auth(auth_code)?;
    let c = upapi.contract_apply(&user, contract_code)?;
    let now = util::now_ms();
    let row = ContractRow {
        contract_id: c.contract_id,
        open_id: c.open_id,
        plan_id: c.plan_id,
        contract_code: c.contract_code,
        status: "SIGNED".into(),
        arrears: 0,
        checked_ms: now,
        signed_ms: now,
        relieved_ms: None,
        masked_mobile: c.masked_mobile,
    };
    Ok(engine.journal_mut().upsert_contract(&row, now)?)
}

fn known(engine: &Engine, contract_id: &str) -> Result<ContractRow, ContractError> {
    engine
        .journal()
        .contract(contract_id)?
        .ok_or(ContractError::Refused(OfflineRefusal::UnknownContract))
}

/// Confirms a contract and the customer's arrears online and records the result.
pub fn check_contract(
    engine: &mut Engine,
    upapi: &Upapi,
    contract_id: &str,
) -> Result<ContractRow, ContractError> {
    let c = known(engine, contract_id)?;
    let signed = match upapi.contract_info(&c.open_id)? {
        ContractStatus::Signed { contract_id: id } => id.is_empty() || id == c.contract_id,
        ContractStatus::NotSigned | ContractStatus::Terminated { .. } => false,
        // An undocumented status proves neither signed nor relieved: record nothing.
        ContractStatus::Other { code } => {
            return Err(UpapiError::BadReply(format!(
                "contract.info contractStatus {code:?} is not documented (1 signed, 3 terminated, empty not signed)"
            ))
            .into());
        }
    };
    let arrears = upapi.arrears(&c.open_id)?;
    Ok(engine
        .journal_mut()
        .record_contract_check(contract_id, signed, arrears, util::now_ms())?)
}

/// The merchant cancels a contract.
pub fn cancel_contract(
    engine: &mut Engine,
    upapi: &Upapi,
    contract_id: &str,
) -> Result<ContractRow, ContractError> {
    let c = known(engine, contract_id)?;
    upapi.contract_relieve(&c.open_id, &c.contract_id, &c.contract_code)?;
    Ok(engine
        .journal_mut()
        .record_contract_check(contract_id, false, c.arrears, util::now_ms())?)
}

/// Handles a cancel notification (the query string of 云闪付's GET): verifies it, records it
/// once, and returns the body to answer — `{"resp":"00"}` only once it is durable, for the first
/// delivery and for every repeat.
pub fn relieve_notice(
    engine: &mut Engine,
    upapi: &Upapi,
    query: &str,
) -> (String, Result<(RelieveNotice, bool), ContractError>) {
    let r = (|| {
        let n = upapi.verify_relieve_notice(query)?;
        let fresh = engine.journal_mut().record_contract_notice(
            &n.digest,
            &n.contract_id,
            &n.trid,
            util::now_ms(),
        )?;
        Ok((n, fresh))
    })();
    (notice_reply(r.is_ok()), r)
}

/// Checks whether `contract` may be charged `amount` offline now, and stores the deduction.
pub fn accept_offline(
    engine: &mut Engine,
    cfg: &OfflineConfig,
    contract_id: &str,
    amount: Amount,
) -> Result<DeductionRow, ContractError> {
    accept_offline_as(engine, cfg, contract_id, amount, None)
}

/// The deduction already stored as `order_id`, if it is the same charge; a different charge
/// under that id is refused (one order id, one debit).
fn same_deduction(
    engine: &Engine,
    order_id: &str,
    contract_id: &str,
    amount: Amount,
) -> Result<Option<DeductionRow>, ContractError> {
    match engine.journal().deduction(order_id)? {
        None => Ok(None),
        Some(d) if d.contract_id == contract_id && d.amount == amount => Ok(Some(d)),
        Some(_) => Err(EngineError::Refused(format!(
            "order {order_id} is already an offline charge of another customer or amount"
        ))
        .into()),
    }
}

/// [`accept_offline`] under the caller's order id, when it gives one: the deduction is stored
/// as `order_id` and later submitted as that order, so asking again with the same order id
/// returns the same deduction instead of storing a second debit (a kiosk that retries after
/// its own timeout must not charge twice).
pub fn accept_offline_as(
    engine: &mut Engine,
    cfg: &OfflineConfig,
    contract_id: &str,
    amount: Amount,
    order_id: Option<&str>,
) -> Result<DeductionRow, ContractError> {
    if !cfg.enabled {
        return Err(OfflineRefusal::Disabled.into());
    }
    if amount.is_zero() {
        return Err(ContractError::BadAmount);
    }
    if let Some(o) = order_id {
        if !super::valid_order_id(o) {
            return Err(EngineError::BadOrderId(o.to_string()).into());
        }
        if let Some(d) = same_deduction(engine, o, contract_id, amount)? {
            return Ok(d);
        }
        if !engine.journal().by_order(o)?.is_empty() {
            return Err(EngineError::Refused(format!(
                "order {o} already has a payment; use a new order id"
            ))
            .into());
        }
    }
    let c = known(engine, contract_id)?;
    let now = util::now_ms();
    if !c.is_signed() {
        return Err(OfflineRefusal::Relieved.into());
    }
    if c.arrears > 0 {
        return Err(OfflineRefusal::Arrears(c.arrears).into());
    }
    let age = now - c.checked_ms;
    if age > cfg.fresh_within_s as i64 * 1000 {
        return Err(OfflineRefusal::Stale {
            minutes: age / 60_000,
        }
        .into());
    }
    let per = parse_limit(&cfg.per_customer);
    let total = parse_limit(&cfg.total);
    let max_age = cfg.max_age_s as i64 * 1000;
    let terminal = engine.settings().terminal_id.clone();
    let mut id = order_id.map(str::to_string).unwrap_or_default();
    for _ in 0..5 {
        if !id.is_empty() {
            break;
        }
        let candidate = format!("OFF{}", super::new_out_trade_no(&terminal, now));
        if engine.journal().deduction(&candidate)?.is_none() {
            id = candidate;
        }
    }
    let stored = engine
        .journal_mut()
        .insert_deduction(&id, contract_id, amount, now, |p| {
            if let Some(o) = p.oldest_ms
                && now - o > max_age
            {
                return Err(OfflineRefusal::TooOld {
                    minutes: (now - o) / 60_000,
                });
            }
            let would = Amount::from_fen(p.customer.fen() + amount.fen());
            if would > per {
                return Err(OfflineRefusal::PerCustomer { would, limit: per });
            }
            if p.total.fen() + amount.fen() > total.fen() {
                return Err(OfflineRefusal::Total { limit: total });
            }
            Ok(())
        })?;
    Ok(stored?)
}

/// Charges a contract customer: online when the platform answers, offline (within limits) when
/// it cannot be reached. A definite "no" online (cancelled, arrears) is never overridden offline.
pub fn charge(
    engine: &mut Engine,
    upapi: &Upapi,
    contract_id: &str,
    amount: Amount,
    order_id: Option<String>,
    observe: Observer<'_>,
) -> Result<Charge, ContractError> {
    if amount.is_zero() {
        return Err(ContractError::BadAmount);
    }
    // The order was taken offline already: the same charge again, never a second debit.
    if let Some(o) = order_id.as_deref()
        && let Some(d) = same_deduction(engine, o, contract_id, amount)?
    {
        return Ok(Charge::Offline { deduction: d });
    }
    match check_contract(engine, upapi, contract_id) {
        Ok(c) if !c.is_signed() => Err(OfflineRefusal::Relieved.into()),
        Ok(c) if c.arrears > 0 => Err(OfflineRefusal::Arrears(c.arrears).into()),
        Ok(_) => {
            let req = PayRequest {
                order_id,
                amount,
                credential: Credential::Contract {
                    contract_id: contract_id.to_string(),
                },
                wallet: Some(Wallet::Unionpay),
                gateway: Some("upapi".into()),
                details: OrderDetails {
                    body: "无感支付".into(),
                    ..Default::default()
                },
            };
            let row = engine.pay(req, observe)?;
            Ok(Charge::Online {
                attempt: Box::new(row),
            })
        }
        Err(ContractError::Upapi(e)) if e.is_unreachable() => {
            let cfg = upapi.config().offline.clone();
            tracing::warn!("云闪付 unreachable ({e}); trying an offline deduction");
            let d = accept_offline_as(engine, &cfg, contract_id, amount, order_id.as_deref())?;
            Ok(Charge::Offline { deduction: d })
        }
        Err(e) => Err(e),
    }
}

/// Whether stored deductions should be sent now: true when none is waiting to be sent, or
/// when the open platform answers a check of a waiting deduction's contract (which also
/// refreshes that contract). The daemon asks before each recovery pass, so that while the
/// uplink is down stored deductions stay stored instead of becoming uncertain attempts — a
/// TCP probe cannot tell, as a link that accepts connections may still answer nothing.
pub fn uplink_answers(engine: &mut Engine, upapi: &Upapi) -> bool {
    let waiting = match engine.journal().deductions(true) {
        Ok(ds) => ds.into_iter().find(|d| d.state == DeductionState::Stored),
        // The recovery pass reports the journal's problem itself.
        Err(_) => return true,
    };
    let Some(d) = waiting else { return true };
    match check_contract(engine, upapi, &d.contract_id) {
        Err(ContractError::Upapi(e)) if e.is_unreachable() => {
            tracing::debug!("云闪付 still unreachable ({e}); offline deductions stay stored");
            false
        }
        _ => true,
    }
}

/// Whether a paid attempt under a deduction's id is that deduction's debit.
fn is_this_debit(a: &AttemptRow, d: &DeductionRow) -> bool {
    a.gateway == "upapi" && a.amount == d.amount
}

impl Engine {
    /// Submits stored offline deductions through the `upapi` gateway and moves every submitted
    /// one on from its attempt's state. Returns the deductions it looked at, as they are now.
    pub fn submit_offline(
        &mut self,
        max_tries: u32,
        observe: Observer<'_>,
    ) -> Result<Vec<DeductionRow>, EngineError> {
        let open = self.journal().deductions(true)?;
        if open.is_empty() || self.gateways().get("upapi").is_err() {
            return Ok(open);
        }
        let mut out = Vec::new();
        for d in open {
            let r = self.settle_deduction(&d, max_tries, observe);
            match r {
                Ok(d) => out.push(d),
                Err(e) => {
                    tracing::warn!(deduction = %d.deduction_id, "offline deduction not submitted: {e}");
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    fn settle_deduction(
        &mut self,
        d: &DeductionRow,
        max_tries: u32,
        observe: Observer<'_>,
    ) -> Result<DeductionRow, EngineError> {
        let now = self.clock().now_ms();
        let latest = match self.latest(&d.deduction_id) {
            Ok(a) => Some(a),
            Err(EngineError::Journal(JournalError::NotFound(_))) => None,
            Err(e) => return Err(e),
        };
        let retry = match &latest {
            None => true,
            Some(a) => match a.machine.state {
                // An order id a caller reused for another payment: that money is not this debit.
                AttemptState::Paid if !is_this_debit(a, d) => {
                    return Ok(self.journal_mut().update_deduction(
                        &d.deduction_id,
                        DeductionState::ManualReview,
                        d.tries,
                        Some(&a.out_trade_no),
                        &format!(
                            "order {} was paid by another payment; a person must collect {} yuan",
                            d.deduction_id, d.amount
                        ),
                        now,
                    )?);
                }
                AttemptState::Paid => {
                    return Ok(self.journal_mut().update_deduction(
                        &d.deduction_id,
                        DeductionState::Settled,
                        d.tries,
                        Some(&a.out_trade_no),
                        "paid",
                        now,
                    )?);
                }
                AttemptState::Failed => {
                    let note = format!(
                        "declined ({}): the customer still owes {} yuan; a person must collect it",
                        a.last_note, d.amount
                    );
                    return Ok(self.journal_mut().update_deduction(
                        &d.deduction_id,
                        DeductionState::ManualReview,
                        d.tries,
                        Some(&a.out_trade_no),
                        &note,
                        now,
                    )?);
                }
                AttemptState::ManualReview => {
                    return Ok(self.journal_mut().update_deduction(
                        &d.deduction_id,
                        DeductionState::ManualReview,
                        d.tries,
                        Some(&a.out_trade_no),
                        "its attempt is in manual review",
                        now,
                    )?);
                }
                // Fenced (not charged): try again later, a bounded number of times.
                AttemptState::Reversed => {
                    let wait = 60_000i64.saturating_mul(1 << d.tries.min(10));
                    if now - d.updated_ms < wait {
                        return Ok(d.clone());
                    }
                    true
                }
                // The engine is still settling it (recovery drives it).
                _ => false,
            },
        };
        if !retry {
            return Ok(d.clone());
        }
        if d.tries >= max_tries {
            return Ok(self.journal_mut().update_deduction(
                &d.deduction_id,
                DeductionState::ManualReview,
                d.tries,
                None,
                &format!(
                    "not collected after {} attempts; a person must collect {} yuan",
                    d.tries, d.amount
                ),
                now,
            )?);
        }
        self.journal_mut().update_deduction(
            &d.deduction_id,
            DeductionState::Submitted,
            d.tries,
            None,
            "submitting",
            now,
        )?;
        let req = PayRequest {
            order_id: Some(d.deduction_id.clone()),
            amount: d.amount,
            credential: Credential::Contract {
                contract_id: d.contract_id.clone(),
            },
            wallet: Some(Wallet::Unionpay),
            gateway: Some("upapi".into()),
            details: OrderDetails {
                body: "无感支付 (offline)".into(),
                ..Default::default()
            },
        };
        match self.pay(req, observe) {
            Ok(a) => {
                let tries = d.tries + 1;
                let (state, note) = match a.machine.state {
                    AttemptState::Paid => (DeductionState::Settled, "paid".to_string()),
                    AttemptState::Failed => (
                        DeductionState::ManualReview,
                        format!(
                            "declined ({}): the customer still owes {} yuan; a person must collect it",
                            a.last_note, d.amount
                        ),
                    ),
                    _ => (
                        DeductionState::Submitted,
                        format!("attempt {}", a.machine.state),
                    ),
                };
                let now = self.clock().now_ms();
                Ok(self.journal_mut().update_deduction(
                    &d.deduction_id,
                    state,
                    tries,
                    Some(&a.out_trade_no),
                    &note,
                    now,
                )?)
            }
            Err(EngineError::Journal(JournalError::AlreadyPaid { out_trade_no, .. }))
                if self
                    .journal()
                    .by_out_trade_no(&out_trade_no)?
                    .is_some_and(|a| is_this_debit(&a, d)) =>
            {
                let now = self.clock().now_ms();
                Ok(self.journal_mut().update_deduction(
                    &d.deduction_id,
                    DeductionState::Settled,
                    d.tries,
                    Some(&out_trade_no),
                    "paid",
                    now,
                )?)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Gateways, Settings};
    use crate::journal::Journal;

    fn engine() -> (tempfile::TempDir, Engine) {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(&d.path().join("j.db")).unwrap();
        let s = Settings {
            terminal_id: "T01".into(),
            device_key: vec![7; 32],
            code_rules: crate::core::authcode::default_rules(),
            routes: Default::default(),
            max_amount: Amount::from_fen(500_000),
            max_open: 100,
            max_uncertain: Amount::from_fen(10_000_000),
            max_open_age_ms: 86_400_000,
            duplicate_window_ms: 0,
            clock_jump_ms: 60_000,
            rate_per_s: 10.0,
        };
        (d, Engine::new(j, Gateways::default(), s))
    }

    fn signed(e: &mut Engine, id: &str) {
        let now = util::now_ms();
        let row = ContractRow {
            contract_id: id.into(),
            open_id: format!("open-{id}"),
            plan_id: "PLAN".into(),
            contract_code: format!("CC{id}"),
            status: "SIGNED".into(),
            arrears: 0,
            checked_ms: now,
            signed_ms: now,
            relieved_ms: None,
            masked_mobile: None,
        };
        e.journal_mut().upsert_contract(&row, now).unwrap();
    }

    #[test]
    fn an_undocumented_contract_status_is_not_recorded_as_relieved() {
        use crate::gateway::upapi::tests::{client, ok};
        use serde_json::json;
        let (_d, mut e) = engine();
        signed(&mut e, "C1");
        let (u, _) = client(
            vec![
                ok(json!({"backendToken": "B", "expiresIn": 7200})),
                ok(json!({"contractId": "C1", "contractStatus": "7"})),
                ok(json!({"enable": "0"})),
            ],
            std::sync::Arc::new(std::sync::atomic::AtomicI64::new(1_795_312_800_000)),
        );
        let r = check_contract(&mut e, &u, "C1");
        assert!(r.is_err(), "{r:?}");
        let c = e.journal().contract("C1").unwrap().unwrap();
        assert_eq!(c.status, "SIGNED", "unchanged: {c:?}");
    }

    #[test]
    fn an_offline_charge_under_an_order_id_is_stored_once() {
        let (_d, mut e) = engine();
        signed(&mut e, "C1");
        let cfg = OfflineConfig {
            enabled: true,
            per_customer: "40.00".into(),
            total: "70.00".into(),
            ..Default::default()
        };
        let ten = Amount::from_fen(1_000);
        let d = accept_offline_as(&mut e, &cfg, "C1", ten, Some("K-1")).unwrap();
        assert_eq!(d.deduction_id, "K-1");
        // The kiosk asks again: the same deduction, not a second one.
        let again = accept_offline_as(&mut e, &cfg, "C1", ten, Some("K-1")).unwrap();
        assert_eq!(again.deduction_id, "K-1");
        assert_eq!(e.journal().deductions(true).unwrap().len(), 1);
        // Another charge under that order id is refused, and nothing is stored.
        let other = accept_offline_as(&mut e, &cfg, "C1", Amount::from_fen(900), Some("K-1"));
        assert!(
            matches!(other, Err(ContractError::Engine(EngineError::Refused(_)))),
            "{other:?}"
        );
        let bad = accept_offline_as(&mut e, &cfg, "C1", ten, Some("no spaces"));
        assert!(
            matches!(bad, Err(ContractError::Engine(EngineError::BadOrderId(_)))),
            "{bad:?}"
        );
        // Without an order id, a new deduction id each time.
        let d2 = accept_offline(&mut e, &cfg, "C1", ten).unwrap();
        assert!(d2.deduction_id.starts_with("OFFT01"), "{}", d2.deduction_id);
        assert_eq!(e.journal().deductions(true).unwrap().len(), 2);
    }
}
