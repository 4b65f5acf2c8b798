//! External content (`content = '...'`): a model over the app's own events table, read
//! in place through a view that maps its names and units. The same events give the same
//! model and feed as foryou's own table; fresh plays fold in at the next call without
//! triggers; invalid rows are skipped and counted; a missing index, a dropped or renamed
//! content, writes through the table and loops are clear errors.

// Test data: counts and ids far inside i64.
#![allow(clippy::cast_possible_wrap)]

mod common;

use common::*;
use rusqlite::Connection;

/// The app's table, with its own names and units (milliseconds, text times), and the
/// index serving needs; [`VIEW`] maps them.
const APP_SCHEMA: &str = "
    CREATE TABLE plays(id INTEGER PRIMARY KEY, user_id INTEGER, video_id INTEGER,
                       ms_watched INTEGER, video_ms INTEGER, played_at TEXT);
    CREATE INDEX plays_user ON plays(user_id);
    CREATE VIEW play_events AS
        SELECT id, user_id, video_id AS item_id, ms_watched / 1000.0 AS watch_time,
               video_ms / 1000.0 AS duration, unixepoch(played_at) AS ts
        FROM plays;";

/// The view of [`APP_SCHEMA`] over a table named `plays`.
fn view_over(plays: &str) -> String {
    let view = &APP_SCHEMA[APP_SCHEMA.find("CREATE VIEW").unwrap()..];
    view.replace("FROM plays", &format!("FROM {plays}"))
}

/// 3,000 plays of 50 users on 120 videos, with taste structure and skips.
const PLAYS: &str = "
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 2999)
    INSERT INTO plays(user_id, video_id, ms_watched, video_ms, played_at)
    SELECT i % 50, ((i % 50) * 29 + (i / 50) * 11) % 120, 500 + (i * 7919) % 15000, 15000,
           datetime(1700000000 + i * 60, 'unixepoch')
    FROM n;";

const OPTIONS: &str = "factors = 8, iterations = 5, seed = 7";

/// A database with the app's plays, a content model `feed` over them and, for
/// comparison, a model `own` holding a copy of the same events in foryou's own table.
fn app(extra: &str) -> Connection {
    let conn = memory();
    conn.execute_batch(APP_SCHEMA).unwrap();
    conn.execute_batch(PLAYS).unwrap();
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE feed USING foryou(content = 'play_events', content_rowid = 'id', {OPTIONS}{extra});
         CREATE VIRTUAL TABLE own USING foryou({OPTIONS}{extra});
         INSERT INTO own(rowid, user_id, item_id, watch_time, duration, ts)
             SELECT id, user_id, item_id, watch_time, duration, ts FROM play_events;"
    ))
    .unwrap();
    conn
}

fn feed_of(conn: &Connection, model: &str, user: i64, k: usize) -> Vec<(i64, f64, i64)> {
    ranked(
        conn,
        &format!("SELECT item_id, score, rank FROM recommend({user}, {k}, '{model}')"),
    )
}

/// Every user's feed from both models, asserted bit-identical.
fn assert_same_feeds(conn: &Connection) {
    for user in [0, 7, 23, 49, 999] {
        let content = feed_of(conn, "feed", user, 15);
        assert_eq!(content.len(), 15);
        assert_eq!(content, feed_of(conn, "own", user, 15), "user {user}");
    }
}

fn add_play(conn: &Connection, user: i64, video: i64, ms: i64) -> i64 {
    conn.execute(
        "INSERT INTO plays(user_id, video_id, ms_watched, video_ms, played_at) \
         VALUES (?1, ?2, ?3, 15000, datetime(1800000000, 'unixepoch'))",
        (user, video, ms),
    )
    .unwrap();
    conn.last_insert_rowid()
}

#[test]
fn the_same_events_through_a_view_give_the_same_model_as_the_own_table() {
    let conn = app("");
    // Before any refit both serve popularity.
    assert_same_feeds(&conn);
    let content = refit(&conn, "SELECT foryou_refit('feed')");
    let own = refit(&conn, "SELECT foryou_refit('own')");
    for key in ["events", "users", "items", "pairs", "skipped_pairs", "loss"] {
        assert_eq!(content[key], own[key], "{key}: {content} vs {own}");
    }
    assert_eq!(content["events"], 3000);
    assert_eq!(content["invalid_rows"], 0);
    assert_eq!(
        factor_blobs(&conn, "feed", "items"),
        factor_blobs(&conn, "own", "items")
    );
    assert_eq!(
        factor_blobs(&conn, "feed", "users"),
        factor_blobs(&conn, "own", "users")
    );
    assert_same_feeds(&conn);
    let similar = |model: &str| {
        ranked(
            &conn,
            &format!("SELECT item_id, score, rank FROM similar_items(5, 10, '{model}')"),
        )
    };
    assert_eq!(similar("feed"), similar("own"));
    // The model holds no copy of the events.
    let tables = rows(
        &conn,
        "SELECT name FROM sqlite_master WHERE name LIKE 'feed%' AND type = 'table' ORDER BY name",
    );
    let names: Vec<String> = tables
        .iter()
        .map(|r| match &r[0] {
            rusqlite::types::Value::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "feed",
            "feed_config",
            "feed_items",
            "feed_model",
            "feed_users"
        ]
    );
    // Reading the table reads the content, with foryou's names and units.
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 3000);
    assert_eq!(
        rows(
            &conn,
            "SELECT rowid, * FROM feed WHERE user_id = 7 ORDER BY rowid LIMIT 3"
        ),
        rows(
            &conn,
            "SELECT rowid, * FROM own WHERE user_id = 7 ORDER BY rowid LIMIT 3"
        )
    );
    assert_eq!(
        rows(&conn, "SELECT * FROM feed WHERE rowid = 42"),
        rows(&conn, "SELECT * FROM own WHERE rowid = 42")
    );
}

#[test]
fn a_fresh_play_folds_in_at_the_next_call_without_triggers() {
    let conn = app("");
    refit(&conn, "SELECT foryou_refit('feed')");
    refit(&conn, "SELECT foryou_refit('own')");
    let before = feed_of(&conn, "feed", 7, 10);
    // The user fully watches the top item twice over, in the app's table only.
    let top = before[0].0;
    let id = add_play(&conn, 7, top, 30000);
    let after = feed_of(&conn, "feed", 7, 10);
    assert_ne!(after, before, "the fresh play changed nothing");
    assert!(
        !items(&after).contains(&top),
        "the watched item is still offered"
    );
    // Exactly what the own table gives after the same event.
    conn.execute(
        "INSERT INTO own(rowid, user_id, item_id, watch_time, duration, ts) \
         SELECT id, user_id, item_id, watch_time, duration, ts FROM play_events WHERE id = ?1",
        [id],
    )
    .unwrap();
    assert_eq!(after, feed_of(&conn, "own", 7, 10));
    // A delete in the app's table is seen at once too: the item comes back.
    conn.execute("DELETE FROM plays WHERE id = ?1", [id])
        .unwrap();
    assert_eq!(feed_of(&conn, "feed", 7, 10), before);
}

#[test]
fn an_update_of_a_play_is_seen_at_the_next_refit() {
    let conn = app("");
    refit(&conn, "SELECT foryou_refit('feed')");
    let before = feed_of(&conn, "feed", 3, 10);
    conn.execute_batch("UPDATE plays SET ms_watched = 15000 WHERE user_id = 3")
        .unwrap();
    // Same (id, item) pairs: the stored vector still serves until a refit.
    assert_eq!(feed_of(&conn, "feed", 3, 10), before);
    refit(&conn, "SELECT foryou_refit('feed')");
    assert_ne!(feed_of(&conn, "feed", 3, 10), before);
}

#[test]
fn auto_refit_counts_new_content_rows_and_refits_at_a_serving_call() {
    let conn = app(", auto_refit = 40");
    let version = |conn: &Connection| {
        int(
            conn,
            "SELECT coalesce((SELECT value FROM feed_model WHERE key = 'version'), 0)",
        )
    };
    // 3,000 rows and no model: the first call refits.
    assert_eq!(version(&conn), 0);
    feed_of(&conn, "feed", 1, 5);
    assert_eq!(version(&conn), 1);
    assert_eq!(
        int(
            &conn,
            "SELECT value FROM feed_model WHERE key = 'events_upto'"
        ),
        3000
    );
    for i in 0..39 {
        add_play(&conn, i % 50, i, 9000);
    }
    feed_of(&conn, "feed", 1, 5);
    assert_eq!(version(&conn), 1, "39 new rows are fewer than auto_refit");
    add_play(&conn, 3, 3, 9000);
    feed_of(&conn, "feed", 1, 5);
    assert_eq!(version(&conn), 2, "the 40th new row did not refit");
    assert_eq!(
        int(
            &conn,
            "SELECT value FROM feed_model WHERE key = 'events_upto'"
        ),
        3040
    );
    // A read-only connection serves the model it has and does not fail.
    let dir = TempDir::new("content-ro");
    let path = dir.join("app.db");
    conn.execute("VACUUM INTO ?1", [path.to_str().unwrap()])
        .unwrap();
    let writer = open(&path);
    for i in 0..40 {
        add_play(&writer, i % 50, (i * 3) % 120, 12000);
    }
    drop(writer);
    let reader =
        Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    load(&reader).unwrap();
    assert_eq!(feed_of(&reader, "feed", 1, 5).len(), 5);
    assert_eq!(version(&reader), 2);
}

#[test]
fn a_missing_user_index_is_an_error_that_gives_the_index_to_create() {
    let conn = memory();
    conn.execute_batch(APP_SCHEMA).unwrap();
    conn.execute_batch(PLAYS).unwrap();
    conn.execute_batch("DROP INDEX plays_user").unwrap();
    let e = error_of(
        &conn,
        "CREATE VIRTUAL TABLE feed USING foryou(content = 'play_events', content_rowid = 'id')",
    );
    assert_eq!(
        e,
        "foryou: feed: reading one user's events from content 'play_events' scans a whole \
         table (SCAN plays); every recommend() would read all of it: create an index on its \
         user column, as in CREATE INDEX \"plays_user_id\" ON \"plays\"(user_id)"
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'feed%'"
        ),
        0
    );
    // With the index the table is made; dropping it later fails the serving calls.
    conn.execute_batch(
        "CREATE INDEX plays_user_id ON plays(user_id);
         CREATE VIRTUAL TABLE feed USING foryou(content = 'play_events', content_rowid = 'id', factors = 4);
         SELECT foryou_refit('feed');",
    )
    .unwrap();
    assert_eq!(feed_of(&conn, "feed", 2, 3).len(), 3);
    conn.execute_batch("DROP INDEX plays_user_id").unwrap();
    let e = error_of(&conn, "SELECT * FROM recommend(2, 3)");
    assert!(e.contains("scans a whole table (SCAN plays)"), "{e}");
    // The content itself, named directly (no view), with its own names.
    conn.execute_batch(
        "CREATE TABLE events(user_id INTEGER, item_id INTEGER, watch_time REAL, duration REAL);",
    )
    .unwrap();
    let e = error_of(
        &conn,
        "CREATE VIRTUAL TABLE f2 USING foryou(content = 'events')",
    );
    assert!(
        e.ends_with("CREATE INDEX \"events_user_id\" ON \"events\"(user_id)"),
        "{e}"
    );
}

#[test]
fn invalid_content_rows_are_skipped_and_counted() {
    let conn = app("");
    // Kinds of rows the virtual table would refuse on INSERT.
    conn.execute_batch(
        "INSERT INTO plays(id, user_id, video_id, ms_watched, video_ms, played_at) VALUES
            (5001, NULL, 3, 1000, 15000, NULL),
            (5002, 4, 'abc', 1000, 15000, NULL),
            (5003, 4, 3, -5, 15000, NULL),
            (5004, 4, 3, 1000, 0, NULL),
            (5005, 4, 3, 9e999, 15000, NULL),
            (5006, 4, 3, 1000, NULL, NULL);",
    )
    .unwrap();
    let report = refit(&conn, "SELECT foryou_refit('feed')");
    assert_eq!(report["events"], 3000, "{report}");
    assert_eq!(report["invalid_rows"], 6, "{report}");
    assert_eq!(
        report["first_invalid_row"],
        "row 5001: user_id is NULL (expected an INTEGER)"
    );
    // The same model as the own table, which never had those rows.
    refit(&conn, "SELECT foryou_refit('own')");
    assert_eq!(
        factor_blobs(&conn, "feed", "items"),
        factor_blobs(&conn, "own", "items")
    );
    assert_same_feeds(&conn);
    // User 4 did play video 3 (rows 5003-5006, with ids that are integers): it is
    // watched, left out of their feed, though its times teach the model nothing.
    assert!(!items(&feed_of(&conn, "feed", 4, 120)).contains(&3));
    assert!(items(&feed_of(&conn, "own", 4, 120)).contains(&3));
    // SELECT through the table shows the events, not the invalid rows.
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 3000);
    assert_eq!(
        int(&conn, "SELECT count(*) FROM feed WHERE user_id = 4"),
        60
    );
    // A content of invalid rows only is a refit error that names the first.
    conn.execute_batch(
        "CREATE TABLE bad(user_id TEXT, item_id, watch_time, duration);
         CREATE INDEX bad_user ON bad(user_id);
         INSERT INTO bad VALUES ('u1', 1, 3, 10);
         CREATE VIRTUAL TABLE f3 USING foryou(content = 'bad');",
    )
    .unwrap();
    assert_eq!(
        error_of(&conn, "SELECT foryou_refit('f3')"),
        "foryou_refit: content 'bad' of f3 has 1 rows and none is a watch event (row 1: \
         user_id is the TEXT 'u1' (expected an INTEGER)); ids must be INTEGERs and times \
         numbers: CAST them in a view"
    );
}

#[test]
fn writes_through_a_content_table_are_refused() {
    let conn = app("");
    for (sql, verb) in [
        ("INSERT INTO feed VALUES (1, 2, 3.0, 4.0, 5)", "insert"),
        ("UPDATE feed SET watch_time = 1 WHERE rowid = 1", "update"),
        ("DELETE FROM feed WHERE rowid = 1", "delete"),
    ] {
        assert_eq!(
            error_of(&conn, sql),
            format!(
                "foryou: feed reads its events in place from content 'play_events' and cannot \
                 {verb} events; {verb} rows of the app's table (play_events, or the table it \
                 is a view of) instead"
            )
        );
    }
    assert_eq!(int(&conn, "SELECT count(*) FROM plays"), 3000);
}

#[test]
fn a_dropped_or_renamed_content_is_a_clear_error_and_dropping_the_model_keeps_it() {
    let conn = app("");
    refit(&conn, "SELECT foryou_refit('feed')");
    conn.execute_batch("ALTER TABLE plays RENAME TO plays_2024")
        .unwrap();
    // The view follows the rename (SQLite rewrites it): still served.
    assert_eq!(feed_of(&conn, "feed", 1, 5).len(), 5);
    conn.execute_batch("DROP VIEW play_events").unwrap();
    let expected = "foryou: feed reads its events from content 'play_events', which cannot be \
                    read (no such table: main.play_events); if it was dropped or renamed, create \
                    a table or view named play_events with columns user_id, item_id, \
                    watch_time, duration (and optionally ts) and its event id";
    assert_eq!(
        error_of(&conn, "SELECT * FROM recommend(1, 5, 'feed')"),
        expected
    );
    assert_eq!(error_of(&conn, "SELECT foryou_refit('feed')"), expected);
    assert_eq!(error_of(&conn, "SELECT * FROM feed"), expected);
    // Recreated, it serves again.
    conn.execute_batch(&view_over("plays_2024")).unwrap();
    assert_eq!(feed_of(&conn, "feed", 1, 5).len(), 5);
    // DROP TABLE of the model leaves the app's table.
    conn.execute_batch("DROP TABLE feed").unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM plays_2024"), 3000);
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'feed%'"
        ),
        0
    );
    // A dropped content does not keep DROP TABLE of the model from working.
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(content = 'play_events', content_rowid = 'id');
         DROP VIEW play_events;
         DROP TABLE feed;",
    )
    .unwrap();
}

#[test]
fn renaming_the_model_keeps_its_content() {
    let conn = app("");
    refit(&conn, "SELECT foryou_refit('feed')");
    let before = feed_of(&conn, "feed", 9, 8);
    conn.execute_batch("ALTER TABLE feed RENAME TO feed2")
        .unwrap();
    assert_eq!(feed_of(&conn, "feed2", 9, 8), before);
    add_play(&conn, 9, before[0].0, 15000);
    assert!(!items(&feed_of(&conn, "feed2", 9, 8)).contains(&before[0].0));
}

#[test]
fn the_content_needs_its_columns_and_a_view_needs_its_id_column() {
    let conn = memory();
    conn.execute_batch(APP_SCHEMA).unwrap();
    assert_eq!(
        error_of(
            &conn,
            "CREATE VIRTUAL TABLE f USING foryou(content = 'play_events')"
        ),
        "foryou: content 'play_events' of f has no column rowid; it needs user_id, item_id, \
         watch_time, duration (and optionally ts), and the event id column named by \
         content_rowid (default rowid; a view has none: name its id column, as in \
         content_rowid = 'id')"
    );
    let e = error_of(
        &conn,
        "CREATE VIRTUAL TABLE f USING foryou(content = 'plays')",
    );
    assert!(
        e.contains("has no column item_id, watch_time, duration;"),
        "{e}"
    );
    // A view without ts: undated events; recency needs times.
    conn.execute_batch(
        "CREATE VIEW undated AS SELECT id, user_id, video_id AS item_id, \
         ms_watched / 1000.0 AS watch_time, video_ms / 1000.0 AS duration FROM plays",
    )
    .unwrap();
    assert_eq!(
        error_of(
            &conn,
            "CREATE VIRTUAL TABLE f USING foryou(content = 'undated', content_rowid = 'id', half_life_days = 7)"
        ),
        "foryou: f: option half_life_days needs event times, but content 'undated' has no ts \
         column; add one to it (as in unixepoch(played_at) AS ts)"
    );
    conn.execute_batch(
        "CREATE VIRTUAL TABLE f USING foryou(content = 'undated', content_rowid = 'id', factors = 4);",
    )
    .unwrap();
    conn.execute_batch(PLAYS).unwrap();
    let e = error_of(&conn, "SELECT foryou_refit('f', '{\"half_life_days\": 3}')");
    assert!(e.contains("needs event times"), "{e}");
    assert_eq!(refit(&conn, "SELECT foryou_refit('f')")["events"], 3000);
    assert_eq!(int(&conn, "SELECT max(ts) FROM f"), 0);
}

#[test]
fn a_content_that_reads_foryou_is_refused_and_a_loop_never_crashes() {
    let conn = app("");
    conn.execute_batch("CREATE VIEW over_own AS SELECT rowid AS id, * FROM own")
        .unwrap();
    let e = error_of(
        &conn,
        "CREATE VIRTUAL TABLE f USING foryou(content = 'over_own', content_rowid = 'id')",
    );
    assert_eq!(
        e,
        "foryou: content 'over_own' of f reads a foryou table or a serving function, which \
         read the content again; name the app's own table or a view over it"
    );
    // A view redefined afterwards to read the model itself: every use is an error.
    conn.execute_batch(
        "DROP VIEW play_events;
         CREATE VIEW play_events AS SELECT rowid AS id, * FROM feed;",
    )
    .unwrap();
    let e = error_of(&conn, "SELECT * FROM recommend(1, 5, 'feed')");
    assert!(
        e.contains("reads a foryou table or a serving function"),
        "{e}"
    );
    let e = error_of(&conn, "SELECT count(*) FROM feed");
    assert!(
        e.contains("reads a foryou table or a serving function"),
        "{e}"
    );
    let e = error_of(&conn, "SELECT foryou_refit('feed')");
    assert!(
        e.contains("reads a foryou table or a serving function"),
        "{e}"
    );
}

#[test]
fn a_content_model_in_an_attached_database() {
    let dir = TempDir::new("content-attach");
    let path = dir.join("app.db");
    {
        let app_db = Connection::open(&path).unwrap();
        app_db.execute_batch(APP_SCHEMA).unwrap();
        app_db.execute_batch(PLAYS).unwrap();
    }
    let conn = memory();
    conn.execute("ATTACH DATABASE ?1 AS app", [path.to_str().unwrap()])
        .unwrap();
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE app.feed USING foryou(content = 'play_events', content_rowid = 'id', {OPTIONS});
         SELECT foryou_refit('app.feed');"
    ))
    .unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM app.feed"), 3000);
    let before = feed_of(&conn, "app.feed", 4, 6);
    assert_eq!(before.len(), 6);
    conn.execute(
        "INSERT INTO app.plays(user_id, video_id, ms_watched, video_ms) VALUES (4, ?1, 15000, 15000)",
        [before[0].0],
    )
    .unwrap();
    assert!(!items(&feed_of(&conn, "app.feed", 4, 6)).contains(&before[0].0));
    // Reopened directly, the file serves the same model.
    let direct = open(&path);
    assert_eq!(
        feed_of(&direct, "feed", 4, 6),
        feed_of(&conn, "app.feed", 4, 6)
    );
}

/// Values of the wrong kind for some column: text, numeric text, a blob, NULL, negative,
/// zero, infinite, a real, the largest integer.
const ODD: [&str; 10] = [
    "NULL",
    "'seven'",
    "'12'",
    "x'01'",
    "-3",
    "0",
    "9e999",
    "-9e999",
    "2.5",
    "9223372036854775807",
];

/// The documented rule of what a content row must hold to be an event, stated in SQL
/// apart from the extension's own statement of it.
const EVENT_RULE: &str = "typeof(id) = 'integer' AND typeof(user_id) = 'integer' \
     AND typeof(item_id) = 'integer' \
     AND typeof(watch_time) IN ('integer', 'real') AND watch_time >= 0 AND watch_time < 1e999 \
     AND typeof(duration) IN ('integer', 'real') AND duration > 0 AND duration < 1e999 \
     AND typeof(ts) IN ('integer', 'null')";

#[test]
fn content_rows_of_any_type_are_events_or_counted_and_never_a_crash() {
    let conn = memory();
    // Columns without declared types keep each value as it was written.
    conn.execute_batch(
        "CREATE TABLE raw(id INTEGER PRIMARY KEY, user_id, item_id, watch_time, duration, ts);
         CREATE INDEX raw_user ON raw(user_id, item_id);
         CREATE VIRTUAL TABLE feed USING foryou(content = 'raw', content_rowid = 'id', factors = 4, tune = false);",
    )
    .unwrap();
    // A fixed pseudo-random mix: most values of the right kind, one in eight from ODD.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let mut values = Vec::new();
    for row in 0..3000 {
        let good = [
            next(40).to_string(),
            next(60).to_string(),
            (next(300) as f64 / 10.0).to_string(),
            (5 + next(25)).to_string(),
            (1_700_000_000 + row).to_string(),
        ];
        let [user, item, watch, duration, ts] = good.map(|good| {
            if next(8) == 0 {
                ODD[usize::try_from(next(ODD.len() as u64)).unwrap()].to_string()
            } else {
                good
            }
        });
        values.push(format!("({user}, {item}, {watch}, {duration}, {ts})"));
    }
    conn.execute_batch(&format!(
        "INSERT INTO raw(user_id, item_id, watch_time, duration, ts) VALUES {};",
        values.join(", ")
    ))
    .unwrap();
    let events = int(
        &conn,
        &format!("SELECT count(*) FROM raw WHERE {EVENT_RULE}"),
    );
    assert!(
        (1000..3000).contains(&events),
        "{events} events of 3000 rows"
    );
    let report = refit(&conn, "SELECT foryou_refit('feed')");
    assert_eq!(report["events"], events, "{report}");
    assert_eq!(report["invalid_rows"], 3000 - events, "{report}");
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), events);
    // Every user serves, stored or folded in after odd rows arrive; no error, no crash.
    conn.execute_batch(&format!(
        "INSERT INTO raw(user_id, item_id, watch_time, duration, ts) VALUES {};",
        ODD.iter()
            .map(|odd| format!("(3, {odd}, {odd}, {odd}, {odd}), (3, 7, 10, 10, {odd})"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .unwrap();
    for user in 0..40 {
        let feed = feed_of(&conn, "feed", user, 10);
        assert!(feed.len() <= 10);
        assert_well_ranked(&feed);
    }
    let report = refit(&conn, "SELECT foryou_refit('feed')");
    let events = int(
        &conn,
        &format!("SELECT count(*) FROM raw WHERE {EVENT_RULE}"),
    );
    let rows = int(&conn, "SELECT count(*) FROM raw");
    assert_eq!(report["events"], events, "{report}");
    assert_eq!(report["invalid_rows"], rows - events, "{report}");
}
