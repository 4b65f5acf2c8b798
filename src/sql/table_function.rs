//! The machinery shared by the table-valued functions (`recommend(...)`,
//! `similar_items(...)`, ...): eponymous virtual tables whose hidden columns are the
//! call's arguments and whose rows are ranked ids (`id`, `score`, `rank`).
//!
//! The module is written against SQLite's C interface rather than rusqlite's `VTab`,
//! because `xBestIndex` must reach `sqlite3_vtab_in` and `sqlite3_vtab_rhs_value` (see
//! [`super::in_list`]) and `xFilter` the raw `IN` list, which rusqlite's wrappers hide.
//! Every callback body runs under `catch_unwind`; errors keep SQLite's code.
//!
//! `WHERE item_id IN (...)` is an allow-list inside the scan: the k best of the listed
//! items, not the listed part of the top k. `xBestIndex` takes it when SQLite can hand
//! over the whole list at once (`sqlite3_vtab_in`, SQLite 3.38+), and also a single
//! `item_id = <literal>` (which is what SQLite makes of `IN (<one literal>)`). An
//! `item_id` equality whose value comes from another table (a join) or a parameter is
//! left to SQLite, which filters the ranked rows: consuming it would make the result
//! depend on the join order SQLite picks (one call per joined row, each ranking a
//! single item).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{ffi, Connection};

use super::guard::panic_detail;
use super::in_list;
use super::scalar::value_ref;
use crate::engine::cache::ConnectionState;
use crate::error::{Error, Result};
use crate::store::integer_value;

/// Result columns before the hidden argument columns.
const OUTPUT_COLUMNS: c_int = 3;

/// `idxNum` beyond the argument columns' bits (bit `c` set: argument `c` is given, in
/// column order): the number of allow-lists, passed after the arguments, at this shift...
const ALLOW_COUNT_SHIFT: c_int = 16;
/// ... at most this many (more are left to SQLite, which checks them on the rows) ...
const MAX_ALLOW_LISTS: usize = 4;
/// ... and from this bit, one per list: set for a whole `IN` list, clear for one value.
const ALLOW_WHOLE_SHIFT: c_int = 20;

/// The `idxNum` bit that marks allow-list `j` (< [`MAX_ALLOW_LISTS`]) as a whole `IN` list.
fn whole_list_bit(j: usize) -> c_int {
    1 << (ALLOW_WHOLE_SHIFT + c_int::try_from(j.min(MAX_ALLOW_LISTS)).unwrap_or(0))
}

/// One SQL table-valued function returning ranked ids.
pub trait TableFunction: 'static {
    /// The SQL name, used in error messages.
    const NAME: &'static str;
    /// `id, score, rank` then one HIDDEN column per argument, in call order.
    const CREATE_SQL: &'static CStr;
    /// Argument names in call order; the first `REQUIRED` must be given.
    const ARGUMENTS: &'static [&'static str];
    const REQUIRED: usize;
    /// Whether `WHERE <column 0> IN (...)` restricts the ranking (an allow-list of
    /// items, or of users for `similar_users`).
    const ALLOW_LIST: bool = false;
    /// The ranked (id, score) rows for one call; `args[i]` is None when absent, `allow`
    /// the allow-list's ids (sorted, distinct) when the query has one.
    fn rows(
        conn: &Connection,
        state: &ConnectionState,
        args: &[Option<ValueRef<'_>>],
        allow: Option<&[i64]>,
    ) -> Result<Vec<(i64, f32)>>;
}

/// The module of `F`, a constant with a 'static address (promoted).
struct ModuleOf<F>(PhantomData<F>);

impl<F: TableFunction> ModuleOf<F> {
    // The update fills the fields newer bindings have (see below); with 3.34's, none.
    #[allow(clippy::needless_update)]
    const MODULE: ffi::sqlite3_module = ffi::sqlite3_module {
        iVersion: 1,
        // Null xCreate: eponymous only (`recommend(...)` exists in every schema).
        xCreate: None,
        xConnect: Some(connect::<F>),
        xBestIndex: Some(best_index::<F>),
        xDisconnect: Some(disconnect::<F>),
        xDestroy: None,
        xOpen: Some(open::<F>),
        xClose: Some(close::<F>),
        xFilter: Some(filter::<F>),
        xNext: Some(next::<F>),
        xEof: Some(eof::<F>),
        xColumn: Some(column::<F>),
        xRowid: Some(rowid::<F>),
        xUpdate: None,
        xBegin: None,
        xSync: None,
        xCommit: None,
        xRollback: None,
        xFindFunction: None,
        xRename: None,
        xSavepoint: None,
        xRelease: None,
        xRollbackTo: None,
        xShadowName: None,
        // Entries of later SQLite versions (xIntegrity, 3.44), present when foryou is
        // linked against a newer SQLite's bindings: none, as iVersion 1 says.
        // SAFETY: every field is a nullable function pointer or an integer, for which
        // all-zero bytes are valid (None, 0).
        ..unsafe { std::mem::zeroed() }
    };
}

/// Registers `F` on `conn` as the eponymous virtual table `F::NAME`.
pub fn register<F: TableFunction>(
    conn: &Connection,
    name: &'static CStr,
    state: Arc<ConnectionState>,
) -> rusqlite::Result<()> {
    // A reference to a constant is promoted to a 'static one: the address stays valid.
    let module: &'static ffi::sqlite3_module = &ModuleOf::<F>::MODULE;
    let aux = Box::into_raw(Box::new(state));
    // SAFETY: the handle of the connection being set up, on its own thread. The module
    // is a 'static constant. `aux` is a uniquely owned pointer whose ownership passes to
    // SQLite: it hands it to `connect::<F>` (which clones the Arc) and frees it once
    // through `drop_state`, also when this call fails, so it is not touched here again.
    let rc = unsafe {
        ffi::sqlite3_create_module_v2(
            conn.handle(),
            name.as_ptr(),
            module,
            aux.cast::<c_void>(),
            Some(drop_state),
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some(format!("cannot register {}", F::NAME)),
        ))
    }
}

unsafe extern "C" fn drop_state(aux: *mut c_void) {
    // SAFETY: `aux` is the pointer `register` boxed, passed back exactly once.
    let state = unsafe { Box::from_raw(aux.cast::<Arc<ConnectionState>>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(state)));
}

#[repr(C)]
struct Table<F> {
    /// Must come first: SQLite sees this struct as a `sqlite3_vtab`.
    base: ffi::sqlite3_vtab,
    /// Non-owning handle on the connection (never closed by us).
    conn: Connection,
    state: Arc<ConnectionState>,
    function: PhantomData<F>,
}

#[repr(C)]
struct Cursor<F> {
    /// Must come first: SQLite sees this struct as a `sqlite3_vtab_cursor`.
    base: ffi::sqlite3_vtab_cursor,
    rows: Vec<(i64, f32)>,
    /// The call's arguments, returned by the hidden columns.
    args: Vec<Value>,
    at: usize,
    function: PhantomData<F>,
}

/// Runs a callback body: a panic becomes an internal error naming `F`, and an error is
/// reported on `vtab` (its message in `zErrMsg`, its code returned).
fn run<F: TableFunction>(vtab: *mut ffi::sqlite3_vtab, body: impl FnOnce() -> Result<()>) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "test-hooks")]
        crate::hooks::maybe_panic(F::NAME);
        body()
    }))
    .unwrap_or_else(|payload| {
        Err(Error::Internal {
            who: F::NAME.to_string(),
            detail: panic_detail(payload.as_ref()),
        })
    });
    match outcome {
        Ok(()) => ffi::SQLITE_OK,
        Err(error) => {
            let _ = catch_unwind(AssertUnwindSafe(|| report(vtab, &error)));
            error.code().map_or(ffi::SQLITE_ERROR, |c| c.extended_code)
        }
    }
}

/// Sets the message of `error` as `vtab`'s `zErrMsg`, which SQLite reports and frees.
fn report(vtab: *mut ffi::sqlite3_vtab, error: &Error) {
    if vtab.is_null() {
        return;
    }
    // As in `scalar`: a NUL byte (it can echo a model name) shown as U+2400.
    let message = sqlite_string(&error.to_string());
    // SAFETY: `vtab` is the live table of this callback; its `zErrMsg` is null or a
    // string from SQLite's allocator, which SQLite expects us to replace with another
    // such string (it frees it after reporting).
    unsafe {
        ffi::sqlite3_free((*vtab).zErrMsg.cast::<c_void>());
        (*vtab).zErrMsg = message;
    }
}

/// `text` as a NUL-terminated copy on SQLite's heap, for SQLite to free (null when that
/// allocation fails). A NUL byte in it (it can echo a model name) is shown as U+2400, as
/// in [`super::scalar`].
fn sqlite_string(text: &str) -> *mut c_char {
    let text = text.replace('\0', "\u{2400}");
    let Ok(size) = u64::try_from(text.len() + 1) else {
        return std::ptr::null_mut();
    };
    // SAFETY: a plain allocation of `size` bytes; null on failure.
    let p = unsafe { ffi::sqlite3_malloc64(size) }.cast::<u8>();
    if !p.is_null() {
        // SAFETY: `p` holds `text.len() + 1` bytes, not overlapping `text`.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), p, text.len());
            *p.add(text.len()) = 0;
        }
    }
    p.cast::<c_char>()
}

// xConnect: once per connection and schema (eponymous); keeps the connection's state.
unsafe extern "C" fn connect<F: TableFunction>(
    db: *mut ffi::sqlite3,
    aux: *mut c_void,
    _argc: c_int,
    _argv: *const *const c_char,
    pp_vtab: *mut *mut ffi::sqlite3_vtab,
    pz_err: *mut *mut c_char,
) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<()> {
        // SAFETY: `db` is the connection SQLite is connecting the table on; the schema
        // text is a NUL-terminated 'static string.
        let rc = unsafe { ffi::sqlite3_declare_vtab(db, F::CREATE_SQL.as_ptr()) };
        if rc != ffi::SQLITE_OK {
            return Err(Error::Sqlite(rusqlite::Error::SqliteFailure(
                ffi::Error::new(rc),
                None,
            )));
        }
        // SAFETY: as above; INNOCUOUS takes no further argument.
        unsafe { ffi::sqlite3_vtab_config(db, ffi::SQLITE_VTAB_INNOCUOUS) };
        // SAFETY: SQLite disconnects the table before closing the connection, and
        // `from_handle` does not take ownership of the handle.
        let conn = unsafe { Connection::from_handle(db)? };
        // SAFETY: `aux` is the `Arc<ConnectionState>` box `register` passed as the
        // module's client data, alive until `drop_state` (after every table is gone).
        let state = unsafe { (*aux.cast::<Arc<ConnectionState>>()).clone() };
        let table = Box::new(Table::<F> {
            base: ffi::sqlite3_vtab {
                pModule: std::ptr::null(),
                nRef: 0,
                zErrMsg: std::ptr::null_mut(),
            },
            conn,
            state,
            function: PhantomData,
        });
        // SAFETY: `pp_vtab` is SQLite's out-pointer; ownership of the box passes to
        // SQLite, which gives it back once to `disconnect::<F>`.
        unsafe { *pp_vtab = Box::into_raw(table).cast::<ffi::sqlite3_vtab>() };
        Ok(())
    }));
    match outcome {
        Ok(Ok(())) => ffi::SQLITE_OK,
        Ok(Err(error)) => {
            // SAFETY: `pz_err` is SQLite's out-pointer for a string from its allocator.
            unsafe { *pz_err = sqlite_string(&error.to_string()) };
            error.code().map_or(ffi::SQLITE_ERROR, |c| c.extended_code)
        }
        Err(_) => ffi::SQLITE_ERROR,
    }
}

unsafe extern "C" fn disconnect<F: TableFunction>(vtab: *mut ffi::sqlite3_vtab) -> c_int {
    // SAFETY: `vtab` is the box `connect::<F>` made, passed back exactly once.
    let table = unsafe { Box::from_raw(vtab.cast::<Table<F>>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(table)));
    ffi::SQLITE_OK
}

/// What `xBestIndex` decided, from the constraints SQLite offers.
struct Plan {
    /// Per argument column: the constraint that gives it.
    arguments: Vec<Option<usize>>,
    /// The allow-lists' constraints, and whether each is a whole `IN` list.
    allow: Vec<(usize, bool)>,
}

// xBestIndex: every equality on an argument column becomes a filter argument, in column
// order; an unusable one makes this plan impossible (SQLITE_CONSTRAINT), so SQLite picks
// a join order that supplies it. An `item_id` allow-list (see the module comment) comes
// after the arguments, and makes the plan cheaper, so that SQLite prefers it to the plan
// that filters afterwards.
unsafe extern "C" fn best_index<F: TableFunction>(
    vtab: *mut ffi::sqlite3_vtab,
    info: *mut ffi::sqlite3_index_info,
) -> c_int {
    let mut impossible = false;
    let rc = run::<F>(vtab, || {
        // SAFETY: `info` is the index info of this call: `nConstraint` entries in
        // `aConstraint` and in `aConstraintUsage`, which we alone write until we return.
        let (constraints, usage) = unsafe {
            let n = usize::try_from((*info).nConstraint).unwrap_or(0);
            if n == 0 {
                (&[][..], &mut [][..])
            } else {
                (
                    std::slice::from_raw_parts((*info).aConstraint, n),
                    std::slice::from_raw_parts_mut((*info).aConstraintUsage, n),
                )
            }
        };
        let mut plan = Plan {
            arguments: vec![None; F::ARGUMENTS.len()],
            allow: Vec::new(),
        };
        let in_api = in_list::api();
        for (i, c) in constraints.iter().enumerate() {
            if c_int::from(c.op) != ffi::SQLITE_INDEX_CONSTRAINT_EQ {
                continue;
            }
            if F::ALLOW_LIST
                && c.iColumn == 0
                && c.usable != 0
                && plan.allow.len() < MAX_ALLOW_LISTS
            {
                if let (Some(api), Ok(index)) = (in_api, c_int::try_from(i)) {
                    // SAFETY: `info` and constraint `index` of this xBestIndex call.
                    let (is_in, known) =
                        unsafe { (api.is_in(info, index), api.has_known_value(info, index)) };
                    if is_in {
                        // SAFETY: as above.
                        if unsafe { api.take_whole_list(info, index) } {
                            plan.allow.push((i, true));
                        }
                    } else if known {
                        plan.allow.push((i, false));
                    }
                }
                continue;
            }
            let Ok(column) = usize::try_from(c.iColumn - OUTPUT_COLUMNS) else {
                continue;
            };
            if column >= F::ARGUMENTS.len() {
                continue;
            }
            if c.usable == 0 {
                impossible = true;
                return Ok(());
            }
            plan.arguments[column] = Some(i);
        }
        let mut idx_num = 0;
        let mut argv = 1;
        let mut take = |i: usize| {
            usage[i].argvIndex = argv;
            usage[i].omit = 1;
            argv += 1;
        };
        for (column, constraint) in plan.arguments.iter().enumerate() {
            if let Some(i) = *constraint {
                take(i);
                idx_num |= 1 << column;
            }
        }
        for (j, &(i, whole)) in plan.allow.iter().enumerate() {
            take(i);
            if whole {
                idx_num |= whole_list_bit(j);
            }
        }
        // At most MAX_ALLOW_LISTS: fits the 4 bits.
        idx_num |= c_int::try_from(plan.allow.len()).unwrap_or(0) << ALLOW_COUNT_SHIFT;
        let complete = plan.arguments[..F::REQUIRED].iter().all(Option::is_some);
        let cost = match (complete, !plan.allow.is_empty()) {
            (true, true) => 5.0,
            (true, false) => 10.0,
            (false, _) => 1e12,
        };
        // SAFETY: `info` as above; these are our outputs.
        unsafe {
            (*info).idxNum = idx_num;
            (*info).estimatedCost = cost;
            (*info).estimatedRows = 10;
        }
        Ok(())
    });
    if impossible {
        ffi::SQLITE_CONSTRAINT
    } else {
        rc
    }
}

unsafe extern "C" fn open<F: TableFunction>(
    _vtab: *mut ffi::sqlite3_vtab,
    pp_cursor: *mut *mut ffi::sqlite3_vtab_cursor,
) -> c_int {
    let cursor = Box::new(Cursor::<F> {
        base: ffi::sqlite3_vtab_cursor {
            pVtab: std::ptr::null_mut(),
        },
        rows: Vec::new(),
        args: Vec::new(),
        at: 0,
        function: PhantomData,
    });
    // SAFETY: `pp_cursor` is SQLite's out-pointer; the box passes to SQLite, which gives
    // it back once to `close::<F>` (and sets `pVtab` itself).
    unsafe { *pp_cursor = Box::into_raw(cursor).cast::<ffi::sqlite3_vtab_cursor>() };
    ffi::SQLITE_OK
}

unsafe extern "C" fn close<F: TableFunction>(cursor: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: `cursor` is the box `open::<F>` made, passed back exactly once.
    let cursor = unsafe { Box::from_raw(cursor.cast::<Cursor<F>>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(cursor)));
    ffi::SQLITE_OK
}

// xFilter: runs the whole call; rows are then read from memory.
unsafe extern "C" fn filter<F: TableFunction>(
    cursor: *mut ffi::sqlite3_vtab_cursor,
    idx_num: c_int,
    _idx_str: *const c_char,
    n_values: c_int,
    raw_values: *mut *mut ffi::sqlite3_value,
) -> c_int {
    // SAFETY: `cursor` is a live cursor of ours (`open::<F>`), whose `pVtab` SQLite set to
    // its table, a `Table<F>` (`connect::<F>`), alive while the cursor is.
    let vtab = unsafe { (*cursor).pVtab };
    // SAFETY: as above; the only reference to the cursor during this call.
    let cursor = unsafe { &mut *cursor.cast::<Cursor<F>>() };
    run::<F>(vtab, || {
        // SAFETY: as above.
        let table = unsafe { &*vtab.cast::<Table<F>>() };
        let values: &[*mut ffi::sqlite3_value] = match usize::try_from(n_values) {
            // SAFETY: SQLite passes `n_values` values, alive for this call.
            Ok(n) if n > 0 && !raw_values.is_null() => unsafe {
                std::slice::from_raw_parts(raw_values, n)
            },
            _ => &[],
        };
        let mut given = values.iter();
        let mut args: Vec<Option<ValueRef<'_>>> = Vec::with_capacity(F::ARGUMENTS.len());
        for c in 0..F::ARGUMENTS.len() {
            let value = if idx_num & (1 << c) == 0 {
                None
            } else {
                given.next()
            };
            args.push(match value {
                // SAFETY: an argument value of this call, alive until it returns, which
                // `args` does not outlive.
                Some(&v) => Some(unsafe { value_ref(v)? }),
                None => None,
            });
        }
        // Every allow-list, intersected: the items all of them list.
        let lists = usize::try_from((idx_num >> ALLOW_COUNT_SHIFT) & 0xf).unwrap_or(0);
        let first = (0..F::ARGUMENTS.len())
            .filter(|&c| idx_num & (1 << c) != 0)
            .count();
        let mut allow: Option<Vec<i64>> = None;
        for j in 0..lists.min(MAX_ALLOW_LISTS) {
            let list = values
                .get(first + j)
                .copied()
                .ok_or_else(|| Error::Internal {
                    who: F::NAME.to_string(),
                    detail: "an allow-list argument is missing".to_string(),
                })?;
            let whole = idx_num & whole_list_bit(j) != 0;
            let ids = allow_list(F::NAME, list, whole)?;
            allow = Some(match allow {
                None => ids,
                Some(kept) => kept
                    .into_iter()
                    .filter(|id| ids.binary_search(id).is_ok())
                    .collect(),
            });
        }
        if let Some(missing) = args[..F::REQUIRED].iter().position(Option::is_none) {
            return Err(missing_argument::<F>(missing));
        }
        cursor.args = args
            .iter()
            .map(|a| {
                a.and_then(|v| Value::try_from(v).ok())
                    .unwrap_or(Value::Null)
            })
            .collect();
        cursor.rows = F::rows(&table.conn, &table.state, &args, allow.as_deref())?;
        cursor.at = 0;
        Ok(())
    })
}

/// The item ids of the allow-list argument `list` (a whole `IN` list, or one value),
/// sorted and distinct. Values that are not integer ids cannot equal an `item_id` and
/// are dropped, as SQL's `IN` would.
fn allow_list(who: &str, list: *mut ffi::sqlite3_value, whole: bool) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    let mut failed = None;
    let mut add = |value: *mut ffi::sqlite3_value| {
        // SAFETY: a value SQLite handed to this xFilter call, valid while we read it.
        match unsafe { value_ref(value) } {
            Ok(v) => ids.extend(integer_value(v)),
            Err(e) => failed = Some(e),
        }
    };
    if whole {
        let api = in_list::api().ok_or_else(|| Error::Internal {
            who: who.to_string(),
            detail: "an IN list without sqlite3_vtab_in".to_string(),
        })?;
        // SAFETY: `list` is the xFilter argument of a constraint xBestIndex took as a
        // whole list (its bit is set only then), during this xFilter call.
        unsafe { api.for_each(list, &mut add) }.map_err(|rc| {
            Error::Sqlite(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None))
        })?;
    } else {
        add(list);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn missing_argument<F: TableFunction>(missing: usize) -> Error {
    Error::MissingArgument {
        who: F::NAME,
        argument: F::ARGUMENTS[missing],
        usage: format!(
            "{}({}{})",
            F::NAME,
            F::ARGUMENTS[..F::REQUIRED].join(", "),
            F::ARGUMENTS[F::REQUIRED..]
                .iter()
                .fold(String::new(), |mut s, a| {
                    let _ = write!(s, " [, {a}]");
                    s
                })
        ),
    }
}

unsafe extern "C" fn next<F: TableFunction>(cursor: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: a live cursor of ours (`open::<F>`).
    let cursor = unsafe { &mut *cursor.cast::<Cursor<F>>() };
    cursor.at += 1;
    ffi::SQLITE_OK
}

unsafe extern "C" fn eof<F: TableFunction>(cursor: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: a live cursor of ours (`open::<F>`).
    let cursor = unsafe { &*cursor.cast::<Cursor<F>>() };
    c_int::from(cursor.at >= cursor.rows.len())
}

// xColumn: id, score (NULL for an explored row), rank (1 = best), then the arguments.
unsafe extern "C" fn column<F: TableFunction>(
    cursor: *mut ffi::sqlite3_vtab_cursor,
    ctx: *mut ffi::sqlite3_context,
    i: c_int,
) -> c_int {
    // SAFETY: a live cursor of ours (`open::<F>`); SQLite reads columns only before eof.
    let cursor = unsafe { &*cursor.cast::<Cursor<F>>() };
    let Some(&(id, score)) = cursor.rows.get(cursor.at) else {
        // SAFETY: `ctx` is the live context of this call.
        unsafe { ffi::sqlite3_result_null(ctx) };
        return ffi::SQLITE_OK;
    };
    // SAFETY: `ctx` is the live context of this call; text and blob bytes are copied by
    // SQLite (SQLITE_TRANSIENT) before it returns.
    unsafe {
        match i {
            0 => ffi::sqlite3_result_int64(ctx, id),
            1 if score.is_nan() => ffi::sqlite3_result_null(ctx),
            1 => ffi::sqlite3_result_double(ctx, f64::from(score)),
            2 => ffi::sqlite3_result_int64(ctx, rank(cursor.at)),
            _ => match usize::try_from(i - OUTPUT_COLUMNS)
                .ok()
                .and_then(|j| cursor.args.get(j))
            {
                Some(Value::Integer(v)) => ffi::sqlite3_result_int64(ctx, *v),
                Some(Value::Real(v)) => ffi::sqlite3_result_double(ctx, *v),
                Some(Value::Text(t)) => match c_int::try_from(t.len()) {
                    Ok(n) => {
                        ffi::sqlite3_result_text(
                            ctx,
                            t.as_ptr().cast(),
                            n,
                            ffi::SQLITE_TRANSIENT(),
                        );
                    }
                    Err(_) => ffi::sqlite3_result_error_toobig(ctx),
                },
                Some(Value::Blob(b)) => match c_int::try_from(b.len()) {
                    Ok(n) => {
                        ffi::sqlite3_result_blob(
                            ctx,
                            b.as_ptr().cast(),
                            n,
                            ffi::SQLITE_TRANSIENT(),
                        );
                    }
                    Err(_) => ffi::sqlite3_result_error_toobig(ctx),
                },
                Some(Value::Null) | None => ffi::sqlite3_result_null(ctx),
            },
        }
    }
    ffi::SQLITE_OK
}

/// The 1-based rank of row `at` (at most k <= 10,000 rows, or an allow-list's size).
fn rank(at: usize) -> i64 {
    i64::try_from(at).map_or(i64::MAX, |at| at + 1)
}

unsafe extern "C" fn rowid<F: TableFunction>(
    cursor: *mut ffi::sqlite3_vtab_cursor,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: a live cursor of ours (`open::<F>`); `out` is SQLite's out-pointer.
    unsafe { *out = rank((*cursor.cast::<Cursor<F>>()).at) };
    ffi::SQLITE_OK
}
