//! Which `foryou` tables a schema holds, and reading the app's own tables that a
//! function names (`foryou_evaluate`'s hold-out).

use rusqlite::Connection;

use super::quote;
use crate::error::Result;

/// `(user_id, item_id)` rows of a table or view `name` (`table` or `schema.table`).
pub fn read_holdout(conn: &Connection, name: &str) -> Result<Vec<(i64, i64)>> {
    let qualified = match name.split_once('.') {
        Some((schema, table)) => format!("{}.{}", quote(schema), quote(table)),
        None => quote(name),
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT user_id, item_id FROM {qualified} WHERE user_id IS NOT NULL AND item_id IS NOT NULL"
    ))?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Names of the `foryou` tables in `schema`, from its schema table, sorted.
pub fn foryou_tables(conn: &Connection, schema: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT name, sql FROM {}.sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'",
        quote(schema)
    ))?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut names = Vec::new();
    for row in rows {
        let (name, sql) = row?;
        if module_of(&sql).is_some_and(|m| m.eq_ignore_ascii_case("foryou")) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The module name in a `CREATE VIRTUAL TABLE ... USING module(...)` statement.
fn module_of(sql: &str) -> Option<String> {
    let upper = sql.to_ascii_uppercase();
    let mut from = 0;
    while let Some(pos) = upper[from..].find("USING") {
        let at = from + pos;
        let before_ok = at == 0 || !upper.as_bytes()[at - 1].is_ascii_alphanumeric();
        let rest = sql[at + 5..].trim_start();
        if before_ok && rest.len() < sql.len() - at - 5 {
            let name: String = rest
                .trim_start_matches(['"', '`', '['])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return Some(name);
        }
        from = at + 5;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::module_of;

    #[test]
    fn module_names_are_found() {
        assert_eq!(
            module_of("CREATE VIRTUAL TABLE feed USING foryou(factors=3)").as_deref(),
            Some("foryou")
        );
        assert_eq!(
            module_of("create virtual table x using   \"FORYOU\"").as_deref(),
            Some("FORYOU")
        );
        assert_eq!(
            module_of("CREATE VIRTUAL TABLE x USING fts5(a)").as_deref(),
            Some("fts5")
        );
    }
}
