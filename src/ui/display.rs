//! The display trait every output implements (framebuffer, PNG file, web mirror) and the PNG
//! file display. A display only copies pixels it is handed; it never decides what to show.

use std::path::{Path, PathBuf};

use embedded_graphics::primitives::Rectangle;

use super::UiError;
use super::frame::Frame;

/// Somewhere frames are shown.
pub trait Display {
    /// The size in pixels the renderer must draw at.
    fn size(&self) -> (u32, u32);

    /// Shows `frame`, of which only the `damage` rectangles changed since the last flush.
    /// An empty `damage` means nothing changed.
    fn flush(&mut self, frame: &Frame, damage: &[Rectangle]) -> Result<(), UiError>;
}

/// Writes every changed frame to a PNG file, replacing it atomically (write then rename) so a
/// reader never sees half a file.
#[derive(Debug)]
pub struct PngDisplay {
    path: PathBuf,
    size: (u32, u32),
    written: u64,
}

impl PngDisplay {
    pub fn new(path: impl AsRef<Path>, size: (u32, u32)) -> PngDisplay {
        PngDisplay {
            path: path.as_ref().to_path_buf(),
            size,
            written: 0,
        }
    }

    /// How many times the file was written.
    pub fn writes(&self) -> u64 {
        self.written
    }
}

impl Display for PngDisplay {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn flush(&mut self, frame: &Frame, damage: &[Rectangle]) -> Result<(), UiError> {
        if damage.is_empty() {
            return Ok(());
        }
        let bytes = super::png::encode_png(frame)?;
        let tmp = self.path.with_extension("png.tmp");
        std::fs::write(&tmp, &bytes)
            .map_err(|e| UiError::Io(format!("writing {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| UiError::Io(format!("renaming to {}: {e}", self.path.display())))?;
        self.written += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::model::{Locale, Screen, StatusBar};
    use crate::ui::render::Renderer;

    #[test]
    fn png_display_writes_only_when_something_changed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("screen.png");
        let mut disp = PngDisplay::new(&path, (320, 240));
        let mut r = Renderer::new(disp.size(), Locale::En).unwrap_or_else(|e| panic!("{e}"));
        let st = StatusBar {
            merchant: "Shop".into(),
            time: "09:00".into(),
            online: true,
            unsettled: 0,
        };
        let d = r.render(&Screen::Idle, &st);
        disp.flush(r.frame(), &d).unwrap_or_else(|e| panic!("{e}"));
        let d = r.render(&Screen::Idle, &st);
        disp.flush(r.frame(), &d).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(disp.writes(), 1);
        let img = crate::ui::png::decode_png(&std::fs::read(&path).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((img.width, img.height), (320, 240));
        assert_eq!(img.rgb, r.frame().to_rgb888());
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let mut disp = PngDisplay::new("/nonexistent-dir/x.png", (160, 120));
        let f = Frame::new(160, 120);
        assert!(disp.flush(&f, &[f.bounds()]).is_err());
    }
}
