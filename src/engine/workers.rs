//! Worker threads that never outlive the call that started them.
//!
//! A loadable extension's code is unmapped when the last connection that loaded it
//! closes (`sqlite3_close` calls `dlclose`). rayon's `ThreadPool` lets its threads wind
//! down on their own after the pool is dropped, so a worker still running, even only
//! exiting, can then execute unmapped memory and crash the host process; an idle thread
//! of rayon's global pool is the same hazard. So every pool here is built with
//! `build_scoped`, whose threads are spawned in a `std::thread::scope` and joined before
//! it returns, and nothing uses the global pool (plain scoped threads elsewhere).

use crate::model::als::Control;
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

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

/// How often the calling thread looks for a reason to stop while the pool works.
pub const POLL: Duration = Duration::from_millis(10);

/// Runs `job` on `pool` while the calling thread (which stays out of the pool, so it
/// can use what only it may touch, such as the connection) calls `check` every
/// [`POLL`]. Once `check` returns `Some`, `stop` is raised and `check` is not called
/// again; `job` is expected to notice `stop` and return soon. Returns what `job`
/// returned and what `check` returned, if it did. A panic of `job` is raised again here
/// once it has unwound.
pub fn watched<R: Send, S>(
    pool: &ThreadPool,
    stop: &Control,
    job: impl FnOnce() -> R + Send,
    mut check: impl FnMut() -> Option<S>,
) -> (Option<R>, Option<S>) {
    let (done, result) = channel();
    pool.in_place_scope(|scope| {
        scope.spawn(move |_| {
            // The receiver lives until the scope ends: the send cannot fail.
            let _ = done.send(job());
        });
        let mut reason = None;
        loop {
            match result.recv_timeout(POLL) {
                Ok(value) => return (Some(value), reason),
                // The job panicked; the scope raises its panic when this returns.
                Err(RecvTimeoutError::Disconnected) => return (None, reason),
                Err(RecvTimeoutError::Timeout) => {
                    if reason.is_none() {
                        reason = check();
                        if reason.is_some() {
                            stop.raise();
                        }
                    }
                }
            }
        }
    })
}
