//! `similar_items(item_id, k [, model])`: the k items nearest to `item_id` by cosine
//! similarity of their factors, the item itself left out. Empty when the item has no
//! factors yet (no refit since it first appeared).

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::args;
use super::table_function::TableFunction;
use crate::engine::cache::ConnectionState;
use crate::engine::feed;
use crate::error::Result;

pub struct SimilarItems;

impl TableFunction for SimilarItems {
    const NAME: &'static str = "similar_items";
    const CREATE_SQL: &'static std::ffi::CStr =
        c"CREATE TABLE x(item_id INTEGER, score REAL, rank INTEGER, of_item HIDDEN, k HIDDEN, model HIDDEN)";
    const ARGUMENTS: &'static [&'static str] = &["item_id", "k", "model"];
    const REQUIRED: usize = 2;
    const ALLOW_LIST: bool = true;

    fn rows(
        conn: &Connection,
        state: &ConnectionState,
        args: &[Option<ValueRef<'_>>],
        allow: Option<&[i64]>,
    ) -> Result<Vec<(i64, f32)>> {
        let (item_id, k, model) = args::id_k_model(Self::NAME, "item_id", args)?;
        let resolved = state.resolve(conn, Self::NAME, model)?;
        feed::similar_items(conn, &resolved, item_id, k, allow)
    }
}
