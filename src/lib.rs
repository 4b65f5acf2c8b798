//! foryou: a SQLite extension that turns any database into a short-video ("For You"
//! feed) recommender. This file holds only the modules and their registration.
//!
//! Layers, data flowing one way (ARCHITECTURE.md is the map):
//! [`sql`] (the SQL objects: arguments, errors) → [`engine`] (refit, serving, caches,
//! options) → [`store`] (shadow tables: the only code that runs SQL) → [`model`] (pure
//! Rust on owned arrays). [`error`] is the error type of the three upper layers.

use std::ffi::{c_char, c_int};
use std::sync::Arc;

use rusqlite::functions::FunctionFlags;
use rusqlite::{ffi, Connection, Result};

mod engine;
mod error;
#[cfg(feature = "test-hooks")]
mod hooks;
mod model;
mod sql;
mod store;

use sql::{
    evaluate, foryou_table, in_list, info, recommend, refit, scalar, similar_items, similar_users,
    table_function, why_recommended,
};

/// Registers every SQL object on one connection.
// The signature Connection::extension_init2 takes.
#[allow(clippy::needless_pass_by_value)]
fn register(db: Connection) -> Result<bool> {
    let state = Arc::new(engine::cache::ConnectionState::default());
    foryou_table::register(&db)?;
    table_function::register::<recommend::Recommend>(&db, c"recommend", state.clone())?;
    table_function::register::<similar_items::SimilarItems>(&db, c"similar_items", state.clone())?;
    table_function::register::<similar_users::SimilarUsers>(&db, c"similar_users", state.clone())?;
    table_function::register::<why_recommended::WhyRecommended>(
        &db,
        c"why_recommended",
        state.clone(),
    )?;

    let pure = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    db.create_scalar_function("foryou_version", 0, pure, info::foryou_version)?;
    db.create_scalar_function(
        "foryou_debug",
        0,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_INNOCUOUS,
        info::foryou_debug,
    )?;
    // These two can fail with SQLite's own error (BUSY, READONLY, INTERRUPT...): our
    // trampoline keeps its code, rusqlite's would report SQLITE_ERROR.
    // Writes the database: never from a trigger or view (DIRECTONLY).
    let writes = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
    for n_args in 0..=2 {
        scalar::register(&db, c"foryou_refit", n_args, writes, refit::foryou_refit)?;
    }
    scalar::register(
        &db,
        c"foryou_evaluate",
        3,
        FunctionFlags::SQLITE_UTF8,
        move |ctx| evaluate::foryou_evaluate(ctx, &state),
    )?;
    // Only in the test-hooks build (target/hooks/), never in the release .so.
    #[cfg(feature = "test-hooks")]
    db.create_scalar_function(
        "foryou_test_hook",
        -1,
        FunctionFlags::SQLITE_UTF8,
        hooks::foryou_test_hook,
    )?;
    Ok(false)
}

/// The entry point SQLite derives from the file name `libforyou.so`.
///
/// # Safety
/// Called by SQLite's extension loader with a valid connection and API table.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_foryou_init(
    db: *mut ffi::sqlite3,
    pz_err_msg: *mut *mut c_char,
    p_api: *mut ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: the loader's pointers, passed on unchanged (see # Safety above).
    unsafe {
        in_list::load(p_api);
        Connection::extension_init2(db, pz_err_msg, p_api, register)
    }
}
