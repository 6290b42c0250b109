//! Shift and day totals (签退 / 日结), and the shifts they close.
//!
//! This owns the `shifts` table and the totals query: per gateway and wallet, what was paid
//! (PAID attempts created in the range), what was given back (manual refunds DONE in the range)
//! and the net, plus the attempts still unsettled and those in manual review, listed by order.
//! Amounts are integer fen throughout. It only reads the payment tables; it must not change an
//! attempt or a refund, and a closed shift's stored totals never change (a trigger says so).

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{Journal, JournalError};

/// One gateway and wallet's line of the totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalsLine {
    pub gateway: String,
    /// The wallet's paytype (`WECHAT` …), or `-` for an attempt without one.
    pub wallet: String,
    pub paid_count: u64,
    pub paid_fen: i64,
    pub refund_count: u64,
    pub refund_fen: i64,
    pub net_fen: i64,
}

/// An attempt a person must still look at before the drawer is counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalsItem {
    pub order_id: String,
    pub out_trade_no: String,
    pub gateway: String,
    pub wallet: String,
    pub state: String,
    pub amount_fen: i64,
    pub created_ms: i64,
}

/// The totals of `[from_ms, until_ms)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub from_ms: i64,
    pub until_ms: i64,
    pub lines: Vec<TotalsLine>,
    /// The sums of `lines`.
    pub all: TotalsLine,
    /// Not final and not in review: recovery is still settling them.
    pub unsettled: Vec<TotalsItem>,
    /// In MANUAL_REVIEW: a person settles them with the gateway.
    pub review: Vec<TotalsItem>,
}

/// A shift, open or closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftRow {
    pub shift_id: i64,
    pub operator: String,
    pub opened_ms: i64,
    pub closed_ms: Option<i64>,
    /// Stored when the shift closes.
    pub totals: Option<Totals>,
}

#[derive(Debug, Error)]
pub enum ShiftError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(
        "shift {shift_id} of operator {operator} is still open; close it (`payterm shift close`) before opening another"
    )]
    AlreadyOpen { shift_id: i64, operator: String },
    #[error("no shift is open; open one with `payterm shift open --operator ID`")]
    NoneOpen,
    #[error("no shift {0} in the journal")]
    NotFound(i64),
    #[error("the operator id must be 1 to 32 letters, digits, '-' or '_'")]
    BadOperator,
    #[error("the stored totals of shift {0} are unreadable: {1}")]
    BadTotals(i64, String),
}

// Aggregates both tables in one statement so paid and refunded sums come from one read
// snapshot: a refund committed between two separate queries could otherwise be counted in
// one and not the other. Only manual refunds: a fence refund returns money of an attempt that
// is not PAID, so it was never in the paid sums.
const SQL_TOTALS: &str = "SELECT gateway, wallet, SUM(pc), SUM(pf), SUM(rc), SUM(rf) FROM (
    SELECT gateway, COALESCE(wallet, '-') AS wallet, 1 AS pc, amount_fen AS pf, 0 AS rc, 0 AS rf
        FROM attempts WHERE state = 'PAID' AND created_ms >= ?1 AND created_ms < ?2
    UNION ALL
    SELECT a.gateway, COALESCE(a.wallet, '-'), 0, 0, 1, r.amount_fen
        FROM refunds r JOIN attempts a ON a.attempt_id = r.attempt_id
        WHERE r.kind = 'manual' AND r.state = 'DONE' AND r.created_ms >= ?1 AND r.created_ms < ?2
) GROUP BY gateway, wallet ORDER BY gateway, wallet";

const SQL_PENDING: &str =
    "SELECT order_id, out_trade_no, gateway, COALESCE(wallet, '-'), state, amount_fen, created_ms
    FROM attempts WHERE created_ms >= ?1 AND created_ms < ?2
    AND state IN ('PAY_INTENT','QUERYING','REVERSE_INTENT','SAF_PENDING','MANUAL_REVIEW')
    ORDER BY order_id, attempt_id";

const SQL_SHIFT: &str = "SELECT shift_id, operator, opened_ms, closed_ms, totals FROM shifts";

impl Journal {
    /// The totals of `[from_ms, until_ms)`: two reads, one per kind of answer (sums, items).
    pub fn totals(&self, from_ms: i64, until_ms: i64) -> Result<Totals, JournalError> {
        let mut t = Totals {
            from_ms,
            until_ms,
            ..Totals::default()
        };
        let mut st = self.conn.prepare_cached(SQL_TOTALS)?;
        let rows = st.query_map(params![from_ms, until_ms], |r| {
            let paid_fen: i64 = r.get(3)?;
            let refund_fen: i64 = r.get(5)?;
            Ok(TotalsLine {
                gateway: r.get(0)?,
                wallet: r.get(1)?,
                paid_count: r.get::<_, i64>(2)?.max(0) as u64,
                paid_fen,
                refund_count: r.get::<_, i64>(4)?.max(0) as u64,
                refund_fen,
                net_fen: paid_fen - refund_fen,
            })
        })?;
        for line in rows {
            t.lines.push(line?);
        }
        t.all = TotalsLine {
            gateway: "*".into(),
            wallet: "*".into(),
            ..TotalsLine::default()
        };
        for l in &t.lines {
            t.all.paid_count += l.paid_count;
            t.all.paid_fen += l.paid_fen;
            t.all.refund_count += l.refund_count;
            t.all.refund_fen += l.refund_fen;
            t.all.net_fen += l.net_fen;
        }
        let mut st = self.conn.prepare_cached(SQL_PENDING)?;
        let rows = st.query_map(params![from_ms, until_ms], |r| {
            Ok(TotalsItem {
                order_id: r.get(0)?,
                out_trade_no: r.get(1)?,
                gateway: r.get(2)?,
                wallet: r.get(3)?,
                state: r.get(4)?,
                amount_fen: r.get(5)?,
                created_ms: r.get(6)?,
            })
        })?;
        for item in rows {
            let item = item?;
            if item.state == "MANUAL_REVIEW" {
                t.review.push(item);
            } else {
                t.unsettled.push(item);
            }
        }
        Ok(t)
    }

    /// Opens a shift for `operator`; refused while another is open.
    pub fn shift_open(&mut self, operator: &str, now_ms: i64) -> Result<ShiftRow, ShiftError> {
        let ok = !operator.is_empty()
            && operator.len() <= 32
            && operator
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(ShiftError::BadOperator);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(JournalError::from)?;
        let open: Option<(i64, String)> = tx
            .query_row(
                "SELECT shift_id, operator FROM shifts WHERE closed_ms IS NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(JournalError::from)?;
        if let Some((shift_id, operator)) = open {
            return Err(ShiftError::AlreadyOpen { shift_id, operator });
        }
        tx.execute(
            "INSERT INTO shifts(operator, opened_ms) VALUES (?1, ?2)",
            params![operator, now_ms],
        )
        .map_err(JournalError::from)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(JournalError::from)?;
        self.shift(id)
    }

    /// Closes the open shift: its totals from opening until `now_ms` are computed and stored in
    /// the same transaction, so what was printed is what is kept.
    pub fn shift_close(&mut self, now_ms: i64) -> Result<ShiftRow, ShiftError> {
        // Unchecked: the totals are read through the same connection, inside this transaction.
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(JournalError::from)?;
        let open: Option<(i64, i64)> = tx
            .query_row(
                "SELECT shift_id, opened_ms FROM shifts WHERE closed_ms IS NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(JournalError::from)?;
        let Some((id, opened_ms)) = open else {
            return Err(ShiftError::NoneOpen);
        };
        // The end is exclusive: a payment created in the closing millisecond is the next
        // shift's, never both.
        let until = now_ms.max(opened_ms);
        let totals = self.totals(opened_ms, until)?;
        let json =
            serde_json::to_string(&totals).map_err(|e| ShiftError::BadTotals(id, e.to_string()))?;
        tx.execute(
            "UPDATE shifts SET closed_ms = ?2, totals = ?3 WHERE shift_id = ?1",
            params![id, until, json],
        )
        .map_err(JournalError::from)?;
        tx.commit().map_err(JournalError::from)?;
        self.shift(id)
    }

    pub fn shift(&self, shift_id: i64) -> Result<ShiftRow, ShiftError> {
        self.conn
            .query_row(
                &format!("{SQL_SHIFT} WHERE shift_id = ?1"),
                params![shift_id],
                row_to_shift,
            )
            .optional()
            .map_err(JournalError::from)?
            .ok_or(ShiftError::NotFound(shift_id))?
    }

    /// The open shift, if any.
    pub fn open_shift(&self) -> Result<Option<ShiftRow>, ShiftError> {
        self.conn
            .query_row(
                &format!("{SQL_SHIFT} WHERE closed_ms IS NULL"),
                [],
                row_to_shift,
            )
            .optional()
            .map_err(JournalError::from)?
            .transpose()
    }
}

type ShiftRead = Result<ShiftRow, ShiftError>;

fn row_to_shift(r: &rusqlite::Row<'_>) -> rusqlite::Result<ShiftRead> {
    let shift_id: i64 = r.get(0)?;
    let totals: Option<String> = r.get(4)?;
    let totals = match totals.map(|t| serde_json::from_str::<Totals>(&t)) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => return Ok(Err(ShiftError::BadTotals(shift_id, e.to_string()))),
    };
    Ok(Ok(ShiftRow {
        shift_id,
        operator: r.get(1)?,
        opened_ms: r.get(2)?,
        closed_ms: r.get(3)?,
        totals,
    }))
}

/// The Beijing calendar day `yyyy-MM-dd` as `[start, end)` in Unix milliseconds.
pub fn beijing_day(date: &str) -> Option<(i64, i64)> {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let start = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis() - 8 * 3_600_000;
    Some((start, start + 24 * 3_600_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::authcode::Wallet;
    use crate::core::machine::{self, Attempt, AttemptState};
    use crate::core::money::Amount;
    use crate::core::policy::Policy;
    use crate::gateway::{Method, OrderDetails};
    use crate::journal::{NewAttempt, RefundState, StepExtra};

    const T0: i64 = 1_795_312_800_000;

    fn pay(j: &mut Journal, order: &str, wallet: Wallet, fen: u64, at: i64, to: AttemptState) {
        let a = j
            .insert_attempt(
                &NewAttempt {
                    order_id: order.into(),
                    gateway: "aggregator".into(),
                    method: Method::Code,
                    wallet: Some(wallet),
                    out_trade_no: format!("N{order}"),
                    amount: Amount::from_fen(fen),
                    code_fp: None,
                    code_mask: Some("1345**********6789".into()),
                    chan_txn_time: "20261122100000".into(),
                    machine: Attempt::new(&Policy::aggregator(), at),
                    details: OrderDetails::default(),
                },
                at,
                120_000,
            )
            .unwrap();
        if to != AttemptState::PayIntent {
            let mut m = a.machine.clone();
            m.state = to;
            let step = machine::Step {
                attempt: m,
                note: "test".into(),
                alarm: false,
            };
            j.commit_step(a.attempt_id, a.version, &step, &StepExtra::default(), at)
                .unwrap();
        }
    }

    fn refund(j: &mut Journal, order: &str, no: &str, fen: u64, at: i64, done: bool) {
        let a = j.by_order(order).unwrap().remove(0);
        let r = j
            .refund_intent(a.attempt_id, no, Amount::from_fen(fen), "manual", at)
            .unwrap();
        if done {
            j.update_refund(
                r.refund_id,
                RefundState::Intent,
                RefundState::Done,
                Some("C1"),
                "done",
                at,
            )
            .unwrap();
        }
    }

    #[test]
    fn totals_group_by_gateway_and_wallet_within_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.db")).unwrap();
        pay(&mut j, "A", Wallet::Wechat, 1000, T0, AttemptState::Paid);
        pay(&mut j, "B", Wallet::Wechat, 250, T0 + 1, AttemptState::Paid);
        pay(&mut j, "C", Wallet::Alipay, 700, T0 + 2, AttemptState::Paid);
        pay(
            &mut j,
            "D",
            Wallet::Alipay,
            851,
            T0 + 3,
            AttemptState::Failed,
        );
        pay(
            &mut j,
            "E",
            Wallet::Wechat,
            300,
            T0 + 4,
            AttemptState::Querying,
        );
        pay(
            &mut j,
            "F",
            Wallet::Wechat,
            400,
            T0 + 5,
            AttemptState::ManualReview,
        );
        // Before and after the range: not counted.
        pay(
            &mut j,
            "G",
            Wallet::Wechat,
            9000,
            T0 - 1,
            AttemptState::Paid,
        );
        pay(
            &mut j,
            "H",
            Wallet::Wechat,
            9000,
            T0 + 100,
            AttemptState::Paid,
        );
        refund(&mut j, "A", "R1", 300, T0 + 10, true);
        // Not DONE: not given back yet.
        refund(&mut j, "C", "R2", 100, T0 + 11, false);
        let t = j.totals(T0, T0 + 100).unwrap();
        assert_eq!(
            t.lines,
            vec![
                TotalsLine {
                    gateway: "aggregator".into(),
                    wallet: "ALIPAY".into(),
                    paid_count: 1,
                    paid_fen: 700,
                    refund_count: 0,
                    refund_fen: 0,
                    net_fen: 700,
                },
                TotalsLine {
                    gateway: "aggregator".into(),
                    wallet: "WECHAT".into(),
                    paid_count: 2,
                    paid_fen: 1250,
                    refund_count: 1,
                    refund_fen: 300,
                    net_fen: 950,
                },
            ]
        );
        assert_eq!(
            (t.all.paid_fen, t.all.refund_fen, t.all.net_fen),
            (1950, 300, 1650)
        );
        assert_eq!(
            t.unsettled
                .iter()
                .map(|i| i.order_id.as_str())
                .collect::<Vec<_>>(),
            ["E"]
        );
        assert_eq!(
            t.review
                .iter()
                .map(|i| i.order_id.as_str())
                .collect::<Vec<_>>(),
            ["F"]
        );
    }

    #[test]
    fn one_shift_at_a_time_and_its_totals_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.db")).unwrap();
        assert!(matches!(j.shift_close(T0), Err(ShiftError::NoneOpen)));
        assert!(matches!(
            j.shift_open("bad id", T0),
            Err(ShiftError::BadOperator)
        ));
        let s = j.shift_open("0012", T0).unwrap();
        assert!(matches!(
            j.shift_open("0013", T0),
            Err(ShiftError::AlreadyOpen { .. })
        ));
        pay(
            &mut j,
            "A",
            Wallet::Wechat,
            1000,
            T0 + 1,
            AttemptState::Paid,
        );
        let closed = j.shift_close(T0 + 10).unwrap();
        assert_eq!(closed.shift_id, s.shift_id);
        assert_eq!(closed.totals.as_ref().unwrap().all.net_fen, 1000);
        assert!(j.open_shift().unwrap().is_none());
        // A closed shift's totals do not change, even by hand.
        assert!(
            j.conn
                .execute("UPDATE shifts SET totals = '{}'", [])
                .is_err()
        );
        assert!(j.conn.execute("DELETE FROM shifts", []).is_err());
        assert_eq!(j.shift(s.shift_id).unwrap(), closed);
        j.shift_open("0013", T0 + 20).unwrap();
    }

    #[test]
    fn a_beijing_day_starts_at_midnight_plus_eight() {
        let (start, end) = beijing_day("2026-11-22").unwrap();
        assert_eq!(crate::util::beijing_human(start), "2026-11-22 00:00:00");
        assert_eq!(end - start, 86_400_000);
        assert!(beijing_day("2026-13-01").is_none());
    }
}
