//! Compatibility with an old table: `tests/fixtures/format1.db` was written by the
//! extension of commit 484ea6d (before the options `regularization_scaling` and `tune`
//! existed; `tests/fixtures/format1.sql` says how), and `format1.expected` holds what
//! that build returned from it (`format1-record.sql`). The current build must open a
//! copy, read the options with their old meaning (unscaled λ, no tuning), serve the
//! recorded feeds, fold new events in and refit as the old build did.
//!
//! Scores are compared to a relative tolerance, not bit for bit: the current build's
//! kernels sum in another order than 484ea6d's, so serving from the stored factors
//! differs by about one f32 ulp ([`SERVING_TOLERANCE`]), and a refit, whose ALS
//! arithmetic has changed since, by up to about 2e-5 ([`REFIT_TOLERANCE`]). Items and
//! ranks must be exactly the recorded ones. Each check prints its largest difference.

// Test data: counts, ids, ranks and timestamps far inside every integer type they are cast to.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod common;

use std::collections::BTreeMap;

use common::*;
use rusqlite::Connection;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/format1.db");
const EXPECTED: &str = include_str!("../fixtures/format1.expected");
const RECORD_SQL: &str = include_str!("../fixtures/format1-record.sql");

/// The new events of step `folded`, exactly as `format1-record.sql` inserted them.
const INSERT: &str = "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (1000, 4, 30, 20, 1700010000), (1000, 8, 25, 25, 1700010001), (3, 47, 40, 30, 1700010002);";

/// Serving from stored (or folded-in) factors: the old and current builds agree to
/// about one f32 ulp (6e-8 relative).
const SERVING_TOLERANCE: f64 = 1e-6;
/// Serving after a refit by the current build: its ALS differs from 484ea6d's in the
/// last bits, which compound over the sweeps (seen: at most 2e-5).
const REFIT_TOLERANCE: f64 = 1e-4;

/// The fixture's options as 484ea6d stored them (every option it had, defaults
/// included; the `ANY` column keeps whole reals as integers), as text.
const STORED_OPTIONS: &[(&str, &str)] = &[
    ("alpha", "2"),
    ("auto_refit", "0"),
    ("cg_steps", "3"),
    ("confidence", "linear"),
    ("exclude_watched", "1"),
    ("explore", "0"),
    ("factors", "8"),
    ("format_version", "1"),
    ("half_life_days", "0"),
    ("incremental_iterations", "3"),
    ("iterations", "12"),
    ("popularity_exponent", "0"),
    ("regularization", "0.05"),
    ("seed", "7"),
    ("skip_ratio", "0.5"),
    ("skip_seconds", "0"),
    ("skip_weight", "1"),
    ("threads", "0"),
];

type Ranked = Vec<(i64, f64, i64)>;

/// `format1.expected`, parsed: per step, the calls (in file order) with their rows, and
/// the refit report's fields.
struct Expected {
    rows: BTreeMap<String, Vec<(String, Ranked)>>,
    report: BTreeMap<String, String>,
}

fn bad<T>(n: usize, line: &str) -> T {
    panic!("format1.expected line {}: {line:?}", n + 1)
}

fn expected() -> Expected {
    let mut rows: BTreeMap<String, Vec<(String, Ranked)>> = BTreeMap::new();
    let mut report = BTreeMap::new();
    for (n, line) in EXPECTED.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["row", step, call, rank, item, score] => {
                let row = (
                    item.parse().unwrap_or_else(|_| bad(n, line)),
                    score.parse().unwrap_or_else(|_| bad(n, line)),
                    rank.parse().unwrap_or_else(|_| bad(n, line)),
                );
                let calls = rows.entry(step.to_string()).or_default();
                match calls.last_mut() {
                    Some((last, ranked)) if last == call => ranked.push(row),
                    _ => calls.push((call.to_string(), vec![row])),
                }
            }
            ["report", "refit", key, value] => {
                report.insert(key.to_string(), value.to_string());
            }
            _ => bad(n, line),
        }
    }
    Expected { rows, report }
}

/// A copy of the committed fixture in a fresh temp dir (the committed file is never
/// opened for writing), opened with the current build.
fn fixture_copy(tag: &str) -> (TempDir, Connection) {
    let dir = TempDir::new(tag);
    let path = dir.join("format1.db");
    std::fs::copy(FIXTURE, &path).expect("copy tests/fixtures/format1.db");
    let conn = open(&path);
    (dir, conn)
}

/// The largest relative score difference between `got` and `want`, after checking that
/// they list the same items at the same ranks.
fn score_gap(what: &str, got: &Ranked, want: &Ranked) -> f64 {
    assert_eq!(
        got.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
        want.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
        "{what}: (item, rank) differ from 484ea6d's\n got {got:?}\nwant {want:?}"
    );
    got.iter()
        .zip(want)
        .map(|(g, w)| (g.1 - w.1).abs() / w.1.abs().max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

/// Checks every recorded call of `step` against the current build; returns the largest
/// relative score difference (which must be within `tolerance`).
fn check_step(conn: &Connection, step: &str, tolerance: f64) -> f64 {
    let expected = expected();
    let calls = &expected.rows[step];
    assert!(!calls.is_empty(), "no recorded rows for step {step}");
    let mut worst: f64 = 0.0;
    let mut identical = true;
    for (call, want) in calls {
        let got = ranked(conn, &format!("SELECT * FROM {call}"));
        assert_well_ranked(&got);
        let gap = score_gap(&format!("{step} {call}"), &got, want);
        assert!(
            gap <= tolerance,
            "{step} {call}: scores differ from 484ea6d's by {gap:e} relative (> {tolerance:e})\n got {got:?}\nwant {want:?}"
        );
        identical &= got
            .iter()
            .zip(want)
            .all(|(g, w)| g.1.to_bits() == w.1.to_bits());
        worst = worst.max(gap);
    }
    eprintln!(
        "step {step}: {} calls, items and ranks as recorded, scores {} (largest relative difference {worst:e})",
        calls.len(),
        if identical { "bit-identical" } else { "within tolerance" }
    );
    worst
}

/// The largest relative score difference of `step`'s calls; infinite where the items
/// or ranks differ. For the controls, which must miss the recording.
fn gap_of_step(conn: &Connection, step: &str) -> f64 {
    let expected = expected();
    expected.rows[step]
        .iter()
        .map(|(call, want)| {
            let got = ranked(conn, &format!("SELECT * FROM {call}"));
            let same_items = got
                .iter()
                .map(|r| (r.0, r.2))
                .eq(want.iter().map(|r| (r.0, r.2)));
            if same_items {
                score_gap(call, &got, want)
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
}

fn config_value(conn: &Connection, key: &str) -> Option<String> {
    let found = rows(
        conn,
        &format!("SELECT CAST(value AS TEXT) FROM feed_config WHERE key = '{key}'"),
    );
    found.first().map(|r| match &r[0] {
        rusqlite::types::Value::Text(t) => t.clone(),
        other => panic!("feed_config {key}: {other:?}"),
    })
}

fn debug_format(conn: &Connection) -> String {
    let debug = text(conn, "SELECT foryou_debug()");
    debug
        .lines()
        .find_map(|l| l.strip_prefix("format: "))
        .unwrap_or_else(|| panic!("foryou_debug() has no format line: {debug:?}"))
        .to_string()
}

/// Runs the steps of `format1-record.sql` up to the refit: the INSERT, then a refit.
fn insert_and_refit(conn: &Connection) -> serde_json::Value {
    conn.execute_batch(INSERT).unwrap();
    refit(conn, "SELECT foryou_refit('feed')")
}

#[test]
fn the_recording_matches_the_test_and_the_fixture_is_small() {
    assert!(
        RECORD_SQL.contains(INSERT),
        "format1-record.sql no longer runs the test's INSERT"
    );
    let expected = expected();
    for step in ["stored", "folded", "refit"] {
        assert!(expected.rows.contains_key(step), "no step {step}");
    }
    // Every score is an f32 widened (the recording kept full precision).
    for calls in expected.rows.values() {
        for (call, ranked) in calls {
            for row in ranked {
                #[allow(clippy::float_cmp)] // exactly an f32, on purpose
                {
                    assert_eq!(f64::from(row.1 as f32), row.1, "{call}: {row:?}");
                }
            }
        }
    }
    let size = std::fs::metadata(FIXTURE).unwrap().len();
    assert!(size < 200 * 1024, "format1.db is {size} bytes");
}

#[test]
fn the_fixture_is_a_format_1_table_without_the_later_options() {
    let (_dir, conn) = fixture_copy("compat-format");
    let stored = rows(
        &conn,
        "SELECT key, CAST(value AS TEXT) FROM feed_config ORDER BY key",
    );
    let stored: Vec<(String, String)> = stored
        .iter()
        .map(|r| match (&r[0], &r[1]) {
            (rusqlite::types::Value::Text(k), rusqlite::types::Value::Text(v)) => {
                (k.clone(), v.clone())
            }
            other => panic!("feed_config row {other:?}"),
        })
        .collect();
    let want: Vec<(String, String)> = STORED_OPTIONS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(stored, want, "feed_config as 484ea6d wrote it");
    assert_eq!(config_value(&conn, "regularization_scaling"), None);
    assert_eq!(config_value(&conn, "tune"), None);
    // The stored model's options predate both too.
    assert!(model_option(&conn, "regularization_scaling").is_null());
    assert!(model_option(&conn, "tune").is_null());
    assert_eq!(model_option(&conn, "regularization"), 0.05);
    let report: serde_json::Value = serde_json::from_str(&text(
        &conn,
        "SELECT value FROM feed_model WHERE key = 'report'",
    ))
    .unwrap();
    assert_eq!(report["version"], 1);
    assert_eq!(report["events"], 640);
    assert_eq!(debug_format(&conn), "1");
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 640);
}

#[test]
fn the_stored_model_serves_the_recorded_feeds() {
    let (_dir, conn) = fixture_copy("compat-stored");
    check_step(&conn, "stored", SERVING_TOLERANCE);
    // Reading it wrote nothing: still the old table.
    assert_eq!(config_value(&conn, "regularization_scaling"), None);
    assert_eq!(config_value(&conn, "tune"), None);
    assert_eq!(debug_format(&conn), "1");
}

#[test]
fn new_events_fold_in_with_the_old_unscaled_regularization() {
    let (_dir, conn) = fixture_copy("compat-folded");
    let before = ranked(&conn, "SELECT * FROM recommend(1000, 5)");
    conn.execute_batch(INSERT).unwrap();
    let after = ranked(&conn, "SELECT * FROM recommend(1000, 5)");
    assert_ne!(
        items(&before),
        items(&after),
        "user 1000 still gets popularity"
    );
    // Just-watched videos are left out of the feed at once.
    assert!(!items(&ranked(&conn, "SELECT * FROM recommend(3, 48)")).contains(&47));
    check_step(&conn, "folded", SERVING_TOLERANCE);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 643);

    // Control: the same model read as count-scaled (the default of a model stored
    // today) folds in visibly differently, so the check above tells the two apart.
    let (_dir2, control) = fixture_copy("compat-folded-control");
    control
        .execute_batch(
            "UPDATE feed_model SET value = json_set(value, '$.regularization_scaling', 'count') WHERE key = 'options'",
        )
        .unwrap();
    control.execute_batch(INSERT).unwrap();
    let gap = gap_of_step(&control, "folded");
    eprintln!("control: count-scaled fold-in misses the recording by {gap:e}");
    assert!(
        gap > 100.0 * SERVING_TOLERANCE,
        "count-scaled fold-in is within {gap:e} of the unscaled recording: the check cannot tell them apart"
    );
}

#[test]
fn a_refit_of_the_old_table_is_untuned_and_unscaled() {
    let (_dir, conn) = fixture_copy("compat-refit");
    let report = insert_and_refit(&conn);
    let object = report.as_object().expect("report object");
    // No tuning: a table with tune on would report "tuned", or "tune_skipped" with these
    // 65 users (checked below).
    assert!(!object.contains_key("tuned"), "{report}");
    assert!(!object.contains_key("tune_skipped"), "{report}");
    let expected = expected();
    for (key, want) in &expected.report {
        let got = &report[key];
        match key.as_str() {
            "loss" => {
                let want: f64 = want.parse().unwrap();
                let got = got.as_f64().unwrap();
                assert!(
                    ((got - want) / want).abs() <= REFIT_TOLERANCE,
                    "loss {got} vs 484ea6d's {want}"
                );
            }
            "mode" => assert_eq!(got.as_str(), Some(want.as_str()), "report {key}"),
            _ => assert_eq!(
                got.as_i64(),
                Some(want.parse::<i64>().unwrap()),
                "report {key}: {report}"
            ),
        }
    }
    // The model it stored says what it used: the old meaning, spelt out.
    assert_eq!(model_option(&conn, "regularization_scaling"), "none");
    assert_eq!(model_option(&conn, "tune"), false);
    assert_eq!(model_option(&conn, "regularization"), 0.05);
    assert_eq!(model_option(&conn, "factors"), 8);
    check_step(&conn, "refit", REFIT_TOLERANCE);
    // The table is still the old one: nothing added to its config, same format.
    assert_eq!(config_value(&conn, "regularization_scaling"), None);
    assert_eq!(config_value(&conn, "tune"), None);
    assert_eq!(config_value(&conn, "format_version").as_deref(), Some("1"));
    assert_eq!(debug_format(&conn), "1");
    // And it keeps working: an incremental refit and one more fold-in.
    let again = refit(
        &conn,
        r#"SELECT foryou_refit('feed', '{"mode": "incremental"}')"#,
    );
    assert_eq!(again["mode"], "incremental", "{again}");
    assert_eq!(again["version"], 3, "{again}");
    conn.execute_batch(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (2000, 3, 20, 20, 1700020000)",
    )
    .unwrap();
    assert_well_ranked(&ranked(&conn, "SELECT * FROM recommend(2000, 5)"));
}

#[test]
fn the_refit_checks_would_catch_tuning_or_scaled_regularization() {
    // Control 1: the same old table with tune on reports it (too few users to choose
    // by, here), so a report without either field means tuning was off.
    let (_dir, conn) = fixture_copy("compat-control-tune");
    conn.execute_batch("INSERT INTO feed_config(key, value) VALUES ('tune', 1)")
        .unwrap();
    let report = insert_and_refit(&conn);
    assert!(
        report.get("tuned").is_some() || report.get("tune_skipped").is_some(),
        "{report}"
    );

    // Control 2: with count scaling (today's default) the refit's feeds miss the
    // recording by far more than the tolerance.
    let (_dir2, conn) = fixture_copy("compat-control-scaling");
    conn.execute_batch(
        "INSERT INTO feed_config(key, value) VALUES ('regularization_scaling', 'count')",
    )
    .unwrap();
    insert_and_refit(&conn);
    let gap = gap_of_step(&conn, "refit");
    eprintln!("control: a count-scaled refit misses the recording by {gap:e}");
    assert!(
        gap > 10.0 * REFIT_TOLERANCE,
        "a count-scaled refit is within {gap:e} of the unscaled recording: the check cannot tell them apart"
    );
}

#[test]
fn a_table_made_by_a_newer_foryou_says_so() {
    // A newer build stores options this one does not know (as a table with
    // `exclude_items` looked to the builds before it): every use names the option and why.
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 2);
         INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (1, 1, 10, 10);
         INSERT INTO feed_config(key, value) VALUES ('from_the_future', 1);",
    )
    .unwrap();
    let want = format!(
        "foryou: the table stores option 'from_the_future', which this build of foryou ({}) does not know (a newer foryou made the table, or its config is damaged)",
        conn.query_row("SELECT foryou_version()", [], |r| r.get::<_, String>(0)).unwrap()
    );
    for sql in ["SELECT * FROM recommend(1, 3)", "SELECT foryou_refit()"] {
        assert_eq!(error_of(&conn, sql), want, "{sql}");
    }
}
