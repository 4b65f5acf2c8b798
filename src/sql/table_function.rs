//! The machinery shared by the table-valued functions `recommend(...)` and
//! `similar_items(...)`: eponymous virtual tables whose hidden columns are the call's
//! arguments and whose rows are ranked items (`item_id`, `score`, `rank`).

use std::borrow::Cow;
use std::ffi::{c_int, CStr};
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::Arc;

use rusqlite::types::{Value, ValueRef};
use rusqlite::vtab::{
    sqlite3_vtab, sqlite3_vtab_cursor, Context, Filters, IndexConstraintOp, IndexInfo, VTab,
    VTabConfig, VTabConnection, VTabCursor,
};
use rusqlite::{Connection, Result};

use super::guard::guarded;
use crate::engine::cache::ConnectionState;
use crate::error::Error;

/// Result columns before the hidden argument columns.
const OUTPUT_COLUMNS: c_int = 3;

/// One SQL table-valued function returning ranked items.
pub trait TableFunction: 'static {
    /// The SQL name, used in error messages.
    const NAME: &'static str;
    /// `item_id, score, rank` then one HIDDEN column per argument, in call order.
    const CREATE_SQL: &'static CStr;
    /// Argument names in call order; the first `REQUIRED` must be given.
    const ARGUMENTS: &'static [&'static str];
    const REQUIRED: usize;
    /// The ranked (item id, score) rows for one call; `args[i]` is None when absent.
    fn rows(
        conn: &Connection,
        state: &ConnectionState,
        args: &[Option<ValueRef<'_>>],
    ) -> crate::error::Result<Vec<(i64, f32)>>;
}

#[repr(C)]
pub struct FunctionTable<F: TableFunction> {
    /// Must come first: SQLite sees this struct as a `sqlite3_vtab`.
    base: sqlite3_vtab,
    /// Non-owning handle on the connection (never closed by us).
    conn: Connection,
    state: Arc<ConnectionState>,
    function: PhantomData<F>,
}

// SAFETY: `FunctionTable` is #[repr(C)] with `sqlite3_vtab` as its first field.
unsafe impl<'vtab, F: TableFunction> VTab<'vtab> for FunctionTable<F> {
    type Aux = Arc<ConnectionState>;
    type Cursor = RankedCursor<'vtab, F>;

    // xConnect: once per connection (eponymous); keeps the connection's shared state.
    fn connect(
        db: &mut VTabConnection,
        aux: Option<&Arc<ConnectionState>>,
        _: &[u8],
        _: &[u8],
        _: &[u8],
        _: &[&[u8]],
    ) -> Result<(Cow<'static, CStr>, Self)> {
        guarded(F::NAME, || {
            db.config(VTabConfig::Innocuous)?;
            // SAFETY: SQLite disconnects the table before closing the connection, and
            // `from_handle` does not take ownership of the handle.
            let conn = unsafe { Connection::from_handle(db.handle())? };
            let state = aux.cloned().unwrap_or_default();
            Ok((
                Cow::Borrowed(F::CREATE_SQL),
                FunctionTable {
                    base: sqlite3_vtab::default(),
                    conn,
                    state,
                    function: PhantomData,
                },
            ))
        })
    }

    // xBestIndex: every equality on an argument column becomes a filter argument, in
    // column order; an unusable one makes this plan impossible (SQLITE_CONSTRAINT), so
    // SQLite picks a join order that supplies it.
    fn best_index(&self, info: &mut IndexInfo) -> Result<bool> {
        guarded(F::NAME, || {
            let mut at: Vec<Option<usize>> = vec![None; F::ARGUMENTS.len()];
            for (i, c) in info.constraints().enumerate() {
                let Ok(column) = usize::try_from(c.column() - OUTPUT_COLUMNS) else {
                    continue;
                };
                if c.operator() != IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ {
                    continue;
                }
                if !c.is_usable() {
                    return Ok(false);
                }
                at[column] = Some(i);
            }
            let mut idx_num = 0;
            let mut argv = 1;
            for (column, constraint) in at.iter().enumerate() {
                if let Some(i) = constraint {
                    let mut usage = info.constraint_usage(*i);
                    usage.set_argv_index(argv);
                    usage.set_omit(true);
                    argv += 1;
                    idx_num |= 1 << column;
                }
            }
            info.set_idx_num(idx_num);
            info.set_estimated_cost(if at[..F::REQUIRED].iter().all(Option::is_some) {
                10.0
            } else {
                1e12
            });
            info.set_estimated_rows(10);
            Ok(true)
        })
    }

    fn open(&'vtab mut self) -> Result<RankedCursor<'vtab, F>> {
        Ok(RankedCursor {
            base: sqlite3_vtab_cursor::default(),
            table: self,
            rows: Vec::new(),
            args: Vec::new(),
            at: 0,
        })
    }
}

#[repr(C)]
pub struct RankedCursor<'vtab, F: TableFunction> {
    /// Must come first: SQLite sees this struct as a `sqlite3_vtab_cursor`.
    base: sqlite3_vtab_cursor,
    table: &'vtab FunctionTable<F>,
    rows: Vec<(i64, f32)>,
    /// The call's arguments, returned by the hidden columns.
    args: Vec<Value>,
    at: usize,
}

// SAFETY: `RankedCursor` is #[repr(C)] with `sqlite3_vtab_cursor` as its first field.
unsafe impl<F: TableFunction> VTabCursor for RankedCursor<'_, F> {
    // xFilter: runs the whole call; rows are then read from memory.
    fn filter(&mut self, idx_num: c_int, _: Option<&str>, values: &Filters<'_>) -> Result<()> {
        guarded(F::NAME, || {
            let mut given = values.iter();
            let args: Vec<Option<ValueRef<'_>>> = (0..F::ARGUMENTS.len())
                .map(|c| {
                    if idx_num & (1 << c) != 0 {
                        given.next()
                    } else {
                        None
                    }
                })
                .collect();
            if let Some(missing) = args[..F::REQUIRED].iter().position(Option::is_none) {
                return Err(Error::MissingArgument {
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
                });
            }
            self.args = args
                .iter()
                .map(|a| {
                    a.and_then(|v| Value::try_from(v).ok())
                        .unwrap_or(Value::Null)
                })
                .collect();
            self.rows = F::rows(&self.table.conn, &self.table.state, &args)?;
            self.at = 0;
            Ok(())
        })
    }

    fn next(&mut self) -> Result<()> {
        self.at += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        self.at >= self.rows.len()
    }

    // xColumn: item_id, score, rank (1 = best), then the arguments.
    // Row positions: at most k <= 10,000 rows.
    #[allow(clippy::cast_possible_wrap)]
    fn column(&self, ctx: &mut Context, i: c_int) -> Result<()> {
        guarded(F::NAME, || {
            let (item, score) = self.rows[self.at];
            match i {
                0 => ctx.set_result(&item),
                1 => ctx.set_result(&f64::from(score)),
                2 => ctx.set_result(&(self.at as i64 + 1)),
                _ => ctx.set_result(
                    usize::try_from(i - OUTPUT_COLUMNS)
                        .ok()
                        .and_then(|j| self.args.get(j))
                        .unwrap_or(&Value::Null),
                ),
            }
            .map_err(Error::from)
        })
    }

    // Row positions: at most k <= 10,000 rows.
    #[allow(clippy::cast_possible_wrap)]
    fn rowid(&self) -> Result<i64> {
        Ok(self.at as i64 + 1)
    }
}
