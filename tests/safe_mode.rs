//! A damaged journal puts payterm in safe mode: no sale is taken, the file is preserved, and
//! `payterm recover` saves what it can read of the unsettled attempts for a person.

mod common;

use common::{Env, code};

#[test]
fn a_damaged_journal_refuses_sales_and_is_preserved() {
    let env = Env::start();
    assert_eq!(env.pay("5.00", &code(1)).0, 0);
    // An unsettled attempt: the gateway goes silent.
    env.post("/_sandbox/faults", r#"{"down": true}"#);
    assert_eq!(env.pay("6.00", &code(2)).0, 3);
    env.post("/_sandbox/faults", r#"{"down": false}"#);

    let seen_before = env.ledger()["orders"].as_array().unwrap().len();
    let db = env.dir.path().join("journal.db");
    // Move everything from the WAL into the main file, so scribbling on it damages real pages.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 6 * 4096, "the journal has several pages");
    // Scribble over the b-tree header of a few pages in the middle of the file.
    for page in [3usize, 4, 5] {
        for b in &mut bytes[page * 4096..page * 4096 + 64] {
            *b = 0xA5;
        }
    }
    std::fs::write(&db, &bytes).unwrap();

    let out = env.run(&["pay", "--amount", "7.00", "--code", &code(3)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("safe mode"), "{err}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "the damaged file is left exactly as it was"
    );
    assert_eq!(
        env.ledger()["orders"].as_array().unwrap().len(),
        seen_before,
        "no request was sent"
    );

    let out = env.run(&["recover"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("safe mode"), "{text}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "recover does not write to it either"
    );
    let exports: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("open-attempts"))
        .collect();
    assert_eq!(exports.len(), 1, "{text}");
    let copies = std::fs::read_dir(env.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("damaged-"))
        .count();
    assert!(copies >= 1);
}
