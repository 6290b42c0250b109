//! Retention: orders whose every attempt settled long ago leave the journal, archived first.
//!
//! The one deliberate exception to "the history is append-only" (schema migration 7): inside a
//! prune transaction the attempts being removed are listed in `prune_grant`, whose own trigger
//! refuses any attempt that is not PAID, FAILED or REVERSED or that has a refund whose outcome is
//! not known; the delete triggers of `events`, `attempts` and `refunds` let through only rows of
//! granted attempts, and the grant is emptied before the commit. Everything removed is first
//! appended to a JSONL archive beside the journal and synced, so a prune loses nothing: at worst
//! (a crash between the archive's sync and the commit) the archive holds an order that is still
//! in the journal, and the next prune writes it again.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{TransactionBehavior, params};
use serde::Serialize;

use super::{AttemptRow, Event, Journal, JournalError, RefundRow};

/// Orders removed per transaction: keeps the write lock short for the sales beside it.
const BATCH: i64 = 2_000;

// An order goes only as a whole (an old paid attempt removed beside a newer one would let the
// order be paid again), and only when every attempt of it is settled, final before the cutoff,
// and every refund of it is done or failed before the cutoff. MANUAL_REVIEW is not settled.
const SQL_CANDIDATES: &str = "SELECT o.order_id, o.amount_fen, o.created_ms, o.details FROM orders o \
    WHERE o.created_ms < ?1 AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.order_id = o.order_id AND ( \
        a.state NOT IN ('PAID','FAILED','REVERSED') OR a.final_ms IS NULL OR a.final_ms >= ?1 OR a.updated_ms >= ?1 \
        OR EXISTS (SELECT 1 FROM refunds r WHERE r.attempt_id = a.attempt_id \
                   AND (r.state NOT IN ('DONE','FAILED') OR r.updated_ms >= ?1)))) \
    ORDER BY o.created_ms LIMIT ?2";

/// What a prune removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    pub orders: usize,
    pub attempts: usize,
    pub sales: usize,
    pub archive: PathBuf,
}

#[derive(Serialize)]
struct ArchivedAttempt<'a> {
    #[serde(flatten)]
    attempt: &'a AttemptRow,
    history: Vec<Event>,
    refunds: Vec<RefundRow>,
}

#[derive(Serialize)]
struct ArchivedOrder<'a> {
    kind: &'static str,
    order_id: &'a str,
    amount_fen: i64,
    created_ms: i64,
    details: &'a str,
    attempts: Vec<ArchivedAttempt<'a>>,
    pruned_ms: i64,
}

#[derive(Serialize)]
struct ArchivedSale {
    kind: &'static str,
    order_id: String,
    state: String,
    note: String,
    amount_fen: i64,
    created_ms: i64,
    updated_ms: i64,
    pruned_ms: i64,
}

impl Journal {
    /// Where [`Journal::prune`] appends what it removes: `payterm.db` → `payterm.archive.jsonl`.
    pub fn archive_path(&self) -> PathBuf {
        self.path.with_extension("archive.jsonl")
    }

    /// Archives, then removes, every order settled before `cutoff_ms` (see the module's rule),
    /// its sales without attempts and notifications received before it. Open, in-review and
    /// recent attempts, and attempts with a refund still open, are never touched.
    pub fn prune(&mut self, cutoff_ms: i64, now_ms: i64) -> Result<PruneReport, JournalError> {
        let archive = self.archive_path();
        let mut report = PruneReport {
            archive: archive.clone(),
            ..PruneReport::default()
        };
        loop {
            let (orders, attempts) = self.prune_batch(cutoff_ms, now_ms, &archive)?;
            report.orders += orders;
            report.attempts += attempts;
            if (orders as i64) < BATCH {
                break;
            }
        }
        report.sales = self.prune_sales(cutoff_ms, now_ms, &archive)?;
        Ok(report)
    }

    fn prune_batch(
        &self,
        cutoff_ms: i64,
        now_ms: i64,
        archive: &Path,
    ) -> Result<(usize, usize), JournalError> {
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let orders: Vec<(String, i64, i64, String)> = {
            let mut st = tx.prepare(SQL_CANDIDATES)?;
            let rows = st.query_map(params![cutoff_ms, BATCH], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        if orders.is_empty() {
            return Ok((0, 0));
        }
        let mut lines = String::new();
        let mut attempt_ids = Vec::new();
        for (order_id, amount_fen, created_ms, details) in &orders {
            let rows = self.by_order(order_id)?;
            let mut attempts = Vec::with_capacity(rows.len());
            for a in &rows {
                attempt_ids.push(a.attempt_id);
                attempts.push(ArchivedAttempt {
                    attempt: a,
                    history: self.history(a.attempt_id)?,
                    refunds: self.refunds_for(a.attempt_id)?,
                });
            }
            let line = ArchivedOrder {
                kind: "order",
                order_id,
                amount_fen: *amount_fen,
                created_ms: *created_ms,
                details,
                attempts,
                pruned_ms: now_ms,
            };
            lines.push_str(&serde_json::to_string(&line).map_err(|e| archive_error(archive, e))?);
            lines.push('\n');
        }
        append_synced(archive, &lines)?;
        tx.execute("DELETE FROM prune_grant", [])?;
        for id in &attempt_ids {
            // The grant's trigger refuses an unsettled attempt: the transaction rolls back.
            tx.prepare_cached("INSERT INTO prune_grant(attempt_id) VALUES (?1)")?
                .execute(params![id])?;
        }
        tx.execute(
            "DELETE FROM events WHERE attempt_id IN (SELECT attempt_id FROM prune_grant)",
            [],
        )?;
        tx.execute(
            "DELETE FROM refunds WHERE attempt_id IN (SELECT attempt_id FROM prune_grant)",
            [],
        )?;
        tx.execute(
            "DELETE FROM attempts WHERE attempt_id IN (SELECT attempt_id FROM prune_grant)",
            [],
        )?;
        for (order_id, ..) in &orders {
            tx.prepare_cached("DELETE FROM orders WHERE order_id = ?1")?
                .execute(params![order_id])?;
        }
        tx.execute("DELETE FROM prune_grant", [])?;
        tx.commit()?;
        Ok((orders.len(), attempt_ids.len()))
    }

    fn prune_sales(
        &self,
        cutoff_ms: i64,
        now_ms: i64,
        archive: &Path,
    ) -> Result<usize, JournalError> {
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let sales: Vec<ArchivedSale> = {
            let mut st = tx.prepare(
                "SELECT order_id, state, note, amount_fen, created_ms, updated_ms FROM sales WHERE updated_ms < ?1",
            )?;
            let rows = st.query_map(params![cutoff_ms], |r| {
                Ok(ArchivedSale {
                    kind: "sale",
                    order_id: r.get(0)?,
                    state: r.get(1)?,
                    note: r.get(2)?,
                    amount_fen: r.get(3)?,
                    created_ms: r.get(4)?,
                    updated_ms: r.get(5)?,
                    pruned_ms: now_ms,
                })
            })?;
            rows.collect::<Result<_, _>>()?
        };
        if !sales.is_empty() {
            let mut lines = String::new();
            for s in &sales {
                lines.push_str(&serde_json::to_string(s).map_err(|e| archive_error(archive, e))?);
                lines.push('\n');
            }
            append_synced(archive, &lines)?;
            tx.execute(
                "DELETE FROM sales WHERE updated_ms < ?1",
                params![cutoff_ms],
            )?;
        }
        // Digests only stop a notification being applied twice; after the retention period
        // the attempt it names is gone too.
        tx.execute(
            "DELETE FROM notifications WHERE received_ms < ?1",
            params![cutoff_ms],
        )?;
        tx.commit()?;
        Ok(sales.len())
    }
}

fn archive_error(archive: &Path, e: impl std::fmt::Display) -> JournalError {
    JournalError::Archive {
        path: archive.display().to_string(),
        detail: e.to_string(),
    }
}

/// Appends and syncs before any row is deleted.
fn append_synced(archive: &Path, lines: &str) -> Result<(), JournalError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(archive)
        .map_err(|e| archive_error(archive, e))?;
    f.write_all(lines.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| archive_error(archive, e))
}
