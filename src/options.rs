//! Model options: the `key = value` arguments of `CREATE VIRTUAL TABLE ... USING foryou(...)`
//! and the JSON object accepted by `foryou_refit(model, options_json)`.
//!
//! One table ([`SPECS`]) lists every option with its type, range and default, so that
//! parsing, validation, storage and the error messages all come from the same place.

use std::fmt;

pub use crate::model::als::RegularizationScaling;
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
    default: Value,
    scope: Scope,
}

/// One option value, as stored in `<table>_config`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    Text(&'static str),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Integer(v) => write!(f, "{v}"),
            Value::Real(v) => write!(f, "{v}"),
            Value::Boolean(v) => write!(f, "{v}"),
            Value::Text(v) => write!(f, "{v}"),
        }
    }
}

const SPECS: &[Spec] = &[
    Spec {
        name: "factors",
        kind: Kind::Integer { min: 1, max: 1024 },
        default: Value::Integer(64),
        scope: Scope::Training,
    },
    Spec {
        name: "iterations",
        kind: Kind::Integer { min: 1, max: 1000 },
        default: Value::Integer(15),
        scope: Scope::Training,
    },
    Spec {
        name: "regularization",
        kind: Kind::Real {
            min: 0.0,
            max: 1e6,
            min_exclusive: false,
        },
        default: Value::Real(0.2),
        scope: Scope::Training,
    },
    Spec {
        name: "regularization_scaling",
        kind: Kind::Choice(&["none", "count", "sqrt"]),
        default: Value::Text("count"),
        scope: Scope::Training,
    },
    Spec {
        name: "alpha",
        kind: Kind::Real {
            min: 0.0,
            max: 1e6,
            min_exclusive: true,
        },
        default: Value::Real(2.0),
        scope: Scope::Training,
    },
    Spec {
        name: "confidence",
        kind: Kind::Choice(&["binary", "linear", "log", "ratio"]),
        default: Value::Text("ratio"),
        scope: Scope::Training,
    },
    Spec {
        name: "skip_ratio",
        kind: Kind::Real {
            min: 0.0,
            max: 1e3,
            min_exclusive: false,
        },
        default: Value::Real(0.1),
        scope: Scope::Training,
    },
    Spec {
        name: "skip_seconds",
        kind: Kind::Real {
            min: 0.0,
            max: 1e6,
            min_exclusive: false,
        },
        default: Value::Real(0.0),
        scope: Scope::Training,
    },
    Spec {
        name: "skip_weight",
        kind: Kind::Real {
            min: 0.0,
            max: 1e6,
            min_exclusive: true,
        },
        default: Value::Real(1.0),
        scope: Scope::Training,
    },
    Spec {
        name: "half_life_days",
        kind: Kind::Real {
            min: 0.0,
            max: 1e6,
            min_exclusive: false,
        },
        default: Value::Real(0.0),
        scope: Scope::Training,
    },
    Spec {
        name: "popularity_exponent",
        kind: Kind::Real {
            min: -2.0,
            max: 2.0,
            min_exclusive: false,
        },
        default: Value::Real(0.0),
        scope: Scope::Training,
    },
    Spec {
        name: "cg_steps",
        kind: Kind::Integer { min: 1, max: 64 },
        default: Value::Integer(3),
        scope: Scope::Training,
    },
    Spec {
        name: "seed",
        kind: Kind::Integer {
            min: 0,
            max: i64::MAX,
        },
        default: Value::Integer(0),
        scope: Scope::Training,
    },
    Spec {
        name: "threads",
        kind: Kind::Integer { min: 0, max: 256 },
        default: Value::Integer(0),
        scope: Scope::Training,
    },
    Spec {
        name: "incremental_iterations",
        kind: Kind::Integer { min: 1, max: 1000 },
        default: Value::Integer(3),
        scope: Scope::Training,
    },
    Spec {
        name: "tune",
        kind: Kind::Boolean,
        default: Value::Boolean(true),
        scope: Scope::Training,
    },
    Spec {
        name: "auto_refit",
        kind: Kind::Integer {
            min: 0,
            max: i64::MAX,
        },
        default: Value::Integer(0),
        scope: Scope::Table,
    },
    Spec {
        name: "explore",
        kind: Kind::Real {
            min: 0.0,
            max: 1.0,
            min_exclusive: false,
        },
        default: Value::Real(0.0),
        scope: Scope::Table,
    },
    Spec {
        name: "exclude_watched",
        kind: Kind::Boolean,
        default: Value::Boolean(true),
        scope: Scope::Table,
    },
];

/// Options added after tables were first stored, with the value that gives the
/// behaviour of the builds before them. A table (`<table>_config`) or a model (its options
/// JSON) stored before such an option existed has no entry for it and keeps meaning what
/// it meant: a table created with the unscaled `regularization = 0.05` stays unscaled.
/// New tables and models store every option, so this matters only for old files.
const ADDED_LATER: &[(&str, Value)] = &[
    ("regularization_scaling", Value::Text("none")),
    ("tune", Value::Boolean(false)),
];

/// The validated options of one model.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Embedding size.
    pub factors: usize,
    /// ALS sweeps (users then items) per refit.
    pub iterations: usize,
    /// L2 penalty λ on every user and item vector (per observed pair with `count`).
    pub regularization: f64,
    /// How a row's penalty grows with its observed pairs: `λ_r = λ · s_r`.
    pub regularization_scaling: RegularizationScaling,
    /// Confidence scale (see `model::feedback`).
    pub alpha: f64,
    /// How a pair's watch ratio becomes confidence.
    pub confidence: Confidence,
    /// An event with watch ratio below this is a skip (0: off).
    pub skip_ratio: f64,
    /// An event watched for less than min(this, duration) seconds is a skip (0: off).
    pub skip_seconds: f64,
    /// Confidence added per skip to a pair that was only skipped.
    pub skip_weight: f64,
    /// Recency half-life in days, relative to the newest event (0: off).
    pub half_life_days: f64,
    /// `ω`: unobserved pairs on item i weigh `pop_i^ω / mean(pop^ω)` (0: all weigh 1).
    pub popularity_exponent: f64,
    /// Conjugate-gradient steps per vector per sweep.
    pub cg_steps: usize,
    /// Seed of the initial factors.
    pub seed: u64,
    /// Worker threads for a refit; 0 means one per CPU. Never changes the result.
    pub threads: usize,
    /// Sweeps of an incremental refit.
    pub incremental_iterations: usize,
    /// Whether a full refit chooses `alpha`, `regularization` and its scaling itself,
    /// from a hold-out split of the events (`model::tune`).
    pub tune: bool,
    /// Run an incremental refit once this many events arrived since the last refit (0: off).
    pub auto_refit: u64,
    /// Share of `recommend()` slots given to fresh or under-exposed items (0: off).
    pub explore: f64,
    /// Whether `recommend()` leaves out items the user already watched.
    pub exclude_watched: bool,
}

impl Default for Options {
    fn default() -> Self {
        let mut options = Options {
            factors: 0,
            iterations: 0,
            regularization: 0.0,
            regularization_scaling: RegularizationScaling::None,
            alpha: 0.0,
            confidence: Confidence::Linear,
            skip_ratio: 0.0,
            skip_seconds: 0.0,
            skip_weight: 0.0,
            half_life_days: 0.0,
            popularity_exponent: 0.0,
            cg_steps: 0,
            seed: 0,
            threads: 0,
            incremental_iterations: 0,
            tune: false,
            auto_refit: 0,
            explore: 0.0,
            exclude_watched: false,
        };
        for spec in SPECS {
            options.set(spec.name, spec.default);
        }
        options
    }
}

impl Options {
    /// What stored options are read onto: the defaults, except that options added after
    /// the table or model was stored take their earlier behaviour ([`ADDED_LATER`]).
    pub fn stored_base() -> Options {
        let mut options = Options::default();
        for &(name, value) in ADDED_LATER {
            options.set(name, value);
        }
        options
    }

    /// The feedback part, for `model::feedback`.
    pub fn feedback(&self) -> crate::model::feedback::FeedbackParams {
        crate::model::feedback::FeedbackParams {
            confidence: self.confidence,
            alpha: self.alpha as f32,
            skip_ratio: self.skip_ratio,
            skip_seconds: self.skip_seconds,
            skip_weight: self.skip_weight as f32,
            half_life_days: self.half_life_days,
            popularity_exponent: self.popularity_exponent,
        }
    }

    /// The training options as a JSON object (stored with a model; read back by
    /// [`Options::with_refit_json`]).
    pub fn training_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = SPECS
            .iter()
            .filter(|s| s.scope == Scope::Training)
            .map(|s| {
                let v = match self.get(s.name) {
                    Value::Integer(v) => serde_json::json!(v),
                    Value::Real(v) => serde_json::json!(v),
                    Value::Boolean(v) => serde_json::json!(v),
                    Value::Text(v) => serde_json::json!(v),
                };
                (s.name.to_string(), v)
            })
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    /// Every option as (name, value), in documentation order: what `<table>_config` stores.
    pub fn entries(&self) -> Vec<(&'static str, Value)> {
        SPECS
            .iter()
            .map(|spec| (spec.name, self.get(spec.name)))
            .collect()
    }

    /// Names of every option, for error messages and docs.
    pub fn names() -> Vec<&'static str> {
        SPECS.iter().map(|s| s.name).collect()
    }

    fn get(&self, name: &str) -> Value {
        match name {
            "factors" => Value::Integer(self.factors as i64),
            "iterations" => Value::Integer(self.iterations as i64),
            "regularization" => Value::Real(self.regularization),
            "regularization_scaling" => Value::Text(self.regularization_scaling.name()),
            "alpha" => Value::Real(self.alpha),
            "confidence" => Value::Text(self.confidence.name()),
            "skip_ratio" => Value::Real(self.skip_ratio),
            "skip_seconds" => Value::Real(self.skip_seconds),
            "skip_weight" => Value::Real(self.skip_weight),
            "half_life_days" => Value::Real(self.half_life_days),
            "popularity_exponent" => Value::Real(self.popularity_exponent),
            "cg_steps" => Value::Integer(self.cg_steps as i64),
            "seed" => Value::Integer(self.seed as i64),
            "threads" => Value::Integer(self.threads as i64),
            "incremental_iterations" => Value::Integer(self.incremental_iterations as i64),
            "tune" => Value::Boolean(self.tune),
            "auto_refit" => Value::Integer(self.auto_refit as i64),
            "explore" => Value::Real(self.explore),
            "exclude_watched" => Value::Boolean(self.exclude_watched),
            other => unreachable!("option {other} has no field"),
        }
    }

    /// Stores an already validated value.
    fn set(&mut self, name: &str, value: Value) {
        match (name, value) {
            ("factors", Value::Integer(v)) => self.factors = v as usize,
            ("iterations", Value::Integer(v)) => self.iterations = v as usize,
            ("regularization", Value::Real(v)) => self.regularization = v,
            ("regularization_scaling", Value::Text(v)) => {
                self.regularization_scaling =
                    RegularizationScaling::from_name(v).expect("validated")
            }
            ("alpha", Value::Real(v)) => self.alpha = v,
            ("confidence", Value::Text(v)) => {
                self.confidence = Confidence::from_name(v).expect("validated")
            }
            ("skip_ratio", Value::Real(v)) => self.skip_ratio = v,
            ("skip_seconds", Value::Real(v)) => self.skip_seconds = v,
            ("skip_weight", Value::Real(v)) => self.skip_weight = v,
            ("half_life_days", Value::Real(v)) => self.half_life_days = v,
            ("popularity_exponent", Value::Real(v)) => self.popularity_exponent = v,
            ("cg_steps", Value::Integer(v)) => self.cg_steps = v as usize,
            ("seed", Value::Integer(v)) => self.seed = v as u64,
            ("threads", Value::Integer(v)) => self.threads = v as usize,
            ("incremental_iterations", Value::Integer(v)) => {
                self.incremental_iterations = v as usize
            }
            ("tune", Value::Boolean(v)) => self.tune = v,
            ("auto_refit", Value::Integer(v)) => self.auto_refit = v as u64,
            ("explore", Value::Real(v)) => self.explore = v,
            ("exclude_watched", Value::Boolean(v)) => self.exclude_watched = v,
            (other, value) => unreachable!("option {other} cannot hold {value:?}"),
        }
    }

    /// Parses the arguments of `CREATE VIRTUAL TABLE t USING foryou(arg, ...)`.
    /// Each argument is `key = value`; keys are case-insensitive; a key may appear once.
    pub fn from_create_args(args: &[&str]) -> Result<Options, String> {
        let mut options = Options::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for raw in args {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let Some((key, value)) = raw.split_once('=') else {
                return Err(format!(
                    "foryou: argument '{raw}' is not of the form key = value (options: {})",
                    Options::names().join(", ")
                ));
            };
            let spec = find_spec(key.trim())?;
            if seen.contains(&spec.name) {
                return Err(format!("foryou: option {} given more than once", spec.name));
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
    pub fn load_stored(&mut self, key: &str, value: &rusqlite::types::Value) -> Result<(), String> {
        use rusqlite::types::Value as V;
        let spec = find_spec(key)?;
        let parsed = match value {
            V::Integer(i) => check(spec, Value::Integer(*i))
                .or_else(|_| check(spec, Value::Real(*i as f64)))
                .or_else(|_| check(spec, Value::Boolean(*i != 0)))?,
            V::Real(r) => check(spec, Value::Real(*r))?,
            V::Text(t) => parse_text(spec, t)?,
            _ => {
                return Err(format!(
                    "foryou: stored option {key} has an unreadable value"
                ))
            }
        };
        self.set(spec.name, parsed);
        Ok(())
    }

    /// Applies the per-call JSON object of `foryou_refit(model, options_json)` on top of
    /// the stored options. Only training options are accepted.
    pub fn with_refit_json(&self, json: &str) -> Result<Options, String> {
        const WHO: &str = "foryou_refit";
        let parsed: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| format!("{WHO}: options_json is not valid JSON ({e})"))?;
        let serde_json::Value::Object(map) = parsed else {
            return Err(format!(
                "{WHO}: options_json must be a JSON object such as '{{\"iterations\": 5}}'"
            ));
        };
        let mut options = self.clone();
        for (key, value) in &map {
            let spec = SPECS
                .iter()
                .find(|s| s.name == key.as_str() && s.scope == Scope::Training)
                .ok_or_else(|| {
                    let training: Vec<_> = SPECS
                        .iter()
                        .filter(|s| s.scope == Scope::Training)
                        .map(|s| s.name)
                        .collect();
                    format!(
                        "{WHO}: unrecognized option '{key}' in options_json (per-refit options: mode, {})",
                        training.join(", ")
                    )
                })?;
            let candidate = match value {
                serde_json::Value::Bool(b) => Value::Boolean(*b),
                serde_json::Value::String(t) => match choose(spec, t) {
                    Some(word) => Value::Text(word),
                    None => {
                        return Err(format!(
                            "{WHO}: option {} {}, got {value}",
                            spec.name,
                            expectation(spec)
                        ))
                    }
                },
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => Value::Integer(i),
                    None => Value::Real(n.as_f64().unwrap_or(f64::NAN)),
                },
                _ => {
                    return Err(format!(
                        "{WHO}: option {} {}, got {value}",
                        spec.name,
                        expectation(spec)
                    ))
                }
            };
            let value = coerce(spec, candidate).map_err(|_| {
                format!(
                    "{WHO}: option {} {}, got {value}",
                    spec.name,
                    expectation(spec)
                )
            })?;
            options.set(spec.name, value);
        }
        let given: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        options.explicit_values_win(&given);
        Ok(options)
    }
}

/// The options a tuned refit chooses itself (`model::tune`).
pub const TUNED: &[&str] = &["alpha", "regularization", "regularization_scaling"];

fn find_spec(key: &str) -> Result<&'static Spec, String> {
    SPECS
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(key))
        .ok_or_else(|| {
            format!(
                "foryou: unrecognized option '{key}' (options: {})",
                Options::names().join(", ")
            )
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
        Kind::Integer { min, max } if max == i64::MAX => format!("expects an integer >= {min}"),
        Kind::Integer { min, max } => format!("expects an integer from {min} to {max}"),
        Kind::Real {
            min,
            min_exclusive: true,
            ..
        } => format!("expects a number > {min}"),
        Kind::Real { min, max, .. } => format!("expects a number from {min} to {max}"),
        Kind::Boolean => "expects a boolean (true/false, on/off, yes/no, 1/0)".to_string(),
        Kind::Choice(words) => format!("expects one of {}", words.join(", ")),
    }
}

/// The word of a Choice option matching `text` (case-insensitive).
fn choose(spec: &Spec, text: &str) -> Option<&'static str> {
    match spec.kind {
        Kind::Choice(words) => words.iter().find(|w| w.eq_ignore_ascii_case(text)).copied(),
        _ => None,
    }
}

fn parse_text(spec: &Spec, text: &str) -> Result<Value, String> {
    let bad = || {
        format!(
            "foryou: option {} {}, got '{text}'",
            spec.name,
            expectation(spec)
        )
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
    };
    check(spec, candidate).map_err(|_| bad())
}

/// Accepts an integer where a real is expected (`alpha = 10`), then checks the range.
fn coerce(spec: &Spec, value: Value) -> Result<Value, String> {
    match (spec.kind, value) {
        (Kind::Real { .. }, Value::Integer(i)) => check(spec, Value::Real(i as f64)),
        _ => check(spec, value),
    }
}

fn check(spec: &Spec, value: Value) -> Result<Value, String> {
    let ok = match (spec.kind, value) {
        (Kind::Integer { min, max }, Value::Integer(v)) => v >= min && v <= max,
        (
            Kind::Real {
                min,
                max,
                min_exclusive,
            },
            Value::Real(v),
        ) => v.is_finite() && v <= max && if min_exclusive { v > min } else { v >= min },
        (Kind::Boolean, Value::Boolean(_)) => true,
        (Kind::Choice(words), Value::Text(t)) => words.contains(&t),
        _ => false,
    };
    if ok {
        Ok(value)
    } else {
        Err(format!(
            "option {} {}, got {value}",
            spec.name,
            expectation(spec)
        ))
    }
}

#[cfg(test)]
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
            Options::from_create_args(&["factors = 0"]).unwrap_err(),
            "foryou: option factors expects an integer from 1 to 1024, got '0'"
        );
        assert!(Options::from_create_args(&["fators = 3"])
            .unwrap_err()
            .starts_with("foryou: unrecognized option 'fators'"));
        assert!(Options::from_create_args(&["alpha = 0"])
            .unwrap_err()
            .contains("expects a number > 0"));
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
            .contains("key = value"));
        assert!(Options::from_create_args(&["seed=1", "seed=2"])
            .unwrap_err()
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
            Options::from_create_args(&["regularization_scaling = linear"]).unwrap_err(),
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
                .unwrap_err(),
            "foryou_refit: option regularization_scaling expects one of none, count, sqrt, got 1"
        );
        assert_eq!(
            defaults
                .with_refit_json(r#"{"regularization_scaling": "ALS-WR"}"#)
                .unwrap_err(),
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
            .contains("unrecognized option 'exclude_watched'"));
        assert!(base
            .with_refit_json(r#"{"iterations": "3"}"#)
            .unwrap_err()
            .contains("option iterations expects an integer"));
        assert!(base
            .with_refit_json("[1]")
            .unwrap_err()
            .contains("must be a JSON object"));
        assert!(base
            .with_refit_json("{")
            .unwrap_err()
            .contains("not valid JSON"));
    }
}
