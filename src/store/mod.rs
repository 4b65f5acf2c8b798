//! The store: the shadow tables of a `foryou` table, and the only code that runs SQL.
//!
//! A table `feed` keeps its state in:
//!
//! | shadow table   | holds |
//! |----------------|-------|
//! | `feed_config`  | options and the storage format version (`key`, `value`) |
//! | `feed_events`  | the watch events (`id` is the rowid seen through `feed`) |
//! | `feed_model`   | metadata of the fitted model (`key`, `value`) |
//! | `feed_users`   | user factors, in chunks of [`CHUNK_ROWS`] rows |
//! | `feed_items`   | item factors and popularity, in chunks of [`CHUNK_ROWS`] rows |
//!
//! - [`schema`]: creating, opening (format version, stored options), renaming, dropping.
//! - [`events`]: event rows: insert, update, delete, scans, the refit's stream.
//! - [`factors`]: the fitted model: metadata rows and the factor blob format.
//! - [`catalog`]: which `foryou` tables a schema has; the app's hold-out tables.
//!
//! Every statement text of a table is made once, in [`Statements`], when the table is
//! opened (like FTS5's statement array), and prepared through the connection's
//! statement cache.

mod catalog;
mod content;
mod events;
mod factors;
mod schema;

use rusqlite::types::{Type, ValueRef};
use rusqlite::{ffi, Connection};

use crate::error::{Error, Result};

pub use catalog::{excluded_items, file_identity, foryou_tables, read_holdout, schema_versions};
pub use content::{refuse_inside_content_read, Content, Skipped};
pub use events::{Event, Streamed};
pub use factors::{ModelMeta, StoredModel};

/// Version of the storage layout; checked when a table is opened.
pub const FORMAT_VERSION: i64 = 1;

/// Rows per factor chunk: large blobs read fast, small enough to rewrite cheaply.
pub const CHUNK_ROWS: usize = 4096;

/// Shadow table suffixes, in creation order.
pub const PARTS: [&str; 5] = ["config", "events", "model", "users", "items"];

/// An integer id as the extension accepts one: INTEGER, a REAL with an integral value,
/// or text that reads as one; None for anything else.
pub fn integer_value(value: ValueRef<'_>) -> Option<i64> {
    /// The largest magnitude below which every integral f64 converts to i64 exactly.
    const EXACT_INTEGER: f64 = 9.0e15;
    fn integral(r: f64) -> Option<i64> {
        // Exact: |r| < 9e15 < 2^63 and r has no fractional part.
        #[allow(clippy::cast_possible_truncation)]
        (r.fract() == 0.0 && r.abs() < EXACT_INTEGER).then_some(r as i64)
    }
    match value {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(r) => integral(r),
        ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|s| {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(integral))
        }),
        ValueRef::Null | ValueRef::Blob(_) => None,
    }
}

/// SQL's name of a value's type, as messages show it.
fn type_name(t: Type) -> &'static str {
    match t {
        Type::Null => "NULL",
        Type::Integer => "an INTEGER",
        Type::Real => "a REAL",
        Type::Text => "TEXT",
        Type::Blob => "a BLOB",
    }
}

/// `identifier` as a double-quoted SQL identifier.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// One `foryou` table's shadow tables: their names and every statement run on them.
#[derive(Clone, Debug, PartialEq)]
pub struct Shadow {
    pub schema: String,
    pub table: String,
    sql: Statements,
    /// None: the events are in `<table>_events`.
    content: Option<Content>,
}

/// The text of every statement the store runs on one table, made once per table.
#[derive(Clone, Debug, PartialEq)]
struct Statements {
    config_select: String,
    config_insert: String,
    event_insert: String,
    /// The same as an `INSERT ... SELECT`, which SQLite runs with a statement journal:
    /// inside the caller's transaction, a disk-full or out-of-memory failure then undoes
    /// this statement (and the caller's statement) only, not the whole transaction.
    event_insert_journaled: String,
    event_update: String,
    event_delete: String,
    /// Paged scans: one rowid, one user, or everything, from a first rowid on.
    scan_one: String,
    scan_user: String,
    scan_all: String,
    stream: String,
    id_span: String,
    user_items: String,
    user_events: String,
    items_after: String,
    count_after: String,
    viewers: String,
    catalogue_size: String,
    model_tag: String,
    model_rows: String,
    /// The per-user digests, one BLOB row of `<table>_model` (read apart: it is large).
    digests_select: String,
    digests_delete: String,
    model_put: String,
    model_lock: String,
    users_select: String,
    items_select: String,
    users_delete: String,
    items_delete: String,
    users_insert: String,
    items_insert: String,
    /// The model's writes without a statement journal, for inside a running write
    /// statement (see [`Within`]).
    model_put_plain: String,
    users_insert_plain: String,
    items_insert_plain: String,
}

impl Statements {
    /// Every statement of one table: `name(part)` names its shadow tables, `events`
    /// says where its events are read.
    fn new(name: impl Fn(&str) -> String, events: &EventSql) -> Statements {
        let (config, model, users, items) =
            (name("config"), name("model"), name("users"), name("items"));
        let own = name("events");
        let EventSql {
            relation: rel,
            id,
            ts,
            ts_raw,
            valid,
        } = events;
        // `valid` joined to a filter (`where_valid` alone, `and_valid` after one).
        let and_valid = match valid {
            Some(v) => format!(" AND {v}"),
            None => String::new(),
        };
        let where_valid = match valid {
            Some(v) => format!(" WHERE {v}"),
            None => String::new(),
        };
        let scan = |filter: &str| {
            format!(
                "SELECT {id}, user_id, item_id, watch_time, duration, {ts} FROM {rel} \
                 WHERE {filter}{and_valid} ORDER BY {id} LIMIT ?4"
            )
        };
        Statements {
            config_select: format!("SELECT key, value FROM {config}"),
            config_insert: format!("INSERT INTO {config}(key, value) VALUES (?1, ?2)"),
            event_insert: format!(
                "INSERT INTO {own}(id, user_id, item_id, watch_time, duration, ts) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            event_insert_journaled: format!(
                "INSERT INTO {own}(id, user_id, item_id, watch_time, duration, ts) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6"
            ),
            event_update: format!(
                "UPDATE {own} SET id = ?2, user_id = ?3, item_id = ?4, watch_time = ?5, \
                 duration = ?6, ts = ?7 WHERE id = ?1"
            ),
            event_delete: format!("DELETE FROM {own} WHERE id = ?1"),
            // Plain terms the planner can use (a rowid range, the user index, one rowid):
            // "?1 IS NULL OR id > ?1" would make every page a scan from the first row.
            scan_one: scan(&format!(
                "{id} = ?3 AND {id} >= ?1 AND (?2 IS NULL OR user_id = ?2)"
            )),
            scan_user: scan(&format!("user_id = ?2 AND {id} >= ?1")),
            scan_all: scan(&format!("{id} >= ?1")),
            stream: format!(
                "SELECT {id}, user_id, item_id, watch_time, duration, {ts_raw} FROM {rel} \
                 ORDER BY {id}"
            ),
            id_span: format!("SELECT (SELECT min({id}) FROM {rel}), (SELECT max({id}) FROM {rel})"),
            // Own events: in the order of the covering index. Content: only the columns
            // an index on (user_id, item_id) covers, in any order, with no SQL checks
            // (the caller skips non-integer values and sorts, cheaper than SQLite's
            // sorter and its `typeof` text compares on a serving call's hot read).
            user_items: if valid.is_some() {
                format!("SELECT {id}, item_id FROM {rel} WHERE user_id = ?1")
            } else {
                format!("SELECT {id}, item_id FROM {rel} WHERE user_id = ?1 ORDER BY item_id, {id}")
            },
            // Content: raw values, checked by the caller with `content::invalid` (as
            // `user_items`, off SQLite's `typeof` compares and sorter).
            user_events: if valid.is_some() {
                format!(
                    "SELECT {id}, user_id, item_id, watch_time, duration, {ts_raw} FROM {rel} \
                     WHERE user_id = ?1"
                )
            } else {
                format!(
                    "SELECT {id}, item_id, watch_time, duration, {ts} FROM {rel} \
                     WHERE user_id = ?1 ORDER BY item_id, {id}"
                )
            },
            items_after: format!(
                "SELECT DISTINCT item_id FROM {rel} WHERE {id} > ?1{and_valid} ORDER BY item_id"
            ),
            count_after: format!("SELECT count(*) FROM {rel} WHERE {id} > ?1"),
            viewers: format!(
                "SELECT item_id, user_id, watch_time, duration FROM {rel}{where_valid} \
                 ORDER BY item_id, user_id"
            ),
            catalogue_size: format!("SELECT count(DISTINCT item_id) FROM {rel}{where_valid}"),
            model_tag: format!("SELECT value FROM {model} WHERE key = 'tag'"),
            model_rows: format!("SELECT key, value FROM {model} WHERE key <> 'user_digests'"),
            digests_select: format!("SELECT value FROM {model} WHERE key = 'user_digests'"),
            digests_delete: format!("DELETE FROM {model} WHERE key = 'user_digests'"),
            // The model's writes as INSERT ... SELECT, for the statement journal (see
            // `event_insert_journaled`): a refit that fails undoes only itself.
            model_put: format!("INSERT OR REPLACE INTO {model}(key, value) SELECT ?1, ?2"),
            // Changes nothing, but a write statement takes the write lock as it starts.
            model_lock: format!("DELETE FROM {model} WHERE 0"),
            users_select: format!("SELECT ids, factors, NULL FROM {users} ORDER BY chunk"),
            items_select: format!("SELECT ids, factors, popularity FROM {items} ORDER BY chunk"),
            users_delete: format!("DELETE FROM {users}"),
            items_delete: format!("DELETE FROM {items}"),
            users_insert: format!("INSERT INTO {users}(chunk, ids, factors) SELECT ?1, ?2, ?3"),
            items_insert: format!(
                "INSERT INTO {items}(chunk, ids, factors, popularity) SELECT ?1, ?2, ?3, ?4"
            ),
            model_put_plain: format!("INSERT OR REPLACE INTO {model}(key, value) VALUES (?1, ?2)"),
            users_insert_plain: format!(
                "INSERT INTO {users}(chunk, ids, factors) VALUES (?1, ?2, ?3)"
            ),
            items_insert_plain: format!(
                "INSERT INTO {items}(chunk, ids, factors, popularity) VALUES (?1, ?2, ?3, ?4)"
            ),
        }
    }
}

/// The pieces of SQL that say where a table's events are read: its own `_events`, or
/// the app's content table or view.
struct EventSql {
    /// The qualified table or view.
    relation: String,
    /// The event id column.
    id: String,
    /// The event time as an integer (undated: 0).
    ts: String,
    /// The event time as stored (the refit's stream checks it itself).
    ts_raw: String,
    /// The rows that are events (None: all, the virtual table validated them).
    valid: Option<String>,
}

impl EventSql {
    fn own(relation: String) -> EventSql {
        EventSql {
            relation,
            id: "id".to_string(),
            ts: "ts".to_string(),
            ts_raw: "ts".to_string(),
            valid: None,
        }
    }

    /// The content's events: the rows whose values are of the types and ranges the
    /// virtual table accepts on INSERT (integer ids, finite watch time >= 0, finite
    /// duration > 0, integer or NULL ts). The refit's stream applies the same rule
    /// itself ([`content::invalid`]), to count what it skips.
    fn content(relation: String, content: &Content) -> EventSql {
        let id = quote(&content.id_column);
        let (ts, ts_raw, ts_valid) = if content.has_ts {
            (
                "coalesce(ts, 0)".to_string(),
                "ts".to_string(),
                " AND typeof(ts) IN ('integer', 'null')",
            )
        } else {
            ("0".to_string(), "NULL".to_string(), "")
        };
        // 1e999 is +Inf in SQLite: `x < 1e999` holds for the finite values only.
        let valid = format!(
            "typeof({id}) = 'integer' AND typeof(user_id) = 'integer' \
             AND typeof(item_id) = 'integer' \
             AND typeof(watch_time) IN ('integer', 'real') AND watch_time >= 0 \
             AND watch_time < 1e999 \
             AND typeof(duration) IN ('integer', 'real') AND duration > 0 \
             AND duration < 1e999{ts_valid}"
        );
        EventSql {
            relation,
            id,
            ts,
            ts_raw,
            valid: Some(valid),
        }
    }
}

impl Shadow {
    /// A table whose events are its own (`<table>_events`); [`Shadow::reading`] points
    /// it at a content table.
    pub fn new(schema: &str, table: &str) -> Self {
        let qualified =
            |part: &str| format!("{}.{}", quote(schema), quote(&format!("{table}_{part}")));
        Shadow {
            schema: schema.to_string(),
            table: table.to_string(),
            sql: Statements::new(qualified, &EventSql::own(qualified("events"))),
            content: None,
        }
    }

    /// This table reading its events from `content` (in its schema).
    fn with_content(&self, content: Content) -> Shadow {
        let (schema, table) = (&self.schema, &self.table);
        let qualified =
            |part: &str| format!("{}.{}", quote(schema), quote(&format!("{table}_{part}")));
        let relation = format!("{}.{}", quote(schema), quote(&content.name));
        Shadow {
            schema: schema.clone(),
            table: table.clone(),
            sql: Statements::new(qualified, &EventSql::content(relation, &content)),
            content: Some(content),
        }
    }

    /// The content table this table reads its events from (option `content`), if any.
    pub fn content(&self) -> Option<&Content> {
        self.content.as_ref()
    }

    /// `"schema"."<table>_<part>"`: the one place shadow names are made.
    pub fn name(&self, part: &str) -> String {
        format!(
            "{}.{}",
            quote(&self.schema),
            quote(&format!("{}_{part}", self.table))
        )
    }

    /// The unqualified name, for DDL that takes no schema (rename targets).
    fn bare(&self, part: &str) -> String {
        quote(&format!("{}_{part}", self.table))
    }

    /// A rusqlite error of reading `<table>_<part>`: a value of the wrong type in a
    /// column (which this build never writes) is damage, named by its column.
    fn read_error(&self, part: &'static str, e: rusqlite::Error) -> Error {
        match e {
            rusqlite::Error::InvalidColumnType(_, column, found) => {
                let expected = match column.as_str() {
                    "watch_time" | "duration" => "a number",
                    "key" => "TEXT",
                    _ => "an INTEGER",
                };
                Error::Damaged {
                    table: self.table.clone(),
                    part,
                    detail: format!("column {column} holds {}, not {expected}", type_name(found)),
                }
            }
            other => match &self.content {
                Some(content) => self.unreadable(content, other),
                None => Error::Sqlite(other),
            },
        }
    }

    /// Runs `body` so that all of its writes land, or none do; `body` learns where it
    /// runs ([`Within`]) and writes accordingly.
    ///
    /// Outside a write statement that is a savepoint. Inside one (an INSERT that runs
    /// an automatic refit, or `INSERT INTO log SELECT foryou_refit(...)`) SQLite opens
    /// no savepoint; that statement fails with `body`, and undoes what `body` wrote as
    /// far as SQLite undoes a failing statement's writes (see [`Within::Statement`]).
    pub fn atomically<T>(conn: &Connection, body: impl FnOnce(Within) -> Result<T>) -> Result<T> {
        if write_statement_running(conn) {
            return body(Within::Statement);
        }
        conn.execute_batch("SAVEPOINT foryou")?;
        match body(Within::Savepoint) {
            Ok(value) => {
                conn.execute_batch("RELEASE foryou")?;
                Ok(value)
            }
            Err(error) => {
                // Keep the first error: a failing rollback cannot add information.
                let _ = conn.execute_batch("ROLLBACK TO foryou; RELEASE foryou");
                Err(error)
            }
        }
    }
}

/// The run of the caller's statement that [`Shadow::check_insert_source`] last passed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceCheck {
    /// The running write statement (its address), its run count and its text: SQLite
    /// may give a new statement the address of a finalized one, so the text is compared
    /// too.
    statement: usize,
    runs: i32,
    text: Vec<u8>,
}

impl Shadow {
    /// Refuses an event INSERT whose own statement reads `<table>_events`, the shadow
    /// table the rows go to: SQLite does not buffer such a source (it cannot know the
    /// virtual table writes there), so the scan would see every inserted row and the
    /// statement would never end. The text is searched once per run of a statement.
    pub fn check_insert_source(&self, conn: &Connection, last: &mut SourceCheck) -> Result<()> {
        let Some((stmt, runs)) = running_write_statement(conn) else {
            return Ok(());
        };
        // SAFETY: `stmt` is a live statement of this connection (just found in its
        // list, on this thread; it cannot be finalized while it runs our callback), and
        // sqlite3_sql returns its NUL-terminated text, owned by the statement and
        // unchanged while it runs; the borrow ends before this function returns.
        let text = unsafe {
            let sql = ffi::sqlite3_sql(stmt);
            if sql.is_null() {
                &[][..]
            } else {
                std::ffi::CStr::from_ptr(sql).to_bytes()
            }
        };
        if last.statement == stmt as usize && last.runs == runs && last.text == text {
            return Ok(());
        }
        if names_identifier(
            &String::from_utf8_lossy(text),
            &format!("{}_events", self.table),
        ) {
            return Err(Error::ReadsOwnEvents {
                table: self.table.clone(),
            });
        }
        *last = SourceCheck {
            statement: stmt as usize,
            runs,
            text: text.to_vec(),
        };
        Ok(())
    }
}

impl Shadow {
    /// Takes the database's write lock for the rest of the enclosing
    /// [`Shadow::atomically`] (waiting as the connection's busy timeout says; BUSY if it
    /// cannot), so that what `body` reads next cannot change under it before it writes:
    /// no other connection can write in between.
    pub fn lock_for_write(&self, conn: &Connection) -> Result<()> {
        conn.prepare_cached(&self.sql.model_lock)?.execute([])?;
        Ok(())
    }

    /// `Ok` when the schema of this table can be written; SQLite's READONLY error when
    /// it was opened read-only (a write would fail with it, after all the work before).
    pub fn check_writable(&self, conn: &Connection) -> Result<()> {
        let Ok(schema) = std::ffi::CString::new(self.schema.as_str()) else {
            return Ok(());
        };
        // SAFETY: the handle of a live connection, used on this thread during this call;
        // `schema` is a NUL-terminated string that outlives the call, which only reads it.
        let readonly = unsafe { ffi::sqlite3_db_readonly(conn.handle(), schema.as_ptr()) };
        if readonly == 1 {
            return Err(rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_READONLY),
                Some("attempt to write a readonly database".to_string()),
            )
            .into());
        }
        Ok(())
    }
}

/// Whether `identifier` occurs in `sql` as a whole name (case-insensitive, bare or
/// quoted).
fn names_identifier(sql: &str, identifier: &str) -> bool {
    let text = sql.to_ascii_lowercase();
    let name = identifier.to_ascii_lowercase();
    let is_name_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
    let bytes = text.as_bytes();
    text.match_indices(&name).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + name.len()).copied();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

/// The statement that writes and is running on `conn` (busy: stepped, not reset; and
/// not read-only), with its run count.
fn running_write_statement(conn: &Connection) -> Option<(*mut ffi::sqlite3_stmt, i32)> {
    // SAFETY: the handle of a live connection, used on this thread during this call.
    // sqlite3_next_stmt walks the connection's own list of prepared statements, which
    // cannot change while we hold no statement and run no SQL; sqlite3_stmt_busy,
    // sqlite3_stmt_readonly and sqlite3_stmt_status only read a statement of that list.
    unsafe {
        let db = conn.handle();
        let mut stmt = ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
        while !stmt.is_null() {
            if ffi::sqlite3_stmt_busy(stmt) != 0 && ffi::sqlite3_stmt_readonly(stmt) == 0 {
                let runs = ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_RUN, 0);
                return Some((stmt, runs));
            }
            stmt = ffi::sqlite3_next_stmt(db, stmt);
        }
    }
    None
}

/// SQLite's INTERRUPT error once `sqlite3_interrupt` was called on `conn` while a
/// statement runs (as during a refit), else None. For a caller that computes off
/// SQLite for long, on the thread that owns `conn`: SQLite 3.40 has no
/// `sqlite3_is_interrupted`, but a statement started on an interrupted connection fails
/// at once with `SQLITE_INTERRUPT` (this runs `SELECT 1`, which touches no table). Any
/// other failure of that statement is not a reason to stop: None.
pub fn interruption(conn: &Connection) -> Option<rusqlite::Error> {
    let result = conn
        .prepare_cached("SELECT 1")
        .and_then(|mut stmt| stmt.query_row([], |_| Ok(())));
    match result {
        Err(e @ rusqlite::Error::SqliteFailure(..))
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) =>
        {
            Some(e)
        }
        _ => None,
    }
}

/// SQLite's heap limit, if one is set: the smaller of `PRAGMA hard_heap_limit` and
/// `PRAGMA soft_heap_limit` that is not 0 (none), in bytes, and the PRAGMA that set it.
/// Both are process-wide; reading them (an argument of -1) changes neither.
pub fn heap_limit() -> Option<(u64, &'static str)> {
    // SAFETY: both functions only read the process-wide limit when given -1; they exist
    // in every SQLite this extension loads into (3.31 and later; rusqlite's bindings
    // target 3.34 and the extension refuses older ones at load).
    let (hard, soft) = unsafe {
        (
            ffi::sqlite3_hard_heap_limit64(-1),
            ffi::sqlite3_soft_heap_limit64(-1),
        )
    };
    let limit = |value: i64, pragma| {
        u64::try_from(value)
            .ok()
            .filter(|&v| v > 0)
            .map(|v| (v, pragma))
    };
    match (
        limit(hard, "hard_heap_limit"),
        limit(soft, "soft_heap_limit"),
    ) {
        (Some(h), Some(s)) => Some(if s.0 < h.0 { s } else { h }),
        (h, s) => h.or(s),
    }
}

/// Where [`Shadow::atomically`] runs its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Within {
    /// Inside our savepoint: a failing write rolls back to it, the caller's
    /// transaction goes on. Writes run with statement journals (`INSERT ... SELECT`), so
    /// that disk full or out of memory undoes only the failing write, not the caller's
    /// transaction.
    Savepoint,
    /// Inside the caller's running write statement, which may have no statement journal
    /// (a one-row INSERT in an explicit transaction): writes run without one, so that
    /// disk full or out of memory rolls back the whole transaction (SQLite's rule for a
    /// write without a journal) rather than leave half a model in it.
    Statement,
}

/// Whether a statement that writes is running on `conn`: then SQLite refuses to open a
/// savepoint ("SQL statements in progress"), exactly when one of its statements is
/// busy (stepped, not reset) and not read-only.
fn write_statement_running(conn: &Connection) -> bool {
    running_write_statement(conn).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_names_are_quoted() {
        let s = Shadow::new("main", "we\"ird");
        assert_eq!(s.name("events"), "\"main\".\"we\"\"ird_events\"");
        assert!(s.sql.event_insert.contains("\"main\".\"we\"\"ird_events\""));
    }

    #[test]
    fn identifiers_are_found_whole() {
        assert!(names_identifier(
            "INSERT INTO feed SELECT * FROM feed_events",
            "feed_events"
        ));
        assert!(names_identifier(
            "select * from \"FEED_EVENTS\" e",
            "feed_events"
        ));
        assert!(names_identifier("FROM main.feed_events;", "feed_events"));
        assert!(!names_identifier("FROM feed_events_archive", "feed_events"));
        assert!(!names_identifier("FROM my_feed_events", "feed_events"));
        assert!(!names_identifier("FROM feed", "feed_events"));
    }
}
