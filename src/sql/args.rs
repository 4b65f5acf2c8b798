//! Reading SQL argument values with errors that name the function, the argument and
//! what was expected. Text that reads as a number is accepted where a number is
//! expected, as SQLite's column affinity would convert it (CSV imports give text).

use rusqlite::types::ValueRef;

use crate::error::{Error, Result};
use crate::store::integer_value;

/// The largest k that `recommend` and `similar_items` accept.
pub const MAX_K: i64 = 10_000;

/// A value as an error message shows it.
pub fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("a {}-byte BLOB", b.len()),
    }
}

/// An integer id (user or item): INTEGER, a REAL with an integral value, or integer text.
pub fn integer(who: &str, name: &'static str, value: ValueRef<'_>) -> Result<i64> {
    integer_value(value).ok_or_else(|| Error::Argument {
        who: who.to_string(),
        argument: name,
        expected: "an integer".to_string(),
        got: describe(value),
    })
}

/// A finite number: INTEGER, REAL, or numeric text.
pub fn number(who: &str, name: &'static str, expected: &str, value: ValueRef<'_>) -> Result<f64> {
    #[allow(clippy::cast_precision_loss)] // an integer given for seconds
    let parsed = match value {
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(r) => Some(r),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok()),
        ValueRef::Null | ValueRef::Blob(_) => None,
    };
    match parsed {
        Some(v) if v.is_finite() => Ok(v),
        _ => Err(Error::Argument {
            who: who.to_string(),
            argument: name,
            expected: expected.to_string(),
            got: describe(value),
        }),
    }
}

/// k, the number of rows wanted: an integer from 1 to [`MAX_K`].
pub fn k(who: &str, value: ValueRef<'_>) -> Result<usize> {
    let k = integer(who, "k", value)?;
    if k < 1 {
        return Err(Error::Argument {
            who: who.to_string(),
            argument: "k",
            expected: "a positive integer".to_string(),
            got: k.to_string(),
        });
    }
    if k > MAX_K {
        return Err(Error::TooLarge {
            who: who.to_string(),
            argument: "k",
            got: k,
            max: MAX_K,
        });
    }
    Ok(usize::try_from(k).unwrap_or(1))
}

/// A model (table) name: TEXT, or NULL for "the only foryou table".
pub fn model_name<'a>(who: &str, value: ValueRef<'a>) -> Result<Option<&'a str>> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(Some)
            .map_err(|_| Error::Argument {
                who: who.to_string(),
                argument: "model",
                expected: "a table name".to_string(),
                got: "invalid UTF-8".to_string(),
            }),
        other => Err(Error::Argument {
            who: who.to_string(),
            argument: "model",
            expected: "the name of a foryou table".to_string(),
            got: describe(other),
        }),
    }
}

/// The `(id, k [, model])` arguments shared by `recommend` and `similar_items`;
/// `args[i]` is None when the argument was not given.
pub fn id_k_model<'a>(
    who: &str,
    id_name: &'static str,
    args: &[Option<ValueRef<'a>>],
) -> Result<(i64, usize, Option<&'a str>)> {
    let id = integer(who, id_name, args[0].unwrap_or(ValueRef::Null))?;
    let k = k(who, args[1].unwrap_or(ValueRef::Null))?;
    let model = match args.get(2).copied().flatten() {
        Some(value) => model_name(who, value)?,
        None => None,
    };
    Ok((id, k, model))
}
