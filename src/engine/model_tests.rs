//! A model-based test of the whole engine — journal (real SQLite), the real aggregator client
//! with its signatures and reply mapping, the state machine — against a model aggregator that
//! behaves as real gateways do: its order store lags, requests and replies are lost, replies
//! come back mis-signed or as empty HTTP 500s, a cancel answers "no such order" while the order
//! exists, customers confirm late or never, and the process crashes before and after requests.
//! Everything runs on a virtual clock with the production timers, seeded: a failure prints its
//! seed, and `PAYTERM_MODEL_SEED=N` replays exactly that run.
//!
//! At the end (the network good again, recovery run until nothing is open): an attempt recorded
//! FAILED or REVERSED holds no money in the model's ledger, one recorded PAID is paid there, no
//! order is charged twice, and a second recovery changes nothing.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Engine, Gateways, PayRequest, Settings};
use crate::clock::{Clock, ManualClock};
use crate::core::authcode::{AuthCode, Wallet, default_rules};
use crate::core::machine::AttemptState;
use crate::core::money::Amount;
use crate::gateway::aggregator::{Aggregator, AggregatorConfig, Fields};
use crate::gateway::{
    Credential, HttpRequest, HttpResponse, OrderDetails, Transport, TransportError,
};
use crate::journal::{AttemptRow, Journal};

const KEY: &str = "model-aggregator-key";
const T0: i64 = 1_795_312_800_000;
/// The production timeouts (seconds of virtual time each).
const TIMEOUT_MS: i64 = 15_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    PaysAtOnce,
    /// Confirms this long after the order was created.
    ConfirmsAfter(i64),
    NeverConfirms,
    Declined,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Paying,
    Paid,
    Declined,
    Closed,
    Revoked,
}

#[derive(Clone, Debug)]
struct Order {
    amount: u64,
    created: i64,
    status: Status,
    behaviour: Behaviour,
    refunds: BTreeMap<String, u64>,
}

impl Order {
    fn refunded(&self) -> u64 {
        self.refunds.values().sum()
    }

    /// Money the gateway holds for this order now.
    fn held(&self) -> u64 {
        match self.status {
            Status::Paid => self.amount.saturating_sub(self.refunded()),
            _ => 0,
        }
    }

    fn settle_customer(&mut self, now: i64) {
        if let (Status::Paying, Behaviour::ConfirmsAfter(d)) = (self.status, self.behaviour)
            && now >= self.created + d
        {
            self.status = Status::Paid;
        }
    }
}

/// What the network does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Net {
    Ok,
    LoseRequest,
    LoseReply,
    BadSignature,
    Http500,
    CrashBeforeSend,
    CrashAfterSend,
}

struct World {
    clock: ManualClock,
    rng: StdRng,
    orders: BTreeMap<String, Order>,
    /// Behaviour of the next pay request that arrives.
    next_behaviour: Behaviour,
    lag_ms: i64,
    cancel_not_found: bool,
    /// The network is down until then.
    down_until: i64,
    /// Faults on; off for the final recovery.
    faulty: bool,
    log: Vec<String>,
}

/// The crash of the process, carried by a panic out of the transport.
struct Crash;

struct ModelTransport(Arc<Mutex<World>>);

fn reply(f: Fields) -> Vec<u8> {
    let mut f = f;
    f.set("nonce_str", "n");
    f.signed(KEY).to_json().into_bytes()
}

fn fail(code: &str, msg: &str) -> Fields {
    let mut f = Fields::new();
    f.set("state", "FAIL").set("code", code).set("msg", msg);
    f
}

fn success(code: &str, trade_state: &str, msg: &str) -> Fields {
    let mut f = Fields::new();
    f.set("state", "SUCCESS")
        .set("code", code)
        .set("trade_state", trade_state)
        .set("msg", msg)
        .set("mch_id", "00000001");
    f
}

impl World {
    fn pick_net(&mut self) -> Net {
        if !self.faulty {
            return Net::Ok;
        }
        if self.clock.now_ms() < self.down_until {
            return Net::LoseRequest;
        }
        match self.rng.gen_range(0..100) {
            0..=64 => Net::Ok,
            65..=72 => Net::LoseRequest,
            73..=80 => Net::LoseReply,
            81..=84 => Net::BadSignature,
            85..=88 => Net::Http500,
            89..=93 => Net::CrashBeforeSend,
            _ => Net::CrashAfterSend,
        }
    }

    fn visible(&self, no: &str) -> Option<&Order> {
        let now = self.clock.now_ms();
        self.orders
            .get(no)
            .filter(|o| now - o.created >= self.lag_ms)
    }

    fn process(&mut self, f: &Fields) -> Fields {
        let now = self.clock.now_ms();
        for o in self.orders.values_mut() {
            o.settle_customer(now);
        }
        let no = f.get("out_trade_no").unwrap_or("").to_string();
        match f.get("method").unwrap_or("") {
            "pay" => {
                if self.orders.contains_key(&no) {
                    return fail("20004", "订单号重复 (ORDERPAID / OUT_TRADE_NO_USED)");
                }
                let amount: u64 = f.get("total_fee").and_then(|v| v.parse().ok()).unwrap_or(0);
                let b = self.next_behaviour;
                let status = match b {
                    Behaviour::PaysAtOnce => Status::Paid,
                    Behaviour::Declined => Status::Declined,
                    _ => Status::Paying,
                };
                self.orders.insert(
                    no.clone(),
                    Order {
                        amount,
                        created: now,
                        status,
                        behaviour: b,
                        refunds: BTreeMap::new(),
                    },
                );
                match status {
                    Status::Paid => {
                        let mut r = success("10000", "SUCCESS", "SUCCESS");
                        r.set("out_trade_no", no.as_str())
                            .set("total_fee", amount.to_string())
                            .set("base_fee", amount.to_string());
                        r
                    }
                    Status::Declined => success("10006", "FAIL", "余额不足"),
                    _ => success("10001", "PROCESSING", "需要用户输入支付密码"),
                }
            }
            "orderquery" => {
                let Some(o) = self.visible(&no) else {
                    return fail("20007", "订单不存在");
                };
                let mut r = match o.status {
                    Status::Paid if o.refunded() >= o.amount => {
                        success("10002", "REFUND", "转入退款")
                    }
                    Status::Paid => {
                        let mut r = success("10000", "SUCCESS", "SUCCESS");
                        r.set("total_fee", o.amount.to_string())
                            .set("base_fee", o.amount.to_string());
                        r
                    }
                    Status::Paying => success("10003", "PROCESSING", "未支付"),
                    Status::Declined => success("10006", "FAIL", "支付失败"),
                    Status::Closed => success("10004", "FAIL", "已关闭"),
                    Status::Revoked => success("10005", "REFUND", "已撤销"),
                };
                r.set("out_trade_no", no.as_str());
                r
            }
            "cancel" => {
                if self.cancel_not_found || self.visible(&no).is_none() {
                    // Nothing is fenced: a late pay request can still create the order.
                    return fail("20007", "订单不存在");
                }
                let o = self.orders.get_mut(&no).expect("visible");
                let age = now - o.created;
                if age < 15_000 {
                    return fail("20011", "订单创建15秒后才能撤销");
                }
                if age > 5 * 60_000 {
                    return fail("20011", "订单超过5分钟不能撤销，请使用退款");
                }
                if !o.refunds.is_empty() {
                    return fail("20011", "订单已退款，不能撤销");
                }
                o.status = match o.status {
                    Status::Paid | Status::Revoked => Status::Revoked,
                    _ => Status::Closed,
                };
                success("10000", "SUCCESS", "SUCCESS")
            }
            "refund" => {
                let rno = f.get("out_refund_no").unwrap_or("").to_string();
                let fee: u64 = f
                    .get("refund_fee")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let Some(o) = self.orders.get_mut(&no) else {
                    return fail("20007", "订单不存在");
                };
                if o.refunds.contains_key(&rno) {
                    return success("10000", "SUCCESS", "SUCCESS");
                }
                if o.status != Status::Paid || o.refunded() + fee > o.amount || fee == 0 {
                    return fail("20008", "退款错误");
                }
                o.refunds.insert(rno, fee);
                success("10000", "SUCCESS", "SUCCESS")
            }
            "refundquery" => {
                let rno = f.get("out_refund_no").unwrap_or("");
                let found = self
                    .orders
                    .values()
                    .find(|o| o.refunds.contains_key(rno))
                    .map(|o| o.refunds[rno]);
                match found {
                    Some(fee) => {
                        let mut r = success("10000", "SUCCESS", "SUCCESS");
                        r.set(
                            "refund_list",
                            format!(
                                r#"[{{"out_refund_no":"{rno}","refund_status":"SUCCESS","refund_fee":"{fee}"}}]"#
                            ),
                        );
                        r
                    }
                    None => fail("20007", "退款单不存在"),
                }
            }
            other => fail("20004", &format!("unknown method {other}")),
        }
    }
}

impl Transport for ModelTransport {
    fn post(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let f = Fields::from_form(&req.body);
        let mut w = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(f.verify(KEY).is_ok(), "the engine signs every request");
        let net = w.pick_net();
        let method = f.get("method").unwrap_or("").to_string();
        let no = f.get("out_trade_no").unwrap_or("").to_string();
        let at = w.clock.now_ms();
        w.log.push(format!("t={} {method} {no}: {net:?}", at - T0));
        let lost = || TransportError::NoReply {
            host: "model".into(),
            why: "timeout".into(),
        };
        match net {
            Net::CrashBeforeSend => std::panic::panic_any(Crash),
            Net::LoseRequest => {
                w.clock.advance(TIMEOUT_MS);
                return Err(lost());
            }
            _ => {}
        }
        let out = w.process(&f);
        w.log.push(format!(
            "    -> {} {}",
            out.get("code").unwrap_or(""),
            out.get("msg").unwrap_or("")
        ));
        let took = w.rng.gen_range(20..400);
        w.clock.advance(took);
        match net {
            Net::CrashAfterSend => std::panic::panic_any(Crash),
            Net::LoseReply => {
                w.clock.advance(TIMEOUT_MS);
                Err(lost())
            }
            Net::Http500 => Ok(HttpResponse {
                status: 500,
                body: Vec::new(),
                authorization: None,
            }),
            Net::BadSignature => {
                let s = String::from_utf8(reply(out)).unwrap_or_default();
                Ok(HttpResponse {
                    status: 200,
                    body: s.replacen("\"sign\":\"", "\"sign\":\"0", 1).into_bytes(),
                    authorization: None,
                })
            }
            _ => Ok(HttpResponse {
                status: 200,
                body: reply(out),
                authorization: None,
            }),
        }
    }
}

fn settings() -> Settings {
    Settings {
        terminal_id: "T01".into(),
        device_key: b"model-device-key".to_vec(),
        code_rules: default_rules(),
        routes: BTreeMap::from([(Wallet::Wechat, "aggregator".to_string())]),
        max_amount: Amount::from_fen(1_000_000),
        max_open: 1_000,
        max_uncertain: Amount::from_fen(100_000_000),
        max_open_age_ms: 365 * 86_400_000,
        duplicate_window_ms: 120_000,
        clock_jump_ms: 365 * 86_400_000,
        rate_per_s: 1_000.0,
    }
}

fn engine(
    path: &std::path::Path,
    world: &Arc<Mutex<World>>,
    clock: &ManualClock,
    planted: bool,
) -> Engine {
    let mut cfg: AggregatorConfig = toml::from_str(
        r#"base_url = "http://model.invalid"
agent_id = "130000000000000000"
mch_id = "00000001"
key_file = "unused""#,
    )
    .expect("config");
    if planted {
        // The planted bug: round 1's rule, "no such order" believed at once.
        cfg.policy.not_found_final_after_ms = 0;
    }
    let agg = Aggregator::with_transport(cfg, KEY.into(), Arc::new(ModelTransport(world.clone())));
    let mut g = Gateways::default();
    g.insert("aggregator", Arc::new(agg));
    let j = Journal::open(path).expect("journal");
    Engine::new(j, g, settings()).with_clock(Arc::new(clock.clone()))
}

fn code(n: u64) -> Credential {
    let c = format!("134567{:012}", n);
    Credential::Code(AuthCode::classify(&c, &default_rules()).expect("a WeChat code"))
}

/// Runs `f` as the process would; a crash (the transport's panic) ends it, and the caller
/// starts a new process from the journal.
fn survive<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

fn run(seed: u64, planted: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("journal.db");
    let clock = ManualClock::new(T0);
    let mut rng = StdRng::seed_from_u64(seed);
    let world = Arc::new(Mutex::new(World {
        clock: clock.clone(),
        rng: StdRng::seed_from_u64(seed ^ 0x5eed),
        orders: BTreeMap::new(),
        next_behaviour: Behaviour::PaysAtOnce,
        lag_ms: if rng.gen_bool(0.5) {
            rng.gen_range(0..60_000)
        } else {
            0
        },
        cancel_not_found: rng.gen_bool(0.1),
        down_until: 0,
        faulty: true,
        log: Vec::new(),
    }));
    let lock = |w: &Arc<Mutex<World>>| w.lock().unwrap_or_else(PoisonError::into_inner).log.clone();
    let trail = |w: &Arc<Mutex<World>>| {
        let l = lock(w);
        let from = l.len().saturating_sub(60);
        l[from..].join("\n")
    };
    let mut e = engine(&path, &world, &clock, planted);
    let mut codes = 0u64;
    let orders = rng.gen_range(1..4);
    for k in 0..orders {
        let order_id = format!("O{k}");
        for _try in 0..rng.gen_range(1..4) {
            {
                let mut w = world.lock().unwrap_or_else(PoisonError::into_inner);
                w.next_behaviour = match w.rng.gen_range(0..10) {
                    0..=4 => Behaviour::PaysAtOnce,
                    5 | 6 => Behaviour::ConfirmsAfter(w.rng.gen_range(1_000..90_000)),
                    7 => Behaviour::NeverConfirms,
                    _ => Behaviour::Declined,
                };
                if w.rng.gen_bool(0.15) {
                    let now = clock.now_ms();
                    w.down_until = now + w.rng.gen_range(10_000..600_000);
                }
            }
            codes += 1;
            let req = PayRequest {
                order_id: Some(order_id.clone()),
                amount: Amount::from_fen(rng.gen_range(1..50_000)),
                credential: code((seed % 1_000_000) * 1_000 + codes),
                wallet: None,
                gateway: None,
                details: OrderDetails::default(),
            };
            let done = survive(|| e.pay(req, &mut |_: &AttemptRow, _: &str| {}));
            match done {
                None => e = engine(&path, &world, &clock, planted),
                Some(Ok(row)) if row.machine.state == AttemptState::Paid => break,
                Some(_) => {}
            }
            clock.advance(rng.gen_range(0..120_000));
            if rng.gen_bool(0.3) {
                // Another pass of recovery between sales (the daemon's loop, or the CLI's).
                if survive(|| e.recover(60_000, &mut |_: &AttemptRow, _: &str| {})).is_none() {
                    e = engine(&path, &world, &clock, planted);
                }
            }
        }
    }
    // The network is good from here on: recovery must settle everything.
    world.lock().unwrap_or_else(PoisonError::into_inner).faulty = false;
    let mut rounds = 0;
    loop {
        let open = e.journal().open_attempts().map_err(|x| x.to_string())?;
        let refunds = e.journal().open_refunds().map_err(|x| x.to_string())?;
        if open.is_empty() && refunds.is_empty() {
            break;
        }
        rounds += 1;
        if rounds > 400 {
            return Err(format!(
                "seed {seed}: still open after 400 recovery passes: {:?}\n{}",
                open.iter()
                    .map(|a| (&a.out_trade_no, a.machine.state, &a.last_note))
                    .collect::<Vec<_>>(),
                trail(&world)
            ));
        }
        // Ten minutes a pass: the review deadline (a day) is within reach of the bound.
        clock.advance(600_000);
        e.recover(60_000, &mut |_: &AttemptRow, _: &str| {})
            .map_err(|x| format!("seed {seed}: recovery failed: {x}"))?;
    }
    // The money as the journal tells it, against the model's ledger.
    let w = world.lock().unwrap_or_else(PoisonError::into_inner);
    let mut charged: BTreeMap<String, u32> = BTreeMap::new();
    let mut review = false;
    let all = e
        .journal()
        .list(&crate::journal::ListFilter::default())
        .map_err(|x| x.to_string())?;
    for a in &all {
        let held = w.orders.get(&a.out_trade_no).map(Order::held).unwrap_or(0);
        let refunded: u64 = e
            .journal()
            .refunds_for(a.attempt_id)
            .map_err(|x| x.to_string())?
            .iter()
            .filter(|r| r.state == crate::journal::RefundState::Done)
            .map(|r| r.amount.fen())
            .sum();
        let bad = match a.machine.state {
            AttemptState::Paid => held != a.amount.fen().saturating_sub(refunded),
            AttemptState::Failed | AttemptState::Reversed => held != 0,
            AttemptState::ManualReview => {
                review = true;
                false
            }
            s => return Err(format!("seed {seed}: {} left in {s}", a.out_trade_no)),
        };
        if bad {
            return Err(format!(
                "seed {seed}: {} is {} ({:?}) in the journal, the model holds {held} fen: {:?}\n{}",
                a.out_trade_no,
                a.machine.state,
                a.machine.reverse_action,
                w.orders.get(&a.out_trade_no),
                w.log[w.log.len().saturating_sub(60)..].join("\n")
            ));
        }
        if held > 0 {
            *charged.entry(a.order_id.clone()).or_default() += 1;
        }
    }
    if !review && let Some((o, n)) = charged.iter().find(|(_, n)| **n > 1) {
        return Err(format!("seed {seed}: order {o} charged {n} times"));
    }
    drop(w);
    // I6: another recovery changes nothing.
    let before: Vec<_> = all
        .iter()
        .map(|a| (a.out_trade_no.clone(), a.machine.state, a.version))
        .collect();
    clock.advance(3_600_000);
    e.recover(60_000, &mut |_: &AttemptRow, _: &str| {})
        .map_err(|x| x.to_string())?;
    let after: Vec<_> = e
        .journal()
        .list(&crate::journal::ListFilter::default())
        .map_err(|x| x.to_string())?
        .iter()
        .map(|a| (a.out_trade_no.clone(), a.machine.state, a.version))
        .collect();
    if before != after {
        return Err(format!(
            "seed {seed}: a second recovery changed the journal"
        ));
    }
    let _ = Duration::ZERO;
    Ok(())
}

/// Crashes are panics carried out of the transport; keep them off the test's output.
fn quiet_crashes() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Crash>().is_none() {
                prev(info);
            }
        }));
    });
}

fn runs() -> u64 {
    std::env::var("PAYTERM_MODEL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

#[test]
fn the_engine_never_mislabels_money_against_a_real_world_gateway() {
    quiet_crashes();
    let seeds: Vec<u64> = match std::env::var("PAYTERM_MODEL_SEED") {
        Ok(s) => vec![s.parse().expect("PAYTERM_MODEL_SEED is a number")],
        Err(_) => {
            let base: u64 = rand::thread_rng().r#gen();
            (0..runs()).map(|i| base.wrapping_add(i)).collect()
        }
    };
    for seed in seeds {
        if let Err(e) = run(seed, false) {
            panic!("{e}\nreplay: PAYTERM_MODEL_SEED={seed} cargo test --lib model_tests");
        }
    }
}

/// The model can fail: with round 1's rule planted back ("no such order" believed at once), it
/// finds a mislabelled payment within a few hundred seeded runs.
#[test]
fn the_model_finds_a_planted_bug() {
    quiet_crashes();
    let found = (0..2_000u64).find_map(|seed| run(seed, true).err().map(|e| (seed, e)));
    let (seed, why) = found.expect("the planted bug was not found in 2,000 runs");
    assert!(
        why.contains("the model holds") || why.contains("charged"),
        "seed {seed}: {why}"
    );
}
