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

/// A renderer and the displays it feeds: the daemon's one call per state change.
pub struct Screens {
    renderer: super::render::Renderer,
    displays: Vec<(Box<dyn Display + Send>, bool)>,
}

impl Screens {
    /// Screens drawn at `size` (every display added must have that size) in `locale`.
    pub fn new(size: (u32, u32), locale: super::model::Locale) -> Result<Screens, UiError> {
        Ok(Screens {
            renderer: super::render::Renderer::new(size, locale)?,
            displays: Vec::new(),
        })
    }

    /// Adds a display; it receives the whole frame on the next [`Screens::show`].
    pub fn add(&mut self, display: Box<dyn Display + Send>) -> Result<(), UiError> {
        let want = (
            self.renderer.frame().width(),
            self.renderer.frame().height(),
        );
        if display.size() != want {
            return Err(UiError::BadSize(format!(
                "display is {}x{} but the screens are drawn at {}x{}",
                display.size().0,
                display.size().1,
                want.0,
                want.1
            )));
        }
        self.displays.push((display, true));
        Ok(())
    }

    pub fn set_locale(&mut self, locale: super::model::Locale) {
        self.renderer.set_locale(locale);
    }

    pub fn frame(&self) -> &Frame {
        self.renderer.frame()
    }

    /// Draws the state and flushes the changed rectangles to every display. Returns the
    /// damage. Every display is tried even if one fails; the first error is returned.
    pub fn show(
        &mut self,
        screen: &super::model::Screen,
        status: &super::model::StatusBar,
    ) -> Result<Vec<Rectangle>, UiError> {
        let damage = self.renderer.render(screen, status);
        let whole = [self.renderer.frame().bounds()];
        let mut first_err = None;
        for (d, fresh) in &mut self.displays {
            let rects: &[Rectangle] = if *fresh { &whole } else { &damage };
            match d.flush(self.renderer.frame(), rects) {
                Ok(()) => *fresh = false,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(damage),
        }
    }
}

#[cfg(test)]
mod screens_tests {
    use super::*;
    use crate::ui::model::{Locale, Screen, StatusBar};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<usize>>>);

    impl Display for Recorder {
        fn size(&self) -> (u32, u32) {
            (320, 240)
        }
        fn flush(&mut self, _f: &Frame, damage: &[Rectangle]) -> Result<(), UiError> {
            let px = damage
                .iter()
                .map(|r| (r.size.width * r.size.height) as usize)
                .sum();
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(px);
            Ok(())
        }
    }

    #[test]
    fn a_late_display_gets_the_whole_frame_and_sizes_must_match() {
        let mut s = Screens::new((320, 240), Locale::Zh).unwrap_or_else(|e| panic!("{e}"));
        let a = Recorder::default();
        s.add(Box::new(a.clone())).unwrap_or_else(|e| panic!("{e}"));
        let st = StatusBar {
            merchant: "店".into(),
            time: "10:00".into(),
            online: true,
            unsettled: 0,
        };
        s.show(&Screen::Idle, &st).unwrap_or_else(|e| panic!("{e}"));
        let b = Recorder::default();
        s.add(Box::new(b.clone())).unwrap_or_else(|e| panic!("{e}"));
        let d = s.show(&Screen::Idle, &st).unwrap_or_else(|e| panic!("{e}"));
        assert!(d.is_empty());
        assert_eq!(
            *a.0.lock().unwrap_or_else(|e| e.into_inner()),
            vec![320 * 240, 0]
        );
        assert_eq!(
            *b.0.lock().unwrap_or_else(|e| e.into_inner()),
            vec![320 * 240]
        );
        assert!(
            s.add(Box::new(PngDisplay::new("/tmp/x.png", (800, 480))))
                .is_err()
        );
    }
}
