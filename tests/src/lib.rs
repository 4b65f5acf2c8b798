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
/// `$FORYOU_DATA`). Under CI (`CI` set) its absence is a failure, so a test that needs it
/// cannot pass by skipping. Elsewhere None, and the skip is recorded where it cannot be
/// missed: a line on stderr, and one in `$FORYOU_SKIPPED` (a file the Makefile names and
/// prints at the end of `make test`; cargo shows no stderr of a passing test).
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
    skipped(&format!(
        "{} is missing (set FORYOU_DATA to the shared data folder)",
        path.display()
    ));
    None
}

/// Records that a test skipped a check: on stderr, and as a line of `$FORYOU_SKIPPED`
/// when it is set (`make test` prints that file's lines at its end).
///
/// # Panics
/// When `$FORYOU_SKIPPED` is set but cannot be appended to.
pub fn skipped(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    eprintln!("skipped: {test}: {why}");
    if let Some(log) = std::env::var_os("FORYOU_SKIPPED") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("cannot append to FORYOU_SKIPPED: {e}"));
        writeln!(file, "{} ({test}): {why}", env!("CARGO_PKG_NAME"))
            .unwrap_or_else(|e| panic!("cannot append to FORYOU_SKIPPED: {e}"));
    }
}
