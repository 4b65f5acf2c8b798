//! Real product fields as a loading fixture: the 200-row KuaiRand-1K sample
//! (`../shared/data/kuairand-1k-scenariowise-sample`, CC BY-SA 4.0, Gao et al. 2022)
//! has `play_time_ms` and `duration_ms`, exactly what an app records. Not used for
//! metrics (200 rows); used to check loading, the zero-duration rule and both skip rules
//! against counts computed here from the CSV itself.

// Test data: counts, ids, ranks and timestamps far inside every integer type they are cast to.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod common;

use common::*;
use foryou_tests::shared_data;
use rusqlite::Connection;

struct Row {
    user: i64,
    video: i64,
    play_ms: i64,
    duration_ms: i64,
}

/// The sample's rows, read with the header's column names (no quoted fields in it).
fn sample() -> Option<Vec<Row>> {
    let path = shared_data("kuairand-1k-scenariowise-sample/kuairand_sample.csv")?;
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (u, v, p, d) = (
        col("user_id"),
        col("video_id"),
        col("play_time_ms"),
        col("duration_ms"),
    );
    Some(
        lines
            .map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                Row {
                    user: f[u].parse().unwrap(),
                    video: f[v].parse().unwrap(),
                    play_ms: f[p].parse().unwrap(),
                    duration_ms: f[d].parse().unwrap(),
                }
            })
            .collect(),
    )
}

/// The rows in a plain staging table `log`, as an app would have them.
fn staged(rows: &[Row]) -> Connection {
    let conn = memory();
    conn.execute_batch(
        "CREATE TABLE log(user_id INTEGER, video_id INTEGER, play_time_ms INTEGER, duration_ms INTEGER);",
    )
    .unwrap();
    {
        let mut insert = conn
            .prepare("INSERT INTO log VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        for r in rows {
            insert
                .execute((r.user, r.video, r.play_ms, r.duration_ms))
                .unwrap();
        }
    }
    conn
}

const LOAD: &str = "INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
                    SELECT user_id, video_id, play_time_ms / 1000.0, duration_ms / 1000.0, rowid FROM log";

#[test]
fn the_kuairand_sample_loads_with_its_zero_durations_rejected_and_skips_counted() {
    let Some(rows) = sample() else { return };
    assert_eq!(rows.len(), 200);
    let conn = staged(&rows);
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 8, iterations = 5)")
        .unwrap();

    // 18 rows have duration_ms = 0: the whole statement fails, naming the column, and
    // stores nothing.
    let zero = rows.iter().filter(|r| r.duration_ms == 0).count();
    assert!(zero > 0);
    let err = error_of(&conn, LOAD);
    assert!(
        err.contains("duration must be a number of seconds > 0, got 0"),
        "{err}"
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 0);

    // Loaded without them, every remaining row is an event.
    conn.execute_batch(&format!("{LOAD} WHERE duration_ms > 0"))
        .unwrap();
    let kept: Vec<&Row> = rows.iter().filter(|r| r.duration_ms > 0).collect();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed") as usize, kept.len());
    let distinct = |key: fn(&Row) -> i64| {
        let mut v: Vec<i64> = kept.iter().map(|r| key(r)).collect();
        v.sort_unstable();
        v.dedup();
        v.len() as i64
    };
    let mut pairs: Vec<(i64, i64)> = kept.iter().map(|r| (r.user, r.video)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    assert_eq!(pairs.len(), kept.len(), "the sample has one row per pair");

    // Default skip rule: watch ratio < 0.1. Too few users to tune on, and it says so.
    let report = refit(&conn, "SELECT foryou_refit('feed')");
    assert_eq!(report["events"], kept.len() as i64);
    assert_eq!(report["users"], distinct(|r| r.user));
    assert_eq!(report["items"], distinct(|r| r.video));
    let by_ratio = kept
        .iter()
        .filter(|r| (r.play_ms as f64) < 0.1 * r.duration_ms as f64)
        .count();
    assert_eq!(report["skipped_pairs"], by_ratio as i64, "{report}");
    assert!(report.get("tuned").is_none(), "{report}");
    assert!(report["tune_skipped"].is_string(), "{report}");

    // KuaiRec's short play as well: less than min(3 s, duration).
    let report = refit(
        &conn,
        r#"SELECT foryou_refit('feed', '{"skip_seconds": 3}')"#,
    );
    let short = kept
        .iter()
        .filter(|r| {
            (r.play_ms as f64) < 0.1 * r.duration_ms as f64 || r.play_ms < 3000.min(r.duration_ms)
        })
        .count();
    assert!(short > by_ratio, "the seconds rule must add skips here");
    assert_eq!(report["skipped_pairs"], short as i64, "{report}");

    // Every viewer is served videos they have no event for, from the catalogue, as many
    // as are left (one viewer here has an event for every video).
    let catalogue = distinct(|r| r.video) as usize;
    let mut users: Vec<i64> = kept.iter().map(|r| r.user).collect();
    users.sort_unstable();
    users.dedup();
    for user in users {
        let seen: Vec<i64> = kept
            .iter()
            .filter(|r| r.user == user)
            .map(|r| r.video)
            .collect();
        let feed = ranked(&conn, &format!("SELECT * FROM recommend({user}, 5)"));
        assert_eq!(feed.len(), 5.min(catalogue - seen.len()), "user {user}");
        assert!(
            feed.iter().all(|(item, _, _)| !seen.contains(item)),
            "{feed:?}"
        );
        assert!(feed
            .iter()
            .all(|(item, _, _)| kept.iter().any(|r| r.video == *item)));
        assert_well_ranked(&feed);
    }
}
