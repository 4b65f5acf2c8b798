//! Reading SQL argument values with errors that name the function, the argument and
//! what was expected. Text that reads as a number is accepted where a number is
//! expected, as SQLite's column affinity would convert it (CSV imports give text).

use rusqlite::types::ValueRef;
use rusqlite::Result;

use crate::guard::sql_error;

/// The largest k that `recommend` and `similar_items` accept.
pub const MAX_K: i64 = 10_000;

fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("a {}-byte BLOB", b.len()),
    }
}

/// An integer id (user or item): INTEGER, a REAL with an integral value, or integer text.
pub fn integer(who: &str, name: &str, value: ValueRef<'_>) -> Result<i64> {
    let parsed = match value {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(r) if r.fract() == 0.0 && r.abs() < 9.0e15 => Some(r as i64),
        ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|s| {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|r| r.fract() == 0.0 && r.abs() < 9.0e15)
                    .map(|r| r as i64)
            })
        }),
        _ => None,
    };
    parsed.ok_or_else(|| {
        sql_error(format!(
            "{who}: {name} must be an integer, got {}",
            describe(value)
        ))
    })
}

/// A finite number: INTEGER, REAL, or numeric text.
pub fn number(who: &str, name: &str, expected: &str, value: ValueRef<'_>) -> Result<f64> {
    let parsed = match value {
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(r) => Some(r),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok()),
        _ => None,
    };
    match parsed {
        Some(v) if v.is_finite() => Ok(v),
        _ => Err(sql_error(format!(
            "{who}: {name} must be {expected}, got {}",
            describe(value)
        ))),
    }
}

/// k, the number of rows wanted: an integer from 1 to [`MAX_K`].
pub fn k(who: &str, value: ValueRef<'_>) -> Result<usize> {
    let k = integer(who, "k", value)?;
    if k < 1 {
        return Err(sql_error(format!(
            "{who}: k must be a positive integer, got {k}"
        )));
    }
    if k > MAX_K {
        return Err(sql_error(format!(
            "{who}: k too large, provided {k}, maximum {MAX_K}"
        )));
    }
    Ok(k as usize)
}

/// A model (table) name: TEXT, or NULL for "the only foryou table".
pub fn model_name<'a>(who: &str, value: ValueRef<'a>) -> Result<Option<&'a str>> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Text(t) => std::str::from_utf8(t).map(Some).map_err(|_| {
            sql_error(format!(
                "{who}: model must be a table name, got invalid UTF-8"
            ))
        }),
        other => Err(sql_error(format!(
            "{who}: model must be the name of a foryou table, got {}",
            describe(other)
        ))),
    }
}

/// The `(id, k [, model])` arguments shared by `recommend` and `similar_items`;
/// `args[i]` is None when the argument was not given.
pub fn id_k_model<'a>(
    who: &str,
    id_name: &str,
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
