//! `foryou_version()` and `foryou_debug()`: what is loaded, for bug reports.

use rusqlite::functions::Context;
use rusqlite::Result;

// The signature rusqlite's create_scalar_function takes.
#[allow(clippy::unnecessary_wraps)]
pub fn foryou_version(_: &Context<'_>) -> Result<&'static str> {
    Ok(env!("CARGO_PKG_VERSION"))
}

/// One `key: value` per line: extension version, SQLite version, SIMD level, the
/// catalogue scan's first pass, CPUs, storage format.
// The signature rusqlite's create_scalar_function takes.
#[allow(clippy::unnecessary_wraps)]
pub fn foryou_debug(_: &Context<'_>) -> Result<String> {
    let simd = crate::model::kernels::level().name();
    let scan = if crate::model::scan::vnni() {
        "int8"
    } else {
        "f32"
    };
    Ok(format!(
        "version: {}\nsqlite: {}\nsimd: {simd}\nscan: {scan}\ncpus: {}\nformat: {}",
        env!("CARGO_PKG_VERSION"),
        rusqlite::version(),
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        crate::store::FORMAT_VERSION,
    ))
}
