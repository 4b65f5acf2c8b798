//! Implicit-feedback alternating least squares with a conjugate-gradient solver.
//!
//! # Model
//!
//! Users get vectors `x_u`, items `y_i` (both of length `f`). An observed (user, item)
//! pair carries a confidence `c_ui` and a preference `p_ui` from [`Interactions`]; an
//! unobserved pair has `p = 0` and the weight `w_i` of its item,
//! [`Interactions::missing_weight`] (Hu, Koren, Volinsky 2008 use `w_i = 1`; He, Zhang,
//! Kan, Chua 2016, "Fast Matrix Factorization for Online Recommendation with Implicit
//! Feedback" (eALS), weight missing data by item popularity: a popular item the user
//! never watched is stronger evidence of disinterest than an obscure one). The
//! objective is
//!
//! ```text
//! L(X, Y) = Σ_{(u,i) observed}   c_ui (p_ui − x_u·y_i)²
//!         + Σ_{(u,i) unobserved} w_i (x_u·y_i)²
//!         + Σ_u λ_u |x_u|² + Σ_i λ_i |y_i|²
//! ```
//!
//! where each row's penalty `λ_r = λ · s(n_r)` follows [`RegularizationScaling`] (the
//! `regularization_scaling` option), `n_r` being the row's number of observed pairs
//! (watched or skipped; distinct items of a user, distinct users of an item):
//!
//! ```text
//! none:   s(n) = 1                 λ (Σ_u |x_u|² + Σ_i |y_i|²), Hu, Koren, Volinsky 2008
//! count:  s(n) = max(n, 1)         λ per observed pair: weighted-λ regularisation (ALS-WR,
//!                                  Zhou, Wilkinson, Schreiber, Pan 2008; Spark MLlib's ALS)
//! sqrt:   s(n) = √max(n, 1)
//! ```
//!
//! With `count`, a row's penalty grows with its data as its data term does, so one `λ`
//! suits a user with 3 events and one with 3000: heavy rows (a dense log) are smoothed as
//! much, relative to their evidence, as light ones (a small table). (Spark counts a row's
//! positive ratings; here every observed pair counts, skips included, since a skip adds
//! its own term to the row's system.) A row with no observed pair, which no refit has,
//! would take `λ`. `λ_r` is computed in f32 as `λ · s` ([`RegularizationScaling::row_lambda`])
//! by every solver, the loss and fold-in alike.
//!
//! with `w_i = pop_i^ω / mean_j(pop_j^ω)`, `pop_i` the popularity of item `i` (the
//! number of distinct users who watched it, [`super::feedback::build`]) and `ω` the `popularity_exponent` option (see
//! [`super::feedback::missing_weights`]): the mean weight is 1, so `λ` and `alpha` keep
//! their meaning, and `ω = 0` gives `w_i = 1` exactly, the uniform model.
//!
//! With `Y` fixed, each `x_u` is the solution of the normal equations
//!
//! ```text
//! A_u x_u = b_u,
//! A_u = YᵀWY + Σ_{i∈u} (c_ui − w_i) y_i y_iᵀ + λ_u I,    YᵀWY = Σ_i w_i y_i y_iᵀ
//! b_u = Σ_{i∈u} c_ui p_ui y_i
//! ```
//!
//! (`YᵀWY` counts every item once with its missing weight; the observed items correct
//! that weight to `c_ui`.) An observed skip (`p = 0`) adds `(c − w) y yᵀ` to `A_u` and
//! nothing to `b_u`. With `X` fixed, each item's weight is one scalar:
//!
//! ```text
//! A_i = w_i XᵀX + Σ_{u∈i} (c_ui − w_i) x_u x_uᵀ + λ_i I,   b_i = Σ_{u∈i} c_ui p_ui x_u
//! ```
//!
//! Each iteration sweeps users, then items.
//!
//! # Solver
//!
//! As in Takács, Pilászy, Tikk (2011), "Applications of the conjugate gradient method
//! for implicit feedback collaborative filtering" (also the approach of the `implicit`
//! library's `least_squares_cg`), each row runs `cg_steps` conjugate-gradient iterations
//! warm-started from its current vector, never forming `A_u`: the product
//!
//! ```text
//! A_u v = (YᵀWY + λ_u I) v + Σ_{i∈u} (c_ui − w_i) (y_i·v) y_i
//! A_i v = w_i (XᵀX) v + λ_i v + Σ_{u∈i} (c_ui − w_i) (x_u·v) x_u
//! ```
//!
//! costs `O(f² + n_u f)`. The Gramian (`YᵀWY` or `XᵀX`) is computed once per sweep, in
//! f64 with a fixed reduction order. With one `λ` for every row (`none`) the user step
//! folds `λI` into the shared Gramian, as it always did (same arithmetic, same bits); a
//! scaled `λ_u` is added per row instead. Since `A_u` is positive definite (for
//! `c, w ≥ 0`, `λ_u > 0`), each CG step from the warm start cannot increase the objective, so a few
//! steps per sweep suffice (3 is the usual default). When every `w_i` is exactly 1 the
//! sweep takes the uniform path (`YᵀY + λI`, corrections `c − 1`): the same arithmetic,
//! hence the same bits, as before missing-data weights existed.
//!
//! # Determinism
//!
//! Rows are solved independently (each writes only its own slice of the factor matrix),
//! the Gramian and the loss are reduced in an order that depends only on the data, and
//! the random init is counter-based: results are bit-identical for any thread count.
//! The vector kernels ([`super::kernels`]: dot products with a fixed 16-lane layout, FMA
//! everywhere) give the same bits on AVX-512, AVX2 + FMA and the portable scalar code, so
//! results are also the same on every CPU.
//!
//! # Loss
//!
//! [`loss`] reports `L` (with each row's `λ_r`) divided by `Σ_observed c + Σ_unobserved w_i` (the total
//! confidence of all pairs; `n_users·n_items − nnz` for the unobserved ones when every
//! weight is 1), like `implicit`'s `calculate_loss`, computed without visiting
//! unobserved pairs: `Σ_unobserved w_i (x·y)² = Σ_u x_uᵀ(YᵀWY)x_u − Σ_observed w_i (x·y)²`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rayon::prelude::*;

use super::factors::{axpy, dot, dot_f64, Factors};
use super::interactions::{CsrView, Interactions};
use super::kernels;
use super::linalg::cholesky_solve;

/// ALS hyper-parameters.
#[derive(Clone, Debug)]
pub struct AlsParams {
    /// Embedding dimension `f` (> 0).
    pub factors: usize,
    /// Number of sweeps (users then items).
    pub iterations: usize,
    /// `λ` (finite, >= 0; > 0 recommended).
    pub regularization: f32,
    /// How `λ` grows with each row's amount of data (see [`RegularizationScaling`]).
    pub regularization_scaling: RegularizationScaling,
    /// Conjugate-gradient steps per row and sweep.
    pub cg_steps: usize,
    /// Seed of the random init (cold start).
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            factors: 64,
            iterations: 15,
            regularization: 0.01,
            regularization_scaling: RegularizationScaling::None,
            cg_steps: 3,
            seed: 0,
        }
    }
}

/// How the penalty of one row (a user or an item) depends on its observed pairs: the
/// row's `λ_r = λ · s_r` (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RegularizationScaling {
    /// `s_r = 1`: the same `λ` for every row (Hu, Koren, Volinsky 2008).
    #[default]
    None,
    /// `s_r = n_r`, the row's number of observed pairs, watched or skipped (at least 1):
    /// weighted-λ regularisation (ALS-WR, Zhou et al. 2008; Spark MLlib's ALS).
    Count,
    /// `s_r = √n_r` (`n_r` at least 1): between the two, heavier rows still get more
    /// penalty, but not in proportion.
    Sqrt,
}

impl RegularizationScaling {
    /// The option value naming this scaling.
    pub fn name(self) -> &'static str {
        match self {
            RegularizationScaling::None => "none",
            RegularizationScaling::Count => "count",
            RegularizationScaling::Sqrt => "sqrt",
        }
    }

    /// The scaling named `name` (an option value), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            RegularizationScaling::None,
            RegularizationScaling::Count,
            RegularizationScaling::Sqrt,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// `λ_r = λ · s_r` of a row with `n` observed pairs. Every solver (CG, reference,
    /// fold-in) and the loss take a row's `λ` from here, so they agree to the bit on it.
    pub fn row_lambda(self, lambda: f32, n: usize) -> f32 {
        let n = n.max(1) as f32;
        match self {
            RegularizationScaling::None => lambda,
            RegularizationScaling::Count => lambda * n,
            RegularizationScaling::Sqrt => lambda * n.sqrt(),
        }
    }
}

/// What a fit did.
#[derive(Clone, Debug)]
pub struct FitReport {
    /// Iterations run.
    pub iterations: usize,
    /// Normalised loss (see [`loss`]) of the returned factors.
    pub loss: f64,
    /// Loss after each iteration with [`fit_traced`]; empty from [`fit`] and [`fit_warm`],
    /// which compute the loss once, at the end (a loss costs about a quarter of a sweep).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "filled only by fit_traced, a test's")
    )]
    pub loss_history: Vec<f64>,
}

/// Why a fit failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// A factor row became NaN or infinite (`side` is "user" or "item").
    NonFinite { side: &'static str, row: usize },
    /// No users or no items.
    Empty,
    /// Warm-start factors do not match the data and `params.factors`.
    ShapeMismatch {
        side: &'static str,
        expected_rows: usize,
        expected_dim: usize,
        rows: usize,
        dim: usize,
    },
    /// A parameter is out of range (message says which).
    InvalidParams(String),
    /// The stop flag was raised (see [`fit_stoppable`]); the fit was abandoned.
    Stopped,
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::NonFinite { side, row } => write!(
                f,
                "model diverged: {side} factor row {row} is not finite (NaN or infinity); \
                 lower alpha or raise regularization"
            ),
            ModelError::Empty => write!(f, "nothing to fit: the model needs at least one user and one item"),
            ModelError::ShapeMismatch { side, expected_rows, expected_dim, rows, dim } => write!(
                f,
                "warm-start {side} factors are {rows}x{dim}, expected {expected_rows}x{expected_dim}"
            ),
            ModelError::InvalidParams(msg) => write!(f, "invalid ALS parameters: {msg}"),
            ModelError::Stopped => write!(f, "the fit was stopped before its end"),
        }
    }
}

impl std::error::Error for ModelError {}

/// Checks shared by [`fit_warm`] and the reference solver.
pub(crate) fn check_inputs(data: &Interactions, params: &AlsParams) -> Result<(), ModelError> {
    if params.factors == 0 {
        return Err(ModelError::InvalidParams(
            "factors must be at least 1".into(),
        ));
    }
    if !(params.regularization.is_finite() && params.regularization >= 0.0) {
        return Err(ModelError::InvalidParams(format!(
            "regularization must be a finite number >= 0, got {}",
            params.regularization
        )));
    }
    if data.n_users == 0 || data.n_items == 0 {
        return Err(ModelError::Empty);
    }
    if data.missing_weight.len() != data.n_items {
        return Err(ModelError::InvalidParams(format!(
            "{} missing-data weights for {} items",
            data.missing_weight.len(),
            data.n_items
        )));
    }
    if let Some(w) = data
        .missing_weight
        .iter()
        .find(|w| !(w.is_finite() && **w >= 0.0))
    {
        return Err(ModelError::InvalidParams(format!(
            "missing-data weights must be finite numbers >= 0, got {w}"
        )));
    }
    Ok(())
}

pub(crate) fn check_finite(users: &Factors, items: &Factors) -> Result<(), ModelError> {
    if let Some((row, _)) = users.first_non_finite() {
        return Err(ModelError::NonFinite { side: "user", row });
    }
    if let Some((row, _)) = items.first_non_finite() {
        return Err(ModelError::NonFinite { side: "item", row });
    }
    Ok(())
}

/// What another thread (the one that owns the connection) and a running fit share: a
/// stop flag the fit reads, and the sweeps it has done, which the other thread may read
/// to report progress. Neither changes what the fit computes.
#[derive(Debug, Default)]
pub struct Control {
    stop: AtomicBool,
    sweeps: AtomicU64,
}

impl Control {
    pub const fn new() -> Control {
        Control {
            stop: AtomicBool::new(false),
            sweeps: AtomicU64::new(0),
        }
    }

    /// Asks the fits that read this to stop soon.
    pub fn raise(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Full sweeps (users, then items) finished by the fits that share this, tuning's
    /// included.
    pub fn sweeps(&self) -> u64 {
        self.sweeps.load(Ordering::Relaxed)
    }

    fn sweep_done(&self) {
        self.sweeps.fetch_add(1, Ordering::Relaxed);
    }
}

/// A stop flag that is never raised: the fits without one.
static NEVER: Control = Control::new();

/// Whether another thread raised `stop`. Relaxed: the flag carries no data, and a fit
/// that sees it a little late only stops a little later.
pub fn stopped(stop: &Control) -> bool {
    stop.stop.load(Ordering::Relaxed)
}

/// Cold start: users = `Factors::random(n_users, f, seed, 0)`, items =
/// `Factors::random(n_items, f, seed, 1)`, then [`fit_warm`].
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the refit stops its fits: the tests run the fits without a flag"
    )
)]
pub fn fit(
    data: &Interactions,
    params: &AlsParams,
    pool: &rayon::ThreadPool,
) -> Result<(Factors, Factors, FitReport), ModelError> {
    fit_stoppable(data, params, pool, &NEVER)
}

/// [`fit`] that gives up with [`ModelError::Stopped`] soon after another thread raises
/// `stop`: the flag is read before every half-sweep, before every row of a sweep and
/// before the loss. While it is not raised, the result is [`fit`]'s, bit for bit (it
/// only decides whether work is done, never how).
pub fn fit_stoppable(
    data: &Interactions,
    params: &AlsParams,
    pool: &rayon::ThreadPool,
    stop: &Control,
) -> Result<(Factors, Factors, FitReport), ModelError> {
    check_inputs(data, params)?;
    let (users, items) = cold_start(data, params);
    fit_warm_impl(data, params, pool, users, items, false, stop)
}

/// [`fit`] that also records the loss after every iteration in
/// [`FitReport::loss_history`] (same factors, bit for bit; slower).
#[cfg(test)]
pub fn fit_traced(
    data: &Interactions,
    params: &AlsParams,
    pool: &rayon::ThreadPool,
) -> Result<(Factors, Factors, FitReport), ModelError> {
    check_inputs(data, params)?;
    let (users, items) = cold_start(data, params);
    fit_warm_impl(data, params, pool, users, items, true, &NEVER)
}

/// The seeded initial factors of a cold start.
fn cold_start(data: &Interactions, params: &AlsParams) -> (Factors, Factors) {
    (
        Factors::random(data.n_users, params.factors, params.seed, 0),
        Factors::random(data.n_items, params.factors, params.seed, 1),
    )
}

/// Warm start from given factors (shapes must match `data` and `params.factors`, else
/// [`ModelError::ShapeMismatch`]). Stops early with [`ModelError::NonFinite`] as soon as
/// an iteration produces a non-finite factor.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the refit stops its fits: the tests run the fits without a flag"
    )
)]
pub fn fit_warm(
    data: &Interactions,
    params: &AlsParams,
    pool: &rayon::ThreadPool,
    users: Factors,
    items: Factors,
) -> Result<(Factors, Factors, FitReport), ModelError> {
    fit_warm_impl(data, params, pool, users, items, false, &NEVER)
}

/// [`fit_warm`] with a stop flag, as [`fit_stoppable`].
pub fn fit_warm_stoppable(
    data: &Interactions,
    params: &AlsParams,
    pool: &rayon::ThreadPool,
    users: Factors,
    items: Factors,
    stop: &Control,
) -> Result<(Factors, Factors, FitReport), ModelError> {
    fit_warm_impl(data, params, pool, users, items, false, stop)
}

/// [`fit_warm`]; with `trace`, the loss after every iteration too; abandoned with
/// [`ModelError::Stopped`] once `stop` is raised.
fn fit_warm_impl(
    data: &Interactions,
    params: &AlsParams,
    pool: &rayon::ThreadPool,
    mut users: Factors,
    mut items: Factors,
    trace: bool,
    stop: &Control,
) -> Result<(Factors, Factors, FitReport), ModelError> {
    check_inputs(data, params)?;
    for (side, f, rows) in [
        ("user", &users, data.n_users),
        ("item", &items, data.n_items),
    ] {
        if f.rows != rows || f.dim != params.factors || f.data.len() != rows * params.factors {
            return Err(ModelError::ShapeMismatch {
                side,
                expected_rows: rows,
                expected_dim: params.factors,
                rows: f.rows,
                dim: f.dim,
            });
        }
    }
    check_finite(&users, &items)?;
    let reg = params.regularization;
    let scaling = params.regularization_scaling;
    let (user_w, item_w) = if data.uniform_missing_weight() {
        (MissingWeights::Uniform, MissingWeights::Uniform)
    } else {
        (
            MissingWeights::Fixed(&data.missing_weight),
            MissingWeights::Target(&data.missing_weight),
        )
    };
    // A sweep cut short by `stop` leaves some rows unsolved: its factors are dropped.
    let go_on = || {
        if stopped(stop) {
            Err(ModelError::Stopped)
        } else {
            Ok(())
        }
    };
    let (user_w, item_w) = (user_w.normalized(), item_w.normalized());
    let mut loss_history = Vec::with_capacity(if trace { params.iterations } else { 0 });
    for _ in 0..params.iterations {
        go_on()?;
        cg_sweep_exact(
            data.by_user(),
            &items,
            &mut users,
            user_w,
            reg,
            scaling,
            params.cg_steps,
            pool,
            stop,
        );
        go_on()?;
        cg_sweep_exact(
            data.by_item(),
            &users,
            &mut items,
            item_w,
            reg,
            scaling,
            params.cg_steps,
            pool,
            stop,
        );
        go_on()?;
        check_finite(&users, &items)?;
        stop.sweep_done();
        if trace {
            loss_history.push(loss(data, &users, &items, reg, scaling, pool));
        }
    }
    go_on()?;
    let last = match loss_history.last() {
        Some(&l) => l,
        None => loss(data, &users, &items, reg, scaling, pool),
    };
    let report = FitReport {
        iterations: params.iterations,
        loss: last,
        loss_history,
    };
    Ok((users, items, report))
}

/// Scratch vectors of one CG solve.
struct CgScratch {
    r: Vec<f32>,
    d: Vec<f32>,
    ad: Vec<f32>,
}

/// Residual threshold below which a row is considered solved (as in `implicit`).
const CG_EPS: f32 = 1e-20;

/// The weights of the unobserved pairs in one half-sweep.
#[derive(Clone, Copy, Debug)]
pub enum MissingWeights<'a> {
    /// Every unobserved pair weighs 1.
    Uniform,
    /// One weight per row of `fixed` (the user step: `w` per item, columns of the rows).
    Fixed(&'a [f32]),
    /// One weight per row of `target` (the item step: each item's own `w`).
    Target(&'a [f32]),
}

impl MissingWeights<'_> {
    /// `Uniform` when every weight is exactly 1 (the bit-identical fast path).
    // Exactly 1.0 on purpose: all-ones weights take the unweighted path.
    #[allow(clippy::float_cmp)]
    fn normalized(self) -> Self {
        match self {
            MissingWeights::Fixed(w) | MissingWeights::Target(w) if w.iter().all(|&v| v == 1.0) => {
                MissingWeights::Uniform
            }
            other => other,
        }
    }
}

/// One half-sweep: re-solve every row of `target` against `fixed` (see the module doc;
/// `weights` are the missing-data weights of the items, on whichever side they are;
/// each row's `λ` is `scaling.row_lambda(regularization, its number of pairs)`).
///
/// Public so callers can run a single step (e.g. update only users with items frozen).
///
/// # Panics
/// If `weights` does not have one entry per row of its side.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the refit stops its fits: the tests run the fits without a flag"
    )
)]
pub fn cg_sweep(
    rows: CsrView<'_>,
    fixed: &Factors,
    target: &mut Factors,
    weights: MissingWeights<'_>,
    regularization: f32,
    scaling: RegularizationScaling,
    cg_steps: usize,
    pool: &rayon::ThreadPool,
) {
    cg_sweep_exact(
        rows,
        fixed,
        target,
        weights.normalized(),
        regularization,
        scaling,
        cg_steps,
        pool,
        &NEVER,
    );
}

/// [`cg_sweep`] without the all-ones shortcut (tests compare the two paths); once
/// `stop` is raised, the rows not yet started are left as they are.
// f64 -> f32 on purpose: computed in f64, rounded once to the stored f32 precision.
#[allow(clippy::cast_possible_truncation)]
#[allow(clippy::too_many_arguments)]
fn cg_sweep_exact(
    rows: CsrView<'_>,
    fixed: &Factors,
    target: &mut Factors,
    weights: MissingWeights<'_>,
    regularization: f32,
    scaling: RegularizationScaling,
    cg_steps: usize,
    pool: &rayon::ThreadPool,
    stop: &Control,
) {
    let dim = target.dim;
    // With one λ for all rows it is folded into the shared Gramian of the user step (the
    // arithmetic, hence the bits, of the unscaled model); a per-row λ is added per row.
    let shared_lambda = scaling == RegularizationScaling::None;
    if dim == 0 || target.rows == 0 {
        return;
    }
    // Uniform: G = YᵀY (+ λI); Fixed: G = YᵀWY (+ λI); Target: G = XᵀX (scaled per row).
    let mut g = match weights {
        MissingWeights::Uniform | MissingWeights::Target(_) => gramian(fixed, pool),
        MissingWeights::Fixed(w) => {
            assert_eq!(w.len(), fixed.rows, "one missing-data weight per fixed row");
            weighted_gramian_exact(fixed, w, pool)
                .into_iter()
                .map(|v| v as f32)
                .collect()
        }
    };
    match weights {
        MissingWeights::Target(w) => {
            assert_eq!(
                w.len(),
                target.rows,
                "one missing-data weight per target row"
            );
        }
        _ if shared_lambda => {
            for k in 0..dim {
                g[k * dim + k] += regularization;
            }
        }
        _ => {}
    }
    pool.install(|| {
        target
            .data
            .par_chunks_mut(dim)
            .with_min_len(8)
            .enumerate()
            .for_each_init(
                || CgScratch {
                    r: vec![0.0; dim],
                    d: vec![0.0; dim],
                    ad: vec![0.0; dim],
                },
                |s, (row, x)| {
                    if row < rows.n_rows() && !stopped(stop) {
                        let data = rows.row(row);
                        let rw = match weights {
                            MissingWeights::Uniform => RowWeight::One,
                            MissingWeights::Fixed(w) => RowWeight::Columns(w),
                            MissingWeights::Target(w) => RowWeight::Row { w: w[row] },
                        };
                        // The λ that `g` does not already hold.
                        let reg = match (rw, shared_lambda) {
                            (RowWeight::Row { .. }, _) | (_, false) => {
                                scaling.row_lambda(regularization, data.0.len())
                            }
                            _ => 0.0,
                        };
                        cg_row(data, fixed, &g, rw, reg, x, cg_steps, s);
                    }
                },
            );
    });
}

/// The missing-data weights as one row's system sees them.
#[derive(Clone, Copy)]
enum RowWeight<'a> {
    /// `w = 1`, `g = YᵀY` (+ `λI` when λ is shared by every row).
    One,
    /// `w` per column (a user's items), `g = YᵀWY` (+ `λI` when shared).
    Columns(&'a [f32]),
    /// One `w` for the whole row (an item), `g = XᵀX` without `λ`.
    Row { w: f32 },
}

impl RowWeight<'_> {
    /// Missing weight of the pair (this row, `col`).
    #[inline]
    fn of(self, col: u32) -> f32 {
        match self {
            RowWeight::One => 1.0,
            RowWeight::Columns(w) => w[col as usize],
            RowWeight::Row { w, .. } => w,
        }
    }

    /// `out` = (the Gramian and `λ` part of `A`) `v`, where `reg` is the row's `λ` not
    /// already in `g` (0 when `g` holds it).
    #[inline]
    fn gram_mul(self, g: &[f32], v: &[f32], reg: f32, out: &mut [f32]) {
        gram_mul(g, v, out);
        match self {
            RowWeight::Row { w } => {
                for (o, &vk) in out.iter_mut().zip(v) {
                    *o = w * *o + reg * vk;
                }
            }
            _ if reg != 0.0 => {
                for (o, &vk) in out.iter_mut().zip(v) {
                    *o += reg * vk;
                }
            }
            _ => {}
        }
    }
}

/// `out = G v` for symmetric row-major `g` ([`kernels::gemv_sym`]).
#[inline]
fn gram_mul(g: &[f32], v: &[f32], out: &mut [f32]) {
    kernels::gemv_sym(g, v, out);
}

/// CG on `A x = b` for one row, warm-started from `x` (see the module doc for `A`, `b`;
/// `reg` is the part of the row's `λ` that `g` does not hold).
#[allow(clippy::too_many_arguments)]
fn cg_row(
    (cols, conf, pref): (&[u32], &[f32], &[f32]),
    fixed: &Factors,
    g: &[f32],
    rw: RowWeight<'_>,
    reg: f32,
    x: &mut [f32],
    cg_steps: usize,
    s: &mut CgScratch,
) {
    if cg_steps == 0 {
        return;
    }
    let CgScratch { r, d, ad } = s;
    // r = b − A x = −(G x) + Σ_i [c_i p_i − (c_i − w_i)(y_i·x)] y_i
    rw.gram_mul(g, x, reg, r);
    for v in r.iter_mut() {
        *v = -*v;
    }
    // (One pass per row: t = y_i·x, then r += coef(t)·y_i, as dot then axpy.)
    kernels::gather_dot_axpy(&fixed.data, cols, x, r, |k| {
        let (c, p, w) = (conf[k], pref[k], rw.of(cols[k]));
        Some(move |t: f32| c * p - (c - w) * t)
    });
    d.copy_from_slice(r);
    let mut rs_old = dot(r, r);
    if rs_old < CG_EPS {
        return;
    }
    for _ in 0..cg_steps {
        // ad = A d = G d + Σ_i (c_i − w_i)(y_i·d) y_i
        rw.gram_mul(g, d, reg, ad);
        kernels::gather_dot_axpy(&fixed.data, cols, d, ad, |k| {
            let c1 = conf[k] - rw.of(cols[k]);
            (c1 != 0.0).then_some(move |t: f32| c1 * t)
        });
        // d·Ad vanishes (relative to |d|²) only on a singular system (regularization 0
        // with too few observations); x is then as good as CG can make it. A NaN from
        // poisoned inputs fails the comparison and is reported by the finiteness check.
        let curvature = dot(d, ad);
        if curvature <= 1e-6 * dot(d, d) {
            break;
        }
        let alpha = rs_old / curvature;
        axpy(x, alpha, d);
        axpy(r, -alpha, ad);
        let rs_new = dot(r, r);
        if rs_new < CG_EPS {
            break;
        }
        let beta = rs_new / rs_old;
        for (dk, rk) in d.iter_mut().zip(r.iter()) {
            *dk = rk + beta * *dk;
        }
        rs_old = rs_new;
    }
}

/// Number of row blocks of a Gramian reduction: a function of the row count only, so
/// that the f64 summation order never depends on the thread count.
const GRAM_BLOCKS: usize = 64;

/// `YᵀY` in f64 (dim × dim, row-major, symmetric), deterministic for any thread count:
/// the weighted Gramian with every weight 1 (`1.0 · x` is exact, so no bits change).
pub fn gramian_f64(f: &Factors, pool: &rayon::ThreadPool) -> Vec<f64> {
    weighted_gramian_exact(f, &vec![1.0; f.rows], pool)
}

/// Gramian `YᵀY` of all rows (dim × dim, row-major), accumulated in f64 in a fixed order
/// (deterministic for any thread count), returned as f32.
// f64 -> f32 on purpose: computed in f64, rounded once to the stored f32 precision.
#[allow(clippy::cast_possible_truncation)]
pub fn gramian(f: &Factors, pool: &rayon::ThreadPool) -> Vec<f32> {
    gramian_f64(f, pool).into_iter().map(|v| v as f32).collect()
}

/// `YᵀWY = Σ_i w_i y_i y_iᵀ` in f64 (dim × dim, row-major, symmetric), with the block
/// structure and reduction order of [`gramian_f64`] (deterministic for any thread
/// count); exactly [`gramian_f64`] when every weight is 1.
///
/// # Panics
/// If `weights` does not have one entry per row of `f`.
pub fn weighted_gramian_f64(f: &Factors, weights: &[f32], pool: &rayon::ThreadPool) -> Vec<f64> {
    assert_eq!(weights.len(), f.rows, "one weight per row");
    weighted_gramian_exact(f, weights, pool)
}

/// [`weighted_gramian_f64`] as f32 (the fold-in Gramian of a weighted model).
// f64 -> f32 on purpose: computed in f64, rounded once to the stored f32 precision.
#[allow(clippy::cast_possible_truncation)]
pub fn weighted_gramian(f: &Factors, weights: &[f32], pool: &rayon::ThreadPool) -> Vec<f32> {
    weighted_gramian_f64(f, weights, pool)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

/// `Σ_i w_i y_i y_iᵀ` in row blocks reduced in a fixed order (upper triangle, mirrored).
fn weighted_gramian_exact(f: &Factors, weights: &[f32], pool: &rayon::ThreadPool) -> Vec<f64> {
    let dim = f.dim;
    let mut g = vec![0.0f64; dim * dim];
    if dim == 0 || f.rows == 0 {
        return g;
    }
    let rows_per_block = f.rows.div_ceil(GRAM_BLOCKS);
    let partials: Vec<Vec<f64>> = pool.install(|| {
        f.data
            .par_chunks(rows_per_block * dim)
            .zip(weights.par_chunks(rows_per_block))
            .map(|(block, ws)| {
                // Upper triangle only.
                let mut acc = vec![0.0f64; dim * dim];
                let xs: Vec<f64> = block.iter().map(|&v| f64::from(v)).collect();
                let ws: Vec<f64> = ws.iter().map(|&w| f64::from(w)).collect();
                // acc[i, j] += (w·x_i)·x_j for j >= i, one FMA each, rows in order.
                kernels::syr_upper_f64(&mut acc, &xs, &ws);
                acc
            })
            .collect()
    });
    for p in &partials {
        for (gk, pk) in g.iter_mut().zip(p) {
            *gk += pk;
        }
    }
    for i in 0..dim {
        for j in 0..i {
            g[i * dim + j] = g[j * dim + i];
        }
    }
    g
}

/// Normalised loss (like `implicit`'s `calculate_loss`):
///
/// ```text
/// (Σ_observed c (p − x·y)² + Σ_unobserved w_i (x·y)² + Σ_u λ_u |x_u|² + Σ_i λ_i |y_i|²)
///   / (Σ_observed c + Σ_unobserved w_i)
/// ```
///
/// with each row's `λ_r = scaling.row_lambda(regularization, its number of pairs)` (`λ` for
/// every row when `scaling` is `None`: `λ(|X|² + |Y|²)`).
///
/// (the denominator is `Σ_observed c + n_users·n_items − nnz` when every weight is 1),
/// computed in f64 via `x_uᵀ(YᵀWY)x_u` per user; per-user partial sums are reduced in
/// user order (deterministic). Returns NaN if the shapes do not match `data`.
pub fn loss(
    data: &Interactions,
    users: &Factors,
    items: &Factors,
    regularization: f32,
    scaling: RegularizationScaling,
    pool: &rayon::ThreadPool,
) -> f64 {
    let dim = users.dim;
    if users.rows != data.n_users
        || items.rows != data.n_items
        || items.dim != dim
        || users.data.len() != users.rows * dim
        || items.data.len() != items.rows * dim
        || data.missing_weight.len() != data.n_items
    {
        return f64::NAN;
    }
    let uniform = data.uniform_missing_weight();
    let weights = &data.missing_weight;
    let g = if uniform {
        gramian_f64(items, pool)
    } else {
        weighted_gramian_exact(items, weights, pool)
    };
    let reg = f64::from(regularization);
    let by_user = data.by_user();
    let per_user: Vec<f64> = pool.install(|| {
        (0..data.n_users)
            .into_par_iter()
            .with_min_len(16)
            .map(|u| {
                let x = users.row(u);
                // x ᵀ G x: every pair counted as unobserved, w (x·y)² each.
                let mut l = 0.0f64;
                for i in 0..dim {
                    l += f64::from(x[i]) * dot_f64_mixed(&g[i * dim..(i + 1) * dim], x);
                }
                // Observed pairs: replace w (x·y)² by c (p − x·y)².
                let (cols, conf, pref) = by_user.row(u);
                for k in 0..cols.len() {
                    let t = dot_f64(x, items.row(cols[k] as usize));
                    let (c, p) = (f64::from(conf[k]), f64::from(pref[k]));
                    if uniform {
                        l += c * (p - t) * (p - t) - t * t;
                    } else {
                        let w = f64::from(weights[cols[k] as usize]);
                        l += c * (p - t) * (p - t) - w * t * t;
                    }
                }
                let reg_u = match scaling {
                    RegularizationScaling::None => reg,
                    _ => f64::from(scaling.row_lambda(regularization, cols.len())),
                };
                l + reg_u * dot_f64(x, x)
            })
            .collect()
    });
    let mut total: f64 = per_user.iter().sum();
    total += if scaling == RegularizationScaling::None {
        let item_norms: f64 = items
            .data
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum();
        reg * item_norms
    } else {
        let by_item = data.by_item();
        (0..data.n_items)
            .map(|i| {
                let y = items.row(i);
                let norm: f64 = y.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
                f64::from(scaling.row_lambda(regularization, by_item.row(i).0.len())) * norm
            })
            .sum::<f64>()
    };
    let denom = if uniform {
        data.total_confidence() + (data.n_users as f64) * (data.n_items as f64) - data.nnz() as f64
    } else {
        let unobserved: f64 = (0..data.n_items)
            .map(|i| f64::from(weights[i]) * (data.n_users - data.item_count(i)) as f64)
            .sum();
        data.total_confidence() + unobserved
    };
    if denom > 0.0 {
        total / denom
    } else {
        total
    }
}

/// `Σ a[k]·b[k]` in 8 lanes, a fixed order ([`kernels::dot_f64_f32`]).
#[inline]
fn dot_f64_mixed(a: &[f64], b: &[f32]) -> f64 {
    kernels::dot_f64_f32(a, b)
}

/// Solve one user's vector against fixed item factors (fold-in): the same normal
/// equations as the user step,
///
/// ```text
/// (YᵀWY + Σ_{i∈u}(c_ui − w_i) y_i y_iᵀ + λ_u I) x = Σ_{i∈u} c_ui p_ui y_i,
/// ```
///
/// with `λ_u = scaling.row_lambda(regularization, number of entries)`, counting
/// only the entries that name an item of `items` (the others are not part of the
/// system), so that it is exactly the user's row of a refit's user step.
///
/// solved exactly (Cholesky on the dim × dim system, f64). `weights` are the items'
/// missing-data weights `w_i` (all 1.0 for the uniform model) and `yty` is
/// `weighted_gramian(items, weights)` (= `gramian(items)` when all are 1). `entries`
/// are (item index, confidence, preference); entries naming an item outside `items` are
/// ignored.
///
/// If `yty` or `weights` has the wrong length the result is all zeros. If the system is singular
/// (only possible with `λ = 0`), a tiny ridge (1e-9 of the mean diagonal) is added. If
/// the inputs are not finite, the result is all NaN: check it before serving.
// f64 -> f32 on purpose: computed in f64, rounded once to the stored f32 precision.
#[allow(clippy::cast_possible_truncation)]
pub fn fold_in(
    items: &Factors,
    yty: &[f32],
    weights: &[f32],
    entries: &[(u32, f32, f32)],
    regularization: f32,
    scaling: RegularizationScaling,
) -> Vec<f32> {
    let dim = items.dim;
    let Some((a, b)) = user_system(items, yty, weights, entries, regularization, scaling) else {
        return vec![0.0; dim];
    };
    match solve_user_system(a, &b) {
        Solution::Exact(x) => x.into_iter().map(|v| v as f32).collect(),
        Solution::Singular => vec![0.0; dim],
        Solution::NonFinite => vec![f32::NAN; dim],
    }
}

/// The normal equations [`fold_in`] solves, `(A_u, b_u)`: `A_u` dim × dim, row-major,
/// both triangles filled, in f64. None when `yty` or `weights` has the wrong length.
/// The explanation of a score ([`super::explain`]) factors the same `A_u`, so that its
/// contributions add up to the folded-in vector's score.
pub(crate) fn user_system(
    items: &Factors,
    yty: &[f32],
    weights: &[f32],
    entries: &[(u32, f32, f32)],
    regularization: f32,
    scaling: RegularizationScaling,
) -> Option<(Vec<f64>, Vec<f64>)> {
    let dim = items.dim;
    if yty.len() != dim * dim || weights.len() != items.rows {
        return None;
    }
    let known = entries
        .iter()
        .filter(|e| (e.0 as usize) < items.rows)
        .count();
    let lambda = scaling.row_lambda(regularization, known);
    let mut a: Vec<f64> = yty.iter().map(|&v| f64::from(v)).collect();
    for k in 0..dim {
        a[k * dim + k] += f64::from(lambda);
    }
    let mut b = vec![0.0f64; dim];
    // The rows y_i (in f64) and weights c_i − w_i of the rank-one updates, applied at
    // once by the refit's Gramian kernel (upper triangle), then mirrored to the lower
    // triangle that cholesky_solve reads.
    let mut ys: Vec<f64> = Vec::with_capacity(entries.len() * dim);
    let mut ws: Vec<f64> = Vec::with_capacity(entries.len());
    for &(item, c, p) in entries {
        if item as usize >= items.rows {
            continue;
        }
        let y = items.row(item as usize);
        let (c, p) = (f64::from(c), f64::from(p));
        for (bi, &yi) in b.iter_mut().zip(y) {
            *bi += c * p * f64::from(yi);
        }
        ys.extend(y.iter().map(|&v| f64::from(v)));
        ws.push(c - f64::from(weights[item as usize]));
    }
    kernels::syr_upper_f64(&mut a, &ys, &ws);
    for i in 0..dim {
        for j in 0..i {
            a[i * dim + j] = a[j * dim + i];
        }
    }
    Some((a, b))
}

/// What [`solve_user_system`] found.
pub(crate) enum Solution {
    Exact(Vec<f64>),
    /// Not positive definite even with the ridge.
    Singular,
    /// `A_u` or the right-hand side holds NaN or infinity.
    NonFinite,
}

/// Solves `A_u x = rhs` by Cholesky, adding a tiny ridge (1e-9 of the mean diagonal)
/// when `A_u` is singular (only possible with `λ = 0`). Whether the ridge is added
/// depends on `A_u` alone (for a finite right-hand side), so every right-hand side is
/// solved against the same matrix.
pub(crate) fn solve_user_system(mut a: Vec<f64>, rhs: &[f64]) -> Solution {
    let dim = rhs.len();
    if let Some(x) = cholesky_solve(&mut a.clone(), rhs) {
        return Solution::Exact(x);
    }
    let finite = a.iter().chain(rhs).all(|v| v.is_finite());
    if finite {
        let mean_diag = (0..dim).map(|k| a[k * dim + k].abs()).sum::<f64>() / dim.max(1) as f64;
        let ridge = 1e-9 * mean_diag + f64::MIN_POSITIVE;
        for k in 0..dim {
            a[k * dim + k] += ridge;
        }
        return match cholesky_solve(&mut a, rhs) {
            Some(x) => Solution::Exact(x),
            None => Solution::Singular,
        };
    }
    Solution::NonFinite
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
    use crate::model::interactions::Entry;
    use crate::model::reference;
    use crate::model::topk::top_k_dot;

    const SCALINGS: [RegularizationScaling; 3] = [
        RegularizationScaling::None,
        RegularizationScaling::Count,
        RegularizationScaling::Sqrt,
    ];

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    }

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 33
    }

    /// Random problem: ~`density` of pairs observed, confidence 1 + alpha·r, with ~20% skips.
    fn random_problem(n_users: usize, n_items: usize, density_pct: u64, seed: u64) -> Interactions {
        let mut s = seed;
        let mut e = vec![];
        for u in 0..n_users {
            for i in 0..n_items {
                if lcg(&mut s) % 100 < density_pct {
                    let skip = lcg(&mut s).is_multiple_of(5);
                    let r = (lcg(&mut s) % 1000) as f32 / 1000.0;
                    e.push(Entry {
                        user: u as u32,
                        item: i as u32,
                        confidence: if skip { 2.0 } else { 1.0 + 8.0 * r },
                        preference: if skip { 0.0 } else { 1.0 },
                    });
                }
            }
        }
        Interactions::from_entries(n_users, n_items, &e)
    }

    fn rel_diff(a: &Factors, b: &Factors) -> f64 {
        assert_eq!((a.rows, a.dim), (b.rows, b.dim));
        let num: f64 = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(&x, &y)| f64::from(x - y).powi(2))
            .sum();
        let den: f64 = b.data.iter().map(|&y| f64::from(y).powi(2)).sum();
        (num / den).sqrt()
    }

    fn max_abs_diff(a: &Factors, b: &Factors) -> f32 {
        a.data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn scaled_penalty_by_hand() {
        use RegularizationScaling as S;
        assert_eq!(S::None.row_lambda(0.5, 4), 0.5);
        assert_eq!(S::Count.row_lambda(0.5, 4), 2.0);
        assert_eq!(S::Sqrt.row_lambda(0.5, 4), 1.0);
        // A row without pairs takes λ.
        assert_eq!(S::Count.row_lambda(0.5, 0), 0.5);
        assert_eq!(S::Sqrt.row_lambda(0.5, 0), 0.5);
        // One factor; items y = (1, 2); the user watched item 0 (c = 3, p = 1) and skipped
        // item 1 (c = 2, p = 0), so n_u = 2 and, with count and λ = 0.5, λ_u = 1:
        //   A = Σ_j y_j² + (3 − 1)·1² + (2 − 1)·2² + λ_u = 5 + 2 + 4 + 1 = 12,  b = 3,
        //   x = 3 / 12 = 0.25  (unscaled: 3 / 11.5; sqrt: 3 / (11 + 0.5·√2)).
        let items = Factors::from_vec(2, 1, vec![1.0, 2.0]).unwrap();
        let entries = [(0, 3.0, 1.0), (1, 2.0, 0.0)];
        let data = Interactions::from_entries(
            1,
            2,
            &entries.map(|(item, confidence, preference)| Entry {
                user: 0,
                item,
                confidence,
                preference,
            }),
        );
        let ones = [1.0f32; 2];
        for (scaling, want) in [
            (S::Count, 0.25f64),
            (S::None, 3.0 / 11.5),
            (S::Sqrt, 3.0 / (11.0 + 0.5 * 2f64.sqrt())),
        ] {
            let folded = fold_in(&items, &[5.0], &ones, &entries, 0.5, scaling);
            let exact = reference::user_step(&data, &items, 0.5, scaling);
            let mut cg = Factors::zeros(1, 1);
            cg_sweep(
                data.by_user(),
                &items,
                &mut cg,
                MissingWeights::Uniform,
                0.5,
                scaling,
                3,
                &pool(1),
            );
            for (got, what) in [
                (folded[0], "fold-in"),
                (exact.data[0], "reference"),
                (cg.data[0], "CG"),
            ] {
                assert!(
                    (f64::from(got) - want).abs() < 1e-6,
                    "{scaling:?} {what}: {got} vs {want}"
                );
            }
        }
        // The loss at x = 0.25 with count, λ = 0.5: both pairs observed, so
        //   3·(1 − 0.25)² + 2·(0 − 0.5)² = 2.1875; penalties λ_u x² = 1·0.0625,
        //   items (one pair each, λ_i = 0.5): 0.5·1 + 0.5·4 = 2.5; total 4.75 over Σc = 5.
        let users = Factors::from_vec(1, 1, vec![0.25]).unwrap();
        let l = loss(&data, &users, &items, 0.5, S::Count, &pool(1));
        assert!((l - 0.95).abs() < 1e-12, "{l}");
        assert!((reference::loss_dense(&data, &users, &items, 0.5, S::Count) - 0.95).abs() < 1e-12);
    }

    #[test]
    fn cg_matches_exact_reference() {
        for omega in [0.0, 0.5, 1.0] {
            for scaling in SCALINGS {
                cg_matches_exact_reference_with(omega, scaling);
            }
        }
    }

    fn cg_matches_exact_reference_with(omega: f64, scaling: RegularizationScaling) {
        let data = random_problem(30, 20, 30, 1).with_popularity_weights(omega);
        assert_eq!(data.uniform_missing_weight(), omega == 0.0);
        let params = AlsParams {
            factors: 8,
            iterations: 6,
            // Per pair with `count` (6 pairs a user, 9 an item on average).
            regularization: if scaling == RegularizationScaling::None {
                0.1
            } else {
                0.02
            },
            regularization_scaling: scaling,
            cg_steps: 25,
            seed: 3,
        };
        let (u1, i1, r1) = fit_traced(&data, &params, &pool(2)).unwrap();
        let (u2, i2, r2) = reference::fit_reference(&data, &params).unwrap();
        let (du, di) = (rel_diff(&u1, &u2), rel_diff(&i1, &i2));
        assert!(
            du < 1e-3 && di < 1e-3,
            "{scaling:?}: relative differences users {du}, items {di}"
        );
        let scale = u2
            .data
            .iter()
            .chain(&i2.data)
            .map(|v| v.abs())
            .fold(0.0, f32::max);
        assert!(max_abs_diff(&u1, &u2) < 1e-3 * scale && max_abs_diff(&i1, &i2) < 1e-3 * scale);
        assert_eq!(r1.loss_history.len(), 6);
        for (a, b) in r1.loss_history.iter().zip(&r2.loss_history) {
            assert!((a - b).abs() <= 1e-4 * b.abs(), "loss {a} vs reference {b}");
        }
        assert_eq!(r1.loss, *r1.loss_history.last().unwrap());
    }

    #[test]
    fn few_cg_steps_still_decrease_loss() {
        for omega in [0.0, 0.5, 1.0, 2.0] {
            for scaling in SCALINGS {
                few_cg_steps_still_decrease_loss_with(omega, scaling);
            }
        }
    }

    fn few_cg_steps_still_decrease_loss_with(omega: f64, scaling: RegularizationScaling) {
        let data = random_problem(40, 30, 20, 2).with_popularity_weights(omega);
        let params = AlsParams {
            factors: 6,
            iterations: 8,
            regularization: 0.05,
            regularization_scaling: scaling,
            cg_steps: 3,
            seed: 1,
        };
        let (_, _, rep) = fit_traced(&data, &params, &pool(2)).unwrap();
        for w in rep.loss_history.windows(2) {
            assert!(
                w[1] <= w[0] * (1.0 + 1e-5),
                "loss went up: {:?}",
                rep.loss_history
            );
        }
        assert!(rep.loss_history[7] < rep.loss_history[0]);
    }

    #[test]
    fn efficient_loss_equals_dense_loss() {
        let data = random_problem(25, 15, 30, 4);
        let users = Factors::random(25, 5, 9, 0);
        let mut items = Factors::random(15, 5, 9, 1);
        items
            .data
            .iter_mut()
            .enumerate()
            .for_each(|(k, v)| *v += (k % 7) as f32 * 0.1 - 0.3);
        for omega in [0.0, 0.5, 2.0] {
            for scaling in SCALINGS {
                let data = data.clone().with_popularity_weights(omega);
                let fast = loss(&data, &users, &items, 0.3, scaling, &pool(2));
                let dense = reference::loss_dense(&data, &users, &items, 0.3, scaling);
                assert!(
                    (fast - dense).abs() <= 1e-9 * dense.abs(),
                    "ω {omega}, {scaling:?}: {fast} vs {dense}"
                );
            }
        }
        let none = RegularizationScaling::None;
        assert!(loss(&data, &items, &users, 0.3, none, &pool(1)).is_nan());
        // The penalty term alone, by hand: zero confidences and factors except one user
        // row and one item row, so that only λ_u |x_u|² + λ_i |y_i|² and the Gramian
        // terms remain; the difference between scalings is exactly the penalty.
        let penalty = |scaling| {
            let l = loss(&data, &users, &items, 0.3, scaling, &pool(1));
            let l0 = loss(&data, &users, &items, 0.0, scaling, &pool(1));
            let denom = data.total_confidence() + (25.0 * 15.0) - data.nnz() as f64;
            (l - l0) * denom
        };
        let norms = |f: &Factors, r: usize| dot_f64(f.row(r), f.row(r));
        let want_count: f64 = (0..25)
            .map(|u| f64::from(0.3f32 * data.user_row(u).0.len().max(1) as f32) * norms(&users, u))
            .chain((0..15).map(|i| {
                f64::from(0.3f32 * data.item_row(i).0.len().max(1) as f32) * norms(&items, i)
            }))
            .sum();
        let got = penalty(RegularizationScaling::Count);
        assert!(
            (got - want_count).abs() <= 1e-9 * want_count,
            "{got} vs {want_count}"
        );
    }

    #[test]
    fn bit_identical_across_thread_counts() {
        for omega in [0.0, 0.75] {
            for scaling in SCALINGS {
                bit_identical_across_thread_counts_with(omega, scaling);
            }
        }
    }

    fn bit_identical_across_thread_counts_with(omega: f64, scaling: RegularizationScaling) {
        let data = random_problem(400, 250, 5, 5).with_popularity_weights(omega);
        let params = AlsParams {
            factors: 16,
            iterations: 3,
            regularization: 0.05,
            regularization_scaling: scaling,
            cg_steps: 3,
            seed: 11,
        };
        let (u1, i1, r1) = fit_traced(&data, &params, &pool(1)).unwrap();
        for n in [2, 3] {
            let (u, i, r) = fit_traced(&data, &params, &pool(n)).unwrap();
            assert!(
                u.data
                    .iter()
                    .zip(&u1.data)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "users differ at {n} threads"
            );
            assert!(
                i.data
                    .iter()
                    .zip(&i1.data)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "items differ at {n} threads"
            );
            assert_eq!(
                r.loss_history
                    .iter()
                    .map(|l| l.to_bits())
                    .collect::<Vec<_>>(),
                r1.loss_history
                    .iter()
                    .map(|l| l.to_bits())
                    .collect::<Vec<_>>()
            );
        }
        // The f64 reductions themselves, on enough rows to be split in many blocks.
        let big = Factors::random(5000, 7, 1, 2);
        let g1 = gramian_f64(&big, &pool(1));
        let w: Vec<f32> = (0..5000).map(|k| 0.1 + (k % 17) as f32 * 0.37).collect();
        let gw1 = weighted_gramian_f64(&big, &w, &pool(1));
        let ones = vec![1.0f32; 5000];
        assert!(g1
            .iter()
            .zip(weighted_gramian_exact(&big, &ones, &pool(3)))
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        let l1 = loss(&data, &u1, &big_items(&i1), 0.05, scaling, &pool(1));
        for n in [2, 3] {
            assert!(g1
                .iter()
                .zip(gramian_f64(&big, &pool(n)))
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert!(gw1
                .iter()
                .zip(weighted_gramian_f64(&big, &w, &pool(n)))
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert_eq!(
                l1.to_bits(),
                loss(&data, &u1, &big_items(&i1), 0.05, scaling, &pool(n)).to_bits()
            );
        }
    }

    #[test]
    fn tracing_the_loss_changes_nothing_else() {
        let data = random_problem(50, 40, 20, 9).with_popularity_weights(0.5);
        let params = AlsParams {
            factors: 8,
            iterations: 4,
            regularization: 0.05,
            regularization_scaling: RegularizationScaling::Sqrt,
            cg_steps: 3,
            seed: 5,
        };
        let (u1, i1, r1) = fit(&data, &params, &pool(2)).unwrap();
        let (u2, i2, r2) = fit_traced(&data, &params, &pool(2)).unwrap();
        assert_eq!((u1, i1), (u2, i2));
        assert!(r1.loss_history.is_empty());
        assert_eq!(r2.loss_history.len(), 4);
        assert_eq!(r1.loss.to_bits(), r2.loss.to_bits());
        assert_eq!(r2.loss.to_bits(), r2.loss_history[3].to_bits());
    }

    #[test]
    fn a_stop_flag_stops_the_fit_and_changes_nothing_unraised() {
        let data = random_problem(60, 40, 20, 4).with_popularity_weights(0.5);
        let params = AlsParams {
            factors: 8,
            iterations: 5,
            seed: 2,
            ..AlsParams::default()
        };
        let bits = |f: &Factors| f.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let flag = Control::new();
        let (u1, i1, r1) = fit(&data, &params, &pool(2)).unwrap();
        let (u2, i2, r2) = fit_stoppable(&data, &params, &pool(3), &flag).unwrap();
        assert_eq!((bits(&u1), bits(&i1)), (bits(&u2), bits(&i2)));
        assert_eq!(r1.loss.to_bits(), r2.loss.to_bits());
        assert_eq!(flag.sweeps(), 5, "one count per full sweep");
        flag.raise();
        assert_eq!(
            fit_stoppable(&data, &params, &pool(2), &flag).unwrap_err(),
            ModelError::Stopped
        );
        assert_eq!(
            fit_warm_stoppable(&data, &params, &pool(2), u1, i1, &flag).unwrap_err(),
            ModelError::Stopped
        );
        // A sweep started with the flag raised solves no row.
        let mut target = u2.clone();
        cg_sweep_exact(
            data.by_user(),
            &i2,
            &mut target,
            MissingWeights::Uniform,
            0.1,
            RegularizationScaling::Count,
            3,
            &pool(2),
            &flag,
        );
        assert_eq!(bits(&target), bits(&u2));
    }

    /// The whole fit on every kernel level this CPU has (scalar, AVX2 + FMA, AVX-512):
    /// bit-identical factors and loss, as on a CPU that has only that level. (Switching
    /// the process-wide level under other tests is harmless for the same reason.)
    #[test]
    fn bit_identical_across_kernel_levels() {
        let data = random_problem(120, 90, 10, 13).with_popularity_weights(0.3);
        let plain = random_problem(120, 90, 10, 14);
        // 64 factors (the default, whole 16-lane blocks) and 21 (tails everywhere).
        for factors in [64, 21] {
            let params = AlsParams {
                factors,
                iterations: 2,
                regularization: 0.05,
                regularization_scaling: RegularizationScaling::Count,
                cg_steps: 3,
                seed: 1,
            };
            let mut runs = vec![];
            for level in kernels::supported() {
                kernels::set_level(level);
                runs.push((
                    level,
                    fit(&data, &params, &pool(2)).unwrap(),
                    fit(&plain, &params, &pool(2)).unwrap(),
                ));
            }
            kernels::set_level(kernels::Level::Avx512);
            let bits = |f: &Factors| f.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let (_, (u0, i0, r0), (pu0, pi0, _)) = &runs[0];
            for (level, (u, i, r), (pu, pi, _)) in &runs[1..] {
                assert_eq!(bits(u), bits(u0), "users at {level:?}, {factors} factors");
                assert_eq!(bits(i), bits(i0), "items at {level:?}, {factors} factors");
                assert_eq!(bits(pu), bits(pu0), "uniform users at {level:?}");
                assert_eq!(bits(pi), bits(pi0), "uniform items at {level:?}");
                assert_eq!(r.loss.to_bits(), r0.loss.to_bits());
            }
        }
    }

    /// Item factors with wide-ranging values, so that summation order shows in the bits.
    fn big_items(f: &Factors) -> Factors {
        let mut g = f.clone();
        g.data
            .iter_mut()
            .enumerate()
            .for_each(|(k, v)| *v *= 1.0 + (k % 13) as f32 * 1e3);
        g
    }

    /// Users 0..n/2 watch (most of) items 0..m/2, the others (most of) the rest.
    fn checkerboard(n: usize, m: usize) -> Interactions {
        let mut e = vec![];
        for u in 0..n {
            let block = u < n / 2;
            for i in 0..m {
                if (i < m / 2) == block && (u + i) % 4 != 0 {
                    e.push(Entry {
                        user: u as u32,
                        item: i as u32,
                        confidence: 20.0,
                        preference: 1.0,
                    });
                }
            }
        }
        Interactions::from_entries(n, m, &e)
    }

    #[test]
    fn checkerboard_recovers_blocks() {
        let (n, m) = (20, 16);
        let data = checkerboard(n, m);
        let params = AlsParams {
            factors: 2,
            iterations: 15,
            regularization: 0.01,
            regularization_scaling: RegularizationScaling::None,
            cg_steps: 3,
            seed: 7,
        };
        let (users, items, rep) = fit_traced(&data, &params, &pool(2)).unwrap();
        assert!(rep.loss < rep.loss_history[0]);
        for u in 0..n {
            let block = u < n / 2;
            let (seen, _, _) = data.user_row(u);
            let top = top_k_dot(users.row(u), &items, 1, seen);
            assert_eq!(top.len(), 1);
            assert_eq!(
                ((top[0].0 as usize) < m / 2),
                block,
                "user {u} got item {} from the other block",
                top[0].0
            );
            for i in 0..m {
                let s = dot(users.row(u), items.row(i));
                if seen.binary_search(&(i as u32)).is_ok() {
                    assert!((s - 1.0).abs() < 0.1, "observed ({u},{i}) scored {s}");
                } else if (i < m / 2) != block {
                    assert!(s.abs() < 0.1, "cross-block ({u},{i}) scored {s}");
                }
            }
        }
    }

    #[test]
    fn fold_in_equals_exact_user_step() {
        for omega in [0.0, 0.5, 1.5] {
            for scaling in SCALINGS {
                fold_in_equals_exact_user_step_with(omega, scaling);
            }
        }
    }

    fn fold_in_equals_exact_user_step_with(omega: f64, scaling: RegularizationScaling) {
        let data = random_problem(30, 20, 30, 6).with_popularity_weights(omega);
        let w = &data.missing_weight;
        let params = AlsParams {
            factors: 8,
            iterations: 3,
            regularization: 0.1,
            regularization_scaling: scaling,
            cg_steps: 3,
            seed: 2,
        };
        let p = pool(2);
        let (_, items, _) = fit(&data, &params, &p).unwrap();
        let exact = reference::user_step(&data, &items, params.regularization, scaling);
        // A CG user step with many steps from the current users converges to it too.
        let mut cg_users = Factors::random(30, 8, 99, 0);
        cg_sweep(
            data.by_user(),
            &items,
            &mut cg_users,
            MissingWeights::Fixed(w),
            params.regularization,
            scaling,
            40,
            &p,
        );
        let yty = weighted_gramian(&items, w, &p);
        for u in 0..30 {
            let (cols, conf, pref) = data.user_row(u);
            let entries: Vec<(u32, f32, f32)> = (0..cols.len())
                .map(|k| (cols[k], conf[k], pref[k]))
                .collect();
            let x = fold_in(&items, &yty, w, &entries, params.regularization, scaling);
            // Entries on items the model does not have are not part of the system (nor
            // of the row's count).
            let mut with_unknown = entries.clone();
            with_unknown.push((1000, 7.0, 1.0));
            assert_eq!(
                fold_in(
                    &items,
                    &yty,
                    w,
                    &with_unknown,
                    params.regularization,
                    scaling
                ),
                x
            );
            let scale = exact.row(u).iter().fold(1e-3f32, |a, v| a.max(v.abs()));
            for k in 0..8 {
                assert!(
                    (x[k] - exact.row(u)[k]).abs() <= 1e-4 * scale.max(1.0),
                    "user {u}: {x:?} vs {:?}",
                    exact.row(u)
                );
                assert!((cg_users.row(u)[k] - exact.row(u)[k]).abs() <= 1e-3 * scale.max(1.0));
            }
        }
        // Unknown items are ignored; a wrong Gramian gives zeros, not a panic.
        let x = fold_in(&items, &yty, w, &[(1000, 5.0, 1.0)], 0.1, scaling);
        assert!(x.iter().all(|v| v.abs() < 1e-6));
        assert_eq!(
            fold_in(&items, &yty[1..], w, &[(0, 5.0, 1.0)], 0.1, scaling),
            vec![0.0; 8]
        );
        assert_eq!(
            fold_in(&items, &yty, &w[1..], &[(0, 5.0, 1.0)], 0.1, scaling),
            vec![0.0; 8]
        );
    }

    #[test]
    fn zero_exponent_is_the_uniform_model_bit_for_bit() {
        use crate::model::feedback::{build, Events, FeedbackParams};
        // Events → feedback with ω = 0: every weight exactly 1, and the fit is the
        // uniform fit of the same entries, bit for bit.
        let mut s = 21u64;
        let n = 3000;
        let users: Vec<i64> = (0..n).map(|_| (lcg(&mut s) % 90) as i64).collect();
        let items: Vec<i64> = (0..n)
            .map(|_| {
                let r = (lcg(&mut s) % 1000) as i64;
                r * r / 8000
            })
            .collect();
        let watch: Vec<f64> = (0..n).map(|_| (lcg(&mut s) % 300) as f64 / 10.0).collect();
        let events = Events {
            user_ids: &users,
            item_ids: &items,
            watch_time: &watch,
            duration: &vec![20.0; n],
            ts: &vec![0; n],
        };
        let params = |omega| FeedbackParams {
            popularity_exponent: omega,
            skip_ratio: 0.2,
            ..Default::default()
        };
        let fb = build(&events, &params(0.0), 0);
        assert!(fb
            .data
            .missing_weight
            .iter()
            .all(|w| w.to_bits() == 1f32.to_bits()));
        let mut entries = vec![];
        for u in 0..fb.data.n_users {
            let (cols, conf, pref) = fb.data.user_row(u);
            for k in 0..cols.len() {
                entries.push(Entry {
                    user: u as u32,
                    item: cols[k],
                    confidence: conf[k],
                    preference: pref[k],
                });
            }
        }
        let plain = Interactions::from_entries(fb.data.n_users, fb.data.n_items, &entries);
        assert_eq!(plain, fb.data);
        let als = AlsParams {
            factors: 8,
            iterations: 4,
            regularization: 0.05,
            regularization_scaling: RegularizationScaling::None,
            cg_steps: 3,
            seed: 4,
        };
        let bits = |f: &Factors| f.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let (u0, i0, r0) = fit(&plain, &als, &pool(2)).unwrap();
        let (u1, i1, r1) = fit(&fb.data, &als, &pool(2)).unwrap();
        assert_eq!((bits(&u0), bits(&i0)), (bits(&u1), bits(&i1)));
        assert_eq!(r0.loss.to_bits(), r1.loss.to_bits());
        // The weighted user step with weights all 1 is the same arithmetic as the
        // uniform one (same bits even without the shortcut).
        let ones = vec![1.0f32; plain.n_items];
        let mut a = u0.clone();
        let mut b = u0.clone();
        cg_sweep(
            plain.by_user(),
            &i0,
            &mut a,
            MissingWeights::Uniform,
            0.05,
            RegularizationScaling::None,
            3,
            &pool(2),
        );
        cg_sweep_exact(
            plain.by_user(),
            &i0,
            &mut b,
            MissingWeights::Fixed(&ones),
            0.05,
            RegularizationScaling::None,
            3,
            &pool(3),
            &NEVER,
        );
        assert_eq!(bits(&a), bits(&b));
        // ω > 0 changes the weights and the fit.
        let weighted = build(&events, &params(0.5), 0);
        assert!(!weighted.data.uniform_missing_weight());
        let (u2, _, r2) = fit(&weighted.data, &als, &pool(2)).unwrap();
        assert_ne!(bits(&u0), bits(&u2));
        assert!(r2.loss.is_finite());
    }

    #[test]
    fn poisoned_confidence_is_reported() {
        for bad in [f32::INFINITY, f32::NAN] {
            let mut data = random_problem(12, 9, 40, 8);
            data.user_conf[3] = bad;
            // Keep both views consistent: poison the same entry in the item view.
            let (u, i) = {
                let u = data.user_ptr.iter().position(|&p| p > 3).unwrap() - 1;
                (u, data.user_items[3])
            };
            let k = data.item_ptr[i as usize]
                + data
                    .item_row(i as usize)
                    .0
                    .iter()
                    .position(|&x| x as usize == u)
                    .unwrap();
            data.item_conf[k] = bad;
            let params = AlsParams {
                factors: 4,
                iterations: 2,
                regularization: 0.1,
                regularization_scaling: RegularizationScaling::None,
                cg_steps: 3,
                seed: 0,
            };
            let err = fit(&data, &params, &pool(2)).unwrap_err();
            assert!(
                matches!(err, ModelError::NonFinite { side: "user", .. }),
                "{err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with("model diverged: user factor row"),
                "{err}"
            );
            let err = reference::fit_reference(&data, &params).unwrap_err();
            assert!(matches!(err, ModelError::NonFinite { .. }), "{err:?}");
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let p = pool(1);
        let params = AlsParams {
            factors: 4,
            iterations: 1,
            regularization: 0.1,
            regularization_scaling: RegularizationScaling::None,
            cg_steps: 3,
            seed: 0,
        };
        let empty = Interactions::from_entries(0, 5, &[]);
        assert_eq!(fit(&empty, &params, &p).unwrap_err(), ModelError::Empty);
        let data = random_problem(5, 4, 50, 1);
        let err = fit_warm(
            &data,
            &params,
            &p,
            Factors::zeros(5, 3),
            Factors::zeros(4, 4),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ModelError::ShapeMismatch {
                side: "user",
                expected_rows: 5,
                expected_dim: 4,
                rows: 5,
                dim: 3
            }
        );
        let err = fit_warm(
            &data,
            &params,
            &p,
            Factors::zeros(5, 4),
            Factors::zeros(3, 4),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ModelError::ShapeMismatch { side: "item", .. }
        ));
        let bad = AlsParams {
            factors: 0,
            ..params.clone()
        };
        assert!(matches!(
            fit(&data, &bad, &p),
            Err(ModelError::InvalidParams(_))
        ));
        let bad = AlsParams {
            regularization: f32::NAN,
            ..params.clone()
        };
        assert!(matches!(
            fit(&data, &bad, &p),
            Err(ModelError::InvalidParams(_))
        ));
        for weights in [
            vec![1.0; 3],
            vec![1.0, f32::NAN, 1.0, 1.0],
            vec![1.0, -0.5, 1.0, 1.0],
        ] {
            let mut bad = data.clone();
            bad.missing_weight = weights;
            assert!(matches!(
                fit(&bad, &params, &p),
                Err(ModelError::InvalidParams(_))
            ));
        }
        // Zero iterations: the init comes back with its loss.
        let none = AlsParams {
            iterations: 0,
            ..params.clone()
        };
        let (u, _, rep) = fit(&data, &none, &p).unwrap();
        assert_eq!(u, Factors::random(5, 4, 0, 0));
        assert!(rep.loss_history.is_empty() && rep.loss.is_finite());
        // Warm start continues where a fit stopped.
        let (u, i, r1) = fit(&data, &params, &p).unwrap();
        let (_, _, r2) = fit_warm(&data, &params, &p, u, i).unwrap();
        assert!(r2.loss <= r1.loss * (1.0 + 1e-6));
    }

    /// `cargo test --release -p foryou --lib -- --ignored --nocapture bench_fit`
    #[test]
    #[ignore = "a timing run, not a check: see the command above"]
    fn bench_fit_6000x3700() {
        let (n_users, n_items) = (6000usize, 3700usize);
        let mut s = 12345u64;
        let mut e = Vec::with_capacity(1_050_000);
        let mut seen = vec![false; n_items];
        for u in 0..n_users {
            // ~170 items per user, popularity-skewed.
            let mut picked = vec![];
            while picked.len() < 170 {
                let r = (lcg(&mut s) % 1_000_000) as f64 / 1e6;
                let i = ((r * r) * n_items as f64) as usize;
                if !seen[i] {
                    seen[i] = true;
                    picked.push(i);
                }
            }
            for &i in &picked {
                seen[i] = false;
                let skip = lcg(&mut s).is_multiple_of(5);
                let ratio = (lcg(&mut s) % 2000) as f32 / 1000.0;
                e.push(Entry {
                    user: u as u32,
                    item: i as u32,
                    confidence: if skip { 1.0 + 2.0 } else { 1.0 + 10.0 * ratio },
                    preference: if skip { 0.0 } else { 1.0 },
                });
            }
        }
        let t0 = std::time::Instant::now();
        let data = Interactions::from_entries(n_users, n_items, &e);
        let t_build = t0.elapsed();
        let params = AlsParams {
            factors: 64,
            iterations: 15,
            regularization: 0.01,
            regularization_scaling: RegularizationScaling::None,
            cg_steps: 3,
            seed: 0,
        };
        let p = pool(2);
        let t1 = std::time::Instant::now();
        let (_, _, rep) = fit(&data, &params, &p).unwrap();
        let t_fit = t1.elapsed();
        let t2 = std::time::Instant::now();
        let _ = loss(
            &data,
            &Factors::random(n_users, 64, 0, 0),
            &Factors::random(n_items, 64, 0, 1),
            0.01,
            RegularizationScaling::None,
            &p,
        );
        println!(
            "nnz {} build {:?} fit(64f, 15 it, 3 cg, 2 threads) {:?} one loss {:?} loss {:.6} history {:?}",
            data.nnz(),
            t_build,
            t_fit,
            t2.elapsed(),
            rep.loss,
            rep.loss_history
        );
    }
}
