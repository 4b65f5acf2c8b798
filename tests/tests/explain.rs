//! `similar_users` and `why_recommended`: a user's neighbours by their (fresh) taste,
//! and the watched items a score is made of, checked against the model through SQL.

// Test data: counts, ids, ranks and timestamps far inside every integer type they are cast to.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use rusqlite::Connection;

const TOPICS: i64 = 4;
const PER_TOPIC: i64 = 25;

/// A deterministic generator (splitmix64), so fixtures need no crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: i64) -> i64 {
        (self.next() % n as u64) as i64
    }
}

/// 120 users, user `u` loving topic `u % 4`: they watch ~12 of its videos (some twice)
/// and swipe 3 others away. Items are `topic * 100 + n`. Refitted once.
fn topics_feed(conn: &Connection, options: &str) {
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 6, iterations = 8, seed = 5, tune = false{options})"
    ))
    .unwrap();
    let mut rng = Rng(42);
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut insert = tx
            .prepare("INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, ?3, 20.0, ?4)")
            .unwrap();
        for user in 0..120i64 {
            let favourite = user % TOPICS;
            for n in 0..12 {
                let item = favourite * 100 + rng.below(PER_TOPIC);
                insert
                    .execute((user, item, 12.0 + rng.below(20) as f64, 1_000 + n))
                    .unwrap();
            }
            for n in 0..3 {
                let other = (favourite + 1 + rng.below(TOPICS - 1)) % TOPICS;
                let item = other * 100 + rng.below(PER_TOPIC);
                insert.execute((user, item, 1.0, 2_000 + n)).unwrap();
            }
        }
    }
    tx.commit().unwrap();
    refit(conn, "SELECT foryou_refit()");
}

/// (item, contribution, rank) rows of a `why_recommended` call.
fn reasons(conn: &Connection, user: i64, item: i64, k: Option<i64>) -> Vec<(i64, f64, i64)> {
    let k = k.map_or(String::new(), |k| format!(", {k}"));
    ranked(
        conn,
        &format!("SELECT * FROM why_recommended({user}, {item}{k})"),
    )
}

fn total(rows: &[(i64, f64, i64)]) -> f64 {
    rows.iter().map(|r| r.1).sum()
}

/// `|a − b| ≤ tol · max(|a|, |b|)`, with a floor for scores near 0.
fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-3)
}

/// Items the user has a non-skip event on (watch ratio at least the default 0.1).
fn watched(conn: &Connection, user: i64) -> BTreeSet<i64> {
    let mut stmt = conn
        .prepare(
            "SELECT DISTINCT item_id FROM feed WHERE user_id = ?1 AND watch_time >= 0.1 * duration",
        )
        .unwrap();
    stmt.query_map([user], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The contract of the explanation, for a folded-in user, on models with and without
/// missing-data weights and scaled regularisation (fold-in's whole objective).
#[test]
fn contributions_add_up_to_the_folded_in_score_recommend_serves() {
    for options in [
        "",
        ", popularity_exponent = 0.5, regularization_scaling = count, alpha = 3",
        ", regularization_scaling = none, confidence = linear, alpha = 8, exclude_watched = false",
    ] {
        let conn = memory();
        topics_feed(&conn, options);
        // User 7 (topic 3) watches topic-1 videos now: two plays of one, one of another,
        // a skip of a third, and a video the model has no factors for.
        conn.execute_batch(
            "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES
               (7, 105, 10, 20, 3000), (7, 105, 30, 20, 3001), (7, 112, 20, 20, 3002),
               (7, 118, 1, 20, 3003), (7, 9999, 20, 20, 3004)",
        )
        .unwrap();
        let feed = ranked(&conn, "SELECT * FROM recommend(7, 40)");
        assert_eq!(feed.len(), 40, "{options}");
        let known = watched(&conn, 7)
            .into_iter()
            .filter(|&i| i != 9999)
            .collect::<BTreeSet<_>>();
        for &(item, score, _) in &feed {
            let rows = reasons(&conn, 7, item, Some(1000));
            assert_well_ranked(&rows);
            // One row per watched item with factors: not the skip, not the new video.
            let explained: BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
            assert_eq!(explained, known, "{options}: item {item}");
            let sum = total(&rows);
            assert!(
                close(sum, score, 1e-4),
                "{options}: item {item}: contributions add up to {sum}, recommend scores {score}"
            );
            // The same sum through SQL's own aggregate.
            let sql_sum: f64 = conn
                .query_row(
                    "SELECT sum(contribution) FROM why_recommended(7, ?1, 1000)",
                    [item],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(close(sql_sum, score, 1e-4), "{options}: item {item}");
        }
        // The fresh topic-1 videos explain topic-1 recommendations more than the old
        // taste does: the top reason of the best topic-1 item is one of them.
        let topic1 = feed.iter().find(|r| r.0 / 100 == 1).unwrap().0;
        let top = reasons(&conn, 7, topic1, Some(1));
        assert_eq!(top.len(), 1);
        assert!([105, 112].contains(&top[0].0), "{options}: {top:?}");
        // Without k: the 10 largest, the head of the full list.
        let all = reasons(&conn, 7, feed[0].0, Some(1000));
        assert!(all.len() > 10);
        assert_eq!(reasons(&conn, 7, feed[0].0, None), all[..10].to_vec());
        assert_eq!(reasons(&conn, 7, feed[0].0, Some(3)), all[..3].to_vec());
    }
}

/// For a user whose stored vector is current, the explanation is the fold-in of their
/// events: an event that leaves fold-in's system unchanged (a video without factors,
/// older than every other) makes `recommend` fold the user in, and its score is then
/// the sum; the refit's stored vector scores close to it.
#[test]
fn for_a_current_user_the_contributions_add_up_to_the_fold_in_of_their_events() {
    let conn = memory();
    topics_feed(&conn, "");
    let user = 10;
    let stored = ranked(&conn, &format!("SELECT * FROM recommend({user}, 10)"));
    let sums: BTreeMap<i64, f64> = stored
        .iter()
        .map(|&(item, _, _)| (item, total(&reasons(&conn, user, item, Some(1000)))))
        .collect();
    for &(item, score, _) in &stored {
        assert!(
            close(sums[&item], score, 0.1),
            "item {item}: stored vector scores {score}, its events' fold-in {}",
            sums[&item]
        );
    }
    conn.execute(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (?1, 9999, 20, 20, 1)",
        [user],
    )
    .unwrap();
    let folded = ranked(&conn, &format!("SELECT * FROM recommend({user}, 1000)"));
    for (item, sum) in &sums {
        let score = folded.iter().find(|r| r.0 == *item).unwrap().1;
        assert!(
            close(*sum, score, 1e-4),
            "item {item}: folded-in score {score}, explained {sum}"
        );
        // And the explanation did not move: the new video is not part of it.
        assert!(close(
            total(&reasons(&conn, user, *item, Some(1000))),
            *sum,
            1e-6
        ));
    }
    // The stored vector is not the fold-in (the refit's few CG steps): some score moved.
    assert!(
        stored
            .iter()
            .any(|&(item, score, _)| (sums[&item] - score).abs() > 1e-6),
        "{stored:?} {sums:?}"
    );
}

#[test]
fn why_recommended_is_empty_where_nothing_scores_by_taste() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 2, tune = false)",
    )
    .unwrap();
    checkerboard(&conn, "feed");
    // Before the first refit.
    assert_eq!(reasons(&conn, 3, 4, None), vec![]);
    refit(&conn, "SELECT foryou_refit()");
    assert!(!reasons(&conn, 3, 4, None).is_empty());
    // An unknown item, an item newer than the refit, a user with no events.
    conn.execute_batch(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (3, 500, 15, 15, 1)",
    )
    .unwrap();
    assert_eq!(reasons(&conn, 3, 12_345, None), vec![]);
    assert_eq!(reasons(&conn, 3, 500, None), vec![]);
    assert_eq!(reasons(&conn, 424_242, 4, None), vec![]);
    // A user who only swiped, and one who only watched a video without factors.
    conn.execute_batch(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (900, 4, 0.1, 15, 1), (901, 500, 15, 15, 1)",
    )
    .unwrap();
    assert_eq!(reasons(&conn, 900, 5, None), vec![]);
    assert_eq!(reasons(&conn, 901, 5, None), vec![]);
    // Recommend's rows joined with their top reason: every row of a model-ranked feed
    // has one, and nothing fails.
    let joined = rows(
        &conn,
        "SELECT r.item_id, w.item_id FROM recommend(3, 5) AS r, why_recommended(3, r.item_id, 1) AS w",
    );
    assert_eq!(joined.len(), 5);
    // The hidden columns give back the call's arguments; they also take the arguments.
    assert_eq!(
        rows(
            &conn,
            "SELECT DISTINCT user_id, of_item, k, model FROM why_recommended(3, 4, 2, 'feed')"
        ),
        vec![vec![
            3.into(),
            4.into(),
            2.into(),
            rusqlite::types::Value::Text("feed".into())
        ]]
    );
    assert_eq!(
        ranked(
            &conn,
            "SELECT * FROM why_recommended WHERE user_id = 3 AND of_item = 4 AND k = 2"
        ),
        reasons(&conn, 3, 4, Some(2))
    );
    // NULL k is the default, so that a model can be named without choosing k.
    assert_eq!(
        ranked(&conn, "SELECT * FROM why_recommended(3, 4, NULL, 'feed')"),
        reasons(&conn, 3, 4, None)
    );
}

/// The stored user vectors of table `feed`, by user id.
fn user_vectors(conn: &Connection) -> BTreeMap<i64, Vec<f64>> {
    let mut ids = Vec::new();
    let mut factors = Vec::new();
    let mut stmt = conn
        .prepare("SELECT ids, factors FROM feed_users ORDER BY chunk")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        let id_blob: Vec<u8> = row.get(0).unwrap();
        let f_blob: Vec<u8> = row.get(1).unwrap();
        ids.extend(
            id_blob
                .chunks(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap())),
        );
        factors.extend(
            f_blob
                .chunks(4)
                .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap()))),
        );
    }
    let dim = factors.len() / ids.len();
    ids.into_iter()
        .zip(factors.chunks(dim).map(<[f64]>::to_vec))
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn similar_users_are_the_nearest_stored_vectors_by_cosine() {
    let conn = memory();
    topics_feed(&conn, "");
    let vectors = user_vectors(&conn);
    assert_eq!(vectors.len(), 120);
    for user in [0, 5, 42] {
        let rows = ranked(&conn, &format!("SELECT * FROM similar_users({user}, 200)"));
        assert_well_ranked(&rows);
        // Everyone else, the user left out.
        assert_eq!(rows.len(), 119);
        assert!(rows.iter().all(|r| r.0 != user));
        for &(other, score, _) in &rows {
            let expected = cosine(&vectors[&user], &vectors[&other]);
            assert!(
                (score - expected).abs() < 1e-5,
                "{user} ~ {other}: {score} vs {expected}"
            );
        }
        // Neighbours share the user's topic.
        let top = ranked(&conn, &format!("SELECT * FROM similar_users({user}, 10)"));
        assert_eq!(top, rows[..10].to_vec());
        assert!(
            top.iter().all(|r| r.0 % TOPICS == user % TOPICS),
            "{user}: {top:?}"
        );
    }
}

#[test]
fn similar_users_follow_fresh_taste_and_are_empty_without_one() {
    let conn = memory();
    // Before the first refit: empty.
    conn.execute_batch("CREATE VIRTUAL TABLE early USING foryou(factors = 2)")
        .unwrap();
    conn.execute_batch(
        "INSERT INTO early(user_id, item_id, watch_time, duration, ts) VALUES (1, 1, 5, 5, 1), (2, 1, 5, 5, 2)",
    )
    .unwrap();
    assert_eq!(
        ranked(&conn, "SELECT * FROM similar_users(1, 5, 'early')"),
        vec![]
    );
    conn.execute_batch("DROP TABLE early").unwrap();

    topics_feed(&conn, "");
    let topic_of =
        |rows: &[(i64, f64, i64)]| -> Vec<i64> { rows.iter().map(|r| r.0 % TOPICS).collect() };
    // User 8 loves topic 0; they now binge topic 2: their neighbours follow at once.
    let before = ranked(&conn, "SELECT * FROM similar_users(8, 5)");
    assert!(topic_of(&before).iter().all(|&t| t == 0), "{before:?}");
    let tx = conn.unchecked_transaction().unwrap();
    for n in 0..40 {
        tx.execute(
            "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (8, ?1, 40, 20, ?2)",
            (200 + n % PER_TOPIC, 5_000 + n),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let after = ranked(&conn, "SELECT * FROM similar_users(8, 5)");
    assert_well_ranked(&after);
    assert!(topic_of(&after).iter().all(|&t| t == 2), "{after:?}");
    assert!(after.iter().all(|r| r.0 != 8));
    // A newcomer with events is folded in and gets neighbours; one without, or who
    // only swiped, has no taste to compare: empty.
    conn.execute_batch(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES
           (5000, 301, 20, 20, 1), (5000, 307, 20, 20, 2), (5001, 301, 0.5, 20, 3)",
    )
    .unwrap();
    let newcomer = ranked(&conn, "SELECT * FROM similar_users(5000, 3)");
    assert_eq!(newcomer.len(), 3);
    assert!(topic_of(&newcomer).iter().all(|&t| t == 3), "{newcomer:?}");
    assert_eq!(
        ranked(&conn, "SELECT * FROM similar_users(5001, 3)"),
        vec![]
    );
    assert_eq!(
        ranked(&conn, "SELECT * FROM similar_users(424242, 3)"),
        vec![]
    );
    // Hidden columns, and the arguments as constraints.
    assert_eq!(
        rows(
            &conn,
            "SELECT DISTINCT of_user, k, model FROM similar_users(5000, 3, 'feed')"
        ),
        vec![vec![
            5000.into(),
            3.into(),
            rusqlite::types::Value::Text("feed".into())
        ]]
    );
    assert_eq!(
        ranked(
            &conn,
            "SELECT * FROM similar_users WHERE of_user = 5000 AND k = 3"
        ),
        newcomer
    );
}
