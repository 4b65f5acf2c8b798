//! SQLite's own errors through the scalar functions: `foryou_refit` and
//! `foryou_evaluate` keep SQLite's code (BUSY, READONLY, INTERRUPT) with a message that
//! names the function; a refit stops soon after `sqlite3_interrupt`; two refits at
//! once store two versions; a NUL byte in an argument gives a message.

// Test data: counts, ids and timestamps far inside every integer type they are cast to.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rusqlite::{Connection, ErrorCode, OpenFlags};

/// A database file with a checkerboard table `feed` and one small model (version 1).
fn file_fixture(dir: &TempDir) -> (std::path::PathBuf, Connection) {
    let path = dir.join("feed.db");
    let conn = open(&path);
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, tune = false);
         CREATE TABLE other(x);",
    )
    .unwrap();
    checkerboard(&conn, "feed");
    refit(&conn, "SELECT foryou_refit('feed')");
    (path, conn)
}

/// The stored model: version and factor blobs.
fn stored(conn: &Connection) -> (i64, Vec<u8>, Vec<u8>) {
    (
        int(conn, "SELECT value FROM feed_model WHERE key = 'version'"),
        factor_blobs(conn, "feed", "users"),
        factor_blobs(conn, "feed", "items"),
    )
}

/// The error of `sql`, which must fail: its extended code's kind and its message.
fn failure(conn: &Connection, sql: &str) -> (Option<ErrorCode>, String) {
    match try_run(conn, sql) {
        Ok(rows) => panic!("expected an error from {sql:?}, got rows {rows:?}"),
        Err(e) => (e.sqlite_error_code(), message(&e)),
    }
}

#[test]
fn a_refit_blocked_by_another_writer_fails_with_busy() {
    let dir = TempDir::new("busy");
    let (path, conn) = file_fixture(&dir);
    // rusqlite's default is 5 s; the lock is held throughout anyway.
    conn.busy_timeout(Duration::from_millis(50)).unwrap();
    let before = stored(&conn);
    let writer = open(&path);
    writer
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO other VALUES (1);")
        .unwrap();
    for sql in [
        "SELECT foryou_refit('feed')",
        "SELECT foryou_refit('feed', '{\"mode\": \"incremental\"}')",
    ] {
        let (code, message) = failure(&conn, sql);
        assert_eq!(code, Some(ErrorCode::DatabaseBusy), "{sql}: {message}");
        assert_eq!(
            message,
            "foryou_refit: cannot refit feed (database is locked); the previous model is kept"
        );
    }
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(stored(&conn), before);
    let report = refit(&conn, "SELECT foryou_refit('feed')");
    assert_eq!(report["version"], 2);
}

#[test]
fn a_refit_of_a_read_only_database_fails_at_once_with_readonly() {
    let dir = TempDir::new("readonly");
    let (path, conn) = file_fixture(&dir);
    let before = stored(&conn);
    drop(conn);
    let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    load(&reader).unwrap();
    let (code, message) = failure(&reader, "SELECT foryou_refit('feed')");
    assert_eq!(code, Some(ErrorCode::ReadOnly), "{message}");
    assert_eq!(
        message,
        "foryou_refit: cannot refit feed (attempt to write a readonly database); the previous model is kept"
    );
    assert_eq!(stored(&reader), before);
    // Reading still works.
    assert!(!ranked(&reader, "SELECT * FROM recommend(1, 3)").is_empty());
}

#[test]
fn foryou_evaluate_keeps_sqlites_code() {
    let dir = TempDir::new("evaluate");
    let (path, conn) = file_fixture(&dir);
    conn.execute_batch(
        "CREATE TABLE holdout(user_id, item_id); INSERT INTO holdout VALUES (1, 2);",
    )
    .unwrap();
    let sql = "SELECT foryou_evaluate('feed', 'holdout', 5)";
    assert!(text(&conn, sql).starts_with('{'));
    // An exclusive lock (rollback journal) keeps readers out.
    let fresh = open(&path);
    assert!(text(&fresh, sql).starts_with('{'));
    let writer = open(&path);
    writer
        .execute_batch("BEGIN EXCLUSIVE; INSERT INTO other VALUES (1);")
        .unwrap();
    let (code, message) = failure(&fresh, sql);
    assert_eq!(code, Some(ErrorCode::DatabaseBusy), "{message}");
    assert_eq!(
        message,
        "foryou_evaluate: cannot read schema 'main' (database is locked)"
    );
    writer.execute_batch("COMMIT").unwrap();
    assert!(text(&fresh, sql).starts_with('{'));
}

#[test]
fn a_nul_byte_in_a_model_name_or_an_option_key_is_named() {
    // Shown as U+2400, as rusqlite shows it in the virtual tables' messages.
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 4, tune = false)")
        .unwrap();
    checkerboard(&conn, "feed");
    assert_eq!(
        error_of(
            &conn,
            "SELECT * FROM recommend(1, 3, 'fe' || char(0) || 'ed')"
        ),
        "recommend: no foryou table named 'fe␀ed' in schema 'main' (foryou tables: feed)"
    );
    let (code, message) = failure(&conn, "SELECT foryou_refit('fe' || char(0) || 'ed')");
    assert_eq!(code, Some(ErrorCode::Unknown));
    assert_eq!(
        message,
        "foryou_refit: no foryou table named 'fe␀ed' in schema 'main' (foryou tables: feed)"
    );
    let (code, message) = failure(
        &conn,
        "SELECT foryou_refit('feed', '{\"ite\\u0000rations\": 3}')",
    );
    assert_eq!(code, Some(ErrorCode::Unknown));
    assert!(
        message.starts_with(
            "foryou_refit: unrecognized option 'ite␀rations' in options_json (per-refit options: "
        ),
        "{message}"
    );
    let (_, message) = failure(
        &conn,
        "SELECT foryou_evaluate('fe' || char(0) || 'ed', 'holdout', 5)",
    );
    assert_eq!(
        message,
        "foryou_evaluate: no foryou table named 'fe␀ed' in schema 'main' (foryou tables: feed)"
    );
}

/// A table whose full refit with `factors = 64, iterations = 50` takes seconds: 200,000
/// events of 8,000 users on 3,000 items, and a stored model (version 1) from 1 sweep.
fn big(path: &Path) -> Connection {
    let conn = open(path);
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 64, tune = false);
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 199999)
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
           SELECT i % 8000, (i * 2654435761 + i / 8000) % 3000, 1 + (i * 7) % 30, 30, 1700000000 + i
           FROM n;",
    )
    .unwrap();
    refit(&conn, "SELECT foryou_refit('feed', '{\"iterations\": 1}')");
    conn
}

/// Runs `sql` (a long refit), interrupting the connection from another thread after
/// 300 ms; returns the error's code and message, and the time from the interrupt to
/// the error.
fn interrupted(conn: &Connection, sql: &str) -> (Option<ErrorCode>, String, Duration) {
    let handle = conn.get_interrupt_handle();
    let interrupter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        handle.interrupt();
        Instant::now()
    });
    let outcome = try_run(conn, sql);
    let ended = Instant::now();
    let at = interrupter.join().unwrap();
    match outcome {
        Ok(rows) => panic!("{sql} was not interrupted (it took under 300 ms?): {rows:?}"),
        Err(e) => (
            e.sqlite_error_code(),
            message(&e),
            ended.saturating_duration_since(at),
        ),
    }
}

#[test]
fn an_interrupted_refit_stops_soon_and_keeps_the_previous_model() {
    let dir = TempDir::new("interrupt");
    let conn = big(&dir.join("big.db"));
    let before = stored(&conn);
    assert_eq!(before.0, 1);
    for options in [
        // The fit's sweeps.
        r#"{"iterations": 50, "tune": false}"#,
        // Tuning's rungs.
        r#"{"iterations": 50, "tune": true}"#,
        r#"{"mode": "incremental", "incremental_iterations": 50}"#,
    ] {
        let sql = format!("SELECT foryou_refit('feed', '{options}')");
        let (code, message, latency) = interrupted(&conn, &sql);
        assert_eq!(
            code,
            Some(ErrorCode::OperationInterrupted),
            "{options}: {message}"
        );
        assert_eq!(
            message,
            "foryou_refit: cannot refit feed (interrupted); the previous model is kept"
        );
        assert!(
            latency < Duration::from_secs(1),
            "{options}: the error came {latency:?} after the interrupt"
        );
        eprintln!("{options}: interrupted after {latency:?}");
        assert_eq!(stored(&conn), before, "{options}");
    }
    // The connection is usable again, and a refit after the interrupt runs.
    let report = refit(&conn, "SELECT foryou_refit('feed', '{\"iterations\": 1}')");
    assert_eq!(report["version"], 2);
}

/// Refits per connection in [`two_refits_at_once_store_two_versions`].
const REFITS: usize = 15;

#[test]
fn two_refits_at_once_store_two_versions() {
    let dir = TempDir::new("versions");
    let path = dir.join("wal.db");
    let setup = open(&path);
    setup
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE VIRTUAL TABLE feed USING foryou(factors = 2, iterations = 2, tune = false);",
        )
        .unwrap();
    checkerboard(&setup, "feed");
    let versions: Vec<i64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let path = path.clone();
                scope.spawn(move || {
                    let conn = open(&path);
                    conn.busy_timeout(Duration::from_secs(20)).unwrap();
                    (0..REFITS)
                        .map(|_| {
                            refit(&conn, "SELECT foryou_refit('feed')")["version"]
                                .as_i64()
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut distinct = versions.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        versions.len(),
        "versions reported: {versions:?}"
    );
    assert_eq!(
        int(&setup, "SELECT value FROM feed_model WHERE key = 'version'"),
        2 * REFITS as i64
    );
    assert_eq!(distinct, (1..=2 * REFITS as i64).collect::<Vec<_>>());
}
