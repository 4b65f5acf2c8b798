//! `recommend(user_id, k [, model])`: the user's top-k items, best first.
//!
//! A user with factors is scored by dot product with every item; a user without
//! factors (unknown, or newer than the last refit) gets the most popular items. Items
//! the user already watched are left out unless the model has `exclude_watched = false`.

use rusqlite::types::ValueRef;
use rusqlite::vtab::Module;
use rusqlite::{Connection, Result};

use crate::serving::popular_items;
use crate::sql_args;
use crate::state::{ConnectionState, Resolved};
use crate::table_function::{FunctionTable, TableFunction};

pub struct Recommend;

impl TableFunction for Recommend {
    const NAME: &'static str = "recommend";
    const CREATE_SQL: &'static std::ffi::CStr =
        c"CREATE TABLE x(item_id INTEGER, score REAL, rank INTEGER, user_id HIDDEN, k HIDDEN, model HIDDEN)";
    const ARGUMENTS: &'static [&'static str] = &["user_id", "k", "model"];
    const REQUIRED: usize = 2;

    fn rows(
        conn: &Connection,
        state: &ConnectionState,
        args: &[Option<ValueRef<'_>>],
    ) -> Result<Vec<(i64, f32)>> {
        let (user_id, k, model) = sql_args::id_k_model(Self::NAME, "user_id", args)?;
        let resolved = state.resolve(conn, Self::NAME, model)?;
        recommend_for(conn, &resolved, user_id, k)
    }
}

/// The top-k items of one user: what `recommend(user_id, k, model)` returns.
///
/// An up-to-date user (stored vector, no event newer than the refit) costs one read of
/// the events index, and so does a folded-in user while the database is unchanged;
/// only a user to fold in (again) has their whole events read.
pub fn recommend_for(
    conn: &Connection,
    resolved: &Resolved,
    user_id: i64,
    k: usize,
) -> Result<Vec<(i64, f32)>> {
    let Resolved {
        shadow,
        options,
        model,
        at,
        ..
    } = resolved;
    let seen = shadow.user_items(conn, user_id)?;
    let mut watched: Vec<i64> = Vec::new();
    if options.exclude_watched {
        watched = seen.iter().map(|&(_, item)| item).collect();
        watched.dedup(); // events come in item order
    }
    Ok(match model {
        Some(model) => {
            let newest = seen.iter().map(|&(id, _)| id).max();
            let mut ranked = if let Some(vector) = model.current_vector(user_id, newest) {
                model.rank(Some(vector), k, &watched)
            } else if let Some(vector) = model.folded_at(user_id, *at) {
                model.rank(Some(&vector), k, &watched)
            } else {
                let events = shadow.user_events(conn, user_id)?;
                model.recommend(user_id, &events, k, &watched, *at).1
            };
            let slots = (k as f64 * options.explore).round() as usize;
            if slots > 0 {
                let mut fresh = shadow.items_after(conn, model.events_upto())?;
                fresh.retain(|&id| !model.knows_item(id));
                model.explore(&mut ranked, slots, &fresh, &watched, user_id, options.seed);
            }
            ranked
        }
        None => popular_items(&resolved.live_popularity(conn)?, k, &watched),
    })
}

pub const MODULE: Module<'static, FunctionTable<Recommend>> = Module::eponymous_only_module();
