//! Test-only hooks (cargo feature `test-hooks`, never in the release `.so`): the code
//! paths that no SQL input reaches, reached on purpose.
//!
//! `foryou_test_hook(what [, n [, who]])`, a hidden SQL function of the hooks build only
//! (`make hooks-loadable`, `target/hooks/libforyou.so`), arms one hook for the calling
//! thread (SQLite runs every callback on the thread that steps the statement, so tests
//! running in parallel threads do not see each other's hooks) and returns `'armed'`:
//!
//! - `'diverge', n`: the next `n` fits (refits, automatic refits included) end as if a
//!   factor row had become NaN: the refit fails with the diverged-model error, as the
//!   model's own check reports it.
//! - `'panic', n, who`: the `n`-th guarded callback of `who` from now (`foryou` for the
//!   table's callbacks, `recommend`, `similar_items`, `foryou_refit`, `foryou_evaluate`)
//!   panics inside the panic guard.
//! - `'off'`: disarms both.

use std::cell::{Cell, RefCell};

use rusqlite::functions::Context;
use rusqlite::types::ValueRef;

use crate::model::als::ModelError;

thread_local! {
    static DIVERGE: Cell<u64> = const { Cell::new(0) };
    static PANIC: RefCell<Option<(String, u64)>> = const { RefCell::new(None) };
}

/// The SQL function `foryou_test_hook`.
pub fn foryou_test_hook(ctx: &Context<'_>) -> rusqlite::Result<&'static str> {
    let text = |i: usize| match ctx.get_raw(i) {
        ValueRef::Text(t) => Ok(String::from_utf8_lossy(t).into_owned()),
        _ => Err(rusqlite::Error::UserFunctionError(
            format!("foryou_test_hook: argument {} must be text", i + 1).into(),
        )),
    };
    let count = |i: usize| match ctx.get_raw(i) {
        ValueRef::Integer(n) if n >= 1 => Ok(n.cast_unsigned()),
        _ => Err(rusqlite::Error::UserFunctionError(
            format!(
                "foryou_test_hook: argument {} must be an integer >= 1",
                i + 1
            )
            .into(),
        )),
    };
    match (text(0)?.as_str(), ctx.len()) {
        ("diverge", 2) => {
            let n = count(1)?;
            DIVERGE.with(|d| d.set(n));
        }
        ("panic", 3) => {
            let armed = (text(2)?, count(1)?);
            PANIC.with(|p| *p.borrow_mut() = Some(armed));
        }
        ("off", 1) => {
            DIVERGE.with(|d| d.set(0));
            PANIC.with(|p| *p.borrow_mut() = None);
        }
        _ => {
            return Err(rusqlite::Error::UserFunctionError(
                "foryou_test_hook: expects ('diverge', n), ('panic', n, who) or ('off')".into(),
            ))
        }
    }
    Ok("armed")
}

/// A fit's result, replaced by the diverged-model error while `'diverge'` is armed.
pub fn diverge<T>(fitted: Result<T, ModelError>) -> Result<T, ModelError> {
    let armed = DIVERGE.with(|d| {
        let n = d.get();
        d.set(n.saturating_sub(1));
        n > 0
    });
    if armed && fitted.is_ok() {
        return Err(ModelError::NonFinite {
            side: "user",
            row: 0,
        });
    }
    fitted
}

/// Panics when this is the armed callback of `who` (called inside the panic guards).
pub fn maybe_panic(who: &str) {
    let fire = PANIC.with(|p| {
        let mut p = p.borrow_mut();
        match p.as_mut() {
            Some((name, n)) if name == who => {
                *n -= 1;
                if *n == 0 {
                    *p = None;
                    return true;
                }
                false
            }
            _ => false,
        }
    });
    assert!(!fire, "test hook: a panic in {who}");
}
