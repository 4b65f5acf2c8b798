//! Ranking metrics at k, for held-out evaluation (`foryou_evaluate`).
//!
//! For each user with at least one relevant item, given the top-k list and the set of
//! relevant (held-out) items, with `hits` the relevant items in the list:
//!
//! ```text
//! precision@k = hits / k
//! recall@k    = hits / |relevant|
//! NDCG@k      = DCG / IDCG, DCG = Σ_{rank r hit} 1 / log2(r + 1), IDCG = Σ_{r=1}^{min(k,|relevant|)} 1 / log2(r + 1)
//! AP@k        = Σ_{rank r hit} precision@r / min(k, |relevant|)   (MAP@k is its mean)
//! ```
//!
//! Each is averaged over users; coverage is the share of catalogue items that appear in
//! at least one user's list.

use std::collections::HashSet;

/// Mean metrics over the evaluated users.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub users: usize,
    pub precision: f64,
    pub recall: f64,
    pub ndcg: f64,
    pub map: f64,
    pub coverage: f64,
}

/// Adds users one at a time, then [`Accumulator::finish`] averages.
#[derive(Default)]
pub struct Accumulator {
    sums: Metrics,
    recommended: HashSet<i64>,
}

impl Accumulator {
    /// One user's ranked list (best first, at most k long) and relevant item set.
    /// Users with no relevant items are skipped (they have nothing to find).
    pub fn add(&mut self, ranked: &[i64], relevant: &HashSet<i64>, k: usize) {
        if relevant.is_empty() || k == 0 {
            return;
        }
        let ranked = &ranked[..ranked.len().min(k)];
        self.recommended.extend(ranked.iter().copied());
        let (mut hits, mut dcg, mut ap) = (0usize, 0.0f64, 0.0f64);
        for (at, item) in ranked.iter().enumerate() {
            if relevant.contains(item) {
                hits += 1;
                dcg += 1.0 / ((at + 2) as f64).log2();
                ap += hits as f64 / (at + 1) as f64;
            }
        }
        let ideal = k.min(relevant.len());
        let idcg: f64 = (0..ideal).map(|at| 1.0 / ((at + 2) as f64).log2()).sum();
        self.sums.users += 1;
        self.sums.precision += hits as f64 / k as f64;
        self.sums.recall += hits as f64 / relevant.len() as f64;
        self.sums.ndcg += dcg / idcg;
        self.sums.map += ap / ideal as f64;
    }

    /// Averages over users; `catalogue` is the number of items that could be recommended.
    pub fn finish(self, catalogue: usize) -> Metrics {
        let n = self.sums.users.max(1) as f64;
        Metrics {
            users: self.sums.users,
            precision: self.sums.precision / n,
            recall: self.sums.recall / n,
            ndcg: self.sums.ndcg / n,
            map: self.sums.map / n,
            coverage: if catalogue == 0 {
                0.0
            } else {
                self.recommended.len() as f64 / catalogue as f64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[i64]) -> HashSet<i64> {
        items.iter().copied().collect()
    }

    #[test]
    fn hand_computed_values() {
        // User A: list [1, 2, 3], relevant {1, 3}; user B: list [4, 5, 6], relevant {9}.
        let mut acc = Accumulator::default();
        acc.add(&[1, 2, 3], &set(&[1, 3]), 3);
        acc.add(&[4, 5, 6], &set(&[9]), 3);
        acc.add(&[7], &set(&[]), 3); // no relevant items: not counted
        let m = acc.finish(10);
        assert_eq!(m.users, 2);
        // A: precision 2/3, recall 1, AP = (1/1 + 2/3) / 2, DCG = 1 + 1/log2(4) = 1.5, IDCG = 1 + 1/log2(3).
        // B: all zero.
        assert!((m.precision - (2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((m.recall - 0.5).abs() < 1e-12);
        assert!((m.map - f64::midpoint(1.0, 2.0 / 3.0) / 2.0).abs() < 1e-12);
        let ndcg_a = 1.5 / (1.0 + 1.0 / 3f64.log2());
        assert!((m.ndcg - ndcg_a / 2.0).abs() < 1e-12);
        assert!((m.coverage - 6.0 / 10.0).abs() < 1e-12);
    }

    #[test]
    fn perfect_list_scores_one() {
        let mut acc = Accumulator::default();
        acc.add(&[5, 6], &set(&[5, 6, 7]), 2);
        let m = acc.finish(3);
        assert_eq!((m.precision, m.ndcg, m.map), (1.0, 1.0, 1.0));
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
    }
}
