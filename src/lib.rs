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
#[cfg(feature = "loadable")]
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

/// Registers foryou on every connection opened after this call, in an application that
/// links SQLite itself (a rusqlite with `bundled`, and foryou with
/// `default-features = false`): what `.load` does for one connection, through
/// `sqlite3_auto_extension`. Calling it again changes nothing.
///
/// # Errors
/// SQLite's, if it cannot add the entry point (out of memory).
#[cfg(not(feature = "loadable"))]
pub fn register_auto_extension() -> Result<()> {
    // SAFETY: `linked_init` has the signature of an extension entry point, and stays
    // valid for the life of the process (it is part of the application).
    let rc = unsafe { ffi::sqlite3_auto_extension(Some(linked_init)) };
    match rc {
        ffi::SQLITE_OK => Ok(()),
        rc => Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None)),
    }
}

/// Registers foryou on one connection already open, in an application that links SQLite
/// itself (see [`register_auto_extension`]).
///
/// # Errors
/// SQLite's, if a function or module cannot be registered.
#[cfg(not(feature = "loadable"))]
pub fn register_connection(conn: &Connection) -> Result<()> {
    // The whole-IN-list interfaces come from SQLite's API table, which SQLite hands only
    // to an entry point: open one connection with a probe for it, once.
    static PROBED: std::sync::Once = std::sync::Once::new();
    PROBED.call_once(|| {
        // SAFETY: `probe` is an entry point (only reads the table); the connection is
        // opened, closed and the probe removed before this returns.
        unsafe {
            ffi::sqlite3_auto_extension(Some(probe));
            let mut db = std::ptr::null_mut();
            ffi::sqlite3_open_v2(
                c":memory:".as_ptr(),
                &raw mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
                std::ptr::null(),
            );
            ffi::sqlite3_close(db);
            ffi::sqlite3_cancel_auto_extension(Some(probe));
        }
    });
    // SAFETY: the handle is valid while `conn` is; `from_handle` does not take ownership,
    // and SQLite drops what is registered when the connection closes.
    let db = unsafe { Connection::from_handle(conn.handle()) }?;
    register(db).map(drop)
}

/// The auto-extension entry point of [`register_auto_extension`].
#[cfg(not(feature = "loadable"))]
unsafe extern "C" fn linked_init(
    db: *mut ffi::sqlite3,
    _: *mut *mut c_char,
    p_api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: SQLite calls this with the connection it is opening and its own API table
    // (null in a build without extension loading).
    unsafe { in_list::load(p_api) };
    // No panic may reach SQLite: registration is plain calls, but allocation can fail.
    let registered = std::panic::catch_unwind(|| {
        // SAFETY: `db` is the connection being opened, valid during this call.
        let conn = unsafe { Connection::from_handle(db) }?;
        register(conn)
    });
    match registered {
        Ok(Ok(_)) => ffi::SQLITE_OK,
        Ok(Err(rusqlite::Error::SqliteFailure(e, _))) => e.extended_code,
        // Another error, or a panic.
        Ok(Err(_)) | Err(_) => ffi::SQLITE_ERROR,
    }
}

/// Only reads SQLite's API table (see [`register_connection`]).
#[cfg(not(feature = "loadable"))]
unsafe extern "C" fn probe(
    _: *mut ffi::sqlite3,
    _: *mut *mut c_char,
    p_api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: SQLite's own table, or null.
    unsafe { in_list::load(p_api) };
    ffi::SQLITE_OK
}
