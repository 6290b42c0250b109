//! Golden PNG snapshots of every sample screen at every supported size and locale.
//!
//! Each render is compared pixel by pixel with `tests/snapshots/<screen>-<WxH>-<locale>.png`.
//! A difference (or a missing golden) writes the new picture next to it as `*.new.png` and the
//! test fails listing those paths, so a reviewer can look at them. `PAYTERM_BLESS=1` rewrites
//! the goldens instead. Goldens that no sample produces any more also fail the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use payterm::ui::{Frame, Locale, SAMPLE_NAMES, SNAPSHOT_SIZES, draw_screen, png, sample};

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("snapshots")
}

fn bless() -> bool {
    std::env::var("PAYTERM_BLESS").is_ok_and(|v| v == "1")
}

#[test]
fn every_screen_matches_its_golden_png() {
    let dir = snapshot_dir();
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let mut failures = Vec::new();
    let mut expected = BTreeSet::new();
    let mut count = 0;
    for name in SAMPLE_NAMES {
        let (screen, status) = sample(name).unwrap_or_else(|e| panic!("{e}"));
        for &(w, h) in SNAPSHOT_SIZES {
            for locale in Locale::ALL {
                let file = format!("{name}-{w}x{h}-{}.png", locale.code());
                expected.insert(file.clone());
                let golden = dir.join(&file);
                let new_path = dir.join(file.replace(".png", ".new.png"));
                // The same drawing `render_to_png` does; PNG encoding only when a file is
                // written keeps the 300 comparisons fast.
                let mut frame = Frame::new(w, h);
                let Ok(()) = draw_screen(&mut frame, &screen, &status, locale);
                let encode = || png::encode_png(&frame).unwrap_or_else(|e| panic!("{file}: {e}"));
                count += 1;
                if bless() {
                    std::fs::write(&golden, encode())
                        .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
                    let _ = std::fs::remove_file(&new_path);
                    continue;
                }
                let rendered = png::RgbImage {
                    width: w,
                    height: h,
                    rgb: frame.to_rgb888(),
                };
                let verdict = match std::fs::read(&golden) {
                    Err(_) => Some("no golden yet".to_string()),
                    Ok(g) => match png::decode_png(&g) {
                        Err(e) => Some(format!("golden unreadable: {e}")),
                        Ok(g) if (g.width, g.height) != (rendered.width, rendered.height) => {
                            Some(format!("golden is {}x{}", g.width, g.height))
                        }
                        Ok(g) => {
                            let diff = g
                                .rgb
                                .chunks(3)
                                .zip(rendered.rgb.chunks(3))
                                .filter(|(a, b)| a != b)
                                .count();
                            (diff > 0).then(|| format!("{diff} pixels differ"))
                        }
                    },
                };
                match verdict {
                    None => {
                        let _ = std::fs::remove_file(&new_path);
                    }
                    Some(why) => {
                        std::fs::write(&new_path, encode())
                            .unwrap_or_else(|e| panic!("{}: {e}", new_path.display()));
                        failures.push(format!("{why}: new image at {}", new_path.display()));
                    }
                }
            }
        }
    }
    if !bless() {
        // A golden nobody renders any more is a screen that silently disappeared.
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let n = entry.file_name().to_string_lossy().to_string();
            if n.ends_with(".png") && !n.ends_with(".new.png") && !expected.contains(&n) {
                failures.push(format!(
                    "stale golden {} (no sample renders it; delete it)",
                    entry.path().display()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} snapshots differ (run with PAYTERM_BLESS=1 to accept):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
