//! `foryou_refit([model [, options_json]])`: learns user and item factors from every
//! stored event and replaces the stored model atomically. Returns a JSON report.
//!
//! `options_json` may override training options for this call and choose the mode:
//! `{"mode": "full"}` (the default: factors start from the seed) or
//! `{"mode": "incremental"}` (factors start from the stored model; new users and items
//! start from the seed; `incremental_iterations` sweeps). An incremental refit with no
//! stored model runs a full one.
//!
//! With `tune` (the default), a full refit first chooses `alpha`, `regularization` and
//! its scaling on a hold-out split of the same events (`model::tune`), then fits the
//! chosen setting on all of them and stores it with the model; incremental refits keep
//! the stored model's choice.
//!
//! Events are streamed from SQL on the calling thread (with one helper thread mapping
//! ids as they come, see `read_events`) into a compact [`feedback::EventSink`] (16
//! bytes per event, no column buffers); aggregation and the
//! factorisation run on a rayon pool of `threads` workers that never touch SQLite; the
//! result is written back on the calling thread inside one savepoint.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rusqlite::functions::Context;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Result};
use serde_json::json;

use crate::guard::sql_error;
use crate::model::{als, feedback, tune, AlsParams, Factors, Interactions};
use crate::options::Options;
use crate::sql_args;
use crate::state::resolve_model;
use crate::store::{ModelMeta, Shadow, StoredModel};
use crate::workers;

const WHO: &str = "foryou_refit";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Full,
    Incremental,
}

/// A tag unique to this refit, the key of per-connection factor caches. It is not part
/// of the model: the factors themselves depend only on events, options and seed.
fn new_tag(version: i64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{version}-{nanos:x}-{:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Splits `options_json` into the mode and the option overrides.
fn parse_call_options(stored: &Options, json: &str) -> Result<(Options, Mode)> {
    let mut value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| sql_error(format!("{WHO}: options_json is not valid JSON ({e})")))?;
    let mode = match value.as_object_mut().and_then(|m| m.remove("mode")) {
        None => Mode::Full,
        Some(serde_json::Value::String(m)) if m == "full" => Mode::Full,
        Some(serde_json::Value::String(m)) if m == "incremental" => Mode::Incremental,
        Some(other) => {
            return Err(sql_error(format!(
                "{WHO}: option mode expects \"full\" or \"incremental\", got {other}"
            )))
        }
    };
    let options = stored
        .with_refit_json(&value.to_string())
        .map_err(sql_error)?;
    Ok((options, mode))
}

pub fn foryou_refit(ctx: &Context<'_>) -> Result<String> {
    // SAFETY: the connection is used only on this thread, during this call.
    let conn = unsafe { ctx.get_connection()? };
    let model = match ctx.len() {
        0 => None,
        _ => sql_args::model_name(WHO, ctx.get_raw(0))?,
    };
    let shadow = resolve_model(&conn, WHO, model)?;
    let stored_options = shadow.load_options(&conn)?;
    let (options, mode) = match ctx.len() {
        2 => match ctx.get_raw(1) {
            ValueRef::Null => (stored_options, Mode::Full),
            ValueRef::Text(t) => parse_call_options(&stored_options, &String::from_utf8_lossy(t))?,
            _ => {
                return Err(sql_error(format!(
                    "{WHO}: options_json must be a JSON object as TEXT, such as '{{\"iterations\": 5}}'"
                )))
            }
        },
        _ => (stored_options, Mode::Full),
    };
    run(&conn, &shadow, &options, mode)
}

/// Starting factors for an incremental refit: stored rows where the id is known, the
/// seeded initialisation elsewhere.
fn warm_start(
    ids: &[i64],
    stored_ids: &[i64],
    stored: &Factors,
    seed: u64,
    stream: u64,
) -> Factors {
    let mut start = Factors::random(ids.len(), stored.dim, seed, stream);
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
    start
}

/// Events per block handed from the SQL reader to the aggregating thread.
const READ_BLOCK: usize = 1 << 14;

/// One event as read: user id, item id, watch time, duration, ts.
type RawEvent = (i64, i64, f64, f64, i64);

/// Reads every event into an [`feedback::EventSink`], in rowid order. A pipeline: this
/// thread steps the SQL statement (it alone touches SQLite) and hands blocks of raw
/// events to one helper thread that maps ids and pushes them (about a quarter of the
/// per-event work), so the two overlap. Blocks arrive in order, so the sink sees the
/// events in rowid order as if pushed here. Returns the sink, the number of events and
/// the largest rowid.
fn read_events<'p>(
    conn: &Connection,
    shadow: &Shadow,
    params: &'p feedback::FeedbackParams,
    hint: usize,
) -> Result<(feedback::EventSink<'p>, usize, i64)> {
    use std::sync::mpsc::{channel, sync_channel};
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = sync_channel::<Vec<RawEvent>>(4);
        let (empty_tx, empty_rx) = channel::<Vec<RawEvent>>();
        let worker = scope.spawn(move || {
            let mut sink = feedback::EventSink::new(params, hint);
            for mut block in full_rx {
                for &(user, item, watch, duration, ts) in &block {
                    sink.push(user, item, watch, duration, ts);
                }
                block.clear();
                // The reader may be gone (an error); then the block is just dropped.
                let _ = empty_tx.send(block);
            }
            sink
        });
        let mut block = Vec::with_capacity(READ_BLOCK);
        let read = shadow.stream_events(conn, |user, item, watch, duration, ts| {
            block.push((user, item, watch, duration, ts));
            if block.len() == READ_BLOCK {
                let next = empty_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(READ_BLOCK));
                // A send fails only if the helper is gone, i.e. panicked: join reports it.
                let _ = full_tx.send(std::mem::replace(&mut block, next));
            }
        });
        if !block.is_empty() {
            let _ = full_tx.send(block);
        }
        drop(full_tx);
        let sink = match worker.join() {
            Ok(sink) => sink,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let (count, last_id) = read?;
        Ok((sink, count, last_id))
    })
}

/// Runs one refit of `shadow` and stores the result; returns the JSON report.
/// Model errors (divergence) are `Error::ModuleError`; SQLite errors pass through.
pub fn run(conn: &Connection, shadow: &Shadow, options: &Options, mode: Mode) -> Result<String> {
    let started = Instant::now();
    let feedback_params = options.feedback();
    // Size the buffers once (the rowid span bounds the count; capped, so that a few
    // huge explicit rowids cannot make it reserve a lot: beyond 2^24 events the
    // buffers grow as they fill).
    let hint = shadow.event_id_span(conn)?.min(1 << 24) as usize;
    let (sink, event_count, last_id) = read_events(conn, shadow, &feedback_params, hint)?;
    if sink.is_empty() {
        return Err(sql_error(format!(
            "{WHO}: {} has no events to learn from; INSERT watch events first",
            shadow.table
        )));
    }
    let previous = match mode {
        Mode::Incremental => shadow.read_model(conn)?,
        Mode::Full => None,
    };
    if let Some(previous) = &previous {
        if previous.items.dim != options.factors {
            return Err(sql_error(format!(
                "{WHO}: an incremental refit keeps the stored model's {} factors, but factors = {} was asked; run a full refit to change it",
                previous.items.dim, options.factors
            )));
        }
    }
    let mode = if previous.is_some() {
        Mode::Incremental
    } else {
        Mode::Full
    };
    // A tuned model keeps its chosen alpha / regularization through incremental refits
    // (the stored model's options, not the table's); a full refit chooses again.
    let mut options = options.clone();
    if let (true, Some(previous)) = (options.tune, &previous) {
        let chosen = Options::stored_base()
            .with_refit_json(&previous.meta.options)
            .map_err(|e| sql_error(format!("{WHO}: stored model options: {e}")))?;
        options.alpha = chosen.alpha;
        options.regularization = chosen.regularization;
        options.regularization_scaling = chosen.regularization_scaling;
    }
    let mut params = AlsParams {
        factors: options.factors,
        iterations: if mode == Mode::Incremental {
            options.incremental_iterations
        } else {
            options.iterations
        },
        regularization: options.regularization as f32,
        regularization_scaling: options.regularization_scaling,
        cg_steps: options.cg_steps,
        seed: options.seed,
    };
    let newest = sink.newest_ts();
    let tune_now = options.tune && previous.is_none();
    let (fb, fitted, tuned, threads) = workers::with_pool(options.threads, |pool| {
        let (fb, fitted, tuned) = pool.install(|| {
            let mut fb = sink.finish(newest);
            let tuned = if tune_now {
                Some(tune::choose(
                    &fb.data,
                    &fb.user_ids,
                    &fb.item_ids,
                    tune::Built {
                        form: options.confidence,
                        alpha: options.alpha,
                        full_watch: feedback_params.watch_confidence(1.0),
                    },
                    &params,
                    pool,
                ))
            } else {
                None
            };
            if let Some(Ok(t)) = &tuned {
                tune::set_alpha(
                    &mut fb.data,
                    options.confidence,
                    options.alpha,
                    t.chosen.alpha,
                );
                params.regularization = t.chosen.regularization as f32;
                params.regularization_scaling = t.chosen.scaling;
            }
            let fitted = match &previous {
                Some(p) => {
                    let users = warm_start(&fb.user_ids, &p.user_ids, &p.users, params.seed, 0);
                    let items = warm_start(&fb.item_ids, &p.item_ids, &p.items, params.seed, 1);
                    als::fit_warm(&fb.data, &params, pool, users, items)
                }
                None => als::fit(&fb.data, &params, pool),
            };
            (fb, fitted, tuned)
        });
        (fb, fitted, tuned, pool.current_num_threads())
    })
    .map_err(|e| {
        sql_error(format!(
            "{WHO}: cannot start {} worker threads ({e})",
            options.threads
        ))
    })?;
    if let Some(Ok(t)) = &tuned {
        options.alpha = t.chosen.alpha;
        options.regularization = t.chosen.regularization;
        options.regularization_scaling = t.chosen.scaling;
    }
    let (users, items, report) =
        fitted.map_err(|e| sql_error(format!("{WHO}: {e}; the previous model is kept")))?;

    let version = shadow.model_meta(conn)?.map_or(0, |m| m.version) + 1;
    let mut report = json!({
        "model": shadow.table,
        "mode": if mode == Mode::Incremental { "incremental" } else { "full" },
        "version": version,
        "users": fb.user_ids.len(),
        "items": fb.item_ids.len(),
        "events": event_count,
        "pairs": fb.data.nnz(),
        "skipped_pairs": fb.skipped_pairs,
        "factors": options.factors,
        "iterations": report.iterations,
        "loss": report.loss,
        "threads": threads,
        "seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    });
    if let Some(Err(skipped)) = &tuned {
        report["tune_skipped"] = json!(format!(
            "{skipped}: alpha, regularization and regularization_scaling kept as set"
        ));
    }
    if let Some(Ok(t)) = &tuned {
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
    let report = report.to_string();
    let (user_ids, users) = users_with_taste(&fb.data, fb.user_ids, users);
    let stored = StoredModel {
        user_ids,
        users,
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
    Shadow::atomically(conn, || shadow.write_model(conn, &stored))?;
    Ok(report)
}

/// The automatic refit behind the `auto_refit = N` option, run by the INSERT that brings
/// the count of events newer than the last refit to N. A model that fails to converge
/// keeps the previous one and the INSERT succeeds; SQLite errors fail the INSERT.
pub fn auto_refit(conn: &Connection, shadow: &Shadow, options: &Options) -> Result<()> {
    let upto = shadow.model_meta(conn)?.map_or(0, |m| m.events_upto);
    if shadow.count_events_after(conn, upto)? < options.auto_refit as i64 {
        return Ok(());
    }
    match run(conn, shadow, options, Mode::Incremental) {
        Ok(_) | Err(rusqlite::Error::ModuleError(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The users to store: those with at least one watched (not skipped) pair. A user who
/// only ever swiped away has no taste to rank by; storing no vector for them lets
/// serving trust any stored vector without re-reading the user's events (they get
/// popularity, as a user with no events does).
fn users_with_taste(data: &Interactions, ids: Vec<i64>, users: Factors) -> (Vec<i64>, Factors) {
    let by_user = data.by_user();
    let keep: Vec<bool> = (0..ids.len())
        .map(|u| u < by_user.n_rows() && by_user.row(u).2.iter().any(|&p| p > 0.0))
        .collect();
    if keep.iter().all(|&k| k) {
        return (ids, users);
    }
    let dim = users.dim;
    let mut kept_ids = Vec::with_capacity(ids.len());
    let mut data_out = Vec::with_capacity(users.data.len());
    for (u, id) in ids.into_iter().enumerate() {
        if keep[u] {
            kept_ids.push(id);
            data_out.extend_from_slice(users.row(u));
        }
    }
    let rows = kept_ids.len();
    let factors =
        Factors::from_vec(rows, dim, data_out).unwrap_or_else(|| Factors::zeros(rows, dim));
    (kept_ids, factors)
}
