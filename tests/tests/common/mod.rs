//! Helpers shared by the integration test files (each file is its own crate and
//! compiles this module with `mod common;`; not every file uses every helper).

// Test data: counts, ids, ranks and timestamps far inside every integer type they are cast to.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::types::Value;
use rusqlite::{Connection, Error};

pub use foryou_tests::{load, memory, open};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "foryou-tests-{tag}-{}-{nanos:x}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The message SQLite reports for `e` (without rusqlite's decorations).
pub fn message(e: &Error) -> String {
    match e {
        Error::SqliteFailure(_, Some(m)) => m.clone(),
        other => other.to_string(),
    }
}

/// Runs every statement of `sql`, reading every row; returns the first error's message.
/// Panics when `sql` succeeds.
pub fn error_of(conn: &Connection, sql: &str) -> String {
    match try_run(conn, sql) {
        Ok(rows) => panic!("expected an error from {sql:?}, got rows {rows:?}"),
        Err(e) => message(&e),
    }
}

/// Prepares `sql` (one statement) and reads all its rows as values.
pub fn try_run(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<Vec<Value>>> {
    let mut stmt = conn.prepare(sql)?;
    let n = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(
            (0..n)
                .map(|i| row.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    Ok(out)
}

/// All rows of `sql` as values; panics on error.
pub fn rows(conn: &Connection, sql: &str) -> Vec<Vec<Value>> {
    try_run(conn, sql).unwrap_or_else(|e| panic!("{sql}: {}", message(&e)))
}

/// One integer from a query returning one row and column.
pub fn int(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {}", message(&e)))
}

/// One text value from a query returning one row and column.
pub fn text(conn: &Connection, sql: &str) -> String {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {}", message(&e)))
}

/// Rows of a ranked table function (`recommend`/`similar_items`): (`item_id`, score, rank).
pub fn ranked(conn: &Connection, sql: &str) -> Vec<(i64, f64, i64)> {
    let mut stmt = conn
        .prepare(sql)
        .unwrap_or_else(|e| panic!("{sql}: {}", message(&e)));
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
    rows.unwrap_or_else(|e| panic!("{sql}: {}", message(&e)))
}

/// The item ids of a ranked result.
pub fn items(rows: &[(i64, f64, i64)]) -> Vec<i64> {
    rows.iter().map(|r| r.0).collect()
}

/// Checks the shape every ranked result must have: ranks 1..n in order, scores
/// non-increasing, no item twice.
pub fn assert_well_ranked(rows: &[(i64, f64, i64)]) {
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.2, i as i64 + 1, "rank of row {i} in {rows:?}");
        assert!(
            row.1.is_finite(),
            "score of row {i} is not finite: {rows:?}"
        );
    }
    for pair in rows.windows(2) {
        assert!(pair[0].1 >= pair[1].1, "scores increase: {rows:?}");
    }
    let mut ids = items(rows);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), rows.len(), "an item appears twice: {rows:?}");
}

/// Refits and parses the JSON report.
pub fn refit(conn: &Connection, sql: &str) -> serde_json::Value {
    let report = text(conn, sql);
    serde_json::from_str(&report)
        .unwrap_or_else(|e| panic!("{sql} returned invalid JSON {report:?}: {e}"))
}

/// A training option of the model stored for table `feed` (what its last refit used).
pub fn model_option(conn: &Connection, key: &str) -> serde_json::Value {
    let options: serde_json::Value = serde_json::from_str(&text(
        conn,
        "SELECT value FROM feed_model WHERE key = 'options'",
    ))
    .unwrap();
    options[key].clone()
}

/// The checkerboard fixture: 20 users x 20 items. Users 0-9 each watched (fully) 5 of
/// items 0-9, users 10-19 5 of items 10-19, a different half per user; every item has
/// 5 viewers. Returns the (user, item) pairs inserted.
pub fn checkerboard(conn: &Connection, table: &str) -> Vec<(i64, i64)> {
    let mut pairs = Vec::new();
    for user in 0..20i64 {
        let block = user / 10;
        for j in 0..10i64 {
            if (3 * user + 7 * j) % 10 < 5 {
                pairs.push((user, block * 10 + j));
            }
        }
    }
    let mut stmt = conn
        .prepare(&format!("INSERT INTO {table}(user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, 15.0, 15.0, ?3)"))
        .unwrap();
    for (n, (user, item)) in pairs.iter().enumerate() {
        stmt.execute((user, item, 1_700_000_000 + n as i64))
            .unwrap();
    }
    pairs
}

/// The concatenated `factors` blobs of `<table>_<part>` in chunk order.
pub fn factor_blobs(conn: &Connection, table: &str, part: &str) -> Vec<u8> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT factors FROM \"{table}_{part}\" ORDER BY chunk"
        ))
        .unwrap();
    let chunks = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
    chunks.flat_map(Result::unwrap).collect()
}

/// The documented CREATE options, in documentation order. The extension may list more
/// (the option set grows); these must be there, in this order.
pub const DOCUMENTED_OPTIONS: &[&str] = &[
    "factors",
    "iterations",
    "regularization",
    "regularization_scaling",
    "alpha",
    "confidence",
    "skip_ratio",
    "skip_seconds",
    "skip_weight",
    "half_life_days",
    "popularity_exponent",
    "cg_steps",
    "seed",
    "threads",
    "incremental_iterations",
    "auto_refit",
    "explore",
    "exclude_watched",
    "exclude_items",
    "content",
    "content_rowid",
];

/// Table options: fixed at CREATE time, which `foryou_refit(model, options_json)` refuses.
pub const TABLE_OPTIONS: &[&str] = &[
    "auto_refit",
    "explore",
    "exclude_watched",
    "exclude_items",
    "content",
    "content_rowid",
];

/// Checks that `message` is exactly `prefix` followed by `(<label>: a, b, c)` and returns
/// the listed names.
pub fn listed_options(message: &str, prefix: &str, label: &str) -> Vec<String> {
    let head = format!("{prefix}({label}: ");
    let list = message
        .strip_prefix(&head)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("message {message:?} is not of the form {head:?}...)"));
    list.split(", ").map(str::to_string).collect()
}

/// Checks that `documented` appears in `listed` in the same relative order, each once.
pub fn assert_lists_in_order(listed: &[String], documented: &[&str]) {
    let positions: Vec<usize> = documented
        .iter()
        .map(|name| {
            assert_eq!(
                listed.iter().filter(|l| l == name).count(),
                1,
                "{name} listed once in {listed:?}"
            );
            listed.iter().position(|l| l == name).unwrap()
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "documented options out of order in {listed:?}"
    );
}

/// The option list a CREATE error names: checked to hold the documented options.
pub fn create_option_list(conn: &Connection) -> Vec<String> {
    let message = error_of(
        conn,
        "CREATE VIRTUAL TABLE no_such_option_probe USING foryou(colour = 1)",
    );
    let listed = listed_options(&message, "foryou: unrecognized option 'colour' ", "options");
    assert_lists_in_order(&listed, DOCUMENTED_OPTIONS);
    listed
}
