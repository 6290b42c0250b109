//! What the cashier and the customer see: the screen model, its drawing with embedded-graphics,
//! and the displays it goes to (Linux framebuffer, PNG file, web mirror).
//!
//! A screen is a pure function of a [`Screen`] value and a [`StatusBar`] (DESIGN.md §1): the
//! engine maps its states into these types and calls [`Renderer::render`]; this module never
//! reads the clock, never touches the journal or a gateway, and never decides what an input
//! means — the web mirror only forwards [`UiInput`]s to the daemon. Chinese text is drawn with
//! u8g2's WenQuanYi bitmap fonts, English with u8g2's Helvetica, amounts with Logisoso; layouts
//! follow the target's size (320x240, 480x320, 800x480 and their portrait forms, or any size in
//! between) and only changed rectangles are flushed to a display.
//!
//! Files: `model` (types), `text` (words in both languages), `fonts` (font chains, wrapping),
//! `render` (layout and drawing, [`Renderer`]), `frame` (pixel buffer and damage), `qr`,
//! `png`, `display` (trait and PNG file), `fbdev` (framebuffer), `web` (mirror), `catalog`
//! (named samples for `payterm render` and the snapshots).

pub mod catalog;
pub mod display;
pub mod fbdev;
mod fonts;
pub mod frame;
pub mod model;
pub mod png;
pub mod qr;
pub mod render;
mod text;
pub mod web;

pub use catalog::{SAMPLE_NAMES, SNAPSHOT_SIZES, sample, sample_status};
pub use display::{Display, PngDisplay, Screens};
pub use fbdev::{ConsoleGraphics, FbDisplay, PixelFormat};
pub use frame::Frame;
pub use model::*;
pub use render::{Renderer, draw_screen};
pub use web::{MirrorFrame, MirrorPublisher, mirror_channel, spawn_mirror, web_router};

/// Everything that can go wrong in the UI, with words that say what to fix.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum UiError {
    #[error("bad screen size: {0} (write it as WIDTHxHEIGHT, e.g. 800x480)")]
    BadSize(String),
    #[error("unknown locale {0:?} (use zh or en)")]
    BadLocale(String),
    #[error("unknown screen {0}")]
    UnknownScreen(String),
    #[error("PNG: {0}")]
    Png(String),
    #[error("framebuffer: {0}")]
    Framebuffer(String),
    #[error("{0}")]
    Io(String),
}

/// Parses "800x480" (also "800X480" or "800*480") into (width, height) and checks the layout
/// supports it.
pub fn parse_size(s: &str) -> Result<(u32, u32), UiError> {
    let bad = || UiError::BadSize(s.chars().take(32).collect());
    let (w, h) = s.trim().split_once(['x', 'X', '*']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    render::check_size((w, h))?;
    Ok((w, h))
}

/// Draws one screen at `size` in `locale` and returns it as PNG bytes (deterministic).
pub fn render_to_png(
    screen: &Screen,
    status: &StatusBar,
    size: (u32, u32),
    locale: Locale,
) -> Result<Vec<u8>, UiError> {
    render::check_size(size)?;
    let mut f = Frame::new(size.0, size.1);
    let Ok(()) = draw_screen(&mut f, screen, status, locale);
    png::encode_png(&f)
}

/// What `payterm render SCREEN --size WxH --locale L --out FILE` does: draws the named sample
/// screen and writes it to `out`.
pub fn render_sample_to_file(
    name: &str,
    size: (u32, u32),
    locale: Locale,
    out: &std::path::Path,
) -> Result<(), UiError> {
    let (screen, status) = sample(name)?;
    let bytes = render_to_png(&screen, &status, size, locale)?;
    std::fs::write(out, bytes)
        .map_err(|e| UiError::Io(format!("cannot write {}: {e}", out.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("800x480"), Ok((800, 480)));
        assert_eq!(parse_size(" 240X320 "), Ok((240, 320)));
        assert!(parse_size("800").is_err());
        assert!(parse_size("0x0").is_err());
        assert!(parse_size("axb").is_err());
        assert!(parse_size("100000x480").is_err());
    }

    #[test]
    fn render_to_png_makes_a_png_of_the_size() {
        let (s, st) = sample("paid").unwrap_or_else(|e| panic!("{e}"));
        let png = render_to_png(&s, &st, (480, 320), Locale::En).unwrap_or_else(|e| panic!("{e}"));
        let img = png::decode_png(&png).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((img.width, img.height), (480, 320));
        assert!(render_to_png(&s, &st, (1, 1), Locale::En).is_err());
    }

    #[test]
    fn render_sample_to_file_writes_and_reports_errors() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let out = dir.path().join("qr.png");
        render_sample_to_file("qr", (320, 240), Locale::Zh, &out).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            std::fs::metadata(&out)
                .map(|m| m.len() > 100)
                .unwrap_or(false)
        );
        assert!(matches!(
            render_sample_to_file("nope", (320, 240), Locale::Zh, &out),
            Err(UiError::UnknownScreen(_))
        ));
    }

    /// Every fixed text and every sample's words have glyphs in the fonts that draw them: a
    /// missing character would silently become '?' on a customer's screen.
    #[test]
    fn every_text_has_glyphs() {
        for size in SNAPSHOT_SIZES {
            for locale in Locale::ALL {
                let lay = render::Layout::new(*size, locale);
                for name in SAMPLE_NAMES {
                    let (screen, status) = sample(name).unwrap_or_else(|e| panic!("{e}"));
                    for t in render::all_words(&lay, &screen, &status) {
                        for face in [&lay.small, &lay.body, &lay.strong, &lay.title] {
                            assert!(
                                face.covers(&t),
                                "{name} {size:?} {locale:?}: missing glyph in {t:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}
