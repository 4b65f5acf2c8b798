//! The FFI boundary: no panic may unwind into SQLite.
//!
//! rusqlite's scalar-function trampolines already catch panics; its virtual-table
//! trampolines do not. Every virtual-table method body in this crate therefore runs
//! inside [`guarded`], which turns a panic into an ordinary SQL error.

use std::panic::{catch_unwind, AssertUnwindSafe};

use rusqlite::{Error, Result};

/// Runs `body`, turning a panic into an `Err` that names `what`.
///
/// `AssertUnwindSafe` is sound here: after a panic the caller only reports an error;
/// no state observed half-updated by the panicking body is read again in a way that
/// could violate memory safety (all our state is plain owned Rust data).
pub fn guarded<T>(what: &str, body: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(Error::ModuleError(format!(
                "{what}: internal error ({detail}); nothing was changed by this call"
            )))
        }
    }
}

/// A SQL error carrying `message` verbatim (for virtual tables and functions alike).
pub fn sql_error(message: impl Into<String>) -> Error {
    Error::ModuleError(message.into())
}
