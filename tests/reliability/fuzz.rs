//! `make fuzz`: seeded SQL fuzzing of every foryou entry point, each batch in a child
//! process (a crash shows as the child's signal). See tests/reliability/README.md.
//!
//! fuzz [--seconds S] [--seed N] [--batch-size B]      the parent: batches until S seconds
//! fuzz --seed N --batch I [--only 0,3,7] [--print]    one batch in this process (a repro)

// Test tooling: counts and sizes far inside every type they are cast to.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::too_many_lines,
    clippy::format_push_string,
    // r.chance(p) twice in one if-chain: two independent random draws, on purpose.
    clippy::same_functions_in_if_condition
)]

#[path = "shared.rs"]
mod shared;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::Connection;
use shared::{Rng, KNOWN};

/// One statement of a batch: run on the connection with the extension (`plain` false) or
/// on a second, plain connection to the same file (crafted shadow-table contents).
#[derive(Clone)]
struct Step {
    plain: bool,
    sql: String,
    /// Interrupt the statement after this many milliseconds (a random interrupt).
    interrupt_ms: Option<u64>,
}

/// A statement that runs longer than this is interrupted and reported as a hang.
const HANG: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- the generator

const TABLES: &[&str] = &[
    "feed", "feed", "feed", "t1", "t2", "aux.feed", "aux.t1", "temp.t3",
];

fn value(r: &mut Rng) -> String {
    if r.chance(0.35) {
        return r.range(-2, 45).to_string();
    }
    (*r.pick(&[
        "NULL",
        "0",
        "1",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775806",
        "4294967296",
        "2147483648",
        "2.5",
        "-0.0",
        "3.0",
        "1e308",
        "-1e308",
        "4.9e-324",
        "(1e308 * 10)",
        "(-1e308 * 10)",
        "'NaN'",
        "'nan'",
        "'inf'",
        "'-inf'",
        "'1e999'",
        "'3'",
        "' 3 '",
        "'7.0'",
        "'0x10'",
        "'3abc'",
        "''",
        "'ユーザー'",
        "'🎬'",
        "('a' || char(0) || 'b')",
        "char(0)",
        "('1' || char(0))",
        "x''",
        "x'00'",
        "x'0100000000000000'",
        "randomblob(8)",
        "zeroblob(100)",
        "printf('%.*c', 3000, 'x')",
        "9.223372036854776e18",
        "-9.223372036854776e18",
        "'9223372036854775808'",
        "(SELECT max(id) FROM feed_events)",
        "json('{}')",
        "1.5e3",
    ]))
    .to_string()
}

fn model(r: &mut Rng) -> String {
    if r.chance(0.15) {
        return value(r);
    }
    (*r.pick(&[
        "NULL",
        "'feed'",
        "'feed'",
        "'feed'",
        "'FEED'",
        "'main.feed'",
        "'aux.feed'",
        "'temp.feed'",
        "'temp.t3'",
        "'t1'",
        "'main.t1'",
        "'aux.t1'",
        "'nope'",
        "'feed_events'",
        "'main'",
        "'.feed'",
        "'feed.'",
        "'a.b.c'",
        "'\"feed\"'",
        "''",
        "'sqlite_master'",
        "'mine'",
        "'main.nope'",
        "'ｆｅｅｄ'",
        "('feed' || char(0))",
    ]))
    .to_string()
}

fn k(r: &mut Rng) -> String {
    if r.chance(0.7) {
        r.range(1, 12).to_string()
    } else if r.chance(0.3) {
        (*r.pick(&["10000", "10001", "0", "-1", "100", "1000"])).to_string()
    } else {
        value(r)
    }
}

/// A value of an option, in CREATE syntax (valid ones are cheap to fit on small data).
fn option_value(r: &mut Rng, key: &str) -> String {
    let valid: &[&str] = match key {
        "factors" => &["1", "2", "4", "8", "16", "'8'", "\"4\""],
        "iterations" | "incremental_iterations" => &["1", "2", "3", "5"],
        "cg_steps" => &["1", "2", "3", "64"],
        "regularization" => &["0", "0.2", "1e6", "1e-300"],
        "alpha" | "skip_weight" => &["1e-300", "2", "1e6", "0.5"],
        "skip_ratio" => &["0", "0.1", "1000", "0.5"],
        "skip_seconds" | "half_life_days" => &["0", "1", "1e6", "1e-9"],
        "popularity_exponent" => &["-2", "2", "0", "0.5"],
        "seed" => &["0", "1", "9223372036854775807"],
        "threads" => &["0", "1", "2", "256"],
        "tune" | "exclude_watched" => &["true", "false", "on", "off", "yes", "no", "1", "0"],
        "auto_refit" => &["0", "1", "5", "100", "9223372036854775807"],
        "explore" => &["0", "0.5", "1", "1e-9"],
        "confidence" => &["binary", "linear", "log", "ratio"],
        "regularization_scaling" => &["none", "count", "sqrt"],
        // A table the fuzz also creates and fills (`hidden`), one it never makes, a view of
        // the events themselves, none.
        "exclude_items" => &["hidden", "'hidden'", "nowhere", "feed", "''"],
        _ => &["1"],
    };
    if r.chance(0.75) {
        return (*r.pick(valid)).to_string();
    }
    (*r.pick(&[
        "0",
        "-1",
        "1025",
        "100000",
        "65",
        "257",
        "2.5",
        "1e999",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "maybe",
        "''",
        "\"\"",
        "0x10",
        "9223372036854775808",
        "-9223372036854775809",
        "huge",
        "ユ",
        "'a''b'",
        "1e-400",
        "+3",
        " 3 ",
        "3 4",
        "TRUE",
        "x'00'",
    ]))
    .to_string()
}

const OPTIONS: &[&str] = &[
    "factors",
    "iterations",
    "regularization",
    "regularization_scaling",
    "alpha",
    "confidence",
    "skip_ratio",
    "skip_seconds",
    "skip_weight",
    "half_life_days",
    "popularity_exponent",
    "cg_steps",
    "seed",
    "threads",
    "incremental_iterations",
    "tune",
    "auto_refit",
    "explore",
    "exclude_watched",
    "exclude_items",
];

fn create_options(r: &mut Rng) -> String {
    let n = r.below(5);
    let mut parts = Vec::new();
    for _ in 0..n {
        if r.chance(0.08) {
            parts.push(
                (*r.pick(&[
                    "colour = red",
                    "factors",
                    "= 3",
                    "factors = ",
                    "factors == 3",
                    "FACTORS = 4",
                    "seed = 1, seed = 2",
                    "'factors' = 4",
                    "\"factors\" = 4",
                    "factors = 4 = 5",
                    "",
                ]))
                .to_string(),
            );
        } else {
            let key = *r.pick(OPTIONS);
            let v = option_value(r, key);
            parts.push(format!("{key} = {v}"));
        }
    }
    if parts.is_empty() && r.chance(0.5) {
        String::new()
    } else {
        format!("({})", parts.join(", "))
    }
}

/// A JSON value for an option of `options_json` (valid ones are cheap).
fn json_option_value(r: &mut Rng, key: &str) -> String {
    if r.chance(0.7) {
        let v = match key {
            "mode" => (*r.pick(&["\"full\"", "\"incremental\""])).to_string(),
            "confidence" => format!("\"{}\"", r.pick(&["binary", "linear", "log", "ratio"])),
            "regularization_scaling" => format!("\"{}\"", r.pick(&["none", "count", "sqrt"])),
            "tune" => (*r.pick(&["true", "false"])).to_string(),
            _ => {
                let v = option_value(r, key);
                if v.parse::<f64>().is_ok() {
                    v
                } else {
                    "1".into()
                }
            }
        };
        return v;
    }
    (*r.pick(&[
        "null",
        "0",
        "-1",
        "1e308",
        "-1e308",
        "1e-320",
        "1e400",
        "18446744073709551616",
        "9223372036854775807",
        "-9223372036854775808",
        "2.5",
        "\"3\"",
        "\"fast\"",
        "\"\"",
        "true",
        "[]",
        "[1]",
        "{}",
        "{\"a\": 1}",
        "\"\\u0000\"",
        "\"ユ\"",
        "1025",
    ]))
    .to_string()
}

fn options_json(r: &mut Rng) -> String {
    if r.chance(0.1) {
        return (*r.pick(&[
            "NULL",
            "7",
            "x'7b7d'",
            "'[1]'",
            "'{'",
            "''",
            "'null'",
            "'{\"mode\": \"full\", \"mode\": \"incremental\"}'",
            "'{\"iterations\": 2} trailing'",
            "printf('{%.*c}', 100000, ' ')",
            "'{\"exclude_watched\": false}'",
            "'{\"auto_refit\": 1}'",
            "'{\"explore\": 0.5}'",
            "'{\"factors\": 1024, \"iterations\": 1, \"tune\": false}'",
            "'{\"colour\": \"red\"}'",
            "('{' || char(0) || '}')",
        ]))
        .to_string();
    }
    let n = r.below(4);
    let mut fields = Vec::new();
    for _ in 0..n {
        let key = if r.chance(0.1) {
            *r.pick(&["colour", "MODE", "Factors", "", "explore", "format_version"])
        } else {
            *r.pick(&[
                "mode",
                "mode",
                "factors",
                "iterations",
                "regularization",
                "regularization_scaling",
                "alpha",
                "confidence",
                "skip_ratio",
                "skip_seconds",
                "skip_weight",
                "half_life_days",
                "popularity_exponent",
                "cg_steps",
                "seed",
                "threads",
                "incremental_iterations",
                "tune",
            ])
        };
        let v = json_option_value(r, key);
        fields.push(format!("\"{key}\": {v}"));
    }
    format!("'{{{}}}'", fields.join(", ").replace('\'', "''"))
}

fn ranked_fn(r: &mut Rng) -> String {
    let f = if r.chance(0.6) {
        "recommend"
    } else {
        "similar_items"
    };
    let hidden = if f == "recommend" {
        "user_id"
    } else {
        "of_item"
    };
    let a = value(r);
    let kk = k(r);
    if r.chance(0.15) {
        // An allow-list inside the scan: lists, subqueries, odd values, several at once.
        let list = match r.below(5) {
            // Not one value: `IN (v)` is `= v`, which filters the ranked rows unless v is
            // a literal, and the rank check below is for filters inside the scan.
            0 => (0..*r.pick(&[0, 2, 3, 6]))
                .map(|_| value(r))
                .collect::<Vec<_>>()
                .join(", "),
            1 => "SELECT item_id FROM feed".to_string(),
            2 => format!("SELECT value FROM json_each('[{}, 2, 3]')", r.range(0, 50)),
            3 => format!("SELECT item_id FROM {f}({a}, {kk})"),
            _ => "NULL, 'x', 1.5, x'00', 9223372036854775807".to_string(),
        };
        let extra = if r.chance(0.3) {
            format!(" AND item_id IN ({}, {})", value(r), value(r))
        } else {
            String::new()
        };
        return format!(
            "SELECT item_id, score, rank FROM {f}({a}, {kk}) WHERE item_id IN ({list}){extra}"
        );
    }
    match r.below(9) {
        0..=3 => {
            let args = if r.chance(0.5) {
                format!("{a}, {kk}, {}", model(r))
            } else {
                format!("{a}, {kk}")
            };
            format!("SELECT item_id, score, rank FROM {f}({args})")
        }
        4 => format!(
            "SELECT count(*), total(score) FROM {f}({a}, {kk}, {})",
            model(r)
        ),
        5 => format!("SELECT * FROM {f} WHERE {hidden} = {a} AND k = {kk}"),
        6 => format!(
            "SELECT g.value, r.item_id FROM generate_series(1, {}) AS g, {f}(g.value, {kk}) AS r",
            r.range(0, 8)
        ),
        7 => (*r.pick(&[
            "SELECT * FROM recommend(1)",
            "SELECT * FROM recommend()",
            "SELECT * FROM recommend(1, 2, 'feed', 4)",
            "SELECT * FROM recommend WHERE user_id > 3 AND k = 2",
            "SELECT * FROM recommend WHERE k = 2",
            "SELECT * FROM similar_items WHERE of_item IN (1, 2) AND k = 3",
            "SELECT * FROM recommend(1, 3) WHERE foryou_refit() IS NOT NULL",
            "SELECT (SELECT count(*) FROM recommend(1, 3)), foryou_refit('feed', '{\"iterations\": 1}')",
            "SELECT * FROM recommend(1, 5) AS a JOIN similar_items(a.item_id, 2) AS b",
            "SELECT * FROM recommend((SELECT user_id FROM feed LIMIT 1), 3)",
            "SELECT * FROM recommend(1, 3) ORDER BY score LIMIT 1 OFFSET 1",
            "SELECT * FROM similar_items(1, 3, 'feed') WHERE rank > 1",
            "SELECT * FROM feed, recommend(feed.user_id, 2) LIMIT 10",
        ]))
        .to_string(),
        _ => format!("SELECT * FROM {f}({a}, {kk}, {})", value(r)),
    }
}

fn refit(r: &mut Rng) -> String {
    let call = match r.below(6) {
        0 => "foryou_refit()".to_string(),
        1 => format!("foryou_refit({})", model(r)),
        2 => format!("foryou_refit({}, {})", model(r), value(r)),
        3 => format!("foryou_refit({}, {}, 1)", model(r), options_json(r)),
        _ => format!("foryou_refit({}, {})", model(r), options_json(r)),
    };
    if r.chance(0.1) {
        format!("SELECT {call} FROM generate_series(1, 3)")
    } else {
        format!("SELECT {call}")
    }
}

fn evaluate(r: &mut Rng) -> String {
    let holdout = if r.chance(0.2) {
        value(r)
    } else {
        (*r.pick(&[
            "'holdout'",
            "'holdout'",
            "'main.holdout'",
            "'aux.holdout'",
            "'feed'",
            "'feed_events'",
            "'holdout_view'",
            "'nosuch'",
            "'feed_config'",
            "'\"; DROP TABLE mine; --'",
            "'holdout WHERE 1'",
            "'(SELECT 1 AS user_id, 2 AS item_id)'",
            "'mine'",
            "'recommend'",
        ]))
        .to_string()
    };
    match r.below(5) {
        0 => format!("SELECT foryou_evaluate({}, {holdout})", model(r)),
        1 => "SELECT foryou_evaluate()".into(),
        _ => format!("SELECT foryou_evaluate({}, {holdout}, {})", model(r), k(r)),
    }
}

fn info(r: &mut Rng) -> String {
    (*r.pick(&[
        "SELECT foryou_version()",
        "SELECT foryou_debug()",
        "SELECT foryou_version(1)",
        "SELECT foryou_debug(NULL, x'00')",
        "SELECT length(foryou_debug()) FROM generate_series(1, 5)",
    ]))
    .to_string()
}

fn table(r: &mut Rng) -> &'static str {
    r.pick::<&str>(TABLES)
}

fn good_row(r: &mut Rng, users: i64, items: i64) -> String {
    let ts = if r.chance(0.2) {
        "NULL".to_string()
    } else {
        r.range(1, 1_000_000).to_string()
    };
    format!(
        "({}, {}, {}, {}, {ts})",
        r.range(0, users),
        r.range(0, items),
        r.range(0, 60),
        r.range(1, 60)
    )
}

fn row(r: &mut Rng) -> String {
    let mut cols: Vec<String> = good_row(r, 30, 40)
        .trim_matches(|c| c == '(' || c == ')')
        .split(", ")
        .map(str::to_string)
        .collect();
    if r.chance(0.3) {
        let i = r.below(5) as usize;
        cols[i] = value(r);
    }
    format!("({})", cols.join(", "))
}

const ROWIDS: &[&str] = &[
    "9223372036854775807",
    "-9223372036854775808",
    "0",
    "-1",
    "1",
    "5",
    "NULL",
    "2.0",
    "'7'",
    "9223372036854775806",
];

fn insert(r: &mut Rng) -> String {
    let t = table(r);
    let verb = *r.pick(&[
        "INSERT",
        "INSERT",
        "INSERT",
        "INSERT OR REPLACE",
        "INSERT OR IGNORE",
        "INSERT OR FAIL",
        "INSERT OR ABORT",
        "INSERT OR ROLLBACK",
        "REPLACE",
    ]);
    let cols = "(user_id, item_id, watch_time, duration, ts)";
    match r.below(10) {
        0..=3 => {
            let n = r.range(1, 6);
            let rows: Vec<String> = (0..n).map(|_| row(r)).collect();
            format!("{verb} INTO {t}{cols} VALUES {}", rows.join(", "))
        }
        4 => format!(
            "{verb} INTO {t}(rowid, user_id, item_id, watch_time, duration, ts) VALUES ({}, {}, {}, 10, 10, 1)",
            r.pick(ROWIDS),
            r.range(0, 30),
            r.range(0, 40)
        ),
        5 => {
            let n = *r.pick(&[0, 1, 10, 100, 1000, 3000]);
            let dur = if r.chance(0.3) {
                format!("CASE WHEN value = {n} THEN {} ELSE 30 END", value(r))
            } else {
                "30".into()
            };
            format!(
                "{verb} INTO {t}{cols} SELECT value % {}, (value * 7) % {}, value % 40, {dur}, value FROM generate_series(1, {n})",
                r.range(1, 50),
                r.range(1, 80)
            )
        }
        6 => format!(
            "{verb} INTO {t} SELECT user_id, item_id, watch_time, duration, ts FROM {} LIMIT {}",
            table(r),
            r.range(0, 20)
        ),
        7 => format!(
            "{verb} INTO {t}{cols} SELECT user_id + 1, item_id, watch_time, duration, ts FROM feed_events LIMIT {}",
            r.range(0, 10)
        ),
        8 => (*r.pick(&[
            "INSERT INTO feed DEFAULT VALUES",
            "INSERT INTO feed(user_id, item_id) VALUES (1, 2)",
            "INSERT INTO feed(item_id, user_id, duration, watch_time) VALUES (1, 2, 3, 4)",
            "INSERT INTO feed VALUES (1, 2, 3, 4, 5)",
            "INSERT INTO feed VALUES (1, 2, 3, 4)",
            "INSERT INTO feed(rowid, user_id, item_id, watch_time, duration) VALUES (1, 1, 1, 1, 1), (1, 2, 2, 2, 2)",
            "INSERT INTO feed(user_id, item_id, watch_time, duration) SELECT 1, 2, 3, 4 UNION ALL SELECT 1, 2, 3, 0",
            "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (1, 2, 3, 4, 9223372036854775807), (1, 2, 3, 4, -9223372036854775808)",
            "INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (9223372036854775807, -9223372036854775808, 1e308, 1e308)",
            "INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (1, 2, 4.9e-324, 4.9e-324)",
            "INSERT INTO mine VALUES (1)",
            "INSERT INTO feed(user_id, item_id, watch_time, duration) SELECT x, x, x, x FROM mine",
        ]))
        .to_string(),
        _ => format!("{verb} INTO {t}{cols} VALUES {}", row(r)),
    }
}

fn update(r: &mut Rng) -> String {
    let t = table(r);
    let col = *r.pick(&[
        "user_id",
        "item_id",
        "watch_time",
        "duration",
        "ts",
        "rowid",
    ]);
    let v = match r.below(4) {
        0 => format!("{col} + 1"),
        1 => r.pick(ROWIDS).to_string(),
        _ => value(r),
    };
    let wh = match r.below(5) {
        0 => format!(" WHERE rowid = {}", r.pick(ROWIDS)),
        1 => format!(" WHERE rowid = {}", r.range(1, 60)),
        2 => format!(" WHERE user_id = {}", r.range(0, 30)),
        3 => String::new(),
        _ => format!(" WHERE rowid IN (SELECT rowid FROM {t} LIMIT 3)"),
    };
    if r.chance(0.15) {
        return format!(
            "UPDATE {t} SET user_id = {}, item_id = {}, watch_time = {}, duration = {}{wh}",
            value(r),
            value(r),
            value(r),
            value(r)
        );
    }
    format!("UPDATE {t} SET {col} = {v}{wh}")
}

fn delete(r: &mut Rng) -> String {
    let t = table(r);
    match r.below(5) {
        0 => format!("DELETE FROM {t} WHERE rowid = {}", r.pick(ROWIDS)),
        1 => format!("DELETE FROM {t} WHERE rowid = {}", r.range(1, 60)),
        2 => format!("DELETE FROM {t} WHERE user_id = {}", value(r)),
        3 => format!("DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} LIMIT 3)"),
        _ => format!("DELETE FROM {t} WHERE item_id > {}", r.range(0, 40)),
    }
}

fn select_table(r: &mut Rng) -> String {
    let t = table(r);
    match r.below(6) {
        0 => format!("SELECT * FROM {t} WHERE rowid = {}", value(r)),
        1 => format!("SELECT * FROM {t} WHERE user_id = {}", value(r)),
        2 => format!("SELECT rowid, * FROM {t} ORDER BY rowid DESC LIMIT 5"),
        3 => format!("SELECT count(*), total(watch_time) FROM {t}"),
        4 => format!(
            "SELECT * FROM {t} WHERE rowid > {} AND user_id = {} LIMIT 5",
            value(r),
            value(r)
        ),
        _ => format!(
            "SELECT * FROM {t} WHERE rowid IN ({}, {})",
            value(r),
            value(r)
        ),
    }
}

fn ddl(r: &mut Rng) -> String {
    let name = *r.pick(&[
        "t1",
        "t2",
        "aux.t1",
        "temp.t3",
        "feed",
        "aux.feed",
        "\"we ird\"",
        "t1_events",
    ]);
    match r.below(8) {
        0..=3 => format!(
            "CREATE VIRTUAL TABLE {}{name} USING foryou{}",
            if r.chance(0.2) { "IF NOT EXISTS " } else { "" },
            create_options(r)
        ),
        4 => format!("DROP TABLE {}{name}", if r.chance(0.5) { "IF EXISTS " } else { "" }),
        5 => format!(
            "ALTER TABLE {} RENAME TO {}",
            r.pick(&["t1", "t2", "feed", "aux.t1", "temp.t3"]),
            r.pick(&["t1", "t2", "feed", "t9", "feed_events", "\"a b\""])
        ),
        6 => (*r.pick(&[
            "CREATE VIEW IF NOT EXISTS holdout_view AS SELECT user_id, item_id FROM feed WHERE rowid % 2 = 0",
            "CREATE VIEW IF NOT EXISTS refit_view AS SELECT foryou_refit('feed') AS report",
            "SELECT * FROM refit_view",
            "CREATE TRIGGER IF NOT EXISTS mine_ins AFTER INSERT ON mine BEGIN INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (new.x, new.x, 1, 1); END",
            "CREATE TRIGGER IF NOT EXISTS mine_refit AFTER INSERT ON mine BEGIN SELECT foryou_refit('feed'); END",
            "DROP TRIGGER IF EXISTS mine_ins",
            "CREATE VIRTUAL TABLE ok USING foryou(factors = 1, iterations = 1, tune = false)",
            "VACUUM",
            "ANALYZE",
            "REINDEX",
            "PRAGMA integrity_check",
            "PRAGMA journal_mode = WAL",
            "PRAGMA journal_mode = DELETE",
            "PRAGMA max_page_count = 1",
            "PRAGMA max_page_count = 1000000",
        ]))
        .to_string(),
        _ => format!("DROP TABLE IF EXISTS {}", r.pick(&["t1", "t2", "aux.t1", "temp.t3", "t9"])),
    }
}

fn txn(r: &mut Rng) -> String {
    (*r.pick(&[
        "BEGIN",
        "BEGIN IMMEDIATE",
        "BEGIN EXCLUSIVE",
        "COMMIT",
        "COMMIT",
        "ROLLBACK",
        "ROLLBACK",
        "SAVEPOINT s1",
        "SAVEPOINT s2",
        "RELEASE s1",
        "ROLLBACK TO s1",
        "ROLLBACK TO s2",
        "RELEASE s2",
        "ATTACH 'aux.db' AS aux",
        "ATTACH ':memory:' AS aux",
        "DETACH aux",
        "ATTACH 'aux.db' AS aux2",
        "DETACH aux2",
    ]))
    .to_string()
}

/// A blob expression for a crafted factor chunk: `rows` ids, `dim` values per row.
fn crafted_chunk(r: &mut Rng) -> (String, String, String) {
    let rows = *r.pick(&[0i64, 1, 2, 5, 40]);
    let dim = *r.pick(&[1i64, 2, 4, 8, 3, 1025, 100_000]);
    let ids = match r.below(4) {
        0 => format!("zeroblob({})", rows * 8),
        1 => format!("randomblob({})", rows * 8),
        2 => {
            let mut hex = String::new();
            for i in 0..rows {
                let id: i64 = if r.chance(0.1) { i64::MIN } else { i % 3 };
                for b in id.to_le_bytes() {
                    let _ = write!(hex, "{b:02x}");
                }
            }
            format!("x'{hex}'")
        }
        _ => (*r.pick(&["x''", "x'00'", "'abc'", "5", "x'0100000000000000'"])).to_string(),
    };
    let floats = *r.pick(&[
        "0000c07f", "0000807f", "000080ff", "ffff7f7f", "0000803f", "00000000", "01000000",
    ]);
    let factors = match r.below(4) {
        0 => format!("zeroblob({})", rows * dim * 4),
        1 => format!("randomblob({})", rows * dim * 4),
        2 if rows * dim <= 400 => format!("x'{}'", floats.repeat((rows * dim) as usize)),
        _ => format!("zeroblob({})", (rows * dim * 4 + r.range(-3, 3)).max(0)),
    };
    let pop = if r.chance(0.7) {
        format!("x'{}'", floats.repeat(rows.min(100) as usize))
    } else {
        (*r.pick(&["x''", "zeroblob(3)", "randomblob(400)", "x'0000c07f'"])).to_string()
    };
    (ids, factors, pop)
}

fn crafted(r: &mut Rng) -> String {
    let base = *r.pick(&["feed", "feed", "feed", "t1"]);
    match r.below(12) {
        0 | 1 => {
            let (ids, f, p) = crafted_chunk(r);
            format!("UPDATE {base}_items SET ids = {ids}, factors = {f}, popularity = {p}")
        }
        2 => {
            let (ids, f, _) = crafted_chunk(r);
            format!("UPDATE {base}_users SET ids = {ids}, factors = {f}")
        }
        3 => (*r.pick(&[
            "UPDATE feed_items SET ids = x'0100000000000000', factors = zeroblob(400000), popularity = x'0000803f'",
            "INSERT INTO feed_items SELECT chunk + 1, ids, factors, popularity FROM feed_items",
            "INSERT INTO feed_users SELECT chunk + 1, ids, factors FROM feed_users",
            "INSERT INTO feed_items SELECT -1, ids, factors, popularity FROM feed_items",
            "INSERT INTO feed_users SELECT 9223372036854775807, ids, factors FROM feed_users",
            "DELETE FROM feed_items",
            "DELETE FROM feed_users",
            "DELETE FROM feed_items WHERE chunk = 0",
            "UPDATE feed_users SET factors = substr(factors, 1, length(factors) / 2)",
            "UPDATE feed_items SET factors = factors || factors",
            "UPDATE feed_items SET popularity = popularity || x'00'",
            "DROP TABLE feed_users",
            "DROP TABLE feed_config",
            "DROP TABLE feed_model",
            "CREATE TABLE IF NOT EXISTS feed_users(chunk INTEGER PRIMARY KEY, ids BLOB NOT NULL, factors BLOB NOT NULL)",
        ]))
        .to_string(),
        4..=6 => {
            let key = *r.pick(&["tag", "version", "options", "events_upto", "newest_ts", "report", "colour"]);
            let v = if r.chance(0.4) {
                (*r.pick(&[
                    "'{\"factors\": 100000}'",
                    "json_set(value, '$.factors', 9999)",
                    "json_set(value, '$.alpha', -1)",
                    "json_set(value, '$.confidence', 'huge')",
                    "json_remove(value, '$.factors')",
                    "json_set(value, '$.iterations', 1e308)",
                    "'{}'",
                    "'[]'",
                    "'not json'",
                    "value || 'x'",
                    "-value",
                    "value + 1",
                ]))
                .to_string()
            } else {
                value(r)
            };
            if r.chance(0.2) {
                format!("DELETE FROM {base}_model WHERE key = '{key}'")
            } else if r.chance(0.2) {
                format!("INSERT OR REPLACE INTO {base}_model VALUES ('{key}', {v})")
            } else {
                format!("UPDATE {base}_model SET value = {v} WHERE key = '{key}'")
            }
        }
        7 | 8 => {
            let key = *r.pick(&[
                "factors",
                "format_version",
                "auto_refit",
                "explore",
                "exclude_watched",
                "exclude_items",
                "confidence",
                "tune",
                "alpha",
                "iterations",
                "skip_ratio",
                "threads",
                "colour",
            ]);
            let v = if r.chance(0.5) {
                option_value(r, key)
            } else {
                value(r)
            };
            let v = if v.starts_with('\'') || v.parse::<f64>().is_ok() || v.contains('(') || v == "NULL" {
                v
            } else {
                format!("'{}'", v.replace('\'', "''"))
            };
            match r.below(4) {
                0 => format!("DELETE FROM {base}_config WHERE key = '{key}'"),
                1 => format!("INSERT OR REPLACE INTO {base}_config VALUES ('{key}', {v})"),
                _ => format!("UPDATE {base}_config SET value = {v} WHERE key = '{key}'"),
            }
        }
        _ => {
            let col = *r.pick(&["user_id", "item_id", "watch_time", "duration", "ts", "id"]);
            match r.below(3) {
                0 => format!(
                    "INSERT INTO {base}_events(user_id, item_id, watch_time, duration, ts) VALUES ({}, {}, {}, {}, {})",
                    value(r),
                    value(r),
                    value(r),
                    value(r),
                    value(r)
                ),
                1 => format!("UPDATE {base}_events SET {col} = {} WHERE id % 3 = 0", value(r)),
                _ => format!(
                    "UPDATE {base}_events SET {col} = {} WHERE id = (SELECT max(id) FROM {base}_events)",
                    value(r)
                ),
            }
        }
    }
}

/// The batch: a set-up (a table with events, maybe a model), then random statements. The
/// same (seed, batch) always gives the same statements.
fn gen_batch(seed: u64, batch: u64, size: usize) -> Vec<Step> {
    let mut r = Rng::stream(seed, batch);
    let mut steps = Vec::new();
    let main = |sql: String| Step {
        plain: false,
        sql,
        interrupt_ms: None,
    };
    if r.chance(0.3) {
        steps.push(main("PRAGMA journal_mode = WAL".into()));
    }
    let mut opts = vec![format!("factors = {}", r.pick(&[2, 4, 8]))];
    if r.chance(0.7) {
        opts.push("tune = false".into());
    }
    for (p, o) in [
        (0.15, "auto_refit = 7"),
        (0.2, "explore = 0.3"),
        (0.2, "exclude_watched = false"),
        (0.15, "half_life_days = 1"),
        (0.15, "popularity_exponent = 0.5"),
        (0.1, "confidence = binary"),
        (0.25, "exclude_items = 'hidden'"),
    ] {
        if r.chance(p) {
            opts.push(o.into());
        }
    }
    steps.push(main(format!(
        "CREATE VIRTUAL TABLE feed USING foryou({})",
        opts.join(", ")
    )));
    let users = r.range(3, 70);
    let items = r.range(3, 60);
    let n = r.range(20, 400);
    steps.push(main(format!(
        "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) SELECT value % {users}, \
         (value * 7 + value / {users}) % {items}, (value * 13) % 40, 30, 1000 + value FROM generate_series(1, {n})"
    )));
    steps.push(main(
        "CREATE TABLE holdout AS SELECT user_id, (item_id + 1) AS item_id FROM feed_events WHERE id % 5 = 0"
            .into(),
    ));
    steps.push(main("CREATE TABLE mine(x)".into()));
    if r.chance(0.8) {
        // The block-list exclude_items may name: per-user rows, rows for everyone, odd values.
        steps.push(main(format!(
            "CREATE TABLE hidden AS SELECT CASE WHEN id % 3 = 0 THEN NULL ELSE user_id END AS user_id, item_id \
             FROM feed_events WHERE id % {} = 0 UNION ALL SELECT 1, {}",
            r.range(2, 9),
            value(&mut r)
        )));
    }
    if r.chance(0.7) {
        steps.push(main("SELECT foryou_refit('feed')".into()));
    }
    for _ in 0..size {
        let roll = r.below(100);
        let (plain, sql) = match roll {
            0..=17 => (false, ranked_fn(&mut r)),
            18..=27 => (false, refit(&mut r)),
            28..=32 => (false, evaluate(&mut r)),
            33..=34 => (false, info(&mut r)),
            35..=49 => (false, insert(&mut r)),
            50..=55 => (false, update(&mut r)),
            56..=59 => (false, delete(&mut r)),
            60..=64 => (false, select_table(&mut r)),
            65..=73 => (false, ddl(&mut r)),
            74..=83 => (false, txn(&mut r)),
            _ => (true, crafted(&mut r)),
        };
        let interrupt_ms =
            if !plain && (sql.contains("foryou_refit") || sql.contains("INSERT")) && r.chance(0.12)
            {
                Some(r.range(0, 30) as u64)
            } else {
                None
            };
        steps.push(Step {
            plain,
            sql,
            interrupt_ms,
        });
    }
    steps
}

// ---------------------------------------------------------------- the child: one batch

/// A deadline the watchdog thread interrupts the running statement at.
struct Watchdog {
    deadline: Arc<Mutex<Option<Instant>>>,
    fired: Arc<Mutex<bool>>,
}

impl Watchdog {
    fn start(conn: &Connection) -> Watchdog {
        let deadline: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let fired = Arc::new(Mutex::new(false));
        let handle = conn.get_interrupt_handle();
        let (d, f) = (Arc::clone(&deadline), Arc::clone(&fired));
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(2));
            let mut guard = d.lock().unwrap();
            if guard.is_some_and(|t| Instant::now() >= t) {
                handle.interrupt();
                *f.lock().unwrap() = true;
                *guard = None;
            }
        });
        Watchdog { deadline, fired }
    }
    fn arm(&self, after: Duration) {
        *self.fired.lock().unwrap() = false;
        *self.deadline.lock().unwrap() = Some(Instant::now() + after);
    }
    /// Disarms; true when it fired.
    fn disarm(&self) -> bool {
        *self.deadline.lock().unwrap() = None;
        *self.fired.lock().unwrap()
    }
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    // The parent reads every line; once it is gone (killed, or done with this child),
    // there is no one to work for: stop rather than run on as an orphan.
    if writeln!(o, "{}", line.replace('\n', "\\n"))
        .and_then(|()| o.flush())
        .is_err()
    {
        std::process::exit(3);
    }
}

fn mentions_scalar(sql: &str) -> bool {
    sql.contains("foryou_refit")
        || sql.contains("foryou_evaluate")
        || sql.contains("refit_view")
        || sql.contains("INSERT")
}

fn self_insert(sql: &str) -> bool {
    let s = sql.to_ascii_lowercase();
    s.contains("insert") && (s.contains("from feed_events") || s.contains("from feed "))
}

/// Runs the steps `only` (all when None) of batch (seed, batch); prints one line per
/// finding and a final `D` line. Exit code 0 whatever it finds (the parent decides).
fn child(seed: u64, batch: u64, size: usize, only: Option<&[usize]>) {
    let steps = gen_batch(seed, batch, size);
    let dir = tempfile::tempdir().expect("temp dir");
    std::env::set_current_dir(dir.path()).expect("cd");
    let main = shared::open_ext(std::path::Path::new("fuzz.db"));
    main.busy_timeout(Duration::ZERO).unwrap();
    let plain = shared::open_plain(std::path::Path::new("fuzz.db"));
    plain.busy_timeout(Duration::ZERO).unwrap();
    let dog = Watchdog::start(&main);
    let (mut run_n, mut errors, mut interrupts) = (0u64, 0u64, 0u64);
    let mut last_auto: Option<String> = None;
    for (i, step) in steps.iter().enumerate() {
        if only.is_some_and(|o| !o.contains(&i)) {
            continue;
        }
        out(&format!("S {i}"));
        run_n += 1;
        if step.plain {
            let ok = shared::run(&plain, &step.sql).is_ok();
            if ok && !main.is_autocommit() {
                last_auto = None;
            }
            continue;
        }
        let before = shared::digest(&main);
        let auto_before = main.is_autocommit();
        if auto_before {
            last_auto = Some(before.clone());
        }
        dog.arm(step.interrupt_ms.map_or(HANG, Duration::from_millis));
        let result = shared::run(&main, &step.sql);
        let fired = dog.disarm();
        match result {
            Ok(rows) => {
                if step.sql.starts_with("SELECT item_id, score, rank FROM") {
                    if let Some(bad) = badly_ranked(&rows) {
                        let dup: i64 = plain.query_row(
                            "SELECT (SELECT count(*) FROM (SELECT ids FROM feed_items GROUP BY ids HAVING count(*) > 1)) \
                             + (SELECT count(*) FROM (SELECT ids FROM feed_users GROUP BY ids HAVING count(*) > 1))",
                            [],
                            |r| r.get(0),
                        ).unwrap_or(0);
                        if dup > 0 && bad.contains("each item once") {
                            out(&format!("K {i} duplicate-ids-not-damaged {bad}"));
                        } else if bad.contains(" score ") && stored_non_finite(&plain) {
                            out(&format!("K {i} non-finite-not-damaged {bad}"));
                        } else {
                            out(&format!("F {i} ranked {bad}"));
                        }
                    }
                }
            }
            Err(e) => {
                errors += 1;
                let msg = shared::message(&e);
                let code = shared::code(&e);
                if fired && step.interrupt_ms.is_none() {
                    if self_insert(&step.sql) {
                        out(&format!("K {i} self-insert-never-ends {msg}"));
                    } else {
                        out(&format!(
                            "F {i} hang statement ran over {}s ({msg})",
                            HANG.as_secs()
                        ));
                    }
                }
                if fired {
                    interrupts += 1;
                }
                if msg.contains("internal error") {
                    out(&format!("F {i} internal-error {msg}"));
                } else if msg.starts_with("Invalid column type") {
                    out(&format!("K {i} crafted-events-message {msg:?}"));
                } else if !shared::ours(&msg) && !shared::sqlite_own(&msg) {
                    out(&format!("F {i} bad-message {msg:?} ({code:?})"));
                }
                if let Some(want) = shared::condition_code(&msg) {
                    if !shared::code_matches(want, code) {
                        if mentions_scalar(&step.sql) && code == Some(rusqlite::ErrorCode::Unknown)
                        {
                            out(&format!("K {i} scalar-error-code {msg} came as {code:?}"));
                        } else {
                            out(&format!(
                                "F {i} wrong-code {msg:?} came as {code:?}, expected {want:?}"
                            ));
                        }
                    }
                }
                let after = shared::digest(&main);
                let expect = if !auto_before && main.is_autocommit() {
                    last_auto.clone()
                } else {
                    Some(before.clone())
                };
                if let Some(expect) = expect {
                    if expect != after
                        && step.sql.contains("foryou_refit")
                        && !step.sql.contains("INSERT")
                        && model_only_change(&expect, &after)
                    {
                        out(&format!(
                            "K {i} refit-kept-by-failed-select {msg} :: {after}"
                        ));
                    } else if expect != after {
                        out(&format!(
                            "F {i} changed-on-error {msg} :: before {expect} :: after {after}"
                        ));
                    }
                }
            }
        }
    }
    out("S end");
    let _ = main.execute_batch("ROLLBACK");
    // On the plain connection: with the extension, SQLite connects every foryou table for
    // its integrity check, which fails by design on crafted config rows.
    match shared::run(&plain, "PRAGMA main.integrity_check") {
        Ok(rows) if rows.len() == 1 && rows[0][0] == Value::Text("ok".into()) => {}
        Ok(rows) => out(&format!(
            "F end integrity {:?}",
            rows.iter().map(|r| shared::show(&r[0])).collect::<Vec<_>>()
        )),
        Err(e) => out(&format!("F end integrity {}", shared::message(&e))),
    }
    out(&format!("D {run_n} {errors} {interrupts}"));
}

/// True when a factor or popularity blob of `feed_items` or `feed_users` holds a
/// non-finite f32 (as crafted contents may).
fn stored_non_finite(plain: &Connection) -> bool {
    let mut found = false;
    for sql in [
        "SELECT factors FROM feed_items UNION ALL SELECT popularity FROM feed_items",
        "SELECT factors FROM feed_users",
    ] {
        let Ok(mut st) = plain.prepare(sql) else {
            continue;
        };
        let Ok(rows) = st.query_map([], |r| r.get::<_, Vec<u8>>(0)) else {
            continue;
        };
        for b in rows.flatten() {
            found |= b
                .chunks_exact(4)
                .any(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite());
        }
    }
    found
}

/// True when two digests differ only in the model tag/version parts (the events and the
/// schema are the same).
fn model_only_change(a: &str, b: &str) -> bool {
    let strip = |s: &str| {
        s.split('|')
            .map(|part| {
                // The model's rows start at its first key: tag, or version when a
                // crafted model has no tag.
                let cut = ["\"tag=", "\"version="]
                    .iter()
                    .filter_map(|key| part.find(key))
                    .min()
                    .unwrap_or(part.len());
                let head = &part[..cut];
                head.strip_suffix("NULL").unwrap_or(head).to_string()
            })
            .collect::<Vec<_>>()
    };
    strip(a) == strip(b)
}

/// What is wrong with the rows of a ranked table function, if anything.
fn badly_ranked(rows: &[Vec<Value>]) -> Option<String> {
    let mut prev = f64::INFINITY;
    let mut explored = false;
    let mut seen = std::collections::HashSet::new();
    for (i, r) in rows.iter().enumerate() {
        let (Value::Integer(item), Value::Integer(rank)) = (&r[0], &r[2]) else {
            return Some(format!("row {i} has types {r:?}"));
        };
        if *rank != i as i64 + 1 || !seen.insert(*item) {
            return Some(format!(
                "row {i}: item {item} rank {rank} (ranks 1.., each item once)"
            ));
        }
        match &r[1] {
            // Explored slots (explore > 0) have score NULL, and come last.
            Value::Null => explored = true,
            Value::Real(score) if !explored && score.is_finite() && *score <= prev => prev = *score,
            other => return Some(format!("row {i}: item {item} score {other:?} after {prev} (finite, non-increasing, before the explored NULLs)")),
        }
    }
    None
}

// ---------------------------------------------------------------- targeted checks

/// The findings with a targeted check of their own (`--check id`).
const CHECKS: &[&str] = &[
    "huge-dim-abort",
    "self-insert-never-ends",
    "scalar-error-code",
];

fn setup_small(conn: &Connection) {
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, tune = false);
         INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
           SELECT value % 5, value % 7, 10, 10, value FROM generate_series(1, 40);
         SELECT foryou_refit('feed');",
    )
    .expect("set-up");
}

/// One targeted check, in this (child) process: prints `P id`, `K id detail` or `F id detail`.
fn check(id: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("check.db");
    let conn = shared::open_ext(&path);
    setup_small(&conn);
    match id {
        "huge-dim-abort" => {
            conn.execute_batch(
                "UPDATE feed_items SET ids = x'0100000000000000', factors = zeroblob(400000), popularity = x'0000803f'",
            )
            .unwrap();
            for sql in [
                "SELECT * FROM recommend(1, 3)",
                "SELECT * FROM similar_items(1, 3)",
            ] {
                match shared::run(&conn, sql) {
                    Err(e) if shared::message(&e).contains("damaged") => {}
                    other => {
                        out(&format!(
                            "F {id} {sql} gave {:?}",
                            other.map_err(|e| shared::message(&e))
                        ));
                        return;
                    }
                }
            }
            out(&format!("P {id}"));
        }
        "self-insert-never-ends" => {
            let dog = Watchdog::start(&conn);
            // Reading the shadow table the rows go to is refused at once, storing nothing.
            let n = shared::int(&conn, "SELECT count(*) FROM feed");
            dog.arm(Duration::from_secs(5));
            let r = shared::run(&conn, "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) SELECT user_id, item_id, watch_time, duration, ts FROM feed_events");
            if dog.disarm() {
                out(&format!(
                    "K {id} INSERT ... FROM feed_events ran over 5 s (interrupted)"
                ));
                return;
            }
            match r {
                Err(e) if shared::message(&e).contains("would never end") => {}
                other => {
                    out(&format!(
                        "F {id} INSERT ... FROM feed_events gave {:?}",
                        other.map(|_| ()).map_err(|e| shared::message(&e))
                    ));
                    return;
                }
            }
            if shared::int(&conn, "SELECT count(*) FROM feed") != n {
                out(&format!(
                    "F {id} the refused INSERT changed the event count"
                ));
                return;
            }
            // From the virtual table itself, SQLite buffers the source: it doubles.
            dog.arm(Duration::from_secs(5));
            let r = shared::run(&conn, "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) SELECT user_id, item_id, watch_time, duration, ts FROM feed");
            if dog.disarm() {
                out(&format!(
                    "K {id} INSERT ... FROM feed ran over 5 s (interrupted)"
                ));
                return;
            }
            let after = shared::int(&conn, "SELECT count(*) FROM feed");
            match r {
                Ok(_) if after == 2 * n => out(&format!("P {id}")),
                Ok(_) => out(&format!("F {id} {n} events became {after}, not {}", 2 * n)),
                Err(e) => out(&format!(
                    "F {id} INSERT ... FROM feed: {}",
                    shared::message(&e)
                )),
            }
        }
        "scalar-error-code" => {
            // BUSY: another connection holds an exclusive lock; no busy timeout.
            let other = Connection::open(&path).unwrap();
            other
                .execute_batch("BEGIN EXCLUSIVE; INSERT INTO feed_model VALUES ('x', 1);")
                .unwrap();
            conn.busy_timeout(Duration::ZERO).unwrap();
            let mut wrong = Vec::new();
            for sql in [
                "SELECT foryou_refit('feed')",
                "SELECT foryou_evaluate('feed', 'feed', 5)",
                "SELECT * FROM recommend(1, 3, 'feed')",
            ] {
                match shared::run(&conn, sql) {
                    Err(e)
                        if shared::code_matches(
                            rusqlite::ErrorCode::DatabaseBusy,
                            shared::code(&e),
                        ) => {}
                    Err(e) => wrong.push(format!(
                        "{sql}: {:?} {:?}",
                        shared::code(&e),
                        shared::message(&e)
                    )),
                    Ok(_) => wrong.push(format!("{sql}: succeeded under an exclusive lock")),
                }
            }
            other.execute_batch("ROLLBACK").unwrap();
            if wrong.is_empty() {
                out(&format!("P {id}"));
            } else {
                out(&format!("K {id} BUSY: {}", wrong.join("; ")));
            }
        }
        _ => out(&format!("F {id} no such check")),
    }
}

// ---------------------------------------------------------------- the parent

struct Outcome {
    /// (step, kind, detail) of each failure; kind "signal" and "hang" for the child itself.
    failures: Vec<(String, String, String)>,
    known: Vec<(String, String, String)>,
    passed: Vec<String>,
    statements: u64,
    errors: u64,
    interrupts: u64,
}

fn spawn(args: &[String], timeout: Duration) -> Outcome {
    let exe = shared::self_copy();
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the fuzz child");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let lines = reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let mut o = Outcome {
        failures: Vec::new(),
        known: Vec::new(),
        passed: Vec::new(),
        statements: 0,
        errors: 0,
        interrupts: 0,
    };
    let mut last = String::from("start");
    let mut done = false;
    for line in &lines {
        let mut parts = line.splitn(4, ' ');
        let tag = parts.next().unwrap_or("");
        let a = parts.next().unwrap_or("").to_string();
        let b = parts.next().unwrap_or("").to_string();
        let c = parts.next().unwrap_or("").to_string();
        match tag {
            "S" => last = a,
            "F" => o.failures.push((a, b, c)),
            // A hit of a fixed finding is a regression: a failure.
            "K" if shared::is_fixed(&b) => {
                o.failures
                    .push((a, format!("fixed-finding-{b}-regressed"), c));
            }
            "K" if shared::is_fixed(&a) => {
                o.failures.push((
                    a.clone(),
                    format!("fixed-finding-{a}-regressed"),
                    format!("{b} {c}"),
                ));
            }
            "K" => o.known.push((a, b, c)),
            "P" => o.passed.push(a),
            "D" => {
                done = true;
                o.statements = a.parse().unwrap_or(0);
                o.errors = b.parse().unwrap_or(0);
                o.interrupts = c.parse().unwrap_or(0);
            }
            _ => {}
        }
    }
    let tail: String = stderr
        .lines()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" | ");
    if timed_out {
        o.failures.push((
            last,
            "hang".into(),
            format!("the child ran over {}s and was killed", timeout.as_secs()),
        ));
    } else if let Some(sig) = status.signal() {
        o.failures.push((
            last,
            format!("signal-{sig}"),
            format!("the child died by signal {sig}: {tail}"),
        ));
    } else if !status.success()
        || (!done && o.passed.is_empty() && o.known.is_empty() && o.failures.is_empty())
    {
        o.failures.push((
            last,
            "exit".into(),
            format!("the child exited with {status} before its end: {tail}"),
        ));
    }
    if o.statements == 0 {
        o.statements = lines
            .iter()
            .filter(|l| l.starts_with("S ") && l != &"S end")
            .count() as u64;
    }
    o
}

fn batch_args(seed: u64, batch: u64, size: usize, only: Option<&[usize]>) -> Vec<String> {
    let mut a = vec![
        "--seed".into(),
        seed.to_string(),
        "--batch".into(),
        batch.to_string(),
        "--batch-size".into(),
        size.to_string(),
    ];
    if let Some(o) = only {
        a.push("--only".into());
        a.push(
            o.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    a
}

/// Shrinks the failing batch to fewer statements that still fail the same way.
fn shrink(
    seed: u64,
    batch: u64,
    size: usize,
    kind: &str,
    upto: usize,
    budget: Duration,
) -> Vec<usize> {
    let start = Instant::now();
    let mut keep: Vec<usize> = (0..=upto).collect();
    let mut i = keep.len().saturating_sub(1);
    while i > 0 && start.elapsed() < budget {
        i -= 1;
        let mut trial = keep.clone();
        trial.remove(i);
        let o = spawn(
            &batch_args(seed, batch, size, Some(&trial)),
            Duration::from_mins(1),
        );
        if o.failures.iter().any(|f| f.1 == kind) {
            keep = trial;
        }
    }
    keep
}

fn print_batch(steps: &[Step], only: Option<&[usize]>) {
    for (i, s) in steps.iter().enumerate() {
        if only.is_some_and(|o| !o.contains(&i)) {
            continue;
        }
        let mut note = String::new();
        if s.plain {
            note.push_str(" -- [plain connection, no extension]");
        }
        if let Some(ms) = s.interrupt_ms {
            let _ = write!(note, " -- [interrupted after {ms} ms]");
        }
        println!("  /* {i:>3} */ {};{note}", s.sql);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let size: usize = get("--batch-size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    if let Some(id) = get("--check") {
        check(&id);
        return;
    }
    let seed: u64 = get("--seed")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| shared::env_or("FUZZ_SEED", shared::now_seed()));
    if let Some(b) = get("--batch") {
        let batch: u64 = b.parse().expect("--batch N");
        let only: Option<Vec<usize>> = get("--only").map(|s| {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(|x| x.parse().expect("--only i,j"))
                .collect()
        });
        if args.iter().any(|a| a == "--print") {
            print_batch(&gen_batch(seed, batch, size), only.as_deref());
            return;
        }
        child(seed, batch, size, only.as_deref());
        return;
    }
    let seconds: f64 = get("--seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| shared::env_or("FUZZ_SECONDS", 30.0));
    parent(seed, seconds, size);
}

fn parent(seed: u64, seconds: f64, size: usize) {
    let start = Instant::now();
    println!(
        "fuzz: seed {seed}, {seconds} s, batches of {size} statements (FUZZ_SEED={seed} to repeat)"
    );
    let mut failures = 0u64;
    let mut known_hits: BTreeMap<String, u64> = BTreeMap::new();
    let mut xpass: Vec<String> = Vec::new();
    let strict = shared::strict_known();
    // The targeted checks of the KNOWN and FIXED findings, each in its own child.
    for k in shared::FIXED.iter().chain(KNOWN.iter()) {
        if !CHECKS.contains(&k.id) {
            continue; // found by the random batches (or by torture: txn-full-rollback)
        }
        let o = spawn(&["--check".into(), k.id.into()], Duration::from_mins(1));
        let is_known = KNOWN.iter().any(|x| x.id == k.id);
        for f in &o.failures {
            failures += 1;
            println!("FAIL check {}: {} {} {}", k.id, f.0, f.1, f.2);
        }
        for h in &o.known {
            println!("KNOWN check {}: {} {}", k.id, h.1, h.2);
            *known_hits.entry(h.0.clone()).or_default() += 1;
        }
        if o.passed.iter().any(|p| p == k.id) {
            if is_known {
                xpass.push(k.id.to_string());
                println!(
                    "check {}: passes now: the fix landed? remove it from KNOWN",
                    k.id
                );
            } else {
                println!("check {}: ok (fixed finding)", k.id);
            }
        }
    }
    let (mut statements, mut errors, mut interrupts, mut batches) = (0u64, 0u64, 0u64, 0u64);
    let mut batch = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        let o = spawn(&batch_args(seed, batch, size, None), Duration::from_mins(2));
        batches += 1;
        statements += o.statements;
        errors += o.errors;
        interrupts += o.interrupts;
        for h in &o.known {
            let n = known_hits.entry(h.1.clone()).or_default();
            if *n == 0 {
                println!(
                    "KNOWN {} first seen at seed {seed} batch {batch} step {}: {}\n  repro: target/release/fuzz --seed {seed} --batch {batch} --batch-size {size} --print",
                    h.1,
                    h.0,
                    h.2.chars().take(300).collect::<String>()
                );
            }
            *n += 1;
        }
        if let Some(first) = o.failures.first() {
            failures += o.failures.len() as u64;
            let steps = gen_batch(seed, batch, size);
            println!(
                "\nFAIL seed {seed} batch {batch}: {} failure(s)",
                o.failures.len()
            );
            for f in &o.failures {
                println!("  at step {}: {} {}", f.0, f.1, f.2);
            }
            let upto = first.0.parse::<usize>().unwrap_or(steps.len() - 1);
            let kind = first.1.clone();
            let keep = shrink(seed, batch, size, &kind, upto, Duration::from_secs(90));
            println!(
                "  minimal sequence ({} of {} statements) still giving {kind}:",
                keep.len(),
                upto + 1
            );
            print_batch(&steps, Some(&keep));
            let only = keep
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            println!(
                "  repro: target/release/fuzz --seed {seed} --batch {batch} --batch-size {size} --only {only}   (add --print for the SQL)\n"
            );
        }
        batch += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("KNOWN findings (expected failures until their fix lands; FORYOU_STRICT_KNOWN=1 fails on them):");
    for k in KNOWN {
        let hits = known_hits.get(k.id).copied().unwrap_or(0);
        let state = if xpass.iter().any(|x| x == k.id) {
            "check passes now".to_string()
        } else {
            format!("{hits} hit(s)")
        };
        println!("  {:<24} {state}: {}", k.id, k.description);
    }
    let known_total: u64 = known_hits.values().sum();
    println!(
        "fuzz summary: seed {seed}, {statements} statements in {batches} batches, {errors} errors returned, {interrupts} interrupted, {failures} failures, {known_total} known, {secs:.1} s"
    );
    shared::remove_self_copy();
    if failures > 0 || (strict && known_total > 0) {
        std::process::exit(1);
    }
}
