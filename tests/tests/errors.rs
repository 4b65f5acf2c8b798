//! Wrong types everywhere, non-finite numbers, extreme ids, damaged shadow tables:
//! always a SQL error or a correct answer, never a panic or a crash.

mod common;

use common::*;
use rusqlite::Connection;

const MIN: i64 = i64::MIN;
const MAX: i64 = i64::MAX;

fn table(conn: &Connection) {
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 3, iterations = 5, seed = 1)",
    )
    .unwrap();
}

/// A panic caught at the FFI boundary is reported as an "internal error"; none may happen.
fn assert_no_panic(result: &rusqlite::Result<Vec<Vec<rusqlite::types::Value>>>, sql: &str) {
    if let Err(e) = result {
        let m = message(e);
        assert!(
            !m.contains("internal error"),
            "{sql} panicked inside the extension: {m}"
        );
    }
}

#[test]
fn wrong_types_in_inserts() {
    let conn = memory();
    table(&conn);
    let insert = |values: &str| {
        format!("INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES ({values})")
    };
    let cases = [
        (
            "x'01', 1, 1, 1, 1",
            "foryou: feed: user_id must be an integer, got a 1-byte BLOB",
        ),
        (
            "zeroblob(0), 1, 1, 1, 1",
            "foryou: feed: user_id must be an integer, got a 0-byte BLOB",
        ),
        (
            "1, x'0102', 1, 1, 1",
            "foryou: feed: item_id must be an integer, got a 2-byte BLOB",
        ),
        (
            "1, 1, x'00', 1, 1",
            "foryou: feed: watch_time must be a number of seconds >= 0, got a 1-byte BLOB",
        ),
        (
            "1, 1, 1, x'00', 1",
            "foryou: feed: duration must be a number of seconds > 0, got a 1-byte BLOB",
        ),
        (
            "1, 1, 1, 1, x'00'",
            "foryou: feed: ts must be an integer, got a 1-byte BLOB",
        ),
        // Integer text out of the i64 range, and reals beyond exact integers.
        (
            "'9223372036854775808', 1, 1, 1, 1",
            "foryou: feed: user_id must be an integer, got '9223372036854775808'",
        ),
        (
            "1e16, 1, 1, 1, 1",
            "foryou: feed: user_id must be an integer, got 10000000000000000",
        ),
        (
            "1, '', 1, 1, 1",
            "foryou: feed: item_id must be an integer, got ''",
        ),
    ];
    for (values, expected) in cases {
        let sql = insert(values);
        assert_eq!(error_of(&conn, &sql), expected, "{sql}");
    }
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 0);
}

#[test]
fn non_finite_numbers_are_refused() {
    let conn = memory();
    table(&conn);
    let insert = |watch_time: &str, duration: &str| {
        format!("INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (1, 1, {watch_time}, {duration}, 1)")
    };
    let cases = [
        // 0.0/0.0 is NULL in SQLite; 9e999 is +infinity; '1e999' is text that parses to infinity.
        (
            insert("1", "0.0/0.0"),
            "foryou: feed: duration must be a number of seconds > 0, got NULL",
        ),
        (
            insert("1", "9e999"),
            "foryou: feed: duration must be a number of seconds > 0, got inf",
        ),
        (
            insert("1", "-9e999"),
            "foryou: feed: duration must be a number of seconds > 0, got -inf",
        ),
        (
            insert("1", "'1e999'"),
            "foryou: feed: duration must be a number of seconds > 0, got '1e999'",
        ),
        (
            insert("1", "'inf'"),
            "foryou: feed: duration must be a number of seconds > 0, got 'inf'",
        ),
        (
            insert("1", "'NaN'"),
            "foryou: feed: duration must be a number of seconds > 0, got 'NaN'",
        ),
        (
            insert("9e999", "1"),
            "foryou: feed: watch_time must be a number of seconds >= 0, got inf",
        ),
        (
            insert("'nan'", "1"),
            "foryou: feed: watch_time must be a number of seconds >= 0, got 'nan'",
        ),
        (
            insert("'-1e999'", "1"),
            "foryou: feed: watch_time must be a number of seconds >= 0, got '-1e999'",
        ),
        (
            insert("-0.5", "1"),
            "foryou: feed: watch_time must be a number of seconds >= 0, got -0.5",
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(error_of(&conn, &sql), expected, "{sql}");
    }
    // The same checks apply to UPDATE.
    conn.execute_batch(&insert("1", "2")).unwrap();
    assert_eq!(
        error_of(&conn, "UPDATE feed SET duration = 9e999"),
        "foryou: feed: duration must be a number of seconds > 0, got inf"
    );
    assert_eq!(
        int(&conn, "SELECT count(*) FROM feed WHERE duration = 2"),
        1
    );
    // Tiny and huge finite values are fine (the watch ratio is capped, not rejected).
    conn.execute_batch(&insert("1e300", "1e-300")).unwrap();
    conn.execute_batch(&insert("0", "1e300")).unwrap();
    let report = refit(&conn, "SELECT foryou_refit()");
    assert!(report["loss"].as_f64().unwrap().is_finite(), "{report}");
}

#[test]
#[allow(clippy::too_many_lines)] // one scenario, checked step by step in order
fn wrong_types_in_table_functions() {
    let conn = memory();
    table(&conn);
    conn.execute_batch(
        "INSERT INTO feed VALUES (1, 10, 1, 1, 1), (2, 11, 1, 1, 1), (3, 11, 1, 1, 1)",
    )
    .unwrap();
    for f in ["recommend", "similar_items", "similar_users"] {
        let id = if f == "similar_items" {
            "item_id"
        } else {
            "user_id"
        };
        let cases = [
            (
                format!("{f}(x'01', 1)"),
                format!("{f}: {id} must be an integer, got a 1-byte BLOB"),
            ),
            (
                format!("{f}('9223372036854775808', 1)"),
                format!("{f}: {id} must be an integer, got '9223372036854775808'"),
            ),
            (
                format!("{f}(1, x'03')"),
                format!("{f}: k must be an integer, got a 1-byte BLOB"),
            ),
            (
                format!("{f}(1, '3.5')"),
                format!("{f}: k must be an integer, got '3.5'"),
            ),
            (
                format!("{f}(1, 9223372036854775807)"),
                format!("{f}: k too large, provided 9223372036854775807, maximum 10000"),
            ),
            (
                format!("{f}(1, -9223372036854775808)"),
                format!("{f}: k must be a positive integer, got -9223372036854775808"),
            ),
            (
                format!("{f}(1, 9e999)"),
                format!("{f}: k must be an integer, got inf"),
            ),
            (
                format!("{f}(1, 0.0/0.0)"),
                format!("{f}: k must be an integer, got NULL"),
            ),
            (
                format!("{f}(1, 1, CAST(x'ff' AS TEXT))"),
                format!("{f}: model must be a table name, got invalid UTF-8"),
            ),
            (
                format!("{f}(1, 1, '')"),
                format!("{f}: no foryou table named '' in schema 'main' (foryou tables: feed)"),
            ),
            (
                format!("{f}(1, 1, 1.5)"),
                format!("{f}: model must be the name of a foryou table, got 1.5"),
            ),
        ];
        for (call, expected) in cases {
            let sql = format!("SELECT * FROM {call}");
            assert_eq!(error_of(&conn, &sql), expected, "{sql}");
        }
        // An unknown schema is named in the error.
        let m = error_of(&conn, &format!("SELECT * FROM {f}(1, 1, 'nowhere.feed')"));
        assert!(
            m.starts_with(&format!("{f}: cannot read schema 'nowhere'")),
            "{m}"
        );
    }
    // Numbers as text and integral reals are accepted for ids and k.
    let expected = ranked(&conn, "SELECT * FROM recommend(1, 3)");
    assert_eq!(items(&expected), vec![11]);
    for call in [
        "recommend('1', '3')",
        "recommend(1.0, 3.0)",
        "recommend(' 1 ', ' 3 ')",
    ] {
        assert_eq!(
            ranked(&conn, &format!("SELECT * FROM {call}")),
            expected,
            "{call}"
        );
    }
    // foryou_refit's arguments.
    assert_eq!(
        error_of(&conn, "SELECT foryou_refit(x'00')"),
        "foryou_refit: model must be the name of a foryou table, got a 1-byte BLOB"
    );
    assert_eq!(
        error_of(&conn, "SELECT foryou_refit('feed', x'7b7d')"),
        "foryou_refit: options_json must be a JSON object as TEXT, such as '{\"iterations\": 5}'"
    );
    assert_eq!(
        error_of(&conn, r#"SELECT foryou_refit('feed', '{"factors": 2.5}')"#),
        "foryou_refit: option factors expects an integer from 1 to 1024, got 2.5"
    );
    assert_eq!(
        error_of(&conn, r#"SELECT foryou_refit('feed', '{"seed": -1}')"#),
        "foryou_refit: option seed expects an integer from 0 to 9223372036854775807, got -1"
    );
    assert_eq!(
        error_of(
            &conn,
            r#"SELECT foryou_refit('feed', '{"regularization": null}')"#
        ),
        "foryou_refit: option regularization expects a number from 0 to 1000000, got null"
    );
    assert_eq!(
        error_of(
            &conn,
            r#"SELECT foryou_refit('feed', '{"regularization_scaling": "spark"}')"#
        ),
        "foryou_refit: option regularization_scaling expects one of none, count, sqrt, got \"spark\""
    );
    assert_eq!(
        error_of(&conn, r#"SELECT foryou_refit('feed', '{"seed": 1e400}')"#),
        "foryou_refit: options_json is not valid JSON (number out of range at line 1 column 14)"
    );
}

#[test]
fn extreme_ids_work_as_ids() {
    let conn = memory();
    table(&conn);
    let mut insert = conn.prepare("INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, 10, 10, ?3)").unwrap();
    // Users MIN and MAX like items MIN and 0; user 0 likes items MAX and 1; user -1 likes MIN and MAX.
    for (user, item) in [
        (MIN, MIN),
        (MIN, 0),
        (MAX, MIN),
        (MAX, 0),
        (0, MAX),
        (0, 1),
        (1, MAX),
        (1, 1),
        (-1, MIN),
        (-1, MAX),
    ] {
        insert.execute((user, item, MAX)).unwrap();
    }
    drop(insert);
    assert_eq!(
        int(
            &conn,
            &format!("SELECT count(*) FROM feed WHERE user_id = {MIN}")
        ),
        2
    );
    assert_eq!(
        int(
            &conn,
            &format!("SELECT count(*) FROM feed WHERE item_id = {MAX}")
        ),
        3
    );
    assert_eq!(
        int(
            &conn,
            &format!("SELECT count(*) FROM feed WHERE ts = {MAX}")
        ),
        10
    );
    assert_eq!(int(&conn, "SELECT max(user_id) FROM feed"), MAX);
    assert_eq!(int(&conn, "SELECT min(item_id) FROM feed"), MIN);

    // Popularity before a refit: MIN, 0, 1 and MAX have 3, 2, 2 and 3 viewers.
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(42, 10)")),
        vec![MIN, MAX, 0, 1]
    );
    assert_eq!(
        items(&ranked(
            &conn,
            &format!("SELECT * FROM recommend({MIN}, 10)")
        )),
        vec![MAX, 1]
    );

    let report = refit(&conn, "SELECT foryou_refit()");
    assert_eq!(
        (report["users"].as_i64(), report["items"].as_i64()),
        (Some(5), Some(4))
    );
    for user in [MIN, MAX, 0, -1] {
        let rows = ranked(&conn, &format!("SELECT * FROM recommend({user}, 10)"));
        assert_well_ranked(&rows);
        assert_eq!(rows.len(), 2, "user {user}: {rows:?}");
    }
    let mut got = items(&ranked(
        &conn,
        &format!("SELECT * FROM recommend({MAX}, 10)"),
    ));
    got.sort_unstable();
    assert_eq!(got, vec![1, MAX]);
    let mut got = items(&ranked(
        &conn,
        &format!("SELECT * FROM similar_items({MIN}, 10)"),
    ));
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, MAX]);
    // Hidden columns give the extreme ids back unchanged.
    assert_eq!(
        int(
            &conn,
            &format!("SELECT DISTINCT user_id FROM recommend({MIN}, 10)")
        ),
        MIN
    );
    // Ids as text at the extremes.
    assert_eq!(
        ranked(&conn, &format!("SELECT * FROM recommend('{MIN}', 10)")).len(),
        2
    );
}

#[test]
fn extreme_rowids() {
    let conn = memory();
    table(&conn);
    conn.execute(&format!("INSERT INTO feed(rowid, user_id, item_id, watch_time, duration, ts) VALUES ({MAX}, 1, 2, 3, 4, 5)"), [])
        .unwrap();
    assert_eq!(conn.last_insert_rowid(), MAX);
    // With MAX taken, SQLite picks another free rowid.
    conn.execute(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (1, 3, 3, 4, 6)",
        [],
    )
    .unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 2);
    assert_eq!(
        int(
            &conn,
            &format!("SELECT item_id FROM feed WHERE rowid = {MAX}")
        ),
        2
    );
    conn.execute(&format!("DELETE FROM feed WHERE rowid = {MAX}"), [])
        .unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 1);
}

#[test]
fn the_smallest_rowid_is_visible() {
    let conn = memory();
    table(&conn);
    conn.execute(&format!("INSERT INTO feed(rowid, user_id, item_id, watch_time, duration, ts) VALUES ({MIN}, 7, 8, 3, 4, 5)"), [])
        .unwrap();
    conn.execute("INSERT INTO feed(rowid, user_id, item_id, watch_time, duration, ts) VALUES (1, 7, 9, 3, 4, 5)", []).unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM feed_events"), 2);
    assert_eq!(int(&conn, "SELECT count(*) FROM feed"), 2, "full scan");
    assert_eq!(
        int(&conn, "SELECT count(*) FROM feed WHERE user_id = 7"),
        2,
        "scan by user"
    );
    assert_eq!(
        int(
            &conn,
            &format!("SELECT item_id FROM feed WHERE rowid = {MIN}")
        ),
        8,
        "lookup by rowid"
    );
    assert_eq!(
        conn.execute(
            &format!("UPDATE feed SET watch_time = 4 WHERE rowid = {MIN}"),
            []
        )
        .unwrap(),
        1
    );
    assert_eq!(
        conn.execute(&format!("DELETE FROM feed WHERE rowid = {MIN}"), [])
            .unwrap(),
        1
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM feed_events"), 1);
}

/// Damages one shadow table of a fitted model in a file, then serves from a fresh
/// connection (no cache): every call gives an error or an answer, never a panic.
#[test]
fn damaged_shadow_tables_give_errors_not_crashes() {
    let dir = TempDir::new("damage");
    let clean = dir.join("clean.db");
    {
        let conn = open(&clean);
        conn.execute_batch(
            "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 1)",
        )
        .unwrap();
        checkerboard(&conn, "feed");
        refit(&conn, "SELECT foryou_refit()");
    }
    let damages = [
        ("UPDATE feed_items SET ids = x'00'", Some("foryou: feed_items is damaged: 0 ids for 80 factor values")),
        ("UPDATE feed_users SET factors = substr(factors, 1, 60)", Some("foryou: feed_users is damaged: 20 ids for 15 factor values")),
        ("UPDATE feed_items SET popularity = x'0000'", Some("foryou: feed_items is damaged: 20 ids for 0 popularity values")),
        ("DELETE FROM feed_items", Some("foryou: feed_items is damaged: 0 ids for 0 factor values")),
        ("UPDATE feed_config SET value = 2 WHERE key = 'format_version'", Some("foryou: table feed has storage format version 2; this build of foryou reads version 1")),
        ("UPDATE feed_config SET value = 'abc' WHERE key = 'factors'", Some("foryou: option factors expects an integer from 1 to 1024, got 'abc'")),
        ("UPDATE feed_items SET factors = x'00'", Some("foryou: feed_items is damaged: 20 ids for 0 factor values")),
        ("UPDATE feed_items SET factors = zeroblob(length(factors))", None),
        ("UPDATE feed_users SET ids = substr(ids, 1, 12)", Some("foryou: feed_users is damaged: 1 ids for 80 factor values")),
        ("UPDATE feed_items SET ids = zeroblob(160)", Some("foryou: feed_items is damaged: item id 0 is stored twice")),
        // A mistyped metadata row is damage (it made the model absent, served as before
        // the first refit).
        ("UPDATE feed_model SET value = 'x' WHERE key = 'version'", Some("foryou: feed_model is damaged: the version row holds TEXT, not an INTEGER")),
        // NaN and infinite factors.
        ("UPDATE feed_items SET factors = CAST(x'0000c07f0000c07f0000c07f0000c07f' || substr(factors, 17) AS BLOB)", Some("foryou: feed_items is damaged: factor 0 of row 0 is NaN")),
        ("UPDATE feed_users SET factors = CAST(x'0000807f' || substr(factors, 5) AS BLOB)", Some("foryou: feed_users is damaged: factor 0 of row 0 is inf")),
        ("UPDATE feed_items SET factors = 'text'", Some("foryou: feed_items is damaged: factors is not a BLOB")),
        ("UPDATE feed_events SET watch_time = 'abc' WHERE id = 1", None),
    ];
    let queries = [
        "SELECT * FROM recommend(1, 3)",
        "SELECT * FROM recommend(999, 3)",
        "SELECT * FROM similar_items(0, 3)",
        "SELECT * FROM similar_items(15, 30)",
        "SELECT * FROM similar_users(1, 30)",
        "SELECT * FROM why_recommended(1, 3, 30)",
        "SELECT * FROM feed WHERE user_id = 0",
        "SELECT foryou_refit()",
    ];
    for (n, (damage, expected)) in damages.iter().enumerate() {
        let path = dir.join(&format!("damaged-{n}.db"));
        std::fs::copy(&clean, &path).unwrap();
        {
            let plain = Connection::open(&path).unwrap();
            plain
                .execute_batch(damage)
                .unwrap_or_else(|e| panic!("{damage}: {e}"));
        }
        let conn = open(&path);
        // Damage to the model: every serving query names it, exactly, or serves a correct
        // answer (checked below); reading the events and refitting (which rewrites the
        // model from the events) work.
        for sql in &queries[..6] {
            let got = try_run(&conn, sql);
            assert_no_panic(&got, damage);
            match (expected, got) {
                (Some(expected), Err(e)) => assert_eq!(&message(&e), expected, "{damage}; {sql}"),
                (Some(_), Ok(rows)) => panic!("{damage}; {sql}: served {rows:?}"),
                (None, Err(e)) => panic!("{damage}; {sql}: {}", message(&e)),
                (None, Ok(_)) => {}
            }
        }
        if expected.is_none() {
            served_correctly(&conn, damage);
        }
        for sql in &queries[6..] {
            let got = try_run(&conn, sql);
            if damage.contains("feed_config") {
                // A damaged config fails every use of the table, with the same message.
                assert_eq!(
                    got.map_err(|e| message(&e)).unwrap_err(),
                    expected.unwrap(),
                    "{sql}"
                );
                continue;
            }
            match (
                damage.starts_with("UPDATE feed_events"),
                sql.contains("FROM feed WHERE"),
            ) {
                (true, true) => assert_eq!(
                    got.map_err(|e| message(&e)).unwrap_err(),
                    "foryou: feed_events is damaged: column watch_time holds TEXT, not a number"
                ),
                // FINDING (reported, not fixed here): the refit's event stream (the C API
                // loop of store/events.rs) reads the TEXT 'abc' as 0 seconds instead of
                // naming the damage as every other reader does.
                _ => assert!(
                    got.is_ok(),
                    "{damage}; {sql}: {:?}",
                    got.map_err(|e| message(&e))
                ),
            }
        }
        // Serving the damaged feed after the refit gives the model's answer again.
        if !damage.contains("feed_config") {
            served_correctly(&conn, damage);
        }
    }
}

/// What a served answer must be whatever the factors: k rows (the catalogue has 20 items
/// and user 1 watched 5), ranks 1..k, no watched item, items from the catalogue.
fn served_correctly(conn: &Connection, damage: &str) {
    for user in [1i64, 999] {
        let feed = ranked(conn, &format!("SELECT * FROM recommend({user}, 10)"));
        assert_well_ranked(&feed);
        assert_eq!(feed.len(), 10, "{damage}: {feed:?}");
        let watched: Vec<i64> = rows(
            conn,
            &format!("SELECT item_id FROM feed WHERE user_id = {user}"),
        )
        .into_iter()
        .map(|r| match r[0] {
            rusqlite::types::Value::Integer(i) => i,
            _ => unreachable!(),
        })
        .collect();
        assert!(
            feed.iter()
                .all(|r| !watched.contains(&r.0) && (0..20).contains(&r.0)),
            "{damage}: user {user}: {feed:?}"
        );
    }
}

/// An id stored twice in `feed_items` (or `feed_users`) is damage, not an item to serve
/// twice.
#[test]
fn ids_stored_twice_are_damage() {
    let dir = TempDir::new("twice");
    let clean = dir.join("clean.db");
    {
        let conn = open(&clean);
        conn.execute_batch(
            "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 1)",
        )
        .unwrap();
        checkerboard(&conn, "feed");
        refit(&conn, "SELECT foryou_refit()");
    }
    for (part, what) in [("items", "item"), ("users", "user")] {
        let path = dir.join(&format!("{part}.db"));
        std::fs::copy(&clean, &path).unwrap();
        let first = {
            let plain = Connection::open(&path).unwrap();
            // [id0, id0, id1, ..., id18]: as many ids as before, the first one twice.
            plain
                .execute_batch(&format!(
                    "UPDATE feed_{part} SET ids = CAST(substr(ids, 1, 8) || substr(ids, 1, length(ids) - 8) AS BLOB)"
                ))
                .unwrap();
            let ids: Vec<u8> = plain
                .query_row(&format!("SELECT ids FROM feed_{part}"), [], |r| r.get(0))
                .unwrap();
            i64::from_le_bytes(ids[..8].try_into().unwrap())
        };
        let conn = open(&path);
        let expected = format!("foryou: feed_{part} is damaged: {what} id {first} is stored twice");
        for sql in [
            "SELECT * FROM recommend(1, 30)",
            "SELECT * FROM similar_items(1, 30)",
            "SELECT * FROM similar_users(1, 30)",
            "SELECT * FROM why_recommended(1, 3, 30)",
        ] {
            assert_eq!(error_of(&conn, sql), expected, "{sql}");
        }
    }
}

/// A value of the wrong type in a shadow table is damage named by its table and column,
/// not rusqlite's "Invalid column type ... at index ...".
#[test]
fn wrongly_typed_shadow_values_name_their_table_and_column() {
    let dir = TempDir::new("types");
    let clean = dir.join("clean.db");
    {
        let conn = open(&clean);
        conn.execute_batch(
            "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 1)",
        )
        .unwrap();
        checkerboard(&conn, "feed");
        refit(&conn, "SELECT foryou_refit()");
        // A fresh event of user 0, so that recommend(0, ...) reads their events.
        conn.execute_batch("INSERT INTO feed VALUES (0, 19, 5, 10, 1800000000)")
            .unwrap();
    }
    let cases = [
        (
            "UPDATE feed_events SET item_id = x'00' WHERE user_id = 0",
            "SELECT * FROM feed WHERE user_id = 0",
            "foryou: feed_events is damaged: column item_id holds a BLOB, not an INTEGER",
        ),
        (
            "UPDATE feed_events SET user_id = 'abc' WHERE id = 1",
            "SELECT * FROM feed",
            "foryou: feed_events is damaged: column user_id holds TEXT, not an INTEGER",
        ),
        (
            "UPDATE feed_events SET watch_time = 'abc' WHERE user_id = 0",
            "SELECT * FROM recommend(0, 3)",
            "foryou: feed_events is damaged: column watch_time holds TEXT, not a number",
        ),
        (
            "UPDATE feed_events SET watch_time = 'abc' WHERE user_id = 0",
            "SELECT * FROM why_recommended(0, 3)",
            "foryou: feed_events is damaged: column watch_time holds TEXT, not a number",
        ),
        (
            "UPDATE feed_events SET watch_time = 'abc' WHERE user_id = 0",
            "SELECT * FROM similar_users(0, 3)",
            "foryou: feed_events is damaged: column watch_time holds TEXT, not a number",
        ),
        (
            "UPDATE feed_events SET ts = 1.5 WHERE user_id = 0",
            "SELECT * FROM recommend(0, 3)",
            "foryou: feed_events is damaged: column ts holds a REAL, not an INTEGER",
        ),
        (
            "UPDATE feed_model SET key = x'01' WHERE key = 'report'",
            "SELECT * FROM recommend(1, 3)",
            "foryou: feed_model is damaged: column key holds a BLOB, not TEXT",
        ),
        (
            "UPDATE feed_config SET key = x'01' WHERE key = 'factors'",
            "SELECT * FROM recommend(1, 3)",
            "foryou: feed_config is damaged: column key holds a BLOB, not TEXT",
        ),
        (
            "UPDATE feed_model SET value = 42 WHERE key = 'tag'",
            "SELECT * FROM recommend(1, 3)",
            "foryou: feed_model is damaged: the tag is not text",
        ),
        (
            "UPDATE feed_items SET factors = 42",
            "SELECT * FROM similar_items(1, 3)",
            "foryou: feed_items is damaged: factors is not a BLOB",
        ),
        (
            "UPDATE feed_users SET ids = 'text'",
            "SELECT * FROM recommend(1, 3)",
            "foryou: feed_users is damaged: ids is not a BLOB",
        ),
    ];
    for (n, (damage, sql, expected)) in cases.iter().enumerate() {
        let path = dir.join(&format!("damaged-{n}.db"));
        std::fs::copy(&clean, &path).unwrap();
        Connection::open(&path)
            .unwrap()
            .execute_batch(damage)
            .unwrap();
        let conn = open(&path);
        assert_eq!(&error_of(&conn, sql), expected, "{damage}; {sql}");
    }
}

/// Hold-out ids are read as every id is: integer text is an id; anything else is an
/// error naming the table and column.
#[test]
fn holdout_ids_are_read_like_every_id() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 1)",
    )
    .unwrap();
    checkerboard(&conn, "feed");
    refit(&conn, "SELECT foryou_refit()");
    conn.execute_batch(
        "CREATE TABLE ints(user_id, item_id); INSERT INTO ints VALUES (7, 3), (12, 15);
         CREATE TABLE texts(user_id, item_id); INSERT INTO texts VALUES ('7', '3'), ('12', 15.0);",
    )
    .unwrap();
    assert_eq!(
        text(&conn, "SELECT foryou_evaluate('feed', 'texts', 5)"),
        text(&conn, "SELECT foryou_evaluate('feed', 'ints', 5)")
    );
    for (value, shown) in [
        ("'abc'", "'abc'"),
        ("x'00'", "a 1-byte BLOB"),
        ("2.5", "2.5"),
    ] {
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS bad; CREATE TABLE bad(user_id, item_id); INSERT INTO bad VALUES (1, 2), ({value}, 3);"
        ))
        .unwrap();
        assert_eq!(
            error_of(&conn, "SELECT foryou_evaluate('feed', 'bad', 5)"),
            format!(
                "foryou_evaluate: holdout_table must be a table or view whose user_id values are \
                 integers, got {shown} in column user_id of 'bad'"
            )
        );
    }
    conn.execute_batch("UPDATE bad SET user_id = 1, item_id = 'x'")
        .unwrap();
    assert_eq!(
        error_of(&conn, "SELECT foryou_evaluate('feed', 'bad', 5)"),
        "foryou_evaluate: holdout_table must be a table or view whose item_id values are \
         integers, got 'x' in column item_id of 'bad'"
    );
}
