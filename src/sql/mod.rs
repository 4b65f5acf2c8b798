//! The SQL objects: one file per object, and what they share.
//!
//! | file | object |
//! |---|---|
//! | [`foryou_table`] | the `foryou` virtual table module (events in, events out) |
//! | [`recommend`] | `recommend(user_id, k [, model])` |
//! | [`similar_items`] | `similar_items(item_id, k [, model])` |
//! | [`similar_users`] | `similar_users(user_id, k [, model])` |
//! | [`why_recommended`] | `why_recommended(user_id, item_id [, k [, model]])` |
//! | [`refit`] | `foryou_refit([model [, options_json]])` |
//! | [`evaluate`] | `foryou_evaluate(model, holdout_table, k)` |
//! | [`info`] | `foryou_version()`, `foryou_debug()` |
//!
//! Shared: [`args`] (argument parsing and its errors), [`guard`] (no panic crosses the
//! FFI boundary), [`scalar`] (the trampoline of the scalar functions that fail with
//! SQLite's own codes), [`table_function`] (the eponymous virtual-table module behind
//! the table-valued functions, with the `item_id IN (...)` allow-list), [`in_list`]
//! (SQLite 3.38's interfaces for whole `IN` lists, read from SQLite's API table).

pub mod args;
pub mod evaluate;
pub mod foryou_table;
pub mod guard;
pub mod in_list;
pub mod info;
pub mod recommend;
pub mod refit;
pub mod scalar;
pub mod similar_items;
pub mod similar_users;
pub mod table_function;
pub mod why_recommended;
