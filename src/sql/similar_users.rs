//! `similar_users(user_id, k [, model])`: the k users nearest to `user_id` by cosine
//! similarity of their vectors, the user left out. The user's vector is the one
//! `recommend()` ranks with (fresh events folded in); the others are their stored
//! vectors, as of the last refit.

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::args;
use super::table_function::TableFunction;
use crate::engine::cache::ConnectionState;
use crate::engine::feed;
use crate::error::Result;

pub struct SimilarUsers;

impl TableFunction for SimilarUsers {
    const NAME: &'static str = "similar_users";
    const CREATE_SQL: &'static std::ffi::CStr =
        c"CREATE TABLE x(user_id INTEGER, score REAL, rank INTEGER, of_user HIDDEN, k HIDDEN, model HIDDEN)";
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
        feed::similar_users(conn, &resolved, user_id, k, allow)
    }
}
