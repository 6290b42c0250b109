//! Named crash points (C0–C7 of RELIABILITY.md §7.4) for the crash tests.
//!
//! With the `failpoints` feature, `PAYTERM_FAILPOINT=C3` makes the process abort (as abruptly as
//! `kill -9`: no destructors, no flush) the first time it reaches `hit("C3")`; `C3:2` aborts on the
//! second time. Without the feature `hit` compiles to nothing, so a board build cannot be made to
//! crash by its environment.

/// The crash points and where they sit, for documentation and the tests.
pub const POINTS: &[(&str, &str)] = &[
    (
        "C0",
        "before the attempt row commits (nothing durable, nothing sent)",
    ),
    (
        "C1",
        "after the PAY_INTENT commit, before the pay request is sent",
    ),
    (
        "C2",
        "after the pay request was sent, before its reply is read",
    ),
    (
        "C3",
        "after a reply was read and understood, before it is committed",
    ),
    ("C4", "in QUERYING, after a commit, before the next query"),
    (
        "C5",
        "after the REVERSE_INTENT commit, before the cancel/reverse is sent",
    ),
    (
        "C6",
        "after the cancel/reverse reply, before it is committed",
    ),
    (
        "C7",
        "inside a journal transaction, before COMMIT (a torn write)",
    ),
    (
        "E3",
        "not a crash: every commit that records a gateway's reply fails (a full disk)",
    ),
];

#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static COUNTS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);
    let Ok(spec) = std::env::var("PAYTERM_FAILPOINT") else {
        return;
    };
    let (point, nth) = match spec.split_once(':') {
        Some((p, n)) => (p.to_string(), n.parse::<u32>().unwrap_or(1)),
        None => (spec.clone(), 1),
    };
    if point != name {
        return;
    }
    let mut guard = match COUNTS.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let counts = guard.get_or_insert_with(HashMap::new);
    let c = counts.entry(point).or_insert(0);
    *c += 1;
    if *c >= nth {
        eprintln!("failpoint {name} reached: aborting");
        std::process::abort();
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// A named failure that is not a crash: `PAYTERM_FAILPOINT=E3` makes `error("E3")` true every
/// time, and the caller fails as a full disk or an I/O error would make it fail.
#[cfg(feature = "failpoints")]
pub fn error(name: &str) -> bool {
    std::env::var("PAYTERM_FAILPOINT").is_ok_and(|v| v == name)
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn error(_name: &str) -> bool {
    false
}
