//! `why_recommended(user_id, item_id [, k [, model]])`: the user's watched items that
//! contribute most to `item_id`'s score, largest first, with their contributions (over
//! all watched items they add up to the score of the user's folded-in vector).

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::args;
use super::table_function::TableFunction;
use crate::engine::cache::ConnectionState;
use crate::engine::feed;
use crate::error::Result;

/// Rows when `k` is not given (or NULL): the few largest reasons, as implicit's `explain` gives.
pub const DEFAULT_K: usize = 10;

pub struct WhyRecommended;

impl TableFunction for WhyRecommended {
    const NAME: &'static str = "why_recommended";
    const CREATE_SQL: &'static std::ffi::CStr =
        c"CREATE TABLE x(item_id INTEGER, contribution REAL, rank INTEGER, user_id HIDDEN, of_item HIDDEN, k HIDDEN, model HIDDEN)";
    const ARGUMENTS: &'static [&'static str] = &["user_id", "item_id", "k", "model"];
    const REQUIRED: usize = 2;

    fn rows(
        conn: &Connection,
        state: &ConnectionState,
        args: &[Option<ValueRef<'_>>],
        _allow: Option<&[i64]>,
    ) -> Result<Vec<(i64, f32)>> {
        let given = |i: usize| args.get(i).copied().flatten();
        let user_id = args::integer(Self::NAME, "user_id", given(0).unwrap_or(ValueRef::Null))?;
        let item_id = args::integer(Self::NAME, "item_id", given(1).unwrap_or(ValueRef::Null))?;
        // NULL is "not given", as for the model: so that a model can be named without
        // choosing k.
        let k = match given(2) {
            Some(ValueRef::Null) | None => DEFAULT_K,
            Some(value) => args::k(Self::NAME, value)?,
        };
        let model = match given(3) {
            Some(value) => args::model_name(Self::NAME, value)?,
            None => None,
        };
        let resolved = state.resolve(conn, Self::NAME, model)?;
        feed::why_recommended(conn, &resolved, user_id, item_id, k)
    }
}
