//! Candidate filters inside the scan: `WHERE item_id IN (...)` allow-lists (exact k, the
//! scores and order of the unfiltered ranking restricted to them), ranking a given list,
//! the `exclude_items` block-list, and how both compose with `exclude_watched` and
//! `explore`, for `recommend` and `similar_items`.

// Test data: counts and ranks far inside i64.
#![allow(clippy::cast_possible_wrap)]

mod common;

use std::collections::HashSet;

use common::*;
use rusqlite::{params, Connection};

/// 60 users, 400 items, a deterministic pattern with taste structure, every user with
/// watched and skipped events; refitted.
fn fitted(conn: &Connection, options: &str) {
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 8, iterations = 6, seed = 3{options});
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 5999)
         INSERT INTO feed(user_id, item_id, watch_time, duration)
         SELECT i % 60, ((i % 60) * 37 + (i / 60) * 13) % 400, 1.0 + (i * 5) % 14, 15.0 FROM n;
         SELECT foryou_refit('feed');"
    ))
    .unwrap();
}

/// (`item_id`, `score`, `rank`) rows of a query.
fn ranked(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Vec<(i64, Option<f64>, i64)> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The whole ranking of a user (every unwatched item), best first.
fn full_ranking(conn: &Connection, user: i64) -> Vec<(i64, Option<f64>, i64)> {
    ranked(
        conn,
        "SELECT item_id, score, rank FROM recommend(?1, 10000)",
        [user],
    )
}

/// `full` restricted to `allowed`, re-ranked, first `k`.
fn restricted(
    full: &[(i64, Option<f64>, i64)],
    allowed: &HashSet<i64>,
    k: usize,
) -> Vec<(i64, Option<f64>, i64)> {
    full.iter()
        .filter(|r| allowed.contains(&r.0))
        .take(k)
        .enumerate()
        .map(|(i, r)| (r.0, r.1, i as i64 + 1))
        .collect()
}

fn json_list(ids: &[i64]) -> String {
    format!(
        "[{}]",
        ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
    )
}

#[test]
fn an_allow_list_of_items_ranked_50_to_60_returns_k_rows() {
    let conn = memory();
    fitted(&conn, "");
    let full = full_ranking(&conn, 7);
    assert!(
        full.len() >= 300,
        "user 7 has {} unwatched items",
        full.len()
    );
    let band: Vec<i64> = full[49..60].iter().map(|r| r.0).collect();
    conn.execute("CREATE TABLE band(item_id INTEGER)", [])
        .unwrap();
    for id in &band {
        conn.execute("INSERT INTO band VALUES (?1)", [id]).unwrap();
    }
    let allowed: HashSet<i64> = band.iter().copied().collect();
    let want = restricted(&full, &allowed, 10);
    assert_eq!(want.len(), 10);
    // A subquery, a literal list, and a bound JSON array: the same 10 rows, with the
    // scores and order of the unfiltered ranking.
    let literal = format!(
        "SELECT item_id, score, rank FROM recommend(7, 10) WHERE item_id IN ({})",
        band.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (sql, got) in [
        (
            "subquery",
            ranked(&conn, "SELECT item_id, score, rank FROM recommend(7, 10) WHERE item_id IN (SELECT item_id FROM band)", []),
        ),
        ("literal", ranked(&conn, &literal, [])),
        (
            "json_each",
            ranked(
                &conn,
                "SELECT item_id, score, rank FROM recommend(7, 10) WHERE item_id IN (SELECT value FROM json_each(?1))",
                [json_list(&band)],
            ),
        ),
    ] {
        assert_eq!(got, want, "{sql}");
    }
    // Filtering the top 10 afterwards (what a join does) finds none of them.
    let joined = ranked(
        &conn,
        "SELECT r.item_id, r.score, r.rank FROM band b JOIN recommend(7, 10) r ON r.item_id = b.item_id",
        [],
    );
    assert!(joined.is_empty(), "a join filters the top 10: {joined:?}");
}

#[test]
fn ranking_a_given_list_orders_every_candidate() {
    let conn = memory();
    fitted(&conn, "");
    let full = full_ranking(&conn, 11);
    // Candidates from "another stage": every 7th unwatched item, plus an unknown id and
    // a watched item, given in no particular order.
    let watched: i64 = conn
        .query_row(
            "SELECT item_id FROM feed WHERE user_id = 11 LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut candidates: Vec<i64> = full.iter().step_by(7).map(|r| r.0).collect();
    candidates.reverse();
    candidates.extend([999_999, watched]);
    let got = ranked(
        &conn,
        "SELECT item_id, score, rank FROM recommend(11, ?2) WHERE item_id IN (SELECT value FROM json_each(?1))",
        params![json_list(&candidates), candidates.len() as i64],
    );
    let allowed: HashSet<i64> = candidates.iter().copied().collect();
    let want = restricted(&full, &allowed, candidates.len());
    assert_eq!(got, want);
    // Every known, unwatched candidate, and nothing else.
    assert_eq!(got.len(), candidates.len() - 2);
    assert!(got.iter().all(|r| r.0 != watched && r.0 != 999_999));
}

#[test]
fn large_and_small_allow_lists_match_the_restricted_ranking() {
    let conn = memory();
    fitted(&conn, "");
    let full = full_ranking(&conn, 3);
    let all: Vec<i64> = (0..400).collect();
    // 90% (scanned with a filter), 10% and 4 items (scored one by one).
    for allowed in [
        all.iter()
            .copied()
            .filter(|i| i % 10 != 0)
            .collect::<Vec<_>>(),
        all.iter().copied().filter(|i| i % 10 == 3).collect(),
        vec![5, 77, 123, 310],
    ] {
        let set: HashSet<i64> = allowed.iter().copied().collect();
        for k in [1usize, 10, 50] {
            let got = ranked(
                &conn,
                "SELECT item_id, score, rank FROM recommend(3, ?2) WHERE item_id IN (SELECT value FROM json_each(?1))",
                params![json_list(&allowed), k as i64],
            );
            assert_eq!(
                got,
                restricted(&full, &set, k),
                "{} allowed, k {k}",
                allowed.len()
            );
        }
    }
}

#[test]
fn a_literal_equality_is_a_list_of_one_and_a_parameter_filters_the_ranked_rows() {
    let conn = memory();
    fitted(&conn, "");
    let full = full_ranking(&conn, 5);
    let (far, far_score, _) = full[200];
    let got = ranked(
        &conn,
        &format!("SELECT item_id, score, rank FROM recommend(5, 10) WHERE item_id = {far}"),
        [],
    );
    assert_eq!(got, vec![(far, far_score, 1)]);
    // SQLite turns `IN (<one literal>)` into `= <literal>`: the same.
    let got = ranked(
        &conn,
        &format!("SELECT item_id, score, rank FROM recommend(5, 10) WHERE item_id IN ({far})"),
        [],
    );
    assert_eq!(got, vec![(far, far_score, 1)]);
    // A bound parameter is not known when the statement is planned: it filters the
    // top 10, which item 200th is not in (documented; use json_each for bound lists).
    let got = ranked(
        &conn,
        "SELECT item_id, score, rank FROM recommend(5, 10) WHERE item_id = ?1",
        [far],
    );
    assert!(got.is_empty(), "{got:?}");
    let got = ranked(
        &conn,
        "SELECT item_id, score, rank FROM recommend(5, 10) WHERE item_id IN (SELECT value FROM json_each(?1))",
        [json_list(&[far])],
    );
    assert_eq!(got, vec![(far, far_score, 1)]);
}

#[test]
fn values_that_are_not_item_ids_match_nothing() {
    let conn = memory();
    fitted(&conn, "");
    let full = full_ranking(&conn, 9);
    let id = full[30].0;
    let got = ranked(
        &conn,
        &format!("SELECT item_id, score, rank FROM recommend(9, 10) WHERE item_id IN ('abc', 2.5, NULL, x'00', '{id}')"),
        [],
    );
    assert_eq!(got, vec![(id, full[30].1, 1)]);
    let none = ranked(
        &conn,
        "SELECT item_id, score, rank FROM recommend(9, 10) WHERE item_id IN ('abc', 2.5, NULL)",
        [],
    );
    assert!(none.is_empty());
}

#[test]
fn allow_lists_compose_with_exclude_watched() {
    let conn = memory();
    fitted(&conn, ", exclude_watched = false");
    let watched: Vec<i64> = conn
        .prepare("SELECT DISTINCT item_id FROM feed WHERE user_id = 4 ORDER BY item_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let got = ranked(
        &conn,
        "SELECT item_id, score, rank FROM recommend(4, 1000) WHERE item_id IN (SELECT value FROM json_each(?1))",
        [json_list(&watched)],
    );
    let ids: HashSet<i64> = got.iter().map(|r| r.0).collect();
    assert_eq!(
        ids,
        watched.iter().copied().collect(),
        "watched items are ranked when exclude_watched is off"
    );

    let conn = memory();
    fitted(&conn, "");
    let got = ranked(
        &conn,
        "SELECT item_id, score, rank FROM recommend(4, 1000) WHERE item_id IN (SELECT value FROM json_each(?1))",
        [json_list(&watched)],
    );
    assert!(
        got.is_empty(),
        "watched items are left out by default: {got:?}"
    );
}

#[test]
fn explored_rows_stay_inside_the_allow_list_and_outside_the_block_list() {
    let conn = memory();
    fitted(&conn, ", explore = 0.5, exclude_items = 'hidden'");
    conn.execute_batch(
        "CREATE TABLE hidden(user_id INTEGER, item_id INTEGER);
         -- items new since the refit: exploration candidates
         INSERT INTO feed(user_id, item_id, watch_time, duration)
         SELECT 59, 1000 + value, 10, 10 FROM json_each('[0,1,2,3,4,5,6,7,8,9]');",
    )
    .unwrap();
    let allowed: Vec<i64> = (0..400)
        .filter(|i| i % 3 == 0)
        .chain([1000, 1002, 1004, 1006])
        .collect();
    conn.execute("INSERT INTO hidden VALUES (NULL, 1000), (2, 1002)", [])
        .unwrap();
    let set: HashSet<i64> = allowed.iter().copied().collect();
    for user in 0..20 {
        let watched: HashSet<i64> = conn
            .prepare("SELECT item_id FROM feed WHERE user_id = ?1")
            .unwrap()
            .query_map([user], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let got = ranked(
            &conn,
            "SELECT item_id, score, rank FROM recommend(?2, 10) WHERE item_id IN (SELECT value FROM json_each(?1))",
            params![json_list(&allowed), user],
        );
        assert_eq!(got.len(), 10, "user {user}");
        let explored: Vec<i64> = got.iter().filter(|r| r.1.is_none()).map(|r| r.0).collect();
        assert!(
            !explored.is_empty(),
            "user {user}: no explored row in {got:?}"
        );
        for (item, _, _) in &got {
            assert!(set.contains(item), "user {user}: {item} is not allowed");
            assert!(!watched.contains(item), "user {user}: {item} was watched");
            assert_ne!(*item, 1000, "user {user}: 1000 is blocked for everyone");
            if user == 2 {
                assert_ne!(*item, 1002, "1002 is blocked for user 2");
            }
        }
    }
}

#[test]
fn the_block_list_leaves_out_a_users_rows_and_everyones_rows() {
    let conn = memory();
    fitted(&conn, ", exclude_items = 'blocked'");
    conn.execute_batch(
        "CREATE TABLE hidden(user_id INTEGER, video_id INTEGER);
         CREATE TABLE videos(id INTEGER PRIMARY KEY, deleted INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 399)
         INSERT INTO videos SELECT i, 0 FROM n;
         CREATE VIEW blocked(user_id, item_id) AS
           SELECT user_id, video_id FROM hidden
           UNION ALL SELECT NULL, id FROM videos WHERE deleted;",
    )
    .unwrap();
    let before_7 = full_ranking(&conn, 7);
    let before_8 = full_ranking(&conn, 8);
    let (hide, delete) = (before_7[0].0, before_7[1].0);
    conn.execute("INSERT INTO hidden VALUES (7, ?1)", [hide])
        .unwrap();
    conn.execute("UPDATE videos SET deleted = 1 WHERE id = ?1", [delete])
        .unwrap();
    let after_7 = full_ranking(&conn, 7);
    let after_8 = full_ranking(&conn, 8);
    let without = |rows: &[(i64, Option<f64>, i64)], out: &[i64]| {
        let kept: HashSet<i64> = rows
            .iter()
            .map(|r| r.0)
            .filter(|i| !out.contains(i))
            .collect();
        restricted(rows, &kept, rows.len())
    };
    assert_eq!(after_7, without(&before_7, &[hide, delete]));
    assert_eq!(after_8, without(&before_8, &[delete]), "user 8 hid nothing");
    // The top 10 is still 10 rows.
    assert_eq!(
        ranked(
            &conn,
            "SELECT item_id, score, rank FROM recommend(7, 10)",
            []
        )
        .len(),
        10
    );
    // similar_items leaves out the rows that apply to everyone.
    let similar: Vec<i64> = ranked(
        &conn,
        "SELECT item_id, score, rank FROM similar_items(?1, 399)",
        [hide],
    )
    .iter()
    .map(|r| r.0)
    .collect();
    assert_eq!(
        similar.len(),
        398,
        "all items but itself and the deleted one"
    );
    assert!(!similar.contains(&delete));
    assert!(similar.contains(&before_7[2].0));
}

#[test]
fn block_list_errors_name_the_option() {
    let conn = memory();
    fitted(&conn, ", exclude_items = 'nowhere'");
    assert_eq!(
        error_of(&conn, "SELECT * FROM recommend(1, 5)"),
        "recommend: cannot read exclude_items = 'nowhere' (no such table: main.nowhere)"
    );
    assert_eq!(
        error_of(&conn, "SELECT * FROM similar_items(1, 5)"),
        "similar_items: cannot read exclude_items = 'nowhere' (no such table: main.nowhere)"
    );
    conn.execute_batch(
        "CREATE TABLE nowhere(user_id, item_id); INSERT INTO nowhere VALUES (1, 'x');",
    )
    .unwrap();
    assert_eq!(
        error_of(&conn, "SELECT * FROM recommend(1, 5)"),
        "recommend: exclude_items must be a table or view whose item_id values are integers, got 'x' in column item_id of 'nowhere'"
    );
    conn.execute_batch("DROP TABLE nowhere; CREATE TABLE nowhere(item_id);")
        .unwrap();
    assert!(error_of(&conn, "SELECT * FROM recommend(1, 5)")
        .starts_with("recommend: cannot read exclude_items = 'nowhere' (no such column: user_id"));
}

#[test]
fn similar_items_takes_an_allow_list() {
    let conn = memory();
    fitted(&conn, "");
    let full = ranked(
        &conn,
        "SELECT item_id, score, rank FROM similar_items(17, 1000)",
        [],
    );
    assert_eq!(full.len(), 399);
    for allowed in [
        full[40..52].iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..400).filter(|i| i % 9 != 0).collect(),
    ] {
        let set: HashSet<i64> = allowed.iter().copied().collect();
        let got = ranked(
            &conn,
            "SELECT item_id, score, rank FROM similar_items(17, 10) WHERE item_id IN (SELECT value FROM json_each(?1))",
            [json_list(&allowed)],
        );
        assert_eq!(got, restricted(&full, &set, 10));
    }
}

#[test]
fn popularity_serving_takes_the_same_filters() {
    let conn = memory();
    conn.execute_batch(
        "CREATE TABLE hidden(user_id INTEGER, item_id INTEGER);
         CREATE VIRTUAL TABLE feed USING foryou(exclude_items = 'hidden');
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 299)
         INSERT INTO feed(user_id, item_id, watch_time, duration) SELECT i % 30, i % 20, 10, 10 FROM n WHERE i % 20 <= i % 30;",
    )
    .unwrap();
    // No refit: popularity, best first.
    let full = ranked(
        &conn,
        "SELECT item_id, score, rank FROM recommend(1000, 100)",
        [],
    );
    assert!(full.len() >= 15, "{full:?}");
    let allowed: Vec<i64> = full[5..].iter().map(|r| r.0).collect();
    let set: HashSet<i64> = allowed.iter().copied().collect();
    let got = ranked(
        &conn,
        "SELECT item_id, score, rank FROM recommend(1000, 3) WHERE item_id IN (SELECT value FROM json_each(?1))",
        [json_list(&allowed)],
    );
    assert_eq!(got, restricted(&full, &set, 3));
    conn.execute("INSERT INTO hidden VALUES (NULL, ?1)", [full[0].0])
        .unwrap();
    let got = ranked(
        &conn,
        "SELECT item_id, score, rank FROM recommend(1000, 3)",
        [],
    );
    let kept: HashSet<i64> = full
        .iter()
        .map(|r| r.0)
        .filter(|&i| i != full[0].0)
        .collect();
    assert_eq!(got, restricted(&full, &kept, 3));
}

#[test]
fn several_allow_lists_are_intersected() {
    let conn = memory();
    fitted(&conn, "");
    let full = full_ranking(&conn, 6);
    let a: Vec<i64> = full[100..200].iter().map(|r| r.0).collect();
    let b: Vec<i64> = full[150..300].iter().map(|r| r.0).collect();
    let both: HashSet<i64> = a.iter().copied().filter(|i| b.contains(i)).collect();
    let got = ranked(
        &conn,
        "SELECT item_id, score, rank FROM recommend(6, 10) WHERE item_id IN (SELECT value FROM json_each(?1)) \
         AND item_id IN (SELECT value FROM json_each(?2))",
        [json_list(&a), json_list(&b)],
    );
    assert_eq!(got, restricted(&full, &both, 10));
    let (one, one_score, _) = full[160];
    let got = ranked(
        &conn,
        &format!(
            "SELECT item_id, score, rank FROM recommend(6, 10) WHERE item_id IN (SELECT value FROM json_each(?1)) AND item_id = {one}"
        ),
        [json_list(&a)],
    );
    assert_eq!(got, vec![(one, one_score, 1)]);
}

#[test]
fn similar_users_takes_an_allow_list_of_users() {
    let conn = memory();
    fitted(&conn, "");
    let full = ranked(
        &conn,
        "SELECT user_id, score, rank FROM similar_users(12, 100)",
        [],
    );
    assert_eq!(full.len(), 59);
    let friends: Vec<i64> = full[30..45]
        .iter()
        .map(|r| r.0)
        .chain([12, 99_999])
        .collect();
    let set: HashSet<i64> = friends.iter().copied().collect();
    let got = ranked(
        &conn,
        "SELECT user_id, score, rank FROM similar_users(12, 5) WHERE user_id IN (SELECT value FROM json_each(?1))",
        [json_list(&friends)],
    );
    assert_eq!(got, restricted(&full, &set, 5));
    assert!(
        got.iter().all(|r| r.0 != 12),
        "the user is left out even when listed"
    );
}
