//! A readable reference ALS: sequential, exact solves of the same normal equations as
//! [`super::als`], forming each row's dense matrix explicitly. Slow (`O(n f³)` per sweep);
//! used to check the conjugate-gradient solver, not to serve.
//!
//! Objective (unobserved pairs have `p = 0` and the missing-data weight `w_i` of their
//! item, [`Interactions::missing_weight`]):
//!
//! ```text
//! L = Σ_{observed} c_ui (p_ui − x_u·y_i)² + Σ_{unobserved} w_i (x_u·y_i)²
//!   + Σ_u λ_u |x_u|² + Σ_i λ_i |y_i|²
//! ```
//!
//! with `λ_r = λ · s_r` ([`RegularizationScaling::row_lambda`]: `s_r = 1` unscaled,
//! `s_r = n_r` the row's number of observed pairs with `count`, `√n_r` with `sqrt`),
//! and `w_i = pop_i^ω / mean_j(pop_j^ω)` (`pop_i`: distinct users with an observed pair
//! on item `i`; `ω = 0` gives `w_i = 1`, the uniform model of Hu, Koren, Volinsky 2008).

// Test-only reference code: f64 results rounded to f32 on purpose, as the solver does.
#![allow(clippy::cast_possible_truncation)]

use super::als::{
    check_finite, check_inputs, AlsParams, FitReport, ModelError, RegularizationScaling,
};
use super::factors::{dot_f64, Factors};
use super::interactions::{CsrView, Interactions};
use super::linalg::cholesky_solve;

/// Exact ALS from the same random init as [`super::als::fit`]. Loss history is the
/// brute-force [`loss_dense`] (normalised like [`super::als::loss`]).
pub fn fit_reference(
    data: &Interactions,
    params: &AlsParams,
) -> Result<(Factors, Factors, FitReport), ModelError> {
    check_inputs(data, params)?;
    let mut users = Factors::random(data.n_users, params.factors, params.seed, 0);
    let mut items = Factors::random(data.n_items, params.factors, params.seed, 1);
    let reg = params.regularization;
    let scaling = params.regularization_scaling;
    let mut loss_history = vec![];
    for _ in 0..params.iterations {
        users = user_step(data, &items, reg, scaling);
        items = item_step(data, &users, reg, scaling);
        check_finite(&users, &items)?;
        loss_history.push(loss_dense(data, &users, &items, reg, scaling));
    }
    let loss = loss_history
        .last()
        .copied()
        .unwrap_or_else(|| loss_dense(data, &users, &items, reg, scaling));
    Ok((
        users,
        items,
        FitReport {
            iterations: params.iterations,
            loss,
            loss_history,
        },
    ))
}

/// Every user's exact least-squares vector with the items fixed: the missing weight of
/// the pair (u, j) is item j's.
pub fn user_step(
    data: &Interactions,
    items: &Factors,
    regularization: f32,
    scaling: RegularizationScaling,
) -> Factors {
    let w = &data.missing_weight;
    exact_step(data.by_user(), items, regularization, scaling, |_, j| {
        f64::from(w[j])
    })
}

/// Every item's exact least-squares vector with the users fixed: the missing weight of
/// the pair (i, u) is item i's.
pub fn item_step(
    data: &Interactions,
    users: &Factors,
    regularization: f32,
    scaling: RegularizationScaling,
) -> Factors {
    let w = &data.missing_weight;
    exact_step(data.by_item(), users, regularization, scaling, |i, _| {
        f64::from(w[i])
    })
}

/// For each row `u` of `rows`, with `Y = fixed` and `m(u, j)` the missing-data weight of
/// the pair (row u, column j):
///
/// ```text
/// A_u = Σ_{all j} m(u, j) y_j y_jᵀ           (every pair, as if unobserved)
///     + Σ_{i∈u} (c_ui − m(u, i)) y_i y_iᵀ    (observed pairs have weight c_ui instead)
///     + λ_u I                                 (λ_u = λ · s_u, the row's own penalty)
/// b_u = Σ_{i∈u} c_ui p_ui y_i                 (unobserved pairs have p = 0)
/// x_u = A_u⁻¹ b_u                             (Cholesky, f64)
/// ```
///
/// `λ_u = scaling.row_lambda(λ, n_u)`: `λ` unscaled, `λ · n_u` with `count`, `λ · √n_u` with
/// `sqrt` (`n_u` the number of observed pairs of the row, at least 1).
///
/// A row whose system cannot be factorised (non-finite input) becomes NaN.
fn exact_step(
    rows: CsrView<'_>,
    fixed: &Factors,
    regularization: f32,
    scaling: RegularizationScaling,
    missing: impl Fn(usize, usize) -> f64,
) -> Factors {
    let f = fixed.dim;
    let mut out = Factors::zeros(rows.n_rows(), f);
    for u in 0..rows.n_rows() {
        let (cols, conf, pref) = rows.row(u);
        // Σ_j m(u, j) y_j y_jᵀ, straightforwardly.
        let mut a_mat = vec![0.0f64; f * f];
        for j in 0..fixed.rows {
            let y = fixed.row(j);
            let m = missing(u, j);
            for a in 0..f {
                for b in 0..f {
                    a_mat[a * f + b] += m * f64::from(y[a]) * f64::from(y[b]);
                }
            }
        }
        let lambda = f64::from(scaling.row_lambda(regularization, cols.len()));
        for k in 0..f {
            a_mat[k * f + k] += lambda;
        }
        let mut b = vec![0.0f64; f];
        for k in 0..cols.len() {
            let y = fixed.row(cols[k] as usize);
            let (c, p) = (f64::from(conf[k]), f64::from(pref[k]));
            let m = missing(u, cols[k] as usize);
            for a in 0..f {
                b[a] += c * p * f64::from(y[a]);
                for bb in 0..f {
                    a_mat[a * f + bb] += (c - m) * f64::from(y[a]) * f64::from(y[bb]);
                }
            }
        }
        let x = cholesky_solve(&mut a_mat, &b).unwrap_or_else(|| vec![f64::NAN; f]);
        for (o, v) in out.row_mut(u).iter_mut().zip(x) {
            *o = v as f32;
        }
    }
    out
}

/// The normalised loss by brute force over all `n_users × n_items` pairs (tests only):
/// `L / (Σ_observed c + Σ_unobserved w_i)`.
pub fn loss_dense(
    data: &Interactions,
    users: &Factors,
    items: &Factors,
    regularization: f32,
    scaling: RegularizationScaling,
) -> f64 {
    let (nu, ni) = (data.n_users, data.n_items);
    // Dense (c, p), unobserved = (w_i, 0).
    let mut cp: Vec<(f64, f64)> = (0..nu * ni)
        .map(|k| (f64::from(data.missing_weight[k % ni]), 0.0))
        .collect();
    for u in 0..nu {
        let (cols, conf, pref) = data.user_row(u);
        for k in 0..cols.len() {
            cp[u * ni + cols[k] as usize] = (f64::from(conf[k]), f64::from(pref[k]));
        }
    }
    let mut l = 0.0f64;
    for u in 0..nu {
        for i in 0..ni {
            let (c, p) = cp[u * ni + i];
            let t = dot_f64(users.row(u), items.row(i));
            l += c * (p - t) * (p - t);
        }
    }
    for u in 0..nu {
        let lambda = f64::from(scaling.row_lambda(regularization, data.user_row(u).0.len()));
        l += lambda * dot_f64(users.row(u), users.row(u));
    }
    for i in 0..ni {
        let lambda = f64::from(scaling.row_lambda(regularization, data.item_row(i).0.len()));
        l += lambda * dot_f64(items.row(i), items.row(i));
    }
    let denom: f64 = cp.iter().map(|&(c, _)| c).sum();
    l / denom
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::interactions::Entry;

    fn problem() -> Interactions {
        let mut e = vec![];
        let mut s = 77u64;
        for u in 0..25u32 {
            for i in 0..18u32 {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let r = s >> 33;
                if r.is_multiple_of(4) {
                    let skip = r.is_multiple_of(3);
                    e.push(Entry {
                        user: u,
                        item: i,
                        confidence: if skip { 3.0 } else { 1.0 + (r % 17) as f32 },
                        preference: if skip { 0.0 } else { 1.0 },
                    });
                }
            }
        }
        Interactions::from_entries(25, 18, &e)
    }

    #[test]
    fn loss_never_increases() {
        for omega in [0.0, 0.5, 1.5] {
            for scaling in [RegularizationScaling::None, RegularizationScaling::Count] {
                loss_never_increases_with(omega, scaling);
            }
        }
    }

    fn loss_never_increases_with(omega: f64, scaling: RegularizationScaling) {
        let data = problem().with_popularity_weights(omega);
        assert_eq!(data.uniform_missing_weight(), omega == 0.0);
        let params = AlsParams {
            factors: 6,
            iterations: 12,
            regularization: 0.05,
            regularization_scaling: scaling,
            cg_steps: 0,
            seed: 5,
        };
        let (_, _, rep) = fit_reference(&data, &params).unwrap();
        assert_eq!(rep.loss_history.len(), 12);
        for w in rep.loss_history.windows(2) {
            assert!(
                w[1] <= w[0] * (1.0 + 1e-9),
                "loss went up: {:?}",
                rep.loss_history
            );
        }
        assert!(
            rep.loss_history[11] < 0.9 * rep.loss_history[0],
            "{:?}",
            rep.loss_history
        );
    }

    #[test]
    fn exact_step_solves_normal_equations() {
        // The gradient of L (rebuilt independently from the dense (c, p), unobserved pairs
        // weighing w_i, and each row's λ from its observed pairs) vanishes at every user of
        // a user step and every item of an item step.
        use RegularizationScaling as S;
        for (omega, scaling) in [0.0, 0.5, 2.0]
            .into_iter()
            .flat_map(|o| [S::None, S::Count, S::Sqrt].map(|s| (o, s)))
        {
            let data = problem().with_popularity_weights(omega);
            let lambda = |conf: &[f32]| -> f64 {
                let n = conf.len().max(1) as f64;
                0.2 * match scaling {
                    S::None => 1.0,
                    S::Count => n,
                    S::Sqrt => n.sqrt(),
                }
            };
            let w = |i: usize| f64::from(data.missing_weight[i]);
            let dense = |u: usize, i: usize| {
                let (cols, conf, pref) = data.user_row(u);
                match cols.iter().position(|&j| j as usize == i) {
                    Some(k) => (f64::from(conf[k]), f64::from(pref[k])),
                    None => (w(i), 0.0),
                }
            };
            let items = Factors::random(18, 4, 1, 1);
            let reg = 0.2f32;
            let users = user_step(&data, &items, reg, scaling);
            for u in 0..25 {
                let x = users.row(u);
                let mut grad = vec![0.0f64; 4];
                for i in 0..18 {
                    let (c, p) = dense(u, i);
                    let y = items.row(i);
                    let t = dot_f64(x, y);
                    for a in 0..4 {
                        grad[a] += c * (t - p) * f64::from(y[a]);
                    }
                }
                let lambda_u = lambda(data.user_row(u).1);
                for a in 0..4 {
                    grad[a] += lambda_u * f64::from(x[a]);
                    assert!(
                        grad[a].abs() < 1e-5,
                        "ω {omega}, {scaling:?}, user {u}: gradient {grad:?}"
                    );
                }
            }
            let new_items = item_step(&data, &users, reg, scaling);
            for i in 0..18 {
                let y = new_items.row(i);
                let mut grad = vec![0.0f64; 4];
                for u in 0..25 {
                    let (c, p) = dense(u, i);
                    let x = users.row(u);
                    let t = dot_f64(x, y);
                    for a in 0..4 {
                        grad[a] += c * (t - p) * f64::from(x[a]);
                    }
                }
                let lambda_i = lambda(data.item_row(i).1);
                for a in 0..4 {
                    grad[a] += lambda_i * f64::from(y[a]);
                    assert!(
                        grad[a].abs() < 1e-4,
                        "ω {omega}, item {i}: gradient {grad:?}"
                    );
                }
            }
        }
    }
}
