//! The journal's tables for 无感支付 contract customers and offline deductions (migration 2).
//!
//! `contracts` remembers each signed contract with when its contract and arrears status were
//! last confirmed online (what the offline check trusts); `contract_notices` makes the cancel
//! notification idempotent; `offline_deductions` is the durable queue of debits accepted while
//! the uplink was down. A deduction is never deleted and, once SETTLED or MANUAL_REVIEW, never
//! changes (triggers enforce both). Limits are checked and the deduction inserted in one
//! IMMEDIATE transaction, so two processes cannot both squeeze under a limit. This file only
//! stores; the engine decides.

use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;

use super::{Journal, JournalError};
use crate::core::money::Amount;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ContractRow {
    pub contract_id: String,
    pub open_id: String,
    pub plan_id: String,
    pub contract_code: String,
    /// `SIGNED` or `RELIEVED`.
    pub status: String,
    /// Unpaid orders (arrears) at the last online check.
    pub arrears: u32,
    /// When the contract and arrears status were last confirmed online.
    pub checked_ms: i64,
    pub signed_ms: i64,
    pub relieved_ms: Option<i64>,
    pub masked_mobile: Option<String>,
}

impl ContractRow {
    pub fn is_signed(&self) -> bool {
        self.status == "SIGNED"
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeductionState {
    /// Accepted offline, durable, not yet sent.
    Stored,
    /// An attempt exists in the journal (its out_trade_no); the engine is settling it.
    Submitted,
    /// The debit is paid (final).
    Settled,
    /// A person must settle it (final).
    ManualReview,
}

impl DeductionState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeductionState::Stored => "STORED",
            DeductionState::Submitted => "SUBMITTED",
            DeductionState::Settled => "SETTLED",
            DeductionState::ManualReview => "MANUAL_REVIEW",
        }
    }

    fn parse(s: &str) -> DeductionState {
        match s {
            "STORED" => DeductionState::Stored,
            "SUBMITTED" => DeductionState::Submitted,
            "SETTLED" => DeductionState::Settled,
            _ => DeductionState::ManualReview,
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, DeductionState::Settled | DeductionState::ManualReview)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DeductionRow {
    pub deduction_id: String,
    pub contract_id: String,
    pub amount: Amount,
    pub created_ms: i64,
    pub state: DeductionState,
    pub tries: u32,
    pub out_trade_no: Option<String>,
    pub note: String,
    pub updated_ms: i64,
    pub final_ms: Option<i64>,
}

/// What is still owed to the terminal by offline deductions (STORED or SUBMITTED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    pub customer: Amount,
    pub total: Amount,
    pub oldest_ms: Option<i64>,
}

const CONTRACT_COLS: &str = "contract_id, open_id, plan_id, contract_code, status, arrears, checked_ms, signed_ms, relieved_ms, masked_mobile";
const DEDUCTION_COLS: &str = "deduction_id, contract_id, amount_fen, created_ms, state, tries, out_trade_no, note, updated_ms, final_ms";

fn contract_row(r: &Row<'_>) -> rusqlite::Result<ContractRow> {
    Ok(ContractRow {
        contract_id: r.get(0)?,
        open_id: r.get(1)?,
        plan_id: r.get(2)?,
        contract_code: r.get(3)?,
        status: r.get(4)?,
        arrears: r.get::<_, i64>(5)?.max(0) as u32,
        checked_ms: r.get(6)?,
        signed_ms: r.get(7)?,
        relieved_ms: r.get(8)?,
        masked_mobile: r.get(9)?,
    })
}

fn deduction_row(r: &Row<'_>) -> rusqlite::Result<DeductionRow> {
    Ok(DeductionRow {
        deduction_id: r.get(0)?,
        contract_id: r.get(1)?,
        amount: Amount::from_fen(r.get::<_, i64>(2)?.max(0) as u64),
        created_ms: r.get(3)?,
        state: DeductionState::parse(&r.get::<_, String>(4)?),
        tries: r.get::<_, i64>(5)?.max(0) as u32,
        out_trade_no: r.get(6)?,
        note: r.get(7)?,
        updated_ms: r.get(8)?,
        final_ms: r.get(9)?,
    })
}

impl Default for Pending {
    fn default() -> Pending {
        Pending {
            customer: Amount::from_fen(0),
            total: Amount::from_fen(0),
            oldest_ms: None,
        }
    }
}

impl Journal {
    /// Records a newly signed contract (or re-signs one), confirmed online at `now`.
    pub fn upsert_contract(
        &mut self,
        c: &ContractRow,
        now: i64,
    ) -> Result<ContractRow, JournalError> {
        self.conn.execute(
            "INSERT INTO contracts(contract_id, open_id, plan_id, contract_code, status, arrears, checked_ms, signed_ms, masked_mobile, updated_ms) \
             VALUES (?1,?2,?3,?4,'SIGNED',?5,?6,?6,?7,?6) \
             ON CONFLICT(contract_id) DO UPDATE SET status='SIGNED', arrears=?5, checked_ms=?6, relieved_ms=NULL, \
             masked_mobile=COALESCE(?7, masked_mobile), updated_ms=?6",
            params![c.contract_id, c.open_id, c.plan_id, c.contract_code, c.arrears as i64, now, c.masked_mobile],
        )?;
        self.contract(&c.contract_id)?
            .ok_or_else(|| JournalError::NotFound(c.contract_id.clone()))
    }

    pub fn contract(&self, contract_id: &str) -> Result<Option<ContractRow>, JournalError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CONTRACT_COLS} FROM contracts WHERE contract_id = ?1"),
                params![contract_id],
                contract_row,
            )
            .optional()?)
    }

    /// Contracts of a user, newest first.
    pub fn contracts_of(&self, open_id: &str) -> Result<Vec<ContractRow>, JournalError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CONTRACT_COLS} FROM contracts WHERE open_id = ?1 ORDER BY signed_ms DESC"
        ))?;
        let rows = st.query_map(params![open_id], contract_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// An online check of a contract: still signed or not, and its arrears, at `now`.
    pub fn record_contract_check(
        &mut self,
        contract_id: &str,
        signed: bool,
        arrears: u32,
        now: i64,
    ) -> Result<ContractRow, JournalError> {
        let n = self.conn.execute(
            "UPDATE contracts SET status = CASE WHEN ?2 THEN 'SIGNED' ELSE 'RELIEVED' END, \
             relieved_ms = CASE WHEN ?2 THEN NULL ELSE COALESCE(relieved_ms, ?4) END, \
             arrears = ?3, checked_ms = ?4, updated_ms = ?4 WHERE contract_id = ?1",
            params![contract_id, signed, arrears as i64, now],
        )?;
        if n == 0 {
            return Err(JournalError::NotFound(contract_id.to_string()));
        }
        self.contract(contract_id)?
            .ok_or_else(|| JournalError::NotFound(contract_id.to_string()))
    }

    /// A cancel notification, once: records it and marks the contract relieved in one
    /// transaction. `Ok(false)`: the same notification was already recorded.
    pub fn record_contract_notice(
        &mut self,
        digest: &str,
        contract_id: &str,
        trid: &str,
        now: i64,
    ) -> Result<bool, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let fresh = tx.execute(
            "INSERT OR IGNORE INTO contract_notices(digest, contract_id, trid, received_ms) VALUES (?1,?2,?3,?4)",
            params![digest, contract_id, trid, now],
        )? == 1;
        if fresh {
            tx.execute(
                "UPDATE contracts SET status='RELIEVED', relieved_ms=COALESCE(relieved_ms, ?2), updated_ms=?2 WHERE contract_id=?1",
                params![contract_id, now],
            )?;
        }
        tx.commit()?;
        Ok(fresh)
    }

    /// Checks limits against what is pending and stores the deduction, atomically. `check`
    /// sees the pending amounts (for this contract and in total) and may refuse.
    pub fn insert_deduction<E>(
        &mut self,
        deduction_id: &str,
        contract_id: &str,
        amount: Amount,
        now: i64,
        check: impl FnOnce(&Pending) -> Result<(), E>,
    ) -> Result<Result<DeductionRow, E>, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (customer, total, oldest): (i64, i64, Option<i64>) = tx.query_row(
            "SELECT COALESCE(SUM(CASE WHEN contract_id = ?1 THEN amount_fen END), 0), COALESCE(SUM(amount_fen), 0), MIN(created_ms) \
             FROM offline_deductions WHERE state IN ('STORED','SUBMITTED')",
            params![contract_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let pending = Pending {
            customer: Amount::from_fen(customer.max(0) as u64),
            total: Amount::from_fen(total.max(0) as u64),
            oldest_ms: oldest,
        };
        if let Err(e) = check(&pending) {
            return Ok(Err(e));
        }
        tx.execute(
            "INSERT INTO offline_deductions(deduction_id, contract_id, amount_fen, created_ms, state, note, updated_ms) \
             VALUES (?1,?2,?3,?4,'STORED','accepted offline',?4)",
            params![deduction_id, contract_id, amount.fen() as i64, now],
        )?;
        let row = tx.query_row(
            &format!("SELECT {DEDUCTION_COLS} FROM offline_deductions WHERE deduction_id = ?1"),
            params![deduction_id],
            deduction_row,
        )?;
        tx.commit()?;
        Ok(Ok(row))
    }

    pub fn deduction(&self, id: &str) -> Result<Option<DeductionRow>, JournalError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {DEDUCTION_COLS} FROM offline_deductions WHERE deduction_id = ?1"),
                params![id],
                deduction_row,
            )
            .optional()?)
    }

    /// Every deduction, oldest first; `open_only`: only STORED and SUBMITTED.
    pub fn deductions(&self, open_only: bool) -> Result<Vec<DeductionRow>, JournalError> {
        let filter = if open_only {
            "WHERE state IN ('STORED','SUBMITTED')"
        } else {
            ""
        };
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {DEDUCTION_COLS} FROM offline_deductions {filter} ORDER BY created_ms, deduction_id"
        ))?;
        let rows = st.query_map([], deduction_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Moves a deduction on. Final states are stamped with `final_ms` and never change again.
    pub fn update_deduction(
        &mut self,
        id: &str,
        state: DeductionState,
        tries: u32,
        out_trade_no: Option<&str>,
        note: &str,
        now: i64,
    ) -> Result<DeductionRow, JournalError> {
        let n = self.conn.execute(
            "UPDATE offline_deductions SET state=?2, tries=?3, out_trade_no=COALESCE(?4, out_trade_no), note=?5, \
             updated_ms=?6, final_ms = CASE WHEN ?2 IN ('SETTLED','MANUAL_REVIEW') THEN ?6 ELSE NULL END \
             WHERE deduction_id=?1",
            params![id, state.as_str(), tries as i64, out_trade_no, note, now],
        )?;
        if n == 0 {
            return Err(JournalError::NotFound(id.to_string()));
        }
        self.deduction(id)?
            .ok_or_else(|| JournalError::NotFound(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> (tempfile::TempDir, Journal) {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(&d.path().join("j.db")).unwrap();
        (d, j)
    }

    fn contract(id: &str) -> ContractRow {
        ContractRow {
            contract_id: id.into(),
            open_id: format!("open-{id}"),
            plan_id: "PLAN".into(),
            contract_code: format!("CC{id}"),
            status: "SIGNED".into(),
            arrears: 0,
            checked_ms: 0,
            signed_ms: 0,
            relieved_ms: None,
            masked_mobile: None,
        }
    }

    #[test]
    fn limits_are_checked_against_pending_in_the_same_transaction() {
        let (_d, mut j) = journal();
        j.upsert_contract(&contract("C1"), 1_000).unwrap();
        j.upsert_contract(&contract("C2"), 1_000).unwrap();
        let limit = |p: &Pending| {
            if p.customer.fen() + 1_000 > 2_000 {
                Err(format!("customer {}", p.customer))
            } else {
                Ok(())
            }
        };
        j.insert_deduction("D1", "C1", Amount::from_fen(1_000), 2_000, limit)
            .unwrap()
            .unwrap();
        j.insert_deduction("D2", "C1", Amount::from_fen(1_000), 2_100, limit)
            .unwrap()
            .unwrap();
        assert!(
            j.insert_deduction("D3", "C1", Amount::from_fen(1_000), 2_200, limit)
                .unwrap()
                .is_err()
        );
        let seen = std::cell::Cell::new(Pending::default());
        j.insert_deduction("D4", "C2", Amount::from_fen(500), 2_300, |p: &Pending| {
            seen.set(*p);
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(seen.get().customer, Amount::from_fen(0));
        assert_eq!(seen.get().total, Amount::from_fen(2_000));
        assert_eq!(seen.get().oldest_ms, Some(2_000));
        assert_eq!(j.deductions(true).unwrap().len(), 3);
        // Unknown contract: the foreign key refuses it.
        assert!(
            j.insert_deduction("D5", "NOPE", Amount::from_fen(1), 1, |_| Ok::<(), ()>(()))
                .is_err()
        );
    }

    #[test]
    fn final_deductions_never_change_and_are_never_deleted() {
        let (_d, mut j) = journal();
        j.upsert_contract(&contract("C1"), 1).unwrap();
        j.insert_deduction("D1", "C1", Amount::from_fen(100), 2, |_| Ok::<(), ()>(()))
            .unwrap()
            .unwrap();
        let r = j
            .update_deduction("D1", DeductionState::Submitted, 1, Some("T1"), "sent", 3)
            .unwrap();
        assert_eq!(r.out_trade_no.as_deref(), Some("T1"));
        let r = j
            .update_deduction("D1", DeductionState::Settled, 1, None, "paid", 4)
            .unwrap();
        assert_eq!(r.final_ms, Some(4));
        assert!(
            j.update_deduction("D1", DeductionState::Stored, 1, None, "x", 5)
                .is_err()
        );
        assert!(
            j.conn
                .execute("DELETE FROM offline_deductions", [])
                .is_err()
        );
    }

    #[test]
    fn contract_checks_and_an_idempotent_cancel_notice() {
        let (_d, mut j) = journal();
        j.upsert_contract(&contract("C1"), 10).unwrap();
        let c = j.record_contract_check("C1", true, 2, 20).unwrap();
        assert_eq!((c.arrears, c.checked_ms), (2, 20));
        assert!(j.record_contract_notice("dig", "C1", "TR", 30).unwrap());
        assert!(!j.record_contract_notice("dig", "C1", "TR", 31).unwrap());
        let c = j.contract("C1").unwrap().unwrap();
        assert_eq!(c.status, "RELIEVED");
        assert_eq!(c.relieved_ms, Some(30));
        assert_eq!(j.contracts_of("open-C1").unwrap().len(), 1);
        assert!(j.record_contract_check("NOPE", true, 0, 1).is_err());
    }
}
