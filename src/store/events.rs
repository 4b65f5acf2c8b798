//! Event rows of `<table>_events`: what INSERT, UPDATE, DELETE and SELECT through the
//! virtual table do, the per-user reads of serving, and the refit's stream.

use std::ffi::{c_int, CStr, CString};

use rusqlite::types::ValueRef;
use rusqlite::{ffi, params, Connection};

use super::content::{self, RawRow, Skipped};
use super::Shadow;
use crate::error::{Error, Result};

/// What the refit's stream read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Streamed {
    /// The events handed on.
    pub events: usize,
    /// The largest event id read (0 if none), of a skipped row too: `auto_refit`
    /// counts the rows after it.
    pub last_id: i64,
    /// Content rows that are not events (always none for own events).
    pub skipped: Skipped,
}

/// One watch event as the user inserts it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub user_id: i64,
    pub item_id: i64,
    pub watch_time: f64,
    pub duration: f64,
    pub ts: i64,
}

fn event_at(
    row: &rusqlite::Row<'_>,
    first: usize,
    user_id: Option<i64>,
) -> rusqlite::Result<Event> {
    let (user_id, next) = match user_id {
        Some(id) => (id, first),
        None => (row.get(first)?, first + 1),
    };
    Ok(Event {
        user_id,
        item_id: row.get(next)?,
        watch_time: row.get(next + 1)?,
        duration: row.get(next + 2)?,
        ts: row.get(next + 3)?,
    })
}

impl Shadow {
    /// Stores one event; `id` None lets SQLite choose the rowid. Returns the rowid.
    pub fn insert_event(&self, conn: &Connection, id: Option<i64>, e: &Event) -> Result<i64> {
        self.refuse_write("insert")?;
        // In autocommit mode the caller's statement is the whole transaction, and the
        // plain form (no statement journal) is cheaper.
        let sql = if conn.is_autocommit() {
            &self.sql.event_insert
        } else {
            &self.sql.event_insert_journaled
        };
        let mut stmt = conn.prepare_cached(sql)?;
        stmt.execute(params![
            id,
            e.user_id,
            e.item_id,
            e.watch_time,
            e.duration,
            e.ts
        ])
        .map_err(|error| self.rowid_taken(id, error))?;
        Ok(conn.last_insert_rowid())
    }

    /// Replaces the event at `id` (which may move to `new_id`). False when `id` does not exist.
    pub fn update_event(&self, conn: &Connection, id: i64, new_id: i64, e: &Event) -> Result<bool> {
        self.refuse_write("update")?;
        let mut stmt = conn.prepare_cached(&self.sql.event_update)?;
        let changed = stmt
            .execute(params![
                id,
                new_id,
                e.user_id,
                e.item_id,
                e.watch_time,
                e.duration,
                e.ts
            ])
            .map_err(|error| self.rowid_taken(Some(new_id), error))?;
        Ok(changed == 1)
    }

    /// Names the conflict when an explicit rowid is already another event's.
    fn rowid_taken(&self, id: Option<i64>, error: rusqlite::Error) -> Error {
        match (id, error.sqlite_error_code()) {
            (Some(id), Some(rusqlite::ErrorCode::ConstraintViolation)) => Error::RowidTaken {
                table: self.table.clone(),
                id,
            },
            _ => Error::Sqlite(error),
        }
    }

    pub fn delete_event(&self, conn: &Connection, id: i64) -> Result<()> {
        self.refuse_write("delete")?;
        conn.prepare_cached(&self.sql.event_delete)?.execute([id])?;
        Ok(())
    }

    /// Up to `limit` events with rowid > `after` (all when None), in rowid order,
    /// optionally of one user and/or one rowid: the paged scan behind
    /// `SELECT ... FROM <table>`.
    pub fn scan_events(
        &self,
        conn: &Connection,
        after: Option<i64>,
        user_id: Option<i64>,
        only_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, Event)>> {
        let sql = match (user_id.is_some(), only_id.is_some()) {
            (_, true) => &self.sql.scan_one,
            (true, false) => &self.sql.scan_user,
            (false, false) => &self.sql.scan_all,
        };
        // The first rowid to return (inclusive, so that i64::MIN can be one).
        let first = match after {
            None => i64::MIN,
            Some(last) => match last.checked_add(1) {
                Some(next) => next,
                None => return Ok(Vec::new()),
            },
        };
        let _reading = self.reading_content()?;
        let mut stmt = self.prepare_events(conn, sql)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![first, user_id, only_id, limit], |row| {
            Ok((row.get(0)?, event_at(row, 1, None)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.read_error("events", e))
    }

    /// Streams every event in rowid order to `f(id, user_id, item_id, watch_time,
    /// duration, ts)` on the calling thread, with no intermediate buffers (a refit
    /// aggregates them as they come).
    ///
    /// This is the refit's hot loop (one call per event), so it drives the statement
    /// through the C API: one `sqlite3_column_*` call per value, where rusqlite's checked
    /// getters make three (each taking the connection's mutex). Own events take SQLite's
    /// usual conversions (the columns are `NOT NULL` with INTEGER / REAL affinity, and
    /// the virtual table validates every event, so they are of the declared types). A
    /// content's rows are checked here, by [`content::invalid`]: a row that is not an
    /// event is skipped and counted.
    pub fn stream_events(
        &self,
        conn: &Connection,
        mut f: impl FnMut(i64, i64, i64, f64, f64, i64),
    ) -> Result<Streamed> {
        /// Finalizes the statement on every path, panics included.
        struct Stmt(*mut ffi::sqlite3_stmt);
        impl Drop for Stmt {
            fn drop(&mut self) {
                // SAFETY: the pointer came from sqlite3_prepare_v2 (or is null, which
                // sqlite3_finalize accepts) and is finalized exactly once, here.
                unsafe { ffi::sqlite3_finalize(self.0) };
            }
        }
        let _reading = self.reading_content()?;
        let failure = |db: *mut ffi::sqlite3, code: c_int| {
            // SAFETY: `db` is the live connection handle; sqlite3_errmsg returns a
            // NUL-terminated string owned by SQLite, copied before any other call.
            let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
                .to_string_lossy()
                .into_owned();
            let error = rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(message));
            match self.content() {
                Some(content) => self.unreadable(content, error),
                None => Error::Sqlite(error),
            }
        };
        let sql = CString::new(self.sql.stream.as_str()).map_err(|_| Error::Argument {
            who: "foryou".into(),
            argument: "table name",
            expected: "free of NUL characters".into(),
            got: format!("{:?}", self.table),
        })?;
        // SAFETY: the handle of a live `Connection` borrowed for this whole call, used on
        // this thread only.
        let db = unsafe { conn.handle() };
        let mut stmt = Stmt(std::ptr::null_mut());
        // SAFETY: `sql` is NUL-terminated (length −1), `stmt.0` receives the statement.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &raw mut stmt.0, std::ptr::null_mut())
        };
        if rc != ffi::SQLITE_OK {
            return Err(failure(db, rc));
        }
        let content = self.content();
        let mut streamed = Streamed::default();
        loop {
            // SAFETY: a prepared statement, stepped until it reports DONE or an error.
            match unsafe { ffi::sqlite3_step(stmt.0) } {
                ffi::SQLITE_ROW => {}
                ffi::SQLITE_DONE => break,
                rc => return Err(failure(db, rc)),
            }
            // SAFETY: the statement has a current row with the 6 columns selected;
            // the column readers take the index and return plain values (the type is
            // read before any conversion).
            let (id, user, item, watch_time, duration, ts, types) = unsafe {
                let types = match content {
                    Some(_) => std::array::from_fn(|c| {
                        ffi::sqlite3_column_type(stmt.0, c_int::try_from(c).unwrap_or(0))
                    }),
                    None => [ffi::SQLITE_INTEGER; 6],
                };
                (
                    ffi::sqlite3_column_int64(stmt.0, 0),
                    ffi::sqlite3_column_int64(stmt.0, 1),
                    ffi::sqlite3_column_int64(stmt.0, 2),
                    ffi::sqlite3_column_double(stmt.0, 3),
                    ffi::sqlite3_column_double(stmt.0, 4),
                    ffi::sqlite3_column_int64(stmt.0, 5),
                    types,
                )
            };
            if let Some(content) = content {
                if types[0] == ffi::SQLITE_INTEGER {
                    streamed.last_id = streamed.last_id.max(id);
                }
                let raw = RawRow {
                    types,
                    watch_time,
                    duration,
                };
                if let Some((column, expected)) = content::invalid(&raw, content.has_ts) {
                    streamed.skipped.add(|| {
                        // SAFETY: the same current row; sqlite3_column_text returns
                        // NULL or a NUL-terminated string valid until the next step,
                        // copied at once.
                        let shown = unsafe {
                            let c = c_int::try_from(column).unwrap_or(0);
                            let text = ffi::sqlite3_column_text(stmt.0, c);
                            describe(types[column], text)
                        };
                        let at = if types[0] == ffi::SQLITE_INTEGER {
                            format!("row {id}")
                        } else {
                            "a row".to_string()
                        };
                        format!(
                            "{at}: {} is {shown} (expected {expected})",
                            content::column_name(content, column)
                        )
                    });
                    continue;
                }
            } else {
                streamed.last_id = id;
            }
            f(id, user, item, watch_time, duration, ts);
            streamed.events += 1;
        }
        Ok(streamed)
    }

    /// `max(id) − min(id) + 1` of the events (0 if none): an upper bound of their number,
    /// from two index lookups (a refit sizes its buffers with it).
    pub fn event_id_span(&self, conn: &Connection) -> Result<u64> {
        let _reading = self.reading_content()?;
        let (lo, hi): (Option<i64>, Option<i64>) = self
            .prepare_events(conn, &self.sql.id_span)?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.read_error("events", e))?;
        Ok(match (lo, hi) {
            (Some(lo), Some(hi)) => {
                u64::try_from(i128::from(hi) - i128::from(lo) + 1).unwrap_or(u64::MAX)
            }
            _ => 0,
        })
    }

    /// (rowid, item id) of every event of one user, in item order: read from the
    /// covering index alone (no table rows), so it is the cheap question a serving call
    /// asks first; [`Shadow::user_events`] reads the whole events when a fold-in needs them.
    /// A content row with integer ids counts here even when its times are not valid
    /// (the user did play the item); its user is then folded in from the valid ones.
    pub fn user_items(&self, conn: &Connection, user_id: i64) -> Result<Vec<(i64, i64)>> {
        let _reading = self.reading_content()?;
        let mut stmt = self.prepare_events(conn, &self.sql.user_items)?;
        let mut rows = stmt
            .query([user_id])
            .map_err(|e| self.read_error("events", e))?;
        let mut items = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.read_error("events", e))? {
            // Content rows whose ids are not integers are not events (own ones all are).
            if let (ValueRef::Integer(id), ValueRef::Integer(item)) =
                (row.get_ref(0)?, row.get_ref(1)?)
            {
                items.push((id, item));
            }
        }
        // Own events come sorted (a linear check); content rows in any order.
        items.sort_unstable_by_key(|&(id, item)| (item, id));
        Ok(items)
    }

    /// Every event of one user (through the user index), in item order.
    pub fn user_events(&self, conn: &Connection, user_id: i64) -> Result<Vec<(i64, Event)>> {
        let _reading = self.reading_content()?;
        let mut stmt = self.prepare_events(conn, &self.sql.user_events)?;
        let Some(content) = &self.content else {
            let rows = stmt.query_map([user_id], |row| {
                Ok((row.get(0)?, event_at(row, 1, Some(user_id))?))
            })?;
            return rows
                .collect::<rusqlite::Result<_>>()
                .map_err(|e| self.read_error("events", e));
        };
        let mut rows = stmt
            .query([user_id])
            .map_err(|e| self.read_error("events", e))?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.read_error("events", e))? {
            let values: [ValueRef<'_>; 6] = [
                row.get_ref(0)?,
                row.get_ref(1)?,
                row.get_ref(2)?,
                row.get_ref(3)?,
                row.get_ref(4)?,
                row.get_ref(5)?,
            ];
            let number = |v: ValueRef<'_>| match v {
                // Seconds: far inside f64's exact integers.
                #[allow(clippy::cast_precision_loss)]
                ValueRef::Integer(i) => i as f64,
                ValueRef::Real(r) => r,
                _ => f64::NAN,
            };
            let raw = RawRow {
                types: values.map(|v| match v {
                    ValueRef::Null => ffi::SQLITE_NULL,
                    ValueRef::Integer(_) => ffi::SQLITE_INTEGER,
                    ValueRef::Real(_) => ffi::SQLITE_FLOAT,
                    ValueRef::Text(_) => ffi::SQLITE_TEXT,
                    ValueRef::Blob(_) => ffi::SQLITE_BLOB,
                }),
                watch_time: number(values[3]),
                duration: number(values[4]),
            };
            if content::invalid(&raw, content.has_ts).is_some() {
                continue;
            }
            let integer = |v: ValueRef<'_>| match v {
                ValueRef::Integer(i) => i,
                _ => 0,
            };
            events.push((
                integer(values[0]),
                Event {
                    user_id,
                    item_id: integer(values[2]),
                    watch_time: raw.watch_time,
                    duration: raw.duration,
                    ts: integer(values[5]),
                },
            ));
        }
        events.sort_unstable_by_key(|&(id, ref e)| (e.item_id, id));
        Ok(events)
    }

    /// Distinct items of the events with rowid > `after` (events newer than a refit).
    pub fn items_after(&self, conn: &Connection, after: i64) -> Result<Vec<i64>> {
        let _reading = self.reading_content()?;
        let mut stmt = self.prepare_events(conn, &self.sql.items_after)?;
        let rows = stmt.query_map([after], |row| row.get(0))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.read_error("events", e))
    }

    /// Number of events with rowid > `after` (events newer than a refit).
    pub fn count_events_after(&self, conn: &Connection, after: i64) -> Result<i64> {
        let _reading = self.reading_content()?;
        self.prepare_events(conn, &self.sql.count_after)?
            .query_row([after], |row| row.get(0))
            .map_err(|e| self.read_error("events", e))
    }

    /// Every event as (item id, user id, watch time, duration), ordered by item then
    /// user, to `f`: what popularity before the first refit is counted from.
    pub fn for_each_view(
        &self,
        conn: &Connection,
        mut f: impl FnMut(i64, i64, f64, f64),
    ) -> Result<()> {
        let _reading = self.reading_content()?;
        let mut stmt = self.prepare_events(conn, &self.sql.viewers)?;
        let mut rows = stmt.query([])?;
        let view = |row: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, i64, f64, f64)> {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        };
        while let Some(row) = rows.next().map_err(|e| self.read_error("events", e))? {
            let (item, user, watch_time, duration) =
                view(row).map_err(|e| self.read_error("events", e))?;
            f(item, user, watch_time, duration);
        }
        Ok(())
    }

    /// Number of distinct items with events: the catalogue that can be recommended.
    pub fn catalogue_size(&self, conn: &Connection) -> Result<usize> {
        let _reading = self.reading_content()?;
        let n: i64 = self
            .prepare_events(conn, &self.sql.catalogue_size)?
            .query_row([], |row| row.get(0))
            .map_err(|e| self.read_error("events", e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// A statement reading the events, prepared through the statement cache; a content
    /// that SQLite cannot read (dropped, renamed) is named in the error.
    fn prepare_events<'c>(
        &self,
        conn: &'c Connection,
        sql: &str,
    ) -> Result<rusqlite::CachedStatement<'c>> {
        conn.prepare_cached(sql).map_err(|e| match self.content() {
            Some(content) => self.unreadable(content, e),
            None => Error::Sqlite(e),
        })
    }
}

/// A value of a skipped content row as its message shows it.
///
/// # Safety
/// `text` is NULL or a NUL-terminated string (from `sqlite3_column_text`), valid for
/// this call.
unsafe fn describe(kind: c_int, text: *const u8) -> String {
    let text = if text.is_null() {
        String::new()
    } else {
        // SAFETY: non-NULL and NUL-terminated, as the caller guarantees.
        let full = unsafe { CStr::from_ptr(text.cast()) }.to_string_lossy();
        full.chars().take(40).collect()
    };
    match kind {
        ffi::SQLITE_NULL => "NULL".to_string(),
        ffi::SQLITE_INTEGER => format!("the INTEGER {text}"),
        ffi::SQLITE_FLOAT => format!("the REAL {text}"),
        ffi::SQLITE_TEXT => format!("the TEXT '{text}'"),
        _ => "a BLOB".to_string(),
    }
}
