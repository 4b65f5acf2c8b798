//! The `foryou` virtual table: events in and out, shadow tables, DROP, RENAME, option
//! and value validation, statement atomicity, persistence.

// Test data: counts, ids, ranks and timestamps far inside every integer type they are cast to.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod common;

use common::*;
use rusqlite::types::Value;
use rusqlite::Connection;

type Row = (i64, i64, i64, f64, f64, i64);

fn events(conn: &Connection, sql: &str) -> Vec<Row> {
    let mut stmt = conn
        .prepare(sql)
        .unwrap_or_else(|e| panic!("{sql}: {}", message(&e)));
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<Row>>>());
    rows.unwrap_or_else(|e| panic!("{sql}: {}", message(&e)))
}

fn all_events(conn: &Connection) -> Vec<Row> {
    events(
        conn,
        "SELECT rowid, user_id, item_id, watch_time, duration, ts FROM feed",
    )
}

fn schema(conn: &Connection) -> Vec<(String, String, String, Option<String>)> {
    let mut stmt = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// The exact schema entries of a `foryou` table named `t` created by `create`.
fn expected_schema(t: &str, create: &str) -> Vec<(String, String, String, Option<String>)> {
    let table = |name: String, sql: String| ("table".to_string(), name.clone(), name, Some(sql));
    vec![
        table(t.to_string(), create.to_string()),
        table(format!("{t}_config"), format!("CREATE TABLE \"{t}_config\"(key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID")),
        table(
            format!("{t}_events"),
            format!(
                "CREATE TABLE \"{t}_events\"(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, item_id INTEGER NOT NULL, \
                 watch_time REAL NOT NULL, duration REAL NOT NULL, ts INTEGER NOT NULL, UNIQUE(user_id, item_id, id))"
            ),
        ),
        ("index".to_string(), format!("sqlite_autoindex_{t}_events_1"), format!("{t}_events"), None),
        table(format!("{t}_model"), format!("CREATE TABLE \"{t}_model\"(key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID")),
        table(
            format!("{t}_users"),
            format!("CREATE TABLE \"{t}_users\"(chunk INTEGER PRIMARY KEY, ids BLOB NOT NULL, factors BLOB NOT NULL)"),
        ),
        table(
            format!("{t}_items"),
            format!(
                "CREATE TABLE \"{t}_items\"(chunk INTEGER PRIMARY KEY, ids BLOB NOT NULL, factors BLOB NOT NULL, popularity BLOB NOT NULL)"
            ),
        ),
    ]
}

#[test]
#[allow(clippy::too_many_lines)] // one scenario, checked step by step in order
fn insert_select_update_delete_round_trip() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 4)")
        .unwrap();
    let n = conn
        .execute(
            "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES \
             (1, 10, 5, 10, 100), (1, 11, 2.5, 10, 101), (2, 10, 10, 10, 102)",
            [],
        )
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        all_events(&conn),
        vec![
            (1, 1, 10, 5.0, 10.0, 100),
            (2, 1, 11, 2.5, 10.0, 101),
            (3, 2, 10, 10.0, 10.0, 102)
        ]
    );
    // Declared column types: integers stay integers, watch_time/duration are REAL.
    assert_eq!(
        rows(&conn, "SELECT typeof(rowid), typeof(user_id), typeof(item_id), typeof(watch_time), typeof(duration), typeof(ts) FROM feed WHERE rowid = 1"),
        vec![["integer", "integer", "integer", "real", "real", "integer"].map(|t| Value::Text(t.into())).to_vec()]
    );
    // Single insert: last_insert_rowid is the new event id.
    conn.execute(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (3, 12, 1, 2, 103)",
        [],
    )
    .unwrap();
    assert_eq!(conn.last_insert_rowid(), 4);

    // Point lookups: by rowid, by user (index path), by another column (full scan).
    assert_eq!(
        events(
            &conn,
            "SELECT rowid, user_id, item_id, watch_time, duration, ts FROM feed WHERE rowid = 2"
        ),
        vec![(2, 1, 11, 2.5, 10.0, 101)]
    );
    assert_eq!(
        events(
            &conn,
            "SELECT rowid, user_id, item_id, watch_time, duration, ts FROM feed WHERE rowid = 99"
        ),
        vec![]
    );
    let by_user = events(
        &conn,
        "SELECT rowid, user_id, item_id, watch_time, duration, ts FROM feed WHERE user_id = 1",
    );
    assert_eq!(by_user.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2]);
    let by_item = events(
        &conn,
        "SELECT rowid, user_id, item_id, watch_time, duration, ts FROM feed WHERE item_id = 10",
    );
    assert_eq!(by_item.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM feed WHERE user_id = 2 AND rowid = 3"
        ),
        1
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM feed WHERE user_id = 1 AND rowid = 3"
        ),
        0
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM feed WHERE user_id = 1 OR item_id = 12"
        ),
        3
    );

    // UPDATE one column of one row.
    assert_eq!(
        conn.execute("UPDATE feed SET watch_time = 9 WHERE rowid = 2", [])
            .unwrap(),
        1
    );
    assert_eq!(
        events(
            &conn,
            "SELECT rowid, user_id, item_id, watch_time, duration, ts FROM feed WHERE rowid = 2"
        ),
        vec![(2, 1, 11, 9.0, 10.0, 101)]
    );
    // UPDATE the indexed column of several rows.
    assert_eq!(
        conn.execute("UPDATE feed SET user_id = 5 WHERE user_id = 1", [])
            .unwrap(),
        2
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM feed WHERE user_id = 1"), 0);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed WHERE user_id = 5"), 2);
    // UPDATE the rowid itself.
    assert_eq!(
        conn.execute("UPDATE feed SET rowid = 50 WHERE rowid = 3", [])
            .unwrap(),
        1
    );
    assert_eq!(
        all_events(&conn),
        vec![
            (1, 5, 10, 5.0, 10.0, 100),
            (2, 5, 11, 9.0, 10.0, 101),
            (4, 3, 12, 1.0, 2.0, 103),
            (50, 2, 10, 10.0, 10.0, 102)
        ]
    );
    // UPDATE of nothing.
    assert_eq!(
        conn.execute("UPDATE feed SET watch_time = 1 WHERE rowid = 999", [])
            .unwrap(),
        0
    );

    // DELETE by rowid and by another column.
    assert_eq!(
        conn.execute("DELETE FROM feed WHERE rowid = 1", [])
            .unwrap(),
        1
    );
    assert_eq!(
        conn.execute("DELETE FROM feed WHERE item_id = 10", [])
            .unwrap(),
        1
    );
    assert_eq!(
        all_events(&conn),
        vec![(2, 5, 11, 9.0, 10.0, 101), (4, 3, 12, 1.0, 2.0, 103)]
    );
    assert_eq!(conn.execute("DELETE FROM feed", []).unwrap(), 2);
    assert_eq!(all_events(&conn), vec![]);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed_events"), 0);
}

#[test]
fn omitted_ts_is_the_insert_time() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou")
        .unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let before = now();
    conn.execute(
        "INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (1, 2, 3, 4)",
        [],
    )
    .unwrap();
    let after = now();
    let ts = int(&conn, "SELECT ts FROM feed");
    assert!(
        before <= ts && ts <= after,
        "ts {ts} not within [{before}, {after}]"
    );
}

#[test]
fn scans_larger_than_a_page_see_every_row() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou")
        .unwrap();
    let n = conn
        .execute(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 5000) \
             INSERT INTO feed(user_id, item_id, watch_time, duration, ts) SELECT i % 7, i, i % 13, 15, i FROM s",
            [],
        )
        .unwrap();
    assert_eq!(n, 5000);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 5000);
    assert_eq!(int(&conn, "SELECT sum(item_id) FROM feed"), 5000 * 5001 / 2);
    // Rows come back in rowid order, each exactly once.
    let ids: Vec<i64> = rows(&conn, "SELECT rowid FROM feed")
        .into_iter()
        .map(|r| match r[0] {
            Value::Integer(i) => i,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, (1..=5000).collect::<Vec<_>>());
    assert_eq!(
        int(&conn, "SELECT count(*) FROM feed WHERE user_id = 3"),
        (1..=5000).filter(|i| i % 7 == 3).count() as i64
    );
    assert_eq!(
        int(&conn, "SELECT max(rowid) FROM feed WHERE user_id = 3"),
        (1..=5000).filter(|i| i % 7 == 3).max().unwrap()
    );
    // ORDER BY rowid DESC is honoured even though scans run ascending.
    assert_eq!(
        int(&conn, "SELECT rowid FROM feed ORDER BY rowid DESC LIMIT 1"),
        5000
    );
    // A DELETE touching many rows across pages.
    assert_eq!(
        conn.execute("DELETE FROM feed WHERE user_id IN (0, 2, 4, 6)", [])
            .unwrap(),
        (1..=5000).filter(|i| i % 7 % 2 == 0).count()
    );
    assert_eq!(
        int(&conn, "SELECT count(*) FROM feed"),
        (1..=5000).filter(|i| i % 7 % 2 == 1).count() as i64
    );
    assert_eq!(
        int(&conn, "SELECT count(*) FROM feed WHERE user_id % 2 = 0"),
        0
    );
}

#[test]
fn shadow_tables_have_the_exact_documented_ddl() {
    let conn = memory();
    let create = "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, exclude_watched = false)";
    conn.execute_batch(create).unwrap();
    assert_eq!(schema(&conn), expected_schema("feed", create));
}

#[test]
fn drop_table_removes_everything() {
    let conn = memory();
    conn.execute_batch(
        "CREATE TABLE keep(x);
         CREATE VIRTUAL TABLE feed USING foryou(factors = 2);
         INSERT INTO feed VALUES (1, 1, 1, 1, 1), (2, 2, 1, 1, 1), (2, 1, 1, 1, 1);",
    )
    .unwrap();
    refit(&conn, "SELECT foryou_refit('feed')");
    conn.execute_batch("DROP TABLE feed").unwrap();
    assert_eq!(
        rows(&conn, "SELECT name FROM sqlite_master"),
        vec![vec![Value::Text("keep".into())]],
        "DROP TABLE left shadow objects behind"
    );
    // The name is free again, and the new table starts empty, with no model.
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 2)")
        .unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 0);
    assert_eq!(ranked(&conn, "SELECT * FROM similar_items(1, 5)"), vec![]);
    assert_eq!(ranked(&conn, "SELECT * FROM recommend(1, 5)"), vec![]);
}

/// A `_config` that cannot be read fails every use of the table with the message of
/// what is wrong, but DROP TABLE still removes it, and ALTER TABLE RENAME still renames it
/// (the message then names the new name).
#[test]
fn a_table_with_a_damaged_config_fails_every_use_but_drop_and_rename() {
    let dir = TempDir::new("damaged-config");
    let clean = dir.join("clean.db");
    {
        let conn = open(&clean);
        conn.execute_batch(
            "CREATE TABLE keep(x);
             CREATE VIRTUAL TABLE feed USING foryou(factors = 2, tune = false);
             INSERT INTO feed VALUES (1, 1, 1, 1, 1), (2, 2, 1, 1, 1), (2, 1, 1, 1, 1);",
        )
        .unwrap();
        refit(&conn, "SELECT foryou_refit('feed')");
    }
    let damages = [
        (
            "UPDATE feed_config SET value = 2 WHERE key = 'format_version'",
            "foryou: table {t} has storage format version 2; this build of foryou reads version 1",
        ),
        (
            "DELETE FROM feed_config WHERE key = 'format_version'",
            "foryou: table {t} has no format_version in {t}_config",
        ),
        (
            "INSERT INTO feed_config VALUES ('colour', 'red')",
            "foryou: the table stores option 'colour', which this build of foryou (",
        ),
        (
            "UPDATE feed_config SET value = 'abc' WHERE key = 'factors'",
            "foryou: option factors expects an integer from 1 to 1024, got 'abc'",
        ),
        ("DROP TABLE feed_config", "no such table: main.{t}_config"),
    ];
    let uses = [
        "SELECT * FROM {t}",
        "SELECT count(*) FROM {t} WHERE user_id = 1",
        "INSERT INTO {t} VALUES (3, 3, 1, 1, 1)",
        "UPDATE {t} SET ts = 2",
        "DELETE FROM {t} WHERE rowid = 1",
        "SELECT * FROM recommend(1, 3, '{t}')",
        "SELECT * FROM similar_items(1, 3, '{t}')",
        "SELECT foryou_refit('{t}')",
    ];
    for (n, (damage, expected)) in damages.iter().enumerate() {
        for rename in [false, true] {
            let path = dir.join(&format!("damaged-{n}-{rename}.db"));
            std::fs::copy(&clean, &path).unwrap();
            Connection::open(&path)
                .unwrap()
                .execute_batch(damage)
                .unwrap();
            let conn = open(&path);
            let mut t = "feed";
            if rename {
                conn.execute_batch("ALTER TABLE feed RENAME TO clips")
                    .unwrap_or_else(|e| panic!("{damage}: rename: {}", message(&e)));
                t = "clips";
                assert_eq!(
                    int(
                        &conn,
                        "SELECT count(*) FROM sqlite_master WHERE name LIKE 'feed%'"
                    ),
                    0,
                    "{damage}"
                );
            }
            for sql in uses {
                let sql = sql.replace("{t}", t);
                let got = error_of(&conn, &sql);
                let expected = expected.replace("{t}", t);
                assert!(got.contains(&expected), "{damage}; {sql}: {got}");
            }
            conn.execute_batch(&format!("DROP TABLE {t}"))
                .unwrap_or_else(|e| panic!("{damage}: drop: {}", message(&e)));
            assert_eq!(
                rows(&conn, "SELECT name FROM sqlite_master"),
                vec![vec![Value::Text("keep".into())]],
                "{damage}: DROP TABLE left shadow objects behind"
            );
        }
    }
}

/// A `_config` repaired after a failed use is read again at the next one.
#[test]
fn a_repaired_config_is_read_again() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 2);
         INSERT INTO feed VALUES (1, 1, 1, 1, 1);",
    )
    .unwrap();
    let dir = TempDir::new("repaired-config");
    let path = dir.join("f.db");
    conn.execute("VACUUM INTO ?1", [path.to_str().unwrap()])
        .unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch("UPDATE feed_config SET value = 2 WHERE key = 'format_version'")
        .unwrap();
    let conn = open(&path);
    assert_eq!(
        error_of(&conn, "SELECT count(*) FROM feed"),
        "foryou: table feed has storage format version 2; this build of foryou reads version 1"
    );
    conn.execute_batch("UPDATE feed_config SET value = 1 WHERE key = 'format_version'")
        .unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 1);
    conn.execute_batch("INSERT INTO feed VALUES (2, 2, 1, 1, 1)")
        .unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 2);
}

#[test]
fn drop_table_in_a_rolled_back_transaction_keeps_everything() {
    let conn = memory();
    let create = "CREATE VIRTUAL TABLE feed USING foryou(factors = 2)";
    conn.execute_batch(create).unwrap();
    conn.execute_batch("INSERT INTO feed VALUES (1, 1, 1, 1, 1)")
        .unwrap();
    conn.execute_batch("BEGIN; DROP TABLE feed; ROLLBACK;")
        .unwrap();
    assert_eq!(schema(&conn), expected_schema("feed", create));
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 1);
}

#[test]
fn rename_renames_every_shadow_table_and_the_model_still_serves() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, seed = 1, threads = 1)",
    )
    .unwrap();
    checkerboard(&conn, "feed");
    refit(&conn, "SELECT foryou_refit('feed')");
    let recommended = ranked(&conn, "SELECT * FROM recommend(3, 5)");
    let similar = ranked(&conn, "SELECT * FROM similar_items(12, 5)");
    let item_blobs = factor_blobs(&conn, "feed", "items");
    assert!(!recommended.is_empty() && !similar.is_empty());

    conn.execute_batch("ALTER TABLE feed RENAME TO clips")
        .unwrap();
    assert_eq!(
        schema(&conn),
        expected_schema(
            "clips",
            "CREATE VIRTUAL TABLE \"clips\" USING foryou(factors = 4, seed = 1, threads = 1)"
        )
    );

    // Same model, served under the new name (explicitly and as the only table).
    assert_eq!(
        ranked(&conn, "SELECT * FROM recommend(3, 5, 'clips')"),
        recommended
    );
    assert_eq!(ranked(&conn, "SELECT * FROM recommend(3, 5)"), recommended);
    assert_eq!(
        ranked(&conn, "SELECT * FROM similar_items(12, 5, 'clips')"),
        similar
    );
    assert_eq!(factor_blobs(&conn, "clips", "items"), item_blobs);
    assert_eq!(
        error_of(&conn, "SELECT * FROM recommend(3, 5, 'feed')"),
        "recommend: no foryou table named 'feed' in schema 'main' (foryou tables: clips)"
    );
    // The renamed table keeps working for writes, reads and refits, and its row errors
    // name it by its new name.
    assert_eq!(
        error_of(&conn, "INSERT INTO clips VALUES (3, 19, 15, 0, 1)"),
        "foryou: clips: duration must be a number of seconds > 0, got 0"
    );
    conn.execute_batch("INSERT INTO clips VALUES (3, 19, 15, 15, 1)")
        .unwrap();
    assert_eq!(
        int(&conn, "SELECT count(*) FROM clips WHERE user_id = 3"),
        6
    );
    let report = refit(&conn, "SELECT foryou_refit('clips')");
    assert_eq!(report["model"], "clips");
    assert_eq!(report["version"], 2);
    assert_eq!(report["events"], 101);

    // And it drops cleanly under its new name.
    conn.execute_batch("DROP TABLE clips").unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM sqlite_master"), 0);
}

#[test]
fn rename_survives_reopen() {
    let dir = TempDir::new("rename");
    let path = dir.join("feed.db");
    {
        let conn = open(&path);
        conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 3); INSERT INTO feed VALUES (1, 2, 3, 4, 5);")
            .unwrap();
        conn.execute_batch("ALTER TABLE feed RENAME TO \"odd name\"")
            .unwrap();
    }
    let conn = open(&path);
    assert_eq!(
        events(&conn, "SELECT rowid, * FROM \"odd name\""),
        vec![(1, 1, 2, 3.0, 4.0, 5)]
    );
    let report = refit(&conn, "SELECT foryou_refit('odd name')");
    assert_eq!(report["factors"], 3);
    assert_eq!(report["model"], "odd name");
}

#[test]
fn create_options_are_validated_with_exact_messages() {
    let conn = memory();
    // The list of options the messages name: every documented option, in order.
    let options = create_option_list(&conn).join(", ");
    let cases = [
        ("colour = 'red'", format!("foryou: unrecognized option 'colour' (options: {options})")),
        ("factors = 0", "foryou: option factors expects an integer from 1 to 1024, got '0'".to_string()),
        ("factors = 1025", "foryou: option factors expects an integer from 1 to 1024, got '1025'".to_string()),
        ("factors = 2.5", "foryou: option factors expects an integer from 1 to 1024, got '2.5'".to_string()),
        ("factors = many", "foryou: option factors expects an integer from 1 to 1024, got 'many'".to_string()),
        ("iterations = 0", "foryou: option iterations expects an integer from 1 to 1000, got '0'".to_string()),
        ("regularization = -1", "foryou: option regularization expects a number from 0 to 1000000, got '-1'".to_string()),
        (
            "regularization_scaling = spark",
            "foryou: option regularization_scaling expects one of none, count, sqrt, got 'spark'".to_string(),
        ),
        ("alpha = 0", "foryou: option alpha expects a number > 0 and <= 1000000, got '0'".to_string()),
        ("alpha = nan", "foryou: option alpha expects a number > 0 and <= 1000000, got 'nan'".to_string()),
        ("alpha = inf", "foryou: option alpha expects a number > 0 and <= 1000000, got 'inf'".to_string()),
        ("alpha = 2e6", "foryou: option alpha expects a number > 0 and <= 1000000, got '2e6'".to_string()),
        ("skip_weight = 1e7", "foryou: option skip_weight expects a number > 0 and <= 1000000, got '1e7'".to_string()),
        ("cg_steps = 65", "foryou: option cg_steps expects an integer from 1 to 64, got '65'".to_string()),
        ("seed = -1", "foryou: option seed expects an integer from 0 to 9223372036854775807, got '-1'".to_string()),
        ("threads = 257", "foryou: option threads expects an integer from 0 to 256, got '257'".to_string()),
        (
            "exclude_watched = maybe",
            "foryou: option exclude_watched expects a boolean (true/false, on/off, yes/no, 1/0), got 'maybe'".to_string(),
        ),
        ("factors", format!("foryou: argument 'factors' is not of the form key = value (options: {options})")),
        ("seed = 1, SEED = 2", "foryou: option seed given more than once".to_string()),
    ];
    for (args, expected) in cases {
        let sql = format!("CREATE VIRTUAL TABLE feed USING foryou({args})");
        assert_eq!(error_of(&conn, &sql), expected, "{sql}");
        assert_eq!(
            int(&conn, "SELECT count(*) FROM sqlite_master"),
            0,
            "{sql} left schema objects behind"
        );
    }
}

#[test]
fn create_options_accept_case_quotes_and_booleans() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(FACTORS = '3', Alpha = \"2.5\", exclude_watched = OFF, regularization = 0)")
        .unwrap();
    let config: Vec<(String, Value)> = {
        let mut stmt = conn
            .prepare("SELECT key, value FROM feed_config ORDER BY key")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    };
    let get = |key: &str| {
        config
            .iter()
            .find(|(k, _)| k == key)
            .map_or(Value::Null, |(_, v)| v.clone())
    };
    assert_eq!(get("factors"), Value::Integer(3));
    assert_eq!(get("alpha"), Value::Real(2.5));
    assert_eq!(get("exclude_watched"), Value::Integer(0));
    // Not given: the default, stored like every option.
    assert_eq!(get("regularization_scaling"), Value::Text("count".into()));
    // (the config column has NUMERIC affinity: 0.0 may come back as the integer 0)
    assert!(
        matches!(get("regularization"), Value::Real(r) if r == 0.0)
            || get("regularization") == Value::Integer(0)
    );
    // Behaviour follows: the refit uses 3 factors.
    conn.execute_batch("INSERT INTO feed VALUES (1, 1, 1, 1, 1), (2, 2, 1, 1, 1)")
        .unwrap();
    assert_eq!(
        refit(
            &conn,
            r#"SELECT foryou_refit('feed', '{"regularization": 0.05}')"#
        )["factors"],
        3
    );
}

#[test]
fn create_fails_cleanly_when_a_shadow_name_is_taken() {
    let conn = memory();
    conn.execute_batch("CREATE TABLE feed_model(x)").unwrap();
    let message = error_of(&conn, "CREATE VIRTUAL TABLE feed USING foryou");
    assert!(message.contains("feed_model"), "{message}");
    // Nothing half-created: only the user's table is left.
    assert_eq!(
        rows(&conn, "SELECT name FROM sqlite_master"),
        vec![vec![Value::Text("feed_model".into())]]
    );
}

#[test]
fn values_are_validated_with_exact_messages() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou")
        .unwrap();
    let insert = |values: &str| {
        format!("INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES ({values})")
    };
    let cases = [
        (
            "NULL, 1, 1, 1, 1",
            "foryou: feed: user_id must be an integer, got NULL",
        ),
        (
            "'seven', 1, 1, 1, 1",
            "foryou: feed: user_id must be an integer, got 'seven'",
        ),
        (
            "1.5, 1, 1, 1, 1",
            "foryou: feed: user_id must be an integer, got 1.5",
        ),
        (
            "1, NULL, 1, 1, 1",
            "foryou: feed: item_id must be an integer, got NULL",
        ),
        (
            "1, x'0102', 1, 1, 1",
            "foryou: feed: item_id must be an integer, got a 2-byte BLOB",
        ),
        (
            "1, 1, NULL, 1, 1",
            "foryou: feed: watch_time must be a number of seconds >= 0, got NULL",
        ),
        (
            "1, 1, -3, 10, 1",
            "foryou: feed: watch_time must be a number of seconds >= 0, got -3",
        ),
        (
            "1, 1, 'long', 10, 1",
            "foryou: feed: watch_time must be a number of seconds >= 0, got 'long'",
        ),
        (
            "1, 1, 1, 0, 1",
            "foryou: feed: duration must be a number of seconds > 0, got 0",
        ),
        (
            "1, 1, 1, -2.5, 1",
            "foryou: feed: duration must be a number of seconds > 0, got -2.5",
        ),
        (
            "1, 1, 1, NULL, 1",
            "foryou: feed: duration must be a number of seconds > 0, got NULL",
        ),
        (
            "1, 1, 1, 1, 'soon'",
            "foryou: feed: ts must be an integer, got 'soon'",
        ),
        (
            "1, 1, 1, 1, 1.5",
            "foryou: feed: ts must be an integer, got 1.5",
        ),
    ];
    for (values, expected) in cases {
        let sql = insert(values);
        assert_eq!(error_of(&conn, &sql), expected, "{sql}");
    }
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 0);

    // UPDATE validates the new row the same way and keeps the old one.
    conn.execute_batch("INSERT INTO feed VALUES (1, 2, 3, 4, 5)")
        .unwrap();
    assert_eq!(
        error_of(&conn, "UPDATE feed SET duration = 0 WHERE rowid = 1"),
        "foryou: feed: duration must be a number of seconds > 0, got 0"
    );
    assert_eq!(
        error_of(&conn, "UPDATE feed SET user_id = NULL"),
        "foryou: feed: user_id must be an integer, got NULL"
    );
    assert_eq!(all_events(&conn), vec![(1, 1, 2, 3.0, 4.0, 5)]);
}

#[test]
fn the_table_name_is_in_value_errors() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE clips USING foryou")
        .unwrap();
    assert_eq!(
        error_of(
            &conn,
            "INSERT INTO clips(user_id, item_id, watch_time, duration) VALUES (1, 2, 3, 0)"
        ),
        "foryou: clips: duration must be a number of seconds > 0, got 0"
    );
}

#[test]
fn a_failing_statement_stores_nothing() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou; INSERT INTO feed VALUES (1, 1, 5, 10, 1);",
    )
    .unwrap();
    let before = all_events(&conn);

    // Multi-row VALUES with a bad last row, in autocommit mode.
    assert_eq!(
        error_of(
            &conn,
            "INSERT INTO feed VALUES (2, 1, 5, 10, 2), (2, 2, 5, 10, 3), (2, 3, 5, 0, 4)"
        ),
        "foryou: feed: duration must be a number of seconds > 0, got 0"
    );
    assert_eq!(all_events(&conn), before);

    // INSERT ... SELECT with a bad last row.
    let sql = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000) \
               INSERT INTO feed(user_id, item_id, watch_time, duration, ts) \
               SELECT 3, i, 1, CASE WHEN i = 3000 THEN -1 ELSE 10 END, i FROM s";
    assert_eq!(
        error_of(&conn, sql),
        "foryou: feed: duration must be a number of seconds > 0, got -1"
    );
    assert_eq!(all_events(&conn), before);

    // Inside an explicit transaction: the failing statement is undone, the rest of the
    // transaction is kept.
    conn.execute_batch("BEGIN; INSERT INTO feed VALUES (4, 1, 5, 10, 5);")
        .unwrap();
    assert_eq!(
        error_of(
            &conn,
            "INSERT INTO feed VALUES (4, 2, 5, 10, 6), (4, 3, NULL, 10, 7)"
        ),
        "foryou: feed: watch_time must be a number of seconds >= 0, got NULL"
    );
    assert!(!conn.is_autocommit(), "the error ended the transaction");
    // A multi-row UPDATE that fails on its last row changes nothing.
    assert_eq!(
        error_of(
            &conn,
            "UPDATE feed SET duration = CASE WHEN user_id = 4 THEN 0 ELSE 20 END"
        ),
        "foryou: feed: duration must be a number of seconds > 0, got 0"
    );
    conn.execute_batch("COMMIT").unwrap();
    let mut expected = before.clone();
    expected.push((2, 4, 1, 5.0, 10.0, 5));
    assert_eq!(all_events(&conn), expected);
}

#[test]
fn explicit_rowids_are_kept_and_duplicates_refused() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou")
        .unwrap();
    conn.execute("INSERT INTO feed(rowid, user_id, item_id, watch_time, duration, ts) VALUES (100, 1, 2, 3, 4, 5)", []).unwrap();
    assert_eq!(conn.last_insert_rowid(), 100);
    conn.execute(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (1, 3, 3, 4, 6)",
        [],
    )
    .unwrap();
    assert_eq!(conn.last_insert_rowid(), 101);
    assert_eq!(
        error_of(&conn, "INSERT INTO feed(rowid, user_id, item_id, watch_time, duration, ts) VALUES (100, 9, 9, 9, 9, 9)"),
        "foryou: feed: an event with rowid 100 already exists"
    );
    assert_eq!(
        all_events(&conn),
        vec![(100, 1, 2, 3.0, 4.0, 5), (101, 1, 3, 3.0, 4.0, 6)]
    );
    // A negative rowid is a rowid like any other.
    conn.execute("INSERT INTO feed(rowid, user_id, item_id, watch_time, duration, ts) VALUES (-5, 1, 4, 3, 4, 7)", []).unwrap();
    assert_eq!(
        events(&conn, "SELECT rowid, * FROM feed WHERE rowid = -5"),
        vec![(-5, 1, 4, 3.0, 4.0, 7)]
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 3);
}

#[test]
fn update_onto_an_existing_rowid_is_refused_clearly() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou; INSERT INTO feed VALUES (1, 1, 1, 1, 1), (2, 2, 2, 2, 2);")
        .unwrap();
    let message = error_of(&conn, "UPDATE feed SET rowid = 2 WHERE rowid = 1");
    // Like INSERT: names the table and the rowid, not the shadow table.
    assert_eq!(
        message,
        "foryou: feed: an event with rowid 2 already exists"
    );
    assert_eq!(
        all_events(&conn),
        vec![(1, 1, 1, 1.0, 1.0, 1), (2, 2, 2, 2.0, 2.0, 2)]
    );
}

#[test]
fn update_onto_an_existing_rowid_changes_nothing() {
    // Whatever the message, the failing UPDATE must leave both rows as they were.
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou; INSERT INTO feed VALUES (1, 1, 1, 1, 1), (2, 2, 2, 2, 2);")
        .unwrap();
    assert!(conn
        .execute("UPDATE feed SET rowid = 2 WHERE rowid = 1", [])
        .is_err());
    assert_eq!(
        all_events(&conn),
        vec![(1, 1, 1, 1.0, 1.0, 1), (2, 2, 2, 2.0, 2.0, 2)]
    );
}

#[test]
fn numbers_given_as_text_are_accepted() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou")
        .unwrap();
    conn.execute(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES ('7', ' 8 ', '1.5', '10', '1700000000')",
        [],
    )
    .unwrap();
    conn.execute("INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (7.0, 9.0, 2, 4, 1700000001.0)", [])
        .unwrap();
    assert_eq!(
        all_events(&conn),
        vec![
            (1, 7, 8, 1.5, 10.0, 1_700_000_000),
            (2, 7, 9, 2.0, 4.0, 1_700_000_001)
        ]
    );
    assert_eq!(
        rows(&conn, "SELECT DISTINCT typeof(user_id), typeof(item_id), typeof(watch_time), typeof(ts) FROM feed"),
        vec![["integer", "integer", "real", "integer"].map(|t| Value::Text(t.into())).to_vec()]
    );
    // Text constraint values find integer rows, as with a real INTEGER column.
    assert_eq!(
        int(&conn, "SELECT count(*) FROM feed WHERE user_id = '7'"),
        2
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM feed WHERE rowid = '2'"), 1);
    // The user is the same user for serving: both items are watched by '7'.
    assert_eq!(ranked(&conn, "SELECT * FROM recommend('7', 5)"), vec![]);
}

#[test]
fn events_options_and_model_survive_reopen() {
    let dir = TempDir::new("persist");
    let path = dir.join("feed.db");
    let queries = [
        "SELECT * FROM recommend(3, 7)",
        "SELECT * FROM recommend(15, 20)",
        "SELECT * FROM recommend(999, 4)",
        "SELECT * FROM similar_items(4, 6)",
        "SELECT * FROM similar_items(17, 19)",
    ];
    let (before, events_before, blobs_before, report) = {
        let conn = open(&path);
        conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 6, seed = 3, exclude_watched = false, iterations = 8)")
            .unwrap();
        checkerboard(&conn, "feed");
        let report = refit(&conn, "SELECT foryou_refit()");
        let before: Vec<_> = queries.iter().map(|q| ranked(&conn, q)).collect();
        (
            before,
            all_events(&conn),
            factor_blobs(&conn, "feed", "users"),
            report,
        )
    };
    assert_eq!(report["factors"], 6);
    assert_eq!(report["iterations"], 8);
    assert!(before.iter().all(|r| !r.is_empty()));

    let conn = open(&path);
    assert_eq!(all_events(&conn), events_before);
    assert_eq!(factor_blobs(&conn, "feed", "users"), blobs_before);
    for (query, expected) in queries.iter().zip(&before) {
        assert_eq!(&ranked(&conn, query), expected, "{query} after reopen");
    }
    // exclude_watched = false survived: user 15's feed holds all 20 items, watched included.
    assert_eq!(before[1].len(), 20);
    // The options survived: a refit after reopen uses them, and gives the same model.
    let again = refit(&conn, "SELECT foryou_refit()");
    assert_eq!(again["factors"], 6);
    assert_eq!(again["iterations"], 8);
    assert_eq!(again["version"], 2);
    assert_eq!(again["loss"], report["loss"]);
    assert_eq!(factor_blobs(&conn, "feed", "users"), blobs_before);
}

#[test]
fn defensive_mode_protects_shadow_tables_and_the_extension_still_works() {
    use rusqlite::config::DbConfig;
    let conn = memory();
    assert!(conn
        .set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .unwrap());
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 2, iterations = 3)")
        .unwrap();
    checkerboard(&conn, "feed");
    conn.execute_batch(
        "UPDATE feed SET watch_time = 10 WHERE rowid = 1; DELETE FROM feed WHERE rowid = 2;",
    )
    .unwrap();
    refit(&conn, "SELECT foryou_refit()");
    assert_eq!(ranked(&conn, "SELECT * FROM recommend(0, 3)").len(), 3);
    // Direct writes to the shadow tables are refused in defensive mode.
    for sql in [
        "INSERT INTO feed_events(user_id, item_id, watch_time, duration, ts) VALUES (1, 1, 1, 1, 1)",
        "DELETE FROM feed_model",
        "UPDATE feed_items SET factors = x''",
        "DROP TABLE feed_config",
    ] {
        let m = error_of(&conn, sql);
        assert!(m.contains("may not be modified") || m.contains("may not be dropped"), "{sql}: {m}");
    }
    conn.execute_batch("ALTER TABLE feed RENAME TO clips")
        .unwrap();
    assert_eq!(refit(&conn, "SELECT foryou_refit()")["model"], "clips");
    conn.execute_batch("DROP TABLE clips").unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM sqlite_master"), 0);
}

#[test]
fn a_failed_or_rolled_back_rename_changes_nothing() {
    let conn = memory();
    let create = "CREATE VIRTUAL TABLE feed USING foryou(factors = 2)";
    conn.execute_batch(create).unwrap();
    conn.execute_batch("INSERT INTO feed VALUES (1, 1, 1, 1, 1), (2, 2, 1, 1, 1)")
        .unwrap();
    refit(&conn, "SELECT foryou_refit()");
    let served = ranked(&conn, "SELECT * FROM recommend(1, 3)");
    let mut expected = expected_schema("feed", create);

    // A shadow name of the new table is taken: the rename fails as a whole.
    conn.execute_batch("CREATE TABLE clips_model(x)").unwrap();
    expected.push((
        "table".into(),
        "clips_model".into(),
        "clips_model".into(),
        Some("CREATE TABLE clips_model(x)".into()),
    ));
    assert!(conn
        .execute_batch("ALTER TABLE feed RENAME TO clips")
        .is_err());
    assert_eq!(schema(&conn), expected);
    conn.execute_batch("INSERT INTO feed VALUES (3, 3, 1, 1, 1)")
        .unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 3);
    assert_eq!(ranked(&conn, "SELECT * FROM recommend(1, 3)"), served);

    // A rename inside a rolled-back transaction.
    conn.execute_batch("BEGIN; ALTER TABLE feed RENAME TO other; INSERT INTO other VALUES (4, 4, 1, 1, 1); ROLLBACK;").unwrap();
    assert_eq!(schema(&conn), expected);
    conn.execute_batch("INSERT INTO feed VALUES (5, 5, 1, 1, 1)")
        .unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 4);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed_events"), 4);
    assert_eq!(refit(&conn, "SELECT foryou_refit('feed')")["events"], 4);
}

#[test]
fn triggers_on_other_tables_can_record_events() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 2);
         CREATE TABLE log(u, i);
         CREATE TRIGGER record AFTER INSERT ON log BEGIN
           INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (new.u, new.i, 5, 10, 1);
         END;
         INSERT INTO log VALUES (1, 2), (2, 3), (3, 3);",
    )
    .unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 3);
    // A bad row fails the triggering statement as a whole.
    assert_eq!(
        error_of(&conn, "INSERT INTO log VALUES (4, 4), (5, NULL)"),
        "foryou: feed: item_id must be an integer, got NULL"
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM log"), 3);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 3);
    // recommend() works inside views and triggers too.
    conn.execute_batch("CREATE VIEW top AS SELECT item_id FROM recommend(1, 1)")
        .unwrap();
    assert_eq!(int(&conn, "SELECT item_id FROM top"), 3);
}

#[test]
fn statements_reading_the_table_they_write() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou;
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000)
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts) SELECT i, i, 1, 1, i FROM s;",
    )
    .unwrap();
    // Each row is copied once, not again as the scan meets the copies.
    let copied = conn
        .execute("INSERT INTO feed(user_id, item_id, watch_time, duration, ts) SELECT user_id + 5000, item_id, watch_time, duration, ts FROM feed", [])
        .unwrap();
    assert_eq!(copied, 3000);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 6000);
    // Each row is moved once, although it moves ahead of the scan.
    assert_eq!(
        conn.execute("UPDATE feed SET rowid = rowid + 10000", [])
            .unwrap(),
        6000
    );
    assert_eq!(
        rows(&conn, "SELECT count(*), min(rowid), max(rowid) FROM feed"),
        vec![vec![
            Value::Integer(6000),
            Value::Integer(10001),
            Value::Integer(16000)
        ]]
    );
    assert_eq!(
        conn.execute(
            "UPDATE feed SET user_id = user_id + 1 WHERE user_id > 5000",
            []
        )
        .unwrap(),
        3000
    );
    assert_eq!(
        rows(&conn, "SELECT min(user_id), max(user_id) FROM feed"),
        vec![vec![Value::Integer(1), Value::Integer(8001)]]
    );
    assert_eq!(
        conn.execute("DELETE FROM feed WHERE rowid % 2 = 0", [])
            .unwrap(),
        3000
    );
    assert_eq!(
        int(&conn, "SELECT count(*) FROM feed WHERE rowid % 2 = 0"),
        0
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 3000);
}
