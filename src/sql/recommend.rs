//! `recommend(user_id, k [, model])`: the user's top-k items, best first.

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::args;
use super::table_function::TableFunction;
use crate::engine::cache::ConnectionState;
use crate::engine::feed;
use crate::error::Result;

pub struct Recommend;

impl TableFunction for Recommend {
    const NAME: &'static str = "recommend";
    const CREATE_SQL: &'static std::ffi::CStr =
        c"CREATE TABLE x(item_id INTEGER, score REAL, rank INTEGER, user_id HIDDEN, k HIDDEN, model HIDDEN)";
    const ARGUMENTS: &'static [&'static str] = &["user_id", "k", "model"];
    const REQUIRED: usize = 2;
    const ALLOW_LIST: bool = true;

    fn rows(
        conn: &Connection,
        state: &ConnectionState,
        args: &[Option<ValueRef<'_>>],
        allow: Option<&[i64]>,
    ) -> Result<Vec<(i64, f32)>> {
        let (user_id, k, model) = args::id_k_model(Self::NAME, "user_id", args)?;
        let resolved = state.resolve(conn, Self::NAME, model)?;
        feed::recommend(conn, &resolved, user_id, k, allow)
    }
}
