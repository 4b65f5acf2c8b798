//! Worker threads that never outlive the call that started them.
//!
//! A loadable extension's code is unmapped when the last connection that loaded it
//! closes (`sqlite3_close` calls `dlclose`). rayon's `ThreadPool` lets its threads wind
//! down on their own after the pool is dropped, so a worker still running, even only
//! exiting, can then execute unmapped memory and crash the host process; an idle thread
//! of rayon's global pool is the same hazard. So every pool here is built with
//! `build_scoped`, whose threads are spawned in a `std::thread::scope` and joined before
//! it returns, and nothing uses the global pool (plain scoped threads elsewhere).

use rayon::{ThreadPool, ThreadPoolBuildError, ThreadPoolBuilder};

/// Runs `body` with a pool of `threads` workers (0: one per core); every worker has
/// exited when this returns.
pub fn with_pool<R>(
    threads: usize,
    body: impl FnOnce(&ThreadPool) -> R,
) -> Result<R, ThreadPoolBuildError> {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_scoped(rayon::ThreadBuilder::run, body)
}
