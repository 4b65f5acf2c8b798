//! `foryou_evaluate` through SQL: known answers computed by hand on a five-item fixture
//! (before the first refit the ranking is live popularity, so every list is known), the
//! same metrics recomputed here from `recommend` after a refit, and every error.

// Test data: counts and ranks far inside every integer type they are cast to.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)]

mod common;

use std::collections::{BTreeMap, HashSet};

use common::*;
use rusqlite::Connection;

/// Items 1-5 with 4, 3, 2, 1, 1 viewers: user 1 watched {1}, user 2 {1, 2}, user 3
/// {1, 2, 3}, user 4 {1, 2, 3, 4}, user 5 {5}; all full watches. Hold-out rows: user 1
/// {3, 5}, user 4 {4, 5} (4 already watched), user 5 {2} (twice), user 9 {1} (no events).
fn fixture(conn: &Connection) {
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, tune = false);
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES
           (1, 1, 10, 10, 1),
           (2, 1, 10, 10, 2), (2, 2, 10, 10, 3),
           (3, 1, 10, 10, 4), (3, 2, 10, 10, 5), (3, 3, 10, 10, 6),
           (4, 1, 10, 10, 7), (4, 2, 10, 10, 8), (4, 3, 10, 10, 9), (4, 4, 10, 10, 10),
           (5, 5, 10, 10, 11);
         CREATE TABLE holdout(user_id INTEGER, item_id INTEGER);
         INSERT INTO holdout VALUES (1, 3), (1, 5), (4, 4), (4, 5), (5, 2), (5, 2), (9, 1);",
    )
    .unwrap();
}

fn evaluate(conn: &Connection, sql: &str) -> serde_json::Value {
    let out = text(conn, sql);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{sql}: {out:?}: {e}"))
}

fn assert_close(got: &serde_json::Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!((got - want).abs() < 1e-12, "{what}: got {got}, want {want}");
}

#[test]
fn metrics_on_live_popularity_match_the_hand_computed_values() {
    let conn = memory();
    fixture(&conn);
    // The lists at k = 2 (popularity 1, 2, 3, then 4 before 5 by id; watched left out):
    // user 1 [2, 3] (hit 3 at rank 2), user 4 [5] (one row only: hit 5 at rank 1),
    // user 5 [1, 2] (hit 2 at rank 2), user 9 [1, 2] (hit 1 at rank 1).
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(1, 2)")),
        [2, 3]
    );
    assert_eq!(items(&ranked(&conn, "SELECT * FROM recommend(4, 2)")), [5]);
    let m = evaluate(&conn, "SELECT foryou_evaluate('feed', 'holdout', 2)");
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want_keys = [
        "model",
        "k",
        "users",
        "precision",
        "recall",
        "ndcg",
        "map",
        "coverage",
    ];
    want_keys.sort_unstable();
    assert_eq!(keys, want_keys, "{m}");
    assert_eq!(m["model"], "feed");
    assert_eq!(m["k"], 2);
    assert_eq!(m["users"], 4, "users 1, 4, 5 and 9: {m}");
    let l = 1.0 / 3f64.log2(); // the discount of rank 2
                               // precision: hits / k per user (k, not the list's length): 1/2 each.
    assert_close(&m["precision"], 0.5, "precision");
    // recall: hits / |relevant|: 1/2, 1/2, 1/1 (the repeated row counts once), 1/1.
    assert_close(&m["recall"], (0.5 + 0.5 + 1.0 + 1.0) / 4.0, "recall");
    // NDCG: user 1 l / (1 + l), user 4 1 / (1 + l) (two relevant), user 5 l, user 9 1.
    assert_close(
        &m["ndcg"],
        (l / (1.0 + l) + 1.0 / (1.0 + l) + l + 1.0) / 4.0,
        "ndcg",
    );
    // AP: user 1 (1/2) / 2, user 4 1 / 2, user 5 (1/2) / 1, user 9 1.
    assert_close(&m["map"], (0.25 + 0.5 + 0.5 + 1.0) / 4.0, "map");
    // Coverage: items 1, 2, 3, 5 of the 5 with events.
    assert_close(&m["coverage"], 4.0 / 5.0, "coverage");

    // k = 1: user 1 [2], user 4 [5] (hit), user 5 [1], user 9 [1] (hit).
    let m = evaluate(&conn, "SELECT foryou_evaluate(NULL, 'main.holdout', 1)");
    assert_eq!(m["users"], 4);
    assert_close(&m["precision"], 0.5, "precision@1");
    assert_close(&m["recall"], (0.5 + 1.0) / 4.0, "recall@1");
    assert_close(&m["ndcg"], 0.5, "ndcg@1");
    assert_close(&m["map"], 0.5, "map@1");
    assert_close(&m["coverage"], 3.0 / 5.0, "coverage@1");

    // An empty hold-out evaluates nobody.
    conn.execute_batch("CREATE VIEW nobody AS SELECT * FROM holdout WHERE 0")
        .unwrap();
    let m = evaluate(&conn, "SELECT foryou_evaluate('feed', 'nobody', 2)");
    assert_eq!(m["users"], 0);
    assert_close(&m["ndcg"], 0.0, "ndcg of nobody");
    assert_close(&m["coverage"], 0.0, "coverage of nobody");
}

/// The metrics of `model::metrics`, recomputed from lists and relevant sets.
fn metrics(
    lists: &BTreeMap<i64, (Vec<i64>, HashSet<i64>)>,
    k: usize,
    catalogue: usize,
) -> [f64; 5] {
    let mut sums = [0.0; 4];
    let mut seen = HashSet::new();
    for (list, relevant) in lists.values() {
        let (mut hits, mut dcg, mut ap) = (0usize, 0.0, 0.0);
        for (at, item) in list.iter().enumerate() {
            seen.insert(*item);
            if relevant.contains(item) {
                hits += 1;
                dcg += 1.0 / ((at + 2) as f64).log2();
                ap += hits as f64 / (at + 1) as f64;
            }
        }
        let ideal = k.min(relevant.len());
        let idcg: f64 = (0..ideal).map(|at| 1.0 / ((at + 2) as f64).log2()).sum();
        sums[0] += hits as f64 / k as f64;
        sums[1] += hits as f64 / relevant.len() as f64;
        sums[2] += dcg / idcg;
        sums[3] += ap / ideal as f64;
    }
    let n = lists.len() as f64;
    [
        sums[0] / n,
        sums[1] / n,
        sums[2] / n,
        sums[3] / n,
        seen.len() as f64 / catalogue as f64,
    ]
}

#[test]
fn after_a_refit_the_metrics_are_those_of_what_recommend_serves() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 1, tune = false)",
    )
    .unwrap();
    let pairs = checkerboard(&conn, "feed");
    refit(&conn, "SELECT foryou_refit()");
    // Hold out, for every user, the items of their block they did not watch, and one of
    // the other block; plus an unknown user.
    conn.execute_batch("CREATE TABLE holdout(user_id INTEGER, item_id INTEGER)")
        .unwrap();
    let mut relevant: BTreeMap<i64, HashSet<i64>> = BTreeMap::new();
    for user in 0..20i64 {
        for item in (0..20i64).filter(|&i| i / 10 == user / 10 || i == (user + 13) % 20) {
            if !pairs.contains(&(user, item)) {
                relevant.entry(user).or_default().insert(item);
            }
        }
    }
    relevant.entry(77).or_default().insert(3);
    for (user, items) in &relevant {
        for item in items {
            conn.execute("INSERT INTO holdout VALUES (?1, ?2)", (user, item))
                .unwrap();
        }
    }
    for k in [1usize, 3, 7] {
        let lists: BTreeMap<i64, (Vec<i64>, HashSet<i64>)> = relevant
            .iter()
            .map(|(user, rel)| {
                let list = items(&ranked(
                    &conn,
                    &format!("SELECT * FROM recommend({user}, {k})"),
                ));
                (*user, (list, rel.clone()))
            })
            .collect();
        let want = metrics(&lists, k, 20);
        let m = evaluate(
            &conn,
            &format!("SELECT foryou_evaluate('feed', 'holdout', {k})"),
        );
        assert_eq!(m["users"], relevant.len() as i64);
        assert_eq!(m["k"], k as i64);
        for (name, value) in ["precision", "recall", "ndcg", "map", "coverage"]
            .iter()
            .zip(want)
        {
            assert_close(&m[*name], value, &format!("{name}@{k}"));
        }
        // The checkerboard is learnable: most held-out items of the own block are found.
        if k == 7 {
            assert!(m["precision"].as_f64().unwrap() > 0.5, "{m}");
        }
    }
}

#[test]
fn every_error_of_foryou_evaluate() {
    let conn = memory();
    assert_eq!(
        error_of(&conn, "SELECT foryou_evaluate(NULL, 'holdout', 10)"),
        "foryou_evaluate: no foryou table in this database; create one with CREATE VIRTUAL TABLE feed USING foryou()"
    );
    fixture(&conn);
    let cases = [
        ("SELECT foryou_evaluate('nope', 'holdout', 10)", "foryou_evaluate: no foryou table named 'nope' in schema 'main' (foryou tables: feed)"),
        ("SELECT foryou_evaluate(7, 'holdout', 10)", "foryou_evaluate: model must be the name of a foryou table, got 7"),
        ("SELECT foryou_evaluate('feed', 42, 10)", "foryou_evaluate: holdout_table must be the name of a table or view with columns user_id and item_id, got 42"),
        ("SELECT foryou_evaluate('feed', NULL, 10)", "foryou_evaluate: holdout_table must be the name of a table or view with columns user_id and item_id, got NULL"),
        ("SELECT foryou_evaluate('feed', 'nosuch', 10)", "foryou_evaluate: cannot read holdout_table 'nosuch' (no such table: nosuch); it needs columns user_id and item_id"),
        ("SELECT foryou_evaluate('feed', 'feed_config', 10)", "foryou_evaluate: cannot read holdout_table 'feed_config' (no such column: user_id); it needs columns user_id and item_id"),
        ("SELECT foryou_evaluate('feed', 'holdout', 0)", "foryou_evaluate: k must be a positive integer, got 0"),
        ("SELECT foryou_evaluate('feed', 'holdout', -1)", "foryou_evaluate: k must be a positive integer, got -1"),
        ("SELECT foryou_evaluate('feed', 'holdout', 2.5)", "foryou_evaluate: k must be an integer, got 2.5"),
        ("SELECT foryou_evaluate('feed', 'holdout', NULL)", "foryou_evaluate: k must be an integer, got NULL"),
        ("SELECT foryou_evaluate('feed', 'holdout', 10001)", "foryou_evaluate: k too large, provided 10001, maximum 10000"),
    ];
    let mut wrong = Vec::new();
    for (sql, want) in cases {
        let got = error_of(&conn, sql);
        if got != want {
            wrong.push(format!("{sql}\n  got:  {got}\n  want: {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Two tables: the model must be named.
    conn.execute_batch("CREATE VIRTUAL TABLE clips USING foryou(factors = 4)")
        .unwrap();
    let err = error_of(&conn, "SELECT foryou_evaluate(NULL, 'holdout', 2)");
    assert!(err.starts_with("foryou_evaluate: "), "{err}");
    assert!(err.contains("feed") && err.contains("clips"), "{err}");
}
