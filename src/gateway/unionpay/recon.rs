//! Reconciliation files of transaction 76 (文件传输): `fileContent` decoding, the ZIP archive it
//! carries, and the fixed-width ZM (一般交易明细流水) records inside.
//!
//! Owns: `fileContent` = Base64(zlib(bytes of a ZIP archive)) (PROTOCOLS.md §A.6, KAT
//! `test_data`), a small bounded ZIP reader/writer (stored and deflated entries, CRC-checked, no
//! ZIP64), and the ZM layout of 《全渠道平台接入接口规范 第3部分 文件接口》 §6.1: 42 fields of fixed
//! byte widths, one space between fields, one record per line (files are GBK; every field we
//! type is ASCII, free-text fields are decoded lossily). It does no file I/O and never trusts a
//! size or count in the input beyond the limits below.

use std::io::Read;

use base64::Engine as _;
use flate2::read::{DeflateDecoder, ZlibDecoder};

use super::txn::TxnTime;
use crate::core::money::Amount;

/// Largest decompressed archive or entry accepted (a day of a busy merchant is a few MB).
pub const MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;

/// Why a reconciliation file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconError {
    #[error("fileContent is not base64")]
    NotBase64,
    #[error("fileContent is not zlib data: {0}")]
    NotZlib(String),
    #[error("the file is larger than {MAX_DECOMPRESSED} bytes once decompressed")]
    TooLarge,
    #[error("not a ZIP archive: {0}")]
    BadZip(String),
    #[error("ZIP entry {name}: {why}")]
    BadEntry { name: String, why: String },
    #[error("ZM line {line}: {why}")]
    BadLine { line: usize, why: String },
}

/// The ACP clearing date of a Beijing wall-clock time: from 23:00 on it is the next day's.
/// Here, not in the command line, because the sandbox files its transactions by it too.
pub fn clearing_date(t: TxnTime) -> chrono::NaiveDate {
    let n = t.naive();
    let d = n.date();
    if n.time() >= chrono::NaiveTime::from_hms_opt(23, 0, 0).unwrap_or_default() {
        d.succ_opt().unwrap_or(d)
    } else {
        d
    }
}

/// Decodes `fileContent`: Base64, then zlib inflate.
pub fn decode_file_content(b64: &str) -> Result<Vec<u8>, ReconError> {
    let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let z = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| ReconError::NotBase64)?;
    let mut out = Vec::new();
    ZlibDecoder::new(&z[..])
        .take(MAX_DECOMPRESSED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ReconError::NotZlib(e.to_string()))?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(ReconError::TooLarge);
    }
    Ok(out)
}

/// Encodes bytes as `fileContent` (what the sandbox sends).
pub fn encode_file_content(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    let z = enc.finish().unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(z)
}

/// One file of an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipEntry {
    pub name: String,
    pub data: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads every file of a ZIP archive through its central directory.
pub fn unzip(archive: &[u8]) -> Result<Vec<ZipEntry>, ReconError> {
    let bad = |s: &str| ReconError::BadZip(s.to_string());
    // End of central directory: 22 bytes plus a comment of up to 65535 bytes.
    let min = archive.len().saturating_sub(22 + 65_535);
    let eocd = (min..=archive.len().saturating_sub(22))
        .rev()
        .find(|&i| archive.get(i..i + 4) == Some(&b"PK\x05\x06"[..]))
        .ok_or_else(|| bad("no end-of-central-directory record"))?;
    let count = u16_at(archive, eocd + 10).ok_or_else(|| bad("truncated"))? as usize;
    let cd_off = u32_at(archive, eocd + 16).ok_or_else(|| bad("truncated"))? as usize;
    if cd_off == 0xffff_ffff || count == 0xffff {
        return Err(bad("ZIP64 archives are not supported"));
    }
    let mut entries = Vec::with_capacity(count.min(1024));
    let mut total = 0usize;
    let mut p = cd_off;
    for _ in 0..count {
        if archive.get(p..p + 4) != Some(&b"PK\x01\x02"[..]) {
            return Err(bad("central directory entry signature"));
        }
        let flags = u16_at(archive, p + 8).ok_or_else(|| bad("truncated"))?;
        let method = u16_at(archive, p + 10).ok_or_else(|| bad("truncated"))?;
        let crc = u32_at(archive, p + 16).ok_or_else(|| bad("truncated"))?;
        let csize = u32_at(archive, p + 20).ok_or_else(|| bad("truncated"))? as usize;
        let usize_ = u32_at(archive, p + 24).ok_or_else(|| bad("truncated"))? as usize;
        let nlen = u16_at(archive, p + 28).ok_or_else(|| bad("truncated"))? as usize;
        let elen = u16_at(archive, p + 30).ok_or_else(|| bad("truncated"))? as usize;
        let clen = u16_at(archive, p + 32).ok_or_else(|| bad("truncated"))? as usize;
        let lho = u32_at(archive, p + 42).ok_or_else(|| bad("truncated"))? as usize;
        let name_bytes = archive
            .get(p + 46..p + 46 + nlen)
            .ok_or_else(|| bad("truncated name"))?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        p += 46 + nlen + elen + clen;
        let entry_err = |why: &str| ReconError::BadEntry {
            name: name.clone(),
            why: why.to_string(),
        };
        if flags & 1 != 0 {
            return Err(entry_err("encrypted entries are not supported"));
        }
        if name.ends_with('/') {
            continue; // directory
        }
        if usize_ > MAX_DECOMPRESSED || total + usize_ > MAX_DECOMPRESSED {
            return Err(ReconError::TooLarge);
        }
        if archive.get(lho..lho + 4) != Some(&b"PK\x03\x04"[..]) {
            return Err(entry_err("local header signature"));
        }
        let lnlen = u16_at(archive, lho + 26).ok_or_else(|| entry_err("truncated"))? as usize;
        let lelen = u16_at(archive, lho + 28).ok_or_else(|| entry_err("truncated"))? as usize;
        let start = lho + 30 + lnlen + lelen;
        let raw = archive
            .get(start..start.saturating_add(csize))
            .ok_or_else(|| entry_err("data runs past the end of the archive"))?;
        let data = match method {
            0 => raw.to_vec(),
            8 => {
                let mut out = Vec::with_capacity(usize_);
                DeflateDecoder::new(raw)
                    .take(usize_ as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| entry_err(&format!("deflate: {e}")))?;
                out
            }
            m => {
                return Err(entry_err(&format!(
                    "compression method {m} is not supported"
                )));
            }
        };
        if data.len() != usize_ {
            return Err(entry_err("size differs from the directory"));
        }
        let mut h = flate2::Crc::new();
        h.update(&data);
        if h.sum() != crc {
            return Err(entry_err("CRC mismatch"));
        }
        total += data.len();
        entries.push(ZipEntry { name, data });
    }
    Ok(entries)
}

/// Writes a ZIP archive of stored (uncompressed) entries; `fileContent`'s zlib layer compresses.
pub fn zip_stored(entries: &[ZipEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let mut h = flate2::Crc::new();
        h.update(&e.data);
        let crc = h.sum();
        let offset = out.len() as u32;
        let name = e.name.as_bytes();
        let size = e.data.len() as u32;
        // Local header.
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0x0800u16.to_le_bytes()); // flags: UTF-8 names
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&[0, 0, 0x21, 0]); // time, date (1980-01-01)
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&e.data);
        // Central directory entry.
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&0x0800u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&[0, 0, 0x21, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]); // extra, comment, disk, attrs
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let cd_off = out.len() as u32;
    let cd_len = central.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&cd_len.to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Byte widths of the 42 ZM fields (§6.1), separated by one space each.
pub const ZM_WIDTHS: [usize; 42] = [
    3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6, 2, 4, 32, 1, 21,
    15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98,
];

/// Fields up to and including `merId` (the 28th) must be present in every record.
const ZM_REQUIRED_FIELDS: usize = 28;

/// A signed amount of the form `X+n12`: C(redit) or D(ebit) then fen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebitCredit {
    Credit(Amount),
    Debit(Amount),
}

impl DebitCredit {
    /// Credit positive, debit negative, in fen.
    pub fn signed_fen(self) -> i64 {
        match self {
            DebitCredit::Credit(a) => i64::try_from(a.fen()).unwrap_or(i64::MAX),
            DebitCredit::Debit(a) => -i64::try_from(a.fen()).unwrap_or(i64::MAX),
        }
    }
}

/// One ZM record (一般交易明细). Text fields are trimmed; blank optional fields are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZmRecord {
    /// 交易代码 (n3).
    pub txn_code: String,
    /// 代理机构标识码.
    pub acq_ins_code: String,
    /// 发送机构标识码.
    pub send_ins_code: String,
    /// 系统跟踪号 (traceNo).
    pub trace_no: String,
    /// 交易传输时间 MMDDhhmmss (traceTime).
    pub trace_time: String,
    /// 帐号, as printed (masked by UnionPay).
    pub acc_no: String,
    /// 交易金额.
    pub amount: Amount,
    /// 商户类别 (MCC).
    pub mcc: String,
    /// 终端类型.
    pub term_type: String,
    /// 查询流水号 (queryId).
    pub query_id: String,
    /// 支付方式（旧）.
    pub pay_type_old: String,
    /// 商户订单号 (orderId).
    pub order_id: String,
    /// 支付卡类型.
    pub pay_card_type: String,
    /// 原始交易的系统跟踪号.
    pub orig_trace_no: String,
    /// 原始交易日期时间 MMDDhhmmss.
    pub orig_trans_time: String,
    /// 商户手续费.
    pub mer_fee: Option<DebitCredit>,
    /// 结算金额 (amount net of the fee).
    pub settle_amount: Option<DebitCredit>,
    /// 支付方式.
    pub pay_type: String,
    /// 集团商户代码.
    pub group_mer_id: String,
    pub txn_type: String,
    pub txn_sub_type: String,
    pub biz_type: String,
    /// 帐号类型.
    pub acc_type: String,
    /// 账单类型.
    pub bill_type: String,
    /// 账单号码.
    pub bill_no: String,
    /// 交互方式.
    pub interact_mode: String,
    /// 原交易查询流水号 (origQryId).
    pub orig_qry_id: String,
    pub mer_id: String,
    /// 分账入账方式.
    pub split_type: String,
    pub sub_mer_id: String,
    pub sub_mer_abbr: String,
    /// 二级商户分账入账金额.
    pub split_amount: Option<DebitCredit>,
    /// 清算净额.
    pub net_amount: Option<DebitCredit>,
    pub term_id: String,
    /// 商户自定义域 (first 32 bytes of reqReserved).
    pub mer_reserved: String,
    /// 优惠金额.
    pub discount: Option<DebitCredit>,
    /// 发票金额.
    pub invoice: Option<DebitCredit>,
    /// 分期付款附加手续费 (X+n11).
    pub instalment_fee: Option<DebitCredit>,
    /// 分期付款期数.
    pub instalments: String,
    /// 交易介质.
    pub medium: String,
    /// 原始交易订单号 (filled on completions, refunds and undos).
    pub orig_order_id: String,
    /// 保留使用.
    pub reserved: String,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

fn parse_dc(b: &[u8], line: usize, what: &str) -> Result<Option<DebitCredit>, ReconError> {
    let t = text(b);
    if t.is_empty() {
        return Ok(None);
    }
    let err = || ReconError::BadLine {
        line,
        why: format!("{what} {t:?} is not C/D followed by digits"),
    };
    // The text is lossily decoded, so its first character may be multi-byte: match on the byte
    // rather than splitting the str at byte 1.
    let (credit, digits) = match t.as_bytes() {
        [b'C', rest @ ..] => (true, rest),
        [b'D', rest @ ..] => (false, rest),
        _ => return Err(err()),
    };
    if digits.is_empty() || !digits.iter().all(|c| c.is_ascii_digit()) {
        return Err(err());
    }
    let fen: u64 = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(err)?;
    let a = Amount::from_fen(fen);
    Ok(Some(if credit {
        DebitCredit::Credit(a)
    } else {
        DebitCredit::Debit(a)
    }))
}

/// Parses one ZM line (`line` is its 1-based number, for errors).
pub fn parse_zm_line(raw: &[u8], line: usize) -> Result<ZmRecord, ReconError> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let mut fields: Vec<&[u8]> = Vec::with_capacity(42);
    let mut at = 0usize;
    for (i, &w) in ZM_WIDTHS.iter().enumerate() {
        if at >= raw.len() {
            if i < ZM_REQUIRED_FIELDS {
                return Err(ReconError::BadLine {
                    line,
                    why: format!(
                        "{} bytes long; field {} (of width {w}) is missing",
                        raw.len(),
                        i + 1
                    ),
                });
            }
            fields.push(b"");
            continue;
        }
        if at > 0 && raw.get(at - 1) != Some(&b' ') {
            return Err(ReconError::BadLine {
                line,
                why: format!("no space before field {} at byte {}", i + 1, at),
            });
        }
        let end = (at + w).min(raw.len());
        if end < at + w && i < ZM_REQUIRED_FIELDS {
            return Err(ReconError::BadLine {
                line,
                why: format!("field {} is cut short", i + 1),
            });
        }
        fields.push(&raw[at..end]);
        at = end + 1;
    }
    let f = |i: usize| text(fields[i]);
    let amount_text = f(6);
    if amount_text.is_empty() || !amount_text.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ReconError::BadLine {
            line,
            why: format!("transaction amount {amount_text:?} is not digits"),
        });
    }
    let amount = Amount::from_fen(amount_text.parse().map_err(|_| ReconError::BadLine {
        line,
        why: "transaction amount too large".into(),
    })?);
    Ok(ZmRecord {
        txn_code: f(0),
        acq_ins_code: f(1),
        send_ins_code: f(2),
        trace_no: f(3),
        trace_time: f(4),
        acc_no: f(5),
        amount,
        mcc: f(7),
        term_type: f(8),
        query_id: f(9),
        pay_type_old: f(10),
        order_id: f(11),
        pay_card_type: f(12),
        orig_trace_no: f(13),
        orig_trans_time: f(14),
        mer_fee: parse_dc(fields[15], line, "merchant fee")?,
        settle_amount: parse_dc(fields[16], line, "settlement amount")?,
        pay_type: f(17),
        group_mer_id: f(18),
        txn_type: f(19),
        txn_sub_type: f(20),
        biz_type: f(21),
        acc_type: f(22),
        bill_type: f(23),
        bill_no: f(24),
        interact_mode: f(25),
        orig_qry_id: f(26),
        mer_id: f(27),
        split_type: f(28),
        sub_mer_id: f(29),
        sub_mer_abbr: f(30),
        split_amount: parse_dc(fields[31], line, "split amount")?,
        net_amount: parse_dc(fields[32], line, "net amount")?,
        term_id: f(33),
        mer_reserved: f(34),
        discount: parse_dc(fields[35], line, "discount")?,
        invoice: parse_dc(fields[36], line, "invoice amount")?,
        instalment_fee: parse_dc(fields[37], line, "instalment fee")?,
        instalments: f(38),
        medium: f(39),
        orig_order_id: f(40),
        reserved: f(41),
    })
}

/// Parses a whole ZM file; blank lines are skipped.
pub fn parse_zm(file: &[u8]) -> Result<Vec<ZmRecord>, ReconError> {
    file.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(|b| b.is_ascii_whitespace()))
        .map(|(i, l)| parse_zm_line(l, i + 1))
        .collect()
}

fn fmt_dc(v: Option<DebitCredit>, digits: usize) -> String {
    match v {
        None => String::new(),
        Some(DebitCredit::Credit(a)) => format!("C{:0digits$}", a.fen()),
        Some(DebitCredit::Debit(a)) => format!("D{:0digits$}", a.fen()),
    }
}

/// Formats a record as a ZM line (for the sandbox's reconciliation files). Values longer than
/// their width are cut; text is left-aligned and space-padded, the amount zero-padded.
pub fn format_zm_line(r: &ZmRecord) -> String {
    let values: [String; 42] = [
        r.txn_code.clone(),
        r.acq_ins_code.clone(),
        r.send_ins_code.clone(),
        r.trace_no.clone(),
        r.trace_time.clone(),
        r.acc_no.clone(),
        format!("{:012}", r.amount.fen()),
        r.mcc.clone(),
        r.term_type.clone(),
        r.query_id.clone(),
        r.pay_type_old.clone(),
        r.order_id.clone(),
        r.pay_card_type.clone(),
        r.orig_trace_no.clone(),
        r.orig_trans_time.clone(),
        fmt_dc(r.mer_fee, 12),
        fmt_dc(r.settle_amount, 12),
        r.pay_type.clone(),
        r.group_mer_id.clone(),
        r.txn_type.clone(),
        r.txn_sub_type.clone(),
        r.biz_type.clone(),
        r.acc_type.clone(),
        r.bill_type.clone(),
        r.bill_no.clone(),
        r.interact_mode.clone(),
        r.orig_qry_id.clone(),
        r.mer_id.clone(),
        r.split_type.clone(),
        r.sub_mer_id.clone(),
        r.sub_mer_abbr.clone(),
        fmt_dc(r.split_amount, 12),
        fmt_dc(r.net_amount, 12),
        r.term_id.clone(),
        r.mer_reserved.clone(),
        fmt_dc(r.discount, 12),
        fmt_dc(r.invoice, 12),
        fmt_dc(r.instalment_fee, 11),
        r.instalments.clone(),
        r.medium.clone(),
        r.orig_order_id.clone(),
        r.reserved.clone(),
    ];
    let mut line = String::new();
    for (i, (v, &w)) in values.iter().zip(ZM_WIDTHS.iter()).enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let mut cut = String::new();
        for c in v.chars() {
            if cut.len() + c.len_utf8() > w {
                break;
            }
            cut.push(c);
        }
        line.push_str(&cut);
        line.push_str(&" ".repeat(w - cut.len()));
    }
    line
}

/// The ZM records of a 76 reply's `fileContent`: every entry whose name contains `ZM_`
/// (ZME error files and others are skipped), with the entry name.
pub fn zm_records_from_file_content(
    file_content: &str,
) -> Result<Vec<(String, Vec<ZmRecord>)>, ReconError> {
    let archive = decode_file_content(file_content)?;
    let mut out = Vec::new();
    for e in unzip(&archive)? {
        let base = e.name.rsplit('/').next().unwrap_or(&e.name);
        if base.contains("ZM_") {
            let recs = parse_zm(&e.data).map_err(|err| ReconError::BadEntry {
                name: e.name.clone(),
                why: err.to_string(),
            })?;
            out.push((e.name, recs));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_content_kat() {
        // vectors/acp_sign_kat.json file_content_kat.
        assert_eq!(
            decode_file_content("eJwrSS0uiU9JLEkEABL5A7o=").unwrap(),
            b"test_data"
        );
        assert_eq!(
            encode_file_content(b"test_data"),
            "eJwrSS0uiU9JLEkEABL5A7o="
        );
        assert_eq!(decode_file_content("%%%"), Err(ReconError::NotBase64));
        assert!(matches!(
            decode_file_content("dGVzdA=="),
            Err(ReconError::NotZlib(_))
        ));
    }

    fn sample() -> ZmRecord {
        ZmRecord {
            txn_code: "S22".into(),
            acq_ins_code: "00010000".into(),
            send_ins_code: "00010000".into(),
            trace_no: "784649".into(),
            trace_time: "0105145046".into(),
            acc_no: "6216***********0018".into(),
            amount: Amount::from_fen(1234),
            mcc: "5311".into(),
            term_type: "08".into(),
            query_id: "442401051450467846498".into(),
            pay_type_old: "".into(),
            order_id: "pay20240105145046".into(),
            pay_card_type: "01".into(),
            orig_trace_no: "".into(),
            orig_trans_time: "".into(),
            mer_fee: Some(DebitCredit::Debit(Amount::from_fen(7))),
            settle_amount: Some(DebitCredit::Credit(Amount::from_fen(1227))),
            pay_type: "0001".into(),
            group_mer_id: "".into(),
            txn_type: "01".into(),
            txn_sub_type: "06".into(),
            biz_type: "000000".into(),
            acc_type: "01".into(),
            bill_type: "".into(),
            bill_no: "".into(),
            interact_mode: "".into(),
            orig_qry_id: "".into(),
            mer_id: "777290058167151".into(),
            split_type: "".into(),
            sub_mer_id: "".into(),
            sub_mer_abbr: "".into(),
            split_amount: None,
            net_amount: Some(DebitCredit::Credit(Amount::from_fen(1227))),
            term_id: "T0000001".into(),
            mer_reserved: "".into(),
            discount: None,
            invoice: None,
            instalment_fee: None,
            instalments: "".into(),
            medium: "".into(),
            orig_order_id: "".into(),
            reserved: "".into(),
        }
    }

    #[test]
    fn zm_line_layout_is_fixed_width() {
        let line = format_zm_line(&sample());
        assert_eq!(line.len(), 566 + 41);
        // Offsets worked out by hand: field 7 (amount) starts after 3+11+11+6+10+19 = 60 bytes
        // and 6 spaces; field 12 (orderId) after 101 bytes and 11 spaces.
        assert_eq!(&line[0..4], "S22 ");
        assert_eq!(&line[66..78], "000000001234");
        assert_eq!(&line[79..83], "5311");
        assert_eq!(line[112..144].trim_end(), "pay20240105145046");
        let back = parse_zm_line(line.as_bytes(), 1).unwrap();
        assert_eq!(back, sample());
        assert_eq!(back.settle_amount.unwrap().signed_fen(), 1227);
        assert_eq!(back.mer_fee.unwrap().signed_fen(), -7);
    }

    #[test]
    fn short_older_lines_and_crlf_are_accepted_bad_lines_refused() {
        let line = format_zm_line(&sample());
        // A record cut right after merId (older layouts) still parses; trailing fields empty.
        let mer_id_end: usize = ZM_WIDTHS[..28].iter().sum::<usize>() + 27;
        let short = &line[..mer_id_end];
        let rec = parse_zm_line(short.as_bytes(), 3).unwrap();
        assert_eq!(rec.mer_id, "777290058167151");
        assert_eq!(rec.net_amount, None);
        assert!(parse_zm_line(format!("{line}\r").as_bytes(), 1).is_ok());
        let cut = &line[..mer_id_end - 3];
        assert!(matches!(
            parse_zm_line(cut.as_bytes(), 7),
            Err(ReconError::BadLine { line: 7, .. })
        ));
        let mut bad_amount = line.clone().into_bytes();
        bad_amount[70] = b'x';
        assert!(parse_zm_line(&bad_amount, 1).is_err());
        let mut bad_dc = line.clone().into_bytes();
        let fee_at: usize = ZM_WIDTHS[..15].iter().sum::<usize>() + 15;
        bad_dc[fee_at] = b'X';
        assert!(parse_zm_line(&bad_dc, 1).is_err());
        let mut no_sep = line.into_bytes();
        no_sep[3] = b'x';
        assert!(parse_zm_line(&no_sep, 1).is_err());
    }

    #[test]
    fn multibyte_first_char_in_a_debit_credit_field_is_an_error_not_a_panic() {
        // The merchant-fee field starting with a multi-byte character ("é" then digits) used
        // to split the text inside that character and panic (abort, in release builds).
        let mut line = format_zm_line(&sample()).into_bytes();
        let fee_at: usize = ZM_WIDTHS[..15].iter().sum::<usize>() + 15;
        line[fee_at..fee_at + 2].copy_from_slice("é".as_bytes());
        assert!(matches!(
            parse_zm_line(&line, 4),
            Err(ReconError::BadLine { line: 4, .. })
        ));
        // Invalid UTF-8 there decodes to U+FFFD, also multi-byte.
        line[fee_at] = 0xff;
        assert!(parse_zm_line(&line, 4).is_err());
    }

    #[test]
    fn whole_file_content_round_trip_through_zip() {
        let a = format_zm_line(&sample());
        let mut s2 = sample();
        s2.txn_type = "04".into();
        s2.orig_order_id = "pay20240105145046".into();
        s2.order_id = "refund20240105".into();
        let b = format_zm_line(&s2);
        let zm = format!("{a}\r\n{b}\r\n\r\n");
        let archive = zip_stored(&[
            ZipEntry {
                name: "INN24010588ZM_777290058167151".into(),
                data: zm.into_bytes(),
            },
            ZipEntry {
                name: "INN24010588ZME_777290058167151".into(),
                data: b"error file".to_vec(),
            },
        ]);
        let fc = encode_file_content(&archive);
        let files = zm_records_from_file_content(&fc).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "INN24010588ZM_777290058167151");
        assert_eq!(files[0].1.len(), 2);
        assert_eq!(files[0].1[1].orig_order_id, "pay20240105145046");
        // Corruptions are errors.
        let mut bad = archive.clone();
        bad[30 + 29 + 5] ^= 1; // inside the first entry's data (after header and name): CRC
        assert!(matches!(unzip(&bad), Err(ReconError::BadEntry { .. })));
        assert!(unzip(&archive[..archive.len() - 5]).is_err());
        assert!(unzip(b"not a zip").is_err());
    }

    #[test]
    fn deflated_entries_are_read() {
        use std::io::Write;
        let data = b"hello hello hello hello".to_vec();
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&data).unwrap();
        let comp = enc.finish().unwrap();
        // Build a stored archive, then patch it into a deflated one.
        let stored = zip_stored(&[ZipEntry {
            name: "a".into(),
            data: data.clone(),
        }]);
        let mut z = Vec::new();
        z.extend_from_slice(&stored[..30 + 1]); // local header + name
        z.extend_from_slice(&comp);
        let cd_off = z.len() as u32;
        let cd_start = 30 + 1 + data.len();
        let mut cd = stored[cd_start..].to_vec();
        // method=8 and compressed size in both headers.
        z[8..10].copy_from_slice(&8u16.to_le_bytes());
        z[18..22].copy_from_slice(&(comp.len() as u32).to_le_bytes());
        cd[10..12].copy_from_slice(&8u16.to_le_bytes());
        cd[20..24].copy_from_slice(&(comp.len() as u32).to_le_bytes());
        let eocd_at = cd.len() - 22;
        cd[eocd_at + 16..eocd_at + 20].copy_from_slice(&cd_off.to_le_bytes());
        z.extend_from_slice(&cd);
        let entries = unzip(&z).unwrap();
        assert_eq!(entries[0].data, data);
    }

    #[test]
    fn the_clearing_day_turns_at_23_00() {
        let t = |s| TxnTime::parse(s).unwrap();
        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(clearing_date(t("20261122225959")), day(22));
        assert_eq!(clearing_date(t("20261122230000")), day(23));
    }
}
