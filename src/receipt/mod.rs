//! Receipts (小票): the layout of one sale's receipt as ESC/POS bytes for 58 mm (32 columns) and
//! 80 mm (48 columns) paper, and a decoder that reads those bytes back as lines of text.
//!
//! Layout is pure: data in, bytes out, no clock and no device. Chinese goes out in GB18030
//! inside the printer's Chinese mode (FS &), the order number as a QR code (GS ( k) or a
//! CODE128 barcode (GS k). It must not hold a full payment code (it is handed the journal's
//! mask only) nor talk to the printer: `device::printer` writes the bytes and reads the status.

pub mod decode;

use serde::Serialize;

use crate::core::authcode::Wallet;
use crate::core::machine::AttemptState;
use crate::device::board::ReceiptCopy;
use crate::journal::{AttemptRow, RefundRow, RefundState};

pub use decode::{DecodeError, decode};

/// Paper width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Paper {
    Mm58,
    Mm80,
}

impl Paper {
    pub fn from_mm(mm: u16) -> Option<Paper> {
        match mm {
            58 => Some(Paper::Mm58),
            80 => Some(Paper::Mm80),
            _ => None,
        }
    }

    /// Columns of font A (12 dots wide): 384 and 576 printable dots.
    pub fn columns(self) -> usize {
        match self {
            Paper::Mm58 => 32,
            Paper::Mm80 => 48,
        }
    }
}

/// How the order number is printed for a scanner to read it back (a refund at the counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symbol {
    Qr,
    Code128,
}

/// One refund on the receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReceiptRefund {
    pub out_refund_no: String,
    pub amount_fen: u64,
    /// Only DONE refunds are subtracted; others are printed as pending.
    pub done: bool,
}

/// What a receipt says. Built from the journal by [`ReceiptData::from_rows`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReceiptData {
    pub merchant: String,
    pub terminal: String,
    /// Beijing time, `yyyy-MM-dd HH:mm:ss`.
    pub time: String,
    pub order_id: String,
    pub out_trade_no: String,
    pub wallet: Option<Wallet>,
    pub amount_fen: u64,
    /// The journal's mask, e.g. `1345**********6789`.
    pub code_mask: Option<String>,
    /// The gateway's transaction number.
    pub chan_trade_no: Option<String>,
    /// `PAID`, or the state that makes this not a proof of payment.
    pub state: String,
    pub refunds: Vec<ReceiptRefund>,
}

impl ReceiptData {
    pub fn from_rows(
        merchant: &str,
        terminal: &str,
        a: &AttemptRow,
        refunds: &[RefundRow],
    ) -> ReceiptData {
        ReceiptData {
            merchant: merchant.to_string(),
            terminal: terminal.to_string(),
            time: crate::util::beijing_human(a.final_ms.unwrap_or(a.machine.created_ms)),
            order_id: a.order_id.clone(),
            out_trade_no: a.out_trade_no.clone(),
            wallet: a.wallet,
            amount_fen: a.amount.fen(),
            code_mask: a.code_mask.clone(),
            chan_trade_no: a.chan_trade_no.clone(),
            state: a.machine.state.as_str().to_string(),
            refunds: refunds
                .iter()
                .filter(|r| r.kind == "manual" && r.state != RefundState::Failed)
                .map(|r| ReceiptRefund {
                    out_refund_no: r.out_refund_no.clone(),
                    amount_fen: r.amount.fen(),
                    done: r.state == RefundState::Done,
                })
                .collect(),
        }
    }
}

/// The name printed for a wallet.
pub fn wallet_name(w: Wallet) -> &'static str {
    match w {
        Wallet::Wechat => "微信支付",
        Wallet::Alipay => "支付宝",
        Wallet::Unionpay => "银联云闪付",
        Wallet::Jdpay => "京东支付",
        Wallet::Qq => "QQ钱包",
        Wallet::Bestpay => "翼支付",
        Wallet::Ecny => "数字人民币",
    }
}

pub(crate) mod esc {
    pub const ESC: u8 = 0x1b;
    pub const GS: u8 = 0x1d;
    pub const FS: u8 = 0x1c;
    pub const LF: u8 = 0x0a;
}
use esc::{ESC, FS, GS, LF};

/// Columns a string takes: a GB18030 double-byte character prints two columns wide.
pub fn columns(s: &str) -> usize {
    s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

fn yuan(fen: u64) -> String {
    format!("￥{}.{:02}", fen / 100, fen % 100)
}

struct Writer {
    out: Vec<u8>,
    cols: usize,
}

impl Writer {
    fn text(&mut self, s: &str) {
        let (bytes, _, _) = encoding_rs::GB18030.encode(s);
        self.out.extend_from_slice(&bytes);
    }

    fn line(&mut self, s: &str) {
        self.text(s);
        self.out.push(LF);
    }

    fn align(&mut self, n: u8) {
        self.out.extend_from_slice(&[ESC, b'a', n]);
    }

    fn bold(&mut self, on: bool) {
        self.out.extend_from_slice(&[ESC, b'E', u8::from(on)]);
    }

    fn rule(&mut self) {
        let r = "-".repeat(self.cols);
        self.line(&r);
    }

    /// `label ........ value` on one line, or the value right-aligned on the next when both do
    /// not fit: a transaction number must never be cut, a cashier reads it to the gateway.
    fn pair(&mut self, label: &str, value: &str) {
        let (l, v) = (columns(label), columns(value));
        if l + 1 + v <= self.cols {
            let pad = " ".repeat(self.cols - l - v);
            self.line(&format!("{label}{pad}{value}"));
            return;
        }
        self.line(label);
        for chunk in wrap(value, self.cols) {
            let pad = " ".repeat(self.cols.saturating_sub(columns(&chunk)));
            self.line(&format!("{pad}{chunk}"));
        }
    }

    fn centered(&mut self, s: &str) {
        self.align(1);
        for chunk in wrap(s, self.cols) {
            self.line(&chunk);
        }
        self.align(0);
    }
}

/// Cuts `s` into pieces of at most `cols` columns, never inside a character.
fn wrap(s: &str, cols: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut used = 0;
    for c in s.chars() {
        let w = if c.is_ascii() { 1 } else { 2 };
        if used + w > cols && used > 0 {
            out.push(String::new());
            used = 0;
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
        used += w;
    }
    out
}

/// The receipt's bytes: initialise, Chinese mode, the text, the order number's symbol, feed
/// and cut.
pub fn layout(r: &ReceiptData, paper: Paper, copy: ReceiptCopy, symbol: Symbol) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::with_capacity(1024),
        cols: paper.columns(),
    };
    w.out.extend_from_slice(&[ESC, b'@', FS, b'&']);
    w.bold(true);
    w.centered(&r.merchant);
    w.bold(false);
    w.centered(match copy {
        ReceiptCopy::Customer => "客户联",
        ReceiptCopy::Merchant => "商户联",
    });
    if r.state != AttemptState::Paid.as_str() {
        // A receipt is shown as proof of payment: an unpaid one must say so at the top.
        w.centered(&format!("未支付 ({})", r.state));
    }
    w.rule();
    w.pair("终端号", &r.terminal);
    w.pair("时间", &r.time);
    w.pair("订单号", &r.order_id);
    w.pair("商户单号", &r.out_trade_no);
    w.pair("支付方式", r.wallet.map(wallet_name).unwrap_or("-"));
    if let Some(m) = &r.code_mask {
        w.pair("付款码", m);
    }
    if let Some(t) = &r.chan_trade_no {
        w.pair("交易号", t);
    }
    w.rule();
    w.bold(true);
    w.pair("金额", &yuan(r.amount_fen));
    w.bold(false);
    let mut back = 0;
    for f in &r.refunds {
        let label = if f.done {
            "退款"
        } else {
            "退款(处理中)"
        };
        w.pair(label, &format!("-{}", yuan(f.amount_fen)));
        w.pair("退款单号", &f.out_refund_no);
        if f.done {
            back += f.amount_fen;
        }
    }
    if !r.refunds.is_empty() {
        w.pair("实收", &yuan(r.amount_fen.saturating_sub(back)));
    }
    w.rule();
    w.align(1);
    let data = r.order_id.as_bytes();
    match symbol {
        Symbol::Code128 if r.order_id.is_ascii() && data.len() <= 250 => code128(&mut w.out, data),
        _ => qr(&mut w.out, data),
    }
    w.align(0);
    if copy == ReceiptCopy::Merchant {
        w.line("");
        w.line("签名:");
        w.line("");
    }
    w.centered("谢谢惠顾");
    // Feed past the cutter (ESC d 4), then a partial cut (GS V 66 0).
    w.out.extend_from_slice(&[ESC, b'd', 4, GS, b'V', 66, 0]);
    w.out
}

fn qr(out: &mut Vec<u8>, data: &[u8]) {
    // Model 2, module size 6, error correction M; then store the data and print it.
    out.extend_from_slice(&[GS, b'(', b'k', 4, 0, 49, 65, 50, 0]);
    out.extend_from_slice(&[GS, b'(', b'k', 3, 0, 49, 67, 6]);
    out.extend_from_slice(&[GS, b'(', b'k', 3, 0, 49, 69, 49]);
    let n = data.len() + 3;
    out.extend_from_slice(&[GS, b'(', b'k', (n & 0xff) as u8, (n >> 8) as u8, 49, 80, 48]);
    out.extend_from_slice(data);
    out.extend_from_slice(&[GS, b'(', b'k', 3, 0, 49, 81, 48]);
    out.push(LF);
}

fn code128(out: &mut Vec<u8>, data: &[u8]) {
    // Height 80 dots, module width 2, human-readable text below.
    out.extend_from_slice(&[GS, b'h', 80, GS, b'w', 2, GS, b'H', 2]);
    // Function B (m = 73) with code set B selected by the "{B" prefix.
    out.extend_from_slice(&[GS, b'k', 73, (data.len() + 2) as u8, b'{', b'B']);
    out.extend_from_slice(data);
    out.push(LF);
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> ReceiptData {
        ReceiptData {
            merchant: "测试商户".into(),
            terminal: "T01".into(),
            time: "2026-11-22 10:00:00".into(),
            order_id: "T0120261122100000001".into(),
            out_trade_no: "T0120261122100000001A1".into(),
            wallet: Some(Wallet::Wechat),
            amount_fen: 1200,
            code_mask: Some("1345**********6789".into()),
            chan_trade_no: Some("4200001234202611221234567890".into()),
            state: "PAID".into(),
            refunds: vec![ReceiptRefund {
                out_refund_no: "R1".into(),
                amount_fen: 300,
                done: true,
            }],
        }
    }

    #[test]
    fn both_widths_fit_and_say_everything() {
        for (paper, cols) in [(Paper::Mm58, 32), (Paper::Mm80, 48)] {
            let bytes = layout(&sample(), paper, ReceiptCopy::Customer, Symbol::Qr);
            let lines = decode(&bytes).unwrap();
            for l in &lines {
                assert!(columns(l) <= cols, "{l:?} is wider than {cols}");
            }
            let text = lines.join("\n");
            for want in [
                "测试商户",
                "客户联",
                "T01",
                "2026-11-22 10:00:00",
                "微信支付",
                "1345**********6789",
                "4200001234202611221234567890",
                "￥12.00",
                "-￥3.00",
                "￥9.00",
                "[QR] T0120261122100000001",
                "[CUT]",
            ] {
                assert!(
                    text.contains(want),
                    "{want:?} missing from {paper:?}:\n{text}"
                );
            }
        }
        let lines = decode(&layout(
            &sample(),
            Paper::Mm58,
            ReceiptCopy::Customer,
            Symbol::Qr,
        ))
        .unwrap();
        assert!(lines.contains(&format!("金额{}￥12.00", " ".repeat(32 - 4 - 7))));
    }

    #[test]
    fn merchant_copy_barcode_and_unpaid() {
        let mut r = sample();
        r.state = "QUERYING".into();
        let lines = decode(&layout(
            &r,
            Paper::Mm80,
            ReceiptCopy::Merchant,
            Symbol::Code128,
        ))
        .unwrap();
        assert!(lines.contains(&"商户联".to_string()), "{lines:?}");
        assert!(lines.contains(&"签名:".to_string()));
        assert!(lines.contains(&"未支付 (QUERYING)".to_string()));
        assert!(lines.contains(&"[CODE128] T0120261122100000001".to_string()));
    }

    #[test]
    fn chinese_is_gb18030_inside_chinese_mode() {
        let bytes = layout(&sample(), Paper::Mm58, ReceiptCopy::Customer, Symbol::Qr);
        assert_eq!(&bytes[..4], &[ESC, b'@', FS, b'&']);
        // 测 in GB18030 is B2 E2.
        assert!(bytes.windows(2).any(|w| w == [0xb2, 0xe2]));
        assert!(!bytes.windows(3).any(|w| w == "测".as_bytes()), "no UTF-8");
    }
}
