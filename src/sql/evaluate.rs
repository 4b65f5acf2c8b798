//! `foryou_evaluate(model, holdout_table, k)`: ranking quality of the current model on
//! held-out events, as JSON: users, k, precision, recall, ndcg, map, coverage.
//!
//! Every row `(user_id, item_id)` of `holdout_table` is a relevant item for that user
//! (filter it first, e.g. a view of full watches only). Each user who has one gets
//! exactly what `recommend(user_id, k, model)` would return, and the metrics of
//! `model::metrics` are averaged over those users.

use std::sync::Arc;

use rusqlite::functions::Context;
use rusqlite::types::ValueRef;
use serde_json::json;

use super::args;
use crate::engine::cache::ConnectionState;
use crate::engine::feed;
use crate::error::{Error, Result};
use crate::store::read_holdout;

const WHO: &str = "foryou_evaluate";

pub fn foryou_evaluate(
    ctx: &Context<'_>,
    state: &Arc<ConnectionState>,
) -> rusqlite::Result<String> {
    Ok(evaluate(ctx, state)?)
}

fn evaluate(ctx: &Context<'_>, state: &Arc<ConnectionState>) -> Result<String> {
    // SAFETY: the connection is used only on this thread, during this call.
    let conn = unsafe { ctx.get_connection()? };
    let model = args::model_name(WHO, ctx.get_raw(0))?;
    let holdout = match ctx.get_raw(1) {
        ValueRef::Text(name) => name,
        other => {
            return Err(Error::Argument {
                who: WHO.to_string(),
                argument: "holdout_table",
                expected: "the name of a table or view with columns user_id and item_id"
                    .to_string(),
                got: args::describe(other),
            })
        }
    };
    let holdout = String::from_utf8_lossy(holdout).into_owned();
    let k = args::k(WHO, ctx.get_raw(2))?;
    let resolved = state.resolve(&conn, WHO, model)?;
    let relevant = read_holdout(&conn, &holdout).map_err(|e| match e {
        Error::Sqlite(source) => Error::SqliteWhile {
            context: format!("{WHO}: cannot read holdout_table '{holdout}'"),
            source,
            hint: "; it needs columns user_id and item_id",
        },
        other => other,
    })?;
    let m = feed::evaluate(&conn, &resolved, &relevant, k)?;
    Ok(json!({
        "model": resolved.shadow.table,
        "k": k,
        "users": m.users,
        "precision": m.precision,
        "recall": m.recall,
        "ndcg": m.ndcg,
        "map": m.map,
        "coverage": m.coverage,
    })
    .to_string())
}
