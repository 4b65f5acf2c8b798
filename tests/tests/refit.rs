//! `foryou_refit`: what it learns (a checkerboard of two tastes), determinism across
//! thread counts, atomicity, the JSON report, and its errors.

// Test data: counts, ids, ranks and timestamps far inside every integer type they are cast to.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod common;

use std::collections::{BTreeSet, HashSet};

use common::*;
use rusqlite::Connection;

fn block(id: i64) -> i64 {
    id / 10
}

/// A checkerboard table with a small, quick model.
fn fixture(options: &str) -> (Connection, Vec<(i64, i64)>) {
    let conn = memory();
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE feed USING foryou({options})"
    ))
    .unwrap();
    let pairs = checkerboard(&conn, "feed");
    (conn, pairs)
}

/// Everything that makes up the stored model: factor blobs, ids, popularity, version.
fn snapshot(conn: &Connection) -> (Vec<u8>, Vec<u8>, Vec<Vec<rusqlite::types::Value>>, i64) {
    (
        factor_blobs(conn, "feed", "users"),
        factor_blobs(conn, "feed", "items"),
        rows(
            conn,
            "SELECT chunk, ids, popularity FROM feed_items ORDER BY chunk",
        ),
        int(
            conn,
            "SELECT coalesce((SELECT value FROM feed_model WHERE key = 'version'), 0)",
        ),
    )
}

// The checkerboard's block structure has rank 2: with 2 factors the model must find
// it. (With many more factors than that, implicit ALS fits each block's own pattern
// and every unwatched item scores near 0, so the top-1 is noise: not a test.)
const CHECKERBOARD: &str = "factors = 2, iterations = 15";

#[test]
fn checkerboard_users_get_items_of_their_own_block() {
    for seed in 0..3 {
        let (conn, pairs) = fixture(&format!("{CHECKERBOARD}, seed = {seed}"));
        refit(&conn, "SELECT foryou_refit('feed')");
        check_users(&conn, &pairs);
    }
}

fn check_users(conn: &Connection, pairs: &[(i64, i64)]) {
    let watched: HashSet<(i64, i64)> = pairs.iter().copied().collect();
    for user in 0..20 {
        let top = ranked(conn, &format!("SELECT * FROM recommend({user}, 5)"));
        assert_eq!(top.len(), 5, "user {user}: {top:?}");
        assert_well_ranked(&top);
        for (item, _, _) in &top {
            assert!(
                !watched.contains(&(user, *item)),
                "user {user} was recommended watched item {item}: {top:?}"
            );
        }
        // The five unwatched items of the user's own block come first.
        for (item, _, rank) in &top {
            assert_eq!(
                block(*item),
                block(user),
                "user {user}, rank {rank}: item {item} is from the other block: {top:?}"
            );
        }
    }
}

#[test]
fn checkerboard_similar_items_come_from_the_same_block() {
    for seed in 0..3 {
        let (conn, _) = fixture(&format!("{CHECKERBOARD}, seed = {seed}"));
        refit(&conn, "SELECT foryou_refit('feed')");
        check_items(&conn);
    }
}

fn check_items(conn: &Connection) {
    for item in 0..20 {
        let similar = ranked(conn, &format!("SELECT * FROM similar_items({item}, 19)"));
        assert_well_ranked(&similar);
        assert_eq!(
            similar.len(),
            19,
            "item {item}: every other item is returned"
        );
        assert!(
            !similar.iter().any(|r| r.0 == item),
            "item {item} is similar to itself: {similar:?}"
        );
        let firsts: BTreeSet<i64> = similar[..9].iter().map(|r| r.0).collect();
        let same_block: BTreeSet<i64> = (block(item) * 10..block(item) * 10 + 10)
            .filter(|&i| i != item)
            .collect();
        assert_eq!(firsts, same_block, "item {item}: {similar:?}");
        // Cosine similarity lies in [-1, 1].
        assert!(
            similar.iter().all(|r| (-1.0001..=1.0001).contains(&r.1)),
            "{similar:?}"
        );
    }
}

#[test]
fn refit_is_deterministic_whatever_the_thread_count() {
    let (conn, _) = fixture("factors = 16, iterations = 10, seed = 42");
    let one = refit(&conn, r#"SELECT foryou_refit('feed', '{"threads": 1}')"#);
    let (users_1, items_1, pop_1, _) = snapshot(&conn);
    assert_eq!(one["threads"], 1);
    let two = refit(&conn, r#"SELECT foryou_refit('feed', '{"threads": 2}')"#);
    let (users_2, items_2, pop_2, _) = snapshot(&conn);
    assert_eq!(two["threads"], 2);
    let three = refit(&conn, r#"SELECT foryou_refit('feed', '{"threads": 3}')"#);
    let (users_3, items_3, _, _) = snapshot(&conn);
    let all = refit(&conn, "SELECT foryou_refit('feed')");
    let (users_0, items_0, _, _) = snapshot(&conn);

    assert_eq!(users_1.len(), 20 * 16 * 4);
    assert_eq!(items_1.len(), 20 * 16 * 4);
    assert!(
        users_1 == users_2 && users_1 == users_3 && users_1 == users_0,
        "user factors depend on the thread count"
    );
    assert!(
        items_1 == items_2 && items_1 == items_3 && items_1 == items_0,
        "item factors depend on the thread count"
    );
    assert_eq!(pop_1, pop_2);
    for report in [&two, &three, &all] {
        assert_eq!(
            report["loss"], one["loss"],
            "loss differs: {one} vs {report}"
        );
    }
}

#[test]
fn the_seed_changes_the_model_and_a_repeat_does_not() {
    let (conn, _) = fixture("factors = 8, iterations = 5, threads = 2");
    let a = refit(&conn, r#"SELECT foryou_refit('feed', '{"seed": 1}')"#);
    let (users_a, items_a, _, _) = snapshot(&conn);
    let again = refit(&conn, r#"SELECT foryou_refit('feed', '{"seed": 1}')"#);
    assert_eq!(snapshot(&conn).0, users_a);
    assert_eq!(snapshot(&conn).1, items_a);
    assert_eq!(again["loss"], a["loss"]);
    refit(&conn, r#"SELECT foryou_refit('feed', '{"seed": 2}')"#);
    let (users_b, items_b, _, _) = snapshot(&conn);
    assert_ne!(users_b, users_a, "the seed is ignored");
    assert_ne!(items_b, items_a, "the seed is ignored");
}

#[test]
fn a_rolled_back_refit_leaves_the_previous_model() {
    let (conn, _) = fixture("factors = 8, iterations = 10, seed = 1, threads = 1");
    refit(&conn, "SELECT foryou_refit('feed')");
    let before = snapshot(&conn);
    assert_eq!(before.3, 1);
    let served: Vec<_> = (0..20)
        .map(|u| ranked(&conn, &format!("SELECT * FROM recommend({u}, 3)")))
        .collect();
    let similar = ranked(&conn, "SELECT * FROM similar_items(3, 5)");

    conn.execute_batch("BEGIN; INSERT INTO feed VALUES (0, 19, 15, 15, 1), (0, 18, 15, 15, 1), (20, 0, 15, 15, 1);").unwrap();
    let report = refit(
        &conn,
        r#"SELECT foryou_refit('feed', '{"seed": 9, "factors": 4}')"#,
    );
    assert_eq!(report["version"], 2);
    // Inside the transaction the new model serves.
    assert_eq!(snapshot(&conn).3, 2);
    // One new user (20), no new item; 4 factors for this call.
    assert_eq!(factor_blobs(&conn, "feed", "users").len(), 21 * 4 * 4);
    assert_eq!(factor_blobs(&conn, "feed", "items").len(), 20 * 4 * 4);
    assert_ne!(ranked(&conn, "SELECT * FROM recommend(0, 3)"), served[0]);
    assert_ne!(ranked(&conn, "SELECT * FROM similar_items(3, 5)"), similar);
    conn.execute_batch("ROLLBACK").unwrap();

    assert_eq!(
        snapshot(&conn),
        before,
        "the rollback did not restore the model"
    );
    for (u, expected) in served.iter().enumerate() {
        assert_eq!(
            &ranked(&conn, &format!("SELECT * FROM recommend({u}, 3)")),
            expected,
            "user {u}"
        );
    }
    assert_eq!(ranked(&conn, "SELECT * FROM similar_items(3, 5)"), similar);
    // The next refit is version 2 again.
    assert_eq!(refit(&conn, "SELECT foryou_refit('feed')")["version"], 2);
}

#[test]
fn a_committed_refit_in_a_transaction_is_kept() {
    let (conn, _) = fixture("factors = 4, iterations = 3");
    conn.execute_batch("BEGIN").unwrap();
    refit(&conn, "SELECT foryou_refit()");
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(snapshot(&conn).3, 1);
    assert_eq!(factor_blobs(&conn, "feed", "users").len(), 20 * 4 * 4);
}

#[test]
fn the_report_describes_the_refit() {
    let (conn, pairs) = fixture("factors = 6, iterations = 4, threads = 1");
    // A second event on an existing pair: one more event, no new pair.
    conn.execute_batch("INSERT INTO feed VALUES (0, 3, 2, 15, 1)")
        .unwrap();
    let (first_user, first_item) = pairs[0];
    conn.execute(
        "INSERT INTO feed VALUES (?1, ?2, 5, 15, 1)",
        (first_user, first_item),
    )
    .unwrap();
    let events = pairs.len() as i64 + 2;
    let distinct_pairs = pairs.len() as i64 + 1 - i64::from(pairs.contains(&(0, 3)));

    let report = refit(&conn, "SELECT foryou_refit('feed')");
    let keys: BTreeSet<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // The documented fields (the report may carry more).
    let documented = BTreeSet::from([
        "model",
        "version",
        "users",
        "items",
        "events",
        "pairs",
        "factors",
        "iterations",
        "loss",
        "threads",
        "seconds",
    ]);
    assert!(
        documented.is_subset(&keys),
        "missing {:?} in {report}",
        documented.difference(&keys).collect::<Vec<_>>()
    );
    assert_eq!(report["model"], "feed");
    assert_eq!(report["version"], 1);
    assert_eq!(report["users"], 20);
    assert_eq!(report["items"], 20);
    assert_eq!(report["events"], events);
    assert_eq!(report["pairs"], distinct_pairs);
    assert_eq!(report["factors"], 6);
    assert_eq!(report["iterations"], 4);
    assert_eq!(report["threads"], 1);
    let loss = report["loss"].as_f64().expect("loss is a number");
    assert!(loss.is_finite() && loss > 0.0, "{report}");
    let seconds = report["seconds"].as_f64().expect("seconds is a number");
    assert!(seconds >= 0.0, "{report}");

    // Per-call overrides apply to that call only; the version counts refits.
    let second = refit(
        &conn,
        r#"SELECT foryou_refit('feed', '{"factors": 3, "iterations": 2, "threads": 2}')"#,
    );
    assert_eq!(
        (second["version"].as_i64(), second["factors"].as_i64()),
        (Some(2), Some(3))
    );
    assert_eq!(
        (second["iterations"].as_i64(), second["threads"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(factor_blobs(&conn, "feed", "items").len(), 20 * 3 * 4);
    let third = refit(&conn, "SELECT foryou_refit()");
    assert_eq!(
        (third["version"].as_i64(), third["factors"].as_i64()),
        (Some(3), Some(6))
    );
    assert_eq!(
        (third["iterations"].as_i64(), third["threads"].as_i64()),
        (Some(4), Some(1))
    );
    // NULL options_json means no overrides.
    let fourth = refit(&conn, "SELECT foryou_refit('feed', NULL)");
    assert_eq!(
        (fourth["version"].as_i64(), fourth["factors"].as_i64()),
        (Some(4), Some(6))
    );
    assert_eq!(fourth["loss"], third["loss"]);
    // New events are learnt by the next refit.
    conn.execute_batch("INSERT INTO feed VALUES (77, 5, 15, 15, 1), (0, 77, 15, 15, 1)")
        .unwrap();
    let fifth = refit(&conn, "SELECT foryou_refit()");
    assert_eq!(
        (
            fifth["users"].as_i64(),
            fifth["items"].as_i64(),
            fifth["events"].as_i64()
        ),
        (Some(21), Some(21), Some(events + 2))
    );
}

#[test]
fn refit_errors_keep_the_previous_model() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 3)")
        .unwrap();
    assert_eq!(
        error_of(&conn, "SELECT foryou_refit('feed')"),
        "foryou_refit: feed has no events to learn from; INSERT watch events first"
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM feed_model"), 0);
    checkerboard(&conn, "feed");
    refit(&conn, "SELECT foryou_refit('feed')");
    let before = snapshot(&conn);
    let served = ranked(&conn, "SELECT * FROM similar_items(1, 4)");

    // Per-refit options: CREATE options (in the same order), the documented training
    // ones included, the serving ones left out.
    let create = create_option_list(&conn);
    let options = listed_options(
        &error_of(&conn, r#"SELECT foryou_refit('feed', '{"bogus": 1}')"#),
        "foryou_refit: unrecognized option 'bogus' in options_json ",
        "per-refit options",
    );
    let training: Vec<&str> = DOCUMENTED_OPTIONS
        .iter()
        .copied()
        .filter(|o| !TABLE_OPTIONS.contains(o))
        .collect();
    assert_lists_in_order(&options, &training);
    assert!(
        TABLE_OPTIONS
            .iter()
            .all(|o| !options.iter().any(|l| l == o)),
        "{options:?}"
    );
    assert_eq!(
        options[..2],
        ["mode", "progress"],
        "the refit's mode and progress (per call, not stored) are listed first: {options:?}"
    );
    let in_create: Vec<&str> = options[2..].iter().map(String::as_str).collect();
    assert_lists_in_order(&create, &in_create);
    let options = options.join(", ");
    let cases = [
        ("'{\"factors\": 0}'", "foryou_refit: option factors expects an integer from 1 to 1024, got 0".to_string()),
        ("'{\"iterations\": \"3\"}'", "foryou_refit: option iterations expects an integer from 1 to 1000, got \"3\"".to_string()),
        ("'{\"alpha\": -1}'", "foryou_refit: option alpha expects a number > 0 and <= 1000000, got -1".to_string()),
        ("'{\"threads\": 1000}'", "foryou_refit: option threads expects an integer from 0 to 256, got 1000".to_string()),
        (
            "'{\"exclude_watched\": false}'",
            format!("foryou_refit: unrecognized option 'exclude_watched' in options_json (per-refit options: {options})"),
        ),
        ("'{\"bogus\": 1}'", format!("foryou_refit: unrecognized option 'bogus' in options_json (per-refit options: {options})")),
        ("'[1]'", "foryou_refit: options_json must be a JSON object such as '{\"iterations\": 5}'".to_string()),
        ("'{'", "foryou_refit: options_json is not valid JSON (EOF while parsing an object at line 1 column 1)".to_string()),
        ("7", "foryou_refit: options_json must be a JSON object as TEXT, such as '{\"iterations\": 5}'".to_string()),
    ];
    for (json, expected) in cases {
        let sql = format!("SELECT foryou_refit('feed', {json})");
        assert_eq!(error_of(&conn, &sql), expected, "{sql}");
    }
    assert_eq!(
        error_of(&conn, "SELECT foryou_refit(1)"),
        "foryou_refit: model must be the name of a foryou table, got 1"
    );
    assert_eq!(
        error_of(&conn, "SELECT foryou_refit('nope')"),
        "foryou_refit: no foryou table named 'nope' in schema 'main' (foryou tables: feed)"
    );
    // Deleting every event makes the next refit fail, and the old model keeps serving.
    conn.execute_batch("DELETE FROM feed").unwrap();
    assert_eq!(
        error_of(&conn, "SELECT foryou_refit()"),
        "foryou_refit: feed has no events to learn from; INSERT watch events first"
    );
    assert_eq!(snapshot(&conn), before);
    assert_eq!(ranked(&conn, "SELECT * FROM similar_items(1, 4)"), served);
    // (recommend still uses the old factors; user 1 no longer has watched items to leave out)
    assert_eq!(ranked(&conn, "SELECT * FROM recommend(1, 100)").len(), 20);
}

#[test]
fn a_failed_refit_does_not_end_the_transaction() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 2)")
        .unwrap();
    conn.execute_batch("BEGIN; CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    assert!(error_of(&conn, "SELECT foryou_refit()").contains("no events"));
    assert!(!conn.is_autocommit());
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM t"), 1);
}

#[test]
fn refit_needs_a_model_name_when_there_are_two_tables() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE b USING foryou(factors = 2); CREATE VIRTUAL TABLE a USING foryou(factors = 3);
         INSERT INTO a VALUES (1, 1, 1, 1, 1); INSERT INTO b VALUES (1, 1, 1, 1, 1);",
    )
    .unwrap();
    assert_eq!(
        error_of(&conn, "SELECT foryou_refit()"),
        "foryou_refit: 2 foryou tables exist (a, b); name one as the model argument"
    );
    assert_eq!(refit(&conn, "SELECT foryou_refit('a')")["factors"], 3);
    assert_eq!(refit(&conn, "SELECT foryou_refit('b')")["factors"], 2);
    assert_eq!(refit(&conn, "SELECT foryou_refit('B')")["model"], "b");
    assert_eq!(int(&conn, "SELECT count(*) FROM a_items"), 1);
}

#[test]
fn exclude_watched_false_keeps_watched_items() {
    for (options, expected_len) in [
        ("exclude_watched = false", 20),
        ("exclude_watched = true", 15),
        ("", 15),
    ] {
        let (conn, pairs) = fixture(&format!(
            "factors = 8, iterations = 10, seed = 1{}",
            if options.is_empty() {
                String::new()
            } else {
                format!(", {options}")
            }
        ));
        let watched_by_2: BTreeSet<i64> = pairs.iter().filter(|p| p.0 == 2).map(|p| p.1).collect();
        // Before the first refit (popularity) and after it (factors).
        for phase in ["before", "after"] {
            if phase == "after" {
                refit(&conn, "SELECT foryou_refit()");
            }
            let all = ranked(&conn, "SELECT * FROM recommend(2, 100)");
            assert_well_ranked(&all);
            assert_eq!(all.len(), expected_len, "{options:?} {phase}: {all:?}");
            let got: BTreeSet<i64> = items(&all).into_iter().collect();
            if expected_len == 20 {
                assert!(watched_by_2.is_subset(&got), "{options:?} {phase}");
            } else {
                assert!(watched_by_2.is_disjoint(&got), "{options:?} {phase}");
            }
        }
    }
}

#[test]
fn watched_items_are_excluded_live_after_a_refit() {
    let (conn, _) = fixture("factors = 8, iterations = 10, seed = 1");
    refit(&conn, "SELECT foryou_refit()");
    let top = ranked(&conn, "SELECT * FROM recommend(4, 1)");
    let best = top[0].0;
    // User 4 watches their best item now: it leaves their feed without a refit.
    conn.execute(
        "INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (4, ?1, 15, 15)",
        [best],
    )
    .unwrap();
    let after = ranked(&conn, "SELECT * FROM recommend(4, 20)");
    assert!(!items(&after).contains(&best), "{after:?}");
    assert_eq!(after.len(), 14);
}

#[test]
fn regularization_zero_is_usable() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(regularization = 0); INSERT INTO feed VALUES (1, 1, 1, 1, 1);")
        .unwrap();
    let report = refit(&conn, "SELECT foryou_refit()");
    assert!(report["loss"].as_f64().unwrap().is_finite());
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(2, 1)")),
        vec![1]
    );
}

#[test]
fn models_larger_than_one_chunk_round_trip() {
    let dir = TempDir::new("chunks");
    let path = dir.join("feed.db");
    let queries = [
        "SELECT * FROM recommend(9999, 10000)",
        "SELECT * FROM recommend(17, 5)",
        "SELECT * FROM similar_items(4999, 10000)",
    ];
    let before: Vec<_> = {
        let conn = open(&path);
        conn.execute_batch(
            "CREATE VIRTUAL TABLE feed USING foryou(factors = 2, iterations = 2, seed = 1);
             WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 9999)
             INSERT INTO feed(user_id, item_id, watch_time, duration, ts) SELECT i, i % 5000, 10, 10, i FROM s;",
        )
        .unwrap();
        let report = refit(&conn, "SELECT foryou_refit()");
        assert_eq!(
            (report["users"].as_i64(), report["items"].as_i64()),
            (Some(10_000), Some(5_000))
        );
        // Several chunks per side, together holding every id and factor.
        assert!(int(&conn, "SELECT count(*) FROM feed_users") > 1);
        assert!(int(&conn, "SELECT count(*) FROM feed_items") > 1);
        assert_eq!(
            int(&conn, "SELECT sum(length(ids)) FROM feed_users"),
            10_000 * 8
        );
        assert_eq!(
            int(&conn, "SELECT sum(length(factors)) FROM feed_users"),
            10_000 * 2 * 4
        );
        assert_eq!(
            int(&conn, "SELECT sum(length(ids)) FROM feed_items"),
            5_000 * 8
        );
        assert_eq!(
            int(&conn, "SELECT sum(length(popularity)) FROM feed_items"),
            5_000 * 4
        );
        queries.iter().map(|q| ranked(&conn, q)).collect()
    };
    assert_eq!(before[0].len(), 4_999);
    assert!(
        !items(&before[0]).contains(&4_999),
        "user 9999 watched item 4999"
    );
    assert_eq!(before[2].len(), 4_999);
    assert_well_ranked(&before[0]);
    let conn = open(&path);
    for (query, expected) in queries.iter().zip(&before) {
        assert_eq!(&ranked(&conn, query), expected, "{query} after reopen");
    }
}

#[test]
fn regularization_scaling_is_learned_with_and_deterministic() {
    // Each scaling is its own model, bit-identical whatever the thread count; `none`
    // given per refit is the same model as `none` given at CREATE.
    let (conn, pairs) = fixture(&format!("{CHECKERBOARD}, seed = 3, regularization = 0.1"));
    let mut models = Vec::new();
    for scaling in ["none", "count", "sqrt"] {
        let mut bits = Vec::new();
        for threads in [1, 2] {
            let report = refit(
                &conn,
                &format!(
                    r#"SELECT foryou_refit('feed', '{{"regularization_scaling": "{scaling}", "threads": {threads}}}')"#
                ),
            );
            assert!(report["loss"].as_f64().unwrap().is_finite(), "{report}");
            bits.push((snapshot(&conn).0, snapshot(&conn).1, report["loss"].clone()));
        }
        assert_eq!(
            bits[0], bits[1],
            "{scaling}: thread count changed the model"
        );
        // The model still learns the checkerboard.
        check_users(&conn, &pairs);
        models.push(bits.swap_remove(0));
    }
    assert_ne!(models[0].0, models[1].0, "count scaling is ignored");
    assert_ne!(models[1].0, models[2].0, "sqrt is the same as count");
    let (created, _) = fixture(&format!(
        "{CHECKERBOARD}, seed = 3, regularization = 0.1, regularization_scaling = none"
    ));
    refit(&created, "SELECT foryou_refit('feed')");
    assert_eq!(snapshot(&created).0, models[0].0);
    assert_eq!(snapshot(&created).1, models[0].1);
}

#[test]
fn an_incremental_refit_keeps_the_scaling_of_its_options() {
    let (conn, _) = fixture(&format!(
        "{CHECKERBOARD}, seed = 3, regularization_scaling = count, regularization = 0.02"
    ));
    refit(&conn, "SELECT foryou_refit('feed')");
    conn.execute_batch("INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (100, 1, 9, 10), (100, 2, 9, 10)")
        .unwrap();
    let report = refit(
        &conn,
        r#"SELECT foryou_refit('feed', '{"mode": "incremental"}')"#,
    );
    assert_eq!(report["mode"], "incremental");
    assert!(report["loss"].as_f64().unwrap().is_finite());
    assert_eq!(model_option(&conn, "regularization_scaling"), "count");
    assert_eq!(model_option(&conn, "regularization"), 0.02);
    // The new user is ranked by the model: their block first.
    let top = ranked(&conn, "SELECT * FROM recommend(100, 3)");
    assert!(top.iter().all(|(item, _, _)| block(*item) == 0), "{top:?}");
}

/// 300 users in 4 taste groups over 120 videos, 14 events each (full watches of their
/// group's videos, a few swipes elsewhere): enough held-out full watches to tune on.
fn tastes(options: &str) -> Connection {
    let conn = memory();
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE feed USING foryou({options});
         WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 4199)
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
         SELECT x / 14,
                CASE WHEN x % 14 < 11 THEN ((x / 14) % 4) * 30 + (x * 7 + x / 14) % 30
                     ELSE (((x / 14) % 4 + 1 + x % 3) % 4) * 30 + (x * 11) % 30 END,
                CASE WHEN x % 14 < 11 THEN 20 + x % 3 ELSE 1 END, 20, x
         FROM n;"
    ))
    .unwrap();
    conn
}

#[test]
fn tuning_picks_the_best_rung_and_incremental_refits_keep_it() {
    let conn = tastes("factors = 8, iterations = 5");
    let report = refit(&conn, "SELECT foryou_refit('feed')");
    let tuned = &report["tuned"];
    let candidates = tuned["candidates"].as_array().expect("a tuned report");
    assert_eq!(candidates.len(), 4, "{tuned}");
    assert!(tuned["holdout_users"].as_i64().unwrap() >= 50, "{tuned}");
    // Successive halving: two candidates get all 5 sweeps, the others a third (1).
    let finished: Vec<&serde_json::Value> =
        candidates.iter().filter(|c| c["sweeps"] == 5).collect();
    assert_eq!(finished.len(), 2, "{tuned}");
    assert!(
        candidates
            .iter()
            .all(|c| c["sweeps"] == 5 || c["sweeps"] == 1),
        "{tuned}"
    );
    let best = finished
        .iter()
        .max_by(|a, b| {
            let (x, y) = (a["ndcg"].as_f64().unwrap(), b["ndcg"].as_f64().unwrap());
            // the first of equals wins: later ones must be strictly better
            x.partial_cmp(&y).unwrap().then(std::cmp::Ordering::Greater)
        })
        .unwrap();
    for key in ["alpha", "regularization", "regularization_scaling"] {
        assert_eq!(tuned[key], best[key], "{key}: {tuned}");
        // The model stores the chosen values: fold-in uses them.
        assert_eq!(model_option(&conn, key), best[key], "{key}");
    }
    // The table's own values are unchanged.
    assert_eq!(
        text(
            &conn,
            "SELECT CAST(value AS TEXT) FROM feed_config WHERE key = 'alpha'"
        ),
        "2"
    );
    let incremental = refit(
        &conn,
        r#"SELECT foryou_refit('feed', '{"mode": "incremental"}')"#,
    );
    assert!(incremental.get("tuned").is_none());
    for key in ["alpha", "regularization", "regularization_scaling"] {
        assert_eq!(
            model_option(&conn, key),
            best[key],
            "{key} after an incremental refit"
        );
    }
    // Deterministic, whatever the thread count.
    let blobs = |threads: i64| {
        let c = tastes(&format!("factors = 8, iterations = 5, threads = {threads}"));
        let r = refit(&c, "SELECT foryou_refit('feed')");
        (
            r["tuned"]["candidates"].clone(),
            factor_blobs(&c, "feed", "items"),
        )
    };
    assert_eq!(blobs(1), blobs(2));
}

#[test]
fn a_table_too_small_to_tune_on_says_so_and_keeps_its_values() {
    // 20 users, each with full watches: far fewer than the 50 scorable users tuning needs.
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 3);
         WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 399)
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
         SELECT x / 20, x % 37, 20, 20, x FROM n;",
    )
    .unwrap();
    let report = refit(&conn, "SELECT foryou_refit('feed')");
    assert!(report.get("tuned").is_none(), "{report}");
    let why = report["tune_skipped"].as_str().expect("a reason");
    let (users, rest) = why.split_once(' ').unwrap();
    let users: usize = users.parse().unwrap();
    assert!((1..=20).contains(&users), "{why}");
    assert!(
        rest.starts_with("users with a held-out full watch, fewer than the 50 tuning needs"),
        "{why}"
    );
    assert_eq!(model_option(&conn, "alpha"), 2.0);
    assert_eq!(model_option(&conn, "regularization_scaling"), "count");
    // Not asked to tune: nothing to say.
    let report = refit(&conn, r#"SELECT foryou_refit('feed', '{"tune": false}')"#);
    assert!(report.get("tune_skipped").is_none(), "{report}");
}

#[test]
fn values_given_for_tuned_options_are_used_as_given() {
    for (create, call) in [
        ("factors = 8, iterations = 3, alpha = 3", "{}"),
        (
            "factors = 8, iterations = 3, regularization_scaling = none",
            "{}",
        ),
        ("factors = 8, iterations = 3, tune = false", "{}"),
        ("factors = 8, iterations = 3", r#"{"regularization": 0.5}"#),
        ("factors = 8, iterations = 3", r#"{"tune": false}"#),
    ] {
        let conn = tastes(create);
        let report = refit(&conn, &format!("SELECT foryou_refit('feed', '{call}')"));
        assert!(report.get("tuned").is_none(), "{create} / {call}: {report}");
    }
    let conn = tastes("factors = 8, iterations = 3, alpha = 3");
    refit(&conn, "SELECT foryou_refit('feed')");
    assert_eq!(model_option(&conn, "alpha"), 3.0);
    // Asked for explicitly, it tunes despite the given alpha.
    let report = refit(&conn, r#"SELECT foryou_refit('feed', '{"tune": true}')"#);
    assert!(report["tuned"]["candidates"].is_array(), "{report}");
}
