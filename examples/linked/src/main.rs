//! foryou inside a Rust application that links its own SQLite (rusqlite's `bundled`):
//! `foryou::register_auto_extension()` once, then every connection has the `foryou`
//! module and its functions, as after `.load` in the shell. Exits non-zero if a check
//! fails (`make linked-example`, part of `make test`).

use rusqlite::Connection;

/// 60 users who each love one of 3 genres (user u loves genre u % 3), 90 videos; a
/// favourite is watched 1.5 times, anything else swiped away after a tenth.
const EVENTS: &str = "
    CREATE VIRTUAL TABLE feed USING foryou(factors = 16, skip_ratio = 0.5);
    CREATE TABLE videos(item_id INTEGER PRIMARY KEY, genre INTEGER, duration REAL);
    WITH RECURSIVE n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n WHERE value < 90)
    INSERT INTO videos SELECT value, value % 3, 10 + value * 37 % 50 FROM n;
    WITH RECURSIVE u(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM u WHERE value < 60),
                   n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n WHERE value < 30)
    INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
      SELECT u.value, v.item_id,
             CASE WHEN v.item_id % 3 = u.value % 3 THEN 1.5 * v.duration ELSE 0.1 * v.duration END,
             v.duration, 1700000000 + 100 * u.value + n.value
      FROM u, n JOIN videos AS v ON v.item_id = 1 + (u.value * 17 + n.value * 7) % 90;";

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        println!("ok: {what}");
        Ok(())
    } else {
        Err(format!("failed: {what}"))
    }
}

fn genres(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |row| row.get(0))?;
    rows.collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A connection opened before registration gets foryou by register_connection.
    let early = Connection::open_in_memory()?;
    foryou::register_connection(&early)?;
    let version: String = early.query_row("SELECT foryou_version()", [], |r| r.get(0))?;
    check(
        !version.is_empty(),
        &format!("foryou {version} on a connection opened before"),
    )?;

    // Every connection opened from now on has it.
    foryou::register_auto_extension()?;
    let conn = Connection::open_in_memory()?;
    let sqlite: String = conn.query_row("SELECT sqlite_version()", [], |r| r.get(0))?;
    println!("SQLite {sqlite} (the application's own, bundled)");
    conn.execute_batch(EVENTS)?;
    let report: String = conn.query_row("SELECT foryou_refit('feed')", [], |r| r.get(0))?;
    println!("refit: {report}");

    let top = genres(
        &conn,
        "SELECT genre FROM recommend(1, 5) JOIN videos USING (item_id) ORDER BY rank",
    )?;
    println!("user 1 (loves genre 1): genres of the top 5: {top:?}");
    check(
        top.len() == 5 && top.iter().all(|&g| g == 1),
        "the feed is of the loved genre",
    )?;

    // The allow-list reaches the scan (SQLite's whole-IN-list interface, read from the
    // API table SQLite hands an auto extension): exactly k rows of the listed genre.
    let listed = genres(
        &conn,
        "SELECT genre FROM recommend(1, 5) JOIN videos USING (item_id)
         WHERE item_id IN (SELECT item_id FROM videos WHERE genre = 2) ORDER BY rank",
    )?;
    println!("user 1, only genre 2 allowed: {listed:?}");
    check(
        listed == vec![2; 5],
        "an allow-list gives exactly k allowed items",
    )?;

    // The first connection, registered by hand, serves the same way.
    early.execute_batch(EVENTS)?;
    early.query_row("SELECT foryou_refit('feed')", [], |r| r.get::<_, String>(0))?;
    let early_top = genres(
        &early,
        "SELECT genre FROM recommend(1, 5) JOIN videos USING (item_id) ORDER BY rank",
    )?;
    check(
        early_top == top,
        "the connection registered by hand gives the same feed",
    )?;
    let early_listed = genres(
        &early,
        "SELECT genre FROM recommend(1, 5) JOIN videos USING (item_id)
         WHERE item_id IN (SELECT item_id FROM videos WHERE genre = 2) ORDER BY rank",
    )?;
    check(early_listed == listed, "and the same allow-listed feed")?;
    Ok(())
}
