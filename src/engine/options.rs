//! Model options: the `key = value` arguments of `CREATE VIRTUAL TABLE ... USING foryou(...)`
//! and the JSON object accepted by `foryou_refit(model, options_json)`.
//!
//! Every option is declared once, in the [`declare_options!`] list below: its field, type,
//! default, accepted range, scope and meaning. Parsing, validation, the stored
//! `<table>_config` rows, the training JSON stored with a model, the error messages and
//! the options table of the SQL reference (`docs/reference.in.md`, checked by a test)
//! all come from it.

use std::fmt;

use rusqlite::types::Value as SqlValue;

use crate::error::OptionError;
pub use crate::model::als::RegularizationScaling;
use crate::model::factors::MAX_FACTORS;
pub use crate::model::feedback::Confidence;

/// What kind of value an option takes, with its accepted range.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Integer {
        min: i64,
        max: i64,
    },
    Real {
        min: f64,
        max: f64,
        min_exclusive: bool,
    },
    Boolean,
    /// One of a fixed list of words.
    Choice(&'static [&'static str]),
    /// The name of a table or view of the database ('' for none).
    Name,
    /// The name of a column (of the content).
    Column,
}

/// Whether `foryou_refit(model, '{...}')` may override the option for one call.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scope {
    /// Training option: may be overridden per refit.
    Training,
    /// Table option (serving, ingest): fixed at CREATE time.
    Table,
}

struct Spec {
    name: &'static str,
    kind: Kind,
    scope: Scope,
    /// The reference's "meaning" column.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the test that renders the reference")
    )]
    meaning: &'static str,
    /// The reference's "default" column when the value alone does not say it.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the test that renders the reference")
    )]
    default_doc: Option<&'static str>,
}

/// One option value, as stored in `<table>_config`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    /// A word of a [`Kind::Choice`].
    Text(&'static str),
    /// A [`Kind::Name`].
    Name(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Integer(v) => write!(f, "{v}"),
            Value::Real(v) => write!(f, "{v}"),
            Value::Boolean(v) => write!(f, "{v}"),
            Value::Text(v) => write!(f, "{v}"),
            Value::Name(v) => write!(f, "'{}'", v.replace('\'', "''")),
        }
    }
}

impl Value {
    /// As stored in `<table>_config` (booleans as 0/1, like SQLite's).
    fn to_sql(&self) -> SqlValue {
        match self {
            Value::Integer(v) => SqlValue::Integer(*v),
            Value::Real(v) => SqlValue::Real(*v),
            Value::Boolean(v) => SqlValue::Integer(i64::from(*v)),
            Value::Text(v) => SqlValue::Text((*v).to_string()),
            Value::Name(v) => SqlValue::Text(v.clone()),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Integer(v) => serde_json::json!(v),
            Value::Real(v) => serde_json::json!(v),
            Value::Boolean(v) => serde_json::json!(v),
            Value::Text(v) => serde_json::json!(v),
            Value::Name(v) => serde_json::json!(v),
        }
    }
}

/// A Rust field type that an option can have: to and from a validated [`Value`].
trait OptionField: Sized {
    fn to_value(&self) -> Value;
    /// None only for a value of another kind, which validation has excluded.
    fn from_value(value: Value) -> Option<Self>;
}

impl OptionField for usize {
    fn to_value(&self) -> Value {
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Integer(v) => usize::try_from(v).ok(),
            _ => None,
        }
    }
}

impl OptionField for u64 {
    fn to_value(&self) -> Value {
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Integer(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

impl OptionField for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Real(v) => Some(v),
            _ => None,
        }
    }
}

impl OptionField for bool {
    fn to_value(&self) -> Value {
        Value::Boolean(*self)
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Boolean(v) => Some(v),
            _ => None,
        }
    }
}

impl OptionField for String {
    fn to_value(&self) -> Value {
        Value::Name(self.clone())
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Name(v) => Some(v),
            _ => None,
        }
    }
}

impl OptionField for Confidence {
    fn to_value(&self) -> Value {
        Value::Text(self.name())
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Text(v) => Confidence::from_name(v),
            _ => None,
        }
    }
}

impl OptionField for RegularizationScaling {
    fn to_value(&self) -> Value {
        Value::Text(self.name())
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Text(v) => RegularizationScaling::from_name(v),
            _ => None,
        }
    }
}

/// Declares the options: the [`Options`] struct, its defaults, [`SPECS`] and the
/// by-name accessors, from one list.
macro_rules! declare_options {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident: $ty:ty = $default:expr, $kind:expr, $scope:ident,
            $meaning:literal $(, default_doc = $default_doc:literal)?;
    )+) => {
        /// The validated options of one model.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Options {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
        }

        impl Default for Options {
            fn default() -> Self {
                Options { $( $name: $default, )+ }
            }
        }

        /// Every option, in documentation order.
        const SPECS: &[Spec] = &[$(
            Spec {
                name: stringify!($name),
                kind: $kind,
                scope: Scope::$scope,
                meaning: $meaning,
                default_doc: declare_options!(@doc $($default_doc)?),
            },
        )+];

        impl Options {
            /// The value of the option `name` (one of [`SPECS`]).
            fn get(&self, name: &str) -> Option<Value> {
                match name {
                    $( stringify!($name) => Some(self.$name.to_value()), )+
                    _ => None,
                }
            }

            /// Stores an already validated value.
            fn set(&mut self, name: &str, value: Value) {
                match name {
                    $( stringify!($name) => {
                        if let Some(v) = <$ty as OptionField>::from_value(value) {
                            self.$name = v;
                        }
                    } )+
                    _ => {}
                }
            }
        }
    };
    (@doc) => { None };
    (@doc $text:literal) => { Some($text) };
}

#[allow(clippy::cast_possible_wrap)] // MAX_FACTORS is 1024
const MAX_FACTORS_I64: i64 = MAX_FACTORS as i64;

declare_options! {
    /// Embedding size.
    factors: usize = 64, Kind::Integer { min: 1, max: MAX_FACTORS_I64 }, Training,
        "embedding size";
    /// ALS sweeps (users then items) per full refit.
    iterations: usize = 15, Kind::Integer { min: 1, max: 1000 }, Training,
        "ALS sweeps (users, then items) of a full refit";
    /// L2 penalty λ on every user and item vector (per observed pair with `count`).
    regularization: f64 = 0.2, Kind::Real { min: 0.0, max: 1e6, min_exclusive: false }, Training,
        "L2 penalty λ on the user and item vectors: per observed pair with the default scaling (see [the model](model.md#the-model))";
    /// How a row's penalty grows with its observed pairs: `λ_r = λ · s_r`.
    regularization_scaling: RegularizationScaling = RegularizationScaling::Count,
        Kind::Choice(&["none", "count", "sqrt"]), Training,
        "how a user's or item's penalty grows with its number `n` of observed pairs (watched or skipped): `λ`, `λ·n` (ALS-WR, as Spark MLlib), `λ·√n`";
    /// Confidence scale (see `model::feedback`).
    alpha: f64 = 2.0, Kind::Real { min: 0.0, max: 1e6, min_exclusive: true }, Training,
        "confidence scale (see [confidence](model.md#from-watch-time-to-confidence))";
    /// How a pair's watch ratio becomes confidence.
    confidence: Confidence = Confidence::Ratio, Kind::Choice(&["binary", "linear", "log", "ratio"]),
        Training, "how a pair's summed watch ratio becomes confidence";
    /// An event with watch ratio below this is a skip (0: off).
    skip_ratio: f64 = 0.1, Kind::Real { min: 0.0, max: 1e3, min_exclusive: false }, Training,
        "an event with watch ratio below this is a skip (a dislike)", default_doc = "0.1 (0 = off)";
    /// An event watched for less than min(this, duration) seconds is a skip (0: off).
    skip_seconds: f64 = 0.0, Kind::Real { min: 0.0, max: 1e6, min_exclusive: false }, Training,
        "an event watched less than min(this, duration) seconds is a skip", default_doc = "0 (off)";
    /// Confidence added per skip to a pair that was only skipped.
    skip_weight: f64 = 1.0, Kind::Real { min: 0.0, max: 1e6, min_exclusive: true }, Training,
        "confidence added per skip to a pair that was only skipped";
    /// Recency half-life in days, relative to the newest event (0: off).
    half_life_days: f64 = 0.0, Kind::Real { min: 0.0, max: 1e6, min_exclusive: false }, Training,
        "recency half-life, measured back from the newest event", default_doc = "0 (off)";
    /// `ω`: unobserved pairs on item i weigh `pop_i^ω / mean(pop^ω)` (0: all weigh 1).
    popularity_exponent: f64 = 0.0, Kind::Real { min: -2.0, max: 2.0, min_exclusive: false },
        Training,
        "ω: an unwatched item weighs `pop^ω / mean(pop^ω)` as a \"no\": ω > 0 makes unwatched popular items a stronger \"no\" (eALS), ω < 0 a weaker one (popularity debiasing) (see [the model](model.md#the-model))",
        default_doc = "0 (off)";
    /// Conjugate-gradient steps per vector per sweep.
    cg_steps: usize = 3, Kind::Integer { min: 1, max: 64 }, Training,
        "conjugate-gradient steps per vector per sweep";
    /// Seed of the initial factors.
    seed: u64 = 0, Kind::Integer { min: 0, max: i64::MAX }, Training,
        "seed of the initial factors";
    /// Worker threads for a refit; 0 means one per CPU. Never changes the result.
    threads: usize = 0, Kind::Integer { min: 0, max: 256 }, Training,
        "refit worker threads; 0 = one per CPU; never changes the result";
    /// Sweeps of an incremental refit.
    incremental_iterations: usize = 3, Kind::Integer { min: 1, max: 1000 }, Training,
        "sweeps of an incremental refit";
    /// Whether a full refit chooses `alpha`, `regularization` and its scaling itself,
    /// from a hold-out split of the events (`model::tune`).
    tune: bool = true, Kind::Boolean, Training,
        "a full refit chooses `alpha`, `regularization` and `regularization_scaling` itself, from a hold-out split of the events (see [tuning](model.md#tuning-the-prior-to-the-data)); incremental refits keep the chosen values",
        default_doc = "true, but false when `alpha`, `regularization` or `regularization_scaling` is given";
    /// Run an incremental refit once this many events arrived since the last refit (0: off).
    auto_refit: u64 = 0, Kind::Integer { min: 0, max: i64::MAX }, Table,
        "after this many new events, an `INSERT` runs an incremental refit (with `content`, the next serving call does)", default_doc = "0 (off)";
    /// Share of `recommend()` slots given to fresh or under-exposed items (0: off).
    explore: f64 = 0.0, Kind::Real { min: 0.0, max: 1.0, min_exclusive: false }, Table,
        "share of `recommend()` slots given to fresh or under-exposed items (see [freshness](#freshness-what-a-user-sees-when))", default_doc = "0 (off)";
    /// Whether `recommend()` leaves out items the user already watched.
    exclude_watched: bool = true, Kind::Boolean, Table,
        "`recommend()` leaves out items the user has events for";
    /// A table or view `(user_id, item_id)` of items to leave out ('' for none).
    exclude_items: String = String::new(), Kind::Name, Table,
        "a table or view with columns `user_id, item_id`: `recommend()` leaves out the user's rows, and every call leaves out the rows whose `user_id` is NULL (see [block-lists](#block-lists-exclude_items))",
        default_doc = "none";
    /// The app's table or view whose rows are the events, read in place ('' for
    /// foryou's own `<table>_events`).
    content: String = String::new(), Kind::Name, Table,
        "the app's table or view whose rows are the events, read in place: columns `user_id, item_id, watch_time, duration` and optionally `ts` (see [external content](#external-content-content))",
        default_doc = "none: events are inserted into the table";
    /// The content's column holding each event's id.
    content_rowid: String = "rowid".to_string(), Kind::Column, Table,
        "the content's column holding each event's unique integer id (a view has no rowid: name its id column)",
        default_doc = "`rowid`";
}

/// Options added after tables were first stored, with the value that gives the
/// behaviour of the builds before them. A table (`<table>_config`) or a model (its options
/// JSON) stored before such an option existed has no entry for it and keeps meaning what
/// it meant: a table created with the unscaled `regularization = 0.05` stays unscaled.
/// New tables and models store every option, so this matters only for old files.
const ADDED_LATER: &[(&str, Value)] = &[
    ("regularization_scaling", Value::Text("none")),
    ("tune", Value::Boolean(false)),
];

/// The options a tuned refit chooses itself (`model::tune`).
pub const TUNED: &[&str] = &["alpha", "regularization", "regularization_scaling"];

impl Options {
    /// What stored options are read onto: the defaults, except that options added after
    /// the table or model was stored take their earlier behaviour ([`ADDED_LATER`]).
    pub fn stored_base() -> Options {
        let mut options = Options::default();
        for (name, value) in ADDED_LATER {
            options.set(name, value.clone());
        }
        options
    }

    /// The feedback part, for `model::feedback`.
    pub fn feedback(&self) -> crate::model::feedback::FeedbackParams {
        crate::model::feedback::FeedbackParams {
            confidence: self.confidence,
            #[allow(clippy::cast_possible_truncation)] // validated: 0 < alpha <= 1e6
            alpha: self.alpha as f32,
            skip_ratio: self.skip_ratio,
            skip_seconds: self.skip_seconds,
            #[allow(clippy::cast_possible_truncation)] // validated: 0 < skip_weight <= 1e6
            skip_weight: self.skip_weight as f32,
            half_life_days: self.half_life_days,
            popularity_exponent: self.popularity_exponent,
        }
    }

    fn value(&self, spec: &Spec) -> Value {
        self.get(spec.name).unwrap_or(Value::Integer(0))
    }

    /// The training options as a JSON object (stored with a model; read back by
    /// [`Options::with_refit_json`]).
    pub fn training_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = SPECS
            .iter()
            .filter(|s| s.scope == Scope::Training)
            .map(|s| (s.name.to_string(), self.value(s).to_json()))
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    /// Every option as (name, value), in documentation order.
    #[cfg(test)]
    pub fn entries(&self) -> Vec<(&'static str, Value)> {
        SPECS.iter().map(|s| (s.name, self.value(s))).collect()
    }

    /// What `<table>_config` stores: every option as (name, SQL value).
    pub fn config_rows(&self) -> Vec<(&'static str, SqlValue)> {
        SPECS
            .iter()
            .map(|s| (s.name, self.value(s).to_sql()))
            .collect()
    }

    /// The options stored in `<table>_config`, read onto [`Options::stored_base`].
    pub fn from_config(rows: &[(String, SqlValue)]) -> Result<Options, OptionError> {
        let mut options = Options::stored_base();
        for (key, value) in rows {
            options.load_stored(key, value).map_err(|e| match e {
                OptionError::Unrecognized { key, .. } => OptionError::StoredUnknown { key },
                other => other,
            })?;
        }
        Ok(options)
    }

    /// Names of every option, for error messages and docs.
    pub fn names() -> Vec<&'static str> {
        SPECS.iter().map(|s| s.name).collect()
    }

    /// Parses the arguments of `CREATE VIRTUAL TABLE t USING foryou(arg, ...)`.
    /// Each argument is `key = value`; keys are case-insensitive; a key may appear once.
    pub fn from_create_args(args: &[&str]) -> Result<Options, OptionError> {
        let mut options = Options::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for raw in args {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let Some((key, value)) = raw.split_once('=') else {
                return Err(OptionError::NotKeyValue {
                    raw: raw.to_string(),
                    known: Options::names().join(", "),
                });
            };
            let spec = find_spec(key.trim())?;
            if seen.contains(&spec.name) {
                return Err(OptionError::Repeated { name: spec.name });
            }
            seen.push(spec.name);
            let value = parse_text(spec, unquote(value.trim()))?;
            options.set(spec.name, value);
        }
        options.explicit_values_win(&seen);
        Ok(options)
    }

    /// A value given for an option `tune` would choose means "use mine": unless `tune`
    /// itself is given too, it is turned off.
    fn explicit_values_win(&mut self, given: &[&str]) {
        if !given.contains(&"tune") && given.iter().any(|k| TUNED.contains(k)) {
            self.tune = false;
        }
    }

    /// Reads one stored `(key, value)` pair back from `<table>_config`.
    pub fn load_stored(&mut self, key: &str, value: &SqlValue) -> Result<(), OptionError> {
        let spec = find_spec(key)?;
        let parsed = match value {
            SqlValue::Text(t) => parse_text(spec, t)?,
            other => {
                let checked = match other {
                    SqlValue::Integer(i) => check(spec, Value::Integer(*i))
                        .or_else(|()| check(spec, Value::Real(*i as f64)))
                        .or_else(|()| check(spec, Value::Boolean(*i != 0))),
                    SqlValue::Real(r) => check(spec, Value::Real(*r)),
                    _ => Err(()),
                };
                checked.map_err(|()| OptionError::Invalid {
                    who: "foryou",
                    name: spec.name,
                    expected: expectation(spec),
                    got: match other {
                        SqlValue::Integer(i) => i.to_string(),
                        SqlValue::Real(r) => r.to_string(),
                        SqlValue::Blob(b) => format!("a {}-byte BLOB", b.len()),
                        _ => "NULL".to_string(),
                    },
                })?
            }
        };
        self.set(spec.name, parsed);
        Ok(())
    }

    /// Applies the per-call JSON object of `foryou_refit(model, options_json)` on top of
    /// the stored options. Only training options are accepted.
    pub fn with_refit_json(&self, json: &str) -> Result<Options, OptionError> {
        let parsed: serde_json::Value =
            serde_json::from_str(json).map_err(|e| OptionError::NotJson {
                detail: e.to_string(),
            })?;
        let serde_json::Value::Object(map) = parsed else {
            return Err(OptionError::NotObject);
        };
        let mut options = self.clone();
        for (key, value) in &map {
            let spec = SPECS
                .iter()
                .find(|s| s.name == key.as_str() && s.scope == Scope::Training)
                .ok_or_else(|| OptionError::NotPerRefit {
                    key: key.clone(),
                    known: ["mode", "progress"]
                        .into_iter()
                        .chain(
                            SPECS
                                .iter()
                                .filter(|s| s.scope == Scope::Training)
                                .map(|s| s.name),
                        )
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            let invalid = || OptionError::Invalid {
                who: "foryou_refit",
                name: spec.name,
                expected: expectation(spec),
                got: value.to_string(),
            };
            let candidate = match value {
                serde_json::Value::Bool(b) => Value::Boolean(*b),
                serde_json::Value::String(t) => Value::Text(choose(spec, t).ok_or_else(invalid)?),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => Value::Integer(i),
                    None => Value::Real(n.as_f64().unwrap_or(f64::NAN)),
                },
                _ => return Err(invalid()),
            };
            let value = coerce(spec, candidate).map_err(|()| invalid())?;
            options.set(spec.name, value);
        }
        let given: Vec<&str> = map.keys().map(String::as_str).collect();
        options.explicit_values_win(&given);
        Ok(options)
    }

    /// The options table of the SQL reference, rendered from [`SPECS`].
    #[cfg(test)]
    pub fn reference_table() -> String {
        use std::fmt::Write as _;
        let defaults = Options::default();
        let mut out = String::from(
            "| option | type | range | default | scope | meaning |\n|---|---|---|---|---|---|\n",
        );
        for spec in SPECS {
            let (kind, range) = match spec.kind {
                Kind::Integer { min, max } if max == i64::MAX => {
                    ("integer".to_string(), format!("≥ {min}"))
                }
                Kind::Integer { min, max } => ("integer".to_string(), format!("{min} – {max}")),
                Kind::Real {
                    min,
                    max,
                    min_exclusive: true,
                } => (
                    "real".to_string(),
                    format!("> {}, ≤ {}", number(min), number(max)),
                ),
                Kind::Real { min, max, .. } => (
                    "real".to_string(),
                    format!("{} – {}", number(min), number(max)),
                ),
                Kind::Boolean => (
                    "boolean".to_string(),
                    "`true`/`false`, `on`/`off`, `yes`/`no`, `1`/`0`".to_string(),
                ),
                Kind::Choice(words) => (
                    words
                        .iter()
                        .map(|w| format!("`{w}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    String::new(),
                ),
                Kind::Name => ("name".to_string(), "a table or view".to_string()),
                Kind::Column => ("name".to_string(), "a column".to_string()),
            };
            let default = match (spec.default_doc, defaults.value(spec)) {
                (Some(text), _) => text.to_string(),
                (None, Value::Text(word)) => format!("`{word}`"),
                (None, Value::Real(v)) => number(v),
                (None, value) => value.to_string(),
            };
            let scope = match spec.scope {
                Scope::Training => "training",
                Scope::Table => "table",
            };
            let name = format!("`{}`", spec.name);
            let cells = [name.as_str(), &kind, &range, &default, scope, spec.meaning];
            let _ = writeln!(out, "| {} |", cells.join(" | ").replace("|  |", "| |"));
        }
        out
    }
}

/// A range bound as the reference writes it: `1e6`, `1000`, `−2`, `0.5`.
#[cfg(test)]
fn number(v: f64) -> String {
    let text = if v >= 1e4 && v.log10().fract() == 0.0 {
        format!("1e{}", v.log10())
    } else {
        format!("{v}")
    };
    text.replace('-', "−")
}

fn find_spec(key: &str) -> Result<&'static Spec, OptionError> {
    SPECS
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(key))
        .ok_or_else(|| OptionError::Unrecognized {
            key: key.to_string(),
            known: Options::names().join(", "),
        })
}

fn unquote(value: &str) -> &str {
    for quote in ['\'', '"'] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

fn expectation(spec: &Spec) -> String {
    match spec.kind {
        Kind::Integer { min, max } => format!("expects an integer from {min} to {max}"),
        Kind::Real {
            min,
            max,
            min_exclusive: true,
        } => format!("expects a number > {min} and <= {max}"),
        Kind::Real { min, max, .. } => format!("expects a number from {min} to {max}"),
        Kind::Boolean => "expects a boolean (true/false, on/off, yes/no, 1/0)".to_string(),
        Kind::Choice(words) => format!("expects one of {}", words.join(", ")),
        Kind::Name => "expects the name of a table or view, without NUL characters".to_string(),
        Kind::Column => "expects the name of a column, without NUL characters".to_string(),
    }
}

/// The word of a Choice option matching `text` (case-insensitive).
fn choose(spec: &Spec, text: &str) -> Option<&'static str> {
    match spec.kind {
        Kind::Choice(words) => words.iter().find(|w| w.eq_ignore_ascii_case(text)).copied(),
        _ => None,
    }
}

/// A CREATE argument's text (or a stored text value) as a value of `spec`.
fn parse_text(spec: &Spec, text: &str) -> Result<Value, OptionError> {
    let bad = || OptionError::Invalid {
        who: "foryou",
        name: spec.name,
        expected: expectation(spec),
        got: format!("'{text}'"),
    };
    let candidate = match spec.kind {
        Kind::Integer { .. } => Value::Integer(text.parse::<i64>().map_err(|_| bad())?),
        Kind::Real { .. } => Value::Real(text.parse::<f64>().map_err(|_| bad())?),
        Kind::Boolean => Value::Boolean(match text.to_ascii_lowercase().as_str() {
            "1" | "true" | "on" | "yes" => true,
            "0" | "false" | "off" | "no" => false,
            _ => return Err(bad()),
        }),
        Kind::Choice(_) => Value::Text(choose(spec, text).ok_or_else(bad)?),
        Kind::Name | Kind::Column => Value::Name(text.to_string()),
    };
    check(spec, candidate).map_err(|()| bad())
}

/// Accepts an integer where a real is expected (`alpha = 10`), then checks the range.
fn coerce(spec: &Spec, value: Value) -> Result<Value, ()> {
    match (spec.kind, &value) {
        (Kind::Real { .. }, &Value::Integer(i)) => check(spec, Value::Real(i as f64)),
        _ => check(spec, value),
    }
}

fn check(spec: &Spec, value: Value) -> Result<Value, ()> {
    let ok = match (spec.kind, &value) {
        (Kind::Integer { min, max }, &Value::Integer(v)) => v >= min && v <= max,
        (
            Kind::Real {
                min,
                max,
                min_exclusive,
            },
            &Value::Real(v),
        ) => v.is_finite() && v <= max && if min_exclusive { v > min } else { v >= min },
        (Kind::Boolean, Value::Boolean(_)) => true,
        (Kind::Choice(words), Value::Text(t)) => words.contains(t),
        (Kind::Name, Value::Name(t)) => !t.contains('\0'),
        (Kind::Column, Value::Name(t)) => !t.is_empty() && !t.contains('\0'),
        _ => false,
    };
    if ok {
        Ok(value)
    } else {
        Err(())
    }
}

#[cfg(test)]
// Tests: small generated data (every index and count far inside its type), and floats
// compared bit for bit on purpose.
#[allow(
    clippy::float_cmp,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_create_args() {
        let defaults = Options::default();
        assert_eq!(defaults.factors, 64);
        let args: Vec<String> = defaults
            .entries()
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(Options::from_create_args(&refs).unwrap(), defaults);
    }

    #[test]
    fn create_args_are_validated() {
        let o = Options::from_create_args(&["factors = 8", "ALPHA='2.5'", "exclude_watched=off"])
            .unwrap();
        assert_eq!((o.factors, o.alpha, o.exclude_watched), (8, 2.5, false));
        assert_eq!(
            Options::from_create_args(&["factors = 0"])
                .unwrap_err()
                .to_string(),
            "foryou: option factors expects an integer from 1 to 1024, got '0'"
        );
        assert!(Options::from_create_args(&["fators = 3"])
            .unwrap_err()
            .to_string()
            .starts_with("foryou: unrecognized option 'fators'"));
        assert!(Options::from_create_args(&["alpha = 0"])
            .unwrap_err()
            .to_string()
            .contains("expects a number > 0 and <= 1000000, got '0'"));
        assert_eq!(
            Options::from_create_args(&["alpha = 2e6"])
                .unwrap_err()
                .to_string(),
            "foryou: option alpha expects a number > 0 and <= 1000000, got '2e6'"
        );
        assert_eq!(
            Options::from_create_args(&["seed = -1"])
                .unwrap_err()
                .to_string(),
            "foryou: option seed expects an integer from 0 to 9223372036854775807, got '-1'"
        );
        assert!(Options::from_create_args(&["alpha = nan"]).is_err());
        assert_eq!(
            Options::from_create_args(&["popularity_exponent = 0.5"])
                .unwrap()
                .feedback()
                .popularity_exponent,
            0.5
        );
        assert!(Options::from_create_args(&["popularity_exponent = 2.5"]).is_err());
        assert!(Options::from_create_args(&["popularity_exponent = -2.5"]).is_err());
        assert!(Options::from_create_args(&["popularity_exponent = -0.5"]).is_ok());
        assert!(Options::from_create_args(&["factors"])
            .unwrap_err()
            .to_string()
            .contains("key = value"));
        assert!(Options::from_create_args(&["seed=1", "seed=2"])
            .unwrap_err()
            .to_string()
            .contains("more than once"));
    }

    #[test]
    fn regularization_scaling_is_a_training_choice() {
        let defaults = Options::default();
        assert_eq!(
            (defaults.regularization, defaults.regularization_scaling),
            (0.2, RegularizationScaling::Count)
        );
        for (text, want) in [
            ("none", RegularizationScaling::None),
            ("count", RegularizationScaling::Count),
            ("'SQRT'", RegularizationScaling::Sqrt),
        ] {
            let o =
                Options::from_create_args(&[&format!("regularization_scaling = {text}")]).unwrap();
            assert_eq!(o.regularization_scaling, want);
            assert_eq!(
                o.entries()
                    .iter()
                    .find(|(k, _)| *k == "regularization_scaling")
                    .unwrap()
                    .1,
                Value::Text(want.name())
            );
        }
        assert_eq!(
            Options::from_create_args(&["regularization_scaling = linear"])
                .unwrap_err()
                .to_string(),
            "foryou: option regularization_scaling expects one of none, count, sqrt, got 'linear'"
        );
        let o = defaults
            .with_refit_json(r#"{"regularization_scaling": "count", "regularization": 0.1}"#)
            .unwrap();
        assert_eq!(
            (o.regularization_scaling, o.regularization),
            (RegularizationScaling::Count, 0.1)
        );
        assert_eq!(
            defaults
                .with_refit_json(r#"{"regularization_scaling": 1}"#)
                .unwrap_err()
                .to_string(),
            "foryou_refit: option regularization_scaling expects one of none, count, sqrt, got 1"
        );
        assert_eq!(
            defaults
                .with_refit_json(r#"{"regularization_scaling": "ALS-WR"}"#)
                .unwrap_err().to_string(),
            "foryou_refit: option regularization_scaling expects one of none, count, sqrt, got \"ALS-WR\""
        );
        // The stored model options carry it, so fold-in uses the scaling of the refit.
        let back = Options::stored_base()
            .with_refit_json(&o.training_json())
            .unwrap();
        assert_eq!(back.regularization_scaling, RegularizationScaling::Count);
    }

    #[test]
    fn options_stored_before_scaling_existed_stay_unscaled() {
        // A table or model stored by an older build has regularization but no
        // regularization_scaling: its λ keeps meaning one λ for every row.
        let mut stored = Options::stored_base();
        stored
            .load_stored("regularization", &rusqlite::types::Value::Real(0.05))
            .unwrap();
        assert_eq!(stored.regularization_scaling, RegularizationScaling::None);
        assert_eq!(stored.regularization, 0.05);
        let model = Options::stored_base()
            .with_refit_json(r#"{"regularization": 0.05, "alpha": 2}"#)
            .unwrap();
        assert_eq!(model.regularization_scaling, RegularizationScaling::None);
        // Otherwise the base is the defaults (tables from before `tune` are not tuned).
        assert_eq!(
            Options {
                regularization_scaling: RegularizationScaling::Count,
                tune: true,
                ..Options::stored_base()
            },
            Options::default()
        );
    }

    #[test]
    fn values_given_for_tuned_options_turn_tuning_off() {
        assert!(Options::default().tune);
        assert!(
            Options::from_create_args(&["factors = 8", "skip_ratio = 0.5"])
                .unwrap()
                .tune
        );
        for given in [
            "alpha = 5",
            "regularization = 1",
            "regularization_scaling = none",
        ] {
            assert!(
                !Options::from_create_args(&[given]).unwrap().tune,
                "{given}"
            );
            // unless tune is asked for too
            assert!(
                Options::from_create_args(&[given, "tune = true"])
                    .unwrap()
                    .tune
            );
        }
        let base = Options::default();
        assert!(!base.with_refit_json(r#"{"alpha": 3}"#).unwrap().tune);
        assert!(
            base.with_refit_json(r#"{"alpha": 3, "tune": true}"#)
                .unwrap()
                .tune
        );
        assert!(base.with_refit_json(r#"{"iterations": 3}"#).unwrap().tune);
        let off = Options::from_create_args(&["tune = false"]).unwrap();
        assert!(!off.with_refit_json(r#"{"iterations": 3}"#).unwrap().tune);
    }

    #[test]
    fn training_json_round_trips() {
        let o = Options::from_create_args(&[
            "alpha = 2.5",
            "confidence = log",
            "seed = 9",
            "exclude_watched = no",
        ])
        .unwrap();
        let back = Options::default()
            .with_refit_json(&o.training_json())
            .unwrap();
        assert_eq!(
            (back.alpha, back.confidence, back.seed),
            (2.5, Confidence::Log, 9)
        );
        assert!(
            back.exclude_watched,
            "table options are not part of the training JSON"
        );
    }

    #[test]
    fn refit_json_overrides_training_options_only() {
        let base = Options::default();
        let o = base
            .with_refit_json(r#"{"iterations": 3, "alpha": 2}"#)
            .unwrap();
        assert_eq!((o.iterations, o.alpha), (3, 2.0));
        assert!(base
            .with_refit_json(r#"{"exclude_watched": true}"#)
            .unwrap_err()
            .to_string()
            .contains("unrecognized option 'exclude_watched'"));
        assert!(base
            .with_refit_json(r#"{"iterations": "3"}"#)
            .unwrap_err()
            .to_string()
            .contains("option iterations expects an integer"));
        assert!(base
            .with_refit_json("[1]")
            .unwrap_err()
            .to_string()
            .contains("must be a JSON object"));
        assert!(base
            .with_refit_json("{")
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
    }

    /// The options table of docs/reference.in.md is the one rendered from the list
    /// above. `FORYOU_BLESS=1 cargo test` rewrites it.
    #[test]
    fn reference_options_table_is_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference.in.md");
        let text = std::fs::read_to_string(path).expect("docs/reference.in.md");
        let (begin, end) = ("<!-- options:begin -->\n", "<!-- options:end -->");
        let start = text.find(begin).expect("options:begin marker") + begin.len();
        let stop = text.find(end).expect("options:end marker");
        let table = Options::reference_table();
        if std::env::var_os("FORYOU_BLESS").is_some() {
            let updated = format!("{}{table}{}", &text[..start], &text[stop..]);
            std::fs::write(path, updated).expect("write docs/reference.in.md");
            return;
        }
        assert_eq!(
            &text[start..stop],
            table,
            "docs/reference.in.md's options table differs from the options list; \
             run FORYOU_BLESS=1 cargo test -p foryou --lib reference_options_table"
        );
    }
}
