//! Sales that ended before any attempt existed: abandoned at the counter, timed out waiting for
//! a code, face authorisation failed, refused by a guard. Nothing was sent and no money moved,
//! but the cash register asks `GET /v1/payments/{id}` afterwards and must get the truth, not a
//! 404 — after a restart too, for as long as the journal keeps its data. One row per order: a
//! retry of the same order that ends the same way updates it; an attempt, once journaled, is
//! what the ECR API reports instead.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Journal, JournalError};
use crate::core::money::Amount;

/// How a sale without an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SaleRow {
    pub order_id: String,
    /// `ABANDONED` or `REFUSED`.
    pub state: String,
    pub note: String,
    pub amount: Amount,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Journal {
    /// Records (or updates) how a sale without any attempt ended.
    pub fn record_sale_end(
        &self,
        order_id: &str,
        state: &str,
        note: &str,
        amount: Amount,
        created_ms: i64,
        now_ms: i64,
    ) -> Result<(), JournalError> {
        self.conn.execute(
            "INSERT INTO sales(order_id, state, note, amount_fen, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(order_id) DO UPDATE SET state = excluded.state, note = excluded.note,
                 amount_fen = excluded.amount_fen, updated_ms = excluded.updated_ms",
            params![
                order_id,
                state,
                note,
                amount.fen() as i64,
                created_ms,
                now_ms
            ],
        )?;
        Ok(())
    }

    /// The recorded end of a sale without any attempt.
    pub fn sale_end(&self, order_id: &str) -> Result<Option<SaleRow>, JournalError> {
        Ok(self
            .conn
            .query_row(
                "SELECT order_id, state, note, amount_fen, created_ms, updated_ms
                 FROM sales WHERE order_id = ?1",
                params![order_id],
                |r| {
                    Ok(SaleRow {
                        order_id: r.get(0)?,
                        state: r.get(1)?,
                        note: r.get(2)?,
                        amount: Amount::from_fen(r.get::<_, i64>(3)?.max(0) as u64),
                        created_ms: r.get(4)?,
                        updated_ms: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sale_without_an_attempt_is_kept_and_a_retry_updates_it() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        assert_eq!(j.sale_end("S1").unwrap(), None);
        j.record_sale_end(
            "S1",
            "ABANDONED",
            "cancelled",
            Amount::from_fen(1200),
            10,
            20,
        )
        .unwrap();
        j.record_sale_end(
            "S1",
            "ABANDONED",
            "timed out",
            Amount::from_fen(1200),
            30,
            40,
        )
        .unwrap();
        let s = j.sale_end("S1").unwrap().unwrap();
        assert_eq!(
            (s.state.as_str(), s.note.as_str()),
            ("ABANDONED", "timed out")
        );
        assert_eq!((s.created_ms, s.updated_ms, s.amount.fen()), (10, 40, 1200));
    }
}
