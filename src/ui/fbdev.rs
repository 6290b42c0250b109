//! The Linux framebuffer display (`/dev/fbN`): reads the mode with the FBIOGET ioctls, maps the
//! memory, packs the RGB565 frame into the device's pixel format honouring the row stride
//! (`line_length`), and puts the console in graphics mode so its cursor and text stay away.
//!
//! The packing is pure code over a byte slice and is tested here without a device; only
//! [`FbDisplay::open`] and the console switch touch the kernel. Nothing here decides what to draw.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;

use super::UiError;
use super::display::Display;
use super::frame::{Frame, expand565};

/// Where one colour channel sits in a device pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    pub offset: u32,
    pub length: u32,
}

/// A device pixel layout: bytes per pixel and the three channels (native byte order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormat {
    pub bytes_per_pixel: u32,
    pub red: Channel,
    pub green: Channel,
    pub blue: Channel,
}

impl PixelFormat {
    pub const RGB565: PixelFormat = PixelFormat {
        bytes_per_pixel: 2,
        red: Channel {
            offset: 11,
            length: 5,
        },
        green: Channel {
            offset: 5,
            length: 6,
        },
        blue: Channel {
            offset: 0,
            length: 5,
        },
    };
    pub const XRGB8888: PixelFormat = PixelFormat {
        bytes_per_pixel: 4,
        red: Channel {
            offset: 16,
            length: 8,
        },
        green: Channel {
            offset: 8,
            length: 8,
        },
        blue: Channel {
            offset: 0,
            length: 8,
        },
    };

    /// Builds a format from the kernel's description, refusing what we cannot pack.
    pub fn from_bitfields(
        bits_per_pixel: u32,
        red: Channel,
        green: Channel,
        blue: Channel,
    ) -> Result<Self, UiError> {
        let bpp = match bits_per_pixel {
            16 => 2,
            24 => 3,
            32 => 4,
            other => {
                return Err(UiError::Framebuffer(format!(
                    "{other} bits per pixel is not supported (16, 24 or 32)"
                )));
            }
        };
        for c in [red, green, blue] {
            if c.length == 0 || c.length > 8 || c.offset + c.length > bits_per_pixel {
                return Err(UiError::Framebuffer(format!(
                    "colour channel {c:?} does not fit {bits_per_pixel} bpp"
                )));
            }
        }
        Ok(PixelFormat {
            bytes_per_pixel: bpp,
            red,
            green,
            blue,
        })
    }

    fn pack(&self, p: u16) -> u32 {
        let (r, g, b) = expand565(p);
        let ch = |v: u8, c: Channel| ((v as u32) >> (8 - c.length)) << c.offset;
        ch(r, self.red) | ch(g, self.green) | ch(b, self.blue)
    }
}

/// Copies rectangle `r` of `frame` into `dst`, a device buffer whose rows are `stride` bytes
/// apart and whose pixel (0,0) is at byte 0. Fails, writing nothing, if `r` does not fit.
pub fn pack_rect(
    frame: &Frame,
    r: &Rectangle,
    fmt: &PixelFormat,
    stride: usize,
    dst: &mut [u8],
) -> Result<(), UiError> {
    let r = r.intersection(&frame.bounds());
    if r.is_zero_sized() {
        return Ok(());
    }
    let bpp = fmt.bytes_per_pixel as usize;
    let (x0, y0) = (r.top_left.x as usize, r.top_left.y as usize);
    let (w, h) = (r.size.width as usize, r.size.height as usize);
    if (x0 + w) * bpp > stride {
        return Err(UiError::Framebuffer(format!(
            "row of {} px does not fit a stride of {stride} bytes",
            x0 + w
        )));
    }
    let end = (y0 + h - 1) * stride + (x0 + w) * bpp;
    if end > dst.len() {
        return Err(UiError::Framebuffer(format!(
            "rectangle ends at byte {end}, the buffer has {}",
            dst.len()
        )));
    }
    for y in y0..y0 + h {
        let src = &frame.row(y as u32)[x0..x0 + w];
        let row = &mut dst[y * stride + x0 * bpp..y * stride + (x0 + w) * bpp];
        if *fmt == PixelFormat::RGB565 {
            for (d, &p) in row.chunks_exact_mut(2).zip(src) {
                d.copy_from_slice(&p.to_ne_bytes());
            }
        } else if *fmt == PixelFormat::XRGB8888 {
            for (d, &p) in row.chunks_exact_mut(4).zip(src) {
                let (r8, g8, b8) = expand565(p);
                let v = 0xff00_0000u32 | (r8 as u32) << 16 | (g8 as u32) << 8 | b8 as u32;
                d.copy_from_slice(&v.to_ne_bytes());
            }
        } else {
            for (d, &p) in row.chunks_exact_mut(bpp).zip(src) {
                let v = fmt.pack(p).to_ne_bytes();
                // Native order: on little-endian the low bytes come first.
                if cfg!(target_endian = "little") {
                    d.copy_from_slice(&v[..bpp]);
                } else {
                    d.copy_from_slice(&v[4 - bpp..]);
                }
            }
        }
    }
    Ok(())
}

// Kernel ABI (include/uapi/linux/fb.h and kd.h).
const FBIOGET_VSCREENINFO: libc::c_ulong = 0x4600;
const FBIOGET_FSCREENINFO: libc::c_ulong = 0x4602;
const KDSETMODE: libc::c_ulong = 0x4B3A;
const KD_TEXT: libc::c_ulong = 0;
const KD_GRAPHICS: libc::c_ulong = 1;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FbBitfield {
    offset: u32,
    length: u32,
    msb_right: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FbVarScreeninfo {
    xres: u32,
    yres: u32,
    xres_virtual: u32,
    yres_virtual: u32,
    xoffset: u32,
    yoffset: u32,
    bits_per_pixel: u32,
    grayscale: u32,
    red: FbBitfield,
    green: FbBitfield,
    blue: FbBitfield,
    transp: FbBitfield,
    nonstd: u32,
    activate: u32,
    height: u32,
    width: u32,
    accel_flags: u32,
    pixclock: u32,
    left_margin: u32,
    right_margin: u32,
    upper_margin: u32,
    lower_margin: u32,
    hsync_len: u32,
    vsync_len: u32,
    sync: u32,
    vmode: u32,
    rotate: u32,
    colorspace: u32,
    reserved: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FbFixScreeninfo {
    id: [u8; 16],
    smem_start: libc::c_ulong,
    smem_len: u32,
    type_: u32,
    type_aux: u32,
    visual: u32,
    xpanstep: u16,
    ypanstep: u16,
    ywrapstep: u16,
    line_length: u32,
    mmio_start: libc::c_ulong,
    mmio_len: u32,
    accel: u32,
    capabilities: u16,
    reserved: [u16; 2],
}

/// Opens a device for reading and writing (the framebuffer, the console's tty).
fn open_device(path: &Path) -> Result<File, UiError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| UiError::Framebuffer(format!("cannot open {}: {e}", path.display())))
}

/// The error for the ioctl `what` that just failed on `path` (errno is read here, so call it
/// right after the ioctl).
fn ioctl_error(what: &str, path: &Path) -> UiError {
    UiError::Framebuffer(format!(
        "{what} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    ))
}

/// Fills `out` with the FBIOGET ioctl `request` (called `what` in the error) on `file`.
///
/// # Safety
/// `request` must write exactly one `T` through its pointer argument.
unsafe fn fb_get<T>(
    file: &File,
    request: libc::c_ulong,
    what: &str,
    path: &Path,
    out: &mut T,
) -> Result<(), UiError> {
    // SAFETY: `out` is valid for one `T`, and the caller vouches that is all `request` writes.
    if unsafe { libc::ioctl(file.as_raw_fd(), request as _, out as *mut T) } != 0 {
        return Err(ioctl_error(what, path));
    }
    Ok(())
}

/// Holds the console in graphics mode while alive and gives it back to text mode on drop, so
/// a crash of the UI does not leave a dead console behind.
pub struct ConsoleGraphics {
    tty: File,
}

impl ConsoleGraphics {
    /// Switches `tty` (e.g. `/dev/tty1` or `/dev/tty0`) to KD_GRAPHICS.
    pub fn enter(tty: &Path) -> Result<Self, UiError> {
        let f = open_device(tty)?;
        // SAFETY: KDSETMODE takes an integer argument; the fd is open for the call's duration.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), KDSETMODE as _, KD_GRAPHICS) };
        if rc != 0 {
            return Err(ioctl_error("KDSETMODE KD_GRAPHICS", tty));
        }
        Ok(ConsoleGraphics { tty: f })
    }
}

impl Drop for ConsoleGraphics {
    fn drop(&mut self) {
        // SAFETY: as in `enter`; failure here only leaves the console in graphics mode.
        unsafe {
            libc::ioctl(self.tty.as_raw_fd(), KDSETMODE as _, KD_TEXT);
        }
    }
}

/// A mapped framebuffer device.
pub struct FbDisplay {
    map: memmap2::MmapMut,
    format: PixelFormat,
    stride: usize,
    width: u32,
    height: u32,
    /// Byte offset of the visible screen (panning) inside the mapping.
    visible: usize,
    _console: Option<ConsoleGraphics>,
    _file: File,
}

impl std::fmt::Debug for FbDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FbDisplay({}x{}, {:?}, stride {})",
            self.width, self.height, self.format, self.stride
        )
    }
}

impl FbDisplay {
    /// Opens `dev` (e.g. `/dev/fb0`), reads its mode and maps it. With `console`, that tty is
    /// switched to graphics mode for as long as the display lives.
    pub fn open(dev: &Path, console: Option<&Path>) -> Result<Self, UiError> {
        let file = open_device(dev)?;
        let mut var = FbVarScreeninfo::default();
        // SAFETY: FBIOGET_VSCREENINFO writes exactly one fb_var_screeninfo.
        unsafe {
            fb_get(
                &file,
                FBIOGET_VSCREENINFO,
                "FBIOGET_VSCREENINFO",
                dev,
                &mut var,
            )
        }?;
        let mut fix = FbFixScreeninfo::default();
        // SAFETY: FBIOGET_FSCREENINFO writes exactly one fb_fix_screeninfo.
        unsafe {
            fb_get(
                &file,
                FBIOGET_FSCREENINFO,
                "FBIOGET_FSCREENINFO",
                dev,
                &mut fix,
            )
        }?;
        let ch = |b: FbBitfield| Channel {
            offset: b.offset,
            length: b.length,
        };
        let format = PixelFormat::from_bitfields(
            var.bits_per_pixel,
            ch(var.red),
            ch(var.green),
            ch(var.blue),
        )?;
        let stride = fix.line_length as usize;
        let visible =
            var.yoffset as usize * stride + var.xoffset as usize * format.bytes_per_pixel as usize;
        let needed = visible + var.yres as usize * stride;
        if needed > fix.smem_len as usize
            || stride < var.xres as usize * format.bytes_per_pixel as usize
        {
            return Err(UiError::Framebuffer(format!(
                "mode {}x{} stride {stride} does not fit {} bytes of video memory",
                var.xres, var.yres, fix.smem_len
            )));
        }
        // SAFETY: the mapping is of a device file we keep open; nobody else in this process
        // maps it, and the kernel keeps the memory valid while the fd lives.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(fix.smem_len as usize)
                .map_mut(&file)
        }
        .map_err(|e| UiError::Framebuffer(format!("mmap {}: {e}", dev.display())))?;
        let console = match console {
            Some(tty) => Some(ConsoleGraphics::enter(tty)?),
            None => None,
        };
        Ok(FbDisplay {
            map,
            format,
            stride,
            width: var.xres,
            height: var.yres,
            visible,
            _console: console,
            _file: file,
        })
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }
}

impl Display for FbDisplay {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn flush(&mut self, frame: &Frame, damage: &[Rectangle]) -> Result<(), UiError> {
        let screen = Rectangle::new(Point::zero(), Size::new(self.width, self.height));
        let dst = &mut self.map[self.visible..];
        for r in damage {
            pack_rect(
                frame,
                &r.intersection(&screen),
                &self.format,
                self.stride,
                dst,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::frame::rgb;
    use embedded_graphics::pixelcolor::Rgb565;

    fn sample() -> Frame {
        let mut f = Frame::new(4, 3);
        f.draw_iter([
            Pixel(Point::new(0, 0), rgb(255, 0, 0)),
            Pixel(Point::new(1, 0), rgb(0, 255, 0)),
            Pixel(Point::new(2, 0), rgb(0, 0, 255)),
            Pixel(Point::new(3, 2), rgb(255, 255, 255)),
        ])
        .ok();
        f
    }

    #[test]
    fn rgb565_rows_honour_the_stride() {
        let f = sample();
        let stride = 12; // 4 px * 2 bytes + 4 bytes of padding per row
        let mut buf = vec![0xAAu8; stride * 3];
        pack_rect(&f, &f.bounds(), &PixelFormat::RGB565, stride, &mut buf)
            .unwrap_or_else(|e| panic!("{e}"));
        let px = |x: usize, y: usize| {
            u16::from_ne_bytes([buf[y * stride + x * 2], buf[y * stride + x * 2 + 1]])
        };
        assert_eq!(px(0, 0), 0xF800);
        assert_eq!(px(1, 0), 0x07E0);
        assert_eq!(px(2, 0), 0x001F);
        assert_eq!(px(3, 2), 0xFFFF);
        assert_eq!(px(0, 1), 0);
        // The padding bytes are untouched.
        assert_eq!(&buf[8..12], &[0xAA; 4]);
        assert_eq!(&buf[20..24], &[0xAA; 4]);
    }

    #[test]
    fn xrgb8888_and_bgr_layouts() {
        let f = sample();
        let stride = 16;
        let mut buf = vec![0u8; stride * 3];
        pack_rect(&f, &f.bounds(), &PixelFormat::XRGB8888, stride, &mut buf)
            .unwrap_or_else(|e| panic!("{e}"));
        let px = |buf: &[u8], x: usize, y: usize| {
            let o = y * stride + x * 4;
            u32::from_ne_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]])
        };
        assert_eq!(px(&buf, 0, 0) & 0xffffff, 0xFF0000);
        assert_eq!(px(&buf, 1, 0) & 0xffffff, 0x00FF00);
        assert_eq!(px(&buf, 2, 0) & 0xffffff, 0x0000FF);
        // The generic path with XRGB8888's fields gives the same colours as the fast path.
        let generic = PixelFormat::from_bitfields(
            32,
            Channel {
                offset: 16,
                length: 8,
            },
            Channel {
                offset: 8,
                length: 8,
            },
            Channel {
                offset: 0,
                length: 8,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let bgr = PixelFormat {
            red: generic.blue,
            blue: generic.red,
            ..generic
        };
        let mut b2 = vec![0u8; stride * 3];
        pack_rect(&f, &f.bounds(), &bgr, stride, &mut b2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            px(&b2, 0, 0),
            0x0000FF,
            "red lands in the low byte on a BGR panel"
        );
    }

    #[test]
    fn only_the_damaged_rectangle_is_written() {
        let f = sample();
        let stride = 8;
        let mut buf = vec![0x55u8; stride * 3];
        let r = Rectangle::new(Point::new(3, 2), Size::new(1, 1));
        pack_rect(&f, &r, &PixelFormat::RGB565, stride, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&buf[22..24], &[0xFF, 0xFF]);
        assert!(buf[..22].iter().all(|&b| b == 0x55));
    }

    #[test]
    fn undersized_buffers_and_odd_formats_are_refused() {
        let f = sample();
        let mut small = vec![0u8; 10];
        assert!(pack_rect(&f, &f.bounds(), &PixelFormat::RGB565, 8, &mut small).is_err());
        assert!(small.iter().all(|&b| b == 0), "nothing written on error");
        assert!(pack_rect(&f, &f.bounds(), &PixelFormat::RGB565, 6, &mut [0u8; 100]).is_err());
        let c = Channel {
            offset: 0,
            length: 8,
        };
        assert!(PixelFormat::from_bitfields(8, c, c, c).is_err());
        assert!(
            PixelFormat::from_bitfields(
                16,
                Channel {
                    offset: 12,
                    length: 8
                },
                c,
                c
            )
            .is_err()
        );
        let _ = Rgb565::BLACK;
    }

    #[test]
    fn a_missing_device_or_one_that_is_not_a_framebuffer_is_a_clear_error() {
        let error = |dev: &str| {
            FbDisplay::open(Path::new(dev), None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let e = error("/nonexistent/fb9");
        assert!(e.contains("cannot open /nonexistent/fb9"), "{e}");
        // /dev/null opens read-write but answers no framebuffer ioctl.
        let e = error("/dev/null");
        assert!(e.contains("FBIOGET_VSCREENINFO on /dev/null"), "{e}");
    }
}
