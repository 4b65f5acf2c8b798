use std::ffi::{c_char, c_int};
use rusqlite::{ffi, Connection, Result};

fn init(db: Connection) -> Result<bool> {
    db.create_scalar_function("foryou_version", 0, rusqlite::functions::FunctionFlags::SQLITE_UTF8 | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC, |_| Ok(env!("CARGO_PKG_VERSION")))?;
    Ok(false)
}

/// # Safety
/// Called by SQLite.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_foryou_init(db: *mut ffi::sqlite3, pz_err_msg: *mut *mut c_char, p_api: *mut ffi::sqlite3_api_routines) -> c_int {
    Connection::extension_init2(db, pz_err_msg, p_api, init)
}
