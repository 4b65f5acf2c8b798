//! The refit pipeline: learns user and item factors from every stored event and
//! replaces the stored model atomically.
//!
//! 1. Events are streamed from SQL on the calling thread (with one helper thread mapping
//!    ids as they come, see [`read_events`]) into a compact [`feedback::EventSink`] (16
//!    bytes per event, no column buffers).
//! 2. On a pool of `threads` workers that never touch SQLite ([`fit`]): aggregation into
//!    the interaction matrix; with `tune` on a full refit, the choice of `alpha`,
//!    `regularization` and its scaling on a hold-out split (`model::tune`); the ALS fit,
//!    from the seed (full) or from the stored model (incremental).
//! 3. The model and its report are written back on the calling thread inside one
//!    savepoint ([`crate::store::Shadow::atomically`]), which first takes the write lock:
//!    the version is read under it, so two refits at once store two versions.
//!
//! Cancelling: while the workers compute, the calling thread looks every few
//! milliseconds for an `sqlite3_interrupt` of the connection
//! ([`crate::store::interruption`]) and, on one, raises the stop flag the model reads
//! between and inside its sweeps: the refit ends with SQLite's INTERRUPT error soon
//! after, and the previous model is kept. A read-only database fails with READONLY
//! before any work.
//!
//! An incremental refit keeps the stored model's tuned values; a full refit chooses again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use serde_json::json;

use super::options::Options;
use super::workers;
use crate::error::{ContentProblem, Error, Result};
use crate::model::memory::{self, RefitShape};
use crate::model::{als, feedback, tune, AlsParams, Factors, FitReport, Interactions};
use crate::store::{self, ModelMeta, Shadow, StoredModel};

const WHO: &str = "foryou_refit";

/// Where the factors of a refit start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// From the seed; `iterations` sweeps.
    Full,
    /// From the stored model (new users and items from the seed);
    /// `incremental_iterations` sweeps. Without a stored model, a full refit.
    Incremental,
}

/// Runs one refit of `shadow` and stores the result; returns the JSON report. An error
/// of SQLite's (BUSY, READONLY, INTERRUPT, FULL...) keeps its code and is named:
/// `foryou_refit: cannot refit <table> (<SQLite's message>); the previous model is kept`.
pub fn refit(
    conn: &Connection,
    shadow: &Shadow,
    options: &Options,
    mode: Mode,
    progress: Progress,
) -> Result<String> {
    refit_unnamed(conn, shadow, options, mode, progress).map_err(|e| match e {
        Error::Sqlite(source @ rusqlite::Error::SqliteFailure(..)) => Error::SqliteWhile {
            context: format!("{WHO}: cannot refit {}", shadow.table),
            source,
            hint: "; the previous model is kept",
        },
        other => other,
    })
}

fn refit_unnamed(
    conn: &Connection,
    shadow: &Shadow,
    options: &Options,
    mode: Mode,
    progress: Progress,
) -> Result<String> {
    let started = Instant::now();
    shadow.check_writable(conn)?;
    super::cache::check_content_options(shadow, options)?;
    let feedback_params = options.feedback();
    // Size the buffers once (the rowid span bounds the count; capped, so that a few
    // huge explicit rowids cannot make it reserve a lot: beyond 2^24 events the
    // buffers grow as they fill).
    let hint = usize::try_from(shadow.event_id_span(conn)?.min(1 << 24)).unwrap_or(1 << 24);
    let limit = store::heap_limit();
    let (sink, streamed) = read_events(conn, shadow, &feedback_params, hint, limit)?;
    let (event_count, last_id) = (streamed.events, streamed.last_id);
    if sink.is_empty() {
        return Err(match (shadow.content(), streamed.skipped.first) {
            (Some(content), Some(first)) => Error::Content {
                table: shadow.table.clone(),
                content: content.name.clone(),
                problem: ContentProblem::NoValidRows {
                    rows: streamed.skipped.rows,
                    first,
                },
            },
            _ => Error::NoEvents {
                who: WHO,
                table: shadow.table.clone(),
            },
        });
    }
    let previous = match mode {
        Mode::Incremental => shadow.read_model(conn)?,
        Mode::Full => None,
    };
    let options = options_for_fit(&shadow.table, options, previous.as_ref())?;
    check_memory(&sink, event_count, &options, previous.as_ref(), limit)?;
    let newest = sink.newest_ts();
    let mut reporter = Reporter::new(progress, &shadow.table, started);
    reporter.started_fit(event_count, &options, previous.is_some());
    let fitted = fit(conn, sink, &options, previous.as_ref(), &mut reporter)?;
    let Fitted {
        feedback: fb,
        users,
        items,
        fit_report,
        tuned,
        threads,
        options,
    } = fitted;

    let mode = if previous.is_some() {
        Mode::Incremental
    } else {
        Mode::Full
    };
    Shadow::atomically(conn, |within| {
        // The version is read under the write lock: a refit of another connection
        // that ends at the same moment waits for this one, and then counts it.
        shadow.lock_for_write(conn)?;
        // Damaged model rows do not stop the full refit that rewrites them.
        let previous_meta = match shadow.model_meta(conn) {
            Err(Error::Damaged { .. }) if mode == Mode::Full => None,
            other => other?,
        };
        let version = previous_meta.map_or(0, |m| m.version) + 1;
        let report = Report {
            shadow,
            mode,
            version,
            feedback: &fb,
            events: event_count,
            invalid: &streamed.skipped,
            options: &options,
            fit: &fit_report,
            tuned: tuned.as_ref(),
            threads,
            seconds: started.elapsed().as_secs_f64(),
        }
        .to_json();
        let (user_ids, users, user_digests) =
            users_with_taste(&fb.data, fb.user_ids, users, fb.user_digests)?;
        let stored = StoredModel {
            user_ids,
            users,
            user_digests,
            item_ids: fb.item_ids,
            items,
            popularity: fb.popularity,
            meta: ModelMeta {
                version,
                tag: new_tag(version),
                events_upto: last_id,
                report: report.clone(),
                newest_ts: newest,
                options: options.training_json(),
            },
        };
        shadow.write_model(conn, &stored, within)?;
        Ok((report, version))
    })
    .map(|(report, version)| {
        reporter.stored(version);
        report
    })
}

/// The fit's parameters from the options (an incremental fit's sweeps are its own).
fn als_params(options: &Options, incremental: bool) -> AlsParams {
    #[allow(clippy::cast_possible_truncation)] // validated: 0 <= regularization <= 1e6
    AlsParams {
        factors: options.factors,
        iterations: if incremental {
            options.incremental_iterations
        } else {
            options.iterations
        },
        regularization: options.regularization as f32,
        regularization_scaling: options.regularization_scaling,
        cg_steps: options.cg_steps,
        seed: options.seed,
    }
}

/// Whether a refit reports its progress: `{"progress": true}` in `options_json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Quiet,
    /// One line on standard error when the fit starts, at most one a second while it
    /// sweeps, and one when the model is stored (for the shell, and for logs).
    Stderr,
}

/// Prints a refit's progress lines when asked to ([`Progress::Stderr`]); on the calling
/// thread only, from what the fit's [`als::Control`] counts.
struct Reporter<'a> {
    progress: Progress,
    table: &'a str,
    started: Instant,
    /// Sweeps the whole refit will run, when known (not while tuning chooses).
    planned: Option<u64>,
    last: (u64, Instant),
}

impl<'a> Reporter<'a> {
    fn new(progress: Progress, table: &'a str, started: Instant) -> Self {
        Reporter {
            progress,
            table,
            started,
            planned: None,
            last: (0, started),
        }
    }

    fn line(&self, text: &str) {
        if self.progress == Progress::Stderr {
            eprintln!(
                "foryou_refit {}: {text} ({:.1} s)",
                self.table,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    fn started_fit(&mut self, events: usize, options: &Options, incremental: bool) {
        let tuning = options.tune && !incremental;
        let sweeps = if incremental {
            options.incremental_iterations
        } else {
            options.iterations
        };
        self.planned = (!tuning).then(|| u64::try_from(sweeps).unwrap_or(u64::MAX));
        self.line(&format!(
            "{events} events read; {} {sweeps} sweeps of {} factors",
            match (incremental, tuning) {
                (true, _) => "an incremental fit,",
                (false, true) => "tuning alpha and regularization, then",
                (false, false) => "a full fit,",
            },
            options.factors
        ));
    }

    /// Called every few milliseconds while the fit runs.
    fn sweeps(&mut self, done: u64) {
        if self.progress == Progress::Quiet || done == self.last.0 {
            return;
        }
        if self.last.1.elapsed().as_secs_f64() < 1.0 && self.planned != Some(done) {
            return;
        }
        self.last = (done, Instant::now());
        match self.planned {
            Some(total) => self.line(&format!("sweep {done} of {total}")),
            None => self.line(&format!("sweep {done} (tuning's included)")),
        }
    }

    fn stored(&self, version: i64) {
        self.line(&format!("model version {version} stored"));
    }
}

/// What one table handle keeps for the `auto_refit = N` option between its checks.
///
/// Every N-th event inserted through the handle checks whether N events arrived since
/// the last refit and, if so, runs an incremental refit within that INSERT. Events
/// "since the last refit" are those with a rowid above the refit's last one, plus those
/// this handle inserted below it (explicit rowids, or the random rowids SQLite hands out
/// once rowid 9223372036854775807 is taken), which a rowid range cannot find.
#[derive(Debug, Default)]
pub struct AutoRefit {
    /// Inserts since the last check.
    inserted: u64,
    /// The stored model's last rowid (`events_upto`) as last read; None before.
    upto: Option<i64>,
    /// Inserts since the last refit with a rowid not above `upto`.
    late: u64,
}

impl AutoRefit {
    /// Called after each INSERT of an event at `rowid` when `options.auto_refit > 0`.
    ///
    /// A model that fails to converge, or a refit refused for want of memory, keeps the
    /// previous model and the INSERT succeeds (the next check tries again); every other
    /// error, damaged storage and SQLite's own included, fails the INSERT.
    pub fn inserted(
        &mut self,
        conn: &Connection,
        shadow: &Shadow,
        options: &Options,
        rowid: i64,
    ) -> Result<()> {
        let upto = match self.upto {
            Some(upto) => upto,
            None => *self
                .upto
                .insert(shadow.model_meta(conn)?.map_or(0, |m| m.events_upto)),
        };
        if rowid <= upto {
            self.late += 1;
        }
        self.inserted += 1;
        if self.inserted < options.auto_refit {
            return Ok(());
        }
        self.inserted = 0;
        let meta = shadow.model_meta(conn)?;
        let upto = meta.as_ref().map_or(0, |m| m.events_upto);
        self.upto = Some(upto);
        let arrived =
            shadow.count_events_after(conn, upto)? + i64::try_from(self.late).unwrap_or(i64::MAX);
        if arrived < i64::try_from(options.auto_refit).unwrap_or(i64::MAX) {
            return Ok(());
        }
        let mut options = options.clone();
        if let Some(meta) = &meta {
            // A model refitted by hand with another `factors` keeps it.
            options.factors = stored_options(&shadow.table, meta)?.factors;
        }
        match refit(conn, shadow, &options, Mode::Incremental, Progress::Quiet) {
            Ok(_) => {
                self.late = 0;
                self.upto = None;
                Ok(())
            }
            // Soft failures, which change nothing: the model stays, the INSERT stands,
            // and the next check tries again. (A refit too large for the memory the
            // application allows must not stop its inserts.)
            Err(Error::Diverged { .. } | Error::OutOfMemory { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `auto_refit` for a table with content, whose events arrive in the app's table
/// without passing through foryou: called by serving calls before they read the model.
/// Once `auto_refit` content rows have ids above the model's last event id, runs an
/// incremental refit here. What would only delay it (the write lock taken by another
/// connection, a read-only connection, a fit that does not converge, too little memory)
/// keeps the model and lets the call serve it; the next call tries again.
pub fn refit_if_due(conn: &Connection, shadow: &Shadow, options: &Options) -> Result<()> {
    if options.auto_refit == 0 || shadow.content().is_none() {
        return Ok(());
    }
    let meta = shadow.model_meta(conn)?;
    let upto = meta.as_ref().map_or(i64::MIN, |m| m.events_upto);
    let arrived = shadow.count_events_after(conn, upto)?;
    if arrived < i64::try_from(options.auto_refit).unwrap_or(i64::MAX) {
        return Ok(());
    }
    let mut options = options.clone();
    if let Some(meta) = &meta {
        options.factors = stored_options(&shadow.table, meta)?.factors;
    }
    match refit(conn, shadow, &options, Mode::Incremental, Progress::Quiet) {
        Ok(_) | Err(Error::Diverged { .. } | Error::OutOfMemory { .. }) => Ok(()),
        Err(e) => match e.code().map(|c| c.code) {
            Some(
                rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
                | rusqlite::ErrorCode::ReadOnly,
            ) => Ok(()),
            _ => Err(e),
        },
    }
}

/// The training options a stored model was fitted with.
fn stored_options(table: &str, meta: &ModelMeta) -> Result<Options> {
    Options::stored_base()
        .with_refit_json(&meta.options)
        .map_err(|e| Error::Damaged {
            table: table.to_string(),
            part: "model",
            detail: format!("its options do not read back ({e})"),
        })
}

/// Refuses a refit that would not fit in memory, before its large allocations: its
/// peak ([`memory::refit_peak_bytes`], from the events read, their distinct users and
/// items, the embedding size, the threads, tuning and the model an incremental refit
/// starts from) against SQLite's heap limit, if one is set; then the allocator is asked
/// for that much at once (and it is freed at once), so that an address-space limit or an
/// exhausted heap is an error here rather than an abort mid-fit.
fn check_memory(
    sink: &feedback::EventSink<'_>,
    events: usize,
    options: &Options,
    previous: Option<&StoredModel>,
    limit: Option<(u64, &'static str)>,
) -> Result<()> {
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    let (users, items) = sink.distinct();
    let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let shape = RefitShape {
        events: as_u64(events),
        sink_bytes: sink.needed_bytes(),
        users: as_u64(users),
        items: as_u64(items),
        factors: as_u64(options.factors),
        threads: as_u64(threads),
        tune: options.tune && previous.is_none(),
        previous_rows: previous.map_or(0, |p| as_u64(p.users.rows + p.items.rows)),
    };
    let needed = memory::refit_peak_bytes(&shape);
    let refused = |limit| Error::OutOfMemory {
        who: WHO,
        what: "this refit",
        needed,
        limit,
    };
    if let Some((bytes, pragma)) = limit {
        if needed > bytes {
            return Err(refused(Some((bytes, pragma))));
        }
    }
    // The sink is allocated already: the rest of the peak is asked for.
    memory::probe(needed.saturating_sub(sink.bytes())).map_err(|_| refused(None))
}

/// An allocation of the refit refused by the allocator.
fn out_of_memory(e: feedback::OutOfMemory) -> Error {
    Error::OutOfMemory {
        who: WHO,
        what: e.what,
        needed: e.bytes,
        limit: None,
    }
}

/// Why the fit job stopped before its end.
enum Halt {
    /// The stop flag was raised.
    Stopped,
    /// A large buffer could not be allocated.
    Memory(feedback::OutOfMemory),
}

/// The options to fit with: an incremental refit keeps the stored model's embedding
/// size (asking for another is an error) and, with `tune`, its chosen values.
fn options_for_fit(
    table: &str,
    options: &Options,
    previous: Option<&StoredModel>,
) -> Result<Options> {
    let mut options = options.clone();
    let Some(previous) = previous else {
        return Ok(options);
    };
    if previous.items.dim != options.factors {
        return Err(Error::FactorsMismatch {
            who: WHO,
            stored: previous.items.dim,
            asked: options.factors,
        });
    }
    if options.tune {
        let chosen = stored_options(table, &previous.meta)?;
        options.alpha = chosen.alpha;
        options.regularization = chosen.regularization;
        options.regularization_scaling = chosen.regularization_scaling;
    }
    Ok(options)
}

/// What the worker pool computed.
struct Fitted {
    feedback: feedback::Feedback,
    users: Factors,
    items: Factors,
    fit_report: FitReport,
    tuned: Option<std::result::Result<tune::Outcome, tune::Skipped>>,
    threads: usize,
    /// The options as fitted (with the tuned values, when tuning chose).
    options: Options,
}

/// Aggregates the events and fits, on a pool of `options.threads` workers, while this
/// thread watches `conn` for an interruption (see the module doc).
fn fit(
    conn: &Connection,
    sink: feedback::EventSink<'_>,
    options: &Options,
    previous: Option<&StoredModel>,
    reporter: &mut Reporter<'_>,
) -> Result<Fitted> {
    let feedback_params = options.feedback();
    let mut params = als_params(options, previous.is_some());
    let newest = sink.newest_ts();
    let tune_now = options.tune && previous.is_none();
    let stop = als::Control::new();
    let (computed, interrupted, threads) = workers::with_pool(options.threads, |pool| {
        let job = || {
            let mut fb = sink.try_finish(newest).map_err(Halt::Memory)?;
            let tuned = match tune_now.then(|| {
                let built = tune::Built {
                    form: options.confidence,
                    alpha: options.alpha,
                    full_watch: feedback_params.watch_confidence(1.0),
                };
                let (users, items) = (&fb.user_ids, &fb.item_ids);
                tune::choose(&fb.data, users, items, built, &params, pool, &stop)
            }) {
                None => None,
                Some(Ok(tuned)) => Some(tuned),
                Some(Err(_stopped)) => return Err(Halt::Stopped),
            };
            if let Some(Ok(t)) = &tuned {
                tune::set_alpha(
                    &mut fb.data,
                    options.confidence,
                    options.alpha,
                    t.chosen.alpha,
                );
                #[allow(clippy::cast_possible_truncation)] // a ladder value
                {
                    params.regularization = t.chosen.regularization as f32;
                }
                params.regularization_scaling = t.chosen.scaling;
            }
            // The starting factors (those of `als::fit_stoppable` on a full refit: the
            // same seeded values), allocated fallibly.
            let (users, items) = match previous {
                Some(p) => (
                    warm_start(&fb.user_ids, &p.user_ids, &p.users, params.seed, 0),
                    warm_start(&fb.item_ids, &p.item_ids, &p.items, params.seed, 1),
                ),
                None => (
                    seeded(fb.user_ids.len(), params.factors, params.seed, 0),
                    seeded(fb.item_ids.len(), params.factors, params.seed, 1),
                ),
            };
            let (users, items) = (users.map_err(Halt::Memory)?, items.map_err(Halt::Memory)?);
            let fitted = als::fit_warm_stoppable(&fb.data, &params, pool, users, items, &stop);
            Ok((fb, fitted, tuned))
        };
        let (computed, interrupted) = workers::watched(pool, &stop, job, || {
            reporter.sweeps(stop.sweeps());
            store::interruption(conn)
        });
        // The last count, also of a fit that ended before the first look.
        reporter.sweeps(stop.sweeps());
        (computed, interrupted, pool.current_num_threads())
    })
    .map_err(|e| Error::Threads {
        who: WHO,
        threads: options.threads,
        detail: e.to_string(),
    })?;
    if let Some(interrupt) = interrupted {
        // Whatever the job got to, it is dropped: the refit was interrupted.
        return Err(Error::Sqlite(interrupt));
    }
    let (fb, fitted, tuned) = match computed {
        Some(Ok(done)) => done,
        Some(Err(Halt::Memory(e))) => return Err(out_of_memory(e)),
        // Only the stop flag, raised with `interrupted` set, stops the job; and a job
        // that panicked has been raised again by `watched`.
        Some(Err(Halt::Stopped)) | None => {
            return Err(Error::Internal {
                who: WHO.to_string(),
                detail: "the fit stopped without an interruption".to_string(),
            })
        }
    };
    #[cfg(feature = "test-hooks")]
    let fitted = crate::hooks::diverge(fitted);
    let (users, items, fit_report) =
        fitted.map_err(|source| Error::Diverged { who: WHO, source })?;
    let mut options = options.clone();
    if let Some(Ok(t)) = &tuned {
        options.alpha = t.chosen.alpha;
        options.regularization = t.chosen.regularization;
        options.regularization_scaling = t.chosen.scaling;
    }
    Ok(Fitted {
        feedback: fb,
        users,
        items,
        fit_report,
        tuned,
        threads,
        options,
    })
}

/// The JSON report of one refit (the fields are documented in the SQL reference).
struct Report<'a> {
    shadow: &'a Shadow,
    mode: Mode,
    version: i64,
    feedback: &'a feedback::Feedback,
    events: usize,
    /// Content rows that are not events.
    invalid: &'a store::Skipped,
    options: &'a Options,
    fit: &'a FitReport,
    tuned: Option<&'a std::result::Result<tune::Outcome, tune::Skipped>>,
    threads: usize,
    seconds: f64,
}

impl Report<'_> {
    fn to_json(&self) -> String {
        let mut report = json!({
            "model": self.shadow.table,
            "mode": if self.mode == Mode::Incremental { "incremental" } else { "full" },
            "version": self.version,
            "users": self.feedback.user_ids.len(),
            "items": self.feedback.item_ids.len(),
            "events": self.events,
            "pairs": self.feedback.data.nnz(),
            "skipped_pairs": self.feedback.skipped_pairs,
            "factors": self.options.factors,
            "iterations": self.fit.iterations,
            "loss": self.fit.loss,
            "threads": self.threads,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
        });
        if self.shadow.content().is_some() {
            report["invalid_rows"] = json!(self.invalid.rows);
            if let Some(first) = &self.invalid.first {
                report["first_invalid_row"] = json!(first);
            }
        }
        match self.tuned {
            Some(Err(skipped)) => {
                report["tune_skipped"] = json!(format!(
                    "{skipped}: alpha, regularization and regularization_scaling kept as set"
                ));
            }
            Some(Ok(t)) => {
                report["tuned"] = json!({
                    "alpha": t.chosen.alpha,
                    "regularization": t.chosen.regularization,
                    "regularization_scaling": t.chosen.scaling.name(),
                    "holdout_users": t.users,
                    "candidates": t.scores.iter().map(|s| json!({
                        "alpha": s.candidate.alpha,
                        "regularization": s.candidate.regularization,
                        "regularization_scaling": s.candidate.scaling.name(),
                        "ndcg": s.ndcg.map(|v| (v * 1e4).round() / 1e4),
                        "sweeps": s.sweeps,
                    })).collect::<Vec<_>>(),
                });
            }
            None => {}
        }
        report.to_string()
    }
}

/// A tag unique to this refit, the key of per-connection factor caches. It is not part
/// of the model: the factors themselves depend only on events, options and seed.
fn new_tag(version: i64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{version}-{nanos:x}-{:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Starting factors for an incremental refit: stored rows where the id is known, the
/// seeded initialisation elsewhere.
fn warm_start(
    ids: &[i64],
    stored_ids: &[i64],
    stored: &Factors,
    seed: u64,
    stream: u64,
) -> std::result::Result<Factors, feedback::OutOfMemory> {
    let mut start = seeded(ids.len(), stored.dim, seed, stream)?;
    let known: HashMap<i64, usize> = stored_ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    for (row, id) in ids.iter().enumerate() {
        if let Some(&old) = known.get(id) {
            start.row_mut(row).copy_from_slice(stored.row(old));
        }
    }
    Ok(start)
}

/// `Factors::random`, allocated fallibly.
fn seeded(
    rows: usize,
    dim: usize,
    seed: u64,
    stream: u64,
) -> std::result::Result<Factors, feedback::OutOfMemory> {
    Factors::try_random(rows, dim, seed, stream).map_err(|_| feedback::OutOfMemory {
        what: "the factors",
        bytes: u64::try_from(rows.saturating_mul(dim).saturating_mul(4)).unwrap_or(u64::MAX),
    })
}

/// Events per block handed from the SQL reader to the aggregating thread.
const READ_BLOCK: usize = 1 << 14;

/// One event as read: event id, user id, item id, watch time, duration, ts.
type RawEvent = (i64, i64, i64, f64, f64, i64);

/// Reads every event into an [`feedback::EventSink`], in rowid order. A pipeline: this
/// thread steps the SQL statement (it alone touches SQLite) and hands blocks of raw
/// events to one helper thread that maps ids and pushes them (about a quarter of the
/// per-event work), so the two overlap. Blocks arrive in order, so the sink sees the
/// events in rowid order as if pushed here. Returns the sink and what the stream read (the
/// number of events, the largest rowid, the content rows skipped).
fn read_events<'p>(
    conn: &Connection,
    shadow: &Shadow,
    params: &'p feedback::FeedbackParams,
    hint: usize,
    limit: Option<(u64, &'static str)>,
) -> Result<(feedback::EventSink<'p>, store::Streamed)> {
    use std::sync::mpsc::{channel, sync_channel};
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = sync_channel::<Vec<RawEvent>>(4);
        let (empty_tx, empty_rx) = channel::<Vec<RawEvent>>();
        let worker = scope.spawn(move || {
            let mut sink = feedback::EventSink::new(params, hint);
            for mut block in full_rx {
                // Room for the block first (the pushes then never grow a buffer), and
                // the events so far within SQLite's heap limit: else the helper stops,
                // and the reader with it.
                sink.try_reserve(block.len()).map_err(out_of_memory)?;
                if let Some((bytes, pragma)) = limit {
                    let needed = sink.needed_bytes();
                    if needed > bytes {
                        return Err(Error::OutOfMemory {
                            who: WHO,
                            what: "reading its events",
                            needed,
                            limit: Some((bytes, pragma)),
                        });
                    }
                }
                for &(id, user, item, watch, duration, ts) in &block {
                    sink.push_identified(id, user, item, watch, duration, ts);
                }
                block.clear();
                // The reader may be gone (an error); then the block is just dropped.
                let _ = empty_tx.send(block);
            }
            Ok(sink)
        });
        let mut block = Vec::with_capacity(READ_BLOCK);
        // Set once the helper has stopped (out of memory): the rest is not kept.
        let mut helper_gone = false;
        let read = shadow.stream_events(conn, |id, user, item, watch, duration, ts| {
            if helper_gone {
                return;
            }
            block.push((id, user, item, watch, duration, ts));
            if block.len() == READ_BLOCK {
                let next = empty_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(READ_BLOCK));
                // A send fails only if the helper is gone: it stopped on an error, or
                // panicked; join reports either.
                helper_gone = full_tx.send(std::mem::replace(&mut block, next)).is_err();
            }
        });
        if !block.is_empty() && !helper_gone {
            let _ = full_tx.send(block);
        }
        drop(full_tx);
        let sink = match worker.join() {
            Ok(sink) => sink?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        Ok((sink, read?))
    })
}

/// The users to store: those with at least one watched (not skipped) pair. A user who
/// only ever swiped away has no taste to rank by; storing no vector for them lets
/// serving trust any stored vector without re-reading the user's events (they get
/// popularity, as a user with no events does).
fn users_with_taste(
    data: &Interactions,
    ids: Vec<i64>,
    users: Factors,
    digests: Vec<u64>,
) -> Result<(Vec<i64>, Factors, Vec<u64>)> {
    let by_user = data.by_user();
    let keep: Vec<bool> = (0..ids.len())
        .map(|u| u < by_user.n_rows() && by_user.row(u).2.iter().any(|&p| p > 0.0))
        .collect();
    if keep.iter().all(|&k| k) {
        return Ok((ids, users, digests));
    }
    let dim = users.dim;
    let mut kept_ids = Vec::new();
    let mut data_out = Vec::new();
    let refused = |what, bytes: usize| Error::OutOfMemory {
        who: WHO,
        what,
        needed: u64::try_from(bytes).unwrap_or(u64::MAX),
        limit: None,
    };
    kept_ids
        .try_reserve_exact(ids.len())
        .map_err(|_| refused("the stored user ids", ids.len() * 8))?;
    data_out
        .try_reserve_exact(users.data.len())
        .map_err(|_| refused("the stored user factors", users.data.len() * 4))?;
    let mut kept_digests = Vec::new();
    kept_digests
        .try_reserve_exact(digests.len())
        .map_err(|_| refused("the stored user digests", digests.len() * 8))?;
    for (u, id) in ids.into_iter().enumerate() {
        if keep[u] {
            kept_ids.push(id);
            data_out.extend_from_slice(users.row(u));
            if let Some(&digest) = digests.get(u) {
                kept_digests.push(digest);
            }
        }
    }
    let rows = kept_ids.len();
    let factors =
        Factors::from_vec(rows, dim, data_out).unwrap_or_else(|| Factors::zeros(rows, dim));
    Ok((kept_ids, factors, kept_digests))
}
