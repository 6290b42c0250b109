//! The journal's table for the pre-authorisation family (migration 3): ChinaUMS bills 预授权撤销 /
//! 预授权完成 / 预授权完成撤销 and UnionPay ACP pre-auth (02), its undo (32), completion (03) and
//! completion undo (33).
//!
//! Each operation is one `preauth_ops` row under our request number, written in state INTENT and
//! committed (WAL, `synchronous=FULL`) before the request leaves the terminal, then moved to DONE,
//! FAILED, UNKNOWN (to resolve by a query) or REVIEW (a person decides), each move with a line in
//! the append-only `preauth_events`. Storage refuses what must be impossible: a second unresolved
//! operation on the same pre-authorisation (partial unique index), a change to what was sent, a
//! DONE or FAILED row that changes again, a deleted row, an edited or deleted history line
//! (triggers). No card number, payment code or key is stored: the target is the bill or original
//! transaction's reference, the scanned code only in its masked form. This file only stores; the
//! engine (engine::preauth) decides.

use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;
use serde_json::Value;

use super::{Journal, JournalError, ListFilter};
use crate::core::money::Amount;

/// Which operation of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreAuthOp {
    /// ACP 02/04: the pre-authorisation itself (the customer's code is scanned).
    PreAuth,
    /// ChinaUMS 预授权撤销, ACP 32: releases a pre-authorisation that was not completed.
    Cancel,
    /// ChinaUMS 预授权完成, ACP 03: takes an amount from the pre-authorisation.
    Complete,
    /// ChinaUMS 预授权完成撤销, ACP 33: gives a completion's money back.
    CompleteCancel,
}

impl PreAuthOp {
    pub fn as_str(self) -> &'static str {
        match self {
            PreAuthOp::PreAuth => "preauth",
            PreAuthOp::Cancel => "cancel",
            PreAuthOp::Complete => "complete",
            PreAuthOp::CompleteCancel => "complete_cancel",
        }
    }

    pub fn parse(s: &str) -> Option<PreAuthOp> {
        Some(match s {
            "preauth" => PreAuthOp::PreAuth,
            "cancel" => PreAuthOp::Cancel,
            "complete" => PreAuthOp::Complete,
            "complete_cancel" => PreAuthOp::CompleteCancel,
            _ => return None,
        })
    }

    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            PreAuthOp::PreAuth => "pre-authorisation",
            PreAuthOp::Cancel => "pre-authorisation cancel",
            PreAuthOp::Complete => "pre-authorisation completion",
            PreAuthOp::CompleteCancel => "completion cancel",
        }
    }
}

/// Where an operation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PreAuthState {
    /// Journaled before sending: it may or may not have been sent (never "not sent").
    Intent,
    /// The gateway confirmed it (final).
    Done,
    /// Definitely not applied: refused, or certainly never sent (final).
    Failed,
    /// Sent, outcome not known: resolved by the operation's query.
    Unknown,
    /// Automation cannot settle it: a person must (the note says why and what to check).
    Review,
}

impl PreAuthState {
    pub fn as_str(self) -> &'static str {
        match self {
            PreAuthState::Intent => "INTENT",
            PreAuthState::Done => "DONE",
            PreAuthState::Failed => "FAILED",
            PreAuthState::Unknown => "UNKNOWN",
            PreAuthState::Review => "REVIEW",
        }
    }

    pub fn parse(s: &str) -> Option<PreAuthState> {
        Some(match s {
            "INTENT" => PreAuthState::Intent,
            "DONE" => PreAuthState::Done,
            "FAILED" => PreAuthState::Failed,
            "UNKNOWN" => PreAuthState::Unknown,
            "REVIEW" => PreAuthState::Review,
            _ => return None,
        })
    }

    /// DONE or FAILED: never changes again.
    pub fn is_final(self) -> bool {
        matches!(self, PreAuthState::Done | PreAuthState::Failed)
    }

    /// INTENT or UNKNOWN: recovery must find out what happened.
    pub fn is_open(self) -> bool {
        matches!(self, PreAuthState::Intent | PreAuthState::Unknown)
    }
}

/// An operation as the engine journals it before sending.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPreAuth {
    /// Our request number: the ACP `orderId`; for ChinaUMS our own key for the request.
    pub request_no: String,
    /// `chinaums` or `acp`.
    pub gateway: String,
    pub operation: PreAuthOp,
    /// What the operation acts on, as JSON (bill reference, original transaction).
    pub target: Value,
    /// A canonical string of the target: at most one unresolved operation per target.
    pub target_key: String,
    /// The amount the request carries, fen (0 when it carries none).
    pub amount: Amount,
    /// The timestamp sent to the channel (ACP `txnTime`, needed to query it).
    pub chan_txn_time: String,
    /// The scanned code, masked (ACP 02 only).
    pub code_mask: Option<String>,
}

/// One operation as stored.
#[derive(Clone, Debug, Serialize)]
pub struct PreAuthRow {
    pub op_id: i64,
    pub request_no: String,
    pub gateway: String,
    pub operation: PreAuthOp,
    pub target: Value,
    pub target_key: String,
    pub amount: Amount,
    pub chan_txn_time: String,
    pub code_mask: Option<String>,
    pub state: PreAuthState,
    pub version: i64,
    /// The channel's reference once known (ACP `queryId`, ChinaUMS `targetOrderId`).
    pub chan_ref: Option<String>,
    /// Resolution queries sent so far.
    pub queries: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub final_ms: Option<i64>,
    pub last_note: String,
}

impl PreAuthRow {
    /// Whether `n` asks for the same operation as this row (a repeat of the same request).
    pub fn same_request(&self, n: &NewPreAuth) -> bool {
        self.gateway == n.gateway
            && self.operation == n.operation
            && self.target_key == n.target_key
            && self.amount == n.amount
    }
}

/// One line of an operation's history.
#[derive(Clone, Debug, Serialize)]
pub struct PreAuthEvent {
    pub seq: i64,
    pub op_id: i64,
    pub at_ms: i64,
    pub from_state: Option<String>,
    pub to_state: String,
    pub detail: String,
    pub note: String,
}

/// What [`Journal::preauth_intent`] found.
#[derive(Clone, Debug)]
pub enum Intent {
    /// Journaled now, in INTENT: the request may be sent.
    Created(PreAuthRow),
    /// The same request was journaled before under this number: nothing new was written.
    Repeated(PreAuthRow),
    /// The number was already used for a different operation: nothing was written.
    NumberReused(PreAuthRow),
    /// Another operation on the same target is still unresolved: nothing was written.
    Blocked(PreAuthRow),
}

/// A move of an operation, with what the history line says.
#[derive(Clone, Debug)]
pub struct PreAuthChange<'a> {
    pub to: PreAuthState,
    pub note: &'a str,
    /// The channel's words (codes, states), kept apart from our note.
    pub detail: &'a str,
    pub chan_ref: Option<&'a str>,
    /// A resolution query was sent for this change.
    pub queried: bool,
}

const COLS: &str = "op_id, request_no, gateway, operation, target, target_key, amount_fen, chan_txn_time, \
    code_mask, state, state_ver, chan_ref, queries, created_ms, updated_ms, final_ms, last_note";

fn row(r: &Row<'_>) -> rusqlite::Result<PreAuthRow> {
    let bad = |what: &str, v: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown {what} {v:?} in the journal").into(),
        )
    };
    let op: String = r.get(3)?;
    let state: String = r.get(9)?;
    let target: String = r.get(4)?;
    Ok(PreAuthRow {
        op_id: r.get(0)?,
        request_no: r.get(1)?,
        gateway: r.get(2)?,
        operation: PreAuthOp::parse(&op).ok_or_else(|| bad("operation", &op))?,
        target: serde_json::from_str(&target).unwrap_or(Value::String(target)),
        target_key: r.get(5)?,
        amount: Amount::from_fen(r.get::<_, i64>(6)?.max(0) as u64),
        chan_txn_time: r.get(7)?,
        code_mask: r.get(8)?,
        state: PreAuthState::parse(&state).ok_or_else(|| bad("state", &state))?,
        version: r.get(10)?,
        chan_ref: r.get(11)?,
        queries: r.get(12)?,
        created_ms: r.get(13)?,
        updated_ms: r.get(14)?,
        final_ms: r.get(15)?,
        last_note: r.get(16)?,
    })
}

impl Journal {
    /// Journals an operation in INTENT, durably, before it is sent — unless its request number
    /// is already known or its target has an unresolved operation (then nothing is written).
    pub fn preauth_intent(&mut self, n: &NewPreAuth, now_ms: i64) -> Result<Intent, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let known = tx
            .query_row(
                &format!("SELECT {COLS} FROM preauth_ops WHERE request_no = ?1"),
                params![n.request_no],
                row,
            )
            .optional()?;
        if let Some(r) = known {
            return Ok(if r.same_request(n) {
                Intent::Repeated(r)
            } else {
                Intent::NumberReused(r)
            });
        }
        let open = tx
            .query_row(
                &format!(
                    "SELECT {COLS} FROM preauth_ops WHERE gateway = ?1 AND target_key = ?2 AND state IN ('INTENT','UNKNOWN','REVIEW')"
                ),
                params![n.gateway, n.target_key],
                row,
            )
            .optional()?;
        if let Some(r) = open {
            return Ok(Intent::Blocked(r));
        }
        let note = "journaled before sending";
        tx.execute(
            "INSERT INTO preauth_ops(request_no, gateway, operation, target, target_key, amount_fen, chan_txn_time, \
             code_mask, state, created_ms, updated_ms, last_note) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,'INTENT',?9,?9,?10)",
            params![
                n.request_no,
                n.gateway,
                n.operation.as_str(),
                n.target.to_string(),
                n.target_key,
                n.amount.fen() as i64,
                n.chan_txn_time,
                n.code_mask,
                now_ms,
                note
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO preauth_events(op_id, at_ms, from_state, to_state, detail, note) VALUES (?1, ?2, NULL, 'INTENT', ?3, ?4)",
            params![
                id,
                now_ms,
                format!("{} {} yuan", n.operation.describe(), n.amount),
                note
            ],
        )?;
        tx.commit()?;
        Ok(Intent::Created(self.preauth(id)?))
    }

    /// Moves an operation (or records a query that left it where it was) with its history
    /// line, if nobody else moved it since `version`.
    pub fn preauth_commit(
        &mut self,
        op_id: i64,
        version: i64,
        c: &PreAuthChange<'_>,
        now_ms: i64,
    ) -> Result<PreAuthRow, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let from: Option<(String, i64)> = tx
            .query_row(
                "SELECT state, state_ver FROM preauth_ops WHERE op_id = ?1",
                params![op_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((from_state, ver)) = from else {
            return Err(JournalError::NotFound(op_id.to_string()));
        };
        if ver != version {
            return Err(JournalError::Conflict);
        }
        tx.execute(
            "UPDATE preauth_ops SET state = ?2, state_ver = state_ver + 1, chan_ref = COALESCE(?3, chan_ref), \
             queries = queries + ?4, updated_ms = ?5, final_ms = CASE WHEN ?6 THEN COALESCE(final_ms, ?5) ELSE final_ms END, \
             last_note = ?7 WHERE op_id = ?1",
            params![
                op_id,
                c.to.as_str(),
                c.chan_ref,
                c.queried as i64,
                now_ms,
                c.to.is_final(),
                c.note
            ],
        )?;
        tx.execute(
            "INSERT INTO preauth_events(op_id, at_ms, from_state, to_state, detail, note) VALUES (?1,?2,?3,?4,?5,?6)",
            params![op_id, now_ms, from_state, c.to.as_str(), c.detail, c.note],
        )?;
        tx.commit()?;
        self.preauth(op_id)
    }

    /// A person settles an operation in REVIEW (having asked the channel): DONE or FAILED,
    /// with their note in the history. Nothing else may be moved by hand.
    pub fn preauth_resolve(
        &mut self,
        request_no: &str,
        to: PreAuthState,
        note: &str,
        now_ms: i64,
    ) -> Result<PreAuthRow, JournalError> {
        let r = self
            .preauth_by_request_no(request_no)?
            .ok_or_else(|| JournalError::NotFound(request_no.to_string()))?;
        if r.state != PreAuthState::Review || !to.is_final() {
            return Err(JournalError::NotAllowed(format!(
                "{request_no} is {}; only an operation in REVIEW is settled by hand, to DONE or FAILED",
                r.state.as_str()
            )));
        }
        let note = format!("settled by a person: {note}");
        let c = PreAuthChange {
            to,
            note: &note,
            detail: "",
            chan_ref: None,
            queried: false,
        };
        self.preauth_commit(r.op_id, r.version, &c, now_ms)
    }

    pub fn preauth(&self, op_id: i64) -> Result<PreAuthRow, JournalError> {
        self.conn
            .query_row(
                &format!("SELECT {COLS} FROM preauth_ops WHERE op_id = ?1"),
                params![op_id],
                row,
            )
            .optional()?
            .ok_or_else(|| JournalError::NotFound(op_id.to_string()))
    }

    pub fn preauth_by_request_no(&self, no: &str) -> Result<Option<PreAuthRow>, JournalError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLS} FROM preauth_ops WHERE request_no = ?1"),
                params![no],
                row,
            )
            .optional()?)
    }

    /// Operations whose outcome recovery must find out (INTENT, UNKNOWN), oldest first.
    pub fn preauth_open(&self) -> Result<Vec<PreAuthRow>, JournalError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM preauth_ops WHERE state IN ('INTENT','UNKNOWN') ORDER BY created_ms, op_id"
        ))?;
        let rows = st.query_map([], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Operations for `journal list`, oldest first: `open` keeps INTENT and UNKNOWN; `review`
    /// keeps everything unresolved (INTENT, UNKNOWN and REVIEW); `date` a Beijing date.
    pub fn preauth_list(&self, f: &ListFilter) -> Result<Vec<PreAuthRow>, JournalError> {
        let mut sql = format!("SELECT {COLS} FROM preauth_ops WHERE 1=1");
        if f.review {
            sql.push_str(" AND state IN ('INTENT','UNKNOWN','REVIEW')");
        } else if f.open {
            sql.push_str(" AND state IN ('INTENT','UNKNOWN')");
        }
        sql.push_str(&format!(
            " ORDER BY op_id DESC LIMIT {}",
            f.limit.unwrap_or(1_000_000)
        ));
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map([], row)?;
        let mut v = rows.collect::<Result<Vec<_>, _>>()?;
        if let Some(d) = &f.date {
            v.retain(|r| crate::util::beijing_date(r.created_ms) == *d);
        }
        v.reverse();
        Ok(v)
    }

    pub fn preauth_history(&self, op_id: i64) -> Result<Vec<PreAuthEvent>, JournalError> {
        let mut st = self.conn.prepare(
            "SELECT seq, op_id, at_ms, from_state, to_state, detail, note FROM preauth_events WHERE op_id = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map(params![op_id], |r| {
            Ok(PreAuthEvent {
                seq: r.get(0)?,
                op_id: r.get(1)?,
                at_ms: r.get(2)?,
                from_state: r.get(3)?,
                to_state: r.get(4)?,
                detail: r.get(5)?,
                note: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_795_312_800_000;

    fn journal() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        (dir, j)
    }

    fn new(no: &str, bill: &str, op: PreAuthOp, fen: u64) -> NewPreAuth {
        NewPreAuth {
            request_no: no.into(),
            gateway: "chinaums".into(),
            operation: op,
            target: json!({"bill_no": bill, "bill_date": "2026-11-22"}),
            target_key: format!("bill:2026-11-22/{bill}"),
            amount: Amount::from_fen(fen),
            chan_txn_time: "2026-11-22 10:00:00".into(),
            code_mask: None,
        }
    }

    fn created(i: Intent) -> PreAuthRow {
        match i {
            Intent::Created(r) => r,
            other => panic!("not created: {other:?}"),
        }
    }

    fn change(to: PreAuthState) -> PreAuthChange<'static> {
        PreAuthChange {
            to,
            note: "test",
            detail: "",
            chan_ref: None,
            queried: false,
        }
    }

    #[test]
    fn an_operation_in_review_blocks_its_target_until_a_person_settles_it() {
        let (_dir, mut j) = journal();
        let r = created(
            j.preauth_intent(&new("PR1", "B7", PreAuthOp::Complete, 4200), T0)
                .unwrap(),
        );
        let r = j
            .preauth_commit(r.op_id, r.version, &change(PreAuthState::Unknown), T0 + 1)
            .unwrap();
        let r = j
            .preauth_commit(r.op_id, r.version, &change(PreAuthState::Review), T0 + 2)
            .unwrap();
        assert_eq!(r.state, PreAuthState::Review);
        // It may have moved money: nothing else goes out on that bill meanwhile.
        let next = new("PR2", "B7", PreAuthOp::CompleteCancel, 4200);
        assert!(matches!(
            j.preauth_intent(&next, T0 + 3).unwrap(),
            Intent::Blocked(b) if b.request_no == "PR1"
        ));
        // Only REVIEW is settled by hand, and only to a final state.
        assert!(matches!(
            j.preauth_resolve("PR1", PreAuthState::Unknown, "x", T0 + 4),
            Err(JournalError::NotAllowed(_))
        ));
        let done = j
            .preauth_resolve(
                "PR1",
                PreAuthState::Done,
                "bill shows COMPLETED 42.00 (ChinaUMS portal)",
                T0 + 5,
            )
            .unwrap();
        assert_eq!(done.state, PreAuthState::Done);
        let h = j.preauth_history(done.op_id).unwrap();
        assert!(
            h.last()
                .unwrap()
                .note
                .starts_with("settled by a person: bill shows")
        );
        assert!(matches!(
            j.preauth_resolve("PR1", PreAuthState::Failed, "changed my mind", T0 + 6),
            Err(JournalError::NotAllowed(_))
        ));
        assert!(matches!(
            j.preauth_intent(&next, T0 + 7).unwrap(),
            Intent::Created(_)
        ));
        assert!(matches!(
            j.preauth_resolve("NOPE", PreAuthState::Done, "x", T0),
            Err(JournalError::NotFound(_))
        ));
    }

    #[test]
    fn an_intent_is_durable_and_a_repeat_writes_nothing() {
        let (dir, mut j) = journal();
        let n = new("PA1", "B1", PreAuthOp::Complete, 4200);
        let r = created(j.preauth_intent(&n, T0).unwrap());
        assert_eq!(r.state, PreAuthState::Intent);
        assert_eq!(r.amount.fen(), 4200);
        assert_eq!(r.target["bill_no"], "B1");
        // Another connection (another process) sees it: it was committed.
        let other = Journal::connect(&dir.path().join("j.db")).unwrap();
        let seen = other.preauth_by_request_no("PA1").unwrap().unwrap();
        assert_eq!(seen.state, PreAuthState::Intent);
        // The same request again: the row as it is, nothing new.
        match j.preauth_intent(&n, T0 + 5).unwrap() {
            Intent::Repeated(x) => assert_eq!(x.op_id, r.op_id),
            other => panic!("{other:?}"),
        }
        // The same number for another amount: refused, nothing written.
        match j
            .preauth_intent(&new("PA1", "B1", PreAuthOp::Complete, 4300), T0)
            .unwrap()
        {
            Intent::NumberReused(x) => assert_eq!(x.amount.fen(), 4200),
            other => panic!("{other:?}"),
        }
        assert_eq!(j.preauth_history(r.op_id).unwrap().len(), 1);
        assert_eq!(j.preauth_list(&ListFilter::default()).unwrap().len(), 1);
    }

    #[test]
    fn one_unresolved_operation_per_target() {
        let (_d, mut j) = journal();
        let a = created(
            j.preauth_intent(&new("PA1", "B1", PreAuthOp::Complete, 4200), T0)
                .unwrap(),
        );
        // A second operation on the same bill waits for the first to be resolved.
        let cancel = new("PA2", "B1", PreAuthOp::Cancel, 0);
        match j.preauth_intent(&cancel, T0).unwrap() {
            Intent::Blocked(x) => assert_eq!(x.request_no, "PA1"),
            other => panic!("{other:?}"),
        }
        // Even if the engine asked storage directly, the index refuses it.
        let raw = j.conn.execute(
            "INSERT INTO preauth_ops(request_no, gateway, operation, target, target_key, amount_fen, chan_txn_time, state, created_ms, updated_ms) \
             VALUES ('X', 'chinaums', 'cancel', '{}', 'bill:2026-11-22/B1', 0, '', 'UNKNOWN', 0, 0)",
            [],
        );
        assert!(raw.is_err());
        // Another bill is independent.
        created(
            j.preauth_intent(&new("PA3", "B2", PreAuthOp::Cancel, 0), T0)
                .unwrap(),
        );
        let u = j
            .preauth_commit(a.op_id, a.version, &change(PreAuthState::Unknown), T0 + 1)
            .unwrap();
        assert!(matches!(
            j.preauth_intent(&cancel, T0).unwrap(),
            Intent::Blocked(_)
        ));
        j.preauth_commit(u.op_id, u.version, &change(PreAuthState::Done), T0 + 2)
            .unwrap();
        created(j.preauth_intent(&cancel, T0 + 3).unwrap());
    }

    #[test]
    fn states_move_with_their_history_and_final_states_stay() {
        let (_d, mut j) = journal();
        let r = created(
            j.preauth_intent(&new("PA1", "B1", PreAuthOp::Complete, 4200), T0)
                .unwrap(),
        );
        let u = j
            .preauth_commit(
                r.op_id,
                r.version,
                &PreAuthChange {
                    to: PreAuthState::Unknown,
                    note: "no reply",
                    detail: "timeout",
                    chan_ref: None,
                    queried: false,
                },
                T0 + 800,
            )
            .unwrap();
        assert_eq!(u.state, PreAuthState::Unknown);
        assert_eq!(u.last_note, "no reply");
        assert!(u.final_ms.is_none());
        // A stale version is refused.
        assert!(matches!(
            j.preauth_commit(r.op_id, r.version, &change(PreAuthState::Done), T0),
            Err(JournalError::Conflict)
        ));
        let d = j
            .preauth_commit(
                u.op_id,
                u.version,
                &PreAuthChange {
                    to: PreAuthState::Done,
                    note: "the query shows it completed",
                    detail: "billStatus PAID",
                    chan_ref: Some("T123"),
                    queried: true,
                },
                T0 + 5_000,
            )
            .unwrap();
        assert_eq!(d.state, PreAuthState::Done);
        assert_eq!(d.final_ms, Some(T0 + 5_000));
        assert_eq!(d.chan_ref.as_deref(), Some("T123"));
        assert_eq!(d.queries, 1);
        let h = j.preauth_history(d.op_id).unwrap();
        let moves: Vec<_> = h
            .iter()
            .map(|e| (e.from_state.clone(), e.to_state.clone()))
            .collect();
        assert_eq!(
            moves,
            vec![
                (None, "INTENT".to_string()),
                (Some("INTENT".into()), "UNKNOWN".into()),
                (Some("UNKNOWN".into()), "DONE".into()),
            ]
        );
        // DONE never changes again, even by direct SQL.
        assert!(
            j.preauth_commit(d.op_id, d.version, &change(PreAuthState::Failed), T0)
                .is_err()
        );
        assert!(
            j.conn
                .execute("UPDATE preauth_ops SET state = 'UNKNOWN'", [])
                .is_err()
        );
        assert_eq!(
            j.preauth(d.op_id).unwrap().state,
            PreAuthState::Done,
            "the refused change left it as it was"
        );
    }

    #[test]
    fn history_and_what_was_sent_are_append_only() {
        let (_d, mut j) = journal();
        let r = created(
            j.preauth_intent(&new("PA1", "B1", PreAuthOp::Complete, 4200), T0)
                .unwrap(),
        );
        for sql in [
            "UPDATE preauth_events SET note = 'rewritten'",
            "DELETE FROM preauth_events",
            "DELETE FROM preauth_ops",
            "UPDATE preauth_ops SET amount_fen = 1",
            "UPDATE preauth_ops SET target_key = 'elsewhere'",
            "UPDATE preauth_ops SET request_no = 'PA9'",
        ] {
            assert!(j.conn.execute(sql, []).is_err(), "{sql} was allowed");
        }
        let same = j.preauth(r.op_id).unwrap();
        assert_eq!(same.amount.fen(), 4200);
        assert_eq!(j.preauth_history(r.op_id).unwrap()[0].note, r.last_note);
        // REVIEW can still be settled (by a later query or a person).
        let v = j
            .preauth_commit(r.op_id, r.version, &change(PreAuthState::Review), T0 + 1)
            .unwrap();
        let d = j
            .preauth_commit(v.op_id, v.version, &change(PreAuthState::Done), T0 + 2)
            .unwrap();
        assert_eq!(d.state, PreAuthState::Done);
    }

    #[test]
    fn listings_filter_what_needs_attention() {
        let (_d, mut j) = journal();
        let mut rows = vec![];
        for (i, to) in [
            None,
            Some(PreAuthState::Unknown),
            Some(PreAuthState::Review),
            Some(PreAuthState::Done),
            Some(PreAuthState::Failed),
        ]
        .into_iter()
        .enumerate()
        {
            let r = created(
                j.preauth_intent(
                    &new(&format!("PA{i}"), &format!("B{i}"), PreAuthOp::Cancel, 0),
                    T0 + i as i64,
                )
                .unwrap(),
            );
            let r = match to {
                Some(s) => j
                    .preauth_commit(r.op_id, r.version, &change(s), T0 + 10)
                    .unwrap(),
                None => r,
            };
            rows.push(r);
        }
        let states = |f: ListFilter| -> Vec<PreAuthState> {
            j.preauth_list(&f)
                .unwrap()
                .iter()
                .map(|r| r.state)
                .collect()
        };
        assert_eq!(states(ListFilter::default()).len(), 5);
        assert_eq!(
            states(ListFilter {
                open: true,
                ..Default::default()
            }),
            vec![PreAuthState::Intent, PreAuthState::Unknown]
        );
        assert_eq!(
            states(ListFilter {
                review: true,
                ..Default::default()
            }),
            vec![
                PreAuthState::Intent,
                PreAuthState::Unknown,
                PreAuthState::Review
            ]
        );
        assert_eq!(
            j.preauth_open()
                .unwrap()
                .iter()
                .map(|r| r.request_no.as_str())
                .collect::<Vec<_>>(),
            vec!["PA0", "PA1"]
        );
        assert_eq!(
            states(ListFilter {
                date: Some("1999-01-01".into()),
                ..Default::default()
            }),
            vec![]
        );
    }
}
