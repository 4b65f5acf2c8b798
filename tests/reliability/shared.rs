//! What the fuzzer (`fuzz.rs`) and the torture tests (`torture.rs`) share: a seeded RNG,
//! the list of KNOWN findings, error classification and the cheap digest of a database.

// Test tooling: sizes and counts far inside every type they are cast to.
#![allow(
    dead_code,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::missing_panics_doc,
    clippy::format_push_string
)]

use rusqlite::types::Value;
use rusqlite::{Connection, Error, ErrorCode};

/// splitmix64: small, seedable, the same stream on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    /// A generator for one (seed, stream) pair, independent of every other stream.
    pub fn stream(seed: u64, stream: u64) -> Rng {
        let mut r = Rng::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ stream);
        r.next();
        r
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A finding of the suite that a fix on another branch addresses. A check that hits one
/// counts as an expected failure (listed in the summary), not as a pass and not as a new
/// failure; with `FORYOU_STRICT_KNOWN=1` it fails like any other check, so that it can be
/// switched on once the fix lands (then delete its entry here).
pub struct Known {
    pub id: &'static str,
    pub description: &'static str,
}

pub const KNOWN: &[Known] = &[Known {
    id: "refit-kept-by-failed-select",
    description: "NEW (this suite): a SELECT that fails after one of its foryou_refit calls \
                      has written a model keeps that model: an sqlite3_interrupt landing after the \
                      call returned (SQLITE_INTERRUPT), or a later row's error in \
                      SELECT foryou_refit() FROM generate_series(1, 3); the outer SELECT is \
                      read-only, so SQLite has no statement rollback for it",
}];

/// Fixed findings: checks that must pass (a failure is a regression, not a KNOWN).
pub const FIXED: &[Known] = &[
    Known {
        id: "huge-dim-abort",
        description: "a crafted feed_items row with one 100,000-dimensional vector aborted the \
                      process; it must be reported as damaged",
    },
    Known {
        id: "txn-full-rollback",
        description: "disk full (SQLITE_FULL) inside the caller's own transaction rolls back the \
                      caller's earlier rows (BEGIN; INSERT INTO mine ...; INSERT INTO feed SELECT ... \
                      -> the transaction is gone)",
    },
    Known {
        id: "self-insert-never-ends",
        description: "INSERT INTO feed SELECT ... FROM feed_events (or FROM feed) never ends: it \
                      reads the rows it inserts",
    },
    Known {
        id: "scalar-error-code",
        description: "every scalar-function error (foryou_refit, foryou_evaluate) comes back as \
                      SQLITE_ERROR, even for BUSY, FULL and INTERRUPT (the message is kept)",
    },
    Known {
        id: "duplicate-ids-not-damaged",
        description: "NEW (this suite): a factor chunk copied by hand under a second chunk number \
                      (INSERT INTO feed_items SELECT -1, ids, factors, popularity FROM feed_items) \
                      is not reported as damaged: every item id is there twice, and recommend \
                      returns the same item twice",
    },
    Known {
        id: "non-finite-not-damaged",
        description: "NEW (this suite): non-finite values written into feed_items by hand (a \
                      popularity or factor of -inf, inf or NaN) are served, not reported as \
                      damaged: recommend returns score -inf (or NULL for NaN, which reads as an \
                      explored slot)",
    },
    Known {
        id: "crafted-events-message",
        description: "NEW (this suite): an event row of the wrong type written into feed_events \
                      by hand (e.g. user_id 1e999, duration 'inf') surfaces as rusqlite's \
                      'Invalid column type Text at index: 4, name: duration', a message that names \
                      neither foryou nor the table and does not say 'damaged'",
    },
];

/// Whether `id` is a fixed finding: a check that hits it again is a failure.
pub fn is_fixed(id: &str) -> bool {
    FIXED.iter().any(|k| k.id == id)
}

pub fn known(id: &str) -> &'static Known {
    KNOWN
        .iter()
        .chain(FIXED)
        .find(|k| k.id == id)
        .unwrap_or_else(|| panic!("no KNOWN entry {id}"))
}

/// `FORYOU_STRICT_KNOWN=1`: KNOWN findings fail.
pub fn strict_known() -> bool {
    std::env::var("FORYOU_STRICT_KNOWN").is_ok_and(|v| v == "1")
}

/// The message SQLite reports for `e` (without rusqlite's decorations).
pub fn message(e: &Error) -> String {
    match e {
        Error::SqliteFailure(_, Some(m)) => m.clone(),
        other => other.to_string(),
    }
}

/// SQLite's primary error code of `e`, if it is an SQLite error.
pub fn code(e: &Error) -> Option<ErrorCode> {
    match e {
        Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

/// The prefixes of foryou's own messages: the name of a function or of the module.
pub const OUR_PREFIXES: &[&str] = &[
    "foryou:",
    "recommend:",
    "similar_items:",
    "foryou_refit:",
    "foryou_evaluate:",
    "foryou_version:",
    "foryou_debug:",
];

/// Messages SQLite itself produces (its parser, VDBE, pager, built-in functions), by
/// prefix or by a phrase they contain.
const SQLITE_PREFIXES: &[&str] = &[
    "near \"",
    "no such table",
    "no such column",
    "no such function",
    "no such savepoint",
    "no such database",
    "no such module",
    "no such vtable",
    "unknown database",
    "wrong number of arguments",
    "unsafe use of",
    "cannot ",
    "database is locked",
    "database table is locked",
    "database schema is locked",
    "database or disk is full",
    "database disk image is malformed",
    "interrupted",
    "datatype mismatch",
    "UNIQUE constraint failed",
    "NOT NULL constraint failed",
    "CHECK constraint failed",
    "constraint failed",
    "table ",
    "index ",
    "view ",
    "trigger ",
    "vtable constructor",
    "virtual tables may not",
    "SQL logic error",
    "too many",
    "unrecognized token",
    "incomplete input",
    "out of memory",
    "attempt to write a readonly database",
    "string or blob too big",
    "integer overflow",
    "parser stack overflow",
    "sub-select returns",
    "row value misused",
    "database ",
    "there is already",
    "object name reserved",
    "malformed JSON",
    "JSON cannot hold BLOB values",
    "json_",
    "bad JSON path",
    "unable to open database",
    "file is not a database",
    "first argument to",
    "second argument to",
    "generate_series",
    "ambiguous column name",
    "misuse of aggregate",
    "no tables specified",
    "a GROUP BY clause",
    "unable to use function",
    "safety level may not",
    "temporary storage cannot",
    "abort due to ROLLBACK",
    "not authorized",
    "disk I/O error",
    "other ",
    "unknown error",
    "LIMIT clause",
    "ORDER BY term",
    "1st ORDER BY",
    "2nd ORDER BY",
    "3rd ORDER BY",
    "RAISE()",
    "hex literal too big",
    "unsupported use of NULLS",
    "default value of column",
    "error in ",
    "modification of",
    "unsupported frame",
    "misuse of window",
    "non-deterministic",
    "aggregate functions are not allowed",
    "DEFAULT VALUES",
];

/// True when `msg` is one of foryou's messages (it names the function or table).
pub fn ours(msg: &str) -> bool {
    OUR_PREFIXES.iter().any(|p| msg.starts_with(p))
}

/// True when `msg` is SQLite's own.
pub fn sqlite_own(msg: &str) -> bool {
    SQLITE_PREFIXES.iter().any(|p| msg.starts_with(p))
}

/// What an error message says about the condition SQLite reports by its code: the code
/// the error must carry when the message shows the condition.
pub fn condition_code(msg: &str) -> Option<ErrorCode> {
    if msg.contains("interrupted") {
        Some(ErrorCode::OperationInterrupted)
    } else if msg.contains("database or disk is full") {
        Some(ErrorCode::DiskFull)
    } else if msg.contains("database is locked") || msg.contains("database table is locked") {
        Some(ErrorCode::DatabaseBusy)
    } else {
        None
    }
}

/// Whether `got` is an acceptable code for the condition `want`.
pub fn code_matches(want: ErrorCode, got: Option<ErrorCode>) -> bool {
    match want {
        ErrorCode::DatabaseBusy => matches!(
            got,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        ),
        w => got == Some(w),
    }
}

/// A connection to `path` with the extension loaded and `generate_series` (which the
/// bundled SQLite lacks; rusqlite's has the shell's semantics).
pub fn open_ext(path: &std::path::Path) -> Connection {
    let c = foryou_tests::open(path);
    rusqlite::vtab::series::load_module(&c).expect("generate_series");
    c
}

/// A connection without the extension (crafted shadow-table contents).
pub fn open_plain(path: &std::path::Path) -> Connection {
    let c = Connection::open(path).expect("open");
    rusqlite::vtab::series::load_module(&c).expect("generate_series");
    c
}

/// Runs one statement, reading every row as values.
pub fn run(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<Vec<Value>>> {
    let mut stmt = conn.prepare(sql)?;
    let n = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(
            (0..n)
                .map(|i| row.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    Ok(out)
}

/// One value of a one-row query, as text (errors become text too).
pub fn scalar(conn: &Connection, sql: &str) -> String {
    match conn.query_row(sql, [], |r| r.get::<_, Value>(0)) {
        Ok(v) => show(&v),
        Err(e) => format!("<{}>", message(&e)),
    }
}

pub fn int(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {}", message(&e)))
}

pub fn show(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => format!("{f:?}"),
        Value::Text(t) => format!("{t:?}"),
        Value::Blob(b) => format!("blob{}:{:x}", b.len(), fnv(b)),
    }
}

pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A cheap digest of everything a statement may change that foryou owns: the schema
/// (names of every object), every events table (count and sums of each column) and the
/// model tag and version of every foryou table, in every attached schema.
pub fn digest(conn: &Connection) -> String {
    let mut out = String::new();
    let schemas: Vec<String> = match run(conn, "SELECT name FROM pragma_database_list") {
        Ok(rows) => rows
            .iter()
            .map(|r| match &r[0] {
                Value::Text(t) => t.clone(),
                _ => String::new(),
            })
            .collect(),
        Err(e) => return format!("<{}>", message(&e)),
    };
    for s in schemas {
        let q = s.replace('"', "\"\"");
        let names = run(
            conn,
            &format!("SELECT name FROM \"{q}\".sqlite_master ORDER BY name"),
        )
        .unwrap_or_default();
        if names.is_empty() {
            continue; // temp exists once anything touched it: an empty schema is no change
        }
        out.push_str(&format!("[{s}]"));
        for n in &names {
            let Value::Text(name) = &n[0] else { continue };
            out.push_str(name);
            out.push(',');
        }
        for n in &names {
            let Value::Text(name) = &n[0] else { continue };
            let t = name.replace('"', "\"\"");
            if let Some(base) = name.strip_suffix("_events") {
                out.push_str(&scalar(
                    conn,
                    &format!(
                        "SELECT count(*) || ':' || total(id) || ':' || total(user_id) || ':' || \
                         total(item_id) || ':' || total(watch_time) || ':' || total(duration) || \
                         ':' || total(ts) FROM \"{q}\".\"{t}\""
                    ),
                ));
                let m = format!("{base}_model").replace('"', "\"\"");
                out.push_str(&scalar(
                    conn,
                    &format!(
                        "SELECT group_concat(key || '=' || quote(value), ';') FROM \
                         (SELECT key, value FROM \"{q}\".\"{m}\" WHERE key IN ('tag', 'version') \
                         ORDER BY key)"
                    ),
                ));
                out.push('|');
            }
        }
    }
    out
}

/// A private copy of this executable to spawn children from, so that rebuilding the
/// binary during a long run (which replaces the file) does not break it. Removed by
/// `remove_self_copy`.
pub fn self_copy() -> std::path::PathBuf {
    static COPY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let exe = std::env::current_exe().expect("current exe");
        let dir = std::env::temp_dir().join(format!("foryou-reliability-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let copy = dir.join(exe.file_name().expect("exe name"));
        std::fs::copy(&exe, &copy).expect("copy the executable");
        copy
    })
    .clone()
}

pub fn remove_self_copy() {
    let dir = std::env::temp_dir().join(format!("foryou-reliability-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(dir);
}

/// Seconds since the epoch, for default seeds.
pub fn now_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() ^ u64::from(d.subsec_nanos()))
}

/// An environment variable parsed, or a default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
