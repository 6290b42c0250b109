//! The dynamic QR code a customer scans (a pre-order's `code_url`), drawn with whole-pixel
//! modules and a quiet zone so phone cameras read it at any of the supported sizes.
//!
//! Only encoding and drawing live here; which URL to show is the engine's business.

use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use qrcode::{Color, EcLevel, QrCode};

use super::frame::rgb;

/// Modules of white around the code; the standard asks for 4, phones cope with 2, and the
/// smallest screens need the room.
const QUIET: u32 = 2;

/// Why a code could not be drawn.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QrError {
    #[error("the text cannot be encoded as a QR code ({0})")]
    Encode(String),
    #[error("a {modules}-module QR code does not fit in {side} px")]
    TooSmall { modules: u32, side: u32 },
    #[error("the QR text is empty")]
    Empty,
}

/// Encodes `data` with medium error correction; returns the modules row-major and the side.
pub fn encode(data: &str) -> Result<(Vec<bool>, u32), QrError> {
    if data.is_empty() {
        return Err(QrError::Empty);
    }
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .map_err(|e| QrError::Encode(e.to_string()))?;
    let side = code.width() as u32;
    Ok((
        code.to_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect(),
        side,
    ))
}

/// Draws the code centred in `area` (a white square with the quiet zone, dark modules in
/// near-black). The outer error is the encoding problem; the inner one the display's.
pub fn draw_qr<D>(d: &mut D, data: &str, area: Rectangle) -> Result<Result<(), D::Error>, QrError>
where
    D: DrawTarget<Color = Rgb565>,
{
    let (modules, n) = encode(data)?;
    let side = area.size.width.min(area.size.height);
    let module = side / (n + 2 * QUIET);
    if module == 0 {
        return Err(QrError::TooSmall { modules: n, side });
    }
    let total = module * (n + 2 * QUIET);
    let origin = area.center() - Point::new(total as i32 / 2, total as i32 / 2);
    let dark = rgb(0, 0, 0);
    if let Err(e) = d.fill_solid(
        &Rectangle::new(origin, Size::new(total, total)),
        rgb(255, 255, 255),
    ) {
        return Ok(Err(e));
    }
    let m = module as i32;
    let q = (QUIET * module) as i32;
    for y in 0..n {
        // Runs of dark modules on a row are filled as one rectangle.
        let mut x = 0;
        while x < n {
            if modules[(y * n + x) as usize] {
                let start = x;
                while x < n && modules[(y * n + x) as usize] {
                    x += 1;
                }
                let r = Rectangle::new(
                    origin + Point::new(q + start as i32 * m, q + y as i32 * m),
                    Size::new((x - start) * module, module),
                );
                if let Err(e) = d.fill_solid(&r, dark) {
                    return Ok(Err(e));
                }
            } else {
                x += 1;
            }
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::frame::Frame;

    #[test]
    fn drawn_modules_match_the_encoding() {
        let url = "weixin://wxpay/bizpayurl?pr=AbCdEf1";
        let (mods, n) = encode(url).unwrap_or_else(|e| panic!("{e}"));
        let mut f = Frame::new(200, 200);
        let area = Rectangle::new(Point::zero(), Size::new(200, 200));
        assert_eq!(draw_qr(&mut f, url, area), Ok(Ok(())));
        let module = 200 / (n + 2 * QUIET);
        let total = module * (n + 2 * QUIET);
        let origin = (200 - total) / 2 + QUIET * module;
        for y in 0..n {
            for x in 0..n {
                // Sample the middle of every module.
                let px = f.get(
                    origin + x * module + module / 2,
                    origin + y * module + module / 2,
                );
                let expect = if mods[(y * n + x) as usize] {
                    rgb(0, 0, 0)
                } else {
                    rgb(255, 255, 255)
                };
                assert_eq!(px, Some(expect), "module {x},{y}");
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut f = Frame::new(50, 50);
        let area = Rectangle::new(Point::zero(), Size::new(20, 20));
        assert_eq!(draw_qr(&mut f, "", area), Err(QrError::Empty));
        assert!(matches!(
            draw_qr(&mut f, "weixin://wxpay/bizpayurl?pr=x", area),
            Err(QrError::TooSmall { .. })
        ));
        assert!(matches!(encode(&"x".repeat(5000)), Err(QrError::Encode(_))));
    }
}
