//! The journal's schema and its migrations, applied in order inside one transaction each.
//!
//! Two partial unique indexes make "paid twice" and "two live attempts on one order" impossible in
//! storage, not merely unlikely; triggers make the history append-only. A migration never drops a
//! column that holds an open attempt's data.

/// Each entry moves the schema from version `index` to `index + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: orders, attempts, their history, refunds, notifications.
    r#"
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE orders(
    order_id    TEXT PRIMARY KEY,
    amount_fen  INTEGER NOT NULL CHECK (amount_fen > 0),
    created_ms  INTEGER NOT NULL,
    details     TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE attempts(
    attempt_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id        TEXT NOT NULL REFERENCES orders(order_id),
    gateway         TEXT NOT NULL,
    method          TEXT NOT NULL CHECK (method IN ('code','face','qr')),
    wallet          TEXT,
    out_trade_no    TEXT NOT NULL UNIQUE,
    amount_fen      INTEGER NOT NULL CHECK (amount_fen > 0),
    code_fp         TEXT,
    code_mask       TEXT,
    chan_txn_time   TEXT NOT NULL,
    chan_trade_no   TEXT,
    code_url        TEXT,
    state           TEXT NOT NULL CHECK (state IN ('PAY_INTENT','QUERYING','PAID','FAILED',
                        'REVERSE_INTENT','REVERSED','SAF_PENDING','MANUAL_REVIEW')),
    state_ver       INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    deadline_ms     INTEGER NOT NULL,
    reverse_from_ms INTEGER NOT NULL,
    reverse_until_ms INTEGER,
    review_at_ms    INTEGER NOT NULL,
    queries         INTEGER NOT NULL DEFAULT 0,
    reverse_tries   INTEGER NOT NULL DEFAULT 0,
    saf_tries       INTEGER NOT NULL DEFAULT 0,
    next_at_ms      INTEGER,
    fence           TEXT NOT NULL DEFAULT 'cancel' CHECK (fence IN ('cancel','refund')),
    window_closed   INTEGER NOT NULL DEFAULT 0,
    reverse_action  TEXT CHECK (reverse_action IN ('close','refund')),
    last_note       TEXT NOT NULL DEFAULT '',
    alarm           INTEGER NOT NULL DEFAULT 0,
    updated_ms      INTEGER NOT NULL,
    final_ms        INTEGER
);
CREATE UNIQUE INDEX one_paid_per_order ON attempts(order_id) WHERE state = 'PAID';
CREATE UNIQUE INDEX one_open_per_order ON attempts(order_id)
    WHERE state IN ('PAY_INTENT','QUERYING');
CREATE INDEX attempts_by_state ON attempts(state, next_at_ms);
CREATE INDEX attempts_by_fp ON attempts(code_fp, created_ms);
CREATE INDEX attempts_by_order ON attempts(order_id);
CREATE TABLE events(
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt_id  INTEGER NOT NULL REFERENCES attempts(attempt_id),
    at_ms       INTEGER NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    op          TEXT,
    detail      TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL,
    alarm       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_by_attempt ON events(attempt_id, seq);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the history is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the history is append-only'); END;
CREATE TABLE refunds(
    refund_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    out_refund_no   TEXT NOT NULL UNIQUE,
    attempt_id      INTEGER NOT NULL REFERENCES attempts(attempt_id),
    amount_fen      INTEGER NOT NULL CHECK (amount_fen > 0),
    kind            TEXT NOT NULL CHECK (kind IN ('manual','fence')),
    state           TEXT NOT NULL CHECK (state IN ('INTENT','PROCESSING','DONE','FAILED','UNKNOWN')),
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    chan_refund_no  TEXT,
    note            TEXT NOT NULL DEFAULT ''
);
CREATE INDEX refunds_by_attempt ON refunds(attempt_id);
CREATE TABLE notifications(
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms  INTEGER NOT NULL,
    gateway      TEXT NOT NULL,
    out_trade_no TEXT NOT NULL,
    digest       TEXT NOT NULL UNIQUE,
    outcome      TEXT NOT NULL
);
"#,
    // 2: 无感支付 contract customers, their cancel notices, and offline deductions.
    r#"
CREATE TABLE contracts(
    contract_id   TEXT PRIMARY KEY,
    open_id       TEXT NOT NULL,
    plan_id       TEXT NOT NULL,
    contract_code TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('SIGNED','RELIEVED')),
    arrears       INTEGER NOT NULL DEFAULT 0 CHECK (arrears >= 0),
    checked_ms    INTEGER NOT NULL,
    signed_ms     INTEGER NOT NULL,
    relieved_ms   INTEGER,
    masked_mobile TEXT,
    updated_ms    INTEGER NOT NULL
);
CREATE INDEX contracts_by_open_id ON contracts(open_id);
CREATE TABLE contract_notices(
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    digest       TEXT NOT NULL UNIQUE,
    contract_id  TEXT NOT NULL,
    trid         TEXT NOT NULL,
    received_ms  INTEGER NOT NULL
);
CREATE TABLE offline_deductions(
    deduction_id  TEXT PRIMARY KEY,
    contract_id   TEXT NOT NULL REFERENCES contracts(contract_id),
    amount_fen    INTEGER NOT NULL CHECK (amount_fen > 0),
    created_ms    INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('STORED','SUBMITTED','SETTLED','MANUAL_REVIEW')),
    tries         INTEGER NOT NULL DEFAULT 0,
    out_trade_no  TEXT,
    note          TEXT NOT NULL DEFAULT '',
    updated_ms    INTEGER NOT NULL,
    final_ms      INTEGER
);
CREATE INDEX offline_by_state ON offline_deductions(state, created_ms);
CREATE TRIGGER offline_never_deleted BEFORE DELETE ON offline_deductions
    BEGIN SELECT RAISE(ABORT, 'an offline deduction is never deleted'); END;
CREATE TRIGGER offline_final_stays BEFORE UPDATE OF state ON offline_deductions
    WHEN OLD.state IN ('SETTLED','MANUAL_REVIEW')
    BEGIN SELECT RAISE(ABORT, 'a settled or reviewed deduction does not change'); END;
"#,
    // 3: the pre-authorisation family (ChinaUMS bills, UnionPay ACP 02/32/03/33), journaled
    // before sending like attempts (journal::preauth). One unresolved operation per
    // pre-authorisation; what was sent never changes; DONE and FAILED are final.
    r#"
CREATE TABLE preauth_ops(
    op_id         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_no    TEXT NOT NULL UNIQUE,
    gateway       TEXT NOT NULL CHECK (gateway IN ('chinaums','acp')),
    operation     TEXT NOT NULL CHECK (operation IN ('preauth','cancel','complete','complete_cancel')),
    target        TEXT NOT NULL,
    target_key    TEXT NOT NULL,
    amount_fen    INTEGER NOT NULL CHECK (amount_fen >= 0),
    chan_txn_time TEXT NOT NULL,
    code_mask     TEXT,
    state         TEXT NOT NULL CHECK (state IN ('INTENT','DONE','FAILED','UNKNOWN','REVIEW')),
    state_ver     INTEGER NOT NULL DEFAULT 0,
    chan_ref      TEXT,
    queries       INTEGER NOT NULL DEFAULT 0,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    final_ms      INTEGER,
    last_note     TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX preauth_one_open_per_target ON preauth_ops(gateway, target_key)
    WHERE state IN ('INTENT','UNKNOWN');
CREATE INDEX preauth_by_state ON preauth_ops(state, created_ms);
CREATE TRIGGER preauth_never_deleted BEFORE DELETE ON preauth_ops
    BEGIN SELECT RAISE(ABORT, 'a pre-authorisation operation is never deleted'); END;
CREATE TRIGGER preauth_final_stays BEFORE UPDATE OF state ON preauth_ops
    WHEN OLD.state IN ('DONE','FAILED') AND NEW.state != OLD.state
    BEGIN SELECT RAISE(ABORT, 'a finished pre-authorisation operation does not change'); END;
CREATE TRIGGER preauth_sent_stays BEFORE UPDATE OF request_no, gateway, operation, target,
    target_key, amount_fen, chan_txn_time, code_mask, created_ms ON preauth_ops
    BEGIN SELECT RAISE(ABORT, 'what was sent does not change'); END;
CREATE TABLE preauth_events(
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id      INTEGER NOT NULL REFERENCES preauth_ops(op_id),
    at_ms      INTEGER NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '',
    note       TEXT NOT NULL
);
CREATE INDEX preauth_events_by_op ON preauth_events(op_id, seq);
CREATE TRIGGER preauth_events_no_update BEFORE UPDATE ON preauth_events
    BEGIN SELECT RAISE(ABORT, 'the history is append-only'); END;
CREATE TRIGGER preauth_events_no_delete BEFORE DELETE ON preauth_events
    BEGIN SELECT RAISE(ABORT, 'the history is append-only'); END;
"#,
    // 4: what the machine needs to believe a reply (core::machine): when the pay request may
    // last have left, when the channel last answered, and whether an accepted cancel still
    // waits for the order's state to say what it did.
    r#"
ALTER TABLE attempts ADD COLUMN sent_ms INTEGER;
ALTER TABLE attempts ADD COLUMN contact_ms INTEGER;
ALTER TABLE attempts ADD COLUMN confirming INTEGER NOT NULL DEFAULT 0;
"#,
    // 5: sales that ended before any attempt (abandoned, timed out waiting for a code, face
    // authorisation failed, refused by a guard): the ECR API answers for them (journal::sales).
    r#"
CREATE TABLE sales(
    order_id   TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    note       TEXT NOT NULL,
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
"#,
    // 6: shifts (签退): who worked the counter when, and the totals printed at closing
    // (journal::totals). One open shift at a time; a closed shift's totals never change.
    r#"
CREATE TABLE shifts(
    shift_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    operator  TEXT NOT NULL,
    opened_ms INTEGER NOT NULL,
    closed_ms INTEGER,
    totals    TEXT,
    CHECK ((closed_ms IS NULL) = (totals IS NULL))
);
CREATE UNIQUE INDEX one_open_shift ON shifts(closed_ms IS NULL) WHERE closed_ms IS NULL;
CREATE TRIGGER shifts_closed_stays BEFORE UPDATE ON shifts WHEN OLD.closed_ms IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'a closed shift does not change'); END;
CREATE TRIGGER shifts_never_deleted BEFORE DELETE ON shifts
    BEGIN SELECT RAISE(ABORT, 'a shift is never deleted'); END;
"#,
    // 7: retention (journal::prune). The history stays append-only for ordinary code: rows of
    // `events`, `attempts` and `refunds` may be deleted only while their attempt is listed in
    // `prune_grant`, which a prune transaction fills and empties again before it commits, and
    // which refuses any attempt that is not settled (PAID, FAILED, REVERSED) or that has a
    // refund whose outcome is not known. The index makes the recovery loop's question "any
    // refund open?" independent of the journal's size.
    r#"
CREATE TABLE prune_grant(attempt_id INTEGER PRIMARY KEY);
CREATE TRIGGER prune_grant_settled_only BEFORE INSERT ON prune_grant
    WHEN NOT EXISTS (SELECT 1 FROM attempts WHERE attempt_id = NEW.attempt_id
                     AND state IN ('PAID','FAILED','REVERSED'))
      OR EXISTS (SELECT 1 FROM refunds WHERE attempt_id = NEW.attempt_id
                 AND state NOT IN ('DONE','FAILED'))
    BEGIN SELECT RAISE(ABORT, 'only a settled attempt may be pruned'); END;
DROP TRIGGER events_no_delete;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    WHEN NOT EXISTS (SELECT 1 FROM prune_grant WHERE attempt_id = OLD.attempt_id)
    BEGIN SELECT RAISE(ABORT, 'the history is append-only'); END;
CREATE TRIGGER attempts_no_delete BEFORE DELETE ON attempts
    WHEN NOT EXISTS (SELECT 1 FROM prune_grant WHERE attempt_id = OLD.attempt_id)
    BEGIN SELECT RAISE(ABORT, 'an attempt is deleted only by a prune'); END;
CREATE TRIGGER refunds_no_delete BEFORE DELETE ON refunds
    WHEN NOT EXISTS (SELECT 1 FROM prune_grant WHERE attempt_id = OLD.attempt_id)
    BEGIN SELECT RAISE(ABORT, 'a refund is deleted only by a prune'); END;
CREATE INDEX refunds_by_state ON refunds(state, kind);
CREATE INDEX orders_by_created ON orders(created_ms);
"#,
];
