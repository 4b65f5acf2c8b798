//! Catalogue scans for serving: the dot product of one query vector with every row of a
//! factor matrix, written to a score buffer.
//!
//! This is the inner loop of `recommend` and `similar_items`: one pass over the whole
//! item matrix per call, so it runs at memory speed only if each row costs a few vector
//! instructions. A per-row call into a generic dot product (dispatch, no inlining, a
//! horizontal sum per call) costs several times that at 64 factors. Here the loop over
//! rows is written once per instruction set with `std::arch` intrinsics (AVX-512F,
//! AVX2+FMA; LLVM's auto-vectoriser only used 2-lane registers for the portable loop)
//! plus the portable loop for other CPUs, chosen at run time with
//! `is_x86_feature_detected!` (cached by std after the first call).
//!
//! Scores are used to rank, not stored: the AVX variants use fused multiply-add and the
//! baseline does not, so the last bit of a score can differ between CPU families (as
//! with any SIMD dot product); on one machine the result is always the same.

use super::factors::Factors;

/// Lanes of the portable loop's accumulators.
const LANES: usize = 16;

/// `out[i] = query · items.row(i)` for every row (`out` is resized to `items.rows`).
/// A query whose length is not `items.dim` gives all zeros.
pub fn dot_all(query: &[f32], items: &Factors, out: &mut Vec<f32>) {
    out.clear();
    out.resize(items.rows, 0.0);
    if query.len() == items.dim {
        dot_rows(query, &items.data, out);
    }
}

/// `out[i] = query · (row i of data)`, rows of `query.len()` floats, for as many rows as
/// both `data` and `out` hold. Nothing is written when `query` is empty.
pub fn dot_rows(query: &[f32], data: &[f32], out: &mut [f32]) {
    if query.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above), the only
            // requirement of this target_feature function; it has no other unsafety.
            unsafe { dot_all_avx512(query, data, out) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { dot_all_avx2(query, data, out) };
            return;
        }
    }
    dot_all_rows::<false>(query, data, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_all_avx512(query: &[f32], data: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let dim = query.len();
    let full = dim / 16;
    let rest = dim % 16;
    // Lanes of the last, partial chunk (`rest` < 16, so the shift cannot overflow).
    let tail_mask: __mmask16 = ((1u32 << rest) - 1) as __mmask16;
    for (row, o) in data.chunks_exact(dim).zip(out.iter_mut()) {
        let mut acc = _mm512_setzero_ps();
        for c in 0..full {
            // SAFETY: c * 16 + 16 <= full * 16 <= dim = query.len() = row.len(), so
            // both unaligned 16-float loads read inside their slices.
            let q = _mm512_loadu_ps(query.as_ptr().add(c * 16));
            let r = _mm512_loadu_ps(row.as_ptr().add(c * 16));
            acc = _mm512_fmadd_ps(q, r, acc);
        }
        if rest > 0 {
            // SAFETY: a masked load touches only the `rest` lanes its mask selects,
            // elements full * 16 .. dim of each slice (masked-off lanes are not read
            // and cannot fault).
            let q = _mm512_maskz_loadu_ps(tail_mask, query.as_ptr().add(full * 16));
            let r = _mm512_maskz_loadu_ps(tail_mask, row.as_ptr().add(full * 16));
            acc = _mm512_fmadd_ps(q, r, acc);
        }
        *o = _mm512_reduce_add_ps(acc);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_all_avx2(query: &[f32], data: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let dim = query.len();
    let full = dim / 8;
    let split = full * 8;
    for (row, o) in data.chunks_exact(dim).zip(out.iter_mut()) {
        // Two accumulators so consecutive FMAs do not wait on each other.
        let mut acc = [_mm256_setzero_ps(), _mm256_setzero_ps()];
        for c in 0..full {
            // SAFETY: c * 8 + 8 <= full * 8 <= dim = query.len() = row.len(): both
            // unaligned 8-float loads read inside their slices.
            let q = _mm256_loadu_ps(query.as_ptr().add(c * 8));
            let r = _mm256_loadu_ps(row.as_ptr().add(c * 8));
            acc[c & 1] = _mm256_fmadd_ps(q, r, acc[c & 1]);
        }
        let mut total = hsum_avx(_mm256_add_ps(acc[0], acc[1]));
        for (q, r) in query[split..].iter().zip(&row[split..]) {
            total = q.mul_add(*r, total);
        }
        *o = total;
    }
}

/// Item factors rounded to IEEE half precision (bit patterns), scanned first to read
/// half the bytes of the f32 matrix; see [`crate::model::topk::top_k_dot_half`] for how
/// the ranking stays exactly that of the f32 factors.
#[derive(Clone, Debug)]
pub struct HalfFactors {
    pub rows: usize,
    pub dim: usize,
    pub data: Vec<u16>,
}

/// Largest magnitude stored in half precision (f16's maximum is 65504).
pub const HALF_LIMIT: f32 = 60000.0;

impl HalfFactors {
    /// None when a value is not finite or beyond [`HALF_LIMIT`] (the f32 scan is used then).
    pub fn from_f32(f: &Factors) -> Option<Self> {
        if !f
            .data
            .iter()
            .all(|v| v.is_finite() && v.abs() <= HALF_LIMIT)
        {
            return None;
        }
        Some(HalfFactors {
            rows: f.rows,
            dim: f.dim,
            data: f
                .data
                .iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect(),
        })
    }
}

/// [`dot_rows`] over half-precision rows: `out[i] = query · (row i of data)`, each
/// element widened to f32 exactly, products accumulated in f32.
pub fn dot_rows_half(query: &[f32], data: &[u16], out: &mut [f32]) {
    if query.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { dot_half_avx512(query, data, out) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU supports AVX2, FMA and F16C (checked just above).
            unsafe { dot_half_avx2(query, data, out) };
            return;
        }
    }
    dot_half_loop(query, data, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_half_avx512(query: &[f32], data: &[u16], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let dim = query.len();
    let full = dim / 16;
    let split = full * 16;
    for (row, o) in data.chunks_exact(dim).zip(out.iter_mut()) {
        let mut acc = _mm512_setzero_ps();
        for c in 0..full {
            // SAFETY: c * 16 + 16 <= split <= dim = query.len() = row.len(): the 16-float
            // load and the 16-half (32-byte) load read inside their slices.
            let q = _mm512_loadu_ps(query.as_ptr().add(c * 16));
            let h = _mm256_loadu_si256(row.as_ptr().add(c * 16).cast());
            acc = _mm512_fmadd_ps(q, _mm512_cvtph_ps(h), acc);
        }
        let mut total = _mm512_reduce_add_ps(acc);
        for (q, &h) in query[split..].iter().zip(&row[split..]) {
            total = q.mul_add(half::f16::from_bits(h).to_f32(), total);
        }
        *o = total;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_half_avx2(query: &[f32], data: &[u16], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let dim = query.len();
    let full = dim / 8;
    let split = full * 8;
    for (row, o) in data.chunks_exact(dim).zip(out.iter_mut()) {
        let mut acc = [_mm256_setzero_ps(), _mm256_setzero_ps()];
        for c in 0..full {
            // SAFETY: c * 8 + 8 <= split <= dim = query.len() = row.len(): the 8-float
            // load and the 8-half (16-byte) load read inside their slices.
            let q = _mm256_loadu_ps(query.as_ptr().add(c * 8));
            let h = _mm_loadu_si128(row.as_ptr().add(c * 8).cast());
            acc[c & 1] = _mm256_fmadd_ps(q, _mm256_cvtph_ps(h), acc[c & 1]);
        }
        let mut total = hsum_avx(_mm256_add_ps(acc[0], acc[1]));
        for (q, &h) in query[split..].iter().zip(&row[split..]) {
            total = q.mul_add(half::f16::from_bits(h).to_f32(), total);
        }
        *o = total;
    }
}

/// The sum of the 8 lanes of `v` (pairwise: halves, then pairs, then the last two).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
unsafe fn hsum_avx(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
    _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps::<0b01>(pairs, pairs)))
}

fn dot_half_loop(query: &[f32], data: &[u16], out: &mut [f32]) {
    let dim = query.len();
    for (row, o) in data.chunks_exact(dim).zip(out.iter_mut()) {
        let mut total = 0.0f32;
        for (q, &h) in query.iter().zip(row) {
            total += q * half::f16::from_bits(h).to_f32();
        }
        *o = total;
    }
}

/// The portable loop. `FMA` selects `mul_add` (one instruction where the target has
/// FMA; a slow library call where it does not, hence plain multiply-add on the
/// baseline; the tests use both).
#[inline(always)]
fn dot_all_rows<const FMA: bool>(query: &[f32], data: &[f32], out: &mut [f32]) {
    let dim = query.len();
    let split = dim - dim % LANES;
    let (q_body, q_tail) = query.split_at(split);
    for (row, o) in data.chunks_exact(dim).zip(out.iter_mut()) {
        let (r_body, r_tail) = row.split_at(split);
        let mut acc = [0.0f32; LANES];
        for (q, r) in q_body.chunks_exact(LANES).zip(r_body.chunks_exact(LANES)) {
            for l in 0..LANES {
                acc[l] = if FMA {
                    q[l].mul_add(r[l], acc[l])
                } else {
                    acc[l] + q[l] * r[l]
                };
            }
        }
        let mut tail = 0.0f32;
        for (q, r) in q_tail.iter().zip(r_tail) {
            tail = if FMA {
                q.mul_add(*r, tail)
            } else {
                tail + q * r
            };
        }
        *o = reduce(&acc) + tail;
    }
}

/// Pairwise sum of the lanes in a fixed order.
#[inline(always)]
fn reduce(acc: &[f32; LANES]) -> f32 {
    let mut half = [0.0f32; 8];
    for l in 0..8 {
        half[l] = acc[l] + acc[l + 8];
    }
    let q = [
        half[0] + half[4],
        half[1] + half[5],
        half[2] + half[6],
        half[3] + half[7],
    ];
    (q[0] + q[2]) + (q[1] + q[3])
}

/// The score [`dot_rows`] gives one row (for tests that compare against brute force).
#[cfg(test)]
pub(crate) fn tests_dot(query: &[f32], row: &[f32]) -> f32 {
    let mut out = [0.0f32];
    dot_rows(query, row, &mut out);
    out[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::factors::dot_f64;

    #[test]
    fn matches_f64_dot_for_many_dims() {
        for dim in [1, 3, 15, 16, 17, 32, 64, 65, 100] {
            let items = Factors::random(37, dim, 7, 0);
            let q: Vec<f32> = Factors::random(1, dim, 8, 1)
                .data
                .iter()
                .map(|v| v * 100.0 - 0.5)
                .collect();
            let mut out = Vec::new();
            dot_all(&q, &items, &mut out);
            assert_eq!(out.len(), 37);
            for (i, &s) in out.iter().enumerate() {
                let exact = dot_f64(&q, items.row(i));
                assert!(
                    (s as f64 - exact).abs() <= 1e-5 * (1.0 + exact.abs()),
                    "dim {dim} row {i}: {s} vs {exact}"
                );
            }
            // Every variant this CPU can run agrees to rounding.
            let mut variants: Vec<Vec<f32>> = Vec::new();
            for fma in [false, true] {
                let mut v = vec![0.0; 37];
                if fma {
                    dot_all_rows::<true>(&q, &items.data, &mut v);
                } else {
                    dot_all_rows::<false>(&q, &items.data, &mut v);
                }
                variants.push(v);
            }
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    let mut v = vec![0.0; 37];
                    // SAFETY: AVX2 and FMA checked just above.
                    unsafe { dot_all_avx2(&q, &items.data, &mut v) };
                    variants.push(v);
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    let mut v = vec![0.0; 37];
                    // SAFETY: AVX-512F checked just above.
                    unsafe { dot_all_avx512(&q, &items.data, &mut v) };
                    variants.push(v);
                }
            }
            for v in &variants {
                for (a, b) in out.iter().zip(v) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                        "dim {dim}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn half_scan_is_within_its_error_bound() {
        for dim in [1, 7, 16, 24, 64, 70] {
            let mut items = Factors::random(53, dim, 9, 0);
            items
                .data
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = (*v * 300.0 - 1.0) * if i % 7 == 0 { 1e-6 } else { 1.0 });
            let half = HalfFactors::from_f32(&items).unwrap();
            let q: Vec<f32> = Factors::random(1, dim, 10, 1)
                .data
                .iter()
                .map(|v| v * 50.0 - 0.2)
                .collect();
            let mut approx = vec![0.0; 53];
            dot_rows_half(&q, &half.data, &mut approx);
            let mut plain = vec![0.0; 53];
            dot_half_loop(&q, &half.data, &mut plain);
            let qn = dot_f64(&q, &q).sqrt();
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                let mut v = vec![0.0; 53];
                // SAFETY: AVX2, FMA and F16C checked just above.
                unsafe { dot_half_avx2(&q, &half.data, &mut v) };
                for (a, b) in v.iter().zip(&approx) {
                    assert!(
                        (a - b).abs() as f64 <= 1e-5 * (1.0 + qn * 300.0 * (dim as f64).sqrt()),
                        "dim {dim}: avx2 {a} vs {b}"
                    );
                }
            }
            for i in 0..53 {
                let exact = dot_f64(&q, items.row(i));
                let yn = dot_f64(items.row(i), items.row(i)).sqrt();
                let bound = 2f64.powi(-11) * qn * yn
                    + 2f64.powi(-24) * q.iter().map(|v| v.abs() as f64).sum::<f64>()
                    + 1e-5 * qn * yn;
                assert!(
                    (approx[i] as f64 - exact).abs() <= bound,
                    "dim {dim} row {i}"
                );
                assert!((plain[i] - approx[i]).abs() as f64 <= 1e-5 * (1.0 + qn * yn));
            }
        }
        let mut big = Factors::random(2, 4, 1, 0);
        big.data[3] = 70000.0;
        assert!(HalfFactors::from_f32(&big).is_none());
        big.data[3] = f32::NAN;
        assert!(HalfFactors::from_f32(&big).is_none());
    }

    #[test]
    fn wrong_query_length_gives_zeros() {
        let items = Factors::random(4, 8, 1, 0);
        let mut out = vec![9.0; 2];
        dot_all(&[1.0; 7], &items, &mut out);
        assert_eq!(out, vec![0.0; 4]);
    }
}
