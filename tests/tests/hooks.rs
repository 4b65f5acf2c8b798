//! The paths no SQL input reaches, reached through the test-hooks build of the extension
//! (`make hooks-loadable`: cargo feature `test-hooks`, `target/hooks/libforyou.so`, never
//! the release `.so`; see `src/hooks.rs`): a diverged refit keeps the previous model, an
//! automatic refit that diverges keeps the INSERT and the model and the next one refits,
//! and a panic in any callback becomes the documented internal error, stores nothing and
//! leaves the connection working.
//!
//! `FORYOU_HOOKS_EXT` (the Makefile sets it) names that build; without it these tests
//! fail under CI and are reported as skipped by `make test` elsewhere.

mod common;

use std::path::PathBuf;

use common::*;
use rusqlite::Connection;

fn hooks_ext() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("FORYOU_HOOKS_EXT")?);
    let so = path.with_extension("so");
    assert!(
        so.exists(),
        "{} is missing: make hooks-loadable",
        so.display()
    );
    Some(path)
}

/// An in-memory database with the test-hooks build loaded; None (recorded as a skip, a
/// failure under CI) without `FORYOU_HOOKS_EXT`.
fn hooked() -> Option<Connection> {
    let Some(path) = hooks_ext() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "FORYOU_HOOKS_EXT is not set (make integration sets it)"
        );
        foryou_tests::skipped("FORYOU_HOOKS_EXT is not set: run make hooks-loadable and set it");
        return None;
    };
    let conn = Connection::open_in_memory().unwrap();
    // SAFETY: our own extension, built by this repository.
    unsafe {
        conn.load_extension_enable().unwrap();
        conn.load_extension(path, None::<&str>).unwrap();
        conn.load_extension_disable().unwrap();
    }
    Some(conn)
}

fn arm(conn: &Connection, sql: &str) {
    assert_eq!(text(conn, sql), "armed", "{sql}");
}

type Rows = Vec<Vec<rusqlite::types::Value>>;

/// Everything a model is: its metadata, its factor blobs, and what it serves.
fn model_state(conn: &Connection) -> (Rows, Vec<u8>, Vec<u8>, Rows) {
    (
        rows(conn, "SELECT key, value FROM feed_model ORDER BY key"),
        factor_blobs(conn, "feed", "users"),
        factor_blobs(conn, "feed", "items"),
        rows(
            conn,
            "WITH RECURSIVE u(id) AS (SELECT 0 UNION ALL SELECT id + 1 FROM u WHERE id < 19)
             SELECT u.id, r.item_id, r.score FROM u, recommend(u.id, 5) AS r",
        ),
    )
}

const DIVERGED: &str = "foryou_refit: model diverged: user factor row 0 is not finite (NaN or infinity); lower alpha or raise regularization; the previous model is kept";

#[test]
fn a_diverged_refit_keeps_the_previous_model_and_the_next_refit_works() {
    let Some(conn) = hooked() else { return };
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 1, tune = false)",
    )
    .unwrap();
    checkerboard(&conn, "feed");

    // The first refit diverges: no model is stored, and serving is live popularity.
    arm(&conn, "SELECT foryou_test_hook('diverge', 1)");
    assert_eq!(error_of(&conn, "SELECT foryou_refit()"), DIVERGED);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed_model"), 0);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed_users"), 0);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed_items"), 0);

    let report = refit(&conn, "SELECT foryou_refit()");
    assert_eq!(report["version"], 1);
    let before = model_state(&conn);

    // Full and incremental refits that diverge leave every byte of the model, inside a
    // transaction or not, and the transaction goes on.
    conn.execute_batch("INSERT INTO feed VALUES (3, 17, 15, 15, 1800000000)")
        .unwrap();
    for sql in [
        "SELECT foryou_refit()",
        r#"SELECT foryou_refit('feed', '{"mode": "incremental"}')"#,
        r#"SELECT foryou_refit('feed', '{"factors": 6}')"#,
    ] {
        arm(&conn, "SELECT foryou_test_hook('diverge', 1)");
        assert_eq!(error_of(&conn, sql), DIVERGED, "{sql}");
        // The served feeds differ from `before` only by the new event of user 3, which
        // is folded in either way; compare the stored model.
        let now = model_state(&conn);
        assert_eq!(
            (&now.0, &now.1, &now.2),
            (&before.0, &before.1, &before.2),
            "{sql}"
        );
    }
    conn.execute_batch("BEGIN").unwrap();
    arm(&conn, "SELECT foryou_test_hook('diverge', 1)");
    assert_eq!(error_of(&conn, "SELECT foryou_refit()"), DIVERGED);
    assert!(!conn.is_autocommit(), "the transaction is still open");
    conn.execute_batch("INSERT INTO feed VALUES (4, 18, 15, 15, 1800000001); COMMIT")
        .unwrap();
    assert_eq!(model_state(&conn).0, before.0);

    // Disarmed, the next refit stores version 2.
    let report = refit(&conn, "SELECT foryou_refit()");
    assert_eq!(report["version"], 2, "{report}");
    assert_eq!(report["events"], 102, "{report}");
}

#[test]
fn an_automatic_refit_that_diverges_keeps_the_insert_and_the_next_one_refits() {
    let Some(conn) = hooked() else { return };
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 1, tune = false, auto_refit = 4)",
    )
    .unwrap();
    checkerboard(&conn, "feed"); // 100 inserts: 25 automatic refits already
    refit(&conn, "SELECT foryou_refit()");
    let version = || int(&conn, "SELECT value FROM feed_model WHERE key = 'version'");
    let before = model_state(&conn);
    let v = version();
    assert_eq!(v, 26);

    // The 4th insert runs the automatic refit, which diverges: the INSERT stands, the model
    // stays.
    arm(&conn, "SELECT foryou_test_hook('diverge', 1)");
    for n in 0..4 {
        conn.execute(
            "INSERT INTO feed VALUES (?1, 3, 15, 15, 1800000000)",
            [n * 5],
        )
        .unwrap();
    }
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 104);
    assert_eq!(model_state(&conn).0, before.0);
    assert_eq!(version(), v);
    // The next check, 4 inserts later, refits (8 events since the model), inside a
    // transaction too.
    conn.execute_batch("BEGIN").unwrap();
    for n in 0..4 {
        conn.execute(
            "INSERT INTO feed VALUES (?1, 13, 15, 15, 1800000001)",
            [10 + n * 2],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(version(), v + 1);
    let report: serde_json::Value = serde_json::from_str(&text(
        &conn,
        "SELECT value FROM feed_model WHERE key = 'report'",
    ))
    .unwrap();
    assert_eq!(report["mode"], "incremental", "{report}");
    assert_eq!(report["events"], 108, "{report}");
}

/// The documented message of the panic guard for `who`.
fn internal(who: &str) -> String {
    format!("{who}: internal error (test hook: a panic in {who}); nothing was changed by this call")
}

#[test]
fn a_panic_in_any_callback_is_an_internal_error_that_changes_nothing() {
    let Some(conn) = hooked() else { return };
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 1, tune = false)",
    )
    .unwrap();
    checkerboard(&conn, "feed");

    // The table's callbacks: a multi-row INSERT whose second row panics stores none of
    // its rows; a scan that panics on its 3rd callback fails whole.
    arm(&conn, "SELECT foryou_test_hook('panic', 2, 'foryou')");
    assert_eq!(
        error_of(
            &conn,
            "INSERT INTO feed VALUES (1, 1, 1, 1, 1), (2, 2, 2, 2, 2), (3, 3, 3, 3, 3)"
        ),
        internal("foryou")
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 100);
    arm(&conn, "SELECT foryou_test_hook('panic', 3, 'foryou')");
    assert_eq!(error_of(&conn, "SELECT * FROM feed"), internal("foryou"));

    // A refit that panics stores no model; nor does one after a model exists change it.
    arm(&conn, "SELECT foryou_test_hook('panic', 1, 'foryou_refit')");
    assert_eq!(
        error_of(&conn, "SELECT foryou_refit()"),
        internal("foryou_refit")
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM feed_model"), 0);
    refit(&conn, "SELECT foryou_refit()");
    let before = model_state(&conn);
    arm(&conn, "SELECT foryou_test_hook('panic', 1, 'foryou_refit')");
    assert_eq!(
        error_of(&conn, "SELECT foryou_refit()"),
        internal("foryou_refit")
    );

    // The table functions and foryou_evaluate.
    conn.execute_batch(
        "CREATE TABLE holdout(user_id INTEGER, item_id INTEGER); INSERT INTO holdout VALUES (1, 2)",
    )
    .unwrap();
    for (who, sql) in [
        ("recommend", "SELECT * FROM recommend(1, 5)"),
        ("similar_items", "SELECT * FROM similar_items(1, 5)"),
        (
            "foryou_evaluate",
            "SELECT foryou_evaluate('feed', 'holdout', 5)",
        ),
    ] {
        for n in 1..=3 {
            arm(
                &conn,
                &format!("SELECT foryou_test_hook('panic', {n}, '{who}')"),
            );
            match try_run(&conn, sql) {
                Err(e) => assert_eq!(message(&e), internal(who), "{sql} (callback {n})"),
                // Fewer than n callbacks of `who`: nothing fired.
                Ok(_) => assert!(n > 1, "{sql}: the first callback did not panic"),
            }
            arm(&conn, "SELECT foryou_test_hook('off')");
        }
    }

    // After every panic the connection serves, refits and writes as before.
    assert_eq!(model_state(&conn), before);
    conn.execute_batch("INSERT INTO feed VALUES (1, 1, 1, 1, 1)")
        .unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 101);
    assert_eq!(refit(&conn, "SELECT foryou_refit()")["version"], 2);
}

#[test]
fn the_release_build_has_no_test_hook() {
    let conn = memory();
    let err = error_of(&conn, "SELECT foryou_test_hook('off')");
    assert!(
        err.starts_with("no such function: foryou_test_hook"),
        "{err}"
    );
}
