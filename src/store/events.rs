//! Event rows of `<table>_events`: what INSERT, UPDATE, DELETE and SELECT through the
//! virtual table do, the per-user reads of serving, and the refit's stream.

use std::ffi::{c_int, CStr, CString};

use rusqlite::{ffi, params, Connection};

use super::Shadow;
use crate::error::{Error, Result};

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
        let mut stmt = conn.prepare_cached(sql)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![first, user_id, only_id, limit], |row| {
            Ok((row.get(0)?, event_at(row, 1, None)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.read_error("events", e))
    }

    /// Streams every event in rowid order to `f(id, user_id, item_id, watch_time,
    /// duration, ts)` on the calling thread, with no intermediate buffers (a refit aggregates them
    /// as they come). Returns the number of events and the largest rowid (0 if none).
    ///
    /// This is the refit's hot loop (one call per event), so it drives the statement
    /// through the C API: one `sqlite3_column_*` call per value, where rusqlite's checked
    /// getters make three (each taking the connection's mutex). Values take SQLite's
    /// usual conversions (the columns are `NOT NULL` with INTEGER / REAL affinity, and
    /// the virtual table validates every event, so they are of the declared types).
    pub fn stream_events(
        &self,
        conn: &Connection,
        mut f: impl FnMut(i64, i64, i64, f64, f64, i64),
    ) -> Result<(usize, i64)> {
        /// Finalizes the statement on every path, panics included.
        struct Stmt(*mut ffi::sqlite3_stmt);
        impl Drop for Stmt {
            fn drop(&mut self) {
                // SAFETY: the pointer came from sqlite3_prepare_v2 (or is null, which
                // sqlite3_finalize accepts) and is finalized exactly once, here.
                unsafe { ffi::sqlite3_finalize(self.0) };
            }
        }
        let failure = |db: *mut ffi::sqlite3, code: c_int| {
            // SAFETY: `db` is the live connection handle; sqlite3_errmsg returns a
            // NUL-terminated string owned by SQLite, copied before any other call.
            let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
                .to_string_lossy()
                .into_owned();
            Error::Sqlite(rusqlite::Error::SqliteFailure(
                ffi::Error::new(code),
                Some(message),
            ))
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
        let (mut count, mut last_id) = (0usize, 0i64);
        loop {
            // SAFETY: a prepared statement, stepped until it reports DONE or an error.
            match unsafe { ffi::sqlite3_step(stmt.0) } {
                ffi::SQLITE_ROW => {}
                ffi::SQLITE_DONE => break,
                rc => return Err(failure(db, rc)),
            }
            // SAFETY: the statement has a current row with the 6 columns selected;
            // the column readers take the index and return plain values.
            unsafe {
                last_id = ffi::sqlite3_column_int64(stmt.0, 0);
                f(
                    last_id,
                    ffi::sqlite3_column_int64(stmt.0, 1),
                    ffi::sqlite3_column_int64(stmt.0, 2),
                    ffi::sqlite3_column_double(stmt.0, 3),
                    ffi::sqlite3_column_double(stmt.0, 4),
                    ffi::sqlite3_column_int64(stmt.0, 5),
                );
            }
            count += 1;
        }
        Ok((count, last_id))
    }

    /// `max(id) − min(id) + 1` of the events (0 if none): an upper bound of their number,
    /// from two index lookups (a refit sizes its buffers with it).
    pub fn event_id_span(&self, conn: &Connection) -> Result<u64> {
        let (lo, hi): (Option<i64>, Option<i64>) = conn
            .prepare_cached(&self.sql.id_span)?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
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
    pub fn user_items(&self, conn: &Connection, user_id: i64) -> Result<Vec<(i64, i64)>> {
        let mut stmt = conn.prepare_cached(&self.sql.user_items)?;
        let rows = stmt.query_map([user_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.read_error("events", e))
    }

    /// Every event of one user (through the user index), in item order.
    pub fn user_events(&self, conn: &Connection, user_id: i64) -> Result<Vec<(i64, Event)>> {
        let mut stmt = conn.prepare_cached(&self.sql.user_events)?;
        let rows = stmt.query_map([user_id], |row| {
            Ok((row.get(0)?, event_at(row, 1, Some(user_id))?))
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.read_error("events", e))
    }

    /// Distinct items of the events with rowid > `after` (events newer than a refit).
    pub fn items_after(&self, conn: &Connection, after: i64) -> Result<Vec<i64>> {
        let mut stmt = conn.prepare_cached(&self.sql.items_after)?;
        let rows = stmt.query_map([after], |row| row.get(0))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.read_error("events", e))
    }

    /// Number of events with rowid > `after` (events newer than a refit).
    pub fn count_events_after(&self, conn: &Connection, after: i64) -> Result<i64> {
        Ok(conn
            .prepare_cached(&self.sql.count_after)?
            .query_row([after], |row| row.get(0))?)
    }

    /// Every event as (item id, user id, watch time, duration), ordered by item then
    /// user, to `f`: what popularity before the first refit is counted from.
    pub fn for_each_view(
        &self,
        conn: &Connection,
        mut f: impl FnMut(i64, i64, f64, f64),
    ) -> Result<()> {
        let mut stmt = conn.prepare_cached(&self.sql.viewers)?;
        let mut rows = stmt.query([])?;
        let view = |row: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, i64, f64, f64)> {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        };
        while let Some(row) = rows.next()? {
            let (item, user, watch_time, duration) =
                view(row).map_err(|e| self.read_error("events", e))?;
            f(item, user, watch_time, duration);
        }
        Ok(())
    }

    /// Number of distinct items with events: the catalogue that can be recommended.
    pub fn catalogue_size(&self, conn: &Connection) -> Result<usize> {
        let n: i64 = conn
            .prepare_cached(&self.sql.catalogue_size)?
            .query_row([], |row| row.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
