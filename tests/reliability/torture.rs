//! `make torture`: kill -9 during refits and INSERT batches (rollback journal and WAL),
//! disk full, and a concurrent WAL load. See tests/reliability/README.md.
//!
//! torture [--trials N] [--seconds S] [--seed N] [--only kill|full|load]

// Test tooling: counts and sizes far inside every type they are cast to.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::too_many_lines,
    clippy::format_push_string,
    clippy::similar_names,
    clippy::doc_markdown
)]

#[path = "shared.rs"]
mod shared;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};
use shared::{message, Rng};

/// Findings of one part: new failures and KNOWN hits.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    known: BTreeMap<&'static str, Vec<String>>,
}

impl Report {
    fn fail(&mut self, what: String) {
        println!("FAIL {what}");
        self.failures.push(what);
    }
    fn known(&mut self, id: &'static str, what: String) {
        let _ = shared::known(id);
        if shared::is_fixed(id) {
            self.fail(format!("fixed finding {id} regressed: {what}"));
            return;
        }
        println!("KNOWN {id}: {what}");
        self.known.entry(id).or_default().push(what);
    }
}

fn open(path: &Path) -> Connection {
    let c = shared::open_ext(path);
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    // The parent reads every line; once it is gone (killed, or done with this child),
    // there is no one to work for: stop rather than run on as an orphan.
    if writeln!(o, "{line}").and_then(|()| o.flush()).is_err() {
        std::process::exit(3);
    }
}

// ---------------------------------------------------------------- (a) kill -9

const BASE_USERS: i64 = 400;
const MARK: i64 = 1_000_000_000;

/// A database with `feed` (events of `BASE_USERS` users, one model) and `auto`
/// (auto_refit), in journal mode `mode`; returns how long a full refit of feed took.
fn template(dir: &Path, mode: &str) -> (PathBuf, Duration) {
    let path = dir.join(format!("template-{mode}.db"));
    let c = open(&path);
    let got: String = c
        .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))
        .unwrap();
    assert_eq!(got.to_lowercase(), mode.to_lowercase());
    c.execute_batch(&format!(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 24, iterations = 6, tune = false);
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
           SELECT value % {BASE_USERS}, (value * 7 + value / {BASE_USERS}) % 300, (value * 13) % 40, 30, value
           FROM generate_series(1, 24000);
         CREATE VIRTUAL TABLE auto USING foryou(factors = 8, iterations = 2, incremental_iterations = 1,
           tune = false, auto_refit = 300);
         INSERT INTO auto(user_id, item_id, watch_time, duration, ts)
           SELECT value % 50, value % 90, 20, 30, value FROM generate_series(1, 299);"
    ))
    .unwrap();
    let t = Instant::now();
    c.query_row("SELECT foryou_refit('feed')", [], |_| Ok(()))
        .unwrap();
    (path, t.elapsed())
}

/// The child of a kill trial: inserts batches (kind insert/auto) or refits (kind refit)
/// until killed, announcing each commit before (`P`) and after (`C`) it.
fn kill_child(path: &Path, kind: &str, seed: u64) {
    let c = open(path);
    let mut r = Rng::new(seed);
    let table = if kind == "auto" { "auto" } else { "feed" };
    let mut count: i64 = c
        .query_row(&format!("SELECT count(*) FROM {table}_events"), [], |r| {
            r.get(0)
        })
        .unwrap();
    if kind == "refit" {
        let mut v: i64 = c
            .query_row(
                "SELECT value FROM feed_model WHERE key = 'version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        for n in 0.. {
            out(&format!("R {v}"));
            let mode = if n % 2 == 0 { "full" } else { "incremental" };
            let report: String = c
                .query_row(
                    &format!("SELECT foryou_refit('feed', '{{\"mode\": \"{mode}\"}}')"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let j: serde_json::Value = serde_json::from_str(&report).unwrap();
            v = j["version"].as_i64().unwrap();
            out(&format!("D {v}"));
        }
        return;
    }
    for b in 1i64.. {
        let size = *r.pick(&[1i64, 3, 20, 200, 2000]);
        let form = r.below(3);
        out(&format!("P {b} {size} {}", count + size));
        let rows = format!(
            "SELECT {BASE_USERS} + value % 97, value % 300, 10, 30, {} FROM generate_series(1, {size})",
            MARK + b
        );
        let sql = format!("INSERT INTO {table}(user_id, item_id, watch_time, duration, ts) {rows}");
        match form {
            0 => c.execute_batch(&sql).unwrap(),
            1 => c.execute_batch(&format!("BEGIN; {sql}; COMMIT;")).unwrap(),
            _ => {
                // Row by row inside one transaction.
                c.execute_batch("BEGIN").unwrap();
                let mut st = c
                    .prepare(&format!(
                        "INSERT INTO {table}(user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, 10, 30, ?3)"
                    ))
                    .unwrap();
                for i in 1..=size {
                    st.execute((BASE_USERS + i % 97, i % 300, MARK + b))
                        .unwrap();
                }
                drop(st);
                c.execute_batch("COMMIT").unwrap();
            }
        }
        count += size;
        out(&format!("C {b} {count}"));
    }
}

struct KillStats {
    trials: u64,
    survived: u64,
    rows_lost: i64,
    mid: u64,
}

/// Checks the state after a kill: integrity, events (every committed batch whole, none
/// partial), the model (old or old + 1, and it decodes).
fn verify_after_kill(
    path: &Path,
    kind: &str,
    lines: &[String],
    base_count: i64,
    base_version: i64,
    rep: &mut Report,
    tag: &str,
) -> (bool, i64) {
    let c = open(path);
    let mut ok = true;
    let integrity: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap_or_else(|e| message(&e));
    if integrity != "ok" {
        rep.fail(format!("{tag}: integrity_check {integrity}"));
        ok = false;
    }
    let table = if kind == "auto" { "auto" } else { "feed" };
    let count: i64 = c
        .query_row(&format!("SELECT count(*) FROM {table}_events"), [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut lost = 0;
    if kind != "refit" {
        // Committed: the last C; maybe also the batch announced by a later P.
        let mut committed = base_count;
        let mut pending: Option<(i64, i64, i64)> = None;
        let mut sizes: BTreeMap<i64, i64> = BTreeMap::new();
        for l in lines {
            let p: Vec<&str> = l.split(' ').collect();
            match p[0] {
                "P" => {
                    let (b, s, e) = (
                        p[1].parse().unwrap(),
                        p[2].parse().unwrap(),
                        p[3].parse().unwrap(),
                    );
                    sizes.insert(b, s);
                    pending = Some((b, s, e));
                }
                "C" => {
                    committed = p[2].parse().unwrap();
                    pending = None;
                }
                _ => {}
            }
        }
        let allowed: Vec<i64> = std::iter::once(committed)
            .chain(pending.map(|p| p.2))
            .collect();
        if !allowed.contains(&count) {
            rep.fail(format!(
                "{tag}: {count} events after the kill; committed {committed}, allowed {allowed:?}"
            ));
            ok = false;
            if count < committed {
                lost = committed - count;
            }
        }
        let mut st = c
            .prepare(&format!(
                "SELECT ts - {MARK}, count(*) FROM {table}_events WHERE ts > {MARK} GROUP BY ts"
            ))
            .unwrap();
        let got: Vec<(i64, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (b, n) in got {
            if sizes.get(&b) != Some(&n) {
                rep.fail(format!(
                    "{tag}: batch {b} has {n} of its {:?} rows (a partial statement)",
                    sizes.get(&b)
                ));
                ok = false;
            }
        }
    } else if count != base_count {
        rep.fail(format!(
            "{tag}: a refit changed the event count {base_count} -> {count}"
        ));
        ok = false;
    }
    // The model: old or old + 1, complete and decodable.
    let version: Option<i64> = c
        .query_row(
            &format!("SELECT value FROM {table}_model WHERE key = 'version'"),
            [],
            |r| r.get(0),
        )
        .ok();
    let mut last_done = base_version;
    let mut in_flight = kind != "insert";
    for l in lines {
        if let Some(v) = l.strip_prefix("D ") {
            last_done = v.parse().unwrap();
            in_flight = false;
        } else if l.starts_with("R ") || l.starts_with("P ") {
            in_flight = true;
        }
    }
    if kind == "refit" {
        let allowed: Vec<i64> = if in_flight {
            vec![last_done, last_done + 1]
        } else {
            vec![last_done]
        };
        if !version.is_some_and(|v| allowed.contains(&v)) {
            rep.fail(format!(
                "{tag}: model version {version:?} after the kill, allowed {allowed:?}"
            ));
            ok = false;
        }
    } else if kind == "insert" && version != Some(base_version) {
        rep.fail(format!(
            "{tag}: an INSERT changed the model version {base_version} -> {version:?}"
        ));
        ok = false;
    }
    if let Some(v) = version {
        if let Err(e) = model_consistent(&c, table, v) {
            rep.fail(format!(
                "{tag}: the model does not decode after the kill: {e}"
            ));
            ok = false;
        }
    }
    (ok, lost)
}

/// The stored model of `table` is whole: its report names its version, every chunk's
/// blobs have the report's shape, and recommend/similar_items serve it.
fn model_consistent(c: &Connection, table: &str, version: i64) -> Result<(), String> {
    let report: String = c
        .query_row(
            &format!("SELECT value FROM {table}_model WHERE key = 'report'"),
            [],
            |r| r.get(0),
        )
        .map_err(|e| message(&e))?;
    let j: serde_json::Value = serde_json::from_str(&report).map_err(|e| e.to_string())?;
    if j["version"].as_i64() != Some(version) {
        return Err(format!(
            "report version {} but version {version}",
            j["version"]
        ));
    }
    let dim = j["factors"].as_i64().unwrap_or(0);
    for part in ["users", "items"] {
        let mut st = c
            .prepare(&format!(
                "SELECT length(ids), length(factors) FROM {table}_{part}"
            ))
            .unwrap();
        let rows: Vec<(i64, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if rows.is_empty() {
            return Err(format!("no {part} chunks"));
        }
        for (ids, f) in rows {
            if ids % 8 != 0 || f != ids / 8 * dim * 4 {
                return Err(format!(
                    "{part} chunk of {ids} id bytes and {f} factor bytes for {dim} factors"
                ));
            }
        }
    }
    for sql in [
        format!("SELECT count(*) FROM recommend(1, 10, '{table}')"),
        format!("SELECT count(*) FROM similar_items(1, 5, '{table}')"),
    ] {
        c.query_row(&sql, [], |r| r.get::<_, i64>(0))
            .map_err(|e| format!("{sql}: {}", message(&e)))?;
    }
    Ok(())
}

fn kill_trials(mode: &str, kind: &str, trials: u64, seed: u64, rep: &mut Report) -> KillStats {
    let dir = tempfile::tempdir().unwrap();
    let (template, refit_time) = template(dir.path(), mode);
    let mut stats = KillStats {
        trials: 0,
        survived: 0,
        rows_lost: 0,
        mid: 0,
    };
    let mut r = Rng::stream(seed, 7);
    for t in 0..trials {
        let path = dir.path().join(format!("trial-{t}.db"));
        std::fs::copy(&template, &path).unwrap();
        let (base_count, base_version) = {
            let c = open(&path);
            let table = if kind == "auto" { "auto" } else { "feed" };
            let n: i64 = c
                .query_row(&format!("SELECT count(*) FROM {table}_events"), [], |r| {
                    r.get(0)
                })
                .unwrap();
            let v: i64 = c
                .query_row(
                    &format!("SELECT value FROM {table}_model WHERE key = 'version'"),
                    [],
                    |r| r.get(0),
                )
                .unwrap_or(0);
            (n, v)
        };
        let mut child = Command::new(shared::self_copy())
            .args([
                "--kill-child",
                path.to_str().unwrap(),
                kind,
                &(seed ^ t).to_string(),
            ])
            .env("FORYOU_EXT", foryou_tests::extension_path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let l2 = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(line);
            }
        });
        // Wait for the first announcement, then kill at a random moment.
        let start = Instant::now();
        while lines.lock().unwrap().is_empty() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let window = match kind {
            "refit" => refit_time.mul_f64(2.5),
            _ => Duration::from_millis(600),
        };
        std::thread::sleep(window.mul_f64(r.below(1000) as f64 / 1000.0));
        let alive = child.try_wait().unwrap().is_none();
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let lines = lines.lock().unwrap().clone();
        let tag = format!("kill {kind} {mode} trial {t}");
        if !alive {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
            rep.fail(format!(
                "{tag}: the child ended before the kill ({status}): {}",
                err.lines().last().unwrap_or("")
            ));
            continue;
        }
        if lines
            .last()
            .is_some_and(|l| l.starts_with('P') || l.starts_with('R'))
        {
            stats.mid += 1;
        }
        stats.trials += 1;
        let (ok, lost) =
            verify_after_kill(&path, kind, &lines, base_count, base_version, rep, &tag);
        stats.rows_lost += lost;
        if ok {
            stats.survived += 1;
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("db-wal"));
        let _ = std::fs::remove_file(path.with_extension("db-shm"));
    }
    stats
}

// ---------------------------------------------------------------- (b) disk full

fn model_digest(c: &Connection) -> String {
    let mut s = shared::scalar(c, "SELECT group_concat(key || '=' || value, ';') FROM (SELECT * FROM feed_model WHERE key IN ('tag', 'version') ORDER BY key)");
    for part in ["users", "items"] {
        let mut st = c
            .prepare(&format!("SELECT factors FROM feed_{part} ORDER BY chunk"))
            .unwrap();
        let blobs: Vec<Vec<u8>> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        s.push_str(&format!("|{part}:{:x}", shared::fnv(&blobs.concat())));
    }
    s
}

fn events_digest(c: &Connection) -> String {
    shared::scalar(c, "SELECT count(*) || ':' || total(id) || ':' || total(user_id) || ':' || total(item_id) || ':' || total(ts) FROM feed_events")
}

fn expect_full(rep: &mut Report, what: &str, r: rusqlite::Result<()>, scalar: bool) {
    match r {
        Err(e) if shared::code(&e) == Some(ErrorCode::DiskFull) => {}
        Err(e) if scalar && message(&e).contains("database or disk is full") => {
            rep.known(
                "scalar-error-code",
                format!("{what}: {:?} {:?}", shared::code(&e), message(&e)),
            );
        }
        Err(e) => rep.fail(format!(
            "{what}: expected SQLITE_FULL, got {:?} {:?}",
            shared::code(&e),
            message(&e)
        )),
        Ok(()) => rep.fail(format!("{what}: succeeded at max_page_count")),
    }
}

fn disk_full(mode: &str, rep: &mut Report) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    let c = open(&path);
    let _: String = c
        .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))
        .unwrap();
    c.execute_batch(
        "CREATE TABLE mine(x);
         CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 2, tune = false);
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
           SELECT value % 300, value % 200, 10, 30, value FROM generate_series(1, 3000);
         SELECT foryou_refit('feed');",
    )
    .unwrap();
    let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    let _: i64 = c
        .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    let (ev, model) = (events_digest(&c), model_digest(&c));
    let tag = format!("disk full ({mode})");
    let unchanged = |rep: &mut Report, c: &Connection, what: &str| {
        if events_digest(c) != ev {
            rep.fail(format!(
                "{tag}: {what} changed the events: {ev} -> {}",
                events_digest(c)
            ));
        }
        if model_digest(c) != model {
            rep.fail(format!(
                "{tag}: {what} changed the model: {model} -> {}",
                model_digest(c)
            ));
        }
    };
    let bulk = "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) SELECT value, value, 10, 30, value FROM generate_series(1, 50000)";
    expect_full(
        rep,
        &format!("{tag}: INSERT ... SELECT"),
        c.execute_batch(bulk),
        false,
    );
    unchanged(rep, &c, "a failed INSERT ... SELECT");
    expect_full(
        rep,
        &format!("{tag}: a full refit with more factors"),
        c.query_row(
            "SELECT foryou_refit('feed', '{\"factors\": 64}')",
            [],
            |_| Ok(()),
        ),
        true,
    );
    unchanged(rep, &c, "a failed refit");
    expect_full(
        rep,
        &format!("{tag}: incremental refit after bulk"),
        Ok(()).and_then(|()| {
            c.query_row(
                "SELECT foryou_refit('feed', '{\"factors\": 128, \"mode\": \"full\"}')",
                [],
                |_| Ok(()),
            )
        }),
        true,
    );
    unchanged(rep, &c, "a failed refit");
    // Row by row until full: every row before is kept, none after.
    let before: i64 = c
        .query_row("SELECT count(*) FROM feed", [], |r| r.get(0))
        .unwrap();
    let mut n = 0i64;
    let err = loop {
        match c.execute(
            "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (?1, 1, 10, 30, ?1)",
            [n + 100_000],
        ) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        if n > 200_000 {
            break rusqlite::Error::InvalidQuery;
        }
    };
    expect_full(
        rep,
        &format!("{tag}: single-row INSERT #{n}"),
        Err(err),
        false,
    );
    let after: i64 = c
        .query_row("SELECT count(*) FROM feed", [], |r| r.get(0))
        .unwrap();
    if after != before + n {
        rep.fail(format!(
            "{tag}: {n} single-row INSERTs succeeded but the count went {before} -> {after}"
        ));
    }
    // Inside the caller's transaction: only the failing statement is undone.
    c.execute_batch("BEGIN; INSERT INTO mine VALUES (1);")
        .unwrap();
    expect_full(
        rep,
        &format!("{tag}: INSERT ... SELECT in the caller's transaction"),
        c.execute_batch(bulk),
        false,
    );
    let in_txn = !c.is_autocommit();
    let mine: i64 = c
        .query_row("SELECT count(*) FROM mine", [], |r| r.get(0))
        .unwrap();
    if !in_txn || mine != 1 {
        rep.known(
            "txn-full-rollback",
            format!(
                "{tag}: after the failed INSERT the transaction is {} and mine has {mine} row(s)",
                if in_txn { "open" } else { "gone" }
            ),
        );
    }
    if in_txn {
        expect_full(
            rep,
            &format!("{tag}: refit in the caller's transaction"),
            c.query_row(
                "SELECT foryou_refit('feed', '{\"factors\": 64}')",
                [],
                |_| Ok(()),
            ),
            true,
        );
        let mine: i64 = c
            .query_row("SELECT count(*) FROM mine", [], |r| r.get(0))
            .unwrap();
        if c.is_autocommit() || mine != 1 {
            rep.known("txn-full-rollback", format!("{tag}: after the failed refit the transaction is {} and mine has {mine} row(s)", if c.is_autocommit() { "gone" } else { "open" }));
        }
        let _ = c.execute_batch("ROLLBACK");
    }
    // The control: a plain table in the same situation keeps the transaction.
    c.execute_batch("BEGIN; INSERT INTO mine VALUES (2);")
        .unwrap();
    let plain =
        c.execute_batch("INSERT INTO mine SELECT randomblob(1000) FROM generate_series(1, 100000)");
    let control = !c.is_autocommit();
    let _ = c.execute_batch("ROLLBACK");
    if plain.is_ok() || !control {
        println!(
            "note {tag}: the control (a plain table) {}",
            if control {
                "did not fill the disk"
            } else {
                "lost its transaction too"
            }
        );
    }
    let _: i64 = c
        .query_row("PRAGMA max_page_count = 1000000000", [], |r| r.get(0))
        .unwrap();
    let integrity: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    if integrity != "ok" {
        rep.fail(format!("{tag}: integrity_check {integrity}"));
    }
    if let Err(e) = model_consistent(
        &c,
        "feed",
        c.query_row(
            "SELECT value FROM feed_model WHERE key = 'version'",
            [],
            |r| r.get(0),
        )
        .unwrap(),
    ) {
        rep.fail(format!("{tag}: the model does not decode: {e}"));
    }
}

// ---------------------------------------------------------------- (c) concurrent WAL load

fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn ids(b: &[u8]) -> Vec<i64> {
    b.chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// (ids, factors) of `feed_<part>` as read by `c` (in its transaction).
fn read_factors(c: &Connection, part: &str) -> rusqlite::Result<(Vec<i64>, Vec<f32>)> {
    let mut st = c.prepare(&format!(
        "SELECT ids, factors FROM feed_{part} ORDER BY chunk"
    ))?;
    let mut rows = st.query([])?;
    let (mut all_ids, mut all_f) = (Vec::new(), Vec::new());
    while let Some(r) = rows.next()? {
        all_ids.extend(ids(&r.get::<_, Vec<u8>>(0)?));
        all_f.extend(floats(&r.get::<_, Vec<u8>>(1)?));
    }
    Ok((all_ids, all_f))
}

const STABLE_USERS: i64 = 60;

/// One reader transaction: the model's blobs, then recommend and similar_items in the same
/// snapshot; every result must be what the blobs give. Err(detail) on a mixed model.
fn checked_read(c: &Connection, r: &mut Rng) -> rusqlite::Result<Result<(), String>> {
    c.execute_batch("BEGIN")?;
    let res = (|| {
        let version: i64 = c.query_row(
            "SELECT value FROM feed_model WHERE key = 'version'",
            [],
            |r| r.get(0),
        )?;
        let report: String = c.query_row(
            "SELECT value FROM feed_model WHERE key = 'report'",
            [],
            |r| r.get(0),
        )?;
        let j: serde_json::Value = serde_json::from_str(&report).unwrap();
        if j["version"].as_i64() != Some(version) {
            return Ok(Err(format!(
                "report of version {} beside version {version}",
                j["version"]
            )));
        }
        let dim = j["factors"].as_i64().unwrap() as usize;
        let (uids, uf) = read_factors(c, "users")?;
        let (iids, itf) = read_factors(c, "items")?;
        if uf.len() != uids.len() * dim || itf.len() != iids.len() * dim {
            return Ok(Err(format!(
                "version {version}: blobs of another dimension than {dim}"
            )));
        }
        let user = r.range(0, STABLE_USERS - 1);
        let Some(ui) = uids.iter().position(|&u| u == user) else {
            return Ok(Err(format!(
                "version {version}: stable user {user} has no vector"
            )));
        };
        let uvec = &uf[ui * dim..(ui + 1) * dim];
        let watched: HashSet<i64> = {
            let mut st = c.prepare("SELECT item_id FROM feed WHERE user_id = ?1")?;
            let w = st
                .query_map([user], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            w
        };
        let mut expected: Vec<(f64, i64)> = iids
            .iter()
            .enumerate()
            .filter(|(_, id)| !watched.contains(id))
            .map(|(n, &id)| {
                let v = &itf[n * dim..(n + 1) * dim];
                (
                    uvec.iter()
                        .zip(v)
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum::<f64>(),
                    id,
                )
            })
            .collect();
        expected.sort_by(|a, b| b.0.total_cmp(&a.0));
        let k = 10usize;
        let mut st = c.prepare("SELECT item_id, score FROM recommend(?1, ?2)")?;
        let got: Vec<(i64, f64)> = st
            .query_map((user, k as i64), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let tol = |x: f64| 1e-4 * (1.0 + x.abs());
        let score_of = |id: i64| expected.iter().find(|e| e.1 == id).map(|e| e.0);
        if got.len() != k.min(expected.len()) {
            return Ok(Err(format!(
                "version {version}: recommend({user}, {k}) gave {} rows of {}",
                got.len(),
                expected.len()
            )));
        }
        for (n, (id, score)) in got.iter().enumerate() {
            match score_of(*id) {
                Some(s) if (s - score).abs() <= tol(s) => {}
                s => return Ok(Err(format!("version {version}: recommend({user}) item {id} score {score}, the version's factors give {s:?}"))),
            }
            if *score + tol(*score) < expected[n].0 {
                return Ok(Err(format!("version {version}: recommend({user}) rank {} score {score} below the version's {}", n + 1, expected[n].0)));
            }
        }
        // similar_items: cosine of the item vectors.
        let item_n = r.below(iids.len() as u64) as usize;
        let iv = &itf[item_n * dim..(item_n + 1) * dim];
        let norm = |v: &[f32]| {
            v.iter()
                .map(|x| f64::from(*x) * f64::from(*x))
                .sum::<f64>()
                .sqrt()
        };
        let mut st = c.prepare("SELECT item_id, score FROM similar_items(?1, 5)")?;
        let sim: Vec<(i64, f64)> = st
            .query_map([iids[item_n]], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (id, score) in sim {
            let Some(m) = iids.iter().position(|&x| x == id) else {
                return Ok(Err(format!(
                    "version {version}: similar_items gave item {id}, not in the version"
                )));
            };
            let jv = &itf[m * dim..(m + 1) * dim];
            let cos = iv
                .iter()
                .zip(jv)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
                / (norm(iv) * norm(jv));
            if (cos - score).abs() > 1e-3 {
                return Ok(Err(format!("version {version}: similar_items({}) item {id} score {score}, the version gives {cos}", iids[item_n])));
            }
        }
        Ok(Ok(()))
    })();
    let _ = c.execute_batch("COMMIT");
    res
}

#[derive(Default)]
struct LoadStats {
    inserts: AtomicU64,
    reads: AtomicU64,
    checked: AtomicU64,
    refits: AtomicU64,
    busy: AtomicU64,
}

fn load(seconds: f64, seed: u64, rep: &mut Report) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("load.db");
    {
        let c = open(&path);
        let _: String = c
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        c.execute_batch(&format!(
            "CREATE VIRTUAL TABLE feed USING foryou(factors = 8, iterations = 3, incremental_iterations = 1, tune = false);
             INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
               SELECT value % {STABLE_USERS}, (value * 7 + value / {STABLE_USERS}) % 120, (value * 13) % 40, 30, value
               FROM generate_series(1, 3000);
             SELECT foryou_refit('feed');"
        ))
        .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(LoadStats::default());
    let problems: Arc<Mutex<Vec<(bool, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    // An error: BUSY is fine (counted); "database is locked" as SQLITE_ERROR from a scalar
    // function is the KNOWN scalar-error-code; anything else is a failure.
    let classify = |e: &rusqlite::Error,
                    scalar: bool,
                    who: &str,
                    stats: &LoadStats,
                    problems: &Mutex<Vec<(bool, String)>>| {
        let m = message(e);
        if shared::code_matches(ErrorCode::DatabaseBusy, shared::code(e)) {
            stats.busy.fetch_add(1, Ordering::Relaxed);
        } else if scalar && m.contains("database is locked") {
            stats.busy.fetch_add(1, Ordering::Relaxed);
            problems
                .lock()
                .unwrap()
                .push((true, format!("{who}: {m:?} came as {:?}", shared::code(e))));
        } else {
            problems
                .lock()
                .unwrap()
                .push((false, format!("{who}: {:?} {m:?}", shared::code(e))));
        }
    };
    for w in 0..2u64 {
        let (p, stop, stats, problems) = (
            path.clone(),
            Arc::clone(&stop),
            Arc::clone(&stats),
            Arc::clone(&problems),
        );
        handles.push(std::thread::spawn(move || {
            let c = open(&p);
            let mut r = Rng::stream(seed, 100 + w);
            while !stop.load(Ordering::Relaxed) {
                let n = r.range(1, 30);
                let sql = format!(
                    "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) SELECT 1000 + {w} * 100000 + abs(random()) % 500, abs(random()) % 150, 10, 30, NULL FROM generate_series(1, {n})"
                );
                match c.execute_batch(&sql) {
                    Ok(()) => {
                        stats.inserts.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => classify(&e, false, "writer", &stats, &problems),
                }
            }
        }));
    }
    {
        let (p, stop, stats, problems) = (
            path.clone(),
            Arc::clone(&stop),
            Arc::clone(&stats),
            Arc::clone(&problems),
        );
        handles.push(std::thread::spawn(move || {
            let c = open(&p);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mode = if n % 3 == 2 { "full" } else { "incremental" };
                n += 1;
                match c.query_row(
                    &format!("SELECT foryou_refit('feed', '{{\"mode\": \"{mode}\"}}')"),
                    [],
                    |r| r.get::<_, String>(0),
                ) {
                    Ok(_) => {
                        stats.refits.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => classify(&e, true, "refitter", &stats, &problems),
                }
            }
        }));
    }
    for rd in 0..2u64 {
        let (p, stop, stats, problems) = (
            path.clone(),
            Arc::clone(&stop),
            Arc::clone(&stats),
            Arc::clone(&problems),
        );
        handles.push(std::thread::spawn(move || {
            let c = open(&p);
            let mut r = Rng::stream(seed, 200 + rd);
            while !stop.load(Ordering::Relaxed) {
                if r.chance(0.5) {
                    match checked_read(&c, &mut r) {
                        Ok(Ok(())) => {
                            stats.checked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(mixed)) => problems
                            .lock()
                            .unwrap()
                            .push((false, format!("reader: mixed model: {mixed}"))),
                        Err(e) => classify(&e, false, "reader", &stats, &problems),
                    }
                } else {
                    let u = r.range(0, 2000);
                    let sql = if r.chance(0.5) {
                        format!("SELECT count(*) FROM recommend({u}, 10)")
                    } else {
                        format!("SELECT count(*) FROM similar_items({}, 5)", u % 150)
                    };
                    match c.query_row(&sql, [], |r| r.get::<_, i64>(0)) {
                        Ok(_) => {}
                        Err(e) => classify(&e, false, "reader", &stats, &problems),
                    }
                }
                stats.reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        if h.join().is_err() {
            rep.fail("load: a thread panicked".into());
        }
    }
    let mut seen = HashSet::new();
    for (known, p) in problems.lock().unwrap().iter() {
        if !seen.insert(p.clone()) {
            continue;
        }
        if *known {
            rep.known("scalar-error-code", format!("load: {p}"));
        } else {
            rep.fail(format!("load: {p}"));
        }
    }
    let c = open(&path);
    let integrity: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    if integrity != "ok" {
        rep.fail(format!("load: integrity_check {integrity}"));
    }
    let events: i64 = c
        .query_row("SELECT count(*) FROM feed", [], |r| r.get(0))
        .unwrap();
    let want = 3000 + stats.inserts.load(Ordering::Relaxed) as i64;
    if events != want {
        rep.fail(format!("load: {events} events, {want} inserted"));
    }
    format!(
        "{seconds} s: {} events inserted, {} reads ({} checked against the factors of their version), {} refits, {} BUSY",
        stats.inserts.load(Ordering::Relaxed),
        stats.reads.load(Ordering::Relaxed),
        stats.checked.load(Ordering::Relaxed),
        stats.refits.load(Ordering::Relaxed),
        stats.busy.load(Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------- main

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--kill-child") {
        kill_child(Path::new(&args[1]), &args[2], args[3].parse().unwrap());
        return;
    }
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let trials: u64 = get("--trials")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| shared::env_or("TORTURE_TRIALS", 4));
    let seconds: f64 = get("--seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| shared::env_or("TORTURE_SECONDS", 4.0));
    let seed: u64 = get("--seed")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| shared::env_or("TORTURE_SEED", shared::now_seed()));
    let only = get("--only");
    let part = |p: &str| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == p));
    let start = Instant::now();
    println!("torture: seed {seed}, {trials} kill trials per kind and journal mode, {seconds} s of load (TORTURE_SEED={seed} to repeat)");
    let mut rep = Report::default();
    let mut lines = Vec::new();
    if part("kill") {
        for mode in ["DELETE", "WAL"] {
            for kind in ["insert", "refit", "auto"] {
                let s = kill_trials(mode, kind, trials, seed, &mut rep);
                let line = format!(
                    "kill -9 {kind:<6} {mode:<6}: {}/{} trials survived ({} killed mid-statement), {} committed rows lost",
                    s.survived, s.trials, s.mid, s.rows_lost
                );
                println!("{line}");
                lines.push(line);
            }
        }
    }
    if part("full") {
        for mode in ["DELETE", "WAL"] {
            disk_full(mode, &mut rep);
            lines.push(format!("disk full {mode}: done"));
        }
    }
    if part("load") {
        let line = format!("concurrent WAL load, {}", load(seconds, seed, &mut rep));
        println!("{line}");
        lines.push(line);
    }
    println!("KNOWN findings (expected failures until their fix lands; FORYOU_STRICT_KNOWN=1 fails on them):");
    for k in shared::KNOWN {
        let hits = rep.known.get(k.id).map_or(0, Vec::len);
        println!("  {:<30} {hits} hit(s): {}", k.id, k.description);
    }
    let known_total: usize = rep.known.values().map(Vec::len).sum();
    println!(
        "torture summary: seed {seed}, {} failures, {known_total} known, {:.1} s",
        rep.failures.len(),
        start.elapsed().as_secs_f64()
    );
    shared::remove_self_copy();
    if !rep.failures.is_empty() || (shared::strict_known() && known_total > 0) {
        std::process::exit(1);
    }
}
