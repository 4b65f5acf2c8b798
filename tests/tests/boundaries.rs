//! Exact boundaries, through SQL: the skip rule at its thresholds (the refit's report and
//! live popularity, `skip_ratio` and `skip_seconds`), exploration never serving a
//! watched item to any user, every feed leaving out every item its user has an event
//! for (watched or swiped), and the catalogue scan's first pass (8-bit with VNNI) giving
//! exactly the f32 ranking of the stored factors.

// Test data: counts, ids and ranks far inside every integer type they are cast to.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use rusqlite::Connection;

/// One event per case, each by its own user on its own item: (item, watch time,
/// duration, is a skip under the rule of the table it is inserted in).
type Case = (i64, f64, f64, bool);

/// `skip_ratio = 0.5` (and the seconds rule off): a ratio of exactly 0.5 is a watch.
const RATIO_CASES: &[Case] = &[
    (1, 5.0, 10.0, false), // ratio 0.5 exactly
    (2, 4.999, 10.0, true),
    (3, 10.0, 10.0, false),
    (4, 0.0, 10.0, true),
    (5, 7.5, 15.0, false), // 0.5 again
    (6, 1.0, 2.0, false),  // 0.5, short video
];

/// `skip_seconds = 3` (and the ratio rule off): a skip is less than min(3 s, duration).
const SECONDS_CASES: &[Case] = &[
    (11, 3.0, 10.0, false), // exactly 3 s
    (12, 2.999, 10.0, true),
    (13, 2.0, 2.0, false), // a 2 s video watched to the end: min(3, 2) = 2
    (14, 1.999, 2.0, true),
    (15, 0.5, 0.5, false), // 0.5 s of a 0.5 s video
    (16, 100.0, 200.0, false),
];

fn insert_cases(conn: &Connection, table: &str, cases: &[Case]) {
    for (n, &(item, watch, duration, _)) in cases.iter().enumerate() {
        conn.execute(
            &format!("INSERT INTO {table}(user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, ?3, ?4, ?5)"),
            (100 + item, item, watch, duration, n as i64 + 1),
        )
        .unwrap();
    }
}

/// (item, score) of `recommend` for a user with no events: live popularity before the
/// first refit (distinct non-skip viewers).
fn popularity(conn: &Connection, table: &str) -> Vec<(i64, f64)> {
    ranked(
        conn,
        &format!("SELECT * FROM recommend(999999, 100, '{table}')"),
    )
    .into_iter()
    .map(|(item, score, _)| (item, score))
    .collect()
}

fn watched_items(cases: &[Case]) -> Vec<(i64, f64)> {
    let mut v: Vec<(i64, f64)> = cases.iter().filter(|c| !c.3).map(|c| (c.0, 1.0)).collect();
    v.sort_by_key(|c| c.0);
    v
}

#[test]
fn the_skip_rule_at_its_exact_thresholds_in_live_popularity_and_the_refit() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE by_ratio USING foryou(factors = 2, iterations = 2, tune = false, skip_ratio = 0.5);
         CREATE VIRTUAL TABLE by_seconds USING foryou(factors = 2, iterations = 2, tune = false, skip_ratio = 0, skip_seconds = 3);
         CREATE VIRTUAL TABLE no_rule USING foryou(factors = 2, iterations = 2, tune = false, skip_ratio = 0);",
    )
    .unwrap();
    insert_cases(&conn, "by_ratio", RATIO_CASES);
    insert_cases(&conn, "by_seconds", SECONDS_CASES);
    insert_cases(&conn, "no_rule", RATIO_CASES);
    insert_cases(&conn, "no_rule", SECONDS_CASES);

    // Live popularity: exactly the non-skip items, one viewer each.
    assert_eq!(popularity(&conn, "by_ratio"), watched_items(RATIO_CASES));
    assert_eq!(
        popularity(&conn, "by_seconds"),
        watched_items(SECONDS_CASES)
    );
    let every: Vec<(i64, f64)> = RATIO_CASES
        .iter()
        .chain(SECONDS_CASES)
        .map(|c| (c.0, 1.0))
        .collect();
    assert_eq!(popularity(&conn, "no_rule"), every, "no rule: no skips");

    // The refit's report counts the same skips (pairs that are only skips).
    let skips = |cases: &[Case]| cases.iter().filter(|c| c.3).count() as i64;
    let report = refit(&conn, "SELECT foryou_refit('by_ratio')");
    assert_eq!(report["skipped_pairs"], skips(RATIO_CASES), "{report}");
    let report = refit(&conn, "SELECT foryou_refit('by_seconds')");
    assert_eq!(report["skipped_pairs"], skips(SECONDS_CASES), "{report}");
    let report = refit(&conn, "SELECT foryou_refit('no_rule')");
    assert_eq!(report["skipped_pairs"], 0, "{report}");
    // The same rules given per refit, on the table without one.
    let report = refit(
        &conn,
        r#"SELECT foryou_refit('no_rule', '{"skip_ratio": 0.5}')"#,
    );
    assert_eq!(report["skipped_pairs"], skips(RATIO_CASES) + 2, "{report}"); // + items 11, 12 (ratios 0.3, 0.2999)
    let report = refit(
        &conn,
        r#"SELECT foryou_refit('no_rule', '{"skip_seconds": 3}')"#,
    );
    assert_eq!(
        report["skipped_pairs"],
        skips(SECONDS_CASES) + 2,
        "{report}"
    ); // + items 4 (0 s), 6 (1 s of 2 s)
       // Popularity as of the refit, for unknown users, counts the same viewers (the
       // skipped items, with factors now, follow with 0 viewers).
    let as_of_refit = |cases: &[Case]| {
        let mut v = watched_items(cases);
        let mut skipped: Vec<(i64, f64)> =
            cases.iter().filter(|c| c.3).map(|c| (c.0, 0.0)).collect();
        skipped.sort_by_key(|c| c.0);
        v.extend(skipped);
        v
    };
    assert_eq!(popularity(&conn, "by_ratio"), as_of_refit(RATIO_CASES));
    assert_eq!(popularity(&conn, "by_seconds"), as_of_refit(SECONDS_CASES));
}

/// 30 users, 40 items: items 1-30 have 6 viewers each, items 31-40 one each (user m
/// watched item 30 + m), so the least-viewed tenth are items each watched by one user.
fn explore_fixture(conn: &Connection, explore: f64) -> BTreeMap<i64, BTreeSet<i64>> {
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 3, tune = false, explore = {explore})"
    ))
    .unwrap();
    let mut watched: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for user in 1..=30i64 {
        for j in 0..6 {
            watched.entry(user).or_default().insert((user + j) % 30 + 1);
        }
        if user <= 10 {
            watched.entry(user).or_default().insert(30 + user);
        }
    }
    let mut ts = 0;
    for (user, items) in &watched {
        for item in items {
            ts += 1;
            conn.execute(
                "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, 20, 20, ?3)",
                (user, item, ts),
            )
            .unwrap();
        }
    }
    watched
}

fn feed_of(conn: &Connection, user: i64, k: usize) -> Vec<(i64, Option<f64>)> {
    let mut s = conn
        .prepare("SELECT item_id, score FROM recommend(?1, ?2)")
        .unwrap();
    s.query_map((user, k as i64), |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn explore_never_serves_a_watched_item_to_any_user() {
    for explore in [1.0, 0.5] {
        let conn = memory();
        let mut watched = explore_fixture(&conn, explore);
        refit(&conn, "SELECT foryou_refit()");
        // Fresh items (no factors yet), each watched after the refit by two users.
        for (user, item) in [(1, 41), (2, 41), (3, 42), (11, 42), (12, 43), (13, 43)] {
            conn.execute(
                "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, 20, 20, 1000)",
                (user, item),
            )
            .unwrap();
            watched.entry(user).or_default().insert(item);
        }
        watched.insert(99, BTreeSet::new()); // no events
        let (mut explored, mut fresh_served) = (0, 0);
        for (user, seen) in &watched {
            let feed = feed_of(&conn, *user, 10);
            assert_eq!(feed.len(), 10, "user {user}: {feed:?}");
            for (item, score) in &feed {
                assert!(
                    !seen.contains(item),
                    "explore = {explore}: user {user} was served item {item}, which they watched: {feed:?}"
                );
                explored += usize::from(score.is_none());
                fresh_served += usize::from(*item > 40);
            }
        }
        // The explored slots were used, fresh items among them.
        assert!(explored >= watched.len(), "{explored}");
        assert!(fresh_served > 0);
    }
}

/// An app's log in miniature (the shape of the `KuaiRand` sample): skips by both rules,
/// repeated events, a viewer with an event for every video, and one with a single
/// skipped video.
fn app_log() -> Vec<(i64, i64, f64, f64)> {
    let mut log = Vec::new();
    for user in 1..=12i64 {
        for item in 1..=15i64 {
            let h = (user * 31 + item * 17) % 11;
            if h < 4 {
                let watch = match h {
                    0 => 0.5,  // a swipe: ratio below 0.1 and under 3 s
                    1 => 2.0,  // under 3 s only
                    2 => 30.0, // a full watch
                    _ => 12.0,
                };
                log.push((user, item, watch, 30.0));
                if h == 3 {
                    log.push((user, item, 30.0, 30.0)); // watched again
                }
            }
        }
    }
    for item in 1..=15 {
        log.push((20, item, if item % 2 == 0 { 0.1 } else { 30.0 }, 30.0));
    }
    log.push((21, 7, 0.1, 30.0));
    log
}

#[test]
fn every_feed_leaves_out_every_item_its_user_has_an_event_for() {
    let log = app_log();
    let catalogue: BTreeSet<i64> = log.iter().map(|e| e.1).collect();
    let mut seen: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for e in &log {
        seen.entry(e.0).or_default().insert(e.1);
    }
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, tune = false, skip_seconds = 3)",
    )
    .unwrap();
    let split = log.len() * 3 / 4;
    let insert = |events: &[(i64, i64, f64, f64)]| {
        for (n, e) in events.iter().enumerate() {
            conn.execute(
                "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
                (e.0, e.1, e.2, e.3, n as i64),
            )
            .unwrap();
        }
    };
    let check = |when: &str, seen: &BTreeMap<i64, BTreeSet<i64>>| {
        let catalogue: BTreeSet<i64> = seen.values().flatten().copied().collect();
        for (user, items) in seen.iter().chain([(&99, &BTreeSet::new())]) {
            for k in [5usize, 20] {
                let feed = ranked(&conn, &format!("SELECT * FROM recommend({user}, {k})"));
                assert_well_ranked(&feed);
                let got: Vec<i64> = feed.iter().map(|r| r.0).collect();
                // Live popularity before a refit serves only items someone watched; the
                // model serves any item it has factors for.
                assert!(
                    got.iter()
                        .all(|i| !items.contains(i) && catalogue.contains(i)),
                    "{when}: user {user} at k = {k}: {got:?} (their items {items:?})"
                );
                if when != "before the first refit" {
                    assert_eq!(
                        got.len(),
                        k.min(catalogue.len() - items.len()),
                        "{when}: user {user} at k = {k}: {got:?}"
                    );
                }
            }
        }
    };
    insert(&log[..split]);
    let mut seen_then: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for e in &log[..split] {
        seen_then.entry(e.0).or_default().insert(e.1);
    }
    check("before the first refit", &seen_then);
    refit(&conn, "SELECT foryou_refit()");
    check("after the refit", &seen_then);
    insert(&log[split..]); // new events, folded in
    check("after new events", &seen);
    refit(&conn, "SELECT foryou_refit()");
    check("after a second refit", &seen);
    assert_eq!(
        feed_of(&conn, 20, 5),
        Vec::new(),
        "user 20 has an event for every video"
    );
    assert_eq!(catalogue.len(), 15);
}

/// Little-endian f32 values.
fn f32s(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn i64s(blob: &[u8]) -> Vec<i64> {
    blob.chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
#[allow(clippy::too_many_lines)] // one fixture, two checks over it
fn recommend_and_similar_items_rank_exactly_by_the_stored_factors() {
    // 1,500 items, 16 factors, and factors replaced by pseudo-random values: many
    // scores close together, where an 8-bit first pass with a wrong error bound would
    // drop an item of the true top k.
    let dir = TempDir::new("exact-scan");
    let path = dir.join("feed.db");
    let (n_items, dim, users) = (1500i64, 16usize, 30i64);
    {
        let conn = open(&path);
        conn.execute_batch(&format!(
            "CREATE VIRTUAL TABLE feed USING foryou(factors = {dim}, iterations = 1, tune = false)"
        ))
        .unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for item in 0..n_items {
            conn.execute(
                "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, 10, 10, ?2)",
                (item % users, item),
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
        refit(&conn, "SELECT foryou_refit()");
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for part in ["users", "items"] {
            let n: i64 = conn
                .query_row(
                    &format!("SELECT length(factors) FROM feed_{part}"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let blob: Vec<u8> = (0..n / 4).flat_map(|_| next().to_le_bytes()).collect();
            conn.execute(&format!("UPDATE feed_{part} SET factors = ?1"), [blob])
                .unwrap();
        }
        assert_eq!(int(&conn, "SELECT count(*) FROM feed_items"), 1);
    }
    let conn = open(&path);
    let read = |part: &str| -> (Vec<i64>, Vec<f32>) {
        conn.query_row(&format!("SELECT ids, factors FROM feed_{part}"), [], |r| {
            Ok((
                i64s(&r.get::<_, Vec<u8>>(0)?),
                f32s(&r.get::<_, Vec<u8>>(1)?),
            ))
        })
        .unwrap()
    };
    let (item_ids, item_f) = read("items");
    let (user_ids, user_f) = read("users");
    let row = |f: &[f32], i: usize| f[i * dim..(i + 1) * dim].to_vec();
    let dot = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum::<f64>()
    };
    let tol = 1e-4;
    let k = 20;
    // Served scores are the exact ones, and no item left out scores higher than the last
    // one served.
    let check = |what: &str, served: &[(i64, f64, i64)], exact: &BTreeMap<i64, f64>| {
        assert_eq!(served.len(), k, "{what}");
        for (item, score, _) in served {
            let want = exact[item];
            assert!(
                (score - want).abs() < tol,
                "{what}: item {item} scored {score}, exactly {want}"
            );
        }
        let last = served.last().unwrap().1;
        let served: BTreeSet<i64> = served.iter().map(|r| r.0).collect();
        for (item, score) in exact {
            assert!(
                served.contains(item) || *score <= last + tol,
                "{what}: item {item} (exactly {score}) is missing from the top {k} (last {last})"
            );
        }
    };
    for (u, user) in user_ids.iter().enumerate() {
        let q = row(&user_f, u);
        let exact: BTreeMap<i64, f64> = item_ids
            .iter()
            .enumerate()
            .filter(|(_, item)| *item % users != *user) // their watched items
            .map(|(i, item)| (*item, dot(&q, &row(&item_f, i))))
            .collect();
        let served = ranked(&conn, &format!("SELECT * FROM recommend({user}, {k})"));
        check(&format!("recommend({user})"), &served, &exact);
    }
    let norm = |v: &[f32]| dot(v, v).sqrt();
    for i in (0..item_ids.len()).step_by(50) {
        let q = row(&item_f, i);
        let exact: BTreeMap<i64, f64> = item_ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, item)| {
                let y = row(&item_f, j);
                (*item, dot(&q, &y) / (norm(&q) * norm(&y)))
            })
            .collect();
        let served = ranked(
            &conn,
            &format!("SELECT * FROM similar_items({}, {k})", item_ids[i]),
        );
        check(&format!("similar_items({})", item_ids[i]), &served, &exact);
    }
}

#[test]
fn live_popularity_counts_each_viewer_once() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 2, tune = false);
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES
           (1, 5, 10, 10, 1), (1, 5, 10, 10, 2), (1, 5, 10, 10, 3), (1, 5, 10, 10, 4),
           (2, 6, 10, 10, 5), (3, 6, 10, 10, 6), (2, 7, 1, 10, 7), (2, 7, 10, 10, 8);",
    )
    .unwrap();
    // Item 5: one viewer, four times; item 6: two viewers; item 7: one viewer (who also
    // swiped it once).
    assert_eq!(popularity(&conn, "feed"), [(6, 2.0), (5, 1.0), (7, 1.0)]);
}

#[test]
fn users_with_the_same_history_get_their_own_explored_order() {
    let conn = memory();
    explore_fixture(&conn, 1.0);
    refit(&conn, "SELECT foryou_refit()");
    // Ten new users, each with the same single event: folded in alike, explored apart.
    for user in 200..210 {
        conn.execute(
            "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (?1, 1, 20, 20, 2000)",
            [user],
        )
        .unwrap();
    }
    let explored = |user: i64| -> Vec<i64> {
        feed_of(&conn, user, 10)
            .into_iter()
            .filter(|r| r.1.is_none())
            .map(|r| r.0)
            .collect()
    };
    let first = explored(200);
    assert!(first.len() >= 3, "{first:?}");
    assert!(
        (201..210).any(|u| explored(u) != first),
        "every user with this history got the explored order {first:?}"
    );
}

#[test]
fn explored_slots_are_k_times_explore_rounded() {
    let conn = memory();
    explore_fixture(&conn, 0.5);
    refit(&conn, "SELECT foryou_refit()");
    // round(3 * 0.5) = 2, round(5 * 0.5) = 3 (halves round up), round(1 * 0.5) = 1.
    for (k, slots) in [(3usize, 2usize), (5, 3), (1, 1)] {
        let feed = feed_of(&conn, 99, k);
        assert_eq!(feed.len(), k);
        let explored = feed.iter().filter(|r| r.1.is_none()).count();
        assert_eq!(explored, slots, "k = {k}: {feed:?}");
    }
}
