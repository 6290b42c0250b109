//! Text: which bitmap font draws which character, at what size, and where lines wrap.
//!
//! A [`Face`] is a chain of u8g2 fonts tried in order for each character (Latin first in
//! English, so Chinese merchant names still render through WenQuanYi), plus an integer scale for
//! headings larger than the 16 px the CJK fonts stop at. A character no font has is drawn as
//! '?' instead of being dropped silently. Nothing here knows about screens.

use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use u8g2_fonts::FontRenderer;
use u8g2_fonts::fonts;
use u8g2_fonts::types::{FontColor, VerticalPosition};

use super::frame::Scaled;

pub(crate) static WQY12: FontRenderer = FontRenderer::new::<fonts::u8g2_font_wqy12_t_gb2312>();
pub(crate) static WQY16: FontRenderer = FontRenderer::new::<fonts::u8g2_font_wqy16_t_gb2312>();
pub(crate) static HELV_R10: FontRenderer = FontRenderer::new::<fonts::u8g2_font_helvR10_tf>();
pub(crate) static HELV_R12: FontRenderer = FontRenderer::new::<fonts::u8g2_font_helvR12_tf>();
pub(crate) static HELV_R14: FontRenderer = FontRenderer::new::<fonts::u8g2_font_helvR14_tf>();
pub(crate) static HELV_B14: FontRenderer = FontRenderer::new::<fonts::u8g2_font_helvB14_tf>();
pub(crate) static HELV_B18: FontRenderer = FontRenderer::new::<fonts::u8g2_font_helvB18_tf>();
pub(crate) static HELV_B24: FontRenderer = FontRenderer::new::<fonts::u8g2_font_helvB24_tf>();
pub(crate) static LOGISOSO24: FontRenderer = FontRenderer::new::<fonts::u8g2_font_logisoso24_tf>();
pub(crate) static LOGISOSO32: FontRenderer = FontRenderer::new::<fonts::u8g2_font_logisoso32_tf>();
pub(crate) static LOGISOSO42: FontRenderer = FontRenderer::new::<fonts::u8g2_font_logisoso42_tf>();
pub(crate) static LOGISOSO58: FontRenderer = FontRenderer::new::<fonts::u8g2_font_logisoso58_tf>();

/// A font chain at a scale.
#[derive(Clone, Copy)]
pub(crate) struct Face {
    pub chain: &'static [&'static FontRenderer],
    pub scale: u32,
}

/// Horizontal alignment of a line relative to its anchor x.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Align {
    Left,
    Center,
    Right,
}

impl Align {
    /// Where a run `width` pixels wide starts when aligned this way to the anchor `x`.
    pub fn start(self, x: i32, width: i32) -> i32 {
        match self {
            Align::Left => x,
            Align::Center => x - width / 2,
            Align::Right => x - width,
        }
    }
}

/// Vertical extent of a face: pixels above and below the baseline, scaled.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VMetrics {
    pub ascent: u32,
    pub descent: u32,
}

impl VMetrics {
    pub fn line_height(&self) -> u32 {
        self.ascent + self.descent
    }
}

impl Face {
    pub const fn new(chain: &'static [&'static FontRenderer], scale: u32) -> Face {
        Face { chain, scale }
    }

    fn pick(&self, c: char) -> Option<&'static FontRenderer> {
        // Some fonts carry an empty placeholder for glyphs they lack (Logisoso's '¥'): a
        // visible character without a bounding box counts as missing.
        self.chain.iter().copied().find(|f| {
            f.get_rendered_dimensions(c, Point::zero(), VerticalPosition::Baseline)
                .is_ok_and(|d| d.bounding_box.is_some() || c.is_whitespace())
        })
    }

    /// Splits text into runs drawn by one font each; unknown characters become '?'.
    fn runs(&self, text: &str) -> Vec<(&'static FontRenderer, String)> {
        let mut out: Vec<(&'static FontRenderer, String)> = Vec::new();
        for c in text.chars() {
            if c == '\n' || c == '\r' {
                continue;
            }
            let (font, c) = match self.pick(c) {
                Some(f) => (f, c),
                None => match self.pick('?') {
                    Some(f) => (f, '?'),
                    None => continue,
                },
            };
            match out.last_mut() {
                Some((f, s)) if std::ptr::eq(*f, font) => s.push(c),
                _ => out.push((font, c.to_string())),
            }
        }
        out
    }

    /// Whether every character of `text` has a glyph in this chain (no '?' substitution).
    #[cfg(test)]
    pub fn covers(&self, text: &str) -> bool {
        text.chars()
            .filter(|c| *c != '\n')
            .all(|c| self.pick(c).is_some())
    }

    /// Advance width of one line, in pixels.
    pub fn width(&self, text: &str) -> u32 {
        let w: i32 = self
            .runs(text)
            .iter()
            .map(|(f, s)| {
                f.get_rendered_dimensions(s.as_str(), Point::zero(), VerticalPosition::Baseline)
                    .map(|d| d.advance.x)
                    .unwrap_or(0)
            })
            .sum();
        w.max(0) as u32 * self.scale
    }

    /// Ascent and descent of the chain's first font (the one that sets the line's look).
    pub fn metrics(&self) -> VMetrics {
        let mut ascent = 0i32;
        let mut descent = 0i32;
        // Probed one character at a time: a Latin font lacks '国', a CJK font has it.
        for f in self.chain {
            for probe in ['国', 'A', 'g', '0'] {
                if let Ok(d) =
                    f.get_rendered_dimensions(probe, Point::zero(), VerticalPosition::Baseline)
                    && let Some(bb) = d.bounding_box
                {
                    ascent = ascent.max(-bb.top_left.y);
                    descent = descent.max(bb.top_left.y + bb.size.height as i32);
                }
            }
        }
        VMetrics {
            ascent: ascent.max(0) as u32 * self.scale,
            descent: descent.max(0) as u32 * self.scale,
        }
    }

    /// Height of the digit '0' above the baseline (for signs drawn to match the digits).
    pub fn digit_height(&self) -> u32 {
        self.chain
            .iter()
            .find_map(|f| {
                f.get_rendered_dimensions('0', Point::zero(), VerticalPosition::Baseline)
                    .ok()?
                    .bounding_box
            })
            .map_or(0, |bb| (-bb.top_left.y).max(0) as u32 * self.scale)
    }

    /// Draws one line with its baseline at `baseline_y`, aligned to `x`. Returns the drawn width.
    pub fn draw<D>(
        &self,
        d: &mut D,
        text: &str,
        x: i32,
        baseline_y: i32,
        align: Align,
        color: Rgb565,
    ) -> u32
    where
        D: DrawTarget<Color = Rgb565>,
    {
        let width = self.width(text) as i32;
        let mut pen = align.start(x, width);
        for (font, s) in self.runs(text) {
            let advance = if self.scale <= 1 {
                font.render(
                    s.as_str(),
                    Point::new(pen, baseline_y),
                    VerticalPosition::Baseline,
                    FontColor::Transparent(color),
                    d,
                )
                .map(|r| r.advance.x)
                .unwrap_or(0)
            } else {
                // Glyphs are drawn at 1x around a local origin and blown up into blocks.
                let mut scaled = Scaled {
                    inner: d,
                    factor: self.scale,
                    origin: Point::new(pen, baseline_y),
                };
                font.render(
                    s.as_str(),
                    Point::zero(),
                    VerticalPosition::Baseline,
                    FontColor::Transparent(color),
                    &mut scaled,
                )
                .map(|r| r.advance.x * self.scale as i32)
                .unwrap_or(0)
            };
            pen += advance;
        }
        width as u32
    }

    /// Breaks `text` into lines no wider than `max_width`. Breaks at spaces where a line has one
    /// (English), otherwise between any two characters (Chinese). A word longer than the line is
    /// broken by character. Explicit '\n' starts a new line.
    pub fn wrap(&self, text: &str, max_width: u32) -> Vec<String> {
        let mut lines = Vec::new();
        for para in text.split('\n') {
            let mut line = String::new();
            // Bitmap fonts have no kerning, so a line's width is the sum of its characters'.
            let mut line_w = 0;
            for c in para.chars() {
                let mut buf = [0u8; 4];
                let cw = self.width(c.encode_utf8(&mut buf));
                if line_w + cw <= max_width || line.is_empty() {
                    line.push(c);
                    line_w += cw;
                    continue;
                }
                // Too wide: break at the last space if there is one, else before this char.
                if let Some(sp) = line.rfind(' ')
                    && c != ' '
                {
                    let rest: String = line[sp + 1..].to_string();
                    lines.push(line[..sp].trim_end().to_string());
                    line = rest;
                    line.push(c);
                    // The carried-over word may itself be too wide; it will be broken later.
                    if self.width(&line) > max_width {
                        let last = line.pop();
                        lines.push(std::mem::take(&mut line));
                        if let Some(l) = last {
                            line.push(l);
                        }
                    }
                } else {
                    lines.push(line.trim_end().to_string());
                    line = if c == ' ' {
                        String::new()
                    } else {
                        c.to_string()
                    };
                }
                line_w = self.width(&line);
            }
            lines.push(line.trim_end().to_string());
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::frame::Frame;

    static ZH_CHAIN: [&FontRenderer; 1] = [&WQY16];
    static EN_CHAIN: [&FontRenderer; 2] = [&HELV_R14, &WQY16];
    const ZH: Face = Face::new(&ZH_CHAIN, 1);
    const EN: Face = Face::new(&EN_CHAIN, 1);
    const BIG: Face = Face::new(&ZH_CHAIN, 2);

    #[test]
    fn chinese_and_latin_have_glyphs() {
        assert!(ZH.covers("支付成功 请出示付款码 ABC 123"));
        assert!(EN.covers("Payment successful 支付成功"));
        assert!(!ZH.covers("\u{10FFFF}"));
    }

    #[test]
    fn scale_doubles_width() {
        assert!(ZH.width("支付") > 0);
        assert_eq!(BIG.width("支付"), 2 * ZH.width("支付"));
        assert_eq!(BIG.metrics().ascent, 2 * ZH.metrics().ascent);
    }

    #[test]
    fn drawing_puts_pixels_inside_the_measured_box() {
        let mut f = Frame::new(200, 60);
        let w = EN.draw(&mut f, "Paid 支付", 10, 30, Align::Left, Rgb565::WHITE);
        let m = EN.metrics();
        let mut any = false;
        for y in 0..60 {
            for x in 0..200 {
                if f.get(x, y) == Some(Rgb565::WHITE) {
                    any = true;
                    assert!(x >= 10 && x < 10 + w + 2, "x {x} outside width {w}");
                    assert!(
                        y as i32 >= 30 - m.ascent as i32 - 1 && y as i32 <= 30 + m.descent as i32,
                        "y {y}"
                    );
                }
            }
        }
        assert!(any);
    }

    #[test]
    fn unknown_characters_become_question_marks() {
        let mut a = Frame::new(60, 30);
        let mut b = Frame::new(60, 30);
        ZH.draw(&mut a, "\u{10FFFF}", 0, 20, Align::Left, Rgb565::WHITE);
        ZH.draw(&mut b, "?", 0, 20, Align::Left, Rgb565::WHITE);
        assert_eq!(a, b);
        assert_ne!(a, Frame::new(60, 30));
    }

    #[test]
    fn wrapping_respects_width_and_keeps_every_character() {
        let text = "Not enough balance. Please use another card or way to pay";
        let lines = EN.wrap(text, 120);
        assert!(lines.len() > 1);
        for l in &lines {
            assert!(EN.width(l) <= 120, "{l:?}");
        }
        assert_eq!(lines.join(" "), text);
        let zh = "余额不足，请换一张卡或另一种支付方式";
        let lines = ZH.wrap(zh, 100);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), zh);
        for l in &lines {
            assert!(ZH.width(l) <= 100);
        }
        // A word longer than the line is still broken, never lost.
        let long = "abcdefghijklmnopqrstuvwxyz0123456789";
        let lines = EN.wrap(long, 50);
        assert_eq!(lines.concat(), long);
    }
}
