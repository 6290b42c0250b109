//! The house rules that a reader relies on, checked on the source itself:
//!
//! - the pure parts do no I/O and read no clock: `src/core/` and `src/clock.rs`'s users above
//!   it get time passed in (DESIGN.md §1);
//! - the top-level modules form no cycle, except the ones listed in `KNOWN_CYCLES` below, each
//!   with what removes it. A new cycle fails this test; a removed one must be taken off the
//!   list (the test says so), so the list only shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Edges that still close a cycle today, as (from, to). Each is work in the issue "One house".
const KNOWN_CYCLES: &[(&str, &str, &str)] = &[
    // config <-> gateway: gateways take &Config to resolve paths and secrets; give them
    // resolved settings built in a wiring module.
    (
        "config",
        "gateway",
        "gateways read their own settings out of Config",
    ),
    ("gateway", "config", "the other half of config <-> gateway"),
    // The ECR API reaches into the daemon's Shared: a service module with a narrow handle.
    ("daemon", "ecr", "the daemon serves the ECR router"),
    (
        "ecr",
        "daemon",
        "the ECR API uses daemon::Shared and the sale controller",
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`src/engine/mod.rs` -> `engine`).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(SRC).ok()?;
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (!matches!(name.as_str(), "lib" | "main" | "bin")).then_some(name)
}

/// Source with `#[cfg(test)]` modules and comments left out: tests may reach anywhere.
fn production_text(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut pending_test = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        let opens = line.matches('{').count() as i32;
        let closes = line.matches('}').count() as i32;
        if pending_test {
            pending_test = false;
            if opens > closes {
                skip_depth = Some(depth);
            } else {
                // `#[cfg(test)] mod x;` or a one-line item: skipped.
                depth += opens - closes;
                continue;
            }
        }
        depth += opens - closes;
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let Some(from) = module_of(&f) else { continue };
        if f.file_name()
            .is_some_and(|n| n.to_string_lossy().contains("test"))
        {
            continue;
        }
        let text = production_text(&std::fs::read_to_string(&f).expect("read"));
        let mut rest = text.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + 7..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != from {
                g.entry(from.clone()).or_default().insert(name);
            }
        }
        // `use crate::{a, b}` groups.
        for group in text.split("use crate::{").skip(1) {
            let inner = group.split('}').next().unwrap_or("");
            for part in inner.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != from {
                    g.entry(from.clone()).or_default().insert(name);
                }
            }
        }
    }
    g
}

/// Whether `to` reaches `from` in `g` (so the edge from -> to closes a cycle).
fn reaches(g: &BTreeMap<String, BTreeSet<String>>, start: &str, goal: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start.to_string()];
    while let Some(n) = stack.pop() {
        if n == goal {
            return true;
        }
        if seen.insert(n.clone())
            && let Some(next) = g.get(&n)
        {
            stack.extend(next.iter().cloned());
        }
    }
    false
}

#[test]
fn top_level_modules_form_no_new_cycle() {
    let g = edges();
    let mut cyclic = BTreeSet::new();
    for (from, tos) in &g {
        for to in tos {
            if reaches(&g, to, from) {
                cyclic.insert((from.clone(), to.clone()));
            }
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN_CYCLES
        .iter()
        .map(|(a, b, _)| (a.to_string(), b.to_string()))
        .collect();
    let new: Vec<_> = cyclic.difference(&known).collect();
    assert!(
        new.is_empty(),
        "these module edges close a new cycle: {new:?}\nthe graph: {g:#?}"
    );
    let gone: Vec<_> = known.difference(&cyclic).collect();
    assert!(
        gone.is_empty(),
        "these known cycles are gone: take them off KNOWN_CYCLES in tests/architecture.rs: {gone:?}"
    );
}

#[test]
fn the_core_does_no_io_and_reads_no_clock() {
    let mut files = Vec::new();
    rust_files(&Path::new(SRC).join("core"), &mut files);
    assert!(!files.is_empty());
    let forbidden = [
        "std::fs",
        "std::net",
        "std::thread",
        "std::process",
        "std::io::stdin",
        "Instant::now",
        "SystemTime",
        "tokio",
        "rusqlite",
        "ureq",
        "util::now_ms",
        "println!",
        "eprintln!",
        "tracing::",
        "crate::journal",
        "crate::gateway",
        "crate::engine",
        "crate::daemon",
        "crate::device",
        "crate::ui",
        "crate::ecr",
    ];
    for f in files {
        let text = production_text(&std::fs::read_to_string(&f).expect("read"));
        for word in forbidden {
            assert!(
                !text.contains(word),
                "{} uses {word}: the core is pure (time and I/O are passed in)",
                f.display()
            );
        }
    }
}

#[test]
fn the_engine_reads_time_only_from_its_clock() {
    let mut files = Vec::new();
    rust_files(&Path::new(SRC).join("engine"), &mut files);
    for f in files {
        if f.file_name()
            .is_some_and(|n| n.to_string_lossy().contains("test"))
        {
            continue;
        }
        let text = production_text(&std::fs::read_to_string(&f).expect("read"));
        for word in ["std::thread::sleep", "Instant::now"] {
            assert!(
                !text.contains(word),
                "{} uses {word}: the engine waits and reads time through its Clock",
                f.display()
            );
        }
    }
}
