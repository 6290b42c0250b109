//! PNG encoding and decoding of frames, byte-for-byte deterministic: fixed compression and
//! filter, no time or text chunks, so the same frame always gives the same file.

use std::io::Cursor;

use super::UiError;
use super::frame::Frame;

/// Encodes a frame as an 8-bit RGB PNG.
pub fn encode_png(frame: &Frame) -> Result<Vec<u8>, UiError> {
    encode_rgb(frame.width(), frame.height(), &frame.to_rgb888())
}

/// Encodes packed RGB triples as a PNG.
pub fn encode_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, UiError> {
    if rgb.len() != width as usize * height as usize * 3 {
        return Err(UiError::Png(format!(
            "{} bytes is not {width}x{height} RGB",
            rgb.len()
        )));
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Default);
    enc.set_filter(png::FilterType::Sub);
    enc.set_adaptive_filter(png::AdaptiveFilterType::NonAdaptive);
    let mut w = enc
        .write_header()
        .map_err(|e| UiError::Png(e.to_string()))?;
    w.write_image_data(rgb)
        .map_err(|e| UiError::Png(e.to_string()))?;
    w.finish().map_err(|e| UiError::Png(e.to_string()))?;
    Ok(out)
}

/// An image decoded to 8-bit RGB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// Decodes any 8-bit PNG (grey, RGB, RGBA, palette) to RGB. Alpha is dropped.
pub fn decode_png(bytes: &[u8]) -> Result<RgbImage, UiError> {
    let mut dec = png::Decoder::new(Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(|e| UiError::Png(e.to_string()))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| UiError::Png(e.to_string()))?;
    buf.truncate(info.buffer_size());
    let (w, h) = (info.width, info.height);
    let rgb = match info.color_type {
        png::ColorType::Rgb => buf,
        png::ColorType::Rgba => buf
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        png::ColorType::Indexed => return Err(UiError::Png("palette was not expanded".into())),
    };
    if rgb.len() != w as usize * h as usize * 3 {
        return Err(UiError::Png(
            "decoded size does not match the header".into(),
        ));
    }
    Ok(RgbImage {
        width: w,
        height: h,
        rgb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::pixelcolor::Rgb565;
    use embedded_graphics::prelude::*;

    #[test]
    fn round_trip_and_determinism() {
        let mut f = Frame::new(31, 17);
        f.draw_iter([
            Pixel(Point::new(3, 4), Rgb565::RED),
            Pixel(Point::new(30, 16), Rgb565::GREEN),
        ])
        .ok();
        let a = encode_png(&f).unwrap_or_else(|e| panic!("{e}"));
        let b = encode_png(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a, b);
        assert_eq!(&a[1..4], b"PNG");
        let img = decode_png(&a).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((img.width, img.height), (31, 17));
        assert_eq!(img.rgb, f.to_rgb888());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_png(b"not a png").is_err());
        assert!(encode_rgb(2, 2, &[0; 5]).is_err());
    }
}
