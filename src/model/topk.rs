//! Top-k selection with a bounded binary heap (`O(n log k)`).
//!
//! Ordering everywhere: higher score first; equal scores (including `0.0` vs `-0.0`) by
//! lower index first; NaN scores rank below every number.

// Row indices are cast `usize as u32` in the scans' hot loops: `two_pass` clamps the rows
// to `u32::MAX` and the factor matrices index items with u32 (as `Interactions` does).
#![allow(clippy::cast_possible_truncation)]

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::factors::{dot, Factors};
use super::kernels::dot_rows;
use super::scan::{dot_rows_half, int8_candidates, HalfFactors, Int8Factors, Int8Query};

/// A candidate; `Ord` says "greater = worse", so a max-heap keeps the worst on top.
#[derive(Clone, Copy, Debug)]
struct Cand {
    index: u32,
    score: f32,
}

impl Cand {
    /// Better-first comparison of two candidates.
    fn better_first(self, other: Self) -> Ordering {
        let by_score = match (self.score.is_nan(), other.score.is_nan()) {
            (false, false) => other
                .score
                .partial_cmp(&self.score)
                .unwrap_or(Ordering::Equal),
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (true, true) => Ordering::Equal,
        };
        by_score.then(self.index.cmp(&other.index))
    }
}

impl PartialEq for Cand {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.better_first(*other)
    }
}

/// Which rows a scan may return: none of `exclude`, and only those of `allow` when it is
/// given (both sorted). A filter inside the scan, so that k rows come back whenever k
/// rows are eligible (a filter applied to a top-k afterwards returns fewer).
#[derive(Clone, Copy, Debug, Default)]
pub struct Eligible<'a> {
    exclude: &'a [u32],
    allow: Option<&'a [u32]>,
}

/// An allow-list at most this fraction of the catalogue is scored row by row (random
/// reads of its f32 rows) instead of scanned (sequential reads of every row, quantised
/// where the model has a first pass).
const LISTED_SHARE: usize = 8;

impl<'a> Eligible<'a> {
    /// Every row but `exclude` (sorted).
    pub fn excluding(exclude: &'a [u32]) -> Self {
        Eligible {
            exclude,
            allow: None,
        }
    }

    /// The rows of `allow` (sorted; None: every row) that are not in `exclude` (sorted).
    pub fn new(exclude: &'a [u32], allow: Option<&'a [u32]>) -> Self {
        debug_assert!(
            exclude.windows(2).all(|w| w[0] <= w[1]),
            "exclude must be sorted"
        );
        debug_assert!(
            allow.is_none_or(|a| a.windows(2).all(|w| w[0] <= w[1])),
            "allow must be sorted"
        );
        Eligible { exclude, allow }
    }

    #[inline]
    fn admits(&self, i: u32) -> bool {
        self.exclude.binary_search(&i).is_err()
            && self.allow.is_none_or(|a| a.binary_search(&i).is_ok())
    }

    /// The allowed rows below `rows`, when few enough to score one by one.
    fn listed(&self, rows: usize) -> Option<impl Iterator<Item = u32> + '_> {
        let allow = self.allow?;
        (allow.len().saturating_mul(LISTED_SHARE) <= rows).then(|| {
            allow
                .iter()
                .copied()
                .take_while(move |&i| (i as usize) < rows)
                .filter(|i| self.exclude.binary_search(i).is_err())
        })
    }
}

/// The top k of the `listed` rows by `score`: what a scan restricted to them returns.
fn top_k_listed(
    listed: impl Iterator<Item = u32>,
    k: usize,
    score: impl Fn(usize) -> f32,
) -> Vec<(u32, f32)> {
    let mut top = TopK::new(k);
    for i in listed {
        top.push(i, score(i as usize));
    }
    top.into_sorted()
}

/// Bounded heap of the k best candidates seen so far.
struct TopK {
    k: usize,
    heap: BinaryHeap<Cand>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 16)),
        }
    }

    #[inline]
    fn push(&mut self, index: u32, score: f32) {
        if self.k == 0 {
            return;
        }
        let c = Cand { index, score };
        if self.heap.len() < self.k {
            self.heap.push(c);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if c < *worst {
                *worst = c;
            }
        }
    }

    /// Offers `scores[j]` as index `first + j`, in index order, skipping indices that
    /// are not `eligible`. Since indices only grow, a score that does not beat the
    /// current k-th best cannot enter (an equal score loses the tie to the lower index
    /// already kept): most positions cost one comparison, and only candidates are looked
    /// up in the filter.
    fn offer_all(&mut self, scores: &[f32], first: usize, eligible: &Eligible) {
        debug_assert!(self.heap.iter().all(|c| (c.index as usize) < first));
        if self.k == 0 {
            return;
        }
        let mut worst = self.worst();
        for (j, &s) in scores.iter().enumerate() {
            if let Some(w) = worst {
                // `s > w` is false for NaN on either side; NaN ranks below every number.
                let beats = s > w || (w.is_nan() && !s.is_nan());
                if !beats {
                    continue;
                }
            }
            let Ok(i) = u32::try_from(first + j) else {
                return;
            };
            if eligible.admits(i) {
                self.push(i, s);
                worst = self.worst();
            }
        }
    }

    /// The k-th best score once k candidates are kept (None before).
    #[inline]
    fn worst(&self) -> Option<f32> {
        if self.heap.len() < self.k {
            None
        } else {
            self.heap.peek().map(|c| c.score)
        }
    }

    fn into_sorted(self) -> Vec<(u32, f32)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|c| (c.index, c.score))
            .collect()
    }
}

/// Rows scored per block: the scores of one block stay in L1 between the scan and
/// the selection, and no buffer grows with the catalogue.
const BLOCK: usize = 512;

/// Catalogue size from which [`top_k_dot_bounded`] scans with two workers.
const PARALLEL_ROWS: usize = 1 << 17;

/// Top-k rows of `items` by dot product with `query`, best first; `exclude` is a sorted
/// slice of item indices left out. Ties: lower index first. `k` larger than the eligible
/// rows returns them all. A query whose length is not `items.dim` gives an empty result.
pub fn top_k_dot(query: &[f32], items: &Factors, k: usize, exclude: &[u32]) -> Vec<(u32, f32)> {
    top_k_dot_among(query, items, k, &Eligible::excluding(exclude))
}

/// [`top_k_dot`] over the `eligible` rows only. A short allow-list is scored row by row:
/// the same scores (the kernel scores a row alike alone or in a block), so the same
/// result as the scan restricted to it.
pub fn top_k_dot_among(
    query: &[f32],
    items: &Factors,
    k: usize,
    eligible: &Eligible,
) -> Vec<(u32, f32)> {
    if query.len() != items.dim || items.rows == 0 || items.dim == 0 {
        return vec![];
    }
    if let Some(listed) = eligible.listed(items.rows) {
        return top_k_listed(listed, k, |i| exact_dot(query, items, i));
    }
    let mut top = TopK::new(k);
    let mut scores = [0.0f32; BLOCK];
    for (b, block) in items.data.chunks(BLOCK * items.dim).enumerate() {
        let n = block.len() / items.dim;
        dot_rows(query, block, &mut scores[..n]);
        top.offer_all(&scores[..n], b * BLOCK, eligible);
    }
    top.into_sorted()
}

/// The f32 score of row `i`, exactly as the catalogue scan computes it.
fn exact_dot(query: &[f32], items: &Factors, i: usize) -> f32 {
    let mut s = [0.0f32];
    dot_rows(query, items.row(i), &mut s);
    s[0]
}

/// A cheaper copy of the item factors that [`top_k_dot_bounded`] reads first.
pub enum FirstPass<'a> {
    /// 8-bit rows (the bound of [`Int8Query`]); used where [`crate::model::scan::vnni`] holds.
    Int8(&'a Int8Factors),
    /// Half-precision rows and the items' L2 `norms`.
    Half(&'a HalfFactors, &'a [f32]),
}

/// [`top_k_dot`] reading a quantised copy of the items first: the same result (same
/// items, same f32 scores, same order) from a quarter (8-bit) or half (f16) of the bytes.
///
/// Why the result is the same: every row gets an approximate score `a_i` and a bound
/// `B_i` with `|a_i − s_i| ≤ B_i`, `s_i` the f32 kernel's score. For half precision,
/// rounding an item to f16 moves each element by at most 2⁻¹¹ of itself (normal range)
/// or 2⁻²⁵ (subnormal), so `B_i = 2·((2⁻¹¹ + 2(f+2)·2⁻²⁴)·|q|·|y_i| + 2⁻²⁴·|q|₁)`
/// (2⁻¹¹: the f16 rounding; 2(f+2)·2⁻²⁴: the two f32 summations; 2⁻²⁴·|q|₁: elements in
/// f16's subnormal range; the factor 2: the rounding of the norms and of the bound
/// itself); for 8 bits, see [`Int8Query`]. Let `T` be the k-th largest `a_i − B_i` over
/// eligible items: k items have `s ≥ T`, so every item of the f32 top-k (ties included)
/// has `s_i ≥ T`, hence `a_i + B_i ≥ T`. Exactly those candidates are rescored with the
/// f32 kernel, so the top-k of the candidates is the f32 top-k.
pub fn top_k_dot_bounded(
    query: &[f32],
    items: &Factors,
    first: &FirstPass,
    k: usize,
    eligible: &Eligible,
) -> Vec<(u32, f32)> {
    if query.len() == items.dim && eligible.listed(items.rows).is_some() {
        return top_k_dot_among(query, items, k, eligible);
    }
    let exact = |i: usize| exact_dot(query, items, i);
    match first_pass(query, items, first)
        .and_then(|c| two_pass(items.rows, k, eligible, &c, &exact))
    {
        Some(ranked) => ranked,
        None => top_k_dot_among(query, items, k, eligible),
    }
}

/// [`top_k_cosine`] reading the 8-bit copy of the items first (bound: [`Int8Query::cosine`]):
/// the same result.
#[cfg(test)]
pub fn top_k_cosine_bounded(
    items: &Factors,
    norms: &[f32],
    int8: &Int8Factors,
    of: usize,
    k: usize,
) -> Vec<(u32, f32)> {
    top_k_cosine_bounded_among(
        items,
        norms,
        int8,
        of,
        k,
        &Eligible::excluding(&[of as u32]),
    )
}

/// [`top_k_cosine_bounded`] over the `eligible` rows, which must leave `of` out.
pub fn top_k_cosine_bounded_among(
    items: &Factors,
    norms: &[f32],
    int8: &Int8Factors,
    of: usize,
    k: usize,
    eligible: &Eligible,
) -> Vec<(u32, f32)> {
    if of >= items.rows
        || norms.len() != items.rows
        || int8.rows != items.rows
        || int8.dim != items.dim
        || eligible.listed(items.rows).is_some()
    {
        return top_k_cosine_among(items, norms, of, k, eligible);
    }
    let query = items.row(of);
    let nq = norms[of];
    let exact = |i: usize| cosine(exact_dot(query, items, i), nq, norms[i]);
    let ranked = Int8Query::cosine(query, nq, int8)
        .and_then(|q| two_pass(items.rows, k, eligible, &int8_pass(q, int8), &exact));
    ranked.unwrap_or_else(|| top_k_cosine_among(items, norms, of, k, eligible))
}

/// The first pass over rows `from..to` (`from` a multiple of [`BLOCK`]): appends
/// `(row, a, B)` for the rows with `a + B ≥ bar`.
type Candidates<'a> = Box<dyn Fn(usize, usize, f32, &mut Vec<(u32, f32, f32)>) + Sync + 'a>;

/// The 8-bit first pass of `query` over `int8`.
fn int8_pass(query: Int8Query, int8: &Int8Factors) -> Candidates<'_> {
    Box::new(move |from, to, bar, out| int8_candidates(&query, int8, from, to, bar, out))
}

/// The cosine of two vectors from their dot product and norms, as every cosine scan
/// computes it (a zero norm on either side gives 0): the bounded scan rescores with
/// exactly the full scan's arithmetic.
#[inline]
fn cosine(dot: f32, norm_a: f32, norm_b: f32) -> f32 {
    let d = norm_a * norm_b;
    if d > 0.0 {
        dot / d
    } else {
        0.0
    }
}

/// The first pass of [`top_k_dot_bounded`]. None when the inputs do not allow the bound
/// (shapes, non-finite values, a zero query for 8 bits).
fn first_pass<'a>(
    query: &'a [f32],
    items: &Factors,
    first: &FirstPass<'a>,
) -> Option<Candidates<'a>> {
    let dim = items.dim;
    if query.len() != dim || dim == 0 || !query.iter().all(|v| v.is_finite()) {
        return None;
    }
    Some(match *first {
        FirstPass::Int8(int8) => {
            if int8.dim != dim || int8.rows != items.rows {
                return None;
            }
            int8_pass(Int8Query::new(query, int8)?, int8)
        }
        FirstPass::Half(half, norms) => {
            if half.dim != dim || half.rows != items.rows || norms.len() != items.rows {
                return None;
            }
            let q_norm = query.iter().map(|v| v * v).sum::<f32>().sqrt();
            let q_abs = query.iter().map(|v| v.abs()).sum::<f32>();
            let relative = 2f32.powi(-11) + 2.0 * (dim as f32 + 2.0) * 2f32.powi(-24);
            let absolute = 2f32.powi(-24) * q_abs;
            Box::new(move |from, to, bar, out| {
                let mut block = [0.0f32; BLOCK];
                let n = to - from;
                dot_rows_half(query, &half.data[from * dim..to * dim], &mut block[..n]);
                for (j, &a) in block[..n].iter().enumerate() {
                    let b = 2.0 * (relative * q_norm * norms[from + j] + absolute);
                    // A score that is not finite passes, and is caught below.
                    if a + b >= bar || !a.is_finite() || !b.is_finite() {
                        out.push(((from + j) as u32, a, b));
                    }
                }
            })
        }
    })
}

/// The two passes of the bounded scans: `candidates_of` over all rows, then `exact`
/// (the f32 score) for the candidates the final bar does not rule out. None when a
/// first-pass value is not finite.
fn two_pass(
    rows: usize,
    k: usize,
    eligible: &Eligible,
    candidates_of: &Candidates,
    exact: &(dyn Fn(usize) -> f32 + Sync),
) -> Option<Vec<(u32, f32)>> {
    let rows = rows.min(u32::MAX as usize);
    if k == 0 || rows == 0 {
        return Some(vec![]);
    }
    // One pass over the cheap rows. An item is a candidate when its upper bound reaches
    // the k-th best lower bound seen so far; that bar only rises, so the final T is at
    // least the bar each item was tested against and every item with a_i + B_i >= T is
    // among the candidates (most items cost one comparison, and no score array is
    // kept). The first pass tests a block against the bar at the block's start (lower,
    // so more candidates, never fewer). Large catalogues are scanned by two threads,
    // each over half the rows; their lower-bound heaps and candidates are merged, which
    // does not change the result.
    let scan = |from: usize, to: usize| -> Option<(TopK, Vec<(u32, f32)>)> {
        let mut lower = TopK::new(k);
        let mut bar = f32::NEG_INFINITY;
        let mut candidates: Vec<(u32, f32)> = Vec::new();
        let mut passed = Vec::with_capacity(BLOCK);
        for first in (from..to).step_by(BLOCK) {
            passed.clear();
            candidates_of(first, (first + BLOCK).min(to), bar, &mut passed);
            for &(index, a, b) in &passed {
                if !(a.is_finite() && b.is_finite()) {
                    return None;
                }
                if a + b < bar || !eligible.admits(index) {
                    continue;
                }
                candidates.push((index, a + b));
                lower.push(index, a - b);
                bar = lower.worst().unwrap_or(f32::NEG_INFINITY);
            }
        }
        Some((lower, candidates))
    };
    let (lower, candidates) = if rows >= PARALLEL_ROWS {
        let middle = (rows / 2).next_multiple_of(BLOCK);
        // A scoped thread, joined before the scope ends (see src/workers.rs for why no
        // thread may outlive the call).
        let (a, b) = std::thread::scope(|s| {
            let right = s.spawn(|| scan(middle, rows));
            let a = scan(0, middle);
            (a, right.join())
        });
        let (Some((mut lower, mut candidates)), Ok(Some((right_lower, right_candidates)))) = (a, b)
        else {
            return None;
        };
        for c in right_lower.heap {
            lower.push(c.index, c.score);
        }
        candidates.extend(right_candidates);
        (lower, candidates)
    } else {
        scan(0, rows)?
    };
    let threshold = lower.worst().unwrap_or(f32::NEG_INFINITY);
    // Rescore in f32 every candidate the final T does not rule out.
    let mut top = TopK::new(k);
    for (index, upper) in candidates {
        if upper >= threshold {
            top.push(index, exact(index as usize));
        }
    }
    Some(top.into_sorted())
}

/// L2 norm of every row.
pub fn norms(f: &Factors) -> Vec<f32> {
    (0..f.rows).map(|i| norm(f.row(i))).collect()
}

/// L2 norm of one vector, with the arithmetic of [`norms`] (a row's norm is the same
/// bits whether it is computed here or there).
pub fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

/// Cosine nearest neighbours of item `of` (left out), using precomputed L2 `norms`
/// (a zero norm on either side gives score 0). Out-of-range `of` or wrong `norms`
/// length gives an empty result.
#[cfg(test)]
pub fn top_k_cosine(items: &Factors, norms: &[f32], of: usize, k: usize) -> Vec<(u32, f32)> {
    top_k_cosine_among(items, norms, of, k, &Eligible::excluding(&[of as u32]))
}

/// [`top_k_cosine`] over the `eligible` rows, which must leave `of` out.
pub fn top_k_cosine_among(
    items: &Factors,
    norms: &[f32],
    of: usize,
    k: usize,
    eligible: &Eligible,
) -> Vec<(u32, f32)> {
    if of >= items.rows || norms.len() != items.rows {
        return vec![];
    }
    top_k_cosine_to_among(items.row(of), norms[of], items, norms, k, eligible)
}

/// Top-k rows of `rows` by cosine with `query` (of L2 norm `query_norm`, see [`norm`]),
/// using the rows' precomputed `norms`; `exclude` is a sorted slice of row indices left
/// out. [`top_k_cosine`] is this with a row of `rows` as the query; a query from
/// elsewhere (a folded-in user vector) is ranked with the same arithmetic. A query of
/// the wrong length or `norms` of the wrong length give an empty result.
#[cfg(test)]
pub fn top_k_cosine_to(
    query: &[f32],
    query_norm: f32,
    rows: &Factors,
    norms: &[f32],
    k: usize,
    exclude: &[u32],
) -> Vec<(u32, f32)> {
    top_k_cosine_to_among(
        query,
        query_norm,
        rows,
        norms,
        k,
        &Eligible::excluding(exclude),
    )
}

/// [`top_k_cosine_to`] over the `eligible` rows; a short allow-list is scored row by row.
pub fn top_k_cosine_to_among(
    query: &[f32],
    query_norm: f32,
    rows: &Factors,
    norms: &[f32],
    k: usize,
    eligible: &Eligible,
) -> Vec<(u32, f32)> {
    if query.len() != rows.dim || norms.len() != rows.rows || rows.dim == 0 {
        return vec![];
    }
    if let Some(listed) = eligible.listed(rows.rows) {
        return top_k_listed(listed, k, |i| {
            cosine(exact_dot(query, rows, i), query_norm, norms[i])
        });
    }
    let mut top = TopK::new(k);
    let mut scores = [0.0f32; BLOCK];
    for (b, block) in rows.data.chunks(BLOCK * rows.dim).enumerate() {
        let n = block.len() / rows.dim;
        dot_rows(query, block, &mut scores[..n]);
        for (s, &norm) in scores[..n].iter_mut().zip(&norms[b * BLOCK..]) {
            *s = cosine(*s, query_norm, norm);
        }
        top.offer_all(&scores[..n], b * BLOCK, eligible);
    }
    top.into_sorted()
}

/// Top-k of (index, score) pairs, best first, with the same ordering rules; only the
/// `eligible` indices are kept.
pub fn top_k_scores(
    scores: impl Iterator<Item = (u32, f32)>,
    k: usize,
    eligible: &Eligible,
) -> Vec<(u32, f32)> {
    let mut top = TopK::new(k);
    if k == 0 {
        return vec![];
    }
    for (i, s) in scores {
        if eligible.admits(i) {
            top.push(i, s);
        }
    }
    top.into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(rows: &[&[f32]]) -> Factors {
        let dim = rows[0].len();
        Factors::from_vec(
            rows.len(),
            dim,
            rows.iter().flat_map(|r| r.iter().copied()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn orders_and_breaks_ties_by_index() {
        let f = items(&[
            &[1.0, 0.0],
            &[3.0, 0.0],
            &[2.0, 0.0],
            &[3.0, 0.0],
            &[-1.0, 0.0],
            &[3.0, 0.0],
        ]);
        let q = [1.0, 5.0];
        assert_eq!(
            top_k_dot(&q, &f, 3, &[]),
            vec![(1, 3.0), (3, 3.0), (5, 3.0)]
        );
        assert_eq!(top_k_dot(&q, &f, 2, &[]), vec![(1, 3.0), (3, 3.0)]);
        assert_eq!(
            top_k_dot(&q, &f, 4, &[]),
            vec![(1, 3.0), (3, 3.0), (5, 3.0), (2, 2.0)]
        );
        // Same result whatever the input order (heap replacement respects the tie rule).
        let rev: Vec<(u32, f32)> = (0..6u32)
            .rev()
            .map(|i| (i, dot(&q, f.row(i as usize))))
            .collect();
        assert_eq!(
            top_k_scores(rev.into_iter(), 2, &Eligible::default()),
            vec![(1, 3.0), (3, 3.0)]
        );
        // -0.0 and 0.0 tie.
        assert_eq!(
            top_k_scores([(4, 0.0), (2, -0.0)].into_iter(), 1, &Eligible::default()),
            vec![(2, -0.0)]
        );
        // NaN ranks last.
        assert_eq!(
            top_k_scores(
                [(0, f32::NAN), (1, -5.0), (2, 1.0)].into_iter(),
                3,
                &Eligible::default()
            )
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
            vec![2, 1, 0]
        );
    }

    #[test]
    fn exclusion_and_k_bounds() {
        let f = items(&[&[1.0], &[4.0], &[2.0], &[3.0]]);
        assert_eq!(top_k_dot(&[1.0], &f, 2, &[1, 3]), vec![(2, 2.0), (0, 1.0)]);
        assert_eq!(
            top_k_dot(&[1.0], &f, 10, &[]),
            vec![(1, 4.0), (3, 3.0), (2, 2.0), (0, 1.0)]
        );
        assert_eq!(top_k_dot(&[1.0], &f, 10, &[0, 1, 2]), vec![(3, 3.0)]);
        assert!(top_k_dot(&[1.0], &f, 0, &[]).is_empty());
        assert!(top_k_dot(&[1.0], &f, 5, &[0, 1, 2, 3]).is_empty());
        assert!(top_k_dot(&[1.0, 2.0], &f, 5, &[]).is_empty());
        assert_eq!(
            top_k_scores(
                [(7, 1.0), (9, 2.0)].into_iter(),
                usize::MAX,
                &Eligible::default()
            ),
            vec![(9, 2.0), (7, 1.0)]
        );
    }

    #[test]
    fn large_random_matches_full_sort() {
        let mut s = 1u64;
        let scores: Vec<(u32, f32)> = (0..2000u32)
            .map(|i| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (i, ((s >> 40) % 50) as f32) // many ties
            })
            .collect();
        let exclude: Vec<u32> = (0..2000).step_by(7).collect();
        let mut full: Vec<(u32, f32)> = scores
            .iter()
            .copied()
            .filter(|p| exclude.binary_search(&p.0).is_err())
            .collect();
        full.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
        full.truncate(37);
        assert_eq!(
            top_k_scores(scores.into_iter(), 37, &Eligible::excluding(&exclude)),
            full
        );
    }

    #[test]
    fn blocked_scan_matches_full_sort_across_blocks() {
        // More rows than several blocks, ties on purpose (duplicated rows), exclusions
        // on both sides of block boundaries.
        let mut f = Factors::random(3 * BLOCK + 77, 9, 3, 0);
        for r in (0..f.rows).step_by(5) {
            let copy = f.row(r % 97).to_vec();
            f.row_mut(r).copy_from_slice(&copy);
        }
        let q: Vec<f32> = Factors::random(1, 9, 4, 1).data;
        let exclude: Vec<u32> = (0..f.rows as u32)
            .filter(|i| i % 11 == 3 || (*i as usize).is_multiple_of(BLOCK))
            .collect();
        let mut full: Vec<(u32, f32)> = (0..f.rows)
            .map(|i| (i as u32, crate::model::kernels::dot(&q, f.row(i))))
            .filter(|p| exclude.binary_search(&p.0).is_err())
            .collect();
        full.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
        for k in [1, 10, 100, 5000] {
            let want: Vec<(u32, f32)> = full.iter().copied().take(k).collect();
            assert_eq!(top_k_dot(&q, &f, k, &exclude), want, "k {k}");
        }
        // Cosine across blocks equals the brute force too.
        let n = norms(&f);
        let of = BLOCK + 3;
        let mut cos: Vec<(u32, f32)> = (0..f.rows)
            .filter(|&i| i != of)
            .map(|i| {
                (
                    i as u32,
                    crate::model::kernels::dot(f.row(of), f.row(i)) / (n[of] * n[i]),
                )
            })
            .collect();
        cos.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
        cos.truncate(20);
        assert_eq!(top_k_cosine(&f, &n, of, 20), cos);
    }

    /// Both first passes over `f`: the 8-bit one (its VNNI kernel where the CPU has one,
    /// else the portable loop) and the half-precision one.
    fn first_passes(f: &Factors) -> (Int8Factors, HalfFactors, Vec<f32>) {
        (
            Int8Factors::from_f32(f).unwrap(),
            HalfFactors::from_f32(f).unwrap(),
            norms(f),
        )
    }

    #[test]
    fn quantised_first_passes_give_the_f32_result() {
        // Near-ties on purpose: many items are small perturbations of a few vectors, so
        // f16 or 8-bit rounding alone would reorder them; the rescoring must not.
        for (seed, dim) in [(1u64, 64usize), (2, 17), (3, 8), (4, 3)] {
            let base = Factors::random(7, dim, seed, 0);
            let noise = Factors::random(3000, dim, seed, 1);
            let mut f = Factors::zeros(3000, dim);
            for r in 0..3000 {
                for c in 0..dim {
                    f.row_mut(r)[c] = base.row(r % 7)[c] * 100.0 + noise.row(r)[c] * 1e-3 - 0.4;
                }
            }
            f.row_mut(5).fill(0.0); // a zero vector (bound 0)
            let (int8, half, n) = first_passes(&f);
            let q: Vec<f32> = Factors::random(1, dim, seed, 2)
                .data
                .iter()
                .map(|v| v * 10.0 - 0.05)
                .collect();
            let exclude: Vec<u32> = (0..3000).step_by(13).collect();
            for first in [FirstPass::Int8(&int8), FirstPass::Half(&half, &n)] {
                for k in [1, 10, 50, 3000] {
                    assert_eq!(
                        top_k_dot_bounded(&q, &f, &first, k, &Eligible::excluding(&exclude)),
                        top_k_dot(&q, &f, k, &exclude),
                        "dim {dim} k {k}"
                    );
                }
                assert!(top_k_dot_bounded(&q, &f, &first, 0, &Eligible::default()).is_empty());
                // Queries the bound cannot handle fall back to the f32 scan (NaN scores:
                // compare the items).
                let ids = |r: Vec<(u32, f32)>| r.into_iter().map(|p| p.0).collect::<Vec<_>>();
                let mut bad = q.clone();
                bad[0] = f32::NAN;
                assert_eq!(
                    ids(top_k_dot_bounded(&bad, &f, &first, 3, &Eligible::default())),
                    ids(top_k_dot(&bad, &f, 3, &[]))
                );
                for odd in [vec![0.0; dim], vec![1e30; dim]] {
                    assert_eq!(
                        top_k_dot_bounded(&odd, &f, &first, 4, &Eligible::excluding(&exclude)),
                        top_k_dot(&odd, &f, 4, &exclude)
                    );
                }
            }
        }
    }

    #[test]
    fn cosine_first_pass_gives_the_f32_result() {
        // Near-duplicates (ties and near-ties of the cosine), rows scaled apart by large
        // factors (same cosine, different dot), zero rows and a tiny row.
        for (seed, dim) in [(5u64, 64usize), (6, 17), (7, 3)] {
            let base = Factors::random(9, dim, seed, 0);
            let noise = Factors::random(2500, dim, seed, 1);
            let mut f = Factors::zeros(2500, dim);
            for r in 0..2500 {
                let scale = [1.0, 1e-3, 40.0][r % 3];
                for c in 0..dim {
                    f.row_mut(r)[c] = (base.row(r % 9)[c] - 0.5 + noise.row(r)[c] * 1e-4) * scale;
                }
            }
            f.row_mut(7).fill(0.0);
            f.row_mut(8).fill(0.0);
            let int8 = Int8Factors::from_f32(&f).unwrap();
            let n = norms(&f);
            for of in [0, 1, 7, 100, 2499] {
                for k in [1, 10, 60, 2500] {
                    assert_eq!(
                        top_k_cosine_bounded(&f, &n, &int8, of, k),
                        top_k_cosine(&f, &n, of, k),
                        "dim {dim} of {of} k {k}"
                    );
                }
            }
            // A row below the norm floor: the f32 scan is used, same answer.
            f.row_mut(9).fill(1e-20);
            let int8 = Int8Factors::from_f32(&f).unwrap();
            let n = norms(&f);
            assert_eq!(
                top_k_cosine_bounded(&f, &n, &int8, 9, 5),
                top_k_cosine(&f, &n, 9, 5)
            );
            assert_eq!(
                top_k_cosine_bounded(&f, &n, &int8, 3, 5),
                top_k_cosine(&f, &n, 3, 5)
            );
        }
    }

    #[test]
    fn two_worker_scan_gives_the_same_result() {
        let f = Factors::random(PARALLEL_ROWS + 3 * BLOCK + 5, 4, 11, 0);
        let (int8, half, n) = first_passes(&f);
        let q = [0.3f32, -0.2, 0.9, 0.1];
        let exclude: Vec<u32> = (0..f.rows as u32).step_by(3).collect();
        for first in [FirstPass::Int8(&int8), FirstPass::Half(&half, &n)] {
            for k in [1, 10, 100] {
                assert_eq!(
                    top_k_dot_bounded(&q, &f, &first, k, &Eligible::excluding(&exclude)),
                    top_k_dot(&q, &f, k, &exclude)
                );
            }
        }
    }

    #[test]
    fn cosine_excludes_self_and_handles_zero_norm() {
        let f = items(&[
            &[1.0, 0.0],
            &[2.0, 0.1],
            &[0.0, 0.0],
            &[0.0, 3.0],
            &[-1.0, 0.0],
        ]);
        let n = norms(&f);
        assert!((n[3] - 3.0).abs() < 1e-6 && n[2] == 0.0);
        let r = top_k_cosine(&f, &n, 0, 10);
        assert_eq!(r.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert!((r[0].1 - 2.0 / (4.01f32).sqrt()).abs() < 1e-6);
        assert_eq!((r[1].1, r[2].1), (0.0, 0.0)); // zero vector, orthogonal vector
        assert!((r[3].1 + 1.0).abs() < 1e-6);
        assert!(top_k_cosine(&f, &n, 2, 10)
            .iter()
            .all(|p| p.1 == 0.0 && p.0 != 2));
        assert!(top_k_cosine(&f, &n, 9, 3).is_empty());
        // Item 4 = (-1, 0): the zero vector and the orthogonal one tie at 0, lower index wins.
        assert_eq!(top_k_cosine(&f, &n, 4, 1), vec![(2, 0.0)]);
    }

    #[test]
    fn allow_lists_give_the_restricted_ranking_on_every_path() {
        let f = Factors::random(3000, 24, 11, 0);
        let (int8, half, norms) = first_passes(&f);
        let q: Vec<f32> = f.row(7).iter().map(|v| v * 3.0).collect();
        let exclude: Vec<u32> = (0..3000).step_by(11).collect();
        for allow in [
            (0..3000).filter(|i| i % 4 != 1).collect::<Vec<u32>>(), // scanned
            (0..3000).step_by(37).collect(),                        // scored one by one
            vec![2, 999, 2998],
            vec![],
        ] {
            let set: std::collections::HashSet<u32> = allow.iter().copied().collect();
            let eligible = Eligible::new(&exclude, Some(&allow));
            for k in [1, 5, 40] {
                let want: Vec<(u32, f32)> = top_k_dot(&q, &f, 3000, &exclude)
                    .into_iter()
                    .filter(|p| set.contains(&p.0))
                    .take(k)
                    .collect();
                assert_eq!(top_k_dot_among(&q, &f, k, &eligible), want, "k {k}");
                for first in [FirstPass::Int8(&int8), FirstPass::Half(&half, &norms)] {
                    assert_eq!(
                        top_k_dot_bounded(&q, &f, &first, k, &eligible),
                        want,
                        "k {k}"
                    );
                }
                let mut without_self = exclude.clone();
                if let Err(at) = without_self.binary_search(&7) {
                    without_self.insert(at, 7);
                }
                let cos = Eligible::new(&without_self, Some(&allow));
                let want: Vec<(u32, f32)> = top_k_cosine(&f, &norms, 7, 3000)
                    .into_iter()
                    .filter(|p| set.contains(&p.0) && exclude.binary_search(&p.0).is_err())
                    .take(k)
                    .collect();
                assert_eq!(
                    top_k_cosine_among(&f, &norms, 7, k, &cos),
                    want,
                    "cosine k {k}"
                );
                assert_eq!(
                    top_k_cosine_bounded_among(&f, &norms, &int8, 7, k, &cos),
                    want,
                    "cosine bounded k {k}"
                );
            }
        }
    }

    #[test]
    fn cosine_to_an_outside_query_ranks_as_a_row_would() {
        let f = items(&[
            &[1.0, 0.0],
            &[2.0, 0.1],
            &[0.0, 0.0],
            &[0.0, 3.0],
            &[-1.0, 0.0],
            &[4.0, 0.0],
        ]);
        let n = norms(&f);
        // A row as the query: exactly top_k_cosine (same bits).
        for of in 0..f.rows {
            let q = f.row(of);
            assert_eq!(
                top_k_cosine_to(q, norm(q), &f, &n, 10, &[of as u32]),
                top_k_cosine(&f, &n, of, 10)
            );
        }
        // A query that is no row: rows 0 and 5 are both at cosine 1 (lower index first),
        // nothing is left out unless asked.
        let q = [0.5, 0.0];
        let r = top_k_cosine_to(&q, norm(&q), &f, &n, 3, &[]);
        assert_eq!(r.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 5, 1]);
        assert_eq!((r[0].1, r[1].1), (1.0, 1.0));
        let r = top_k_cosine_to(&q, norm(&q), &f, &n, 2, &[0]);
        assert_eq!(r.iter().map(|p| p.0).collect::<Vec<_>>(), vec![5, 1]);
        assert!(top_k_cosine_to(&[1.0], 1.0, &f, &n, 3, &[]).is_empty());
        assert!(top_k_cosine_to(&q, norm(&q), &f, &n[..2], 3, &[]).is_empty());
    }
}
