//! The half-precision catalogue scan of large catalogues (see
//! [`crate::model::topk::top_k_dot_half`]): f16 copies of the item factors, and the dot
//! product of one f32 query with every f16 row, widened exactly to f32 on the fly
//! (`vcvtph2ps`). The f32 scan is [`kernels::dot_rows`].
//!
//! The result of this pass only selects candidates (within a proven error bound), so
//! its summation order is free: the kernels use fused multiply-adds where the CPU has
//! them, with the level chosen by [`kernels::level`] (plus F16C for AVX2).

use super::factors::Factors;
use super::kernels::{self, Level};

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

/// `out[i] = query · (row i of data)` over half-precision rows of `query.len()` values,
/// for as many rows as both `data` and `out` hold; each element widened to f32 exactly,
/// products accumulated in f32.
pub fn dot_rows_half(query: &[f32], data: &[u16], out: &mut [f32]) {
    if query.is_empty() {
        return;
    }
    match kernels::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` returns Avx512 only when AVX-512F was detected.
        Level::Avx512 => unsafe { dot_half_avx512(query, data, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` returns Avx2 only when AVX2 and FMA were detected; F16C is
        // checked here.
        Level::Avx2 if std::arch::is_x86_feature_detected!("f16c") => unsafe {
            dot_half_avx2(query, data, out)
        },
        _ => dot_half_loop(query, data, out),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::factors::dot_f64;

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
}
