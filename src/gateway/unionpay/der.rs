//! A small, strict DER reader for the few ASN.1 structures ACP needs (PKCS#12, X.509, RSA keys).
//!
//! It owns tag-length-value walking, OID and INTEGER decoding and time parsing. It must not
//! allocate on the hot path, accept indefinite (BER) lengths, or panic on any input: every
//! malformed byte becomes a [`DerError`] that says what was expected where.

use std::fmt;

/// Universal tags used by the structures we read.
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;
pub(crate) const UTF8_STRING: u8 = 0x0c;
pub(crate) const PRINTABLE_STRING: u8 = 0x13;
pub(crate) const T61_STRING: u8 = 0x14;
pub(crate) const IA5_STRING: u8 = 0x16;
pub(crate) const UTC_TIME: u8 = 0x17;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;
pub(crate) const BMP_STRING: u8 = 0x1e;
pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;

/// Context-specific tag `[n]`, constructed.
pub(crate) const fn ctx_cons(n: u8) -> u8 {
    0xa0 | n
}

/// Context-specific tag `[n]`, primitive.
pub(crate) const fn ctx_prim(n: u8) -> u8 {
    0x80 | n
}

/// What was wrong with a DER encoding, and where (a short path like "certificate.tbs.validity").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerError {
    pub(crate) what: String,
}

impl DerError {
    pub(crate) fn new(what: impl Into<String>) -> DerError {
        DerError { what: what.into() }
    }
}

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for DerError {}

/// One decoded element: its tag, its content and the whole encoding (header included).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over this element's content (for SEQUENCE, SET and constructed context tags).
    pub fn reader(&self) -> Reader<'a> {
        Reader::new(self.content)
    }
}

/// A cursor over a run of DER elements.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    /// Reads the next element, whatever its tag.
    pub fn any(&mut self, ctx: &str) -> Result<Tlv<'a>, DerError> {
        let buf = self.buf;
        let tag = *buf
            .first()
            .ok_or_else(|| DerError::new(format!("{ctx}: unexpected end of data")))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError::new(format!(
                "{ctx}: multi-byte tags are not supported"
            )));
        }
        let first = *buf
            .get(1)
            .ok_or_else(|| DerError::new(format!("{ctx}: truncated length")))?;
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2usize)
        } else if first == 0x80 {
            return Err(DerError::new(format!(
                "{ctx}: indefinite length (BER) is not DER; re-export the file with a DER encoder"
            )));
        } else {
            let n = usize::from(first & 0x7f);
            if n > 4 {
                return Err(DerError::new(format!("{ctx}: length field too long")));
            }
            let bytes = buf
                .get(2..2 + n)
                .ok_or_else(|| DerError::new(format!("{ctx}: truncated length")))?;
            let mut len = 0usize;
            for &b in bytes {
                len = (len << 8) | usize::from(b);
            }
            (len, 2 + n)
        };
        let end = header
            .checked_add(len)
            .ok_or_else(|| DerError::new(format!("{ctx}: length overflow")))?;
        if end > buf.len() {
            return Err(DerError::new(format!(
                "{ctx}: element says {len} bytes but only {} remain",
                buf.len().saturating_sub(header)
            )));
        }
        let tlv = Tlv {
            tag,
            content: &buf[header..end],
            raw: &buf[..end],
        };
        self.buf = &buf[end..];
        Ok(tlv)
    }

    /// Reads the next element and requires its tag.
    pub fn expect(&mut self, tag: u8, ctx: &str) -> Result<Tlv<'a>, DerError> {
        let tlv = self.any(ctx)?;
        if tlv.tag != tag {
            return Err(DerError::new(format!(
                "{ctx}: expected tag 0x{tag:02x}, found 0x{:02x}",
                tlv.tag
            )));
        }
        Ok(tlv)
    }

    /// Reads the next element only if it carries `tag`.
    pub fn optional(&mut self, tag: u8, ctx: &str) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.any(ctx).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn sequence(&mut self, ctx: &str) -> Result<Reader<'a>, DerError> {
        Ok(self.expect(SEQUENCE, ctx)?.reader())
    }

    pub fn oid(&mut self, ctx: &str) -> Result<String, DerError> {
        let tlv = self.expect(OID, ctx)?;
        oid_to_string(tlv.content).ok_or_else(|| DerError::new(format!("{ctx}: malformed OID")))
    }

    pub fn octet_string(&mut self, ctx: &str) -> Result<&'a [u8], DerError> {
        Ok(self.expect(OCTET_STRING, ctx)?.content)
    }

    /// A non-negative INTEGER that fits in a u64.
    pub fn small_uint(&mut self, ctx: &str) -> Result<u64, DerError> {
        let tlv = self.expect(INTEGER, ctx)?;
        let mag = uint_magnitude(tlv.content, ctx)?;
        if mag.len() > 8 {
            return Err(DerError::new(format!("{ctx}: integer too large")));
        }
        Ok(mag.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Requires that nothing is left.
    pub fn finish(&self, ctx: &str) -> Result<(), DerError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DerError::new(format!(
                "{ctx}: {} unexpected trailing bytes",
                self.buf.len()
            )))
        }
    }
}

/// Parses exactly one element covering all of `buf`.
pub(crate) fn single<'a>(buf: &'a [u8], tag: u8, ctx: &str) -> Result<Tlv<'a>, DerError> {
    let mut r = Reader::new(buf);
    let tlv = r.expect(tag, ctx)?;
    r.finish(ctx)?;
    Ok(tlv)
}

/// The big-endian magnitude of a non-negative INTEGER, without its sign-padding zero.
pub(crate) fn uint_magnitude<'a>(content: &'a [u8], ctx: &str) -> Result<&'a [u8], DerError> {
    match content {
        [] => Err(DerError::new(format!("{ctx}: empty integer"))),
        [b, ..] if b & 0x80 != 0 => Err(DerError::new(format!("{ctx}: negative integer"))),
        [0, rest @ ..] if !rest.is_empty() => Ok(rest),
        _ => Ok(content),
    }
}

/// Dotted-decimal form of an OID's content bytes.
pub(crate) fn oid_to_string(content: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    let mut in_arc = false;
    for &b in content {
        if !in_arc && b == 0x80 {
            return None; // non-minimal encoding
        }
        acc = acc.checked_mul(128)?.checked_add(u64::from(b & 0x7f))?;
        in_arc = true;
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
            in_arc = false;
        }
    }
    if in_arc || arcs.is_empty() {
        return None;
    }
    let first = arcs[0];
    let (a, b) = if first < 40 {
        (0, first)
    } else if first < 80 {
        (1, first - 40)
    } else {
        (2, first - 80)
    };
    let mut s = format!("{a}.{b}");
    for arc in &arcs[1..] {
        s.push('.');
        s.push_str(&arc.to_string());
    }
    Some(s)
}

/// Decimal string of a big-endian unsigned integer (how ACP spells a certificate serial).
pub(crate) fn be_bytes_to_decimal(bytes: &[u8]) -> String {
    // Repeated division by 10^9 over base-256 digits; serials are at most 20 bytes.
    let mut digits: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
    if digits.is_empty() {
        return "0".to_string();
    }
    let mut chunks: Vec<u32> = Vec::new();
    while !digits.is_empty() {
        let mut rem: u64 = 0;
        let mut next = Vec::with_capacity(digits.len());
        for &d in &digits {
            let cur = (rem << 8) | u64::from(d);
            let q = cur / 1_000_000_000;
            rem = cur % 1_000_000_000;
            if !(next.is_empty() && q == 0) {
                next.push(q as u8);
            }
        }
        chunks.push(rem as u32);
        digits = next;
    }
    let mut out = String::new();
    for (i, c) in chunks.iter().rev().enumerate() {
        if i == 0 {
            out.push_str(&c.to_string());
        } else {
            out.push_str(&format!("{c:09}"));
        }
    }
    out
}

/// UTCTime or GeneralizedTime (UTC, "Z" form, as RFC 5280 requires) to Unix seconds.
pub(crate) fn time_to_unix(tlv: &Tlv<'_>, ctx: &str) -> Result<i64, DerError> {
    let s = std::str::from_utf8(tlv.content)
        .map_err(|_| DerError::new(format!("{ctx}: time is not ASCII")))?;
    let bad = || DerError::new(format!("{ctx}: malformed time {s:?}"));
    let (year, rest) = match tlv.tag {
        UTC_TIME => {
            if s.len() != 13 {
                return Err(bad());
            }
            let yy: i32 = s.get(0..2).and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        GENERALIZED_TIME => {
            if s.len() != 15 {
                return Err(bad());
            }
            let yyyy: i32 = s.get(0..4).and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            (yyyy, &s[4..])
        }
        _ => return Err(DerError::new(format!("{ctx}: not a time"))),
    };
    if !rest.ends_with('Z') || !rest[..rest.len() - 1].bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n = |i: usize| -> Result<u32, DerError> {
        rest.get(i..i + 2)
            .and_then(|x| x.parse().ok())
            .ok_or_else(bad)
    };
    let date = chrono::NaiveDate::from_ymd_opt(year, n(0)?, n(2)?).ok_or_else(bad)?;
    let dt = date.and_hms_opt(n(4)?, n(6)?, n(8)?).ok_or_else(bad)?;
    Ok(dt.and_utc().timestamp())
}

/// Text of a directory-string value (UTF8String, PrintableString, IA5String, T61String, BMPString).
pub(crate) fn directory_string(tlv: &Tlv<'_>) -> Option<String> {
    match tlv.tag {
        UTF8_STRING | PRINTABLE_STRING | IA5_STRING => {
            std::str::from_utf8(tlv.content).ok().map(str::to_string)
        }
        // T61 is in practice Latin-1 in the certificates that still use it.
        T61_STRING => Some(tlv.content.iter().map(|&b| char::from(b)).collect()),
        BMP_STRING => {
            if !tlv.content.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = tlv
                .content
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_serials_match_known_cert_ids() {
        assert_eq!(
            be_bytes_to_decimal(&[0x10, 0x02, 0x65, 0x32, 0x15]),
            "68759663125"
        );
        assert_eq!(
            be_bytes_to_decimal(&[0x10, 0x46, 0x90, 0x01, 0x49]),
            "69903319369"
        );
        assert_eq!(be_bytes_to_decimal(&[0]), "0");
        assert_eq!(
            be_bytes_to_decimal(&[0xff; 9]),
            (u128::from(u64::MAX) * 256 + 255).to_string()
        );
    }

    #[test]
    fn oids_decode() {
        assert_eq!(
            oid_to_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01]).as_deref(),
            Some("1.2.840.113549.1.7.1")
        );
        assert_eq!(
            oid_to_string(&[0x55, 0x04, 0x03]).as_deref(),
            Some("2.5.4.3")
        );
        assert_eq!(oid_to_string(&[0x2a, 0x86]), None);
    }

    #[test]
    fn lengths_are_checked() {
        // Claims 5 bytes, has 2.
        assert!(Reader::new(&[0x04, 0x05, 1, 2]).any("x").is_err());
        // Indefinite length refused.
        assert!(Reader::new(&[0x30, 0x80, 0, 0]).any("x").is_err());
        // Long form.
        let mut data = vec![0x04, 0x81, 0x80];
        data.extend(std::iter::repeat_n(7u8, 0x80));
        let tlv = single(&data, OCTET_STRING, "x").unwrap();
        assert_eq!(tlv.content.len(), 0x80);
        // Trailing garbage refused by single().
        assert!(single(&[0x05, 0x00, 0x00], 0x05, "x").is_err());
    }

    #[test]
    fn times_parse() {
        let t = Tlv {
            tag: UTC_TIME,
            content: b"250731011916Z",
            raw: b"",
        };
        assert_eq!(time_to_unix(&t, "t").unwrap(), 1_753_924_756);
        let g = Tlv {
            tag: GENERALIZED_TIME,
            content: b"20491231235959Z",
            raw: b"",
        };
        assert!(time_to_unix(&g, "t").unwrap() > 2_000_000_000);
        let bad = Tlv {
            tag: UTC_TIME,
            content: b"251331011916Z",
            raw: b"",
        };
        assert!(time_to_unix(&bad, "t").is_err());
    }
}
