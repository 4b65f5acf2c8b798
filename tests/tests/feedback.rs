//! Watch time as the signal, end to end: an item always watched to the end ranks above
//! an item always swiped away, for a user who has seen neither.

use foryou_tests::memory;
use rusqlite::Connection;

const FULL: i64 = 100;
const SKIPPED: i64 = 200;
const NEWCOMER: i64 = 999;

/// 60 users watch a few of 12 filler videos (30 s long) partly; every one of them also
/// watches item FULL to the end and swipes item SKIPPED after one second. The newcomer
/// has watched filler videos only.
fn fixture(conn: &Connection, options: &str) {
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE feed USING foryou({options})"
    ))
    .unwrap();
    let mut insert = conn
        .prepare("INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, ?3, 30.0, ?4)")
        .unwrap();
    let mut ts = 1_700_000_000;
    for user in 0..60i64 {
        for j in 0..4i64 {
            let item = (user * 7 + j * 5) % 12;
            ts += 1;
            insert
                .execute((user, item, 10.0 + (user + j) as f64 % 15.0, ts))
                .unwrap();
        }
        insert.execute((user, FULL, 30.0, ts + 1)).unwrap();
        insert.execute((user, SKIPPED, 1.0, ts + 2)).unwrap();
    }
    for item in [1i64, 4, 7] {
        insert.execute((NEWCOMER, item, 20.0, ts + 10)).unwrap();
    }
    conn.query_row("SELECT foryou_refit('feed')", [], |_| Ok(()))
        .unwrap();
}

fn rank_of(conn: &Connection, item: i64) -> i64 {
    conn.query_row(
        "SELECT rank FROM recommend(?1, 100) WHERE item_id = ?2",
        (NEWCOMER, item),
        |r| r.get(0),
    )
    .unwrap_or_else(|e| panic!("item {item} missing from the newcomer's feed: {e}"))
}

#[test]
fn watched_to_the_end_beats_swiped_away_with_the_skip_rule() {
    let conn = memory();
    fixture(
        &conn,
        "factors = 8, iterations = 15, seed = 3, skip_ratio = 0.2, skip_weight = 2",
    );
    let (full, skipped) = (rank_of(&conn, FULL), rank_of(&conn, SKIPPED));
    assert!(
        full < skipped,
        "full-watch item ranked {full}, skipped item {skipped}"
    );
    assert_eq!(
        full, 1,
        "the item everyone finishes should lead the newcomer's feed"
    );
    let report: String = conn
        .query_row(
            "SELECT value FROM feed_model WHERE key = 'report'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        report["skipped_pairs"], 60,
        "every user's swipe on item {SKIPPED} is a skipped pair: {report}"
    );
}

#[test]
fn watched_to_the_end_beats_swiped_away_by_watch_ratio_alone() {
    let conn = memory();
    fixture(&conn, "factors = 8, iterations = 15, seed = 3");
    let (full, skipped) = (rank_of(&conn, FULL), rank_of(&conn, SKIPPED));
    assert!(
        full < skipped,
        "full-watch item ranked {full}, skipped item {skipped}"
    );
}

#[test]
fn binary_feedback_cannot_tell_them_apart_but_skips_push_the_swiped_item_down() {
    // With binary confidence both items are "watched by everyone": their scores for the
    // newcomer are nearly equal. The skip rule turns the swipes into a "no".
    let score = |options: &str| {
        let conn = memory();
        fixture(&conn, options);
        let s = |item: i64| -> f64 {
            conn.query_row(
                "SELECT score FROM recommend(?1, 100) WHERE item_id = ?2",
                (NEWCOMER, item),
                |r| r.get(0),
            )
            .unwrap()
        };
        (s(FULL), s(SKIPPED))
    };
    let (full_b, skipped_b) =
        score("factors = 8, iterations = 15, seed = 3, confidence = binary, skip_ratio = 0");
    assert!(
        (full_b - skipped_b).abs() < 0.05,
        "binary: {full_b} vs {skipped_b}"
    );
    let (full_s, skipped_s) =
        score("factors = 8, iterations = 15, seed = 3, confidence = binary, skip_ratio = 0.2");
    assert!(
        full_s - skipped_s > 0.3,
        "with skips: {full_s} vs {skipped_s}"
    );
}
