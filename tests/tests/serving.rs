//! `recommend` and `similar_items`: argument errors, result shape, popularity fallback,
//! choosing the model, and seeing refits made by other connections.

mod common;

use common::*;
use rusqlite::types::Value;
use rusqlite::Connection;

/// Items with known numbers of distinct viewers: 100 (5), 101 (4), 102 (3), 103 (3),
/// 104 (1). Users 1-5; user 1 watched 100 twice.
fn popularity_fixture(conn: &Connection) {
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 2, iterations = 3, seed = 1);
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES
           (1, 100, 10, 10, 1), (1, 100, 10, 10, 2), (2, 100, 10, 10, 3), (3, 100, 1, 10, 4), (4, 100, 10, 10, 5), (5, 100, 10, 10, 6),
           (2, 101, 10, 10, 7), (3, 101, 10, 10, 8), (4, 101, 10, 10, 9), (5, 101, 10, 10, 10),
           (3, 103, 10, 10, 11), (4, 103, 10, 10, 12), (5, 103, 10, 10, 13),
           (3, 102, 10, 10, 14), (4, 102, 10, 10, 15), (5, 102, 10, 10, 16),
           (5, 104, 10, 10, 17);",
    )
    .unwrap();
}

#[test]
fn argument_errors_have_exact_messages() {
    let conn = memory();
    assert_eq!(
        error_of(&conn, "SELECT * FROM recommend(1, 3)"),
        "recommend: no foryou table in this database; create one with CREATE VIRTUAL TABLE feed USING foryou()"
    );
    assert_eq!(
        error_of(&conn, "SELECT * FROM similar_items(1, 3)"),
        "similar_items: no foryou table in this database; create one with CREATE VIRTUAL TABLE feed USING foryou()"
    );
    for f in ["similar_users", "why_recommended"] {
        assert_eq!(
            error_of(&conn, &format!("SELECT * FROM {f}(1, 3)")),
            format!("{f}: no foryou table in this database; create one with CREATE VIRTUAL TABLE feed USING foryou()")
        );
    }
    popularity_fixture(&conn);
    for f in ["recommend", "similar_items", "similar_users"] {
        let id = if f == "similar_items" {
            "item_id"
        } else {
            "user_id"
        };
        let cases = [
            (
                format!("{f}(NULL, 3)"),
                format!("{f}: {id} must be an integer, got NULL"),
            ),
            (
                format!("{f}('abc', 3)"),
                format!("{f}: {id} must be an integer, got 'abc'"),
            ),
            (
                format!("{f}(1.5, 3)"),
                format!("{f}: {id} must be an integer, got 1.5"),
            ),
            (
                format!("{f}(x'0102', 3)"),
                format!("{f}: {id} must be an integer, got a 2-byte BLOB"),
            ),
            (
                format!("{f}(1, 0)"),
                format!("{f}: k must be a positive integer, got 0"),
            ),
            (
                format!("{f}(1, -1)"),
                format!("{f}: k must be a positive integer, got -1"),
            ),
            (
                format!("{f}(1, 10001)"),
                format!("{f}: k too large, provided 10001, maximum 10000"),
            ),
            (
                format!("{f}(1, NULL)"),
                format!("{f}: k must be an integer, got NULL"),
            ),
            (
                format!("{f}(1, 'three')"),
                format!("{f}: k must be an integer, got 'three'"),
            ),
            (
                format!("{f}(1, 2.5)"),
                format!("{f}: k must be an integer, got 2.5"),
            ),
            (
                format!("{f}(1, 3, 'nope')"),
                format!("{f}: no foryou table named 'nope' in schema 'main' (foryou tables: feed)"),
            ),
            (
                format!("{f}(1, 3, 7)"),
                format!("{f}: model must be the name of a foryou table, got 7"),
            ),
            (
                format!("{f}(1, 3, x'00')"),
                format!("{f}: model must be the name of a foryou table, got a 1-byte BLOB"),
            ),
            (
                format!("{f}(1)"),
                format!("{f}: missing argument k; call it as {f}({id}, k [, model])"),
            ),
            (
                format!("{f}()"),
                format!("{f}: missing argument {id}; call it as {f}({id}, k [, model])"),
            ),
        ];
        for (call, expected) in cases {
            let sql = format!("SELECT * FROM {call}");
            assert_eq!(error_of(&conn, &sql), expected, "{sql}");
        }
        // SQLite itself refuses a fourth argument.
        assert_eq!(
            error_of(&conn, &format!("SELECT * FROM {f}(1, 2, 'feed', 4)")),
            format!("too many arguments on {f}() - max 3")
        );
    }
    why_recommended_argument_errors(&conn);
    // A plain table of the same name is not a model.
    conn.execute_batch("CREATE TABLE plain(x)").unwrap();
    assert_eq!(
        error_of(&conn, "SELECT * FROM recommend(1, 3, 'plain')"),
        "recommend: no foryou table named 'plain' in schema 'main' (foryou tables: feed)"
    );
    // The largest k is accepted.
    assert_eq!(ranked(&conn, "SELECT * FROM recommend(1, 10000)").len(), 4);
}

/// `why_recommended(user_id, item_id [, k [, model]])`: the rules of the other
/// functions, with two ids and an optional k (NULL or absent: the default).
fn why_recommended_argument_errors(conn: &Connection) {
    let f = "why_recommended";
    let usage = "why_recommended(user_id, item_id [, k] [, model])";
    let cases = [
        (
            "(NULL, 3)",
            "user_id must be an integer, got NULL".to_string(),
        ),
        (
            "('abc', 3)",
            "user_id must be an integer, got 'abc'".to_string(),
        ),
        (
            "(1, NULL)",
            "item_id must be an integer, got NULL".to_string(),
        ),
        (
            "(1, 1.5)",
            "item_id must be an integer, got 1.5".to_string(),
        ),
        (
            "(1, x'0102')",
            "item_id must be an integer, got a 2-byte BLOB".to_string(),
        ),
        (
            "(1, 2, 0)",
            "k must be a positive integer, got 0".to_string(),
        ),
        (
            "(1, 2, -1)",
            "k must be a positive integer, got -1".to_string(),
        ),
        (
            "(1, 2, 10001)",
            "k too large, provided 10001, maximum 10000".to_string(),
        ),
        (
            "(1, 2, 'three')",
            "k must be an integer, got 'three'".to_string(),
        ),
        ("(1, 2, 2.5)", "k must be an integer, got 2.5".to_string()),
        (
            "(1, 2, 3, 'nope')",
            "no foryou table named 'nope' in schema 'main' (foryou tables: feed)".to_string(),
        ),
        (
            "(1, 2, NULL, 7)",
            "model must be the name of a foryou table, got 7".to_string(),
        ),
        (
            "(1)",
            format!("missing argument item_id; call it as {usage}"),
        ),
        (
            "()",
            format!("missing argument user_id; call it as {usage}"),
        ),
    ];
    for (call, expected) in cases {
        let sql = format!("SELECT * FROM {f}{call}");
        assert_eq!(error_of(conn, &sql), format!("{f}: {expected}"), "{sql}");
    }
    assert_eq!(
        error_of(conn, &format!("SELECT * FROM {f}(1, 2, 3, 'feed', 5)")),
        format!("too many arguments on {f}() - max 4")
    );
    // The largest k, and a NULL k, are accepted.
    for k in ["10000", "NULL"] {
        assert!(try_run(conn, &format!("SELECT * FROM {f}(1, 100, {k})")).is_ok());
    }
}

#[test]
fn before_the_first_refit_recommend_is_live_popularity() {
    let conn = memory();
    popularity_fixture(&conn);
    // Unknown user: every item, most viewers first, ties by smaller id.
    let rows = ranked(&conn, "SELECT * FROM recommend(99, 10)");
    assert_well_ranked(&rows);
    assert_eq!(items(&rows), vec![100, 101, 102, 103, 104]);
    // k smaller than the catalogue.
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(99, 2)")),
        vec![100, 101]
    );
    // A known user: their watched items are left out.
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(2, 10)")),
        vec![102, 103, 104]
    );
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(5, 10)")),
        Vec::<i64>::new()
    );
    // Popularity is live: three more viewers of 104 make it the top item.
    conn.execute_batch("INSERT INTO feed VALUES (6, 104, 1, 1, 1), (7, 104, 1, 1, 1), (8, 104, 1, 1, 1), (8, 104, 1, 1, 1), (9, 104, 1, 1, 1), (10, 104, 1, 1, 1)")
        .unwrap();
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(99, 10)")),
        vec![104, 100, 101, 102, 103]
    );
    // No similar items without factors.
    assert_eq!(ranked(&conn, "SELECT * FROM similar_items(100, 5)"), vec![]);
}

#[test]
fn after_a_refit_unknown_users_get_popularity_as_of_the_refit() {
    let conn = memory();
    popularity_fixture(&conn);
    refit(&conn, "SELECT foryou_refit()");
    let rows = ranked(&conn, "SELECT * FROM recommend(99, 10)");
    assert_well_ranked(&rows);
    assert_eq!(items(&rows), vec![100, 101, 102, 103, 104]);
    // Events after the refit do not change the order for unknown users ...
    conn.execute_batch("INSERT INTO feed VALUES (6, 104, 1, 1, 1), (7, 104, 1, 1, 1), (8, 104, 1, 1, 1), (9, 104, 1, 1, 1), (10, 104, 1, 1, 1), (11, 105, 1, 1, 1)")
        .unwrap();
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(99, 10)")),
        vec![100, 101, 102, 103, 104]
    );
    // ... a user new since the refit never gets what they watched (whether their
    // events are folded in or they get popularity) ...
    let new_user = ranked(&conn, "SELECT * FROM recommend(6, 10)");
    assert_well_ranked(&new_user);
    let mut got = items(&new_user);
    got.sort_unstable();
    assert_eq!(got, vec![100, 101, 102, 103]);
    // ... and the next refit takes them in (105 is new in the catalogue).
    refit(&conn, "SELECT foryou_refit()");
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(99, 10)")),
        vec![104, 100, 101, 102, 103, 105]
    );
}

#[test]
fn k_larger_than_the_catalogue_returns_every_eligible_item() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 2)",
    )
    .unwrap();
    let pairs = checkerboard(&conn, "feed");
    refit(&conn, "SELECT foryou_refit()");
    for user in [0, 7, 13] {
        let watched: Vec<i64> = pairs.iter().filter(|p| p.0 == user).map(|p| p.1).collect();
        let rows = ranked(&conn, &format!("SELECT * FROM recommend({user}, 10000)"));
        assert_well_ranked(&rows);
        let mut got = items(&rows);
        got.sort_unstable();
        let expected: Vec<i64> = (0..20).filter(|i| !watched.contains(i)).collect();
        assert_eq!(got, expected, "user {user}");
        // The first rows of a large k are the rows of a small k.
        let top3 = ranked(&conn, &format!("SELECT * FROM recommend({user}, 3)"));
        assert_eq!(top3, rows[..3].to_vec(), "user {user}");
    }
    for item in [0, 19] {
        let rows = ranked(&conn, &format!("SELECT * FROM similar_items({item}, 500)"));
        assert_well_ranked(&rows);
        assert_eq!(rows.len(), 19);
        assert!(!items(&rows).contains(&item));
    }
    // An item or user the model never saw.
    assert_eq!(
        ranked(&conn, "SELECT * FROM similar_items(12345, 5)"),
        vec![]
    );
    assert_eq!(
        ranked(&conn, "SELECT * FROM recommend(12345, 50)").len(),
        20
    );
}

#[test]
fn scores_rank_and_hidden_arguments() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 2)",
    )
    .unwrap();
    checkerboard(&conn, "feed");
    refit(&conn, "SELECT foryou_refit()");
    let rows = ranked(&conn, "SELECT * FROM recommend(4, 8)");
    assert_well_ranked(&rows);
    assert_eq!(rows.len(), 8);
    // ORDER BY rank and LIMIT agree with the natural order.
    assert_eq!(
        ranked(
            &conn,
            "SELECT item_id, score, rank FROM recommend(4, 8) ORDER BY score DESC, rank LIMIT 3"
        ),
        rows[..3].to_vec()
    );
    // The hidden columns give back the call's arguments.
    assert_eq!(
        rows_of(
            &conn,
            "SELECT DISTINCT user_id, k, model FROM recommend(4, 8, 'feed')"
        ),
        vec![vec![
            Value::Integer(4),
            Value::Integer(8),
            Value::Text("feed".into())
        ]]
    );
    // Arguments as constraints on the hidden columns, instead of call syntax.
    assert_eq!(
        ranked(
            &conn,
            "SELECT item_id, score, rank FROM recommend WHERE user_id = 4 AND k = 8"
        ),
        rows
    );
    // Arguments from another table, row by row (a join).
    conn.execute_batch(
        "CREATE TABLE who(id INTEGER, n INTEGER); INSERT INTO who VALUES (4, 2), (15, 3);",
    )
    .unwrap();
    let joined = rows_of(&conn, "SELECT who.id, r.item_id, r.rank FROM who, recommend(who.id, who.n) AS r ORDER BY who.id, r.rank");
    assert_eq!(joined.len(), 5);
    let for_15 = ranked(&conn, "SELECT * FROM recommend(15, 3)");
    let expected: Vec<Vec<Value>> = rows[..2]
        .iter()
        .map(|r| (4, r))
        .chain(for_15.iter().map(|r| (15, r)))
        .map(|(u, r)| vec![Value::Integer(u), Value::Integer(r.0), Value::Integer(r.2)])
        .collect();
    assert_eq!(joined, expected);
}

fn rows_of(conn: &Connection, sql: &str) -> Vec<Vec<Value>> {
    rows(conn, sql)
}

#[test]
fn the_model_argument_chooses_between_tables() {
    let dir = TempDir::new("models");
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 2);
         INSERT INTO feed VALUES (1, 10, 1, 1, 1), (2, 10, 1, 1, 1), (2, 11, 1, 1, 1);",
    )
    .unwrap();
    // One table: the model argument may be omitted, or NULL, or named in any case.
    let default = items(&ranked(&conn, "SELECT * FROM recommend(1, 5)"));
    assert_eq!(default, vec![11]);
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(1, 5, NULL)")),
        default
    );
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(1, 5, 'FEED')")),
        default
    );
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(1, 5, 'main.feed')")),
        default
    );

    conn.execute_batch(
        "CREATE VIRTUAL TABLE clips USING foryou(factors = 2);
         INSERT INTO clips VALUES (1, 20, 1, 1, 1), (3, 21, 1, 1, 1), (4, 21, 1, 1, 1);",
    )
    .unwrap();
    for f in ["recommend", "similar_items"] {
        assert_eq!(
            error_of(&conn, &format!("SELECT * FROM {f}(1, 5)")),
            format!("{f}: 2 foryou tables exist (clips, feed); name one as the model argument")
        );
        assert_eq!(
            error_of(&conn, &format!("SELECT * FROM {f}(1, 5, NULL)")),
            format!("{f}: 2 foryou tables exist (clips, feed); name one as the model argument")
        );
        assert_eq!(
            error_of(&conn, &format!("SELECT * FROM {f}(1, 5, 'nope')")),
            format!(
                "{f}: no foryou table named 'nope' in schema 'main' (foryou tables: clips, feed)"
            )
        );
    }
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(1, 5, 'feed')")),
        vec![11]
    );
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(1, 5, 'clips')")),
        vec![21]
    );
    // Refits are per table.
    refit(&conn, "SELECT foryou_refit('clips')");
    assert_eq!(
        ranked(&conn, "SELECT * FROM similar_items(10, 5, 'feed')"),
        vec![]
    );
    assert_eq!(
        items(&ranked(
            &conn,
            "SELECT * FROM similar_items(20, 5, 'clips')"
        )),
        vec![21]
    );

    // A model in an attached database, named schema.table.
    let aux = dir.join("aux.db");
    conn.execute("ATTACH ?1 AS aux", [aux.to_str().unwrap()])
        .unwrap();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE aux.feed USING foryou(factors = 2);
         INSERT INTO aux.feed VALUES (1, 30, 1, 1, 1), (5, 31, 1, 1, 1), (6, 31, 1, 1, 1);",
    )
    .unwrap();
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(1, 5, 'aux.feed')")),
        vec![31]
    );
    assert_eq!(refit(&conn, "SELECT foryou_refit('aux.feed')")["items"], 2);
    assert_eq!(
        items(&ranked(
            &conn,
            "SELECT * FROM similar_items(30, 5, 'aux.feed')"
        )),
        vec![31]
    );
    assert_eq!(
        error_of(&conn, "SELECT * FROM recommend(1, 5, 'aux.clips')"),
        "recommend: no foryou table named 'clips' in schema 'aux' (foryou tables: feed)"
    );
    // main's own tables are untouched by the attached model.
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(1, 5, 'feed')")),
        vec![11]
    );
    conn.execute_batch("DETACH aux").unwrap();
}

/// A and B on one database file: a refit by either is seen by the other.
fn two_connections_see_each_others_refits(wal: bool) {
    let dir = TempDir::new(if wal { "wal" } else { "journal" });
    let path = dir.join("feed.db");
    let a = open(&path);
    if wal {
        assert_eq!(text(&a, "PRAGMA journal_mode = WAL"), "wal");
    }
    a.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 1, threads = 1)").unwrap();
    checkerboard(&a, "feed");
    let b = open(&path);
    if wal {
        assert_eq!(text(&b, "PRAGMA journal_mode"), "wal");
    }
    let query = "SELECT * FROM recommend(3, 10)";
    let similar = "SELECT * FROM similar_items(3, 10)";

    // B serves popularity before any refit, and caches nothing wrong.
    let popular = ranked(&b, query);
    assert_eq!(ranked(&b, similar), vec![]);

    // A refits: B's next call serves the new model.
    refit(&a, "SELECT foryou_refit()");
    let v1 = ranked(&a, query);
    assert_ne!(v1, popular);
    assert_eq!(ranked(&b, query), v1, "B did not see A's first refit");
    let v1_similar = ranked(&b, similar);
    assert_eq!(v1_similar.len(), 10);

    // A refits again with another seed: B (which has the first model cached) follows.
    refit(&a, r#"SELECT foryou_refit('feed', '{"seed": 2}')"#);
    let v2 = ranked(&a, query);
    assert_ne!(v2, v1);
    assert_eq!(ranked(&b, query), v2, "B kept serving its cached model");
    assert_ne!(ranked(&b, similar), v1_similar);

    // B refits: A (which has the second model cached) follows.
    let report = refit(
        &b,
        r#"SELECT foryou_refit('feed', '{"seed": 3, "factors": 3}')"#,
    );
    assert_eq!(report["version"], 3);
    let v3 = ranked(&b, query);
    assert_ne!(v3, v2);
    assert_eq!(ranked(&a, query), v3, "A kept serving its cached model");
    assert_eq!(ranked(&a, similar), ranked(&b, similar));
    assert_eq!(
        int(&a, "SELECT value FROM feed_model WHERE key = 'version'"),
        3
    );

    // A refit rolled back by B is never seen by A.
    b.execute_batch("BEGIN").unwrap();
    refit(&b, r#"SELECT foryou_refit('feed', '{"seed": 4}')"#);
    b.execute_batch("ROLLBACK").unwrap();
    assert_eq!(ranked(&a, query), v3);
    assert_eq!(ranked(&b, query), v3);
}

#[test]
fn another_connections_refit_is_seen_in_rollback_journal_mode() {
    two_connections_see_each_others_refits(false);
}

#[test]
fn another_connections_refit_is_seen_in_wal_mode() {
    two_connections_see_each_others_refits(true);
}

#[test]
fn a_reader_keeps_its_snapshot_until_its_transaction_ends() {
    let dir = TempDir::new("snapshot");
    let path = dir.join("feed.db");
    let a = open(&path);
    assert_eq!(text(&a, "PRAGMA journal_mode = WAL"), "wal");
    a.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 1)",
    )
    .unwrap();
    checkerboard(&a, "feed");
    refit(&a, "SELECT foryou_refit()");
    let b = open(&path);
    let query = "SELECT * FROM recommend(12, 6)";
    let v1 = ranked(&b, query);
    // B reads inside a transaction; A's refit commits meanwhile.
    b.execute_batch("BEGIN").unwrap();
    assert_eq!(ranked(&b, query), v1);
    refit(&a, r#"SELECT foryou_refit('feed', '{"seed": 7}')"#);
    let v2 = ranked(&a, query);
    assert_ne!(v2, v1);
    // Old model or new one, never a mix: B still sees its snapshot ...
    assert_eq!(ranked(&b, query), v1);
    b.execute_batch("COMMIT").unwrap();
    // ... and the new model once its transaction is over.
    assert_eq!(ranked(&b, query), v2);
}

/// Popularity before the first refit is live: every committed or own change shows at once.
#[test]
fn live_popularity_follows_every_change() {
    let dir = TempDir::new("popularity");
    let path = dir.join("feed.db");
    let a = open(&path);
    a.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 2);
         INSERT INTO feed VALUES (1, 100, 1, 1, 1), (2, 100, 1, 1, 1), (3, 101, 1, 1, 1);",
    )
    .unwrap();
    let b = open(&path);
    let query = "SELECT * FROM recommend(99, 5)";
    assert_eq!(items(&ranked(&a, query)), vec![100, 101]);
    assert_eq!(items(&ranked(&b, query)), vec![100, 101]);
    // Own writes.
    a.execute_batch("INSERT INTO feed VALUES (4, 101, 1, 1, 1), (5, 101, 1, 1, 1)")
        .unwrap();
    assert_eq!(items(&ranked(&a, query)), vec![101, 100]);
    // Another connection's commit.
    assert_eq!(items(&ranked(&b, query)), vec![101, 100]);
    b.execute_batch("DELETE FROM feed WHERE item_id = 101")
        .unwrap();
    assert_eq!(items(&ranked(&a, query)), vec![100]);
    b.execute_batch("UPDATE feed SET item_id = 102 WHERE user_id = 1")
        .unwrap();
    assert_eq!(items(&ranked(&a, query)), vec![100, 102]);
}

#[test]
fn live_popularity_forgets_rolled_back_events() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 2);
         INSERT INTO feed VALUES (1, 100, 1, 1, 1), (2, 100, 1, 1, 1), (3, 101, 1, 1, 1);",
    )
    .unwrap();
    let query = "SELECT * FROM recommend(99, 5)";
    assert_eq!(items(&ranked(&conn, query)), vec![100, 101]);
    conn.execute_batch("BEGIN; INSERT INTO feed VALUES (4, 101, 1, 1, 1), (5, 101, 1, 1, 1);")
        .unwrap();
    assert_eq!(
        items(&ranked(&conn, query)),
        vec![101, 100],
        "inside the transaction"
    );
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        items(&ranked(&conn, query)),
        vec![100, 101],
        "after ROLLBACK"
    );
    // The same with a savepoint.
    conn.execute_batch("SAVEPOINT s; INSERT INTO feed VALUES (4, 102, 1, 1, 1), (5, 102, 1, 1, 1), (6, 102, 1, 1, 1);").unwrap();
    assert_eq!(
        items(&ranked(&conn, query)),
        vec![102, 100, 101],
        "inside the savepoint"
    );
    conn.execute_batch("ROLLBACK TO s; RELEASE s;").unwrap();
    assert_eq!(
        items(&ranked(&conn, query)),
        vec![100, 101],
        "after ROLLBACK TO"
    );
}

#[test]
fn live_popularity_belongs_to_the_table_now_bearing_the_name() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 2);
         INSERT INTO feed VALUES (1, 100, 1, 1, 1), (2, 100, 1, 1, 1), (3, 101, 1, 1, 1);
         CREATE VIRTUAL TABLE other USING foryou(factors = 2);
         INSERT INTO other VALUES (1, 500, 1, 1, 1);",
    )
    .unwrap();
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(99, 5, 'feed')")),
        vec![100, 101]
    );
    conn.execute_batch("DROP TABLE feed; ALTER TABLE other RENAME TO feed;")
        .unwrap();
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(99, 5, 'feed')")),
        vec![500]
    );
}

/// What a serving call resolved (table, options, model) is kept while the database is
/// unchanged; DDL, this connection's writes and refits must each make it read afresh.
#[test]
fn serving_sees_ddl_and_own_writes_at_the_next_call() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 1)",
    )
    .unwrap();
    let pairs = checkerboard(&conn, "feed");
    refit(&conn, "SELECT foryou_refit('feed')");
    // User 0 has a stored vector: scores are dot products, not popularity counts.
    let before = ranked(&conn, "SELECT * FROM recommend(0, 3)");
    assert_eq!(before.len(), 3);
    let watched: Vec<i64> = pairs.iter().filter(|p| p.0 == 0).map(|p| p.1).collect();
    assert!(before.iter().all(|r| !watched.contains(&r.0)));

    // An option changed by DDL (drop, recreate with exclude_watched = false): the next
    // call sees the new table, which has no model yet (popularity, watched included).
    conn.execute_batch(
        "DROP TABLE feed;
         CREATE VIRTUAL TABLE feed USING foryou(factors = 4, exclude_watched = false);
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES
           (0, 7, 10, 10, 1), (1, 7, 10, 10, 2), (2, 8, 10, 10, 3);",
    )
    .unwrap();
    assert_eq!(
        ranked(&conn, "SELECT * FROM recommend(0, 3)"),
        vec![(7, 2.0, 1), (8, 1.0, 2)]
    );
    // Our own insert (no other connection, no DDL) moves popularity at the next call.
    conn.execute_batch(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (3, 8, 10, 10, 4), (4, 8, 10, 10, 5)",
    )
    .unwrap();
    assert_eq!(
        ranked(&conn, "SELECT * FROM recommend(0, 3)"),
        vec![(8, 3.0, 1), (7, 2.0, 2)]
    );
    // A rename: the old name is gone at once, the new one serves.
    conn.execute_batch("ALTER TABLE feed RENAME TO clips")
        .unwrap();
    assert_eq!(
        error_of(&conn, "SELECT * FROM recommend(0, 3, 'feed')"),
        "recommend: no foryou table named 'feed' in schema 'main' (foryou tables: clips)"
    );
    assert_eq!(
        ranked(&conn, "SELECT * FROM recommend(0, 1, 'clips')"),
        vec![(8, 3.0, 1)]
    );
    assert_eq!(
        ranked(&conn, "SELECT * FROM recommend(0, 1)"),
        vec![(8, 3.0, 1)]
    );
}

/// A folded-in vector is reused while nothing changes, and recomputed when the user's
/// events change through this same connection (no other connection involved).
#[test]
fn a_folded_in_user_follows_their_own_updates() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 6, iterations = 10, seed = 3, confidence = linear, skip_ratio = 0, exclude_watched = false)")
        .unwrap();
    checkerboard(&conn, "feed");
    refit(&conn, "SELECT foryou_refit('feed')");
    // A new user who watched items of the first block only.
    conn.execute_batch(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (100, 0, 15, 15, 1), (100, 1, 15, 15, 2), (100, 2, 15, 15, 3)",
    )
    .unwrap();
    let first = ranked(&conn, "SELECT * FROM recommend(100, 5)");
    assert!(first.iter().all(|r| r.0 < 10), "{first:?}");
    assert_eq!(ranked(&conn, "SELECT * FROM recommend(100, 5)"), first);
    // The same user's events now say the second block: updated in place (same rowids).
    conn.execute_batch("UPDATE feed SET item_id = item_id + 10 WHERE user_id = 100")
        .unwrap();
    let after = ranked(&conn, "SELECT * FROM recommend(100, 5)");
    assert!(after.iter().all(|r| r.0 >= 10), "{after:?}");
}

/// A user whose every event is a swipe-away gets no stored vector from a refit (they
/// have no taste to rank by) and is served popularity, like a user with no events.
#[test]
fn users_who_only_skipped_get_no_stored_vector() {
    let conn = memory();
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 5, seed = 1, skip_ratio = 0.2)")
        .unwrap();
    checkerboard(&conn, "feed");
    conn.execute_batch(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (50, 0, 1, 15, 1), (50, 11, 1, 15, 2)",
    )
    .unwrap();
    let report = refit(&conn, "SELECT foryou_refit('feed')");
    assert_eq!(report["users"], 21);
    let stored = factor_blobs(&conn, "feed", "users").len() / (4 * 4);
    assert_eq!(stored, 20);
    let mut ids: Vec<i64> = Vec::new();
    let mut stmt = conn
        .prepare("SELECT ids FROM feed_users ORDER BY chunk")
        .unwrap();
    for blob in stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
        ids.extend(
            blob.unwrap()
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap())),
        );
    }
    assert!(!ids.contains(&50) && ids.contains(&0));
    // Popularity as of the refit (5 watchers per item; ties by smaller id), skipped ones out.
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(50, 3)")),
        vec![1, 2, 3]
    );
}

/// A fitted `feed` in its own file whose items are `first..first + 6`, written by its own
/// connection: the same DDL and statement count for every `first`, so two such files
/// have equal `schema_version`s and leave the reader's `total_changes` alone.
fn model_file(path: &std::path::Path, first: i64) {
    let conn = open(path);
    conn.execute_batch("CREATE VIRTUAL TABLE feed USING foryou(factors = 2, tune = false)")
        .unwrap();
    for user in 0..6i64 {
        for j in 0..6i64 {
            if (user + j) % 3 != 0 {
                conn.execute(
                    "INSERT INTO feed VALUES (?1, ?2, 10, 10, 1)",
                    (user, first + j),
                )
                .unwrap();
            }
        }
    }
    refit(&conn, "SELECT foryou_refit()");
}

#[test]
fn detach_then_attach_another_file_serves_the_new_file() {
    let dir = TempDir::new("reattach");
    let (a, b) = (dir.join("a.db"), dir.join("b.db"));
    model_file(&a, 100);
    model_file(&b, 200);
    let conn = memory();
    let ids = |sql: &str| items(&ranked(&conn, sql));
    let attach = |path: &std::path::Path| {
        conn.execute("ATTACH ?1 AS aux", [path.to_str().unwrap()])
            .unwrap();
    };
    let all_in = |ids: &[i64], first: i64| {
        !ids.is_empty() && ids.iter().all(|i| (first..first + 6).contains(i))
    };
    attach(&a);
    let from_a = ids("SELECT * FROM recommend(0, 3, 'aux.feed')");
    let similar_a = ids("SELECT * FROM similar_items(101, 3, 'aux.feed')");
    assert!(all_in(&from_a, 100), "{from_a:?}");
    assert!(all_in(&similar_a, 100), "{similar_a:?}");
    conn.execute_batch("DETACH aux").unwrap();
    attach(&b);
    let from_b = ids("SELECT * FROM recommend(0, 3, 'aux.feed')");
    assert!(all_in(&from_b, 200), "{from_b:?}");
    let similar_b = ids("SELECT * FROM similar_items(201, 3, 'aux.feed')");
    assert!(all_in(&similar_b, 200), "{similar_b:?}");
    assert_eq!(
        ids("SELECT * FROM similar_items(101, 3, 'aux.feed')"),
        Vec::<i64>::new()
    );
    // Back to the first file: its model again.
    conn.execute_batch("DETACH aux").unwrap();
    attach(&a);
    assert_eq!(ids("SELECT * FROM recommend(0, 3, 'aux.feed')"), from_a);
    assert_eq!(
        ids("SELECT * FROM similar_items(101, 3, 'aux.feed')"),
        similar_a
    );
    // A file whose model tag is the other's (a crafted file): the decoded model of one
    // file is still not served for the other.
    conn.execute_batch("DETACH aux").unwrap();
    {
        let plain = Connection::open(&b).unwrap();
        let tag: String = Connection::open(&a)
            .unwrap()
            .query_row("SELECT value FROM feed_model WHERE key = 'tag'", [], |r| {
                r.get(0)
            })
            .unwrap();
        plain
            .execute("UPDATE feed_model SET value = ?1 WHERE key = 'tag'", [tag])
            .unwrap();
    }
    attach(&b);
    assert_eq!(ids("SELECT * FROM recommend(0, 3, 'aux.feed')"), from_b);
    assert_eq!(
        ids("SELECT * FROM similar_items(201, 3, 'aux.feed')"),
        similar_b
    );
}

#[test]
fn the_module_is_read_from_the_statement_not_from_its_comments_or_names() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed /* USING fts5 */ USING foryou(factors = 2);
         INSERT INTO feed VALUES (1, 10, 1, 1, 1), (2, 10, 1, 1, 1), (2, 11, 1, 1, 1);
         CREATE VIRTUAL TABLE \"x USING foryou\" USING fts5(body);
         CREATE VIRTUAL TABLE notes -- USING foryou
           USING fts5(body);",
    )
    .unwrap();
    // The one foryou table is found, and only it.
    assert_eq!(
        items(&ranked(&conn, "SELECT * FROM recommend(1, 5)")),
        vec![11]
    );
    assert_eq!(
        error_of(&conn, "SELECT * FROM recommend(1, 5, 'x USING foryou')"),
        "recommend: no foryou table named 'x USING foryou' in schema 'main' (foryou tables: feed)"
    );
    assert_eq!(refit(&conn, "SELECT foryou_refit()")["model"], "feed");
}

#[test]
fn model_names_with_dots_can_be_quoted() {
    let dir = TempDir::new("dots");
    let conn = memory();
    let aux = dir.join("my.db");
    conn.execute("ATTACH ?1 AS \"my.db\"", [aux.to_str().unwrap()])
        .unwrap();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE \"my.table\" USING foryou(factors = 2);
         INSERT INTO \"my.table\" VALUES (1, 10, 1, 1, 1), (2, 10, 1, 1, 1), (2, 11, 1, 1, 1);
         CREATE VIRTUAL TABLE \"my.db\".feed USING foryou(factors = 2);
         INSERT INTO \"my.db\".feed VALUES (1, 20, 1, 1, 1), (2, 20, 1, 1, 1), (2, 21, 1, 1, 1);
         CREATE VIRTUAL TABLE \"my.db\".\"my.table\" USING foryou(factors = 2);
         INSERT INTO \"my.db\".\"my.table\" VALUES (1, 30, 1, 1, 1), (2, 30, 1, 1, 1), (2, 31, 1, 1, 1);",
    )
    .unwrap();
    let top = |model: &str| {
        items(&ranked(
            &conn,
            &format!("SELECT * FROM recommend(1, 5, '{model}')"),
        ))
    };
    assert_eq!(top("\"my.table\""), vec![11]);
    assert_eq!(top("main.\"my.table\""), vec![11]);
    assert_eq!(top("\"main\".[my.table]"), vec![11]);
    // Unquoted: the exact table name comes first.
    assert_eq!(top("my.table"), vec![11]);
    assert_eq!(top("MY.TABLE"), vec![11]);
    assert_eq!(top("\"my.db\".feed"), vec![21]);
    assert_eq!(top("\"my.db\".\"my.table\""), vec![31]);
    assert_eq!(top("`my.db`.`my.table`"), vec![31]);
    assert_eq!(
        refit(&conn, "SELECT foryou_refit('\"my.db\".feed')")["model"],
        "feed"
    );
    assert_eq!(
        refit(&conn, "SELECT foryou_refit('\"my.db\".\"my.table\"')")["model"],
        "my.table"
    );
    assert_eq!(
        items(&ranked(
            &conn,
            "SELECT * FROM similar_items(30, 5, '\"my.db\".\"my.table\"')"
        )),
        vec![31]
    );
    assert_eq!(
        error_of(&conn, "SELECT * FROM recommend(1, 5, '\"my.db\".nope')"),
        "recommend: no foryou table named 'nope' in schema 'my.db' (foryou tables: feed, my.table)"
    );
    assert_eq!(
        error_of(&conn, "SELECT * FROM recommend(1, 5, '\"my.table')"),
        "recommend: model must be a table name, or schema.table, with a part that holds a dot \
         in double quotes (such as aux.\"my.table\"), got '\"my.table'"
    );
    // An unquoted name that is no table in main is split at its first dot, as before.
    assert_eq!(
        error_of(&conn, "SELECT * FROM recommend(1, 5, 'my.feed')"),
        "recommend: cannot read schema 'my' (unknown database \"my\")"
    );
}
