//! Reads ESC/POS bytes back as the lines a printer would print, for the tests (which play the
//! printer) and for `payterm receipt` without `--out`.
//!
//! It knows the commands [`super::layout`] emits and the status requests a driver sends, and
//! refuses anything else with a typed error rather than guessing: a byte it does not know could
//! be a command a real printer would act on. Symbols come back as `[QR] data` or
//! `[CODE128] data` lines and the cut as `[CUT]`. It must not be used to render receipts.

use thiserror::Error;

use super::esc::{ESC, FS, GS, LF};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the bytes end inside a command that began at offset {0}")]
    Truncated(usize),
    #[error("unknown command {0:#04x} {1:#04x} at offset {2}")]
    Unknown(u8, u8, usize),
    #[error("byte {0:#04x} at offset {1} is not text outside Chinese mode (FS &)")]
    NotChineseMode(u8, usize),
    #[error("invalid GB18030 text at offset {0}")]
    BadText(usize),
}

const DLE: u8 = 0x10;
const EOT: u8 = 0x04;

/// The printed lines. A line still open at the end (no LF) is returned too.
pub fn decode(bytes: &[u8]) -> Result<Vec<String>, DecodeError> {
    let mut lines = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut chinese = false;
    let mut qr_data: Option<Vec<u8>> = None;
    let mut i = 0;
    let need = |i: usize, n: usize| {
        if i + n <= bytes.len() {
            Ok(())
        } else {
            Err(DecodeError::Truncated(i))
        }
    };
    let flush = |line: &mut Vec<u8>, lines: &mut Vec<String>, at: usize| {
        let (text, bad) = encoding_rs::GB18030.decode_without_bom_handling(line);
        if bad {
            return Err(DecodeError::BadText(at));
        }
        lines.push(text.into_owned());
        line.clear();
        Ok(())
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            LF => {
                flush(&mut line, &mut lines, i)?;
                i += 1;
            }
            ESC => {
                need(i, 2)?;
                match bytes[i + 1] {
                    b'@' => {
                        chinese = false;
                        i += 2;
                    }
                    // Alignment, bold, print mode, feed lines: one argument, nothing printed.
                    b'a' | b'E' | b'!' => {
                        need(i, 3)?;
                        i += 3;
                    }
                    b'd' => {
                        need(i, 3)?;
                        if !line.is_empty() {
                            flush(&mut line, &mut lines, i)?;
                        }
                        i += 3;
                    }
                    c => return Err(DecodeError::Unknown(b, c, i)),
                }
            }
            FS => {
                need(i, 2)?;
                match bytes[i + 1] {
                    b'&' => chinese = true,
                    b'.' => chinese = false,
                    c => return Err(DecodeError::Unknown(b, c, i)),
                }
                i += 2;
            }
            DLE => {
                // A status request (DLE EOT n) prints nothing.
                need(i, 3)?;
                if bytes[i + 1] != EOT {
                    return Err(DecodeError::Unknown(b, bytes[i + 1], i));
                }
                i += 3;
            }
            GS => {
                need(i, 2)?;
                match bytes[i + 1] {
                    b'!' | b'h' | b'w' | b'H' => {
                        need(i, 3)?;
                        i += 3;
                    }
                    b'V' => {
                        need(i, 3)?;
                        // Function B (65, 66) carries a feed amount.
                        let n = if matches!(bytes[i + 2], 65 | 66) {
                            4
                        } else {
                            3
                        };
                        need(i, n)?;
                        lines.push("[CUT]".into());
                        i += n;
                    }
                    b'k' => {
                        need(i, 4)?;
                        let m = bytes[i + 2];
                        if m < 65 {
                            return Err(DecodeError::Unknown(b, m, i));
                        }
                        let n = bytes[i + 3] as usize;
                        need(i, 4 + n)?;
                        let data = &bytes[i + 4..i + 4 + n];
                        let data = if m == 73 && data.starts_with(b"{") && data.len() >= 2 {
                            &data[2..]
                        } else {
                            data
                        };
                        let kind = if m == 73 { "CODE128" } else { "BARCODE" };
                        lines.push(format!("[{kind}] {}", String::from_utf8_lossy(data)));
                        i += 4 + n;
                    }
                    b'(' => {
                        need(i, 5)?;
                        if bytes[i + 2] != b'k' {
                            return Err(DecodeError::Unknown(b, bytes[i + 2], i));
                        }
                        let n = bytes[i + 3] as usize | (bytes[i + 4] as usize) << 8;
                        need(i, 5 + n)?;
                        let p = &bytes[i + 5..i + 5 + n];
                        // cn = 49 is QR; fn 80 stores the data, fn 81 prints what was stored.
                        match p {
                            [49, 80, 48, data @ ..] => qr_data = Some(data.to_vec()),
                            [49, 81, 48] => {
                                let d = qr_data.take().unwrap_or_default();
                                lines.push(format!("[QR] {}", String::from_utf8_lossy(&d)));
                            }
                            _ => {}
                        }
                        i += 5 + n;
                    }
                    c => return Err(DecodeError::Unknown(b, c, i)),
                }
            }
            0x20..=0x7e => {
                line.push(b);
                i += 1;
            }
            0x81..=0xfe if chinese => {
                // GB18030: two bytes, or four when the second is a digit.
                let n = if bytes.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                    4
                } else {
                    2
                };
                need(i, n)?;
                line.extend_from_slice(&bytes[i..i + n]);
                i += n;
            }
            _ if !chinese && b >= 0x80 => return Err(DecodeError::NotChineseMode(b, i)),
            _ => return Err(DecodeError::Unknown(b, 0, i)),
        }
    }
    if !line.is_empty() {
        flush(&mut line, &mut lines, bytes.len())?;
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_outside_chinese_mode_and_cut_commands_are_refused() {
        let (gb, _, _) = encoding_rs::GB18030.encode("商户");
        let mut b = vec![ESC, b'@'];
        b.extend_from_slice(&gb);
        assert!(matches!(
            decode(&b),
            Err(DecodeError::NotChineseMode(0xc9, 2))
        ));
        let mut b = vec![ESC, b'@', FS, b'&'];
        b.extend_from_slice(&gb);
        b.push(LF);
        assert_eq!(decode(&b).unwrap(), ["商户"]);
        assert_eq!(
            decode(&[GS, b'(', b'k', 9, 0]),
            Err(DecodeError::Truncated(0))
        );
        assert!(matches!(
            decode(&[ESC, b'Z']),
            Err(DecodeError::Unknown(..))
        ));
    }
}
