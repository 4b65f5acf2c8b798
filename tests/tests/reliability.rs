//! Regression tests of the reliability findings (issue 12): what a crafted file, an
//! all-skip table or an automatic refit over one must not do to the host or to serving.

mod common;

use common::{error_of, int, memory, rows};

fn fitted_feed(options: &str) -> rusqlite::Connection {
    let conn = memory();
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE feed USING foryou({options});
         WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 200)
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
         SELECT v % 7, v % 11, 10, 10, 1700000000 + v FROM n;"
    ))
    .unwrap();
    int(&conn, "SELECT length(foryou_refit('feed')) > 0");
    conn
}

/// One stored item row of 100,000 factors used to make serving allocate dim × dim
/// floats (80 GB) and abort the process; it is a damaged table.
#[test]
fn a_crafted_huge_embedding_is_damaged_storage_not_an_abort() {
    let conn = fitted_feed("factors = 4, tune = false");
    conn.execute_batch(
        "UPDATE feed_items SET ids = x'0100000000000000', factors = zeroblob(400000), \
         popularity = x'0000803f'",
    )
    .unwrap();
    for sql in [
        "SELECT * FROM recommend(1, 3)",
        "SELECT * FROM similar_items(1, 3)",
        "SELECT foryou_refit('feed', '{\"mode\": \"incremental\"}')",
    ] {
        assert_eq!(
            error_of(&conn, sql),
            "foryou: feed_items is damaged: 1 ids for 100000 factor values",
            "{sql}"
        );
    }
    // A full refit does not read the damaged model, and replaces it.
    int(&conn, "SELECT length(foryou_refit('feed')) > 0");
    assert_eq!(rows(&conn, "SELECT * FROM recommend(100, 3)").len(), 3);
}

/// A refit that sees only skips stores no user vectors; that is a valid model
/// (popularity serves every user), not a damaged one.
#[test]
fn a_model_without_user_vectors_serves_and_refits() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4);
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
         VALUES (1, 1, 1, 30, 1), (2, 2, 1, 30, 2), (3, 1, 1, 30, 3);",
    )
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&common::text(&conn, "SELECT foryou_refit('feed')")).unwrap();
    assert_eq!(report["skipped_pairs"], 3);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed_users"), 0);
    assert_eq!(
        rows(&conn, "SELECT item_id FROM recommend(1, 3)"),
        rows(&conn, "SELECT 2")
    );
    assert_eq!(rows(&conn, "SELECT * FROM recommend(99, 3)").len(), 2);
    assert_eq!(rows(&conn, "SELECT * FROM similar_items(1, 3)").len(), 1);
    let again: serde_json::Value = serde_json::from_str(&common::text(
        &conn,
        "SELECT foryou_refit('feed', '{\"mode\": \"incremental\"}')",
    ))
    .unwrap();
    assert_eq!(
        (again["mode"].as_str(), again["version"].as_i64()),
        (Some("incremental"), Some(2))
    );
}

/// The same with every event a skip by the refit's own options, and automatic refits
/// after it: they keep running (the model version moves on).
#[test]
fn automatic_refits_go_on_after_an_all_skip_model() {
    let conn = fitted_feed("factors = 4, tune = false, auto_refit = 5");
    let first = int(&conn, "SELECT value FROM feed_model WHERE key = 'version'");
    int(
        &conn,
        "SELECT length(foryou_refit('feed', '{\"skip_ratio\": 1000}')) > 0",
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM feed_users"), 0);
    conn.execute_batch(
        "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 10)
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
         SELECT 50 + v, v % 11, 10, 10, 1800000000 + v FROM n;",
    )
    .unwrap();
    assert_eq!(
        int(&conn, "SELECT value FROM feed_model WHERE key = 'version'"),
        first + 3
    );
    assert!(int(&conn, "SELECT count(*) FROM feed_users") > 0);
}

/// Disk full inside the caller's own transaction: the failing INSERT (or refit) undoes
/// only itself, as a plain table's statement does; the caller's earlier rows stay, the
/// transaction goes on, and the stored model is the previous one.
#[test]
fn disk_full_in_the_callers_transaction_undoes_only_the_failing_statement() {
    let dir = common::TempDir::new("full");
    let conn = common::open(&dir.join("full.db"));
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 8, tune = false);
         CREATE TABLE mine(x);
         CREATE TABLE staging(u, i);
         WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 20000)
         INSERT INTO staging SELECT v % 300, v % 2000 FROM n;
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
         SELECT u, i, 10, 10, 1 FROM staging LIMIT 500;",
    )
    .unwrap();
    int(&conn, "SELECT length(foryou_refit('feed')) > 0");
    let pages = int(&conn, "PRAGMA page_count");
    int(&conn, &format!("PRAGMA max_page_count = {}", pages + 3));
    conn.execute_batch("BEGIN; INSERT INTO mine VALUES (1);")
        .unwrap();
    let full = conn
        .execute_batch(
            "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) \
             SELECT u, i, 10, 10, 2 FROM staging",
        )
        .unwrap_err();
    assert_eq!(
        full.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DiskFull),
        "{full}"
    );
    assert!(
        !conn.is_autocommit(),
        "the caller's transaction was rolled back"
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM mine"), 1);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 500);
    // A refit that needs more pages than are left fails the same way.
    conn.execute_batch(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
         SELECT u, i, 10, 10, 3 FROM staging LIMIT 60",
    )
    .unwrap();
    let refit = error_of(&conn, "SELECT foryou_refit('feed', '{\"factors\": 64}')");
    assert!(refit.contains("full"), "{refit}");
    assert!(!conn.is_autocommit());
    assert_eq!(int(&conn, "SELECT count(*) FROM mine"), 1);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 560);
    assert_eq!(
        int(&conn, "SELECT value FROM feed_model WHERE key = 'version'"),
        1
    );
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM mine"), 1);
    assert_eq!(rows(&conn, "SELECT * FROM recommend(1, 3)").len(), 3);
}

/// `INSERT INTO feed SELECT ... FROM feed_events` read its own inserts and never ended;
/// it is refused at once and stores nothing. Selecting from `feed` itself works (SQLite
/// buffers a source that is the target virtual table).
#[test]
fn an_insert_reading_its_own_shadow_table_is_refused_not_endless() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4);
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
         VALUES (1, 1, 10, 10, 1), (2, 2, 10, 10, 2);",
    )
    .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        error_of(
            &conn,
            "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) \
             SELECT user_id, item_id, watch_time, duration, ts FROM feed_events"
        ),
        "foryou: feed: this INSERT reads feed_events, where its rows go, and would never end; \
         select from feed instead"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 2);
    conn.execute_batch(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
         SELECT user_id, item_id, watch_time, duration, ts + 10 FROM feed",
    )
    .unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 4);
    // A table whose name only starts like the shadow table's is an ordinary source.
    conn.execute_batch(
        "CREATE TABLE feed_events_archive AS SELECT * FROM feed_events;
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
         SELECT user_id, item_id, watch_time, duration, ts FROM feed_events_archive",
    )
    .unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 8);
}

/// Non-finite factors or popularity written into the shadow tables by hand are damage,
/// not scores of -inf (or NULL, which reads as an explored slot) and cosines past 1.
#[test]
fn non_finite_stored_values_are_damaged_storage() {
    for (damage, expected) in [
        (
            "UPDATE feed_items SET popularity = CAST(x'000080ff' || substr(popularity, 5) AS BLOB)",
            "foryou: feed_items is damaged: popularity of row 0 is -inf",
        ),
        (
            "UPDATE feed_items SET factors = CAST(x'0000c07f' || substr(factors, 5) AS BLOB)",
            "foryou: feed_items is damaged: factor 0 of row 0 is NaN",
        ),
        (
            "UPDATE feed_users SET factors = CAST(substr(factors, 1, 4) || x'0000807f' || substr(factors, 9) AS BLOB)",
            "foryou: feed_users is damaged: factor 1 of row 0 is inf",
        ),
    ] {
        let conn = fitted_feed("factors = 4, tune = false");
        conn.execute_batch(damage).unwrap();
        for sql in ["SELECT * FROM recommend(1, 3)", "SELECT * FROM similar_items(1, 3)"] {
            assert_eq!(error_of(&conn, sql), expected, "{damage}; {sql}");
        }
    }
}

fn feed_of(conn: &rusqlite::Connection, user: i64) -> Vec<Vec<rusqlite::types::Value>> {
    rows(
        conn,
        &format!("SELECT item_id, score FROM recommend({user}, 5)"),
    )
}

/// Freshness does not depend on rowid order: events inserted with rowids below the
/// refit's last one are folded in exactly like ones with higher rowids, a deleted event
/// changes the vector at once, and `auto_refit` counts low-rowid inserts.
#[test]
fn fold_in_and_auto_refit_do_not_depend_on_rowid_order() {
    // Watched items stay in the feed, so that every change of a vector shows.
    let high = fitted_feed("factors = 4, tune = false, exclude_watched = false");
    let low = fitted_feed("factors = 4, tune = false, exclude_watched = false");
    let before = feed_of(&high, 1);
    let insert = |conn: &rusqlite::Connection, first_rowid: i64| {
        for n in 0..5i64 {
            conn.execute(
                "INSERT INTO feed(rowid, user_id, item_id, watch_time, duration, ts) \
                 VALUES (?1, 1, ?2, 30, 10, 1800000000)",
                (first_rowid + n, 2 * n),
            )
            .unwrap();
        }
    };
    insert(&high, 1_000_000);
    insert(&low, -1_000);
    let after_high = feed_of(&high, 1);
    assert_ne!(after_high, before, "the new events were not folded in");
    assert_eq!(
        feed_of(&low, 1),
        after_high,
        "low rowids were not folded in"
    );
    // A deleted event is seen at once too.
    let user2 = feed_of(&high, 2);
    high.execute_batch(
        "DELETE FROM feed WHERE rowid = (SELECT min(rowid) FROM feed WHERE user_id = 2)",
    )
    .unwrap();
    assert_ne!(feed_of(&high, 2), user2);

    // Once rowid 9223372036854775807 is taken, SQLite hands out random rowids: every
    // later event is "below" it; automatic refits still run.
    let conn = fitted_feed("factors = 4, tune = false, auto_refit = 5");
    conn.execute_batch(
        "INSERT INTO feed(rowid, user_id, item_id, watch_time, duration, ts) \
         VALUES (9223372036854775807, 1, 1, 10, 10, 1800000000)",
    )
    .unwrap();
    let version = int(&conn, "SELECT value FROM feed_model WHERE key = 'version'");
    conn.execute_batch(
        "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 10)
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
         SELECT 60 + v, v % 11, 10, 10, 1800000000 + v FROM n;",
    )
    .unwrap();
    assert!(
        int(&conn, "SELECT value FROM feed_model WHERE key = 'version'") > version,
        "no automatic refit after random rowids"
    );
}

/// Inside the caller's transaction, a one-row INSERT whose automatic refit fails leaves
/// no event behind (SQLite undoes a failing virtual-table INSERT there only as far as
/// the table does); found by `make fuzz-long`.
#[test]
fn a_failed_automatic_refit_inside_a_transaction_leaves_no_event() {
    let conn = fitted_feed("factors = 4, tune = false, auto_refit = 1");
    conn.execute_batch("UPDATE feed_users SET factors = zeroblob(100)")
        .unwrap();
    let before = int(&conn, "SELECT count(*) FROM feed");
    conn.execute_batch("BEGIN").unwrap();
    let failed = error_of(
        &conn,
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (1, 1, 10, 10, 99)",
    );
    assert!(failed.contains("feed_users is damaged"), "{failed}");
    assert!(!conn.is_autocommit());
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), before);
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), before);
}

/// `{"progress": true}` reports a refit on standard error (the shell shows it): when
/// the fit starts, while it sweeps, and when the model is stored; nothing without it.
#[test]
fn a_refit_reports_its_progress_on_stderr_when_asked() {
    let ext = foryou_tests::extension_path();
    let run = |json: &str| {
        let sql = format!(
            "CREATE VIRTUAL TABLE feed USING foryou(factors = 8);
             WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 3000)
             INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
             SELECT v % 97, v % 89, v % 30, 15, v FROM n;
             SELECT json_extract(foryou_refit('feed', '{json}'), '$.version');"
        );
        let out = std::process::Command::new("sqlite3")
            .args([
                "-batch",
                "-cmd",
                &format!(".load {}", ext.display()),
                ":memory:",
            ])
            .arg(sql)
            .output()
            .expect("run the sqlite3 shell");
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (version, quiet) = run(r#"{"tune": false}"#);
    assert_eq!((version.as_str(), quiet.as_str()), ("1", ""));
    let (version, lines) = run(r#"{"tune": false, "iterations": 7, "progress": true}"#);
    assert_eq!(version, "1");
    let lines: Vec<&str> = lines.lines().collect();
    assert!(
        lines.iter().all(|l| l.starts_with("foryou_refit feed: ")),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("3000 events read; a full fit, 7 sweeps of 8 factors"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("sweep 7 of 7")),
        "{lines:?}"
    );
    assert!(
        lines.last().unwrap().contains("model version 1 stored"),
        "{lines:?}"
    );
    let (_, tuned) = run(r#"{"progress": true}"#);
    assert!(
        tuned.contains("tuning alpha and regularization, then 15 sweeps"),
        "{tuned}"
    );
}

/// With `half_life_days`, an event at ts = -9223372036854775808 is the oldest possible:
/// it weighs what any event centuries older than the newest weighs (0), not 1 (the age
/// overflowed i64).
#[test]
fn the_oldest_timestamp_weighs_nothing_with_recency_decay() {
    let feed_with = |old_ts: i64| {
        let conn = memory();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, tune = false, half_life_days = 1, exclude_watched = false);
             WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 200)
             INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
             SELECT v % 7, v % 11, 10, 10, 1700000000 + v FROM n;",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (1, 3, 100, 10, ?1)",
            [old_ts],
        )
        .unwrap();
        int(&conn, "SELECT length(foryou_refit('feed')) > 0");
        feed_of(&conn, 1)
    };
    // 10^12 s (about 31,700 years) before the newest event: 0.5^(1.16e7) is 0.
    assert_eq!(
        feed_with(i64::MIN),
        feed_with(1_700_000_000 - 1_000_000_000_000)
    );
}
