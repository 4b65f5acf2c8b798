//! Helpers shared by the integration tests and the example: open a connection with
//! the built extension loaded.

use std::path::PathBuf;

use rusqlite::{Connection, Result};

/// Path of the built extension (without the `.so` suffix, as `.load` takes it).
/// `FORYOU_EXT` overrides it; the Makefile sets it.
#[must_use]
pub fn extension_path() -> PathBuf {
    match std::env::var_os("FORYOU_EXT") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/libforyou"),
    }
}

/// Loads the extension into an open connection.
///
/// # Errors
/// When SQLite cannot load it (not built yet: `make loadable`).
pub fn load(conn: &Connection) -> Result<()> {
    // SAFETY: we load our own extension, built by this repository.
    unsafe {
        conn.load_extension_enable()?;
        let loaded = conn.load_extension(extension_path(), None::<&str>);
        conn.load_extension_disable()?;
        loaded
    }
}

/// An in-memory database with the extension loaded.
///
/// # Panics
/// When the database cannot be opened or the extension loaded.
#[must_use]
pub fn memory() -> Connection {
    let conn = Connection::open_in_memory().expect("open in-memory database");
    load(&conn).expect("load the foryou extension (run `make loadable` first)");
    conn
}

/// A database file with the extension loaded.
///
/// # Panics
/// When the database cannot be opened or the extension loaded.
#[must_use]
pub fn open(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).expect("open database file");
    load(&conn).expect("load the foryou extension (run `make loadable` first)");
    conn
}

/// A file of the shared real-data folder (`../shared/data` beside the repository, or
/// `$FORYOU_DATA`). None, with a note on stderr, when it is absent outside CI; under CI
/// (`CI` set) its absence is a failure, so a test that needs it cannot pass by skipping.
///
/// # Panics
/// Under CI, when the file is missing.
#[must_use]
pub fn shared_data(relative: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("FORYOU_DATA") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    };
    let path = root.join(relative);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing (set FORYOU_DATA to the shared data folder)",
        path.display()
    );
    eprintln!(
        "skipped: {} is missing (set FORYOU_DATA to the shared data folder)",
        path.display()
    );
    None
}
