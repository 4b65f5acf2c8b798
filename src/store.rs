//! The store: every shadow table of a `foryou` table, and the only code that runs SQL
//! against them.
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
//! `feed_events` carries `UNIQUE(user_id, item_id, id)`: an automatic covering index
//! for a user's watched items that SQLite renames with its table.
//! Factor chunks are portable blobs: `ids` is little-endian i64 per row, `factors` is
//! little-endian f32, row-major, `dim` per row; `popularity` is little-endian f32 per row.

use rusqlite::{params, Connection, OptionalExtension, Result};

use crate::guard::sql_error;
use crate::model::factors::Factors;
use crate::options::{Options, Value};

/// Version of the layout above; checked when a table is opened.
pub const FORMAT_VERSION: i64 = 1;

/// Rows per factor chunk: large blobs read fast, small enough to rewrite cheaply.
pub const CHUNK_ROWS: usize = 4096;

/// Shadow table suffixes, in creation order.
pub const PARTS: [&str; 5] = ["config", "events", "model", "users", "items"];

/// One watch event as the user inserts it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub user_id: i64,
    pub item_id: i64,
    pub watch_time: f64,
    pub duration: f64,
    pub ts: i64,
}

/// A fitted model as stored: ids, factors, popularity and metadata.
#[derive(Debug)]
pub struct StoredModel {
    pub user_ids: Vec<i64>,
    pub users: Factors,
    pub item_ids: Vec<i64>,
    pub items: Factors,
    pub popularity: Vec<f32>,
    pub meta: ModelMeta,
}

/// The `<table>_model` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMeta {
    /// 1 for the first refit, then +1 per refit.
    pub version: i64,
    /// Unique per refit: the key of per-connection caches of decoded factors.
    pub tag: String,
    /// Events with rowid <= this were part of the fit.
    pub events_upto: i64,
    /// The JSON report returned by the refit that wrote this model.
    pub report: String,
    /// The newest event `ts` seen by the refit: "now" for recency decay.
    pub newest_ts: i64,
    /// The training options of that refit, as a JSON object (what fold-in must reuse).
    pub options: String,
}

/// Names and SQL of the shadow tables of one `foryou` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Shadow {
    pub schema: String,
    pub table: String,
    /// The event INSERT, made once: it runs for every inserted row.
    insert_event_sql: String,
}

/// `identifier` as a double-quoted SQL identifier.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

impl Shadow {
    pub fn new(schema: &str, table: &str) -> Self {
        let mut shadow = Shadow {
            schema: schema.to_string(),
            table: table.to_string(),
            insert_event_sql: String::new(),
        };
        shadow.insert_event_sql = format!(
            "INSERT INTO {}(id, user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            shadow.name("events")
        );
        shadow
    }

    /// `"schema"."<table>_<part>"`: the one place shadow names are made.
    pub fn name(&self, part: &str) -> String {
        format!(
            "{}.{}",
            quote(&self.schema),
            quote(&format!("{}_{part}", self.table))
        )
    }

    /// The unqualified name, for DDL that takes no schema (index targets).
    fn bare(&self, part: &str) -> String {
        quote(&format!("{}_{part}", self.table))
    }

    /// The exact DDL of every shadow object, in creation order.
    pub fn create_sql(&self) -> Vec<String> {
        vec![
            format!("CREATE TABLE {}(key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID", self.name("config")),
            format!(
                "CREATE TABLE {}(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, item_id INTEGER NOT NULL, \
                 watch_time REAL NOT NULL, duration REAL NOT NULL, ts INTEGER NOT NULL, UNIQUE(user_id, item_id, id))",
                self.name("events")
            ),
            format!("CREATE TABLE {}(key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID", self.name("model")),
            format!("CREATE TABLE {}(chunk INTEGER PRIMARY KEY, ids BLOB NOT NULL, factors BLOB NOT NULL)", self.name("users")),
            format!(
                "CREATE TABLE {}(chunk INTEGER PRIMARY KEY, ids BLOB NOT NULL, factors BLOB NOT NULL, popularity BLOB NOT NULL)",
                self.name("items")
            ),
        ]
    }

    /// Creates the shadow tables and stores the options (xCreate).
    pub fn create(&self, conn: &Connection, options: &Options) -> Result<()> {
        for sql in self.create_sql() {
            conn.execute_batch(&sql)?;
        }
        let mut insert = conn.prepare(&format!(
            "INSERT INTO {}(key, value) VALUES (?1, ?2)",
            self.name("config")
        ))?;
        insert.execute(params!["format_version", FORMAT_VERSION])?;
        for (key, value) in options.entries() {
            match value {
                Value::Integer(v) => insert.execute(params![key, v])?,
                Value::Real(v) => insert.execute(params![key, v])?,
                Value::Boolean(v) => insert.execute(params![key, v as i64])?,
                Value::Text(v) => insert.execute(params![key, v])?,
            };
        }
        Ok(())
    }

    /// Reads the options back and checks the format version (xConnect).
    pub fn load_options(&self, conn: &Connection) -> Result<Options> {
        let mut stmt = conn.prepare(&format!("SELECT key, value FROM {}", self.name("config")))?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, rusqlite::types::Value>(1)?,
            ))
        })?;
        // Options missing from an older table keep their old meaning.
        let mut options = Options::stored_base();
        let mut version = None;
        for row in rows {
            let (key, value) = row?;
            if key == "format_version" {
                if let rusqlite::types::Value::Integer(v) = value {
                    version = Some(v);
                }
                continue;
            }
            options.load_stored(&key, &value).map_err(sql_error)?;
        }
        match version {
            Some(FORMAT_VERSION) => Ok(options),
            Some(v) => Err(sql_error(format!(
                "foryou: table {} has storage format version {v}; this build of foryou reads version {FORMAT_VERSION}",
                self.table
            ))),
            None => Err(sql_error(format!("foryou: table {} has no format_version in {}_config", self.table, self.table))),
        }
    }

    /// Drops every shadow table (xDestroy).
    pub fn destroy(&self, conn: &Connection) -> Result<()> {
        for part in PARTS.iter().rev() {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {}", self.name(part)))?;
        }
        Ok(())
    }

    /// Renames every shadow table to follow the virtual table (xRename).
    pub fn rename(&self, conn: &Connection, new_table: &str) -> Result<Shadow> {
        let renamed = Shadow::new(&self.schema, new_table);
        for part in PARTS {
            conn.execute_batch(&format!(
                "ALTER TABLE {} RENAME TO {}",
                self.name(part),
                renamed.bare(part)
            ))?;
        }
        Ok(renamed)
    }

    // ---- events ------------------------------------------------------------------

    /// Stores one event; `id` None lets SQLite choose the rowid. Returns the rowid.
    pub fn insert_event(&self, conn: &Connection, id: Option<i64>, e: &Event) -> Result<i64> {
        let mut stmt = conn.prepare_cached(&self.insert_event_sql)?;
        stmt.execute(params![
            id,
            e.user_id,
            e.item_id,
            e.watch_time,
            e.duration,
            e.ts
        ])?;
        Ok(conn.last_insert_rowid())
    }

    /// Replaces the event at `id` (which may move to `new_id`). False when `id` does not exist.
    pub fn update_event(&self, conn: &Connection, id: i64, new_id: i64, e: &Event) -> Result<bool> {
        let mut stmt = conn.prepare_cached(&format!(
            "UPDATE {} SET id = ?2, user_id = ?3, item_id = ?4, watch_time = ?5, duration = ?6, ts = ?7 WHERE id = ?1",
            self.name("events")
        ))?;
        Ok(stmt.execute(params![
            id,
            new_id,
            e.user_id,
            e.item_id,
            e.watch_time,
            e.duration,
            e.ts
        ])? == 1)
    }

    pub fn delete_event(&self, conn: &Connection, id: i64) -> Result<()> {
        let mut stmt = conn.prepare_cached(&format!(
            "DELETE FROM {} WHERE id = ?1",
            self.name("events")
        ))?;
        stmt.execute([id])?;
        Ok(())
    }

    /// Up to `limit` events with rowid > `after` (all when None), in rowid order, optionally of one user
    /// and/or one rowid: the paged scan behind `SELECT ... FROM <table>`.
    pub fn scan_events(
        &self,
        conn: &Connection,
        after: Option<i64>,
        user_id: Option<i64>,
        only_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, Event)>> {
        // One statement per shape, each with plain terms the planner can use (a rowid
        // range, the user index, one rowid): "?1 IS NULL OR id > ?1" would make every
        // page a scan from the first row, quadratic over a whole table.
        let filter = match (user_id.is_some(), only_id.is_some()) {
            (_, true) => "id = ?3 AND id >= ?1 AND (?2 IS NULL OR user_id = ?2)",
            (true, false) => "user_id = ?2 AND id >= ?1",
            (false, false) => "id >= ?1",
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, user_id, item_id, watch_time, duration, ts FROM {} WHERE {filter} ORDER BY id LIMIT ?4",
            self.name("events")
        ))?;
        // The first rowid to return (inclusive, so that i64::MIN can be one).
        let after = match after {
            None => i64::MIN,
            Some(last) => match last.checked_add(1) {
                Some(next) => next,
                None => return Ok(Vec::new()),
            },
        };
        let rows = stmt.query_map(params![after, user_id, only_id, limit as i64], |row| {
            Ok((
                row.get(0)?,
                Event {
                    user_id: row.get(1)?,
                    item_id: row.get(2)?,
                    watch_time: row.get(3)?,
                    duration: row.get(4)?,
                    ts: row.get(5)?,
                },
            ))
        })?;
        rows.collect()
    }

    /// Streams every event in rowid order to `f(user_id, item_id, watch_time, duration,
    /// ts)` on the calling thread, with no intermediate buffers (a refit aggregates them
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
        mut f: impl FnMut(i64, i64, f64, f64, i64),
    ) -> Result<(usize, i64)> {
        use rusqlite::ffi;
        use std::ffi::CString;
        let sql = CString::new(format!(
            "SELECT id, user_id, item_id, watch_time, duration, ts FROM {} ORDER BY id",
            self.name("events")
        ))
        .map_err(|_| sql_error("foryou: a table name holds a NUL character".to_string()))?;
        /// Finalizes the statement on every path, panics included.
        struct Stmt(*mut ffi::sqlite3_stmt);
        impl Drop for Stmt {
            fn drop(&mut self) {
                // SAFETY: the pointer came from sqlite3_prepare_v2 (or is null, which
                // sqlite3_finalize accepts) and is finalized exactly once, here.
                unsafe { ffi::sqlite3_finalize(self.0) };
            }
        }
        let failure = |db: *mut ffi::sqlite3, code: std::os::raw::c_int| {
            // SAFETY: `db` is the live connection handle; sqlite3_errmsg returns a
            // NUL-terminated string owned by SQLite, copied before any other call.
            let message = unsafe {
                std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(db))
                    .to_string_lossy()
                    .into_owned()
            };
            rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(message))
        };
        // SAFETY: the handle of a live `Connection` borrowed for this whole call, used on
        // this thread only; rusqlite holds no statement of ours on it.
        let db = unsafe { conn.handle() };
        let mut stmt = Stmt(std::ptr::null_mut());
        // SAFETY: `sql` is NUL-terminated (length −1), `stmt.0` receives the statement.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt.0, std::ptr::null_mut())
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
            // SAFETY: the statement has a current row with the 6 columns selected above;
            // the column readers take the index and return plain values.
            unsafe {
                last_id = ffi::sqlite3_column_int64(stmt.0, 0);
                f(
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
        let events = self.name("events");
        conn.query_row(
            &format!("SELECT (SELECT min(id) FROM {events}), (SELECT max(id) FROM {events})"),
            [],
            |row| {
                Ok(
                    match (row.get::<_, Option<i64>>(0)?, row.get::<_, Option<i64>>(1)?) {
                        (Some(lo), Some(hi)) => (hi as i128 - lo as i128 + 1) as u64,
                        _ => 0,
                    },
                )
            },
        )
    }

    /// (rowid, item id) of every event of one user, in item order: read from the
    /// covering index alone (no table rows), so it is the cheap question a serving call
    /// asks first; [`Shadow::user_events`] reads the whole events when a fold-in needs them.
    pub fn user_items(&self, conn: &Connection, user_id: i64) -> Result<Vec<(i64, i64)>> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, item_id FROM {} WHERE user_id = ?1 ORDER BY item_id, id",
            self.name("events")
        ))?;
        let rows = stmt.query_map([user_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect()
    }

    /// Every event of one user (through the user index), in item order.
    pub fn user_events(&self, conn: &Connection, user_id: i64) -> Result<Vec<(i64, Event)>> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, item_id, watch_time, duration, ts FROM {} WHERE user_id = ?1 ORDER BY item_id, id",
            self.name("events")
        ))?;
        let rows = stmt.query_map([user_id], |row| {
            Ok((
                row.get(0)?,
                Event {
                    user_id,
                    item_id: row.get(1)?,
                    watch_time: row.get(2)?,
                    duration: row.get(3)?,
                    ts: row.get(4)?,
                },
            ))
        })?;
        rows.collect()
    }

    /// Distinct items of the events with rowid > `after` (events newer than a refit).
    pub fn items_after(&self, conn: &Connection, after: i64) -> Result<Vec<i64>> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT DISTINCT item_id FROM {} WHERE id > ?1 ORDER BY item_id",
            self.name("events")
        ))?;
        let rows = stmt.query_map([after], |row| row.get(0))?;
        rows.collect()
    }

    /// Number of events with rowid > `after` (events newer than a refit).
    pub fn count_events_after(&self, conn: &Connection, after: i64) -> Result<i64> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT count(*) FROM {} WHERE id > ?1",
            self.name("events")
        ))?;
        stmt.query_row([after], |row| row.get(0))
    }

    /// Distinct items the user has events for, ascending.
    pub fn watched_items(&self, conn: &Connection, user_id: i64) -> Result<Vec<i64>> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT DISTINCT item_id FROM {} WHERE user_id = ?1 ORDER BY item_id",
            self.name("events")
        ))?;
        let rows = stmt.query_map([user_id], |row| row.get(0))?;
        rows.collect()
    }

    /// Items by number of distinct viewers, computed from the events as they are now
    /// (the popularity used before the first refit).
    /// Skipped events (the skip rule of `model::feedback`) do not count as views.
    pub fn live_popularity(
        &self,
        conn: &Connection,
        skip_ratio: f64,
        skip_seconds: f64,
    ) -> Result<Vec<(i64, f32)>> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT item_id, count(DISTINCT user_id) FROM {} \
             WHERE NOT ((?1 > 0 AND min(watch_time / duration, 10.0) < ?1) OR (?2 > 0 AND watch_time < min(?2, duration))) \
             GROUP BY item_id",
            self.name("events")
        ))?;
        let rows = stmt.query_map([skip_ratio, skip_seconds], |row| {
            Ok((row.get(0)?, row.get::<_, i64>(1)? as f32))
        })?;
        rows.collect()
    }

    /// Number of distinct items with events: the catalogue that can be recommended.
    pub fn catalogue_size(&self, conn: &Connection) -> Result<usize> {
        let n: i64 = conn.query_row(
            &format!(
                "SELECT count(DISTINCT item_id) FROM {}",
                self.name("events")
            ),
            [],
            |row| row.get(0),
        )?;
        Ok(n as usize)
    }

    // ---- model -------------------------------------------------------------------

    /// The tag of the stored model, if any: one indexed lookup, done on every serve.
    pub fn model_tag(&self, conn: &Connection) -> Result<Option<String>> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT value FROM {} WHERE key = 'tag'",
            self.name("model")
        ))?;
        stmt.query_row([], |row| row.get(0)).optional()
    }

    pub fn model_meta(&self, conn: &Connection) -> Result<Option<ModelMeta>> {
        let mut stmt = conn.prepare(&format!("SELECT key, value FROM {}", self.name("model")))?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, rusqlite::types::Value>(1)?,
            ))
        })?;
        let (mut version, mut tag, mut upto, mut report, mut newest, mut options) =
            (None, None, None, None, None, None);
        for row in rows {
            use rusqlite::types::Value as V;
            match row? {
                (k, V::Integer(v)) if k == "version" => version = Some(v),
                (k, V::Text(v)) if k == "tag" => tag = Some(v),
                (k, V::Integer(v)) if k == "events_upto" => upto = Some(v),
                (k, V::Text(v)) if k == "report" => report = Some(v),
                (k, V::Integer(v)) if k == "newest_ts" => newest = Some(v),
                (k, V::Text(v)) if k == "options" => options = Some(v),
                _ => {}
            }
        }
        Ok(match (version, tag, upto, report, newest, options) {
            (
                Some(version),
                Some(tag),
                Some(events_upto),
                Some(report),
                Some(newest_ts),
                Some(options),
            ) => Some(ModelMeta {
                version,
                tag,
                events_upto,
                report,
                newest_ts,
                options,
            }),
            _ => None,
        })
    }

    /// Reads the whole stored model, or None before the first refit.
    pub fn read_model(&self, conn: &Connection) -> Result<Option<StoredModel>> {
        let Some(meta) = self.model_meta(conn)? else {
            return Ok(None);
        };
        let (user_ids, users, _) = self.read_chunks(conn, "users", false)?;
        let (item_ids, items, popularity) = self.read_chunks(conn, "items", true)?;
        Ok(Some(StoredModel {
            user_ids,
            users,
            item_ids,
            items,
            popularity,
            meta,
        }))
    }

    fn read_chunks(
        &self,
        conn: &Connection,
        part: &str,
        with_popularity: bool,
    ) -> Result<(Vec<i64>, Factors, Vec<f32>)> {
        let columns = if with_popularity {
            "ids, factors, popularity"
        } else {
            "ids, factors, NULL"
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT {columns} FROM {} ORDER BY chunk",
            self.name(part)
        ))?;
        let mut rows = stmt.query([])?;
        let (mut ids, mut data, mut popularity) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(row) = rows.next()? {
            let id_bytes = row.get_ref(0)?.as_blob()?;
            ids.extend(
                id_bytes
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap())),
            );
            let factor_bytes = row.get_ref(1)?.as_blob()?;
            data.extend(
                factor_bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap())),
            );
            if with_popularity {
                let pop_bytes = row.get_ref(2)?.as_blob()?;
                popularity.extend(
                    pop_bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap())),
                );
            }
        }
        let rows = ids.len();
        if rows == 0 || data.len() % rows != 0 || (with_popularity && popularity.len() != rows) {
            return Err(sql_error(format!(
                "foryou: {}_{part} is damaged: {} ids for {} factor values",
                self.table,
                rows,
                data.len()
            )));
        }
        let dim = data.len() / rows;
        Ok((ids, Factors { rows, dim, data }, popularity))
    }

    /// Replaces the stored model. The caller runs this inside a savepoint, so another
    /// connection sees the old model or the new one, never a mix.
    pub fn write_model(&self, conn: &Connection, model: &StoredModel) -> Result<()> {
        for part in ["users", "items"] {
            conn.execute_batch(&format!("DELETE FROM {}", self.name(part)))?;
        }
        self.write_chunks(conn, "users", &model.user_ids, &model.users, None)?;
        self.write_chunks(
            conn,
            "items",
            &model.item_ids,
            &model.items,
            Some(&model.popularity),
        )?;
        let mut put = conn.prepare(&format!(
            "INSERT OR REPLACE INTO {}(key, value) VALUES (?1, ?2)",
            self.name("model")
        ))?;
        put.execute(params!["version", model.meta.version])?;
        put.execute(params!["tag", model.meta.tag])?;
        put.execute(params!["events_upto", model.meta.events_upto])?;
        put.execute(params!["report", model.meta.report])?;
        put.execute(params!["newest_ts", model.meta.newest_ts])?;
        put.execute(params!["options", model.meta.options])?;
        Ok(())
    }

    fn write_chunks(
        &self,
        conn: &Connection,
        part: &str,
        ids: &[i64],
        factors: &Factors,
        popularity: Option<&[f32]>,
    ) -> Result<()> {
        let sql = match popularity {
            Some(_) => format!(
                "INSERT INTO {}(chunk, ids, factors, popularity) VALUES (?1, ?2, ?3, ?4)",
                self.name(part)
            ),
            None => format!(
                "INSERT INTO {}(chunk, ids, factors) VALUES (?1, ?2, ?3)",
                self.name(part)
            ),
        };
        let mut insert = conn.prepare(&sql)?;
        for (chunk, first) in (0..ids.len()).step_by(CHUNK_ROWS).enumerate() {
            let last = (first + CHUNK_ROWS).min(ids.len());
            let id_blob: Vec<u8> = ids[first..last]
                .iter()
                .flat_map(|id| id.to_le_bytes())
                .collect();
            let factor_blob = f32_blob(&factors.data[first * factors.dim..last * factors.dim]);
            match popularity {
                Some(pop) => insert.execute(params![
                    chunk as i64,
                    id_blob,
                    factor_blob,
                    f32_blob(&pop[first..last])
                ])?,
                None => insert.execute(params![chunk as i64, id_blob, factor_blob])?,
            };
        }
        Ok(())
    }

    /// Runs `body` inside a savepoint: all of its writes land, or none do. Inside a
    /// running write statement (an INSERT that triggers an automatic refit) SQLite opens
    /// no savepoint; that statement is itself atomic, so `body` runs within it.
    pub fn atomically<T>(conn: &Connection, body: impl FnOnce() -> Result<T>) -> Result<T> {
        if let Err(e) = conn.execute_batch("SAVEPOINT foryou") {
            return match e.to_string().contains("statements in progress") {
                true => body(),
                false => Err(e),
            };
        }
        match body() {
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

fn f32_blob(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `(user_id, item_id)` rows of a user's table or view `name` (`table` or `schema.table`).
pub fn read_holdout(conn: &Connection, name: &str) -> Result<Vec<(i64, i64)>> {
    let qualified = match name.split_once('.') {
        Some((schema, table)) => format!("{}.{}", quote(schema), quote(table)),
        None => quote(name),
    };
    let mut stmt = conn.prepare(&format!("SELECT user_id, item_id FROM {qualified} WHERE user_id IS NOT NULL AND item_id IS NOT NULL"))?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// Names of the `foryou` tables in `schema`, from its schema table.
pub fn foryou_tables(conn: &Connection, schema: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT name, sql FROM {}.sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'",
        quote(schema)
    ))?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut names = Vec::new();
    for row in rows {
        let (name, sql) = row?;
        if module_of(&sql).is_some_and(|m| m.eq_ignore_ascii_case("foryou")) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The module name in a `CREATE VIRTUAL TABLE ... USING module(...)` statement.
fn module_of(sql: &str) -> Option<String> {
    let upper = sql.to_ascii_uppercase();
    let mut from = 0;
    while let Some(pos) = upper[from..].find("USING") {
        let at = from + pos;
        let before_ok = at == 0 || !upper.as_bytes()[at - 1].is_ascii_alphanumeric();
        let rest = sql[at + 5..].trim_start();
        if before_ok && rest.len() < sql.len() - at - 5 {
            let name: String = rest
                .trim_start_matches(['"', '`', '['])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return Some(name);
        }
        from = at + 5;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_found() {
        assert_eq!(
            module_of("CREATE VIRTUAL TABLE feed USING foryou(factors=3)").as_deref(),
            Some("foryou")
        );
        assert_eq!(
            module_of("create virtual table x using   \"FORYOU\"").as_deref(),
            Some("FORYOU")
        );
        assert_eq!(
            module_of("CREATE VIRTUAL TABLE x USING fts5(a)").as_deref(),
            Some("fts5")
        );
    }

    #[test]
    fn shadow_names_are_quoted() {
        let s = Shadow::new("main", "we\"ird");
        assert_eq!(s.name("events"), "\"main\".\"we\"\"ird_events\"");
    }
}
