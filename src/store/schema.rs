//! A table's lifetime: the DDL of its shadow tables, its stored options and format
//! version, renaming and dropping.

use rusqlite::types::Value;
use rusqlite::{params, Connection};

use super::{Shadow, FORMAT_VERSION, PARTS};
use crate::error::{Error, Result};

impl Shadow {
    /// The exact DDL of every shadow object, in creation order.
    ///
    /// `feed_events` carries `UNIQUE(user_id, item_id, id)`: an automatic covering index
    /// for a user's watched items that SQLite renames with its table. A table with
    /// content has no `_events`: its events stay in the app's table.
    pub fn create_sql(&self) -> Vec<String> {
        let mut ddl = vec![
            format!(
                "CREATE TABLE {}(key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID",
                self.name("config")
            ),
            format!(
                "CREATE TABLE {}(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, \
                 item_id INTEGER NOT NULL, watch_time REAL NOT NULL, duration REAL NOT NULL, \
                 ts INTEGER NOT NULL, UNIQUE(user_id, item_id, id))",
                self.name("events")
            ),
            format!(
                "CREATE TABLE {}(key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID",
                self.name("model")
            ),
            format!(
                "CREATE TABLE {}(chunk INTEGER PRIMARY KEY, ids BLOB NOT NULL, factors BLOB NOT NULL)",
                self.name("users")
            ),
            format!(
                "CREATE TABLE {}(chunk INTEGER PRIMARY KEY, ids BLOB NOT NULL, \
                 factors BLOB NOT NULL, popularity BLOB NOT NULL)",
                self.name("items")
            ),
        ];
        if self.content().is_some() {
            ddl.remove(1);
        }
        ddl
    }

    /// Creates the shadow tables and stores the format version and `config` (xCreate).
    pub fn create(&self, conn: &Connection, config: &[(&str, Value)]) -> Result<()> {
        for sql in self.create_sql() {
            conn.execute_batch(&sql)?;
        }
        let mut insert = conn.prepare_cached(&self.sql.config_insert)?;
        insert.execute(params!["format_version", FORMAT_VERSION])?;
        for (key, value) in config {
            insert.execute(params![key, value])?;
        }
        Ok(())
    }

    /// The stored options as (key, value), after checking the format version (xConnect).
    pub fn read_config(&self, conn: &Connection) -> Result<Vec<(String, Value)>> {
        let mut stmt = conn.prepare_cached(&self.sql.config_select)?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))?;
        let mut version = None;
        let mut config = Vec::new();
        for row in rows {
            let (key, value) = row.map_err(|e| self.read_error("config", e))?;
            if key == "format_version" {
                version = match value {
                    Value::Integer(v) => Some(v),
                    _ => None,
                };
            } else {
                config.push((key, value));
            }
        }
        match version {
            Some(FORMAT_VERSION) => Ok(config),
            found => Err(Error::Format {
                table: self.table.clone(),
                found,
            }),
        }
    }

    /// Drops every shadow table (xDestroy).
    pub fn destroy(&self, conn: &Connection) -> Result<()> {
        for part in PARTS.iter().rev() {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {}", self.name(part)))?;
        }
        Ok(())
    }

    /// Renames every shadow table to follow the virtual table (xRename). One that is
    /// missing (a damaged file) is left missing: the table still follows its name.
    pub fn rename(&self, conn: &Connection, new_table: &str) -> Result<Shadow> {
        let renamed = match self.content() {
            Some(content) => Shadow::new(&self.schema, new_table).with_content(content.clone()),
            None => Shadow::new(&self.schema, new_table),
        };
        let mut exists = conn.prepare(&format!(
            "SELECT 1 FROM {}.sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            super::quote(&self.schema)
        ))?;
        for part in PARTS {
            if !exists.exists([format!("{}_{part}", self.table)])? {
                continue;
            }
            conn.execute_batch(&format!(
                "ALTER TABLE {} RENAME TO {}",
                self.name(part),
                renamed.bare(part)
            ))?;
        }
        Ok(renamed)
    }
}
