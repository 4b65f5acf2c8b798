//! Why an item scores what it does for a user: the share of each watched item in the
//! score of the folded-in user vector (implicit's `explain`).
//!
//! Fold-in solves `A_u x_u = b_u` with `b_u = Σ_j c_uj p_uj y_j` ([`als::fold_in`]), so
//!
//! ```text
//! y_iᵀ x_u = y_iᵀ A_u⁻¹ Σ_j c_uj p_uj y_j = Σ_j c_uj p_uj (zᵀ y_j),   z = A_u⁻¹ y_i
//! ```
//!
//! (`A_u` is symmetric, so `y_iᵀ A_u⁻¹ = zᵀ`): item j contributes `c_uj p_uj zᵀ y_j`, and
//! the contributions add up to the score exactly, up to rounding. One solve per
//! explained item, against the very matrix fold-in factors (same system, same ridge
//! rule: [`als::user_system`], [`als::solve_user_system`]).

use super::als::{self, RegularizationScaling, Solution};
use super::Factors;

/// The contribution of every entry to the score of item `item` for the user whose
/// fold-in entries (item index, confidence, preference) are `entries`, in entry order:
/// `c p zᵀ y_j`, 0 for a skip (`p = 0`) and for an entry naming no row of `items`.
/// Their sum is `y_itemᵀ x` with `x` what [`als::fold_in`] returns for the same
/// arguments (before its rounding to f32).
///
/// None when the shapes are wrong (see [`als::fold_in`]), `item` names no row of `items`,
/// or the system is singular or not finite (fold-in then gives no usable vector either).
pub fn contributions(
    items: &Factors,
    yty: &[f32],
    weights: &[f32],
    entries: &[(u32, f32, f32)],
    regularization: f32,
    scaling: RegularizationScaling,
    item: u32,
) -> Option<Vec<f64>> {
    if item as usize >= items.rows {
        return None;
    }
    let (a, _) = als::user_system(items, yty, weights, entries, regularization, scaling)?;
    let y: Vec<f64> = items
        .row(item as usize)
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let Solution::Exact(z) = als::solve_user_system(a, &y) else {
        return None;
    };
    let contributions: Vec<f64> = entries
        .iter()
        .map(|&(j, c, p)| {
            if j as usize >= items.rows || p == 0.0 {
                return 0.0;
            }
            let zy: f64 = z
                .iter()
                .zip(items.row(j as usize))
                .map(|(&zk, &yk)| zk * f64::from(yk))
                .sum();
            f64::from(c) * f64::from(p) * zy
        })
        .collect();
    contributions
        .iter()
        .all(|v| v.is_finite())
        .then_some(contributions)
}

#[cfg(test)]
// Tests: small generated data, indices far inside every type.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use crate::model::linalg::cholesky_solve;

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
    }

    fn factors(rows: usize, dim: usize, data: &[f32]) -> Factors {
        Factors::from_vec(rows, dim, data.to_vec()).unwrap()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-30)
    }

    #[test]
    fn a_hand_checked_two_item_case() {
        // Items e1, e2, (1, 1); uniform weights; λ = 1. The user watched e1 (c = 2) and
        // e2 (c = 3). A = YᵀY + 1·e1e1ᵀ + 2·e2e2ᵀ + I = [[4, 1], [1, 5]], det 19, so for
        // item (1, 1): z = A⁻¹(1, 1) = (4, 3)/19, contributions 2·4/19 and 3·3/19, whose
        // sum 17/19 is (1, 1)·x with x = A⁻¹(2, 3) = (7, 10)/19.
        let items = factors(3, 2, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        let weights = [1.0; 3];
        let yty = als::weighted_gramian(&items, &weights, &pool());
        let entries = [(0, 2.0, 1.0), (1, 3.0, 1.0)];
        let got = contributions(
            &items,
            &yty,
            &weights,
            &entries,
            1.0,
            RegularizationScaling::None,
            2,
        )
        .unwrap();
        assert!(close(got[0], 8.0 / 19.0, 1e-12), "{got:?}");
        assert!(close(got[1], 9.0 / 19.0, 1e-12), "{got:?}");
        let x = als::fold_in(
            &items,
            &yty,
            &weights,
            &entries,
            1.0,
            RegularizationScaling::None,
        );
        assert!(close(f64::from(x[0]), 7.0 / 19.0, 1e-6), "{x:?}");
        assert!(close(f64::from(x[1]), 10.0 / 19.0, 1e-6), "{x:?}");
    }

    #[test]
    fn a_skip_weighs_on_the_system_but_contributes_nothing() {
        // One factor: items 1 and 2, watched item 0 (c = 3), skipped item 1 (c = 2).
        // A = (1 + 4) + (3 − 1)·1 + (2 − 1)·4 + 1 = 12, b = 3, x = 1/4; item 1 scores
        // 2/4, all of it from item 0: 3 · (2/12) · 1.
        let items = factors(2, 1, &[1.0, 2.0]);
        let weights = [1.0; 2];
        let yty = als::weighted_gramian(&items, &weights, &pool());
        let entries = [(0, 3.0, 1.0), (1, 2.0, 0.0)];
        let got = contributions(
            &items,
            &yty,
            &weights,
            &entries,
            1.0,
            RegularizationScaling::None,
            1,
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        assert!(close(got[0], 0.5, 1e-12), "{got:?}");
        assert!(got[1] == 0.0, "{got:?}");
    }

    /// A deterministic generator (splitmix64).
    fn next(state: &mut u64) -> f32 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = crate::model::factors::mix64(*state);
        (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    #[test]
    fn contributions_add_up_to_the_score_of_the_folded_in_vector() {
        let (rows, dim) = (40, 6);
        let mut s = 7;
        let items = factors(
            rows,
            dim,
            &(0..rows * dim).map(|_| next(&mut s)).collect::<Vec<_>>(),
        );
        for (weights, scaling) in [
            (vec![1.0f32; rows], RegularizationScaling::None),
            (
                (0..rows).map(|i| 0.5 + (i % 3) as f32 * 0.5).collect(),
                RegularizationScaling::Count,
            ),
            (vec![1.0f32; rows], RegularizationScaling::Sqrt),
        ] {
            let yty = als::weighted_gramian(&items, &weights, &pool());
            // Watched items with varied confidence, two skips, and one index out of range
            // (ignored by fold-in, so it must contribute nothing here either).
            let mut entries: Vec<(u32, f32, f32)> = (0..12)
                .map(|j| (j * 3, 1.0 + (j % 4) as f32 * 2.5, 1.0))
                .collect();
            entries.push((1, 4.0, 0.0));
            entries.push((2, 4.0, 0.0));
            entries.push((rows as u32 + 5, 3.0, 1.0));
            let x = als::fold_in(&items, &yty, &weights, &entries, 0.3, scaling);
            // The same system solved directly in f64: the exact score.
            let (mut a, b) =
                als::user_system(&items, &yty, &weights, &entries, 0.3, scaling).unwrap();
            let exact = cholesky_solve(&mut a, &b).unwrap();
            for item in [0u32, 5, 17, 39] {
                let got =
                    contributions(&items, &yty, &weights, &entries, 0.3, scaling, item).unwrap();
                let sum: f64 = got.iter().sum();
                let y = items.row(item as usize);
                let direct: f64 = exact.iter().zip(y).map(|(a, &b)| a * f64::from(b)).sum();
                let served: f64 = x.iter().zip(y).map(|(&a, &b)| f64::from(a * b)).sum();
                assert!(
                    close(sum, direct, 1e-9),
                    "{scaling:?} {item}: {sum} vs {direct}"
                );
                assert!(
                    (sum - served).abs() <= 1e-5 * direct.abs().max(1.0),
                    "{scaling:?} {item}: {sum} vs served {served}"
                );
                // Skips and the unknown index contribute nothing.
                assert!(got[12] == 0.0 && got[13] == 0.0 && got[14] == 0.0);
                // Not a sum of equal shares: the entries do differ.
                assert!(got[..12].iter().any(|&c| (c - got[0]).abs() > 1e-6));
            }
        }
    }

    #[test]
    fn wrong_shapes_and_unknown_items_give_none() {
        let items = factors(2, 1, &[1.0, 2.0]);
        let weights = [1.0; 2];
        let yty = [5.0];
        let entries = [(0, 3.0, 1.0)];
        let none = RegularizationScaling::None;
        assert!(contributions(&items, &yty, &weights, &entries, 1.0, none, 2).is_none());
        assert!(contributions(&items, &[], &weights, &entries, 1.0, none, 0).is_none());
        assert!(contributions(&items, &yty, &[1.0], &entries, 1.0, none, 0).is_none());
        let nan = factors(2, 1, &[f32::NAN, 2.0]);
        assert!(contributions(&nan, &[f32::NAN], &weights, &entries, 1.0, none, 1).is_none());
    }
}
