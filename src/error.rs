//! The one error type above the model, and its conversion into a SQL error: the only
//! place where an error becomes what SQLite reports.
//!
//! Every message names the function or table it comes from (`who`), the argument or
//! option, what was expected and what was given. An error SQLite caused keeps SQLite's
//! own code (BUSY, FULL, NOMEM, INTERRUPT, READONLY, ...); every other error is
//! `SQLITE_ERROR` with its message.

use std::fmt;

use rusqlite::ffi;

use crate::model::ModelError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum Error {
    /// SQLite failed; reported with its code and message.
    Sqlite(rusqlite::Error),
    /// SQLite failed at a step worth naming: `{context} ({SQLite's message}){hint}`,
    /// code kept.
    SqliteWhile {
        context: String,
        source: rusqlite::Error,
        hint: &'static str,
    },
    /// `{who}: {argument} must be {expected}, got {got}`.
    Argument {
        who: String,
        argument: &'static str,
        expected: String,
        got: String,
    },
    /// `{who}: {argument} too large, provided {got}, maximum {max}`.
    TooLarge {
        who: String,
        argument: &'static str,
        got: i64,
        max: i64,
    },
    /// `{who}: missing argument {argument}; call it as {usage}`.
    MissingArgument {
        who: &'static str,
        argument: &'static str,
        usage: String,
    },
    /// A `key = value` option of CREATE or a key of `options_json`.
    Option(OptionError),
    /// The model argument names no `foryou` table.
    NoSuchModel {
        who: String,
        schema: String,
        table: String,
        existing: Vec<String>,
    },
    /// The model argument was omitted and the schema has no `foryou` table.
    NoModelTable { who: String },
    /// The model argument was omitted and the schema has several `foryou` tables.
    AmbiguousModel { who: String, existing: Vec<String> },
    /// A refit of a table without events.
    NoEvents { who: &'static str, table: String },
    /// An incremental refit asked for another embedding size than the stored model's.
    FactorsMismatch {
        who: &'static str,
        stored: usize,
        asked: usize,
    },
    /// The fit did not converge; nothing was stored.
    Diverged {
        who: &'static str,
        source: ModelError,
    },
    /// A shadow table holds what this build cannot have written.
    Damaged {
        table: String,
        part: &'static str,
        detail: String,
    },
    /// The table was written in another storage format (or none is recorded).
    Format { table: String, found: Option<i64> },
    /// An INSERT whose own statement reads the shadow table the events go to.
    ReadsOwnEvents { table: String },
    /// An INSERT or UPDATE chose a rowid that another event has.
    RowidTaken { table: String, id: i64 },
    /// The refit's worker threads could not be started.
    Threads {
        who: &'static str,
        threads: usize,
        detail: String,
    },
    /// Not enough memory for `what` (about `needed` bytes): more than SQLite's heap
    /// limit (`limit`: its bytes and the PRAGMA that set it), or refused by the
    /// allocator (`limit` None). Reported as `SQLITE_NOMEM`; nothing was changed.
    OutOfMemory {
        who: &'static str,
        what: &'static str,
        needed: u64,
        limit: Option<(u64, &'static str)>,
    },
    /// A table with `content = '...'` cannot use its content, or was asked to write.
    Content {
        table: String,
        content: String,
        problem: ContentProblem,
    },
    /// A `foryou` object reached while a `foryou` table reads its content: the content
    /// reads `foryou` (a loop). Its reader reports [`ContentProblem::ReadsItself`].
    ContentLoop { who: String },
    /// A bug: a panic caught at the FFI boundary.
    Internal { who: String, detail: String },
}

/// What is wrong with a table's external content.
#[derive(Debug, PartialEq)]
pub enum ContentProblem {
    /// SQLite cannot read it (dropped, renamed, a column gone): SQLite's message.
    Unreadable { detail: String },
    /// It lacks event columns (the id column first when it is the one missing).
    Columns { missing: Vec<String> },
    /// Its plan for one user's events scans a whole table: the plan, and the index to make.
    NoUserIndex { plan: String, create: String },
    /// Its query reads a `foryou` table or a serving function, which read it again.
    ReadsItself,
    /// A refit found rows, none of them an event: how many, and the first.
    NoValidRows { rows: u64, first: String },
    /// INSERT, UPDATE or DELETE through the `foryou` table.
    Write { verb: &'static str },
    /// An option that needs event times (`half_life_days`) without a `ts` column.
    NoTimes { option: &'static str },
}

/// What is wrong with an option.
#[derive(Debug, PartialEq)]
pub enum OptionError {
    /// `foryou: argument '{raw}' is not of the form key = value (options: {known})`.
    NotKeyValue { raw: String, known: String },
    /// `foryou: unrecognized option '{key}' (options: {known})`.
    Unrecognized { key: String, known: String },
    /// `foryou_refit: unrecognized option '{key}' in options_json (per-refit options: {known})`.
    NotPerRefit { key: String, known: String },
    /// A `<table>_config` row this build does not know: written by a newer foryou.
    StoredUnknown { key: String },
    /// `foryou: option {name} given more than once`.
    Repeated { name: &'static str },
    /// `{who}: option {name} {expected}, got {got}`.
    Invalid {
        who: &'static str,
        name: &'static str,
        expected: String,
        got: String,
    },
    /// `foryou_refit: options_json is not valid JSON ({detail})`.
    NotJson { detail: String },
    /// `foryou_refit: options_json must be a JSON object such as '{"iterations": 5}'`.
    NotObject,
    /// `foryou_refit: options_json must be a JSON object as TEXT, ...`.
    NotText,
}

impl Error {
    /// `source`, with the step it failed at named in the message.
    pub fn sqlite_while(context: impl Into<String>, source: rusqlite::Error) -> Error {
        Error::SqliteWhile {
            context: context.into(),
            source,
            hint: "",
        }
    }

    /// The SQLite result code this error is reported with.
    pub fn code(&self) -> Option<ffi::Error> {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(code, _))
            | Error::SqliteWhile {
                source: rusqlite::Error::SqliteFailure(code, _),
                ..
            } => Some(*code),
            Error::OutOfMemory { .. } => Some(ffi::Error::new(ffi::SQLITE_NOMEM)),
            _ => None,
        }
    }
}

/// `bytes` for a message: whole MiB, one decimal below 10 MiB.
// Display only: a byte count far below 2^52 converts exactly enough.
#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> String {
    let m = bytes as f64 / f64::from(1u32 << 20);
    if m < 10.0 {
        format!("{m:.1} MiB")
    } else {
        format!("{m:.0} MiB")
    }
}

fn listed(tables: &[String]) -> String {
    if tables.is_empty() {
        "none".to_string()
    } else {
        tables.join(", ")
    }
}

/// SQLite's own message for `e`, without rusqlite's decorations.
fn sqlite_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        other => other.to_string(),
    }
}

/// The message of [`Error::OutOfMemory`].
fn out_of_memory(
    f: &mut fmt::Formatter<'_>,
    who: &str,
    what: &str,
    needed: u64,
    limit: Option<(u64, &str)>,
) -> fmt::Result {
    let needed = mib(needed);
    match limit {
        Some((limit, pragma)) => write!(
            f,
            "{who}: {what} needs about {needed}, more than the {} heap limit (PRAGMA {pragma}); the previous model is kept",
            mib(limit)
        ),
        None => write!(
            f,
            "{who}: out of memory: {what} needs about {needed}, which cannot be allocated; the previous model is kept"
        ),
    }
}

impl fmt::Display for Error {
    // One arm per variant, each its whole message: splitting it would scatter them.
    #[allow(clippy::too_many_lines)]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sqlite(e) => write!(f, "{}", sqlite_message(e)),
            Error::SqliteWhile {
                context,
                source,
                hint,
            } => write!(f, "{context} ({}){hint}", sqlite_message(source)),
            Error::Argument {
                who,
                argument,
                expected,
                got,
            } => write!(f, "{who}: {argument} must be {expected}, got {got}"),
            Error::TooLarge {
                who,
                argument,
                got,
                max,
            } => write!(f, "{who}: {argument} too large, provided {got}, maximum {max}"),
            Error::MissingArgument {
                who,
                argument,
                usage,
            } => write!(f, "{who}: missing argument {argument}; call it as {usage}"),
            Error::Option(e) => write!(f, "{e}"),
            Error::NoSuchModel {
                who,
                schema,
                table,
                existing,
            } => write!(
                f,
                "{who}: no foryou table named '{table}' in schema '{schema}' (foryou tables: {})",
                listed(existing)
            ),
            Error::NoModelTable { who } => write!(
                f,
                "{who}: no foryou table in this database; create one with CREATE VIRTUAL TABLE feed USING foryou()"
            ),
            Error::AmbiguousModel { who, existing } => write!(
                f,
                "{who}: {} foryou tables exist ({}); name one as the model argument",
                existing.len(),
                listed(existing)
            ),
            Error::NoEvents { who, table } => write!(
                f,
                "{who}: {table} has no events to learn from; INSERT watch events first"
            ),
            Error::FactorsMismatch { who, stored, asked } => write!(
                f,
                "{who}: an incremental refit keeps the stored model's {stored} factors, but factors = {asked} was asked; run a full refit to change it"
            ),
            Error::Diverged { who, source } => {
                write!(f, "{who}: {source}; the previous model is kept")
            }
            Error::Damaged {
                table,
                part,
                detail,
            } => write!(f, "foryou: {table}_{part} is damaged: {detail}"),
            Error::Format {
                table,
                found: Some(version),
            } => write!(
                f,
                "foryou: table {table} has storage format version {version}; this build of foryou reads version {}",
                crate::store::FORMAT_VERSION
            ),
            Error::Format { table, found: None } => write!(
                f,
                "foryou: table {table} has no format_version in {table}_config"
            ),
            Error::ReadsOwnEvents { table } => write!(
                f,
                "foryou: {table}: this INSERT reads {table}_events, where its rows go, and would never end; select from {table} instead"
            ),
            Error::RowidTaken { table, id } => {
                write!(f, "foryou: {table}: an event with rowid {id} already exists")
            }
            Error::Threads {
                who,
                threads,
                detail,
            } => write!(f, "{who}: cannot start {threads} worker threads ({detail})"),
            Error::OutOfMemory {
                who,
                what,
                needed,
                limit,
            } => out_of_memory(f, who, what, *needed, *limit),
            Error::Content {
                table,
                content,
                problem,
            } => content_message(f, table, content, problem),
            Error::ContentLoop { who } => write!(
                f,
                "{who}: reached while a foryou table reads its content, which reads foryou \
                 (a loop); a content must be the app's own table or a view over it"
            ),
            Error::Internal { who, detail } => write!(
                f,
                "{who}: internal error ({detail}); nothing was changed by this call"
            ),
        }
    }
}

/// The message of [`Error::Content`].
fn content_message(
    f: &mut fmt::Formatter<'_>,
    table: &str,
    content: &str,
    problem: &ContentProblem,
) -> fmt::Result {
    let columns = "user_id, item_id, watch_time, duration (and optionally ts)";
    match problem {
        ContentProblem::Unreadable { detail } => write!(
            f,
            "foryou: {table} reads its events from content '{content}', which cannot be read ({detail}); \
             if it was dropped or renamed, create a table or view named {content} with columns {columns} and its event id"
        ),
        ContentProblem::Columns { missing } => write!(
            f,
            "foryou: content '{content}' of {table} has no column {}; it needs {columns}, and the event id column named by content_rowid \
             (default rowid; a view has none: name its id column, as in content_rowid = 'id')",
            missing.join(", ")
        ),
        ContentProblem::NoUserIndex { plan, create } => write!(
            f,
            "foryou: {table}: reading one user's events from content '{content}' scans a whole table ({plan}); \
             every recommend() would read all of it: create an index on its user column, as in {create}"
        ),
        ContentProblem::ReadsItself => write!(
            f,
            "foryou: content '{content}' of {table} reads a foryou table or a serving function, which read the content again; \
             name the app's own table or a view over it"
        ),
        ContentProblem::NoValidRows { rows, first } => write!(
            f,
            "foryou_refit: content '{content}' of {table} has {rows} rows and none is a watch event ({first}); \
             ids must be INTEGERs and times numbers: CAST them in a view"
        ),
        ContentProblem::Write { verb } => write!(
            f,
            "foryou: {table} reads its events in place from content '{content}' and cannot {verb} events; \
             {verb} rows of the app's table ({content}, or the table it is a view of) instead"
        ),
        ContentProblem::NoTimes { option } => write!(
            f,
            "foryou: {table}: option {option} needs event times, but content '{content}' has no ts column; add one to it (as in unixepoch(played_at) AS ts)"
        ),
    }
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::NotKeyValue { raw, known } => write!(
                f,
                "foryou: argument '{raw}' is not of the form key = value (options: {known})"
            ),
            OptionError::Unrecognized { key, known } => {
                write!(f, "foryou: unrecognized option '{key}' (options: {known})")
            }
            OptionError::StoredUnknown { key } => write!(
                f,
                "foryou: the table stores option '{key}', which this build of foryou ({}) does not know (a newer foryou made the table, or its config is damaged)",
                env!("CARGO_PKG_VERSION")
            ),
            OptionError::NotPerRefit { key, known } => write!(
                f,
                "foryou_refit: unrecognized option '{key}' in options_json (per-refit options: {known})"
            ),
            OptionError::Repeated { name } => {
                write!(f, "foryou: option {name} given more than once")
            }
            OptionError::Invalid {
                who,
                name,
                expected,
                got,
            } => write!(f, "{who}: option {name} {expected}, got {got}"),
            OptionError::NotJson { detail } => {
                write!(f, "foryou_refit: options_json is not valid JSON ({detail})")
            }
            OptionError::NotObject => write!(
                f,
                "foryou_refit: options_json must be a JSON object such as '{{\"iterations\": 5}}'"
            ),
            OptionError::NotText => write!(
                f,
                "foryou_refit: options_json must be a JSON object as TEXT, such as '{{\"iterations\": 5}}'"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Sqlite(e)
    }
}

impl From<OptionError> for Error {
    fn from(e: OptionError) -> Error {
        Error::Option(e)
    }
}

/// The conversion at the SQL boundary. An error of SQLite's keeps its code, with the
/// message of this error; every other error is `SQLITE_ERROR` with its message.
impl From<Error> for rusqlite::Error {
    fn from(e: Error) -> rusqlite::Error {
        match e.code() {
            Some(code) => rusqlite::Error::SqliteFailure(code, Some(e.to_string())),
            None => match e {
                // Not a failure of SQLite's own (a conversion, a rusqlite check): as is.
                Error::Sqlite(inner) => inner,
                other => rusqlite::Error::ModuleError(other.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_survive_the_conversion() {
        let busy = rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_BUSY),
            Some("database is locked".into()),
        );
        let back: rusqlite::Error =
            Error::sqlite_while("recommend: cannot read schema 'main'", busy).into();
        match back {
            rusqlite::Error::SqliteFailure(code, Some(message)) => {
                assert_eq!(code.code, rusqlite::ErrorCode::DatabaseBusy);
                assert_eq!(
                    message,
                    "recommend: cannot read schema 'main' (database is locked)"
                );
            }
            other => panic!("lost the code: {other:?}"),
        }
        let own: rusqlite::Error = Error::NoEvents {
            who: "foryou_refit",
            table: "feed".into(),
        }
        .into();
        assert_eq!(
            own.to_string(),
            "foryou_refit: feed has no events to learn from; INSERT watch events first"
        );
    }
}
