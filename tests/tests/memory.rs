//! Memory: a refit that cannot have the memory it needs fails with `SQLITE_NOMEM` and
//! changes nothing, instead of aborting the host process; it is refused before it
//! allocates when its estimate exceeds SQLite's heap limit (`PRAGMA hard_heap_limit`,
//! `PRAGMA soft_heap_limit`).
//!
//! SQLite's heap limits are process-wide: the tests that set one hold [`LOCK`] and
//! clear both limits when they end (a PRAGMA can only lower the hard limit, so they are
//! cleared through the C API). The address-space test runs its refit in a child process
//! (this test binary again, under `ulimit -v`).

// Test data: counts, ids and timestamps far inside every integer type they are cast to.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use common::*;
use rusqlite::{Connection, ErrorCode};

/// Held by every test that sets a heap limit, or that SQLite's limit would disturb.
static LOCK: Mutex<()> = Mutex::new(());

/// Clears both heap limits when dropped (also when the test fails).
struct Limits;

impl Drop for Limits {
    fn drop(&mut self) {
        // SAFETY: sets process-wide limits of the (bundled) SQLite; 0 means none.
        unsafe {
            rusqlite::ffi::sqlite3_hard_heap_limit64(0);
            rusqlite::ffi::sqlite3_soft_heap_limit64(0);
        }
    }
}

fn locked() -> (std::sync::MutexGuard<'static, ()>, Limits) {
    let guard = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    (guard, Limits)
}

/// `n` events over `users` x `items` (pseudo-random pairs), in one transaction.
fn events(conn: &Connection, table: &str, n: u64, users: u64, items: u64) {
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut stmt = conn
            .prepare(&format!(
                "INSERT INTO {table}(user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, ?3, 20.0, ?4)"
            ))
            .unwrap();
        for k in 1..=n {
            let user = (k.wrapping_mul(2_654_435_761) % (1 << 32)) % users;
            let item = (k.wrapping_mul(40_503).wrapping_add(12_345) % (1 << 32))
                .wrapping_mul(2_246_822_519)
                % (1 << 32)
                % items;
            stmt.execute((
                user as i64,
                item as i64,
                (k % 23) as f64,
                1_700_000_000 + k as i64,
            ))
            .unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// The stored model of `feed`: version, tag and factor blobs.
fn stored(conn: &Connection) -> (i64, String, Vec<u8>, Vec<u8>) {
    (
        int(conn, "SELECT value FROM feed_model WHERE key = 'version'"),
        text(conn, "SELECT value FROM feed_model WHERE key = 'tag'"),
        factor_blobs(conn, "feed", "users"),
        factor_blobs(conn, "feed", "items"),
    )
}

/// The error of `sql`, which must fail: its code's kind and its message.
fn failure(conn: &Connection, sql: &str) -> (Option<ErrorCode>, String) {
    match try_run(conn, sql) {
        Ok(rows) => panic!("expected an error from {sql:?}, got rows {rows:?}"),
        Err(e) => (e.sqlite_error_code(), message(&e)),
    }
}

/// The finding's shape: 150k events over 20k users x 20k items, with a small model.
fn finding_shape(path: &Path) -> Connection {
    let conn = open(path);
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 8, tune = false, iterations = 1)",
    )
    .unwrap();
    events(&conn, "feed", 150_000, 20_000, 20_000);
    refit(&conn, "SELECT foryou_refit('feed')");
    conn
}

/// Set by the parent of [`child_refit`]: the database the child refits.
const CHILD_DB: &str = "FORYOU_MEMORY_CHILD_DB";
/// The child's address-space limit, in KiB (`ulimit -v`): 420 MiB, as in the finding.
const CHILD_LIMIT_KIB: u64 = 420 * 1024;

/// The child half of [`a_refit_under_an_address_space_limit_fails_with_nomem`]: only
/// with [`CHILD_DB`] set (else it passes at once). Refits with `factors = 1024`, which
/// needs far more than the limit, and prints the outcome on one line.
#[test]
fn child_refit() {
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let conn = open(Path::new(&path));
    let outcome = try_run(
        &conn,
        r#"SELECT foryou_refit('feed', '{"factors": 1024, "iterations": 1}')"#,
    );
    match outcome {
        Ok(rows) => println!("CHILD-OUTCOME ok {rows:?}"),
        Err(e) => println!(
            "CHILD-OUTCOME error {:?} {}",
            e.sqlite_error_code(),
            message(&e)
        ),
    }
}

#[test]
fn a_refit_under_an_address_space_limit_fails_with_nomem() {
    let _lock = locked();
    let dir = TempDir::new("rlimit");
    let path = dir.join("feed.db");
    let conn = finding_shape(&path);
    let before = stored(&conn);
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"ulimit -v "$1" && shift && exec "$@""#)
        .arg("sh")
        .arg(CHILD_LIMIT_KIB.to_string())
        .arg(&exe)
        .args(["child_refit", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child did not exit normally ({:?}): {stdout}\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("CHILD-OUTCOME ").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no outcome from the child: {stdout}\n{stderr}"));
    assert!(
        line.starts_with("CHILD-OUTCOME error Some(OutOfMemory) foryou_refit: out of memory: "),
        "{line}"
    );
    assert!(
        line.ends_with("which cannot be allocated; the previous model is kept"),
        "{line}"
    );
    assert_eq!(stored(&conn), before, "the previous model changed");
    // Without the limit, the same connection refits (a small model, quickly).
    refit(&conn, r#"SELECT foryou_refit('feed', '{"iterations": 1}')"#);
    assert_eq!(stored(&conn).0, before.0 + 1);
}

/// A table whose refit at `factors = 256` needs some 40 MiB, with a stored model.
fn medium(conn: &Connection) {
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 4, tune = false)")
        .unwrap();
    events(conn, "feed", 20_000, 2_000, 2_000);
    refit(conn, "SELECT foryou_refit('feed')");
}

/// `foryou_refit: this refit needs about N MiB, more than the 7.6 MiB heap limit (PRAGMA
/// {pragma}); the previous model is kept`, with N > 7.6: returns N.
fn refused_for(message: &str, pragma: &str) -> f64 {
    let tail = format!(
        " MiB, more than the 7.6 MiB heap limit (PRAGMA {pragma}); the previous model is kept"
    );
    let needed = message
        .strip_prefix("foryou_refit: this refit needs about ")
        .and_then(|m| m.strip_suffix(&tail))
        .unwrap_or_else(|| panic!("unexpected message {message:?}"));
    let needed: f64 = needed.parse().unwrap();
    assert!(needed > 7.6, "{message}");
    needed
}

#[test]
fn a_refit_over_the_hard_heap_limit_is_refused_before_it_allocates() {
    let _lock = locked();
    let conn = memory();
    medium(&conn);
    let before = stored(&conn);
    conn.execute_batch("PRAGMA hard_heap_limit = 8000000")
        .unwrap();
    let (code, message) = failure(&conn, r#"SELECT foryou_refit('feed', '{"factors": 256}')"#);
    assert_eq!(code, Some(ErrorCode::OutOfMemory), "{message}");
    let needed = refused_for(&message, "hard_heap_limit");
    assert!(needed > 30.0, "{message}");
    assert_eq!(stored(&conn), before);
    // The same refit, incremental (the stored model's 4 factors): small enough.
    refit(
        &conn,
        r#"SELECT foryou_refit('feed', '{"mode": "incremental"}')"#,
    );
    assert_eq!(stored(&conn).0, before.0 + 1);
}

#[test]
fn a_refit_over_the_soft_heap_limit_is_refused_before_it_allocates() {
    let _lock = locked();
    let conn = memory();
    medium(&conn);
    let before = stored(&conn);
    conn.execute_batch("PRAGMA soft_heap_limit = 8000000")
        .unwrap();
    let (code, message) = failure(&conn, r#"SELECT foryou_refit('feed', '{"factors": 256}')"#);
    assert_eq!(code, Some(ErrorCode::OutOfMemory), "{message}");
    refused_for(&message, "soft_heap_limit");
    assert_eq!(stored(&conn), before);
}

#[test]
fn a_small_refit_under_a_heap_limit_still_refits() {
    let _lock = locked();
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou()")
        .unwrap();
    checkerboard(&conn, "feed");
    conn.execute_batch("PRAGMA hard_heap_limit = 8000000")
        .unwrap();
    let report = refit(&conn, "SELECT foryou_refit('feed')");
    assert_eq!(report["version"], 1);
    // And the medium table under a large limit.
    let conn = memory();
    // SAFETY: clears the limit set above (a PRAGMA can only lower it).
    unsafe { rusqlite::ffi::sqlite3_hard_heap_limit64(0) };
    conn.execute_batch("PRAGMA hard_heap_limit = 1000000000; PRAGMA soft_heap_limit = 900000000")
        .unwrap();
    medium(&conn);
    let report = refit(&conn, r#"SELECT foryou_refit('feed', '{"factors": 256}')"#);
    assert_eq!(report["version"], 2);
}

/// An automatic refit refused for want of memory is a soft failure, like a diverged
/// fit: the INSERT that ran it stands, the model stays, and later inserts go on (a
/// limit must not stop an app's event stream).
#[test]
fn an_automatic_refit_over_the_heap_limit_keeps_the_insert_and_the_model() {
    let _lock = locked();
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 256, tune = false, auto_refit = 100)",
    )
    .unwrap();
    events(&conn, "feed", 20_000, 2_000, 2_000); // ran automatic refits
    let before = stored(&conn);
    assert!(before.0 >= 1);
    conn.execute_batch("PRAGMA soft_heap_limit = 8000000")
        .unwrap();
    let count = int(&conn, "SELECT count(*) FROM feed");
    events(&conn, "feed", 300, 2_000, 2_000); // three checks, each refused
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), count + 300);
    assert_eq!(stored(&conn), before);
    // With the limit lifted, the next check refits again.
    // SAFETY: sets a process-wide limit of the (bundled) SQLite; 0 means none.
    unsafe { rusqlite::ffi::sqlite3_soft_heap_limit64(0) };
    events(&conn, "feed", 100, 2_000, 2_000);
    assert!(stored(&conn).0 > before.0);
}
