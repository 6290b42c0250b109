//! Time to draw a full frame at each supported size, and the costs around it: the incremental
//! path (a countdown tick), packing a frame for the framebuffer, and encoding the PNG the web
//! mirror serves. Run with `cargo bench --bench render`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use embedded_graphics::prelude::*;
use payterm::ui::fbdev::pack_rect;
use payterm::ui::{Frame, Locale, PixelFormat, Renderer, Screen, draw_screen, png, sample};

const SIZES: &[(u32, u32)] = &[(320, 240), (480, 320), (800, 480), (480, 800)];

fn full_frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("full_frame");
    for name in ["idle", "paid", "qr", "diagnostics"] {
        let (screen, status) = sample(name).unwrap_or_else(|e| panic!("{e}"));
        for &(w, h) in SIZES {
            for locale in [Locale::Zh, Locale::En] {
                let id = BenchmarkId::new(format!("{name}-{}", locale.code()), format!("{w}x{h}"));
                let mut f = Frame::new(w, h);
                g.bench_with_input(id, &(), |b, _| {
                    b.iter(|| {
                        let Ok(()) = draw_screen(&mut f, black_box(&screen), &status, locale);
                    })
                });
            }
        }
    }
    g.finish();
}

fn incremental(c: &mut Criterion) {
    let mut g = c.benchmark_group("countdown_tick");
    let (_, status) = sample("show-code").unwrap_or_else(|e| panic!("{e}"));
    for &(w, h) in SIZES {
        let mut r = Renderer::new((w, h), Locale::Zh).unwrap_or_else(|e| panic!("{e}"));
        let mut s = 0u32;
        g.bench_function(format!("{w}x{h}"), |b| {
            b.iter(|| {
                s = (s + 1) % 60;
                black_box(r.render(
                    &Screen::ShowCode {
                        amount_fen: 2850,
                        seconds_left: s,
                    },
                    &status,
                ));
            })
        });
    }
    g.finish();
}

fn outputs(c: &mut Criterion) {
    let mut g = c.benchmark_group("output");
    let (screen, status) = sample("paid").unwrap_or_else(|e| panic!("{e}"));
    for &(w, h) in SIZES {
        let mut f = Frame::new(w, h);
        let Ok(()) = draw_screen(&mut f, &screen, &status, Locale::Zh);
        for (fmt_name, fmt) in [
            ("rgb565", PixelFormat::RGB565),
            ("xrgb8888", PixelFormat::XRGB8888),
        ] {
            let stride = (w * fmt.bytes_per_pixel) as usize + 64;
            let mut buf = vec![0u8; stride * h as usize];
            g.bench_function(format!("fb_{fmt_name}/{w}x{h}"), |b| {
                b.iter(|| pack_rect(&f, &f.bounding_box(), &fmt, stride, &mut buf))
            });
        }
        g.bench_function(format!("png/{w}x{h}"), |b| {
            b.iter(|| png::encode_png(black_box(&f)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = full_frames, incremental, outputs
}
criterion_main!(benches);
