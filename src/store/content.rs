//! External content (`content = 'plays'`): a table whose events are the rows of the
//! app's own table or view, read in place, like FTS5's external-content tables. The
//! statements that read them are made in `Statements` (from `EventSql::content`); this
//! file checks that the content can be read (its columns, an index for per-user reads,
//! no path back into foryou) and holds the rule that says which rows are events.

use std::cell::Cell;
use std::ffi::c_int;

use rusqlite::{ffi, Connection};

use super::{quote, Shadow};
use crate::error::{ContentProblem, Error, Result};

/// The columns every content must have; `ts` is optional.
pub const COLUMNS: [&str; 4] = ["user_id", "item_id", "watch_time", "duration"];

/// Where a table's events are, when they are not its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    /// The table or view (option `content`), in the schema of the `foryou` table.
    pub name: String,
    /// Its column holding each event's id (option `content_rowid`; `rowid` for a
    /// table's rowid).
    pub id_column: String,
    /// Whether it has a `ts` column (without one, every event is undated: ts 0).
    pub has_ts: bool,
}

/// The content rows a refit left out because they are not events, and the first of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Skipped {
    pub rows: u64,
    /// `row <id>: <column> is <value> (<what it must be>)`.
    pub first: Option<String>,
}

impl Skipped {
    pub fn add(&mut self, why: impl FnOnce() -> String) {
        self.rows += 1;
        if self.first.is_none() {
            self.first = Some(why());
        }
    }
}

/// The values of one content row as the refit's stream reads them (SQLite's fundamental
/// type of each column, and the numbers).
#[derive(Clone, Copy, Debug)]
pub struct RawRow {
    pub types: [c_int; 6],
    pub watch_time: f64,
    pub duration: f64,
}

/// Why a content row is not an event, if it is not: the same rule as the SQL of
/// `EventSql::content` (integer id, user and item; a finite number of seconds >= 0
/// watched of a finite duration > 0; an integer or NULL ts), as (column, expected).
pub fn invalid(row: &RawRow, has_ts: bool) -> Option<(usize, &'static str)> {
    let number = |t: c_int| t == ffi::SQLITE_INTEGER || t == ffi::SQLITE_FLOAT;
    let t = row.types;
    if let Some(column) = t[..3].iter().position(|&t| t != ffi::SQLITE_INTEGER) {
        return Some((column, "an INTEGER"));
    }
    if !(number(t[3]) && row.watch_time >= 0.0 && row.watch_time.is_finite()) {
        return Some((3, "a number of seconds >= 0"));
    }
    if !(number(t[4]) && row.duration > 0.0 && row.duration.is_finite()) {
        return Some((4, "a number of seconds > 0"));
    }
    if has_ts && !(t[5] == ffi::SQLITE_INTEGER || t[5] == ffi::SQLITE_NULL) {
        return Some((5, "an INTEGER (seconds since 1970) or NULL"));
    }
    None
}

/// The stream's column names, in the order of [`RawRow::types`].
pub fn column_name(content: &Content, column: usize) -> &str {
    match column {
        0 => &content.id_column,
        1 => "user_id",
        2 => "item_id",
        3 => "watch_time",
        4 => "duration",
        _ => "ts",
    }
}

thread_local! {
    /// Whether a content read is running on this thread.
    static READING: Cell<bool> = const { Cell::new(false) };
    /// Whether a `foryou` object was reached, and refused, during that read.
    static LOOPED: Cell<bool> = const { Cell::new(false) };
}

/// Marks a content read in progress on this thread, for as long as it lives. A content
/// is the app's table or a view over it: nothing in it reads a `foryou` object, so
/// reaching one during the read is a loop (a view redefined over the `foryou` table),
/// refused before it touches a connection or a lock its caller holds.
pub struct Reading(());

impl Reading {
    fn enter(shadow: &Shadow, content: &Content) -> Result<Reading> {
        if READING.with(Cell::get) {
            LOOPED.with(|l| l.set(true));
            return Err(shadow.content_error(content, ContentProblem::ReadsItself));
        }
        READING.with(|r| r.set(true));
        LOOPED.with(|l| l.set(false));
        Ok(Reading(()))
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        READING.with(|r| r.set(false));
    }
}

/// Fails when called during a content read on this thread: every `foryou` table and
/// serving function calls it first, before it uses its connection or its caches.
pub fn refuse_inside_content_read(who: &str) -> Result<()> {
    if READING.with(Cell::get) {
        LOOPED.with(|l| l.set(true));
        return Err(Error::ContentLoop {
            who: who.to_string(),
        });
    }
    Ok(())
}

/// Whether the content read that just failed had reached a `foryou` object.
fn looped() -> bool {
    LOOPED.with(Cell::get)
}

/// The SQL objects that read a `foryou` table's events: a content whose query reaches
/// one of them (or a `foryou` table) would read itself.
const SERVING_FUNCTIONS: [&str; 4] = [
    "recommend",
    "similar_items",
    "similar_users",
    "why_recommended",
];

impl Shadow {
    /// This table, reading its events from `name` (with event ids in `id_column`):
    /// checks that the content can be read and has the event columns (cheap: a
    /// `LIMIT 0` statement; [`Shadow::check_content_plan`] asks the planner).
    pub fn reading(&self, conn: &Connection, name: &str, id_column: &str) -> Result<Shadow> {
        let content = Content {
            name: name.to_string(),
            id_column: id_column.to_string(),
            has_ts: false,
        };
        let _reading = Reading::enter(self, &content)?;
        let relation = format!("{}.{}", quote(&self.schema), quote(name));
        let columns: Vec<String> = {
            // Not cached: a cached statement keeps the columns it was prepared with
            // until it is stepped, and the view may have changed since.
            let stmt = conn
                .prepare(&format!("SELECT * FROM {relation} LIMIT 0"))
                .map_err(|e| self.unreadable(&content, e))?;
            stmt.column_names()
                .iter()
                .map(|c| c.to_ascii_lowercase())
                .collect()
        };
        let has = |c: &str| columns.iter().any(|have| have == c);
        let mut missing: Vec<String> = COLUMNS
            .iter()
            .filter(|c| !has(c))
            .map(ToString::to_string)
            .collect();
        let id_lower = id_column.to_ascii_lowercase();
        if !has(&id_lower) {
            // A table's rowid is not among `*`; a view has none.
            let rowid_alias = ["rowid", "oid", "_rowid_"].contains(&id_lower.as_str());
            let readable = rowid_alias
                && !self.is_view(conn, name)?
                && conn
                    .prepare(&format!(
                        "SELECT {} FROM {relation} LIMIT 0",
                        quote(id_column)
                    ))
                    .is_ok();
            if !readable {
                missing.insert(0, id_column.to_string());
            }
        }
        if !missing.is_empty() {
            return Err(self.content_error(&content, ContentProblem::Columns { missing }));
        }
        Ok(self.with_content(Content {
            has_ts: has("ts"),
            ..content
        }))
    }

    /// Fails when the content's query reads a `foryou` table or a serving function (a
    /// loop), or when one user's events cannot be read through an index. Nothing to
    /// check for own events.
    pub fn check_content_plan(&self, conn: &Connection) -> Result<()> {
        let _reading = self.reading_content()?;
        self.check_no_loop(conn)?;
        self.check_user_index(conn)
    }

    /// Refuses a content whose query reads a `foryou` table or a serving function
    /// (they read the content again: a loop), from the plan of the refit's stream.
    fn check_no_loop(&self, conn: &Connection) -> Result<()> {
        let Some(content) = &self.content else {
            return Ok(());
        };
        let foryou = super::foryou_tables(conn, &self.schema)?;
        for (target, _) in self.plan_scans(conn, &self.sql.stream)? {
            let reads_foryou = foryou.iter().any(|t| t.eq_ignore_ascii_case(&target))
                || SERVING_FUNCTIONS
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(&target));
            if reads_foryou {
                return Err(self.content_error(content, ContentProblem::ReadsItself));
            }
        }
        Ok(())
    }

    /// Fails unless one user's events can be read from the content through an index:
    /// serving reads them at every call, and a scan of the whole content there would
    /// make every `recommend()` as slow as the table is large. The error gives the
    /// `CREATE INDEX` to run. Own events always have their index.
    fn check_user_index(&self, conn: &Connection) -> Result<()> {
        let Some(content) = &self.content else {
            return Ok(());
        };
        let tables = self.plain_tables(conn)?;
        let scanned = self
            .plan_scans(conn, &self.sql.user_items)?
            .into_iter()
            .find(|(target, _)| tables.iter().any(|t| t.eq_ignore_ascii_case(target)));
        let Some((table, detail)) = scanned else {
            return Ok(());
        };
        // The content itself, or the table a view reads: the user column is `user_id`
        // when the table has one by that name; else the view renames it.
        let column = if self.table_has_column(conn, &table, "user_id")? {
            "user_id".to_string()
        } else {
            "<the column the view names user_id>".to_string()
        };
        Err(self.content_error(
            content,
            ContentProblem::NoUserIndex {
                plan: detail,
                create: format!(
                    "CREATE INDEX {} ON {}({column})",
                    quote(&format!("{table}_user_id")),
                    quote(&table)
                ),
            },
        ))
    }

    /// The tables a statement's plan scans whole, as (table, plan detail):
    /// `EXPLAIN QUERY PLAN` rows `SCAN <name>...` (not `SEARCH`, which uses an index).
    fn plan_scans(&self, conn: &Connection, sql: &str) -> Result<Vec<(String, String)>> {
        let content = self.content.as_ref();
        // Not cached: an EXPLAIN program has no schema check, so a cached one would
        // keep showing the plan of the schema it was prepared in.
        let mut stmt =
            conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .map_err(|e| match content {
                    Some(c) => self.unreadable(c, e),
                    None => Error::Sqlite(e),
                })?;
        // The plan does not depend on the values bound (NULL for each parameter).
        let unbound = vec![rusqlite::types::Null; stmt.parameter_count()];
        let details = stmt
            .query_map(rusqlite::params_from_iter(unbound), |row| {
                row.get::<_, String>(3)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(details
            .into_iter()
            .filter_map(|detail| {
                let scanned = detail.strip_prefix("SCAN ")?.split(' ').next()?;
                // A name the query qualifies shows as `schema.name`.
                let target = match scanned.split_once('.') {
                    Some((schema, name)) if schema.eq_ignore_ascii_case(&self.schema) => name,
                    _ => scanned,
                }
                .trim_matches('"')
                .to_string();
                Some((target, detail))
            })
            .collect())
    }

    /// The ordinary tables of this table's schema.
    fn plain_tables(&self, conn: &Connection) -> Result<Vec<String>> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT name FROM {}.sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'",
            quote(&self.schema)
        ))?;
        let names = stmt
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(names)
    }

    /// Whether `name` is a view of this table's schema (SQLite lets a query name a
    /// view's "rowid", but it is no event id: it may be NULL or change).
    fn is_view(&self, conn: &Connection, name: &str) -> Result<bool> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT 1 FROM {}.sqlite_master WHERE type = 'view' AND name = ?1 COLLATE NOCASE",
            quote(&self.schema)
        ))?;
        Ok(stmt.exists([name])?)
    }

    fn table_has_column(&self, conn: &Connection, table: &str, column: &str) -> Result<bool> {
        let mut stmt = conn.prepare_cached(
            "SELECT 1 FROM pragma_table_info(?1, ?2) WHERE name = ?3 COLLATE NOCASE",
        )?;
        Ok(stmt.exists(rusqlite::params![table, self.schema, column])?)
    }

    /// Marks a read of the content (None for own events) for as long as the value
    /// lives; fails inside another content read (a loop).
    pub(super) fn reading_content(&self) -> Result<Option<Reading>> {
        match &self.content {
            Some(content) => Reading::enter(self, content).map(Some),
            None => Ok(None),
        }
    }

    /// SQLite's plain error reading the content (a missing table or column): the
    /// content error that names it. Other codes (BUSY, NOMEM...) pass as they are.
    pub(super) fn unreadable(&self, content: &Content, e: rusqlite::Error) -> Error {
        if looped() {
            return self.content_error(content, ContentProblem::ReadsItself);
        }
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::Unknown) => {
                let detail = match &e {
                    rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
                    other => other.to_string(),
                };
                self.content_error(content, ContentProblem::Unreadable { detail })
            }
            _ => Error::Sqlite(e),
        }
    }

    pub(super) fn content_error(&self, content: &Content, problem: ContentProblem) -> Error {
        Error::Content {
            table: self.table.clone(),
            content: content.name.clone(),
            problem,
        }
    }

    /// The refusal of an INSERT, UPDATE or DELETE through a table with content.
    pub fn refuse_write(&self, verb: &'static str) -> Result<()> {
        match &self.content {
            Some(content) => Err(self.content_error(content, ContentProblem::Write { verb })),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(types: [c_int; 6], watch_time: f64, duration: f64) -> RawRow {
        RawRow {
            types,
            watch_time,
            duration,
        }
    }

    const I: c_int = ffi::SQLITE_INTEGER;
    const F: c_int = ffi::SQLITE_FLOAT;
    const T: c_int = ffi::SQLITE_TEXT;
    const N: c_int = ffi::SQLITE_NULL;

    #[test]
    fn the_stream_rule_accepts_events_and_names_the_first_bad_column() {
        assert_eq!(invalid(&row([I, I, I, F, I, I], 3.0, 10.0), true), None);
        assert_eq!(invalid(&row([I, I, I, I, F, N], 0.0, 0.5), true), None);
        assert_eq!(invalid(&row([I, I, I, F, F, T], 1.0, 1.0), false), None);
        assert_eq!(
            invalid(&row([I, N, I, F, F, I], 1.0, 1.0), true).unwrap().0,
            1
        );
        assert_eq!(
            invalid(&row([I, I, F, F, F, I], 1.0, 1.0), true).unwrap().0,
            2
        );
        assert_eq!(
            invalid(&row([I, I, I, T, F, I], 1.0, 1.0), true).unwrap().0,
            3
        );
        assert_eq!(
            invalid(&row([I, I, I, F, F, I], -1.0, 1.0), true)
                .unwrap()
                .0,
            3
        );
        assert_eq!(
            invalid(&row([I, I, I, F, F, I], f64::INFINITY, 1.0), true)
                .unwrap()
                .0,
            3
        );
        assert_eq!(
            invalid(&row([I, I, I, F, F, I], 1.0, 0.0), true).unwrap().0,
            4
        );
        assert_eq!(
            invalid(&row([I, I, I, F, N, I], 1.0, 1.0), true).unwrap().0,
            4
        );
        assert_eq!(
            invalid(&row([I, I, I, F, F, F], 1.0, 1.0), true).unwrap().0,
            5
        );
        assert_eq!(
            invalid(&row([T, I, I, F, F, I], 1.0, 1.0), true).unwrap().0,
            0
        );
    }
}
