//! At the counter, end to end against the sandbox: a shift with paid, declined, refunded and
//! unsettled payments is closed, and its totals must be what the journal's export adds up to.

mod common;

use std::collections::BTreeMap;

use common::{Env, code};

fn alipay_code(n: u32) -> String {
    format!("2845678901{n:08}")
}

#[test]
fn a_closed_shift_totals_what_the_export_adds_up_to() {
    let env = Env::start();
    let (c, v, _) = env.run_json(&["shift", "open", "--operator", "0012"]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["shift"]["operator"], "0012");
    let (c, v, _) = env.run_json(&["shift", "open", "--operator", "0013"]);
    assert_eq!(c, 1, "a second open shift is refused: {v}");

    let (c, paid1) = env.pay("10.00", &code(1));
    assert_eq!(c, 0, "{paid1}");
    let (c, v) = env.pay("12.00", &alipay_code(2));
    assert_eq!(c, 0, "{v}");
    let (c, v) = env.pay("8.51", &code(3));
    assert_eq!(c, 2, "51 declines: {v}");
    let (c, v) = env.pay("5.53", &code(4));
    assert_eq!(c, 2, "53 never confirms: {v}");
    let order1 = paid1["order"].as_str().unwrap();
    let (c, r, _) = env.run_json(&["refund", order1, "--amount", "3.00"]);
    assert_eq!(c, 0, "{r}");
    // The gateway is unreachable: the outcome is unknown and the attempt stays unsettled.
    env.faults(r#"{"down": true}"#);
    let (c, v) = env.pay("7.00", &code(5));
    assert_eq!(c, 3, "{v}");
    env.faults("{}");

    let (c, closed, out) = env.run_json(&["shift", "close"]);
    assert_eq!(c, 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(closed["result"], "closed");
    let t = &closed["totals"];

    // What the export says, summed by hand.
    let mut paid: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut refunded: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut unsettled = Vec::new();
    for e in env.journal() {
        let a = &e["attempt"];
        let wallet = a["wallet"].as_str().unwrap_or("-").to_string();
        let key = format!("{}/{wallet}", a["gateway"].as_str().unwrap());
        let amount = a["amount"].as_u64().unwrap();
        match a["state"].as_str().unwrap() {
            "PAID" => {
                let p = paid.entry(key.clone()).or_default();
                p.0 += 1;
                p.1 += amount;
            }
            "FAILED" | "REVERSED" | "MANUAL_REVIEW" => {}
            _ => unsettled.push(a["order_id"].as_str().unwrap().to_string()),
        }
        for r in e["refunds"].as_array().unwrap() {
            if r["state"] == "DONE" && r["kind"] == "manual" {
                let x = refunded.entry(key.clone()).or_default();
                x.0 += 1;
                x.1 += r["amount"].as_u64().unwrap();
            }
        }
    }
    let lines = t["lines"].as_array().unwrap();
    assert_eq!(lines.len(), paid.len(), "{t}");
    for l in lines {
        let key = format!(
            "{}/{}",
            l["gateway"].as_str().unwrap(),
            l["wallet"].as_str().unwrap()
        );
        let (pc, pf) = paid.get(&key).copied().unwrap_or_default();
        let (rc, rf) = refunded.get(&key).copied().unwrap_or_default();
        assert_eq!(l["paid_count"].as_u64().unwrap(), pc, "{key}");
        assert_eq!(l["paid_fen"].as_u64().unwrap(), pf, "{key}");
        assert_eq!(l["refund_count"].as_u64().unwrap(), rc, "{key}");
        assert_eq!(l["refund_fen"].as_u64().unwrap(), rf, "{key}");
        assert_eq!(
            l["net_fen"].as_i64().unwrap(),
            pf as i64 - rf as i64,
            "{key}"
        );
    }
    // And the figures themselves: 10.00 + 12.00 paid, 3.00 back, 7.00 unknown.
    assert_eq!(t["all"]["paid_fen"], 2200);
    assert_eq!(t["all"]["refund_fen"], 300);
    assert_eq!(t["all"]["net_fen"], 1900);
    let listed: Vec<String> = t["unsettled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["order_id"].as_str().unwrap().to_string())
        .collect();
    unsettled.sort();
    assert_eq!(listed, unsettled);
    assert_eq!(listed.len(), 1);

    // The stored totals are what `totals --shift` prints later, and nothing shows a full code.
    let id = closed["shift"]["shift_id"].as_i64().unwrap().to_string();
    let (c, again, _) = env.run_json(&["totals", "--shift", &id]);
    assert_eq!(c, 0);
    assert_eq!(&again["totals"], t);
    let human = env.run(&["totals", "--shift", &id]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("19.00"), "{text}");
    let day = payterm::util::beijing_date(payterm::util::now_ms());
    let (c, today, _) = env.run_json(&["totals", "--day", &day]);
    assert_eq!(c, 0);
    assert_eq!(today["totals"]["all"]["net_fen"], 1900, "{today}");
    env.assert_no_secrets(
        &(1..=5)
            .map(code)
            .chain([alipay_code(2)])
            .collect::<Vec<_>>(),
    );
}

#[test]
fn a_receipt_prints_the_order_in_chinese_for_both_widths() {
    let env = Env::start();
    let (c, v) = env.pay("12.00", &code(21));
    assert_eq!(c, 0, "{v}");
    let order = v["order"].as_str().unwrap();
    let (c, r, _) = env.run_json(&["refund", order, "--amount", "3.00"]);
    assert_eq!(c, 0, "{r}");
    let out = env.run(&["receipt", order]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "测试商户",
        "客户联",
        "商户联",
        "微信支付",
        "1345**********0021",
        "￥9.00",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    assert!(
        !text.contains(&code(21)),
        "a full payment code on a receipt"
    );
    // The board (sim.toml) says 58 mm: 32 columns, unless --width says otherwise.
    assert!(text.lines().any(|l| l == "-".repeat(32)), "{text}");
    let file = env.dir.path().join("r.bin");
    let (c, w, _) = env.run_json(&[
        "receipt",
        order,
        "--width",
        "80",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(c, 0, "{w}");
    let lines = payterm::receipt::decode(&std::fs::read(&file).unwrap()).unwrap();
    assert!(lines.iter().any(|l| *l == "-".repeat(48)), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[QR] ") && l.ends_with(order))
    );
    let (c, _, _) = env.run_json(&["receipt", order, "--width", "76"]);
    assert_eq!(c, 1);
    let (c, _, _) = env.run_json(&["receipt", "NO-SUCH-ORDER"]);
    assert_eq!(c, 1);
}

#[test]
fn totals_refuses_a_bad_day() {
    let env = Env::start();
    let (c, _, _) = env.run_json(&["totals", "--day", "2026-13-40"]);
    assert_eq!(c, 1);
}
