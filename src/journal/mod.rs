//! The journal: the SQLite database that is the source of truth for every attempt.
//!
//! This is the only code that writes SQL. Every change that can matter for money is one
//! transaction, committed with `journal_mode=WAL` and `synchronous=FULL` before the engine sends
//! the request it announces; the history of every attempt is append-only. The journal never holds
//! a full payment code or face code: only the keyed fingerprint and the masked form. It does not
//! decide anything — the state machine does — but it refuses, with typed errors, what storage
//! must make impossible (two paid attempts on one order, two open ones, refunds above the payment).

pub mod offline;
pub mod preauth;
pub mod prune;
pub mod sales;
pub mod schema;
pub mod totals;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;
use thiserror::Error;

use crate::core::authcode::Wallet;
use crate::core::machine::{Attempt, AttemptState, Fence, Op, ReverseAction, Step};
use crate::core::money::Amount;
use crate::failpoint;
use crate::gateway::{Method, OrderDetails};

pub use preauth::{
    Intent, NewPreAuth, PreAuthChange, PreAuthEvent, PreAuthOp, PreAuthRow, PreAuthState,
};
pub use totals::{ShiftError, ShiftRow, Totals, TotalsItem, TotalsLine};

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "the journal at {path} failed its integrity check ({detail}); payterm is in safe mode and takes no new payments. The file is kept as it is: copy it away, then run `payterm recover` to export the open attempts"
    )]
    Damaged { path: String, detail: String },
    #[error(
        "the journal at {path} was written by a newer payterm (schema {found}, this one knows {known}); upgrade payterm"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("no attempt or order named {0} in the journal")]
    NotFound(String),
    #[error("order {order} is already paid (attempt {out_trade_no}); nothing more to take")]
    AlreadyPaid { order: String, out_trade_no: String },
    #[error(
        "order {order} still has an attempt being resolved ({out_trade_no}, {state}); wait for it to finish or be cancelled before taking another code"
    )]
    OpenAttempt {
        order: String,
        out_trade_no: String,
        state: String,
    },
    #[error(
        "this payment code ({mask}) was already scanned {secs} s ago; ask the customer to refresh it"
    )]
    DuplicateScan { mask: String, secs: i64 },
    #[error("order {order} was created for {existing} yuan; it cannot be paid with {asked}")]
    AmountMismatch {
        order: String,
        existing: Amount,
        asked: Amount,
    },
    #[error(
        "refund of {asked} refused: {paid} was paid and {taken} is already refunded or being refunded, so at most {left} remains"
    )]
    RefundTooLarge {
        asked: Amount,
        paid: Amount,
        taken: Amount,
        left: Amount,
    },
    #[error("refund number {0} was already used for a different refund")]
    RefundNumberReused(String),
    #[error("the attempt changed underneath (another process is settling it); try again")]
    Conflict,
    #[error("order {order} is {state}, not paid: only a paid order is refunded")]
    RefundNotPaid { order: String, state: String },
    /// A fail point standing for a write that fails (a full disk, an I/O error).
    #[error("journal write failed: {0}")]
    Simulated(&'static str),
    /// A change the journal's rules do not allow; the message says which rule.
    #[error("{0}")]
    NotAllowed(String),
    /// The prune's archive could not be written: nothing was removed.
    #[error("the journal archive {path} could not be written ({detail}); nothing was pruned")]
    Archive { path: String, detail: String },
}

/// One attempt as stored.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptRow {
    pub attempt_id: i64,
    pub order_id: String,
    pub gateway: String,
    pub method: Method,
    pub wallet: Option<Wallet>,
    pub out_trade_no: String,
    pub amount: Amount,
    pub code_mask: Option<String>,
    #[serde(skip)]
    pub code_fp: Option<String>,
    pub chan_txn_time: String,
    pub chan_trade_no: Option<String>,
    pub code_url: Option<String>,
    pub version: i64,
    #[serde(flatten)]
    pub machine: Attempt,
    pub last_note: String,
    pub alarm: bool,
    pub updated_ms: i64,
    pub final_ms: Option<i64>,
    pub details: OrderDetails,
}

/// What the engine knows when it creates an attempt.
#[derive(Clone, Debug)]
pub struct NewAttempt {
    pub order_id: String,
    pub gateway: String,
    pub method: Method,
    pub wallet: Option<Wallet>,
    pub out_trade_no: String,
    pub amount: Amount,
    pub code_fp: Option<String>,
    pub code_mask: Option<String>,
    pub chan_txn_time: String,
    pub machine: Attempt,
    pub details: OrderDetails,
}

/// One line of an attempt's history.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub seq: i64,
    pub attempt_id: i64,
    pub at_ms: i64,
    pub from_state: Option<String>,
    pub to_state: String,
    pub op: Option<String>,
    pub detail: String,
    pub note: String,
    pub alarm: bool,
}

pub use crate::core::refund::RefundState;

#[derive(Clone, Debug, Serialize)]
pub struct RefundRow {
    pub refund_id: i64,
    pub out_refund_no: String,
    pub attempt_id: i64,
    pub amount: Amount,
    pub kind: String,
    pub state: RefundState,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub chan_refund_no: Option<String>,
    pub note: String,
}

/// Which attempts `list` returns.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only attempts that still need work (not final, not in review).
    pub open: bool,
    /// Only attempts in manual review.
    pub review: bool,
    /// Only attempts created on this Beijing date (`yyyy-MM-dd`).
    pub date: Option<String>,
    pub limit: Option<usize>,
}

/// What the caller attaches to a step when committing it.
#[derive(Clone, Debug, Default)]
pub struct StepExtra<'a> {
    pub op: Option<Op>,
    pub detail: &'a str,
    pub chan_trade_no: Option<&'a str>,
    pub code_url: Option<&'a str>,
}

pub struct Journal {
    conn: Lease,
    path: PathBuf,
}

/// A journal's connection, owned outright or lent by a [`Pool`] (and given back on drop).
struct Lease {
    conn: Option<Connection>,
    home: Option<Arc<PoolInner>>,
}

impl Lease {
    fn own(conn: Connection) -> Lease {
        Lease {
            conn: Some(conn),
            home: None,
        }
    }
}

impl std::ops::Deref for Lease {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Only `drop` takes the connection out.
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (Some(conn), Some(home)) = (self.conn.take(), self.home.take()) else {
            return;
        };
        // A connection left inside a transaction (a panic mid-write) is closed, which rolls
        // it back, rather than handed to the next borrower.
        if !conn.is_autocommit() {
            return;
        }
        let mut idle = home.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < home.keep {
            idle.push(conn);
        }
    }
}

struct PoolInner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    keep: usize,
}

/// Connections kept for the life of a process (the daemon), lent as [`Journal`]s and given
/// back when the `Journal` is dropped. A fresh connection costs more than its open: SQLite
/// rebuilds its WAL index by reading the whole WAL, the prepared statements start cold, and
/// its first WAL sync also syncs the directory; per payment that was four opens, ~1,000
/// `pread`s and one extra fsync.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

impl Pool {
    /// A pool on an already opened (checked and migrated) journal that keeps at most `keep`
    /// idle connections; more may be lent at once, the surplus is closed on return.
    pub fn new(path: &Path, keep: usize) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                path: path.to_path_buf(),
                idle: Mutex::new(Vec::new()),
                keep,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A kept connection, or a new one when all are lent.
    pub fn get(&self) -> Result<Journal, JournalError> {
        let kept = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let conn = match kept {
            Some(c) => c,
            None => Journal::connection(&self.inner.path)?,
        };
        Ok(Journal {
            conn: Lease {
                conn: Some(conn),
                home: Some(self.inner.clone()),
            },
            path: self.inner.path.clone(),
        })
    }

    /// Idle connections now (for tests).
    pub fn idle(&self) -> usize {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

const ATTEMPT_COLUMNS: &str = "attempt_id, order_id, gateway, method, wallet, out_trade_no, amount_fen, \
    code_fp, code_mask, chan_txn_time, chan_trade_no, code_url, state, state_ver, created_ms, deadline_ms, \
    reverse_from_ms, reverse_until_ms, review_at_ms, queries, reverse_tries, saf_tries, next_at_ms, fence, \
    window_closed, reverse_action, last_note, alarm, updated_ms, final_ms, \
    (SELECT details FROM orders o WHERE o.order_id = attempts.order_id), sent_ms, contact_ms, confirming";

// The statements a payment runs. They go through `prepare_cached`: parsing and planning SQL
// was a quarter of a payment's CPU (perf, benches/payment.rs) before they were kept prepared.
const SQL_RECENT_SCAN: &str = "SELECT created_ms FROM attempts WHERE code_fp = ?1 AND created_ms > ?2 ORDER BY created_ms DESC LIMIT 1";
const SQL_INSERT_ORDER: &str =
    "INSERT INTO orders(order_id, amount_fen, created_ms, details) VALUES (?1, ?2, ?3, ?4)";
const SQL_BLOCKING_ATTEMPT: &str = "SELECT out_trade_no, state FROM attempts WHERE order_id = ?1 AND state IN ('PAID','PAY_INTENT','QUERYING') ORDER BY state = 'PAID' DESC LIMIT 1";
const SQL_INSERT_ATTEMPT: &str = "INSERT INTO attempts(order_id, gateway, method, wallet, out_trade_no, amount_fen, code_fp, code_mask, \
     chan_txn_time, state, created_ms, deadline_ms, reverse_from_ms, reverse_until_ms, review_at_ms, \
     next_at_ms, last_note, updated_ms) \
     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)";
const SQL_EVENT_CREATED: &str = "INSERT INTO events(attempt_id, at_ms, from_state, to_state, op, note) VALUES (?1, ?2, NULL, ?3, NULL, ?4)";
const SQL_UPDATE_STEP: &str = "UPDATE attempts SET state = ?2, state_ver = state_ver + 1, queries = ?3, reverse_tries = ?4, \
     saf_tries = ?5, next_at_ms = ?6, fence = ?7, window_closed = ?8, reverse_action = ?9, \
     last_note = ?10, alarm = alarm OR ?11, updated_ms = ?12, final_ms = COALESCE(final_ms, ?13), \
     chan_trade_no = COALESCE(?14, chan_trade_no), code_url = COALESCE(?15, code_url), \
     reverse_until_ms = ?16, sent_ms = ?17, contact_ms = ?18, confirming = ?19, reverse_from_ms = ?20 \
     WHERE attempt_id = ?1";
const SQL_EVENT_STEP: &str = "INSERT INTO events(attempt_id, at_ms, from_state, to_state, op, detail, note, alarm) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)";
const SQL_OPEN_EXPOSURE: &str = "SELECT COUNT(*), SUM(amount_fen), MIN(created_ms) FROM attempts WHERE state IN ('PAY_INTENT','QUERYING','REVERSE_INTENT','SAF_PENDING','MANUAL_REVIEW')";
const SQL_RECOVERY_DUE_ATTEMPTS: &str = "SELECT MIN(COALESCE(next_at_ms, 0)) FROM attempts WHERE state IN ('PAY_INTENT','QUERYING','REVERSE_INTENT','SAF_PENDING')";
const SQL_RECOVERY_DUE_OTHER: &str = "SELECT EXISTS(SELECT 1 FROM refunds WHERE state IN ('INTENT','PROCESSING','UNKNOWN') AND kind = 'manual') \
     OR EXISTS(SELECT 1 FROM offline_deductions WHERE state IN ('STORED','SUBMITTED')) \
     OR EXISTS(SELECT 1 FROM preauth_ops WHERE state IN ('INTENT','UNKNOWN'))";
const SQL_REFUND_BY_NO: &str =
    "SELECT refund_id, attempt_id, amount_fen FROM refunds WHERE out_refund_no = ?1";
const SQL_REFUNDED_SUM: &str =
    "SELECT COALESCE(SUM(amount_fen), 0) FROM refunds WHERE attempt_id = ?1 AND state != 'FAILED'";
const SQL_INSERT_REFUND: &str = "INSERT INTO refunds(out_refund_no, attempt_id, amount_fen, kind, state, created_ms, updated_ms, note) VALUES (?1,?2,?3,?4,'INTENT',?5,?5,'journaled before sending')";
const SQL_EVENT_REFUND_CREATED: &str = "INSERT INTO events(attempt_id, at_ms, from_state, to_state, op, detail, note) SELECT attempt_id, ?2, state, state, 'refund', ?3, ?4 FROM attempts WHERE attempt_id = ?1";
const SQL_UPDATE_REFUND: &str = "UPDATE refunds SET state = ?2, chan_refund_no = COALESCE(?3, chan_refund_no), note = ?4, updated_ms = ?5 WHERE refund_id = ?1";
const SQL_EVENT_REFUND_STEP: &str = "INSERT INTO events(attempt_id, at_ms, from_state, to_state, op, detail, note) SELECT a.attempt_id, ?2, a.state, a.state, 'refund', r.out_refund_no, ?3 FROM refunds r JOIN attempts a ON a.attempt_id = r.attempt_id WHERE r.refund_id = ?1";
const SQL_REFUND_BY_ID: &str = "SELECT refund_id, out_refund_no, attempt_id, amount_fen, kind, state, created_ms, updated_ms, chan_refund_no, note FROM refunds WHERE refund_id = ?1";
const SQL_REFUND_BY_OUT_NO: &str = "SELECT refund_id, out_refund_no, attempt_id, amount_fen, kind, state, created_ms, updated_ms, chan_refund_no, note FROM refunds WHERE out_refund_no = ?1";
const SQL_INSERT_NOTIFICATION: &str = "INSERT OR IGNORE INTO notifications(received_ms, gateway, out_trade_no, digest, outcome) VALUES (?1,?2,?3,?4,?5)";

impl Journal {
    /// Opens (creating if needed) the journal at `path`, checks it, and migrates it.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        // Switching a new file to WAL can answer SQLITE_BUSY without waiting on the busy
        // handler while another process opens it too (the soak's workers, or a CLI command
        // beside the starting daemon): that is a moment's contention, not an error.
        let mut tries = 0;
        loop {
            match Journal::open_once(path) {
                Err(JournalError::Sql(rusqlite::Error::SqliteFailure(e, _)))
                    if tries < 50
                        && matches!(
                            e.code,
                            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                        ) =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                r => return r,
            }
        }
    }

    fn open_once(path: &Path) -> Result<Journal, JournalError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(64);
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::Damaged {
                path: path.display().to_string(),
                detail: format!("journal_mode is {mode}, WAL is required"),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        no_checkpoint_on_close(&conn)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let j = Journal {
            conn: Lease::own(conn),
            path: path.to_path_buf(),
        };
        j.check()?;
        j.migrate()?;
        Ok(j)
    }

    /// Opens an already checked and migrated journal (a second connection in the daemon):
    /// the same durability settings, without repeating the integrity check.
    pub fn connect(path: &Path) -> Result<Journal, JournalError> {
        Ok(Journal {
            conn: Lease::own(Journal::connection(path)?),
            path: path.to_path_buf(),
        })
    }

    fn connection(path: &Path) -> Result<Connection, JournalError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        no_checkpoint_on_close(&conn)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(conn)
    }

    /// SQLite's `PRAGMA data_version`: it changes when another connection (another thread's
    /// engine, or another process such as `payterm recover`) committed since this connection
    /// last looked. A cheap way for a long-lived reader to know whether to re-read at all.
    pub fn data_version(&self) -> Result<i64, JournalError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PRAGMA quick_check`: the start-up integrity gate.
    pub fn check(&self) -> Result<(), JournalError> {
        let result: Result<String, rusqlite::Error> =
            self.conn.query_row("PRAGMA quick_check", [], |r| r.get(0));
        match result {
            Ok(s) if s == "ok" => Ok(()),
            Ok(s) => Err(JournalError::Damaged {
                path: self.path.display().to_string(),
                detail: s,
            }),
            Err(e) => Err(JournalError::Damaged {
                path: self.path.display().to_string(),
                detail: e.to_string(),
            }),
        }
    }

    /// `PRAGMA integrity_check` (slower, thorough) for tests and `payterm recover`.
    pub fn integrity_check(&self) -> Result<String, JournalError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    pub fn schema_version(&self) -> Result<i64, JournalError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn migrate(&self) -> Result<(), JournalError> {
        let known = schema::MIGRATIONS.len() as i64;
        let found = self.schema_version()?;
        if found > known {
            return Err(JournalError::TooNew {
                path: self.path.display().to_string(),
                found,
                known,
            });
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
            // IMMEDIATE takes the write lock before the version is read again: two processes
            // opening a new journal at once must not both apply the same migration.
            let tx =
                rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if current > i as i64 {
                continue;
            }
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Creates the attempt (and its order, if new) in PAY_INTENT, enforcing the guards, in one
    /// durable transaction. After this returns the pay request may be sent.
    pub fn insert_attempt(
        &mut self,
        a: &NewAttempt,
        now_ms: i64,
        duplicate_window_ms: i64,
    ) -> Result<AttemptRow, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(fp) = &a.code_fp {
            let prior: Option<i64> = tx
                .prepare_cached(SQL_RECENT_SCAN)?
                .query_row(params![fp, now_ms - duplicate_window_ms], |r| r.get(0))
                .optional()?;
            if let Some(at) = prior {
                return Err(JournalError::DuplicateScan {
                    mask: a.code_mask.clone().unwrap_or_default(),
                    secs: ((now_ms - at) / 1000).max(0),
                });
            }
        }
        let existing: Option<i64> = tx
            .prepare_cached("SELECT amount_fen FROM orders WHERE order_id = ?1")?
            .query_row(params![a.order_id], |r| r.get(0))
            .optional()?;
        match existing {
            Some(fen) if fen as u64 != a.amount.fen() => {
                return Err(JournalError::AmountMismatch {
                    order: a.order_id.clone(),
                    existing: Amount::from_fen(fen as u64),
                    asked: a.amount,
                });
            }
            Some(_) => {}
            None => {
                let details = serde_json::to_string(&a.details).unwrap_or_else(|_| "{}".into());
                tx.prepare_cached(SQL_INSERT_ORDER)?.execute(params![
                    a.order_id,
                    a.amount.fen() as i64,
                    now_ms,
                    details
                ])?;
            }
        }
        let blocking: Option<(String, String)> = tx
            .prepare_cached(SQL_BLOCKING_ATTEMPT)?
            .query_row(params![a.order_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((no, state)) = blocking {
            return Err(if state == "PAID" {
                JournalError::AlreadyPaid {
                    order: a.order_id.clone(),
                    out_trade_no: no,
                }
            } else {
                JournalError::OpenAttempt {
                    order: a.order_id.clone(),
                    out_trade_no: no,
                    state,
                }
            });
        }
        let m = &a.machine;
        tx.prepare_cached(SQL_INSERT_ATTEMPT)?.execute(params![
            a.order_id,
            a.gateway,
            a.method.as_str(),
            a.wallet.map(|w| w.paytype()),
            a.out_trade_no,
            a.amount.fen() as i64,
            a.code_fp,
            a.code_mask,
            a.chan_txn_time,
            m.state.as_str(),
            m.created_ms,
            m.deadline_ms,
            m.reverse_from_ms,
            m.reverse_until_ms,
            m.review_at_ms,
            m.next_at_ms,
            "created",
            now_ms,
        ])?;
        let id = tx.last_insert_rowid();
        tx.prepare_cached(SQL_EVENT_CREATED)?.execute(params![
            id,
            now_ms,
            m.state.as_str(),
            format!(
                "attempt created for {} yuan via {}{}",
                a.amount,
                a.gateway,
                a.code_mask
                    .as_ref()
                    .map(|c| format!(", code {c}"))
                    .unwrap_or_default()
            )
        ])?;
        failpoint::hit("C0");
        tx.commit()?;
        self.attempt(id)
    }

    /// Persists a step of the state machine with its history line, if nobody else moved the
    /// attempt since `version`.
    pub fn commit_step(
        &mut self,
        attempt_id: i64,
        version: i64,
        step: &Step,
        extra: &StepExtra<'_>,
        now_ms: i64,
    ) -> Result<AttemptRow, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let from: Option<(String, i64)> = tx
            .prepare_cached("SELECT state, state_ver FROM attempts WHERE attempt_id = ?1")?
            .query_row(params![attempt_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((from_state, ver)) = from else {
            return Err(JournalError::NotFound(attempt_id.to_string()));
        };
        if ver != version {
            return Err(JournalError::Conflict);
        }
        let m = &step.attempt;
        let final_ms = m.state.is_final().then_some(now_ms);
        tx.prepare_cached(SQL_UPDATE_STEP)?.execute(params![
            attempt_id,
            m.state.as_str(),
            m.queries,
            m.reverse_tries,
            m.saf_tries,
            m.next_at_ms,
            m.fence.as_str(),
            m.window_closed,
            m.reverse_action.map(|a| a.as_str()),
            step.note,
            step.alarm,
            now_ms,
            final_ms,
            extra.chan_trade_no,
            extra.code_url,
            m.reverse_until_ms,
            m.sent_ms,
            m.contact_ms,
            m.confirming,
            m.reverse_from_ms,
        ])?;
        tx.prepare_cached(SQL_EVENT_STEP)?.execute(params![
            attempt_id,
            now_ms,
            from_state,
            m.state.as_str(),
            extra.op.map(|o| o.as_str()),
            extra.detail,
            step.note,
            step.alarm,
        ])?;
        failpoint::hit("C7");
        tx.commit()?;
        self.attempt(attempt_id)
    }

    pub fn attempt(&self, attempt_id: i64) -> Result<AttemptRow, JournalError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE attempt_id = ?1"
            ))?
            .query_row(params![attempt_id], row_to_attempt)
            .optional()?
            .ok_or_else(|| JournalError::NotFound(attempt_id.to_string()))
    }

    pub fn by_out_trade_no(&self, no: &str) -> Result<Option<AttemptRow>, JournalError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE out_trade_no = ?1"
            ))?
            .query_row(params![no], row_to_attempt)
            .optional()?)
    }

    /// Every attempt of an order, oldest first.
    pub fn by_order(&self, order_id: &str) -> Result<Vec<AttemptRow>, JournalError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE order_id = ?1 ORDER BY attempt_id"
        ))?;
        let rows = st.query_map(params![order_id], row_to_attempt)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Attempts named by an order id or an out_trade_no.
    pub fn find(&self, name: &str) -> Result<Vec<AttemptRow>, JournalError> {
        let mut v = self.by_order(name)?;
        if v.is_empty()
            && let Some(a) = self.by_out_trade_no(name)?
        {
            v.push(a);
        }
        if v.is_empty() {
            return Err(JournalError::NotFound(name.to_string()));
        }
        Ok(v)
    }

    /// Attempts that still need work, oldest first: the recovery and store-and-forward queue.
    pub fn open_attempts(&self) -> Result<Vec<AttemptRow>, JournalError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE state IN ('PAY_INTENT','QUERYING','REVERSE_INTENT','SAF_PENDING') ORDER BY created_ms, attempt_id"
        ))?;
        let rows = st.query_map([], row_to_attempt)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn list(&self, f: &ListFilter) -> Result<Vec<AttemptRow>, JournalError> {
        let mut sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE 1=1");
        if f.open {
            sql.push_str(" AND state IN ('PAY_INTENT','QUERYING','REVERSE_INTENT','SAF_PENDING')");
        }
        if f.review {
            sql.push_str(" AND state = 'MANUAL_REVIEW'");
        }
        let mut st = self.conn.prepare(&format!(
            "{sql} ORDER BY attempt_id DESC LIMIT {}",
            f.limit.unwrap_or(1_000_000)
        ))?;
        let rows = st.query_map([], row_to_attempt)?;
        let mut v = rows.collect::<Result<Vec<_>, _>>()?;
        if let Some(d) = &f.date {
            v.retain(|a| crate::util::beijing_date(a.machine.created_ms) == *d);
        }
        v.reverse();
        Ok(v)
    }

    pub fn history(&self, attempt_id: i64) -> Result<Vec<Event>, JournalError> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, attempt_id, at_ms, from_state, to_state, op, detail, note, alarm FROM events WHERE attempt_id = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map(params![attempt_id], |r| {
            Ok(Event {
                seq: r.get(0)?,
                attempt_id: r.get(1)?,
                at_ms: r.get(2)?,
                from_state: r.get(3)?,
                to_state: r.get(4)?,
                op: r.get(5)?,
                detail: r.get(6)?,
                note: r.get(7)?,
                alarm: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Counts of attempts per state, for the idle screen and metrics.
    pub fn counts(&self) -> Result<Vec<(AttemptState, i64)>, JournalError> {
        let mut st = self
            .conn
            .prepare("SELECT state, COUNT(*) FROM attempts GROUP BY state")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut v = Vec::new();
        for r in rows {
            let (s, n) = r?;
            if let Some(st) = AttemptState::parse(&s) {
                v.push((st, n));
            }
        }
        Ok(v)
    }

    /// When the recovery loop next has work: the earliest `next_at_ms` of an open attempt
    /// (one without a time is due now), or now when a refund, an offline deduction or a
    /// pre-authorisation operation is open; `None` when nothing is. Every part is an index
    /// lookup over open rows, so an idle daemon's cost does not grow with the journal.
    pub fn recovery_due(&self, now_ms: i64) -> Result<Option<i64>, JournalError> {
        let attempts: Option<i64> = self
            .conn
            .prepare_cached(SQL_RECOVERY_DUE_ATTEMPTS)?
            .query_row([], |r| r.get(0))?;
        let other: bool = self
            .conn
            .prepare_cached(SQL_RECOVERY_DUE_OTHER)?
            .query_row([], |r| r.get(0))?;
        Ok(if other { Some(now_ms) } else { attempts })
    }

    /// The sum of amounts whose outcome is not yet known, and the oldest such attempt's age.
    pub fn uncertain(&self) -> Result<(usize, Amount, Option<i64>), JournalError> {
        let (n, sum, oldest): (i64, Option<i64>, Option<i64>) = self
            .conn
            .prepare_cached(SQL_OPEN_EXPOSURE)?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok((
            n as usize,
            Amount::from_fen(sum.unwrap_or(0) as u64),
            oldest,
        ))
    }

    // ---- refunds ----

    /// Journals a refund before it is sent. Refuses it locally when it would exceed what was paid
    /// minus every refund that is done or may still complete.
    pub fn refund_intent(
        &mut self,
        attempt_id: i64,
        out_refund_no: &str,
        amount: Amount,
        kind: &str,
        now_ms: i64,
    ) -> Result<RefundRow, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<(i64, i64, i64)> = tx
            .prepare_cached(SQL_REFUND_BY_NO)?
            .query_row(params![out_refund_no], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        if let Some((id, att, fen)) = existing {
            // The same number for the same refund is a retry, which the gateway treats as one.
            if att == attempt_id && fen as u64 == amount.fen() {
                drop(tx);
                return self.refund(id);
            }
            return Err(JournalError::RefundNumberReused(out_refund_no.to_string()));
        }
        let (paid, state, order): (i64, String, String) = tx
            .prepare_cached(
                "SELECT amount_fen, state, order_id FROM attempts WHERE attempt_id = ?1",
            )?
            .query_row(params![attempt_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?
            .ok_or_else(|| JournalError::NotFound(attempt_id.to_string()))?;
        // Decided inside the transaction that writes the intent: a cancel committed a moment
        // ago (another thread or process) has already fenced the order, and a refund beside
        // it would be a second return of the same money.
        if kind == "manual" && state != AttemptState::Paid.as_str() {
            return Err(JournalError::RefundNotPaid { order, state });
        }
        let taken: i64 = tx
            .prepare_cached(SQL_REFUNDED_SUM)?
            .query_row(params![attempt_id], |r| r.get(0))?;
        let left = paid - taken;
        if amount.fen() as i64 > left {
            return Err(JournalError::RefundTooLarge {
                asked: amount,
                paid: Amount::from_fen(paid as u64),
                taken: Amount::from_fen(taken as u64),
                left: Amount::from_fen(left.max(0) as u64),
            });
        }
        tx.prepare_cached(SQL_INSERT_REFUND)?.execute(params![
            out_refund_no,
            attempt_id,
            amount.fen() as i64,
            kind,
            now_ms
        ])?;
        let id = tx.last_insert_rowid();
        // A cancel that read the attempt before this refund now fails its version check.
        tx.prepare_cached("UPDATE attempts SET state_ver = state_ver + 1 WHERE attempt_id = ?1")?
            .execute(params![attempt_id])?;
        tx.prepare_cached(SQL_EVENT_REFUND_CREATED)?
            .execute(params![
                attempt_id,
                now_ms,
                out_refund_no,
                format!("{kind} refund of {amount} yuan journaled")
            ])?;
        tx.commit()?;
        self.refund(id)
    }

    /// Records a refund's new state, if it is still in `expected` (compare-and-set: claims are
    /// per process, and another process may have settled it meanwhile).
    pub fn update_refund(
        &mut self,
        refund_id: i64,
        expected: RefundState,
        state: RefundState,
        chan_refund_no: Option<&str>,
        note: &str,
        now_ms: i64,
    ) -> Result<RefundRow, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<String> = tx
            .prepare_cached("SELECT state FROM refunds WHERE refund_id = ?1")?
            .query_row(params![refund_id], |r| r.get(0))
            .optional()?;
        match current {
            None => return Err(JournalError::NotFound(refund_id.to_string())),
            Some(c) if c != expected.as_str() => return Err(JournalError::Conflict),
            Some(_) => {}
        }
        tx.prepare_cached(SQL_UPDATE_REFUND)?.execute(params![
            refund_id,
            state.as_str(),
            chan_refund_no,
            note,
            now_ms
        ])?;
        tx.prepare_cached(SQL_EVENT_REFUND_STEP)?.execute(params![
            refund_id,
            now_ms,
            format!("refund {}: {note}", state.as_str())
        ])?;
        tx.commit()?;
        self.refund(refund_id)
    }

    pub fn refund(&self, refund_id: i64) -> Result<RefundRow, JournalError> {
        self.conn
            .prepare_cached(SQL_REFUND_BY_ID)?
            .query_row(params![refund_id], row_to_refund)
            .optional()?
            .ok_or_else(|| JournalError::NotFound(refund_id.to_string()))
    }

    pub fn refund_by_no(&self, out_refund_no: &str) -> Result<Option<RefundRow>, JournalError> {
        Ok(self
            .conn
            .prepare_cached(SQL_REFUND_BY_OUT_NO)?
            .query_row(params![out_refund_no], row_to_refund)
            .optional()?)
    }

    pub fn refunds_for(&self, attempt_id: i64) -> Result<Vec<RefundRow>, JournalError> {
        let mut st = self.conn.prepare_cached(
            "SELECT refund_id, out_refund_no, attempt_id, amount_fen, kind, state, created_ms, updated_ms, chan_refund_no, note FROM refunds WHERE attempt_id = ?1 ORDER BY refund_id",
        )?;
        let rows = st.query_map(params![attempt_id], row_to_refund)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Refunds whose outcome is not yet known, oldest first.
    pub fn open_refunds(&self) -> Result<Vec<RefundRow>, JournalError> {
        let mut st = self.conn.prepare_cached(
            "SELECT refund_id, out_refund_no, attempt_id, amount_fen, kind, state, created_ms, updated_ms, chan_refund_no, note FROM refunds WHERE kind = 'manual' AND state IN ('INTENT','PROCESSING','UNKNOWN') ORDER BY refund_id",
        )?;
        let rows = st.query_map([], row_to_refund)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    // ---- notifications ----

    /// Records a notification by its digest. Returns false when it was seen before.
    pub fn record_notification(
        &mut self,
        gateway: &str,
        out_trade_no: &str,
        digest: &str,
        outcome: &str,
        now_ms: i64,
    ) -> Result<bool, JournalError> {
        let n = self
            .conn
            .prepare_cached(SQL_INSERT_NOTIFICATION)?
            .execute(params![now_ms, gateway, out_trade_no, digest, outcome])?;
        Ok(n == 1)
    }

    /// Every attempt with its history and refunds, one JSON object per line.
    pub fn export_jsonl(&self, out: &mut dyn std::io::Write) -> Result<usize, JournalError> {
        let all = self.list(&ListFilter::default())?;
        for a in &all {
            let line = serde_json::json!({
                "attempt": a,
                "history": self.history(a.attempt_id)?,
                "refunds": self.refunds_for(a.attempt_id)?,
            });
            let _ = writeln!(out, "{line}");
        }
        // The pre-authorisation family's operations follow, one line each, keyed `preauth`.
        let ops = self.preauth_list(&ListFilter::default())?;
        for p in &ops {
            let line = serde_json::json!({
                "preauth": p,
                "history": self.preauth_history(p.op_id)?,
            });
            let _ = writeln!(out, "{line}");
        }
        Ok(all.len() + ops.len())
    }
}

/// What [`salvage`] saved from a damaged journal.
#[derive(Clone, Debug, Serialize)]
pub struct Salvage {
    /// A byte-for-byte copy of the damaged file (and its WAL), kept for a person or `.recover`.
    pub copy: PathBuf,
    /// The unsettled attempts that could still be read, one JSON object per line.
    pub export: PathBuf,
    pub open_attempts: usize,
    pub unreadable: Option<String>,
}

/// Safe mode's first aid for a journal that failed its integrity check: copies the file aside
/// untouched, then reads whatever unsettled attempts it still can (read-only) into a JSON-lines
/// export, so a person can settle them with the gateways' query tools. The original is left as
/// it is; nothing is repaired or deleted here.
pub fn salvage(path: &Path, now_ms: i64) -> Result<Salvage, JournalError> {
    let stamp = crate::util::beijing_stamp(now_ms);
    let copy = path.with_extension(format!("damaged-{stamp}.db"));
    std::fs::copy(path, &copy).map_err(|e| JournalError::Damaged {
        path: path.display().to_string(),
        detail: format!("could not copy it aside: {e}"),
    })?;
    for ext in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{ext}", path.display()));
        if side.exists() {
            let _ = std::fs::copy(&side, format!("{}{ext}", copy.display()));
        }
    }
    let export = path.with_extension(format!("open-attempts-{stamp}.jsonl"));
    let mut out = String::new();
    let mut n = 0;
    let mut unreadable = None;
    let read = (|| -> rusqlite::Result<()> {
        let conn = Connection::open_with_flags(&copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut st = conn.prepare(
            "SELECT order_id, out_trade_no, gateway, wallet, amount_fen, state, chan_txn_time, created_ms, code_mask FROM attempts WHERE state NOT IN ('PAID','FAILED','REVERSED')",
        )?;
        let mut rows = st.query([])?;
        loop {
            match rows.next() {
                Ok(Some(r)) => {
                    let v = serde_json::json!({
                        "order_id": r.get::<_, String>(0).unwrap_or_default(),
                        "out_trade_no": r.get::<_, String>(1).unwrap_or_default(),
                        "gateway": r.get::<_, String>(2).unwrap_or_default(),
                        "wallet": r.get::<_, Option<String>>(3).unwrap_or_default(),
                        "amount_fen": r.get::<_, i64>(4).unwrap_or_default(),
                        "state": r.get::<_, String>(5).unwrap_or_default(),
                        "chan_txn_time": r.get::<_, String>(6).unwrap_or_default(),
                        "created_ms": r.get::<_, i64>(7).unwrap_or_default(),
                        "code": r.get::<_, Option<String>>(8).unwrap_or_default(),
                    });
                    out.push_str(&v.to_string());
                    out.push('\n');
                    n += 1;
                }
                Ok(None) => return Ok(()),
                // A damaged page: keep what was read so far.
                Err(e) => return Err(e),
            }
        }
    })();
    if let Err(e) = read {
        unreadable = Some(e.to_string());
    }
    // Unresolved pre-authorisation operations too (journals before migration 3 have none).
    if unreadable.is_none() {
        let read = (|| -> rusqlite::Result<()> {
            let conn =
                Connection::open_with_flags(&copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            let mut st = conn.prepare(
                "SELECT request_no, gateway, operation, amount_fen, state, created_ms, target, chan_txn_time FROM preauth_ops WHERE state IN ('INTENT','UNKNOWN','REVIEW')",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let v = serde_json::json!({"preauth": {
                    "request_no": r.get::<_, String>(0).unwrap_or_default(),
                    "gateway": r.get::<_, String>(1).unwrap_or_default(),
                    "operation": r.get::<_, String>(2).unwrap_or_default(),
                    "amount_fen": r.get::<_, i64>(3).unwrap_or_default(),
                    "state": r.get::<_, String>(4).unwrap_or_default(),
                    "created_ms": r.get::<_, i64>(5).unwrap_or_default(),
                    "target": r.get::<_, String>(6).unwrap_or_default(),
                    "chan_txn_time": r.get::<_, String>(7).unwrap_or_default(),
                }});
                out.push_str(&v.to_string());
                out.push('\n');
                n += 1;
            }
            Ok(())
        })();
        if let Err(e) = read
            && !e.to_string().contains("no such table")
        {
            unreadable = Some(e.to_string());
        }
    }
    std::fs::write(&export, out).map_err(|e| JournalError::Damaged {
        path: path.display().to_string(),
        detail: format!("could not write the export: {e}"),
    })?;
    Ok(Salvage {
        copy,
        export,
        open_attempts: n,
        unreadable,
    })
}

/// No checkpoint when a connection closes. Each short-lived `payterm` command would otherwise
/// checkpoint and delete the WAL (two fsyncs) and the next one re-create it (a directory and a
/// header fsync): six fsyncs per payment instead of its two commits. Commits stay durable (the
/// WAL is synced at each one) and the automatic checkpoint still runs every
/// `wal_autocheckpoint` pages.
fn no_checkpoint_on_close(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    Ok(())
}

fn row_to_attempt(r: &Row<'_>) -> rusqlite::Result<AttemptRow> {
    let state: String = r.get(12)?;
    let method: String = r.get(3)?;
    let wallet: Option<String> = r.get(4)?;
    let fence: String = r.get(23)?;
    let action: Option<String> = r.get(25)?;
    let details: Option<String> = r.get(30)?;
    let bad = |what: &str, v: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown {what} {v:?} in the journal").into(),
        )
    };
    let machine = Attempt {
        state: AttemptState::parse(&state).ok_or_else(|| bad("state", &state))?,
        created_ms: r.get(14)?,
        deadline_ms: r.get(15)?,
        reverse_from_ms: r.get(16)?,
        reverse_until_ms: r.get(17)?,
        review_at_ms: r.get(18)?,
        pay_sent: false,
        queries: r.get(19)?,
        reverse_tries: r.get(20)?,
        saf_tries: r.get(21)?,
        next_at_ms: r.get(22)?,
        fence: Fence::parse(&fence).ok_or_else(|| bad("fence", &fence))?,
        window_closed: r.get(24)?,
        reverse_action: action.as_deref().and_then(ReverseAction::parse),
        sent_ms: r.get(31)?,
        contact_ms: r.get(32)?,
        confirming: r.get(33)?,
    };
    Ok(AttemptRow {
        attempt_id: r.get(0)?,
        order_id: r.get(1)?,
        gateway: r.get(2)?,
        method: Method::parse(&method).ok_or_else(|| bad("method", &method))?,
        wallet: wallet.as_deref().and_then(Wallet::from_paytype),
        out_trade_no: r.get(5)?,
        amount: Amount::from_fen(r.get::<_, i64>(6)? as u64),
        code_fp: r.get(7)?,
        code_mask: r.get(8)?,
        chan_txn_time: r.get(9)?,
        chan_trade_no: r.get(10)?,
        code_url: r.get(11)?,
        version: r.get(13)?,
        machine,
        last_note: r.get(26)?,
        alarm: r.get(27)?,
        updated_ms: r.get(28)?,
        final_ms: r.get(29)?,
        details: details
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or_default(),
    })
}

fn row_to_refund(r: &Row<'_>) -> rusqlite::Result<RefundRow> {
    Ok(RefundRow {
        refund_id: r.get(0)?,
        out_refund_no: r.get(1)?,
        attempt_id: r.get(2)?,
        amount: Amount::from_fen(r.get::<_, i64>(3)? as u64),
        kind: r.get(4)?,
        state: RefundState::parse(&r.get::<_, String>(5)?),
        created_ms: r.get(6)?,
        updated_ms: r.get(7)?,
        chan_refund_no: r.get(8)?,
        note: r.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::machine;
    use crate::core::policy::Policy;

    #[test]
    fn processes_opening_a_new_journal_at_once_all_get_it() {
        // The soak's workers and a CLI beside a starting daemon do this; switching the new
        // file to WAL may answer "busy" at once, which open must ride out.
        for _ in 0..200 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("race.db");
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let p = path.clone();
                    std::thread::spawn(move || Journal::open(&p).map(|_| ()))
                })
                .collect();
            for t in threads {
                t.join().unwrap().expect("every opener gets the journal");
            }
        }
    }

    const T0: i64 = 1_795_312_800_000;

    fn journal() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        (dir, j)
    }

    fn new(order: &str, no: &str, fp: Option<&str>) -> NewAttempt {
        NewAttempt {
            order_id: order.into(),
            gateway: "aggregator".into(),
            method: Method::Code,
            wallet: Some(Wallet::Wechat),
            out_trade_no: no.into(),
            amount: Amount::from_fen(1000),
            code_fp: fp.map(str::to_string),
            code_mask: Some("1345**********6789".into()),
            chan_txn_time: "20261122100000".into(),
            machine: Attempt::new(&Policy::aggregator(), T0),
            details: OrderDetails::default(),
        }
    }

    fn to_state(
        j: &mut Journal,
        row: &AttemptRow,
        s: AttemptState,
    ) -> Result<AttemptRow, JournalError> {
        commit_state(j, row, s, T0)
    }

    fn commit_state(
        j: &mut Journal,
        row: &AttemptRow,
        s: AttemptState,
        at: i64,
    ) -> Result<AttemptRow, JournalError> {
        let mut m = row.machine.clone();
        m.state = s;
        let step = machine::Step {
            attempt: m,
            note: "test".into(),
            alarm: false,
        };
        j.commit_step(
            row.attempt_id,
            row.version,
            &step,
            &StepExtra::default(),
            at,
        )
    }

    fn to_state_at(j: &mut Journal, row: &AttemptRow, s: AttemptState, at: i64) -> AttemptRow {
        commit_state(j, row, s, at).expect("commit")
    }

    #[test]
    fn prune_archives_settled_old_orders_and_keeps_every_open_review_or_recent_one() {
        const DAY: i64 = 86_400_000;
        let (dir, mut j) = journal();
        let recent = T0 + 10 * DAY;
        let settle = |j: &mut Journal, order: &str, no: &str, s: AttemptState, at: i64| {
            let a = j.insert_attempt(&new(order, no, None), at, 0).unwrap();
            to_state_at(j, &a, s, at)
        };
        // Pruned: old and settled, as a whole order (a reversed attempt, then the paid one).
        settle(&mut j, "OLD-PAID", "N1", AttemptState::Paid, T0);
        settle(&mut j, "OLD-TWO", "N2", AttemptState::Reversed, T0);
        settle(&mut j, "OLD-TWO", "N3", AttemptState::Paid, T0);
        settle(&mut j, "OLD-FAILED", "N4", AttemptState::Failed, T0);
        // Kept: in review, open, paid with a refund still open, recent, and an order whose
        // newer attempt is recent.
        settle(&mut j, "REVIEW", "N5", AttemptState::ManualReview, T0);
        settle(&mut j, "OPEN", "N6", AttemptState::Querying, T0);
        let paid = settle(&mut j, "REFUNDING", "N7", AttemptState::Paid, T0);
        j.refund_intent(paid.attempt_id, "N7R1", Amount::from_fen(100), "manual", T0)
            .unwrap();
        settle(&mut j, "RECENT", "N8", AttemptState::Paid, recent);
        settle(&mut j, "MIXED", "N9", AttemptState::Failed, T0);
        settle(&mut j, "MIXED", "N10", AttemptState::Paid, recent);
        // The grant refuses an unsettled attempt, and ordinary code still cannot delete history.
        let open_id = j.by_order("OPEN").unwrap()[0].attempt_id;
        assert!(
            j.conn
                .execute("INSERT INTO prune_grant(attempt_id) VALUES (?1)", [open_id])
                .is_err()
        );
        assert!(j.conn.execute("DELETE FROM events", []).is_err());
        assert!(j.conn.execute("DELETE FROM attempts", []).is_err());
        assert!(j.conn.execute("DELETE FROM refunds", []).is_err());

        let r = j.prune(T0 + DAY, recent).unwrap();
        assert_eq!((r.orders, r.attempts), (3, 4));
        for o in ["OLD-PAID", "OLD-TWO", "OLD-FAILED"] {
            assert!(j.by_order(o).unwrap().is_empty(), "{o} pruned");
        }
        for o in ["REVIEW", "OPEN", "REFUNDING", "RECENT", "MIXED"] {
            assert!(!j.by_order(o).unwrap().is_empty(), "{o} kept");
        }
        assert_eq!(j.by_order("MIXED").unwrap().len(), 2);
        assert_eq!(j.refunds_for(paid.attempt_id).unwrap().len(), 1);
        // What was removed is in the archive beside the journal, history included.
        assert_eq!(r.archive, dir.path().join("j.archive.jsonl"));
        let text = std::fs::read_to_string(&r.archive).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        let two = lines.iter().find(|l| l["order_id"] == "OLD-TWO").unwrap();
        assert_eq!(two["attempts"].as_array().unwrap().len(), 2);
        assert!(!two["attempts"][0]["history"].as_array().unwrap().is_empty());
        assert!(!text.contains("code_fp"));
        // The grant is empty again, the journal is whole, and a second prune finds nothing.
        let granted: i64 = j
            .conn
            .query_row("SELECT COUNT(*) FROM prune_grant", [], |r| r.get(0))
            .unwrap();
        assert_eq!(granted, 0);
        assert_eq!(j.integrity_check().unwrap(), "ok");
        let fk: Option<String> = j
            .conn
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .unwrap();
        assert_eq!(fk, None);
        assert_eq!(j.prune(T0 + DAY, recent).unwrap().orders, 0);
    }

    #[test]
    fn a_pool_lends_kept_connections_and_takes_them_back() {
        let (dir, _j) = journal();
        let pool = Pool::new(&dir.path().join("j.db"), 2);
        let (a, b, c) = (
            pool.get().unwrap(),
            pool.get().unwrap(),
            pool.get().unwrap(),
        );
        assert_eq!(pool.idle(), 0);
        drop((a, b, c));
        assert_eq!(pool.idle(), 2, "the surplus is closed");
        let j = pool.get().unwrap();
        assert_eq!(pool.idle(), 1);
        assert!(j.uncertain().is_ok());
    }

    #[test]
    fn opens_in_wal_full_and_migrates_once() {
        let (dir, j) = journal();
        assert_eq!(j.schema_version().unwrap(), schema::MIGRATIONS.len() as i64);
        let sync: i64 = j
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        drop(j);
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        assert_eq!(j.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn storage_refuses_a_second_open_or_paid_attempt() {
        let (_d, mut j) = journal();
        let a = j
            .insert_attempt(&new("O1", "N1", None), T0, 120_000)
            .unwrap();
        assert!(matches!(
            j.insert_attempt(&new("O1", "N2", None), T0, 120_000),
            Err(JournalError::OpenAttempt { .. })
        ));
        // Fenced: a new attempt is allowed.
        let a = to_state(&mut j, &a, AttemptState::ReverseIntent).unwrap();
        let b = j
            .insert_attempt(&new("O1", "N2", None), T0, 120_000)
            .unwrap();
        let _b = to_state(&mut j, &b, AttemptState::Paid).unwrap();
        assert!(matches!(
            j.insert_attempt(&new("O1", "N3", None), T0, 120_000),
            Err(JournalError::AlreadyPaid { .. })
        ));
        // Even bypassing the checks, the index forbids a second PAID on the order.
        assert!(to_state(&mut j, &a, AttemptState::Paid).is_err());
    }

    #[test]
    fn duplicate_scan_within_the_window_is_refused() {
        let (_d, mut j) = journal();
        j.insert_attempt(&new("O1", "N1", Some("fp")), T0, 120_000)
            .unwrap();
        let e = j
            .insert_attempt(&new("O2", "N2", Some("fp")), T0 + 5_000, 120_000)
            .unwrap_err();
        assert!(matches!(e, JournalError::DuplicateScan { secs: 5, .. }));
        assert!(!e.to_string().contains("134567890123456789"));
        j.insert_attempt(&new("O3", "N3", Some("fp")), T0 + 121_000, 120_000)
            .unwrap();
    }

    #[test]
    fn history_is_append_only_and_complete() {
        let (_d, mut j) = journal();
        let a = j
            .insert_attempt(&new("O1", "N1", None), T0, 120_000)
            .unwrap();
        let a = to_state(&mut j, &a, AttemptState::Querying).unwrap();
        to_state(&mut j, &a, AttemptState::Paid).unwrap();
        let h = j.history(a.attempt_id).unwrap();
        assert_eq!(
            h.iter().map(|e| e.to_state.as_str()).collect::<Vec<_>>(),
            ["PAY_INTENT", "QUERYING", "PAID"]
        );
        assert!(j.conn.execute("DELETE FROM events", []).is_err());
        assert!(j.conn.execute("UPDATE events SET note = 'x'", []).is_err());
    }

    #[test]
    fn stale_versions_conflict() {
        let (_d, mut j) = journal();
        let a = j
            .insert_attempt(&new("O1", "N1", None), T0, 120_000)
            .unwrap();
        to_state(&mut j, &a, AttemptState::Querying).unwrap();
        assert!(matches!(
            to_state(&mut j, &a, AttemptState::Paid),
            Err(JournalError::Conflict)
        ));
    }

    #[test]
    fn refunds_never_exceed_the_payment() {
        let (_d, mut j) = journal();
        let a = j
            .insert_attempt(&new("O1", "N1", None), T0, 120_000)
            .unwrap();
        // Only a paid order is refunded, and that is decided inside the refund's transaction.
        assert!(matches!(
            j.refund_intent(a.attempt_id, "R0", Amount::from_fen(1), "manual", T0),
            Err(JournalError::RefundNotPaid { .. })
        ));
        let a = to_state(&mut j, &a, AttemptState::Paid).unwrap();
        let r1 = j
            .refund_intent(a.attempt_id, "R1", Amount::from_fen(400), "manual", T0)
            .unwrap();
        j.refund_intent(a.attempt_id, "R2", Amount::from_fen(400), "manual", T0)
            .unwrap();
        let e = j
            .refund_intent(a.attempt_id, "R3", Amount::from_fen(201), "manual", T0)
            .unwrap_err();
        assert!(matches!(e, JournalError::RefundTooLarge { .. }), "{e}");
        // A failed refund gives its amount back.
        j.update_refund(
            r1.refund_id,
            RefundState::Intent,
            RefundState::Failed,
            None,
            "declined",
            T0,
        )
        .unwrap();
        // A second writer that read the refund before that change is refused.
        assert!(matches!(
            j.update_refund(
                r1.refund_id,
                RefundState::Intent,
                RefundState::Done,
                None,
                "late",
                T0
            ),
            Err(JournalError::Conflict)
        ));
        j.refund_intent(a.attempt_id, "R3", Amount::from_fen(600), "manual", T0)
            .unwrap();
        // The same number for another amount is refused; for the same one it is a retry.
        assert!(matches!(
            j.refund_intent(a.attempt_id, "R3", Amount::from_fen(1), "manual", T0),
            Err(JournalError::RefundNumberReused(_))
        ));
        assert_eq!(
            j.refund_intent(a.attempt_id, "R3", Amount::from_fen(600), "manual", T0)
                .unwrap()
                .out_refund_no,
            "R3"
        );
    }

    #[test]
    fn order_amount_cannot_change() {
        let (_d, mut j) = journal();
        j.insert_attempt(&new("O1", "N1", None), T0, 120_000)
            .unwrap();
        let mut other = new("O1", "N2", None);
        other.amount = Amount::from_fen(1);
        assert!(matches!(
            j.insert_attempt(&other, T0, 120_000),
            Err(JournalError::AmountMismatch { .. })
        ));
    }

    #[test]
    fn a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.db");
        std::fs::write(
            &p,
            b"this is not a database, just bytes that look nothing like one",
        )
        .unwrap();
        assert!(Journal::open(&p).is_err());
    }
}
