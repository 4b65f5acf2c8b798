//! `foryou_refit([model [, options_json]])`: learns user and item factors from every
//! stored event and replaces the stored model atomically. Returns a JSON report.
//!
//! `options_json` may override training options for this call and choose the mode:
//! `{"mode": "full"}` (the default: factors start from the seed) or
//! `{"mode": "incremental"}` (factors start from the stored model). The pipeline is
//! [`crate::engine::refit`].

use rusqlite::types::ValueRef;

use super::args;
use super::scalar::Args;
use crate::engine::cache::{load_options, resolve_model};
use crate::engine::options::Options;
use crate::engine::refit::{refit, Mode, Progress};
use crate::error::{Error, OptionError, Result};

const WHO: &str = "foryou_refit";

pub fn foryou_refit(ctx: &Args<'_>) -> Result<String> {
    let conn = ctx.connection()?;
    let model = match ctx.len() {
        0 => None,
        _ => args::model_name(WHO, ctx.get(0)?)?,
    };
    let mut shadow = resolve_model(&conn, WHO, model)?;
    let stored = load_options(&conn, &mut shadow)?;
    let (options, mode, progress) = match ctx.len() {
        2 => match ctx.get(1)? {
            ValueRef::Null => (stored, Mode::Full, Progress::Quiet),
            ValueRef::Text(t) => call_options(&stored, &String::from_utf8_lossy(t))?,
            _ => return Err(OptionError::NotText.into()),
        },
        _ => (stored, Mode::Full, Progress::Quiet),
    };
    refit(&conn, &shadow, &options, mode, progress)
}

/// Splits `options_json` into the mode, the progress switch and the option overrides.
fn call_options(stored: &Options, json: &str) -> Result<(Options, Mode, Progress)> {
    let mut value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| OptionError::NotJson {
            detail: e.to_string(),
        })?;
    let progress = match value.as_object_mut().and_then(|m| m.remove("progress")) {
        None | Some(serde_json::Value::Bool(false)) => Progress::Quiet,
        Some(serde_json::Value::Bool(true)) => Progress::Stderr,
        Some(other) => {
            return Err(Error::Option(OptionError::Invalid {
                who: WHO,
                name: "progress",
                expected: "expects true or false".to_string(),
                got: other.to_string(),
            }))
        }
    };
    let mode = match value.as_object_mut().and_then(|m| m.remove("mode")) {
        None => Mode::Full,
        Some(serde_json::Value::String(m)) if m == "full" => Mode::Full,
        Some(serde_json::Value::String(m)) if m == "incremental" => Mode::Incremental,
        Some(other) => {
            return Err(Error::Option(OptionError::Invalid {
                who: WHO,
                name: "mode",
                expected: "expects \"full\" or \"incremental\"".to_string(),
                got: other.to_string(),
            }))
        }
    };
    Ok((stored.with_refit_json(&value.to_string())?, mode, progress))
}
