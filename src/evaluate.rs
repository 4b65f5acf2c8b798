//! `foryou_evaluate(model, holdout_table, k)`: ranking quality of the current model on
//! held-out events, as JSON: users, k, precision, recall, ndcg, map, coverage.
//!
//! Every row `(user_id, item_id)` of `holdout_table` is a relevant item for that user
//! (filter it first, e.g. a view of full watches only). Each user who has one gets
//! exactly what `recommend(user_id, k, model)` would return, and the metrics of
//! `model::evaluate` are averaged over those users.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rusqlite::functions::Context;
use rusqlite::types::ValueRef;
use rusqlite::Result;
use serde_json::json;

use crate::guard::sql_error;
use crate::model::evaluate::Accumulator;
use crate::recommend::recommend_for;
use crate::sql_args;
use crate::state::ConnectionState;
use crate::store::read_holdout;

const WHO: &str = "foryou_evaluate";

pub fn foryou_evaluate(ctx: &Context<'_>, state: &Arc<ConnectionState>) -> Result<String> {
    // SAFETY: the connection is used only on this thread, during this call.
    let conn = unsafe { ctx.get_connection()? };
    let model = sql_args::model_name(WHO, ctx.get_raw(0))?;
    let holdout = match ctx.get_raw(1) {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        _ => return Err(sql_error(format!("{WHO}: holdout_table must be the name of a table or view with columns user_id and item_id"))),
    };
    let k = sql_args::k(WHO, ctx.get_raw(2))?;
    let resolved = state.resolve(&conn, WHO, model)?;
    let shadow = &resolved.shadow;

    let mut relevant: BTreeMap<i64, HashSet<i64>> = BTreeMap::new();
    for (user, item) in read_holdout(&conn, &holdout).map_err(|e| sql_error(format!("{WHO}: cannot read holdout_table '{holdout}' ({e}); it needs columns user_id and item_id")))? {
        relevant.entry(user).or_default().insert(item);
    }
    let mut acc = Accumulator::default();
    for (user, items) in &relevant {
        let ranked: Vec<i64> = recommend_for(&conn, &resolved, *user, k)?
            .into_iter()
            .map(|(item, _)| item)
            .collect();
        acc.add(&ranked, items, k);
    }
    let catalogue = shadow.catalogue_size(&conn)?;
    let m = acc.finish(catalogue);
    Ok(json!({
        "model": shadow.table,
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
