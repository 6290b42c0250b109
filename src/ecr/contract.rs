//! The ECR API's 云闪付 无感支付 side: kiosks charge contract customers
//! (`POST /v1/contract-charges`, `GET /v1/contract-charges/{order_id}`), and 云闪付 tells the
//! terminal that a customer cancelled their contract in the app (`GET /notify/upapi?…`).
//!
//! A charge runs [`offline::charge`] on a blocking thread with its own journal connection, as
//! refunds and cancels do; charges are taken one at a time, so "the same order id twice is the
//! same charge" holds between the look-up and the debit. Online the customer is debited through
//! the engine; when the platform cannot be reached a known customer may be accepted offline
//! within the configured limits, and the deduction is stored under the kiosk's order id so a
//! retry never stores a second one. Refusals carry a stable code and the message meant for the
//! customer. The notice handler only verifies and records (the signature is the
//! authentication; nothing changes when it does not verify). Nothing here decides about money:
//! [`offline`] and the engine do.
//!
//! The customer stands at the kiosk watching its screen, which the sale controller owns: a charge
//! takes the controller's counter for as long as it runs (shown as processing; refused with
//! `busy` while a sale is there, before anything is looked up with 云闪付) and hands back the
//! screen of its outcome, shown for as long as a sale's.

use std::sync::atomic::Ordering;

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::{Api, ApiError, bad, valid_order_id};
use crate::core::money::Amount;
use crate::core::{AttemptState, ReverseAction};
use crate::daemon::sale::{SaleCmd, decline_reason};
use crate::daemon::{PaymentEvent, read};
use crate::engine::EngineError;
use crate::engine::offline::{self, Charge, ContractError, OfflineRefusal};
use crate::gateway::upapi::{UpapiError, notice_reply};
use crate::journal::offline::{DeductionRow, DeductionState};
use crate::journal::{AttemptRow, JournalError};
use crate::ui::model::{ContractRefusal, DeclineReason, Screen, Wallet as UiWallet};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContractChargeBody {
    /// The 云闪付 contract (协议号) the kiosk knows the customer by.
    contract_id: String,
    /// Yuan as a string, e.g. "12.34".
    amount: String,
    /// The kiosk's order id; the same id again is the same charge.
    #[serde(default)]
    order_id: Option<String>,
}

fn valid_contract_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A stable code for each refusal; the message is the refusal's own (meant for the customer).
fn refusal_code(r: &OfflineRefusal) -> &'static str {
    match r {
        OfflineRefusal::Disabled => "offline_disabled",
        OfflineRefusal::UnknownContract => "unknown_contract",
        OfflineRefusal::Relieved => "contract_cancelled",
        OfflineRefusal::Arrears(_) => "arrears",
        OfflineRefusal::Stale { .. } => "contract_not_confirmed",
        OfflineRefusal::PerCustomer { .. } => "over_customer_limit",
        OfflineRefusal::Total { .. } => "over_terminal_limit",
        OfflineRefusal::TooOld { .. } => "offline_too_long",
    }
}

/// The kind of a refusal the customer's screen names (the API answer has the full message).
fn refusal_kind(r: &OfflineRefusal) -> ContractRefusal {
    match r {
        OfflineRefusal::Disabled => ContractRefusal::OfflineDisabled,
        OfflineRefusal::UnknownContract => ContractRefusal::UnknownContract,
        OfflineRefusal::Relieved => ContractRefusal::ContractCancelled,
        OfflineRefusal::Arrears(_) => ContractRefusal::Arrears,
        OfflineRefusal::Stale { .. } => ContractRefusal::NotConfirmedRecently,
        OfflineRefusal::PerCustomer { .. } => ContractRefusal::CustomerLimit,
        OfflineRefusal::Total { .. } => ContractRefusal::TerminalLimit,
        OfflineRefusal::TooOld { .. } => ContractRefusal::OfflineTooLong,
    }
}

/// What the customer at the kiosk sees once the charge is over.
fn outcome_screen(amount: Amount, r: &Result<Charge, ContractError>) -> Screen {
    let amount_fen = amount.fen();
    let refused = |kind| Screen::Declined {
        amount_fen,
        reason: DeclineReason::ContractRefused(kind),
    };
    match r {
        Ok(Charge::Offline { .. }) => Screen::AcceptedOffline { amount_fen },
        Ok(Charge::Online { attempt }) => match attempt.machine.state {
            AttemptState::Paid => Screen::Paid {
                amount_fen,
                wallet: UiWallet::UnionPay,
            },
            AttemptState::Failed => Screen::Declined {
                amount_fen,
                reason: decline_reason(&attempt.last_note),
            },
            AttemptState::Reversed => Screen::Reversed {
                amount_fen,
                refunded: attempt.machine.reverse_action == Some(ReverseAction::Refund),
            },
            // Not settled yet: the engine settles it; the customer must not pay again.
            _ => Screen::Uncertain { amount_fen },
        },
        Err(ContractError::Refused(r)) => refused(refusal_kind(r)),
        // Anything else was not charged (see `charge_error`).
        Err(_) => refused(ContractRefusal::Unavailable),
    }
}

/// The sale controller's counter, held by a running contract charge. Finishing shows the
/// outcome; dropped unfinished (a panic on the charge's thread), it frees the counter.
struct CounterTurn {
    sales: mpsc::Sender<SaleCmd>,
    ticket: u64,
    finished: bool,
}

impl CounterTurn {
    /// Takes the counter, or answers 409 `busy` while a sale is at it.
    async fn take(api: &Api, amount: Amount, order_id: Option<&str>) -> Result<Self, ApiError> {
        let stopping = || {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the terminal is stopping".into(),
            )
        };
        let (tx, rx) = oneshot::channel();
        api.sales
            .send(SaleCmd::ContractBegin {
                order_id: order_id.map(str::to_string),
                amount_fen: amount.fen(),
                reply: tx,
            })
            .await
            .map_err(|_| stopping())?;
        match rx.await {
            Ok(Ok(ticket)) => Ok(CounterTurn {
                sales: api.sales.clone(),
                ticket,
                finished: false,
            }),
            Ok(Err(why)) => Err(ApiError(StatusCode::CONFLICT, "busy", why)),
            Err(_) => Err(stopping()),
        }
    }

    /// Hands the counter back with the outcome's screen. Called on the charge's blocking
    /// thread, where waiting for room in the channel is allowed.
    fn finish(mut self, screen: Screen) {
        self.finished = true;
        let _ = self.sales.blocking_send(SaleCmd::ContractDone {
            ticket: self.ticket,
            screen: Some(screen),
        });
    }
}

impl Drop for CounterTurn {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.sales.try_send(SaleCmd::ContractDone {
                ticket: self.ticket,
                screen: None,
            });
        }
    }
}

fn charge_error(e: ContractError) -> ApiError {
    let msg = e.to_string();
    match e {
        ContractError::Refused(r) => {
            ApiError(StatusCode::CONFLICT, refusal_code(&r), r.to_string())
        }
        ContractError::BadAmount => bad("bad_amount", msg),
        ContractError::Upapi(UpapiError::Refused { .. }) => {
            ApiError(StatusCode::CONFLICT, "upapi_refused", msg)
        }
        ContractError::Upapi(u) if u.is_unreachable() => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "unreachable", msg)
        }
        ContractError::Upapi(_) => ApiError(StatusCode::BAD_GATEWAY, "upapi_error", msg),
        ContractError::Journal(_) => ApiError(StatusCode::SERVICE_UNAVAILABLE, "journal", msg),
        ContractError::Engine(en) => match en {
            EngineError::Paused(_) => ApiError(StatusCode::SERVICE_UNAVAILABLE, "paused", msg),
            EngineError::BadOrderId(_) => bad("bad_order_id", msg),
            e if e.is_bad_input() => bad("bad_request", msg),
            EngineError::Journal(JournalError::AlreadyPaid { .. }) | EngineError::Refused(_) => {
                ApiError(StatusCode::CONFLICT, "order_conflict", msg)
            }
            EngineError::Journal(_) => ApiError(StatusCode::SERVICE_UNAVAILABLE, "journal", msg),
            _ => ApiError(StatusCode::CONFLICT, "not_charged", msg),
        },
    }
}

fn internal(e: impl ToString) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

/// What the kiosk needs to know about a contract charge: whether it may hand over the goods
/// (`accepted`), how the charge was taken, and where it stands.
fn charge_json(order_id: &str, deduction: Option<&DeductionRow>, rows: &[AttemptRow]) -> Value {
    let attempt = rows
        .iter()
        .find(|a| a.machine.state == AttemptState::Paid)
        .or(rows.last());
    match (deduction, attempt) {
        (Some(d), _) => {
            let message = match d.state {
                DeductionState::Stored => {
                    "accepted offline; it is charged when the network returns"
                }
                DeductionState::Submitted => "accepted offline; the charge is being collected",
                DeductionState::Settled => "accepted offline and collected",
                DeductionState::ManualReview => {
                    "accepted offline but not collected; a person must follow it up"
                }
            };
            json!({
                "order_id": order_id,
                "mode": "offline",
                "accepted": true,
                "state": d.state,
                "final": d.state.is_final(),
                "message": message,
                "amount": d.amount.to_string(),
                "amount_fen": d.amount.fen(),
                "deduction_id": d.deduction_id,
                "out_trade_no": d.out_trade_no,
                "attempt_state": attempt.map(|a| a.machine.state),
                "tries": d.tries,
                "note": d.note,
            })
        }
        (None, Some(a)) => json!({
            "order_id": order_id,
            "mode": "online",
            "accepted": a.machine.state == AttemptState::Paid,
            "state": a.machine.state,
            "final": a.machine.state.is_final(),
            "message": a.machine.state.cashier_words(a.machine.reverse_action),
            "amount": a.amount.to_string(),
            "amount_fen": a.amount.fen(),
            "out_trade_no": a.out_trade_no,
            "note": a.last_note,
        }),
        (None, None) => Value::Null,
    }
}

/// The charge recorded under `order_id`: its stored deduction and its attempts.
async fn recorded(
    api: &Api,
    order_id: &str,
) -> Result<(Option<DeductionRow>, Vec<AttemptRow>), ApiError> {
    let shared = api.shared.clone();
    let id = order_id.to_string();
    tokio::task::spawn_blocking(move || -> Result<_, String> {
        let e = shared.engine().map_err(|e| e.to_string())?;
        let d = e.journal().deduction(&id).map_err(|e| e.to_string())?;
        let rows = e.journal().by_order(&id).map_err(|e| e.to_string())?;
        Ok((d, rows))
    })
    .await
    .map_err(internal)?
    .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, "journal", e))
}

/// Whether `order_id` is an offline contract charge (whose attempt may not exist yet).
pub(super) async fn is_offline_charge(api: &Api, order_id: &str) -> Result<bool, ApiError> {
    Ok(recorded(api, order_id).await?.0.is_some())
}

/// Reads and checks a `POST /v1/contract-charges` body (no journal, no gateway).
pub(crate) fn contract_charge_request(
    body: &[u8],
    max: Amount,
) -> Result<(ContractChargeBody, Amount), ApiError> {
    let req: ContractChargeBody = serde_json::from_slice(body).map_err(|e| {
        bad(
            "bad_request",
            format!("the body is not a valid contract charge: {e}"),
        )
    })?;
    if !valid_contract_id(&req.contract_id) {
        return Err(bad(
            "bad_contract_id",
            "contract_id must be 1 to 64 letters, digits, '_' or '-'",
        ));
    }
    if let Some(o) = &req.order_id
        && !valid_order_id(o)
    {
        return Err(bad(
            "bad_order_id",
            "order_id must be 1 to 32 letters, digits, '_' or '-'",
        ));
    }
    let amount =
        Amount::parse_with_limit(&req.amount, max).map_err(|e| bad("bad_amount", e.to_string()))?;
    Ok((req, amount))
}

/// `POST /v1/contract-charges`.
pub(super) async fn create(
    State(api): State<Api>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let max = read(&api.shared.settings).max_amount;
    let (req, amount) = contract_charge_request(&body, max)?;
    let Some(upapi) = api.shared.upapi() else {
        return Err(ApiError(
            StatusCode::NOT_IMPLEMENTED,
            "not_configured",
            "云闪付 无感支付 is not configured on this terminal ([gateways.upapi])".into(),
        ));
    };
    if let Some(why) = api.shared.sale_blocker() {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_taking_payments",
            why,
        ));
    }
    // One contract charge at a time: the look-up below and the debit cannot interleave with
    // another request for the same order id.
    let _turn = api.charges.lock().await;
    if let Some(o) = &req.order_id {
        let (d, rows) = recorded(&api, o).await?;
        let same = match (&d, rows.last()) {
            (Some(d), _) => d.contract_id == req.contract_id && d.amount == amount,
            (None, Some(a)) => {
                a.gateway == "upapi"
                    && a.amount == amount
                    && a.code_mask.as_deref()
                        == Some(crate::core::authcode::mask(&req.contract_id).as_str())
            }
            (None, None) => true,
        };
        if !same {
            return Err(ApiError(
                StatusCode::CONFLICT,
                "order_conflict",
                format!("order {o} exists with another customer, amount or payment method"),
            ));
        }
        if d.is_some() || !rows.is_empty() {
            return Ok(axum::Json(charge_json(o, d.as_ref(), &rows)).into_response());
        }
    }
    // Only a charge that is about to be taken shows on the screen: bad input and the same
    // order again (answered above) leave whatever is there.
    let turn = CounterTurn::take(&api, amount, req.order_id.as_deref()).await?;
    let shared = api.shared.clone();
    shared.inflight.fetch_add(1, Ordering::SeqCst);
    shared
        .metrics
        .payments_started
        .fetch_add(1, Ordering::Relaxed);
    let r = tokio::task::spawn_blocking(move || {
        // The attempt's last journaled state, if one was made: an error after that point
        // (a journal write failing after the debit went out) leaves money possibly moved.
        let mut seen: Option<AttemptState> = None;
        let result = (|| {
            let mut e = shared.engine()?;
            let tx = shared.events.clone();
            let mut obs = |r: &AttemptRow, n: &str| {
                seen = Some(r.machine.state);
                let _ = tx.send(PaymentEvent::from_row(r, n));
            };
            offline::charge(
                &mut e,
                &upapi,
                &req.contract_id,
                amount,
                req.order_id.clone(),
                &mut obs,
            )
        })();
        shared.inflight.fetch_sub(1, Ordering::SeqCst);
        shared.refresh_unsettled();
        if matches!(&result, Ok(Charge::Online { attempt }) if attempt.machine.state.needs_work()) {
            shared.kick_recovery();
        }
        let screen = match (&result, seen) {
            (Err(_), Some(st)) if st.needs_work() => Screen::Uncertain {
                amount_fen: amount.fen(),
            },
            _ => outcome_screen(amount, &result),
        };
        turn.finish(screen);
        result
    })
    .await
    .map_err(internal)?;
    match r.map_err(charge_error)? {
        Charge::Online { attempt } => {
            let id = attempt.order_id.clone();
            let v = charge_json(&id, None, std::slice::from_ref(attempt.as_ref()));
            Ok(axum::Json(v).into_response())
        }
        Charge::Offline { deduction } => {
            tracing::warn!(
                deduction = %deduction.deduction_id,
                amount = %deduction.amount,
                "contract charge accepted offline"
            );
            let v = charge_json(&deduction.deduction_id, Some(&deduction), &[]);
            Ok((StatusCode::ACCEPTED, axum::Json(v)).into_response())
        }
    }
}

/// `GET /v1/contract-charges/{order_id}`.
pub(super) async fn get(
    State(api): State<Api>,
    Path(order_id): Path<String>,
) -> Result<Response, ApiError> {
    let (d, rows) = recorded(&api, &order_id).await?;
    let v = charge_json(&order_id, d.as_ref(), &rows);
    if v.is_null() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no contract charge for order {order_id}"),
        ));
    }
    Ok(axum::Json(v).into_response())
}

fn notice_answer(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body,
    )
        .into_response()
}

/// `GET /notify/{gateway}`: 云闪付's contract cancel notification (解约通知) arrives as a GET
/// with the signed fields in the query string. `{"resp":"00"}` once it is recorded (again for
/// every repeat); otherwise a failure answer, so that 云闪付 sends it again.
pub(super) async fn notify_get(
    State(api): State<Api>,
    Path(gateway): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    api.shared
        .metrics
        .notifications
        .fetch_add(1, Ordering::Relaxed);
    if gateway != "upapi" {
        return (
            StatusCode::NOT_FOUND,
            format!("gateway {gateway:?} sends no GET notifications"),
        )
            .into_response();
    }
    let Some(upapi) = api.shared.upapi() else {
        return notice_answer(StatusCode::NOT_FOUND, notice_reply(false));
    };
    if api.shared.safe_mode.load(Ordering::SeqCst) {
        // The damaged journal is preserved as it is; 云闪付 sends the notice again later.
        return notice_answer(StatusCode::SERVICE_UNAVAILABLE, notice_reply(false));
    }
    let shared = api.shared.clone();
    let query = query.unwrap_or_default();
    let done = tokio::task::spawn_blocking(move || match shared.engine() {
        Ok(mut e) => offline::relieve_notice(&mut e, &upapi, &query),
        Err(err) => (notice_reply(false), Err(ContractError::Engine(err))),
    })
    .await;
    let (answer, r) = match done {
        Ok(x) => x,
        Err(e) => {
            tracing::error!("cancel notification: {e}");
            return notice_answer(StatusCode::INTERNAL_SERVER_ERROR, notice_reply(false));
        }
    };
    match r {
        Ok((n, fresh)) => {
            tracing::info!(
                contract = %crate::core::authcode::mask(&n.contract_id),
                fresh,
                "contract cancelled by the customer in 云闪付"
            );
            notice_answer(StatusCode::OK, answer)
        }
        Err(ContractError::Upapi(e @ UpapiError::BadNotice(_))) => {
            tracing::warn!("cancel notification refused: {e}");
            notice_answer(StatusCode::BAD_REQUEST, answer)
        }
        Err(e) => {
            tracing::error!("cancel notification not recorded: {e}");
            notice_answer(StatusCode::SERVICE_UNAVAILABLE, answer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_show_their_own_kind_and_other_errors_show_not_charged() {
        let a = Amount::from_fen(2_850);
        let refusals = [
            OfflineRefusal::Disabled,
            OfflineRefusal::UnknownContract,
            OfflineRefusal::Relieved,
            OfflineRefusal::Arrears(2),
            OfflineRefusal::Stale { minutes: 30 },
            OfflineRefusal::PerCustomer {
                would: Amount::from_fen(4_500),
                limit: Amount::from_fen(4_000),
            },
            OfflineRefusal::Total {
                limit: Amount::from_fen(7_000),
            },
            OfflineRefusal::TooOld { minutes: 90 },
        ];
        let kinds: std::collections::HashSet<ContractRefusal> =
            refusals.iter().map(refusal_kind).collect();
        assert_eq!(kinds.len(), refusals.len(), "one kind per refusal");
        for r in refusals {
            let kind = refusal_kind(&r);
            assert_eq!(
                outcome_screen(a, &Err(ContractError::Refused(r))),
                Screen::Declined {
                    amount_fen: 2_850,
                    reason: DeclineReason::ContractRefused(kind),
                }
            );
        }
        assert_eq!(
            outcome_screen(a, &Err(ContractError::BadAmount)),
            Screen::Declined {
                amount_fen: 2_850,
                reason: DeclineReason::ContractRefused(ContractRefusal::Unavailable),
            }
        );
    }
}
