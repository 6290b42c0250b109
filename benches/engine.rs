//! Benchmarks of the payment core (issue 3): the pure state machine's `next` and `apply`, and a
//! happy-path payment's journal work — the PAY_INTENT insert and the PAID commit, each a durable
//! SQLite transaction (WAL, synchronous=FULL) on a temporary file, so the figure includes the two
//! fsyncs a payment costs. Run with `cargo bench --bench engine` (needs the `[[bench]]` stanza
//! with `harness = false` in Cargo.toml).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use payterm::core::authcode::Wallet;
use payterm::core::machine::{self, Attempt, AttemptState, Next, Op, Reply};
use payterm::core::money::Amount;
use payterm::core::policy::Policy;
use payterm::gateway::{Method, OrderDetails};
use payterm::journal::{Journal, NewAttempt, StepExtra};

const T0: i64 = 1_795_312_800_000;

fn machine(c: &mut Criterion) {
    let p = Policy::aggregator();
    let fresh = Attempt::new(&p, T0);
    let mut querying = fresh.clone();
    querying.state = AttemptState::Querying;
    querying.queries = 2;
    c.bench_function("machine/next pay_intent", |b| {
        b.iter(|| machine::next(black_box(&fresh), &p, black_box(T0 + 1), true))
    });
    c.bench_function("machine/next querying", |b| {
        b.iter(|| machine::next(black_box(&querying), &p, black_box(T0 + 12_000), false))
    });
    c.bench_function("machine/apply pay paid", |b| {
        b.iter(|| machine::apply(black_box(&fresh), &p, Op::Pay, &Reply::Paid, T0 + 50))
    });
    let unknown = Reply::unknown("timeout");
    c.bench_function("machine/apply query unknown", |b| {
        b.iter(|| machine::apply(black_box(&querying), &p, Op::Query, &unknown, T0 + 12_000))
    });
}

fn journal(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut j = Journal::open(&dir.path().join("bench.db")).expect("journal");
    let p = Policy::aggregator();
    let mut n: u64 = 0;
    c.bench_function("journal/happy path (intent insert + PAID commit)", |b| {
        b.iter(|| {
            n += 1;
            let new = NewAttempt {
                order_id: format!("O{n}"),
                gateway: "aggregator".into(),
                method: Method::Code,
                wallet: Some(Wallet::Wechat),
                out_trade_no: format!("T01BENCH{n:012}"),
                amount: Amount::from_fen(1200),
                code_fp: None,
                code_mask: Some("1345**********0001".into()),
                chan_txn_time: "20261122100000".into(),
                machine: Attempt::new(&p, T0),
                details: OrderDetails::default(),
            };
            let row = j.insert_attempt(&new, T0, 120_000).expect("insert");
            let step = machine::apply(&row.machine, &p, Op::Pay, &Reply::Paid, T0 + 40);
            debug_assert!(matches!(
                machine::next(&step.attempt, &p, T0 + 40, false),
                Next::Settled
            ));
            let extra = StepExtra {
                op: Some(Op::Pay),
                detail: "SUCCESS 10000",
                ..StepExtra::default()
            };
            j.commit_step(row.attempt_id, row.version, &step, &extra, T0 + 40)
                .expect("commit")
        })
    });
}

criterion_group!(benches, machine, journal);
criterion_main!(benches);
