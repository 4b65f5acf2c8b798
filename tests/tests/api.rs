//! The extension registers exactly the documented SQL API: no more, no less.

mod common;

use std::collections::BTreeSet;

use common::*;
use rusqlite::Connection;

/// The documented scalar functions, as (name, number of arguments). A function added
/// to the extension must be added here (and documented) for this test to pass.
const FUNCTIONS: &[(&str, i64)] = &[
    ("foryou_debug", 0),
    ("foryou_evaluate", 3),
    ("foryou_refit", 0),
    ("foryou_refit", 1),
    ("foryou_refit", 2),
    ("foryou_version", 0),
];

/// The documented modules: the `foryou` virtual table and the table-valued functions.
const MODULES: &[&str] = &[
    "foryou",
    "recommend",
    "similar_items",
    "similar_users",
    "why_recommended",
];

// SQLite function flags as reported by pragma_function_list.
const SQLITE_DETERMINISTIC: i64 = 0x800;
const SQLITE_DIRECTONLY: i64 = 0x80000;

fn functions(conn: &Connection) -> BTreeSet<(String, i64)> {
    let mut stmt = conn
        .prepare("SELECT name, narg FROM pragma_function_list")
        .unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

fn modules(conn: &Connection) -> BTreeSet<String> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_module_list").unwrap();
    let rows = stmt.query_map([], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

fn flags(conn: &Connection, name: &str, narg: i64) -> i64 {
    conn.query_row(
        "SELECT flags FROM pragma_function_list WHERE name = ?1 AND narg = ?2",
        (name, narg),
        |r| r.get(0),
    )
    .unwrap_or_else(|e| panic!("{name}/{narg} not listed: {e}"))
}

#[test]
fn loading_adds_exactly_the_documented_functions() {
    let conn = Connection::open_in_memory().unwrap();
    let before = functions(&conn);
    load(&conn).expect("load the extension");
    let after = functions(&conn);

    assert!(
        before.is_subset(&after),
        "loading removed functions: {:?}",
        before.difference(&after).collect::<Vec<_>>()
    );
    let added: BTreeSet<(String, i64)> = after.difference(&before).cloned().collect();
    let documented: BTreeSet<(String, i64)> =
        FUNCTIONS.iter().map(|(n, a)| (n.to_string(), *a)).collect();
    assert_eq!(added, documented);
    // None of our names existed before (we shadow no builtin).
    assert!(
        before.iter().all(|(name, _)| !name.starts_with("foryou")),
        "{before:?}"
    );
}

#[test]
fn loading_adds_exactly_the_documented_modules() {
    let conn = Connection::open_in_memory().unwrap();
    let before = modules(&conn);
    load(&conn).expect("load the extension");
    let after = modules(&conn);

    assert!(before.is_subset(&after));
    let added: BTreeSet<String> = after.difference(&before).cloned().collect();
    let documented: BTreeSet<String> = MODULES
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    assert_eq!(added, documented);
}

#[test]
fn function_flags_match_their_nature() {
    let conn = memory();
    // foryou_version() is pure; foryou_debug() reports the machine, so it is not.
    assert_ne!(flags(&conn, "foryou_version", 0) & SQLITE_DETERMINISTIC, 0);
    assert_eq!(flags(&conn, "foryou_debug", 0) & SQLITE_DETERMINISTIC, 0);
    // foryou_refit writes the database: never deterministic, never from a view/trigger.
    for narg in 0..=2 {
        let f = flags(&conn, "foryou_refit", narg);
        assert_eq!(f & SQLITE_DETERMINISTIC, 0, "foryou_refit/{narg}");
        assert_ne!(f & SQLITE_DIRECTONLY, 0, "foryou_refit/{narg}");
    }
}

#[test]
fn refit_cannot_run_from_a_view() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 2); INSERT INTO feed VALUES (1, 2, 3, 4, 5);")
        .unwrap();
    conn.execute_batch("CREATE VIEW v AS SELECT foryou_refit('feed') AS r")
        .unwrap();
    assert_eq!(
        error_of(&conn, "SELECT r FROM v"),
        "unsafe use of foryou_refit()"
    );
    assert_eq!(
        int(&conn, "SELECT count(*) FROM feed_model"),
        0,
        "the refit ran anyway"
    );
}

#[test]
fn table_functions_have_the_documented_columns() {
    let conn = memory();
    for (function, columns, arguments) in [
        ("recommend", ["item_id", "score", "rank"], 3),
        ("similar_items", ["item_id", "score", "rank"], 3),
        ("similar_users", ["user_id", "score", "rank"], 3),
        ("why_recommended", ["item_id", "contribution", "rank"], 4),
    ] {
        let visible: Vec<String> = rows(
            &conn,
            &format!("SELECT name FROM pragma_table_xinfo('{function}') WHERE hidden = 0"),
        )
        .into_iter()
        .map(|r| match &r[0] {
            rusqlite::types::Value::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
        assert_eq!(visible, columns, "{function}");
        let hidden = int(
            &conn,
            &format!("SELECT count(*) FROM pragma_table_xinfo('{function}') WHERE hidden <> 0"),
        );
        assert_eq!(
            hidden, arguments,
            "{function}: one hidden column per argument"
        );
    }
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou")
        .unwrap();
    let columns: Vec<(String, String)> = {
        let mut stmt = conn
            .prepare("SELECT name, type FROM pragma_table_xinfo('feed')")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    };
    let expected = [
        ("user_id", "INTEGER"),
        ("item_id", "INTEGER"),
        ("watch_time", "REAL"),
        ("duration", "REAL"),
        ("ts", "INTEGER"),
    ];
    assert_eq!(
        columns,
        expected.map(|(n, t)| (n.to_string(), t.to_string()))
    );
}

/// The version of the extension crate, read from the workspace's Cargo.toml.
fn crate_version() -> String {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml")).unwrap();
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && line.starts_with("version") {
            return line.split('"').nth(1).expect("quoted version").to_string();
        }
    }
    panic!("no [package] version in Cargo.toml")
}

#[test]
fn version_and_debug_report_the_build() {
    let conn = memory();
    let version = text(&conn, "SELECT foryou_version()");
    assert_eq!(version, crate_version());
    let debug = text(&conn, "SELECT foryou_debug()");
    let lines: Vec<&str> = debug.lines().collect();
    assert!(
        lines.contains(&format!("version: {version}").as_str()),
        "{debug}"
    );
    let sqlite = text(&conn, "SELECT sqlite_version()");
    // The extension reports the SQLite it runs in (here rusqlite's bundled one).
    assert!(
        lines.contains(&format!("sqlite: {sqlite}").as_str()),
        "{debug}"
    );
    let keys: Vec<&str> = lines.iter().filter_map(|l| l.split(": ").next()).collect();
    assert_eq!(
        keys,
        ["version", "sqlite", "simd", "scan", "cpus", "format"],
        "{debug}"
    );
    assert!(
        lines.contains(&"scan: int8") || lines.contains(&"scan: f32"),
        "{debug}"
    );
}
