//! `foryou_refit([model [, options_json]])`: learns user and item factors from every
//! stored event and replaces the stored model atomically. Returns a JSON report.
//!
//! Events are read into owned arrays on the calling thread; the factorisation runs on
//! a rayon pool of `threads` workers that never touch SQLite; the result is written
//! back on the calling thread inside one savepoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rusqlite::functions::Context;
use rusqlite::types::ValueRef;
use rusqlite::Result;
use serde_json::json;

use crate::guard::sql_error;
use crate::model::{als, feedback, AlsParams};
use crate::sql_args;
use crate::state::resolve_model;
use crate::store::{ModelMeta, Shadow, StoredModel};

const WHO: &str = "foryou_refit";

/// A tag unique to this refit, the key of per-connection factor caches. It is not part
/// of the model: the factors themselves depend only on events, options and seed.
fn new_tag(version: i64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{version}-{nanos:x}-{:x}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
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
    let options = match ctx.len() {
        2 => match ctx.get_raw(1) {
            ValueRef::Null => stored_options,
            ValueRef::Text(t) => stored_options.with_refit_json(&String::from_utf8_lossy(t)).map_err(sql_error)?,
            _ => return Err(sql_error(format!("{WHO}: options_json must be a JSON object as TEXT, such as '{{\"iterations\": 5}}'"))),
        },
        _ => stored_options,
    };
    refit(&conn, &shadow, &options)
}

fn refit(conn: &rusqlite::Connection, shadow: &Shadow, options: &crate::options::Options) -> Result<String> {
    let started = Instant::now();
    let events = shadow.read_events(conn)?;
    if events.user_ids.is_empty() {
        return Err(sql_error(format!(
            "{WHO}: {} has no events to learn from; INSERT watch events first",
            shadow.table
        )));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| sql_error(format!("{WHO}: cannot start {} worker threads ({e})", options.threads)))?;
    let threads = pool.current_num_threads();
    let params = AlsParams {
        factors: options.factors,
        iterations: options.iterations,
        regularization: options.regularization as f32,
        cg_steps: options.cg_steps,
        seed: options.seed,
    };
    let (fb, fitted) = pool.install(|| {
        let columns = feedback::Events {
            user_ids: &events.user_ids,
            item_ids: &events.item_ids,
            watch_time: &events.watch_time,
            duration: &events.duration,
            ts: &events.ts,
        };
        let fb = feedback::build(&columns, &options.feedback());
        let fitted = als::fit(&fb.data, &params, &pool);
        (fb, fitted)
    });
    let (users, items, report) = fitted.map_err(|e| sql_error(format!("{WHO}: {e}; the previous model is kept")))?;

    let version = shadow.model_meta(conn)?.map_or(0, |m| m.version) + 1;
    let report = json!({
        "model": shadow.table,
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
        meta: ModelMeta { version, tag: new_tag(version), events_upto: events.last_id, report: report.clone() },
    };
    Shadow::atomically(conn, || shadow.write_model(conn, &stored))?;
    Ok(report)
}
