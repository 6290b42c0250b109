//! The netpay bills pre-authorisation family (seed 004 and PROTOCOLS.md §D.5) as library calls:
//! 预授权撤销 `preauth-cancel`, 预授权完成 `preauthed`, 预授权完成撤销 `preauthed-cancel`, and
//! `bills/query` to learn a bill's state when a reply was lost.
//!
//! These are not the engine's pay path (no scanned code, no attempt): each call returns a typed
//! result or a typed error, and the caller (the CLI) reports it. A transport error means the
//! outcome is unknown: the message says to ask `bill-query` before sending anything again.
//! Field names follow seed 004; the completion's amount field (`totalAmount`) and the
//! completion paths are from third-party integrations (§D.5), not from the seed.

use serde::Serialize;
use serde_json::{Value, json};

use super::codes::text;
use super::{ChinaUms, UmsError};
use crate::core::money::Amount;
use crate::util;

/// Identifies a pre-authorised bill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PreAuthRef {
    /// `billNo` (≤ 31).
    pub bill_no: String,
    /// `billDate`, `yyyy-MM-dd`.
    pub bill_date: String,
    /// `merOrderId` of the pre-authorisation (≤ 32).
    pub mer_order_id: String,
    /// `authIdRespCd`, the authorisation code (≤ 64).
    pub auth_id_resp_cd: String,
}

impl PreAuthRef {
    /// Checks the fields before anything is sent.
    pub fn check(&self) -> Result<(), UmsError> {
        let bad = |f: &str, why: &str| Err(UmsError::Build(format!("{f} {why}")));
        if self.bill_no.is_empty() || self.bill_no.len() > 31 {
            return bad("billNo", "must be 1 to 31 characters");
        }
        if chrono::NaiveDate::parse_from_str(&self.bill_date, "%Y-%m-%d").is_err() {
            return bad("billDate", "must be a date yyyy-MM-dd");
        }
        if self.mer_order_id.is_empty() || self.mer_order_id.len() > 32 {
            return bad("merOrderId", "must be 1 to 32 characters");
        }
        if self.auth_id_resp_cd.len() > 64 {
            return bad("authIdRespCd", "must be at most 64 characters");
        }
        Ok(())
    }
}

/// What ChinaUMS said about a bill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BillResult {
    /// `billStatus`, e.g. `PAID`, `CLOSED`.
    pub bill_status: Option<String>,
    /// `billPayment.status`, e.g. `TRADE_SUCCESS`, `TRADE_CLOSED`.
    pub status: Option<String>,
    /// `billPayment.totalAmount`, fen.
    pub total_fen: Option<u64>,
    /// `billPayment.targetOrderId`.
    pub target_order_id: Option<String>,
    pub detail: String,
}

fn result_of(v: &Value) -> Result<BillResult, UmsError> {
    // A reply without its code says neither done nor refused: the operation may have been
    // applied, so the bill query decides (an unknown outcome, not a refusal).
    let code = match text(v, "errCode") {
        Some(c) if !c.trim().is_empty() => c,
        _ => {
            return Err(UmsError::BadReply("the bills reply has no errCode".into()));
        }
    };
    if code != "SUCCESS" {
        return Err(UmsError::Refused {
            code,
            msg: text(v, "errMsg")
                .or_else(|| text(v, "errInfo"))
                .unwrap_or_default(),
        });
    }
    let p = v.get("billPayment").cloned().unwrap_or(Value::Null);
    Ok(BillResult {
        bill_status: text(v, "billStatus"),
        status: text(&p, "status"),
        total_fen: super::codes::fen(&p, "totalAmount").map(Amount::fen),
        target_order_id: text(&p, "targetOrderId"),
        detail: format!(
            "{code} billStatus={} status={}",
            text(v, "billStatus").unwrap_or_default(),
            text(&p, "status").unwrap_or_default()
        ),
    })
}

impl ChinaUms {
    fn bill_body(&self, r: &PreAuthRef) -> Result<serde_json::Map<String, Value>, UmsError> {
        r.check()?;
        let b = self.config().bills.as_ref().ok_or_else(|| {
            UmsError::Build(
                "[gateways.chinaums.bills] (mid, tid, inst_mid) is not configured".into(),
            )
        })?;
        let mut m = serde_json::Map::new();
        m.insert(
            "requestTimestamp".into(),
            json!(util::beijing_human(self.now())),
        );
        m.insert("mid".into(), json!(b.mid));
        m.insert("tid".into(), json!(b.tid));
        m.insert("instMid".into(), json!(b.inst_mid));
        m.insert("billNo".into(), json!(r.bill_no));
        m.insert("billDate".into(), json!(r.bill_date));
        m.insert("merOrderId".into(), json!(r.mer_order_id));
        m.insert("authIdRespCd".into(), json!(r.auth_id_resp_cd));
        m.insert("msgId".into(), json!(""));
        m.insert("srcReserve".into(), json!(""));
        Ok(m)
    }

    fn bill_call(
        &self,
        op: &str,
        m: serde_json::Map<String, Value>,
    ) -> Result<BillResult, UmsError> {
        let v = self.call(&format!("/v1/netpay/bills/{op}"), &Value::Object(m))?;
        result_of(&v)
    }

    /// 预授权撤销: releases a pre-authorisation that was not completed (seed 004).
    pub fn preauth_cancel(&self, r: &PreAuthRef) -> Result<BillResult, UmsError> {
        let m = self.bill_body(r)?;
        self.bill_call("preauth-cancel", m)
    }

    /// 预授权完成: takes `amount` (at most what was authorised) from the pre-authorisation.
    pub fn preauth_complete(&self, r: &PreAuthRef, amount: Amount) -> Result<BillResult, UmsError> {
        if amount.is_zero() {
            return Err(UmsError::Build(
                "the completion amount must be positive".into(),
            ));
        }
        let mut m = self.bill_body(r)?;
        m.insert("totalAmount".into(), json!(amount.fen()));
        self.bill_call("preauthed", m)
    }

    /// 预授权完成撤销: undoes a completion (the money goes back; the authorisation stays).
    pub fn preauth_complete_cancel(&self, r: &PreAuthRef) -> Result<BillResult, UmsError> {
        let m = self.bill_body(r)?;
        self.bill_call("preauthed-cancel", m)
    }

    /// The bill's current state.
    pub fn bill_query(&self, r: &PreAuthRef) -> Result<BillResult, UmsError> {
        let m = self.bill_body(r)?;
        self.bill_call("query", m)
    }
}
