//! Which `foryou` tables a schema holds, and reading the app's own tables that a
//! function names (`foryou_evaluate`'s hold-out).

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::{integer_value, quote};
use crate::error::{Error, Result};

/// `(user_id, item_id)` rows of a table or view `name` (`table` or `schema.table`), for
/// `foryou_evaluate`. Ids are taken as the extension takes them everywhere (integers,
/// integral reals, integer text); any other value is an error that names the column.
pub fn read_holdout(conn: &Connection, name: &str) -> Result<Vec<(i64, i64)>> {
    let qualified = match name.split_once('.') {
        Some((schema, table)) => format!("{}.{}", quote(schema), quote(table)),
        None => quote(name),
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT user_id, item_id FROM {qualified} WHERE user_id IS NOT NULL AND item_id IS NOT NULL"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let id = |i: usize, column: &'static str| -> Result<i64> {
            let value = row.get_ref(i)?;
            integer_value(value).ok_or_else(|| Error::Argument {
                who: "foryou_evaluate".to_string(),
                argument: "holdout_table",
                expected: format!("a table or view whose {column} values are integers"),
                got: format!("{} in column {column} of '{name}'", shown(value)),
            })
        };
        out.push((id(0, "user_id")?, id(1, "item_id")?));
    }
    Ok(out)
}

/// The item ids a block-list leaves out (sorted, distinct): the rows of the table or
/// view `name` (in `schema`, option `exclude_items`) whose `user_id` is NULL, and those
/// of `user_id` when given. `who` names the calling function in errors.
pub fn excluded_items(
    conn: &Connection,
    who: &'static str,
    schema: &str,
    name: &str,
    user_id: Option<i64>,
) -> Result<Vec<i64>> {
    let context = || format!("{who}: cannot read exclude_items = '{name}'");
    let relation = format!("{}.{}", quote(schema), quote(name));
    let sql = if user_id.is_some() {
        format!("SELECT item_id FROM {relation} WHERE user_id = ?1 OR user_id IS NULL")
    } else {
        format!("SELECT item_id FROM {relation} WHERE user_id IS NULL")
    };
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(|e| Error::sqlite_while(context(), e))?;
    let mut rows = match user_id {
        Some(user) => stmt.query([user]),
        None => stmt.query([]),
    }
    .map_err(|e| Error::sqlite_while(context(), e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| Error::sqlite_while(context(), e))? {
        let value = row.get_ref(0)?;
        if value == ValueRef::Null {
            continue;
        }
        out.push(integer_value(value).ok_or_else(|| Error::Argument {
            who: who.to_string(),
            argument: "exclude_items",
            expected: "a table or view whose item_id values are integers".to_string(),
            got: format!("{} in column item_id of '{name}'", shown(value)),
        })?);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A value as a message shows it.
fn shown(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("a {}-byte BLOB", b.len()),
    }
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

/// One token of a `CREATE VIRTUAL TABLE` statement, comments and whitespace skipped.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    /// A bare word: a keyword or an unquoted identifier.
    Word(&'a str),
    /// A quoted identifier (`"..."`, `` `...` ``, `[...]`) or a string literal
    /// (`'...'`), dequoted: SQLite accepts either where a name is expected.
    Quoted(String),
    /// Any other character (`.`, `(`, `,`, ...).
    Punct(char),
}

/// The tokens of `sql` up to the first `(` (the module arguments are not needed), or
/// None when a quote or a block comment is not closed.
fn tokens(sql: &str) -> Option<Vec<Token<'_>>> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let c = bytes[at];
        match c {
            c if c.is_ascii_whitespace() => at += 1,
            b'-' if bytes.get(at + 1) == Some(&b'-') => {
                at = sql[at..].find('\n').map_or(bytes.len(), |n| at + n + 1);
            }
            b'/' if bytes.get(at + 1) == Some(&b'*') => {
                at = at + 2 + sql[at + 2..].find("*/")? + 2;
            }
            b'"' | b'`' | b'\'' | b'[' => {
                let close = if c == b'[' { b']' } else { c };
                let mut text = String::new();
                let mut from = at + 1;
                loop {
                    let end = from + bytes[from..].iter().position(|&b| b == close)?;
                    text.push_str(&sql[from..end]);
                    // A doubled quote stands for itself (not inside [...]).
                    if close != b']' && bytes.get(end + 1) == Some(&close) {
                        text.push(char::from(close));
                        from = end + 2;
                    } else {
                        at = end + 1;
                        break;
                    }
                }
                out.push(Token::Quoted(text));
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || !c.is_ascii() => {
                let end = sql[at..]
                    .find(|ch: char| {
                        ch.is_ascii() && !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '$')
                    })
                    .map_or(sql.len(), |n| at + n);
                out.push(Token::Word(&sql[at..end]));
                at = end;
            }
            b'(' => return Some(out),
            _ => {
                // ASCII here (non-ASCII starts a word), so one byte is one char.
                out.push(Token::Punct(char::from(c)));
                at += 1;
            }
        }
    }
    Some(out)
}

/// The module name of a `CREATE VIRTUAL TABLE [IF NOT EXISTS] [schema.]name USING
/// module[(...)]` statement, dequoted; None for any other text.
fn module_of(sql: &str) -> Option<String> {
    let tokens = tokens(sql)?;
    let mut rest = tokens.as_slice();
    let mut keyword = |word: &str| match rest.first() {
        Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => {
            rest = &rest[1..];
            true
        }
        _ => false,
    };
    if !(keyword("CREATE") && keyword("VIRTUAL") && keyword("TABLE")) {
        return None;
    }
    // `IF NOT EXISTS` only as the whole phrase: `if` alone may be the table's name.
    if matches!(rest, [Token::Word(a), Token::Word(b), Token::Word(c), ..]
        if a.eq_ignore_ascii_case("IF") && b.eq_ignore_ascii_case("NOT") && c.eq_ignore_ascii_case("EXISTS"))
    {
        rest = &rest[3..];
    }
    let is_name = |t: &Token<'_>| matches!(t, Token::Word(_) | Token::Quoted(_));
    rest = match rest {
        [schema, Token::Punct('.'), table, ..] if is_name(schema) && is_name(table) => &rest[3..],
        [table, ..] if is_name(table) => &rest[1..],
        _ => return None,
    };
    match rest {
        [Token::Word(using), module] if using.eq_ignore_ascii_case("USING") => match module {
            Token::Word(name) => Some((*name).to_string()),
            Token::Quoted(name) => Some(name.clone()),
            Token::Punct(_) => None,
        },
        _ => None,
    }
}

/// `PRAGMA data_version` and `PRAGMA schema_version` of `schema` (they fail on a schema
/// that is not attached).
pub fn schema_versions(conn: &Connection, schema: &str) -> rusqlite::Result<(i64, i64)> {
    let pragma = |name: &str| -> rusqlite::Result<i64> {
        conn.prepare_cached(&format!("PRAGMA {}.{name}", quote(schema)))?
            .query_row([], |row| row.get(0))
    };
    Ok((pragma("data_version")?, pragma("schema_version")?))
}

/// A hash of the name of the file attached as `schema` ("" when it has none); 0 when
/// the schema does not exist. One `sqlite3_db_filename` call, no SQL.
pub fn file_identity(conn: &Connection, schema: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let Ok(schema) = std::ffi::CString::new(schema) else {
        return 0;
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    // SAFETY: the handle of a live connection, used on this thread during this call.
    // The returned name belongs to the schema's pager and stays valid until the schema
    // is detached or the connection closed; it is only read here, before any SQL runs.
    // NULL means no such schema.
    unsafe {
        let name = rusqlite::ffi::sqlite3_db_filename(conn.handle(), schema.as_ptr());
        if name.is_null() {
            return 0;
        }
        std::ffi::CStr::from_ptr(name).to_bytes().hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::module_of as module;

    #[test]
    fn module_names_are_found() {
        assert_eq!(
            module("CREATE VIRTUAL TABLE feed USING foryou(factors=3)").as_deref(),
            Some("foryou")
        );
        assert_eq!(
            module("create virtual table x using   \"FORYOU\"").as_deref(),
            Some("FORYOU")
        );
        assert_eq!(
            module("CREATE VIRTUAL TABLE x USING fts5(a)").as_deref(),
            Some("fts5")
        );
        assert_eq!(
            module("CREATE VIRTUAL TABLE x USING foryou").as_deref(),
            Some("foryou")
        );
    }

    #[test]
    fn comments_are_skipped() {
        for sql in [
            "CREATE VIRTUAL TABLE feed /* USING fts5 */ USING foryou(factors = 4)",
            "CREATE VIRTUAL TABLE feed -- USING fts5\n USING foryou",
            "CREATE /* a */ VIRTUAL/**/TABLE--x\nfeed USING/* fts5 */foryou ( )",
            "CREATE VIRTUAL TABLE feed USING foryou -- trailing",
        ] {
            assert_eq!(module(sql).as_deref(), Some("foryou"), "{sql}");
        }
        assert_eq!(
            module("CREATE VIRTUAL TABLE f /* USING foryou */ USING fts5(a)").as_deref(),
            Some("fts5")
        );
        // An unclosed comment or quote: not a statement SQLite stored.
        assert_eq!(module("CREATE VIRTUAL TABLE f /* USING foryou"), None);
        assert_eq!(module("CREATE VIRTUAL TABLE \"f USING foryou"), None);
    }

    #[test]
    fn quoted_names_are_names() {
        let cases = [
            (
                "CREATE VIRTUAL TABLE \"x USING foryou\" USING fts5(a)",
                "fts5",
            ),
            (
                "CREATE VIRTUAL TABLE `x USING foryou` USING fts5(a)",
                "fts5",
            ),
            (
                "CREATE VIRTUAL TABLE [x USING foryou] USING fts5(a)",
                "fts5",
            ),
            (
                "CREATE VIRTUAL TABLE 'x USING foryou' USING fts5(a)",
                "fts5",
            ),
            (
                "CREATE VIRTUAL TABLE \"a\"\"USING foryou\" USING fts5(a)",
                "fts5",
            ),
            (
                "CREATE VIRTUAL TABLE 'it''s USING foryou' USING fts5",
                "fts5",
            ),
            ("CREATE VIRTUAL TABLE [my.feed] USING [foryou]", "foryou"),
            (
                "CREATE VIRTUAL TABLE feed USING 'foryou'(factors = 4)",
                "foryou",
            ),
            ("CREATE VIRTUAL TABLE feed USING `foryou`", "foryou"),
            (
                "CREATE VIRTUAL TABLE f USING fts5(\"USING foryou\", 'USING foryou')",
                "fts5",
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(module(sql).as_deref(), Some(expected), "{sql}");
        }
    }

    #[test]
    fn if_not_exists_and_schemas() {
        let cases = [
            "CREATE VIRTUAL TABLE IF NOT EXISTS feed USING foryou",
            "create virtual table if not exists main.feed using foryou(factors = 4)",
            "CREATE VIRTUAL TABLE aux . \"feed\" USING foryou",
            "CREATE VIRTUAL TABLE \"my.db\".\"my.feed\" USING foryou",
            // Keywords as names.
            "CREATE VIRTUAL TABLE if USING foryou",
            "CREATE VIRTUAL TABLE using USING foryou",
            "CREATE VIRTUAL TABLE main.using USING foryou",
        ];
        for sql in cases {
            assert_eq!(module(sql).as_deref(), Some("foryou"), "{sql}");
        }
    }

    #[test]
    fn other_text_has_no_module() {
        for sql in [
            "",
            "CREATE TABLE feed(a) -- USING foryou",
            "CREATE VIRTUAL TABLE USING foryou",
            "CREATE VIRTUAL TABLE feed foryou",
            "CREATE VIRTUAL TABLE a.b.c USING foryou",
            "CREATE VIRTUAL TABLE feed USING",
            "CREATE VIRTUAL TABLE feed USING (x)",
            "CREATE VIRTUAL TABLE feed USING foryou extra",
            "CREATE VIRTUAL TABLE feed USING foryou.x",
        ] {
            assert_eq!(module(sql), None, "{sql}");
        }
        assert_eq!(
            module("CREATE VIRTUAL TABLE f\u{e9}ed USING \u{fc}ber(a)").as_deref(),
            Some("\u{fc}ber")
        );
    }
}
