//! Per-connection state: the decoded models this connection has served, keyed by
//! `schema.table`, and checked against the stored model tag on every use so that a
//! refit by any connection or process is picked up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, Result};

use crate::guard::sql_error;
use crate::serving::Serving;
use crate::store::{foryou_tables, quote, Shadow};

/// Live popularity of one table and the database state it was computed at.
struct Popularity {
    /// (`PRAGMA data_version`, `PRAGMA schema_version`, this connection's total
    /// changes): a commit by another connection, DDL (DROP, RENAME) or any row change
    /// by this one changes it.
    at: (i64, i64, u64),
    ranked: Arc<Vec<(i64, f32)>>,
}

#[derive(Default)]
pub struct ConnectionState {
    models: Mutex<HashMap<String, Arc<Serving>>>,
    popularity: Mutex<HashMap<String, Popularity>>,
}

impl ConnectionState {
    /// Items by live popularity, best first (ties: smaller id first). Outside explicit
    /// transactions the ranking is cached until the database changes; inside one it is
    /// recomputed every call, since a ROLLBACK undoes changes without any counter
    /// going back.
    pub fn live_popularity(
        &self,
        conn: &Connection,
        shadow: &Shadow,
    ) -> Result<Arc<Vec<(i64, f32)>>> {
        let compute = || -> Result<Arc<Vec<(i64, f32)>>> {
            let options = shadow.load_options(conn)?;
            let mut ranked =
                shadow.live_popularity(conn, options.skip_ratio, options.skip_seconds)?;
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            Ok(Arc::new(ranked))
        };
        if !conn.is_autocommit() {
            return compute();
        }
        let key = format!("{}.{}", shadow.schema, shadow.table);
        let pragma = |name: &str| -> Result<i64> {
            conn.query_row(
                &format!("PRAGMA {}.{name}", quote(&shadow.schema)),
                [],
                |row| row.get(0),
            )
        };
        let at = (
            pragma("data_version")?,
            pragma("schema_version")?,
            conn.total_changes(),
        );
        let mut cache = self
            .popularity
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cached) = cache.get(&key) {
            if cached.at == at {
                return Ok(cached.ranked.clone());
            }
        }
        let ranked = compute()?;
        cache.insert(
            key,
            Popularity {
                at,
                ranked: ranked.clone(),
            },
        );
        Ok(ranked)
    }

    /// The current model of `shadow`, decoded once per refit; None before the first refit.
    pub fn serving(&self, conn: &Connection, shadow: &Shadow) -> Result<Option<Arc<Serving>>> {
        let key = format!("{}.{}", shadow.schema, shadow.table);
        let tag = shadow.model_tag(conn)?;
        let mut models = self
            .models
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
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

/// Finds the `foryou` table a function call means. `name` may be `table` or
/// `schema.table`; when omitted, the one foryou table of `main` is used.
pub fn resolve_model(conn: &Connection, who: &str, name: Option<&str>) -> Result<Shadow> {
    let (schema, table) = match name {
        Some(name) => match name.split_once('.') {
            Some((schema, table)) => (schema.to_string(), Some(table.to_string())),
            None => ("main".to_string(), Some(name.to_string())),
        },
        None => ("main".to_string(), None),
    };
    let tables = foryou_tables(conn, &schema)
        .map_err(|e| sql_error(format!("{who}: cannot read schema '{schema}' ({e})")))?;
    let listed = || {
        if tables.is_empty() {
            "none".to_string()
        } else {
            tables.join(", ")
        }
    };
    match table {
        Some(table) => match tables.iter().find(|t| t.eq_ignore_ascii_case(&table)) {
            Some(found) => Ok(Shadow::new(&schema, found)),
            None => Err(sql_error(format!(
                "{who}: no foryou table named '{table}' in schema '{schema}' (foryou tables: {})",
                listed()
            ))),
        },
        None => match tables.as_slice() {
            [only] => Ok(Shadow::new(&schema, only)),
            [] => Err(sql_error(format!(
                "{who}: no foryou table in this database; create one with CREATE VIRTUAL TABLE feed USING foryou()"
            ))),
            _ => Err(sql_error(format!(
                "{who}: {} foryou tables exist ({}); name one as the model argument",
                tables.len(),
                listed()
            ))),
        },
    }
}
