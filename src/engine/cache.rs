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
use crate::store::{self, foryou_tables, refuse_inside_content_read, Shadow};

/// Which database file a schema is, `PRAGMA data_version`, `PRAGMA schema_version` and
/// this connection's total changes for one schema: a commit by another connection, DDL
/// (CREATE, DROP, RENAME), any row change by this one, or a DETACH and ATTACH of another
/// file under the same schema name changes it. Only meaningful outside explicit
/// transactions (a ROLLBACK undoes changes without any counter going back).
///
/// The file is identified by a hash of its name (`sqlite3_db_filename`, one call, no
/// SQL): the counters alone may well be equal in two files. In-memory and temporary
/// databases have no name; another one attached under the same schema name can only be
/// filled by this connection, which moves `total_changes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DbState {
    file: u64,
    data_version: i64,
    schema_version: i64,
    changes: u64,
}

impl DbState {
    fn read(conn: &Connection, schema: &str) -> rusqlite::Result<DbState> {
        let (data_version, schema_version) = store::schema_versions(conn, schema)?;
        Ok(DbState {
            file: store::file_identity(conn, schema),
            data_version,
            schema_version,
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
    /// The state of every schema the answer depends on (see [`Candidates::schemas`]).
    at: [Option<DbState>; 2],
    resolved: Arc<Resolved>,
}

/// A decoded model, and the file it was decoded from.
struct CachedModel {
    file: u64,
    serving: Arc<Serving>,
}

/// What one connection keeps between calls (shared by its serving functions).
#[derive(Default)]
pub struct ConnectionState {
    /// Keyed by (schema, table): one entry per table, replaced when its file or tag changes.
    models: Mutex<HashMap<(String, String), CachedModel>>,
    /// Keyed by the model argument as given ("" when omitted).
    resolved: Mutex<HashMap<String, CachedResolved>>,
    /// The tables with content whose plans passed [`Shadow::check_content_plan`], and
    /// the file and schema version they passed at (a new index, view or table moves it).
    content_plans: Mutex<HashMap<(String, String), (u64, i64)>>,
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
        refuse_inside_content_read(who)?;
        let candidates = Candidates::parse(who, name)?;
        // `at`: the state of each schema of `candidates.schemas()`; the resolution keeps
        // the one of the schema the table was found in (what fold-in stamps compare).
        let resolve = |at: Option<&[Option<DbState>; 2]>| -> Result<Arc<Resolved>> {
            let mut shadow = candidates.resolve(conn, who)?;
            let options = load_options(conn, &mut shadow)?;
            let at = at.and_then(|at| {
                candidates
                    .schemas()
                    .position(|s| s.eq_ignore_ascii_case(&shadow.schema))
                    .and_then(|i| at[i])
            });
            if shadow.content().is_some() {
                self.check_content_plan(conn, &shadow, at)?;
                super::refit::refit_if_due(conn, &shadow, &options)?;
            }
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
        // The first schema must be readable. A second one (the `x` of an unquoted `x.y`
        // when `main` may hold a table named `x.y`) need not be: its state is then None,
        // and its error is the answer only if `main` has no such table.
        let mut at = [None, None];
        let mut unreadable = None;
        for (i, schema) in candidates.schemas().enumerate().take(2) {
            match DbState::read(conn, schema) {
                Ok(state) => at[i] = Some(state),
                Err(e) => {
                    let e = Error::sqlite_while(format!("{who}: cannot read schema '{schema}'"), e);
                    if i == 0 {
                        return Err(e);
                    }
                    unreadable = Some(e);
                }
            }
        }
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
        let resolved = resolve(Some(&at)).map_err(|e| unreadable.unwrap_or(e))?;
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

    /// [`Shadow::check_content_plan`], once per schema version (never kept inside a
    /// transaction, where `at` is None).
    fn check_content_plan(
        &self,
        conn: &Connection,
        shadow: &Shadow,
        at: Option<DbState>,
    ) -> Result<()> {
        let key = (shadow.schema.to_ascii_lowercase(), shadow.table.clone());
        let passed_at = at.map(|s| (s.file, s.schema_version));
        let plans = || {
            self.content_plans
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if passed_at.is_some() && plans().get(&key) == passed_at.as_ref() {
            return Ok(());
        }
        // Not under the lock: the check runs SQL.
        shadow.check_content_plan(conn)?;
        if let Some(passed_at) = passed_at {
            plans().insert(key, passed_at);
        }
        Ok(())
    }

    /// The current model of `shadow`, decoded once per refit; None before the first refit.
    pub fn serving(&self, conn: &Connection, shadow: &Shadow) -> Result<Option<Arc<Serving>>> {
        let key = (shadow.schema.clone(), shadow.table.clone());
        let file = store::file_identity(conn, &shadow.schema);
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
            if cached.file == file && cached.serving.tag == tag {
                return Ok(Some(cached.serving.clone()));
            }
        }
        let Some(stored) = shadow.read_model(conn)? else {
            return Ok(None);
        };
        let serving = Arc::new(Serving::new(stored));
        models.insert(
            key,
            CachedModel {
                file,
                serving: serving.clone(),
            },
        );
        Ok(Some(serving))
    }
}

/// The validated options stored with a table; a table with `content` is pointed at its
/// content (checked: readable, with the event columns).
pub fn load_options(conn: &Connection, shadow: &mut Shadow) -> Result<Options> {
    refuse_inside_content_read(&shadow.table)?;
    let options = Options::from_config(&shadow.read_config(conn)?)?;
    if !options.content.is_empty() {
        *shadow = shadow.reading(conn, &options.content, &options.content_rowid)?;
        check_content_options(shadow, &options)?;
    }
    Ok(options)
}

/// Refuses options a table's content cannot serve: recency without event times.
pub fn check_content_options(shadow: &Shadow, options: &Options) -> Result<()> {
    match shadow.content() {
        Some(content) if !content.has_ts && options.half_life_days > 0.0 => Err(Error::Content {
            table: shadow.table.clone(),
            content: content.name.clone(),
            problem: crate::error::ContentProblem::NoTimes {
                option: "half_life_days",
            },
        }),
        _ => Ok(()),
    }
}

/// Finds the `foryou` table a function call means. `name` may be `table` or
/// `schema.table`, either part in double quotes (or backquotes, or brackets) when it
/// holds a dot; an unquoted name with a dot is first looked up as a whole in `main`.
/// When omitted, the one foryou table of `main` is used.
pub fn resolve_model(conn: &Connection, who: &str, name: Option<&str>) -> Result<Shadow> {
    refuse_inside_content_read(who)?;
    Candidates::parse(who, name)?.resolve(conn, who)
}

/// The (schema, table) pairs a model argument may mean, in order of preference: one,
/// or for an unquoted name with a dot, the whole name in `main` and then the name split
/// at its first dot. `table` None: the only foryou table of the schema.
struct Candidates(Vec<(String, Option<String>)>);

impl Candidates {
    fn parse(who: &str, name: Option<&str>) -> Result<Candidates> {
        let Some(name) = name else {
            return Ok(Candidates(vec![("main".to_string(), None)]));
        };
        if let Some(parts) = quoted_parts(name) {
            let bad = || Error::Argument {
                who: who.to_string(),
                argument: "model",
                expected: "a table name, or schema.table, with a part that holds a dot in \
                           double quotes (such as aux.\"my.table\")"
                    .to_string(),
                got: format!("'{name}'"),
            };
            return match parts.map_err(|()| bad())?.as_slice() {
                [table] => Ok(Candidates(vec![("main".to_string(), Some(table.clone()))])),
                [schema, table] => Ok(Candidates(vec![(schema.clone(), Some(table.clone()))])),
                _ => Err(bad()),
            };
        }
        let whole = ("main".to_string(), Some(name.to_string()));
        Ok(Candidates(match name.split_once('.') {
            Some((schema, table)) => vec![whole, (schema.to_string(), Some(table.to_string()))],
            None => vec![whole],
        }))
    }

    /// The distinct schemas the answer depends on (at most two).
    fn schemas(&self) -> impl Iterator<Item = &str> {
        let first = self.0.first().map_or("main", |c| c.0.as_str());
        std::iter::once(first).chain(
            self.0
                .iter()
                .skip(1)
                .map(|c| c.0.as_str())
                .filter(move |s| !s.eq_ignore_ascii_case(first)),
        )
    }

    /// The first candidate that names a foryou table; else the last one's error.
    fn resolve(&self, conn: &Connection, who: &str) -> Result<Shadow> {
        let Some((last, preferred)) = self.0.split_last() else {
            return find_table(conn, who, "main", None);
        };
        for (schema, table) in preferred {
            // A preferred candidate is a guess: any failure moves on to the next.
            if let Ok(shadow) = find_table(conn, who, schema, table.as_deref()) {
                return Ok(shadow);
            }
        }
        find_table(conn, who, &last.0, last.1.as_deref())
    }
}

/// The parts of a model argument in which some part is quoted (starts with `"`, `` ` ``
/// or `[`): None when none is, Err when it is not one or two parts joined by a dot,
/// each quoted (a doubled quote inside stands for itself) or free of dots and quotes.
fn quoted_parts(name: &str) -> Option<std::result::Result<Vec<String>, ()>> {
    let starts_quoted = |part: &str| part.starts_with(['"', '`', '[']);
    if !starts_quoted(name) && !name.split('.').skip(1).any(starts_quoted) {
        return None;
    }
    let mut parts = Vec::new();
    let mut rest = name;
    loop {
        let (part, after) = if let Some(open @ ('"' | '`' | '[')) = rest.chars().next() {
            let close = if open == '[' { ']' } else { open };
            let mut part = String::new();
            let mut body = &rest[1..];
            loop {
                let Some(end) = body.find(close) else {
                    return Some(Err(()));
                };
                part.push_str(&body[..end]);
                body = &body[end + 1..];
                // A doubled quote stands for itself (not inside [...]).
                if close == ']' || !body.starts_with(close) {
                    break;
                }
                part.push(close);
                body = &body[1..];
            }
            (part, body)
        } else {
            let end = rest.find('.').unwrap_or(rest.len());
            let part = &rest[..end];
            if part.is_empty() || part.contains(['"', '`', '[']) {
                return Some(Err(()));
            }
            (part.to_string(), &rest[end..])
        };
        parts.push(part);
        if after.is_empty() {
            return Some(Ok(parts));
        }
        match after.strip_prefix('.') {
            Some(next) if parts.len() < 2 => rest = next,
            _ => return Some(Err(())),
        }
    }
}

/// The foryou table `table` of `schema`, or its only one when `table` is None.
fn find_table(conn: &Connection, who: &str, schema: &str, table: Option<&str>) -> Result<Shadow> {
    let tables = foryou_tables(conn, schema).map_err(|e| match e {
        Error::Sqlite(e) => Error::sqlite_while(format!("{who}: cannot read schema '{schema}'"), e),
        other => other,
    })?;
    match table {
        Some(table) => match tables.iter().find(|t| t.eq_ignore_ascii_case(table)) {
            Some(found) => Ok(Shadow::new(schema, found)),
            None => Err(Error::NoSuchModel {
                who: who.to_string(),
                schema: schema.to_string(),
                table: table.to_string(),
                existing: tables,
            }),
        },
        None => match tables.as_slice() {
            [only] => Ok(Shadow::new(schema, only)),
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

#[cfg(test)]
mod tests {
    use super::{quoted_parts, Candidates};

    fn parts(name: &str) -> Option<Result<Vec<String>, ()>> {
        quoted_parts(name)
    }

    fn ok(parts: &[&str]) -> Vec<String> {
        parts.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn quoted_model_names() {
        assert_eq!(parts("feed"), None);
        assert_eq!(parts("aux.feed"), None);
        assert_eq!(parts("my.table"), None);
        assert_eq!(parts("a\"b"), None);
        assert_eq!(parts("\"my.table\""), Some(Ok(ok(&["my.table"]))));
        assert_eq!(
            parts("aux.\"my.table\""),
            Some(Ok(ok(&["aux", "my.table"])))
        );
        assert_eq!(parts("\"my.db\".feed"), Some(Ok(ok(&["my.db", "feed"]))));
        assert_eq!(
            parts("`my.db`.[my.table]"),
            Some(Ok(ok(&["my.db", "my.table"])))
        );
        assert_eq!(parts("\"a\"\"b.c\""), Some(Ok(ok(&["a\"b.c"]))));
        assert_eq!(parts("[a\"b]"), Some(Ok(ok(&["a\"b"]))));
        for bad in [
            "\"my.table",
            "\"a\".\"b\".\"c\"",
            "\"a\"b",
            "\"a\".",
            ".\"a\"",
            "x.y.\"z\"",
            "\"a\" . b",
        ] {
            assert_eq!(parts(bad), Some(Err(())), "{bad}");
        }
    }

    #[test]
    fn unquoted_dotted_names_try_the_whole_name_first() {
        let c = Candidates::parse("recommend", Some("my.table")).unwrap();
        assert_eq!(
            c.0,
            vec![
                ("main".to_string(), Some("my.table".to_string())),
                ("my".to_string(), Some("table".to_string()))
            ]
        );
        assert_eq!(c.schemas().collect::<Vec<_>>(), ["main", "my"]);
        let c = Candidates::parse("recommend", Some("main.feed")).unwrap();
        assert_eq!(c.schemas().collect::<Vec<_>>(), ["main"]);
        let c = Candidates::parse("recommend", None).unwrap();
        assert_eq!(c.0, vec![("main".to_string(), None)]);
        let e = Candidates::parse("recommend", Some("\"my.table"))
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "recommend: model must be a table name, or schema.table, with a part that holds \
             a dot in double quotes (such as aux.\"my.table\"), got '\"my.table'"
        );
    }
}
