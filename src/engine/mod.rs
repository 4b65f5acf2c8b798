//! The engine: what the SQL objects ask for, between them and the store.
//!
//! - [`options`]: every option, declared once; parsing, validation, defaults.
//! - [`refit`]: the refit pipeline (read events, fit on worker threads, write back).
//! - [`serving`]: a decoded model in memory: ranking, fold-in, exploration.
//! - [`cache`]: per-connection caches of decoded models and resolved calls; which
//!   table a model argument names.
//! - [`feed`]: `recommend`, `similar_items` and evaluation on a resolved model.
//! - [`workers`]: thread pools that never outlive the call that started them.

pub mod cache;
pub mod feed;
pub mod options;
pub mod refit;
pub mod serving;
pub mod workers;
