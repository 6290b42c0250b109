//! The in-memory frame every screen is drawn into, and the damage (changed rectangles) between
//! two frames.
//!
//! A [`Frame`] is an RGB565 pixel buffer that implements embedded-graphics' `DrawTarget`; the
//! displays (framebuffer, PNG, web mirror) only read it. It owns no device and does no I/O.
//! Damage is found by comparing tiles, so a display copies only the rectangles that changed.

use std::convert::Infallible;

use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::pixelcolor::raw::RawU16;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;

/// Side of the square tiles compared when looking for damage. 16 px keeps the rectangles tight
/// around small changes (a countdown digit) while the comparison stays a few µs per tile.
pub const TILE: u32 = 16;

/// An RGB565 frame buffer, row-major, no padding.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    pixels: Vec<u16>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}x{})", self.width, self.height)
    }
}

impl Frame {
    pub fn new(width: u32, height: u32) -> Frame {
        Frame {
            width,
            height,
            pixels: vec![0; (width as usize) * (height as usize)],
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Raw RGB565 values, row-major.
    pub fn pixels(&self) -> &[u16] {
        &self.pixels
    }

    pub fn row(&self, y: u32) -> &[u16] {
        let w = self.width as usize;
        let start = y as usize * w;
        &self.pixels[start..start + w]
    }

    pub fn get(&self, x: u32, y: u32) -> Option<Rgb565> {
        if x >= self.width || y >= self.height {
            return None;
        }
        Some(Rgb565::from(RawU16::new(
            self.pixels[(y * self.width + x) as usize],
        )))
    }

    pub fn bounds(&self) -> Rectangle {
        Rectangle::new(Point::zero(), Size::new(self.width, self.height))
    }

    /// The frame as 8-bit RGB triples, row-major (for PNG). RGB565 channels are widened by
    /// repeating their top bits, so pure white stays 255 and pure black 0.
    pub fn to_rgb888(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixels.len() * 3);
        for &p in &self.pixels {
            let (r, g, b) = expand565(p);
            out.extend_from_slice(&[r, g, b]);
        }
        out
    }

    /// Copies the rectangle `r` of `src` (same size) into this frame.
    pub fn copy_rect_from(&mut self, src: &Frame, r: &Rectangle) {
        let r = r.intersection(&self.bounds());
        if r.is_zero_sized() || src.width != self.width || src.height != self.height {
            return;
        }
        let w = self.width as usize;
        let (x0, y0) = (r.top_left.x as usize, r.top_left.y as usize);
        let (rw, rh) = (r.size.width as usize, r.size.height as usize);
        for y in y0..y0 + rh {
            let s = y * w + x0;
            self.pixels[s..s + rw].copy_from_slice(&src.pixels[s..s + rw]);
        }
    }
}

/// Widens an RGB565 value to 8 bits per channel.
pub fn expand565(p: u16) -> (u8, u8, u8) {
    let r5 = ((p >> 11) & 0x1f) as u8;
    let g6 = ((p >> 5) & 0x3f) as u8;
    let b5 = (p & 0x1f) as u8;
    (
        (r5 << 3) | (r5 >> 2),
        (g6 << 2) | (g6 >> 4),
        (b5 << 3) | (b5 >> 2),
    )
}

/// An RGB888 colour as the RGB565 the frame stores.
pub const fn rgb(r: u8, g: u8, b: u8) -> Rgb565 {
    Rgb565::new(r >> 3, g >> 2, b >> 3)
}

impl OriginDimensions for Frame {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Frame {
    type Color = Rgb565;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let (w, h) = (self.width as i32, self.height as i32);
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && p.x < w && p.y < h {
                self.pixels[(p.y * w + p.x) as usize] = RawU16::from(c).into_inner();
            }
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: Self::Color) -> Result<(), Self::Error> {
        let r = area.intersection(&self.bounds());
        if r.is_zero_sized() {
            return Ok(());
        }
        let v = RawU16::from(color).into_inner();
        let w = self.width as usize;
        let (x0, y0) = (r.top_left.x as usize, r.top_left.y as usize);
        let (rw, rh) = (r.size.width as usize, r.size.height as usize);
        for y in y0..y0 + rh {
            self.pixels[y * w + x0..y * w + x0 + rw].fill(v);
        }
        Ok(())
    }

    fn clear(&mut self, color: Self::Color) -> Result<(), Self::Error> {
        self.pixels.fill(RawU16::from(color).into_inner());
        Ok(())
    }
}

/// The rectangles where `new` differs from `old` inside `within`, tile-aligned and merged: tiles
/// that differ and touch along a tile row become one rectangle, and equal spans on consecutive
/// tile rows are merged downward. Frames of different sizes differ everywhere.
pub fn damage(old: &Frame, new: &Frame, within: &Rectangle) -> Vec<Rectangle> {
    if old.width != new.width || old.height != new.height {
        return vec![new.bounds()];
    }
    let area = within.intersection(&new.bounds());
    if area.is_zero_sized() {
        return Vec::new();
    }
    let w = new.width as usize;
    let x_start = area.top_left.x as u32;
    let y_start = area.top_left.y as u32;
    let x_end = x_start + area.size.width;
    let y_end = y_start + area.size.height;
    // Spans found on the previous tile row that may still grow downward.
    let mut open: Vec<Rectangle> = Vec::new();
    let mut done: Vec<Rectangle> = Vec::new();
    let mut ty = y_start;
    while ty < y_end {
        let th = TILE.min(y_end - ty);
        let mut spans: Vec<(u32, u32)> = Vec::new();
        let mut tx = x_start;
        while tx < x_end {
            let tw = TILE.min(x_end - tx);
            let differs = (ty..ty + th).any(|y| {
                let s = y as usize * w + tx as usize;
                old.pixels[s..s + tw as usize] != new.pixels[s..s + tw as usize]
            });
            if differs {
                match spans.last_mut() {
                    Some((_, end)) if *end == tx => *end = tx + tw,
                    _ => spans.push((tx, tx + tw)),
                }
            }
            tx += tw;
        }
        let mut next_open = Vec::new();
        for (sx, ex) in spans {
            let width = ex - sx;
            if let Some(pos) = open
                .iter()
                .position(|r| r.top_left.x as u32 == sx && r.size.width == width)
            {
                let mut r = open.remove(pos);
                r.size.height += th;
                next_open.push(r);
            } else {
                next_open.push(Rectangle::new(
                    Point::new(sx as i32, ty as i32),
                    Size::new(width, th),
                ));
            }
        }
        done.append(&mut open);
        open = next_open;
        ty += th;
    }
    done.append(&mut open);
    done.sort_by_key(|r| (r.top_left.y, r.top_left.x));
    done
}

/// A DrawTarget that draws every pixel as a `factor`×`factor` block at `origin + p*factor`.
/// Used to enlarge the 16 px CJK bitmap fonts for headings (u8g2's CJK fonts stop at 16 px).
pub struct Scaled<'a, D> {
    pub inner: &'a mut D,
    pub factor: u32,
    pub origin: Point,
}

impl<D: DrawTarget<Color = Rgb565>> OriginDimensions for Scaled<'_, D> {
    fn size(&self) -> Size {
        let s = self.inner.bounding_box().size;
        Size::new(s.width / self.factor.max(1), s.height / self.factor.max(1))
    }
}

impl<D: DrawTarget<Color = Rgb565>> DrawTarget for Scaled<'_, D> {
    type Color = Rgb565;
    type Error = D::Error;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let f = self.factor.max(1);
        for Pixel(p, c) in pixels {
            let at = self.origin + Point::new(p.x * f as i32, p.y * f as i32);
            self.inner
                .fill_solid(&Rectangle::new(at, Size::new(f, f)), c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_draw_are_clipped() {
        let mut f = Frame::new(4, 3);
        f.fill_solid(
            &Rectangle::new(Point::new(-2, -2), Size::new(4, 4)),
            Rgb565::WHITE,
        )
        .ok();
        f.draw_iter([
            Pixel(Point::new(10, 10), Rgb565::RED),
            Pixel(Point::new(3, 2), Rgb565::RED),
        ])
        .ok();
        assert_eq!(f.get(0, 0), Some(Rgb565::WHITE));
        assert_eq!(f.get(1, 1), Some(Rgb565::WHITE));
        assert_eq!(f.get(2, 2), Some(Rgb565::BLACK));
        assert_eq!(f.get(3, 2), Some(Rgb565::RED));
        assert_eq!(f.get(4, 0), None);
    }

    #[test]
    fn rgb565_widens_to_full_range() {
        assert_eq!(expand565(0xffff), (255, 255, 255));
        assert_eq!(expand565(0), (0, 0, 0));
        assert_eq!(expand565(0xf800), (255, 0, 0));
        // The const conversion keeps the top bits of each channel.
        assert_eq!(rgb(255, 255, 255), Rgb565::WHITE);
        assert_eq!(rgb(0, 0, 0), Rgb565::BLACK);
        assert_eq!(
            rgb(0xdc, 0x26, 0x26),
            Rgb565::new(0xdc >> 3, 0x26 >> 2, 0x26 >> 3)
        );
    }

    #[test]
    fn identical_frames_have_no_damage() {
        let a = Frame::new(100, 50);
        assert!(damage(&a, &a.clone(), &a.bounds()).is_empty());
    }

    #[test]
    fn one_pixel_change_damages_one_tile() {
        let a = Frame::new(100, 50);
        let mut b = a.clone();
        b.draw_iter([Pixel(Point::new(40, 20), Rgb565::RED)]).ok();
        let d = damage(&a, &b, &a.bounds());
        assert_eq!(
            d,
            vec![Rectangle::new(Point::new(32, 16), Size::new(16, 16))]
        );
    }

    #[test]
    fn a_block_change_is_merged_into_one_rectangle() {
        let a = Frame::new(100, 50);
        let mut b = a.clone();
        b.fill_solid(
            &Rectangle::new(Point::new(10, 5), Size::new(40, 30)),
            Rgb565::BLUE,
        )
        .ok();
        let d = damage(&a, &b, &a.bounds());
        assert_eq!(d, vec![Rectangle::new(Point::new(0, 0), Size::new(64, 48))]);
        // Every changed pixel is inside the damage.
        for y in 0..50 {
            for x in 0..100 {
                if a.get(x, y) != b.get(x, y) {
                    assert!(d.iter().any(|r| r.contains(Point::new(x as i32, y as i32))));
                }
            }
        }
    }

    #[test]
    fn edge_tiles_are_partial_and_size_change_is_total() {
        let a = Frame::new(20, 20);
        let mut b = a.clone();
        b.draw_iter([Pixel(Point::new(19, 19), Rgb565::RED)]).ok();
        assert_eq!(
            damage(&a, &b, &a.bounds()),
            vec![Rectangle::new(Point::new(16, 16), Size::new(4, 4))]
        );
        let c = Frame::new(21, 20);
        assert_eq!(damage(&a, &c, &a.bounds()), vec![c.bounds()]);
    }

    #[test]
    fn scaled_target_draws_blocks() {
        let mut f = Frame::new(10, 10);
        let mut s = Scaled {
            inner: &mut f,
            factor: 3,
            origin: Point::new(1, 1),
        };
        s.draw_iter([Pixel(Point::new(1, 0), Rgb565::RED)]).ok();
        assert_eq!(f.get(4, 1), Some(Rgb565::RED));
        assert_eq!(f.get(6, 3), Some(Rgb565::RED));
        assert_eq!(f.get(7, 1), Some(Rgb565::BLACK));
        assert_eq!(f.get(3, 1), Some(Rgb565::BLACK));
    }
}
