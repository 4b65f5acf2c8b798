//! `foryou_evaluate(model, holdout_table, k)`: ranking quality of the current model on
//! held-out events, as JSON: users, k, precision, recall, ndcg, map, coverage.
//!
//! Every row `(user_id, item_id)` of `holdout_table` is a relevant item for that user
//! (filter it first, e.g. a view of full watches only). Each user who has one gets
//! exactly what `recommend(user_id, k, model)` would return, and the metrics of
//! `model::metrics` are averaged over those users.

use std::sync::Arc;

use rusqlite::types::ValueRef;
use serde_json::json;

use super::args;
use super::scalar::Args;
use crate::engine::cache::ConnectionState;
use crate::engine::feed;
use crate::error::{Error, Result};
use crate::store::read_holdout;

const WHO: &str = "foryou_evaluate";

/// An error of SQLite's keeps its code and is named:
/// `foryou_evaluate: cannot evaluate '<model>' (<SQLite's message>)`.
pub fn foryou_evaluate(ctx: &Args<'_>, state: &Arc<ConnectionState>) -> Result<String> {
    let conn = ctx.connection()?;
    let model = args::model_name(WHO, ctx.get(0)?)?;
    evaluate(&conn, ctx, state, model).map_err(|e| match e {
        Error::Sqlite(source @ rusqlite::Error::SqliteFailure(..)) => Error::SqliteWhile {
            context: match model {
                Some(model) => format!("{WHO}: cannot evaluate '{model}'"),
                None => format!("{WHO}: cannot evaluate the model"),
            },
            source,
            hint: "",
        },
        other => other,
    })
}

fn evaluate(
    conn: &rusqlite::Connection,
    ctx: &Args<'_>,
    state: &Arc<ConnectionState>,
    model: Option<&str>,
) -> Result<String> {
    let holdout = match ctx.get(1)? {
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
    let k = args::k(WHO, ctx.get(2)?)?;
    let resolved = state.resolve(conn, WHO, model)?;
    let relevant = read_holdout(conn, &holdout).map_err(|e| match e {
        Error::Sqlite(source) => Error::SqliteWhile {
            context: format!("{WHO}: cannot read holdout_table '{holdout}'"),
            source,
            hint: "; it needs columns user_id and item_id",
        },
        other => other,
    })?;
    let m = feed::evaluate(conn, &resolved, &relevant, k)?;
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
