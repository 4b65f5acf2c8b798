//! The FFI boundary: no panic may unwind into SQLite.
//!
//! rusqlite's scalar-function trampolines already catch panics, and so does ours
//! ([`super::scalar`]); rusqlite's virtual-table trampolines do not. Every virtual-table method body in this crate therefore runs
//! inside [`guarded`], which turns a panic into an ordinary SQL error.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::Error;

/// Runs `body`, turning its error into a SQL error and a panic into an
/// [`Error::Internal`] that names `who`.
///
/// `AssertUnwindSafe` is sound here: after a panic the caller only reports an error;
/// no state observed half-updated by the panicking body is read again in a way that
/// could violate memory safety (all our state is plain owned Rust data, and the caches
/// behind mutexes are recovered from poisoning as they were last left, whole entries).
pub fn guarded<T>(who: &str, body: impl FnOnce() -> Result<T, Error>) -> rusqlite::Result<T> {
    match catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "test-hooks")]
        crate::hooks::maybe_panic(who);
        body()
    })) {
        Ok(result) => result.map_err(rusqlite::Error::from),
        Err(payload) => Err(Error::Internal {
            who: who.to_string(),
            detail: panic_detail(payload.as_ref()),
        }
        .into()),
    }
}

/// The message a panic was raised with.
pub fn panic_detail(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
