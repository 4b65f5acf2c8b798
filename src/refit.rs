//! `foryou_refit([model [, options_json]])`: learns user and item factors from every
//! stored event and replaces the stored model atomically. Returns a JSON report.
//!
//! `options_json` may override training options for this call and choose the mode:
//! `{"mode": "full"}` (the default: factors start from the seed) or
//! `{"mode": "incremental"}` (factors start from the stored model; new users and items
//! start from the seed; `incremental_iterations` sweeps). An incremental refit with no
//! stored model runs a full one.
//!
//! Events are read into owned arrays on the calling thread; the factorisation runs on
//! a rayon pool of `threads` workers that never touch SQLite; the result is written
//! back on the calling thread inside one savepoint.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rusqlite::functions::Context;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Result};
use serde_json::json;

use crate::guard::sql_error;
use crate::model::{als, feedback, AlsParams, Factors};
use crate::options::Options;
use crate::sql_args;
use crate::state::resolve_model;
use crate::store::{ModelMeta, Shadow, StoredModel};

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

/// Runs one refit of `shadow` and stores the result; returns the JSON report.
/// Model errors (divergence) are `Error::ModuleError`; SQLite errors pass through.
pub fn run(conn: &Connection, shadow: &Shadow, options: &Options, mode: Mode) -> Result<String> {
    let started = Instant::now();
    let events = shadow.read_events(conn)?;
    if events.user_ids.is_empty() {
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
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| {
            sql_error(format!(
                "{WHO}: cannot start {} worker threads ({e})",
                options.threads
            ))
        })?;
    let threads = pool.current_num_threads();
    let params = AlsParams {
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
    let columns = feedback::Events {
        user_ids: &events.user_ids,
        item_ids: &events.item_ids,
        watch_time: &events.watch_time,
        duration: &events.duration,
        ts: &events.ts,
    };
    let newest = feedback::newest_ts(&columns);
    let (fb, fitted) = pool.install(|| {
        let fb = feedback::build(&columns, &options.feedback(), newest);
        let fitted = match &previous {
            Some(p) => {
                let users = warm_start(&fb.user_ids, &p.user_ids, &p.users, params.seed, 0);
                let items = warm_start(&fb.item_ids, &p.item_ids, &p.items, params.seed, 1);
                als::fit_warm(&fb.data, &params, &pool, users, items)
            }
            None => als::fit(&fb.data, &params, &pool),
        };
        (fb, fitted)
    });
    let (users, items, report) =
        fitted.map_err(|e| sql_error(format!("{WHO}: {e}; the previous model is kept")))?;

    let version = shadow.model_meta(conn)?.map_or(0, |m| m.version) + 1;
    let report = json!({
        "model": shadow.table,
        "mode": if mode == Mode::Incremental { "incremental" } else { "full" },
        "version": version,
        "users": fb.user_ids.len(),
        "items": fb.item_ids.len(),
        "events": events.user_ids.len(),
        "pairs": fb.data.nnz(),
        "skipped_pairs": fb.skipped_pairs,
        "factors": options.factors,
        "iterations": report.iterations,
        "loss": report.loss,
        "threads": threads,
        "seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    })
    .to_string();
    let stored = StoredModel {
        user_ids: fb.user_ids,
        users,
        item_ids: fb.item_ids,
        items,
        popularity: fb.popularity,
        meta: ModelMeta {
            version,
            tag: new_tag(version),
            events_upto: events.last_id,
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
