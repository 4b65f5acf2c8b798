//! The `foryou` virtual table module: `CREATE VIRTUAL TABLE feed USING foryou(...)`.
//!
//! Rows are watch events; the rowid is the event id. INSERT (single or `INSERT ...
//! SELECT`), SELECT, UPDATE and DELETE act on `<table>_events`; DROP TABLE removes every
//! shadow table; ALTER TABLE RENAME renames them. With `content = '...'` the rows are
//! the content's events, read in place; writes are refused (the app writes its table).

use std::borrow::Cow;
use std::ffi::{c_char, c_int, CStr};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::types::ValueRef;
use rusqlite::vtab::{
    self, sqlite3_vtab, sqlite3_vtab_cursor, Context, CreateVTab, Filters, IndexConstraintOp,
    IndexInfo, Inserts, Module, UpdateVTab, Updates, VTab, VTabConnection, VTabCursor, VTabKind,
};
use rusqlite::{ffi, Connection, Result};

use super::args;
use super::guard::guarded;
use crate::engine::cache::{check_content_options, load_options};
use crate::engine::options::Options;
use crate::engine::refit::AutoRefit;
use crate::error::{Error, Result as FyResult};
use crate::store::{refuse_inside_content_read, Event, Shadow, SourceCheck, PARTS};

/// The declared schema of every `foryou` table.
pub const CREATE_SQL: &CStr =
    c"CREATE TABLE x(user_id INTEGER, item_id INTEGER, watch_time REAL, duration REAL, ts INTEGER)";

/// Column order of [`CREATE_SQL`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Column {
    UserId = 0,
    ItemId = 1,
    WatchTime = 2,
    Duration = 3,
    Ts = 4,
}

/// Rows fetched per step of a scan: bounded memory, whatever the table size.
const PAGE_ROWS: usize = 1024;

/// `idx_num` bits chosen by `best_index`.
const BY_ROWID: c_int = 1;
const BY_USER: c_int = 2;

#[repr(C)]
pub struct FeedTable {
    /// Must come first: SQLite sees this struct as a `sqlite3_vtab`.
    base: sqlite3_vtab,
    /// Non-owning handle on the connection that opened the table (never closed by us).
    conn: Connection,
    shadow: Shadow,
    /// `foryou: <table>`, the prefix of its row errors (made once: rows are many).
    who: String,
    /// None when the stored options could not be read at xConnect (a damaged `_config`,
    /// another storage format): the table can then still be dropped or renamed, and
    /// every other use reads them again and fails with the error xConnect had.
    options: Option<Options>,
    /// What `auto_refit` counts between its checks.
    auto_refit: AutoRefit,
    /// The caller's statement run last checked by `check_insert_source`.
    source: SourceCheck,
}

fn args_as_str<'a>(args: &'a [&'a [u8]]) -> FyResult<Vec<&'a str>> {
    args.iter()
        .map(|a| {
            std::str::from_utf8(a).map_err(|_| Error::Argument {
                who: "foryou".to_string(),
                argument: "CREATE arguments",
                expected: "UTF-8 text".to_string(),
                got: format!("{} bytes that are not", a.len()),
            })
        })
        .collect()
}

/// Whether reading the stored options failed for good: our own check of what is stored,
/// or SQLite's plain error (a missing shadow table) or CORRUPT; not BUSY, NOMEM, I/O...
fn lasting(e: &Error) -> bool {
    match e {
        Error::Sqlite(rusqlite::Error::SqliteFailure(code, _))
        | Error::SqliteWhile {
            source: rusqlite::Error::SqliteFailure(code, _),
            ..
        } => matches!(
            code.extended_code & 0xff,
            ffi::SQLITE_ERROR | ffi::SQLITE_CORRUPT
        ),
        _ => true,
    }
}

impl FeedTable {
    fn open_table(
        db: &mut VTabConnection,
        schema: &[u8],
        table: &[u8],
        options: Option<Options>,
    ) -> FyResult<(Cow<'static, CStr>, Self)> {
        // SAFETY: the handle outlives this table: SQLite disconnects every virtual table
        // before it closes the connection, and `from_handle` does not take ownership.
        let conn = unsafe { Connection::from_handle(db.handle())? };
        let mut shadow = Shadow::new(
            &String::from_utf8_lossy(schema),
            &String::from_utf8_lossy(table),
        );
        let options = match options {
            Some(options) => {
                if !options.content.is_empty() {
                    shadow = shadow.reading(&conn, &options.content, &options.content_rowid)?;
                    check_content_options(&shadow, &options)?;
                    shadow.check_content_plan(&conn)?;
                }
                shadow.create(&conn, &options.config_rows())?;
                Some(options)
            }
            None => match load_options(&conn, &mut shadow) {
                Ok(options) => Some(options),
                // What may pass (BUSY, LOCKED, NOMEM, I/O...) fails xConnect as it is, so
                // that the next statement connects again. What will not (a damaged or
                // missing `_config`, another format) is kept for every use but DROP and
                // RENAME.
                Err(e) if !lasting(&e) => return Err(e),
                Err(_) => None,
            },
        };
        let table = FeedTable {
            base: sqlite3_vtab::default(),
            conn,
            who: format!("foryou: {}", shadow.table),
            shadow,
            options,
            auto_refit: AutoRefit::default(),
            source: SourceCheck::default(),
        };
        Ok((Cow::Borrowed(CREATE_SQL), table))
    }

    /// Validates one row of INSERT/UPDATE values (columns in [`Column`] order).
    fn event_from(&self, values: &[ValueRef<'_>]) -> FyResult<Event> {
        let who = self.who.as_str();
        let at = |c: Column| values[c as usize];
        let user_id = args::integer(who, "user_id", at(Column::UserId))?;
        let item_id = args::integer(who, "item_id", at(Column::ItemId))?;
        let watch_time = args::number(
            who,
            "watch_time",
            "a number of seconds >= 0",
            at(Column::WatchTime),
        )?;
        if watch_time < 0.0 {
            return Err(Error::Argument {
                who: who.to_string(),
                argument: "watch_time",
                expected: "a number of seconds >= 0".to_string(),
                got: watch_time.to_string(),
            });
        }
        let duration = args::number(
            who,
            "duration",
            "a number of seconds > 0",
            at(Column::Duration),
        )?;
        if duration <= 0.0 {
            return Err(Error::Argument {
                who: who.to_string(),
                argument: "duration",
                expected: "a number of seconds > 0".to_string(),
                got: duration.to_string(),
            });
        }
        // Seconds since 1970 stay far below i64::MAX.
        #[allow(clippy::cast_possible_wrap)]
        let ts = match at(Column::Ts) {
            ValueRef::Null => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            value => args::integer(who, "ts", value)?,
        };
        Ok(Event {
            user_id,
            item_id,
            watch_time,
            duration,
            ts,
        })
    }

    /// The stored options, read again if xConnect could not read them: their error is
    /// the error of every use but DROP TABLE and ALTER TABLE RENAME.
    fn options(&mut self) -> FyResult<&Options> {
        let options = match self.options.take() {
            Some(options) => options,
            None => load_options(&self.conn, &mut self.shadow)?,
        };
        Ok(self.options.insert(options))
    }

    /// Fails, as [`FeedTable::options`], when the stored options cannot be read.
    fn check_options(&self) -> FyResult<()> {
        match self.options {
            Some(_) => Ok(()),
            None => load_options(&self.conn, &mut self.shadow.clone()).map(drop),
        }
    }

    fn rowid_of(&self, value: ValueRef<'_>) -> FyResult<Option<i64>> {
        match value {
            ValueRef::Null => Ok(None),
            value => args::integer(&self.who, "rowid", value).map(Some),
        }
    }
}

// SAFETY: `FeedTable` is #[repr(C)] with `sqlite3_vtab` as its first field.
unsafe impl<'vtab> VTab<'vtab> for FeedTable {
    type Aux = ();
    type Cursor = EventCursor<'vtab>;

    // xConnect: reopen an existing table; reads its options and checks the format version.
    fn connect(
        db: &mut VTabConnection,
        _: Option<&()>,
        _: &[u8],
        schema: &[u8],
        table: &[u8],
        _: &[&[u8]],
    ) -> Result<(Cow<'static, CStr>, Self)> {
        guarded("foryou", || Self::open_table(db, schema, table, None))
    }

    // xBestIndex: an equality on rowid reads one event; an equality on user_id walks that
    // user's index range; anything else is a full scan. Other constraints are left to SQLite.
    fn best_index(&self, info: &mut IndexInfo) -> Result<bool> {
        guarded("foryou", || {
            refuse_inside_content_read(&self.who)?;
            // Every SELECT, UPDATE and DELETE plans here first.
            self.check_options()?;
            let (mut rowid_at, mut user_at) = (None, None);
            for (i, constraint) in info.constraints().enumerate() {
                if !constraint.is_usable()
                    || constraint.operator() != IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ
                {
                    continue;
                }
                match constraint.column() {
                    -1 => rowid_at = Some(i),
                    c if c == Column::UserId as c_int => user_at = Some(i),
                    _ => {}
                }
            }
            let mut idx_num = 0;
            let mut argv = 1;
            for (at, bit) in [(rowid_at, BY_ROWID), (user_at, BY_USER)] {
                if let Some(at) = at {
                    let mut usage = info.constraint_usage(at);
                    usage.set_argv_index(argv);
                    usage.set_omit(true);
                    argv += 1;
                    idx_num |= bit;
                }
            }
            info.set_idx_num(idx_num);
            let (cost, rows) = match idx_num {
                0 => (1e6, 1_000_000),
                BY_USER => (1e3, 100),
                _ => (1.0, 1),
            };
            info.set_estimated_cost(cost);
            info.set_estimated_rows(rows);
            if let Some(order) = info.order_bys().next() {
                // Rows come out in rowid order.
                if info.num_of_order_by() == 1 && order.column() == -1 && !order.is_order_by_desc()
                {
                    info.set_order_by_consumed(true);
                }
            }
            Ok(true)
        })
    }

    fn open(&'vtab mut self) -> Result<EventCursor<'vtab>> {
        Ok(EventCursor {
            base: sqlite3_vtab_cursor::default(),
            table: self,
            rows: Vec::new(),
            at: 0,
            user: None,
            only: None,
            exhausted: true,
        })
    }
}

impl CreateVTab<'_> for FeedTable {
    const KIND: VTabKind = VTabKind::Default;

    // xCreate: validates the `key = value` options and creates the shadow tables.
    fn create(
        db: &mut VTabConnection,
        _: Option<&()>,
        _: &[u8],
        schema: &[u8],
        table: &[u8],
        args: &[&[u8]],
    ) -> Result<(Cow<'static, CStr>, Self)> {
        guarded("foryou", || {
            let options = Options::from_create_args(&args_as_str(args)?)?;
            Self::open_table(db, schema, table, Some(options))
        })
    }

    // xDestroy: DROP TABLE removes every shadow table.
    fn destroy(&self) -> Result<()> {
        guarded("foryou", || self.shadow.destroy(&self.conn))
    }
}

impl UpdateVTab<'_> for FeedTable {
    // DELETE: removes one event by rowid.
    fn delete(&mut self, rowid: ValueRef<'_>) -> Result<()> {
        guarded("foryou", || {
            self.options()?;
            self.shadow.refuse_write("delete")?;
            match self.rowid_of(rowid)? {
                Some(id) => self.shadow.delete_event(&self.conn, id),
                None => Ok(()),
            }
        })
    }

    // INSERT: validates and stores one event; an explicit rowid is kept. With
    // `auto_refit = N`, every N inserts check whether N events arrived since the last
    // refit and, if so, run an incremental refit within this statement.
    fn insert(&mut self, args: &Inserts<'_>) -> Result<i64> {
        guarded("foryou", || {
            let auto_refit_every = self.options()?.auto_refit;
            self.shadow.refuse_write("insert")?;
            let values: Vec<ValueRef<'_>> = args.iter().collect();
            let id = self.rowid_of(values[1])?;
            let event = self.event_from(&values[2..])?;
            self.shadow
                .check_insert_source(&self.conn, &mut self.source)?;
            let rowid = self.shadow.insert_event(&self.conn, id, &event)?;
            if auto_refit_every > 0 {
                if let Some(options) = &self.options {
                    let refitted =
                        self.auto_refit
                            .inserted(&self.conn, &self.shadow, options, rowid);
                    if let Err(error) = refitted {
                        // The INSERT fails, so the event must not stay: SQLite undoes a
                        // failing one-row INSERT into a virtual table only in autocommit
                        // mode, not inside the caller's transaction. (A failure of this
                        // delete cannot add to the first error.)
                        let _ = self.shadow.delete_event(&self.conn, rowid);
                        return Err(error);
                    }
                }
            }
            Ok(rowid)
        })
    }

    // UPDATE: validates the new row and replaces the event (its rowid may change).
    fn update(&mut self, args: &Updates<'_>) -> Result<()> {
        guarded("foryou", || {
            self.options()?;
            self.shadow.refuse_write("update")?;
            let values: Vec<ValueRef<'_>> = args.iter().collect();
            let old = self.rowid_of(values[0])?.unwrap_or_default();
            let new = self.rowid_of(values[1])?.unwrap_or(old);
            let event = self.event_from(&values[2..])?;
            self.shadow.update_event(&self.conn, old, new, &event)?;
            Ok(())
        })
    }
}

/// A paged scan over `<table>_events` in rowid order.
#[repr(C)]
pub struct EventCursor<'vtab> {
    /// Must come first: SQLite sees this struct as a `sqlite3_vtab_cursor`.
    base: sqlite3_vtab_cursor,
    table: &'vtab FeedTable,
    rows: Vec<(i64, Event)>,
    at: usize,
    user: Option<i64>,
    only: Option<i64>,
    /// True when the last page fetched was the final one.
    exhausted: bool,
}

impl EventCursor<'_> {
    fn fetch(&mut self, after: Option<i64>) -> Result<()> {
        self.rows = self.table.shadow.scan_events(
            &self.table.conn,
            after,
            self.user,
            self.only,
            PAGE_ROWS,
        )?;
        self.exhausted = self.rows.len() < PAGE_ROWS;
        self.at = 0;
        Ok(())
    }
}

// SAFETY: `EventCursor` is #[repr(C)] with `sqlite3_vtab_cursor` as its first field.
unsafe impl VTabCursor for EventCursor<'_> {
    // xFilter: starts a scan, restricted by the constraints chosen in best_index.
    fn filter(&mut self, idx_num: c_int, _: Option<&str>, args: &Filters<'_>) -> Result<()> {
        guarded("foryou", || {
            refuse_inside_content_read(&self.table.who)?;
            let values: Vec<ValueRef<'_>> = args.iter().collect();
            let mut next = values.iter();
            let who = &self.table.who;
            // A non-integer constraint value matches no row, as with a real table.
            let mut read = |bit: c_int| -> Option<Option<i64>> {
                if idx_num & bit == 0 {
                    return Some(None);
                }
                next.next()
                    .and_then(|v| args::integer(who, "constraint", *v).ok())
                    .map(Some)
            };
            let (only, user) = (read(BY_ROWID), read(BY_USER));
            if let (Some(only), Some(user)) = (only, user) {
                self.only = only;
                self.user = user;
                Ok(self.fetch(None)?)
            } else {
                self.rows.clear();
                self.at = 0;
                self.exhausted = true;
                Ok(())
            }
        })
    }

    // xNext: advances, fetching the next page when the current one is used up.
    fn next(&mut self) -> Result<()> {
        guarded("foryou", || {
            self.at += 1;
            if self.at >= self.rows.len() && !self.exhausted {
                let last = self.rows.last().map(|(id, _)| *id);
                self.fetch(last)?;
            }
            Ok(())
        })
    }

    fn eof(&self) -> bool {
        self.at >= self.rows.len()
    }

    // xColumn: the stored event values.
    fn column(&self, ctx: &mut Context, i: c_int) -> Result<()> {
        guarded("foryou", || {
            let (_, e) = &self.rows[self.at];
            match i {
                0 => ctx.set_result(&e.user_id),
                1 => ctx.set_result(&e.item_id),
                2 => ctx.set_result(&e.watch_time),
                3 => ctx.set_result(&e.duration),
                4 => ctx.set_result(&e.ts),
                _ => ctx.set_result(&rusqlite::types::Null),
            }
            .map_err(Error::from)
        })
    }

    fn rowid(&self) -> Result<i64> {
        guarded("foryou", || Ok(self.rows[self.at].0))
    }
}

const BASE_MODULE: Module<'static, FeedTable> = vtab::Module::update_module();
static MODULE: OnceLock<ffi::sqlite3_module> = OnceLock::new();

// xRename: ALTER TABLE RENAME renames every shadow table with the virtual table.
unsafe extern "C" fn x_rename(vtab: *mut sqlite3_vtab, new_name: *const c_char) -> c_int {
    // SAFETY: SQLite passes the vtab pointer it got from xCreate/xConnect, which points at
    // a live FeedTable (repr(C), base first), and a valid NUL-terminated name.
    let (table, new_name) = unsafe { (&mut *vtab.cast::<FeedTable>(), CStr::from_ptr(new_name)) };
    let new_name = new_name.to_string_lossy().into_owned();
    let result = guarded("foryou", || {
        let renamed = table.shadow.rename(&table.conn, &new_name)?;
        table.who = format!("foryou: {}", renamed.table);
        table.shadow = renamed;
        Ok(())
    });
    match result {
        Ok(()) => ffi::SQLITE_OK,
        Err(e) => {
            if !table.base.zErrMsg.is_null() {
                // SAFETY: a non-NULL zErrMsg was allocated with sqlite3_malloc (by SQLite
                // or by `sqlite_string`), and is replaced just below.
                unsafe { ffi::sqlite3_free(table.base.zErrMsg.cast()) };
            }
            table.base.zErrMsg = sqlite_string(&e.to_string());
            ffi::SQLITE_ERROR
        }
    }
}

/// A copy of `text` in memory from `sqlite3_malloc`, which SQLite frees; NULL if out of memory.
fn sqlite_string(text: &str) -> *mut c_char {
    let bytes = text.as_bytes();
    // SAFETY: we allocate len + 1 bytes, copy len bytes and write the terminating NUL.
    unsafe {
        let out = ffi::sqlite3_malloc64(bytes.len() as u64 + 1).cast::<u8>();
        if !out.is_null() {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, bytes.len());
            *out.add(bytes.len()) = 0;
        }
        out.cast()
    }
}

// xShadowName: tells SQLite which `<table>_<suffix>` tables are ours, so that defensive
// mode keeps users from corrupting them by hand.
unsafe extern "C" fn x_shadow_name(suffix: *const c_char) -> c_int {
    // SAFETY: SQLite passes a valid NUL-terminated string.
    let suffix = unsafe { CStr::from_ptr(suffix) }.to_bytes();
    c_int::from(PARTS.iter().any(|p| p.as_bytes() == suffix))
}

/// Registers the `foryou` module on `conn`.
pub fn register(conn: &Connection) -> Result<()> {
    let module = MODULE.get_or_init(|| {
        // SAFETY: rusqlite's `Module<T>` is #[repr(transparent)] over `ffi::sqlite3_module`
        // (rusqlite is pinned to =0.40.2 in Cargo.toml; the layout is checked there), so
        // reading it as one copies the callback table rusqlite built. We then add the two
        // callbacks rusqlite has no trait method for. iVersion 3 is supported by SQLite
        // >= 3.26; the version-2 savepoint callbacks stay NULL (optional).
        let mut module: ffi::sqlite3_module =
            unsafe { std::ptr::read(std::ptr::from_ref::<Module<FeedTable>>(&BASE_MODULE).cast()) };
        module.iVersion = 3;
        module.xRename = Some(x_rename);
        module.xShadowName = Some(x_shadow_name);
        module
    });
    // SAFETY: `module` is 'static (OnceLock in a static); no client data is passed.
    let rc = unsafe {
        ffi::sqlite3_create_module_v2(
            conn.handle(),
            c"foryou".as_ptr(),
            module,
            std::ptr::null_mut(),
            None,
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some("foryou: could not register the module".to_string()),
        ))
    }
}
