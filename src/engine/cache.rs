//! Per-connection caches, and which table a function call means.
//!
//! - Decoded models, keyed by `schema.table` and checked against the stored model tag
//!   (`<table>_model.tag`, new at every refit) on every use, so that a refit by any
//!   connection or process is picked up.
//! - The last resolution of each model argument (which table it names, its options, its
//!   decoded model, and the live popularity once a call before the first refit needed
//!   it), keyed by the argument as given and valid while the [`DbState`] it was read at
//!   is unchanged; then a serving call asks the database nothing but the user's events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::Connection;

use super::options::Options;
use super::serving::Serving;
use crate::error::{Error, Result};
use crate::store::{foryou_tables, quote, Shadow};

/// `PRAGMA data_version`, `PRAGMA schema_version` and this connection's total changes
/// for one schema: a commit by another connection, DDL (CREATE, DROP, RENAME) or any row
/// change by this one changes it. Only meaningful outside explicit transactions (a
/// ROLLBACK undoes changes without any counter going back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DbState {
    data_version: i64,
    schema_version: i64,
    changes: u64,
}

impl DbState {
    fn read(conn: &Connection, schema: &str) -> rusqlite::Result<DbState> {
        let pragma = |name: &str| -> rusqlite::Result<i64> {
            conn.prepare_cached(&format!("PRAGMA {}.{name}", quote(schema)))?
                .query_row([], |row| row.get(0))
        };
        Ok(DbState {
            data_version: pragma("data_version")?,
            schema_version: pragma("schema_version")?,
            changes: conn.total_changes(),
        })
    }
}

/// A model as a serving call needs it.
pub struct Resolved {
    pub shadow: Shadow,
    pub options: Options,
    /// The decoded model; None before the first refit.
    pub model: Option<Arc<Serving>>,
    /// The database state this was resolved at; None inside a transaction.
    pub at: Option<DbState>,
    /// Live popularity (before the first refit), computed at the first call that needs
    /// it and kept as long as this resolution is.
    popularity: OnceLock<Arc<Vec<(i64, f32)>>>,
}

impl Resolved {
    /// Items by live popularity, best first (ties: smaller id first), as of the
    /// database state this was resolved at: the number of distinct users with an event
    /// on the item that is not a skip (the skip rule of `model::feedback`).
    pub fn live_popularity(&self, conn: &Connection) -> Result<Arc<Vec<(i64, f32)>>> {
        if let Some(ranked) = self.popularity.get() {
            return Ok(ranked.clone());
        }
        let feedback = self.options.feedback();
        let mut ranked: Vec<(i64, f32)> = Vec::new();
        let mut last_view: Option<(i64, i64)> = None;
        self.shadow
            .for_each_view(conn, |item, user, watch_time, duration| {
                if feedback.is_skip(watch_time, duration) || last_view == Some((item, user)) {
                    return;
                }
                match ranked.last_mut() {
                    Some((id, viewers)) if *id == item => *viewers += 1.0,
                    _ => ranked.push((item, 1.0)),
                }
                last_view = Some((item, user));
            })?;
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let ranked = Arc::new(ranked);
        let _ = self.popularity.set(ranked.clone());
        Ok(ranked)
    }
}

struct CachedResolved {
    at: DbState,
    resolved: Arc<Resolved>,
}

/// What one connection keeps between calls (shared by its serving functions).
#[derive(Default)]
pub struct ConnectionState {
    models: Mutex<HashMap<String, Arc<Serving>>>,
    /// Keyed by the model argument as given ("" when omitted).
    resolved: Mutex<HashMap<String, CachedResolved>>,
}

impl ConnectionState {
    /// The model a serving call names (`name` as in [`resolve_model`]), its options and
    /// its decoded factors. Outside explicit transactions the answer is kept until the
    /// database changes, so repeated calls cost two PRAGMA reads instead of a schema
    /// scan, an options read and a model-tag read.
    pub fn resolve(
        &self,
        conn: &Connection,
        who: &str,
        name: Option<&str>,
    ) -> Result<Arc<Resolved>> {
        let resolve = |at: Option<DbState>| -> Result<Arc<Resolved>> {
            let shadow = resolve_model(conn, who, name)?;
            let options = load_options(conn, &shadow)?;
            let model = self.serving(conn, &shadow)?;
            Ok(Arc::new(Resolved {
                shadow,
                options,
                model,
                at,
                popularity: OnceLock::new(),
            }))
        };
        if !conn.is_autocommit() {
            return resolve(None);
        }
        let (schema, _) = split_name(name);
        let at = DbState::read(conn, &schema)
            .map_err(|e| Error::sqlite_while(format!("{who}: cannot read schema '{schema}'"), e))?;
        let key = name.unwrap_or("");
        {
            let cache = self
                .resolved
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(cached) = cache.get(key) {
                if cached.at == at {
                    return Ok(cached.resolved.clone());
                }
            }
        }
        let resolved = resolve(Some(at))?;
        self.resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                key.to_string(),
                CachedResolved {
                    at,
                    resolved: resolved.clone(),
                },
            );
        Ok(resolved)
    }

    /// The current model of `shadow`, decoded once per refit; None before the first refit.
    pub fn serving(&self, conn: &Connection, shadow: &Shadow) -> Result<Option<Arc<Serving>>> {
        let key = format!("{}.{}", shadow.schema, shadow.table);
        let tag = shadow.model_tag(conn)?;
        let mut models = self
            .models
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(tag) = tag else {
            models.remove(&key);
            return Ok(None);
        };
        if let Some(cached) = models.get(&key) {
            if cached.tag == tag {
                return Ok(Some(cached.clone()));
            }
        }
        let Some(stored) = shadow.read_model(conn)? else {
            return Ok(None);
        };
        let serving = Arc::new(Serving::new(stored));
        models.insert(key, serving.clone());
        Ok(Some(serving))
    }
}

/// The validated options stored with a table.
pub fn load_options(conn: &Connection, shadow: &Shadow) -> Result<Options> {
    Ok(Options::from_config(&shadow.read_config(conn)?)?)
}

/// Finds the `foryou` table a function call means. `name` may be `table` or
/// `schema.table`; when omitted, the one foryou table of `main` is used.
pub fn resolve_model(conn: &Connection, who: &str, name: Option<&str>) -> Result<Shadow> {
    let (schema, table) = split_name(name);
    let tables = foryou_tables(conn, &schema).map_err(|e| match e {
        Error::Sqlite(e) => Error::sqlite_while(format!("{who}: cannot read schema '{schema}'"), e),
        other => other,
    })?;
    match table {
        Some(table) => match tables.iter().find(|t| t.eq_ignore_ascii_case(&table)) {
            Some(found) => Ok(Shadow::new(&schema, found)),
            None => Err(Error::NoSuchModel {
                who: who.to_string(),
                schema,
                table,
                existing: tables,
            }),
        },
        None => match tables.as_slice() {
            [only] => Ok(Shadow::new(&schema, only)),
            [] => Err(Error::NoModelTable {
                who: who.to_string(),
            }),
            _ => Err(Error::AmbiguousModel {
                who: who.to_string(),
                existing: tables,
            }),
        },
    }
}

/// (schema, table) of a model argument: `table`, `schema.table`, or omitted (`main`, None).
fn split_name(name: Option<&str>) -> (String, Option<String>) {
    match name {
        Some(name) => match name.split_once('.') {
            Some((schema, table)) => (schema.to_string(), Some(table.to_string())),
            None => ("main".to_string(), Some(name.to_string())),
        },
        None => ("main".to_string(), None),
    }
}
