//! First passes of the catalogue scan of [`crate::model::topk::top_k_dot_bounded`]: copies
//! of the item factors that are cheaper to read than f32, each scored with a proven
//! error bound so that exact f32 rescoring of the candidates gives the f32 ranking.
//!
//! - [`Int8Factors`]: 8-bit rows (a quarter of the f32 bytes), scored with the AVX-512
//!   VNNI byte dot product (`vpdpbusd`, 64 byte products per instruction) in blocks of
//!   16 rows laid out so that one instruction serves 16 rows and no horizontal sum is
//!   needed; a portable loop computes the same integers elsewhere.
//! - [`HalfFactors`]: IEEE half precision (half the f32 bytes), widened exactly to f32
//!   on the fly (`vcvtph2ps`), for CPUs without VNNI.
//!
//! The result of a first pass only selects candidates (within its bound), so its
//! summation order is free. The f32 scan is [`kernels::dot_rows`].

// The quantising arithmetic stays as written (the error bounds are proven for it):
// - `as` casts: float widths and quantised values clamped to the target range before the
//   cast (`clamp(-127.0, 127.0)`, `q + 128` in 1..=255, byte reinterpretation of the
//   query bytes), row indices below `rows` (the u32 index space of `topk`);
// - `use std::arch::x86_64::*` in the SIMD bodies: the intrinsics, by their Intel names.
#![allow(
    clippy::cast_lossless,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::wildcard_imports
)]

use super::factors::{dot, Factors};
use super::kernels::{self, Level};

/// Item factors rounded to IEEE half precision (bit patterns), scanned first to read
/// half the bytes of the f32 matrix; see [`crate::model::topk::top_k_dot_bounded`] for how
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
            dot_half_avx2(query, data, out);
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
            let (q, h) = unsafe {
                (
                    _mm512_loadu_ps(query.as_ptr().add(c * 16)),
                    _mm256_loadu_si256(row.as_ptr().add(c * 16).cast()),
                )
            };
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
            let (q, h) = unsafe {
                (
                    _mm256_loadu_ps(query.as_ptr().add(c * 8)),
                    _mm_loadu_si128(row.as_ptr().add(c * 8).cast()),
                )
            };
            acc[c & 1] = _mm256_fmadd_ps(q, _mm256_cvtph_ps(h), acc[c & 1]);
        }
        // SAFETY: this function's features (AVX2) include AVX, all `hsum_avx` needs.
        let mut total = unsafe { hsum_avx(_mm256_add_ps(acc[0], acc[1])) };
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

/// Rows per block of the 8-bit layout: one 512-bit register of 32-bit sums.
pub const INT8_BLOCK: usize = 16;

/// Item factors quantised per row to 8 bits: row `i` is approximated by `scale[i] · q`
/// with `q` integers in [-127, 127] and `scale[i] = max |y_ij| / 127`.
///
/// Layout (what `vpdpbusd` wants): rows in blocks of [`INT8_BLOCK`], factors in groups
/// of 4; block `b`, group `g` is 64 contiguous bytes, 4 per row of the block (row `r`
/// at bytes `4r..4r+4`, factors `4g..4g+4`). Bytes hold `q + 128` (unsigned, as the
/// instruction's first operand must be); padding (factors beyond `dim`, rows beyond
/// `rows`) holds 128, that is 0.
#[derive(Clone, Debug)]
pub struct Int8Factors {
    pub rows: usize,
    pub dim: usize,
    groups: usize,
    data: Vec<u8>,
    /// Per row (padded to whole blocks with 0).
    scale: Vec<f32>,
    /// Per row: an upper bound of the L1 norm of the f32 row (padded with 0).
    l1: Vec<f32>,
    /// Per row: 1 / the row's L2 norm as [`crate::model::topk::norms`] computes it, 0
    /// for a zero row (padded with 0); for cosine scores.
    inv_norm: Vec<f32>,
    /// Whether every nonzero row norm is at least [`NORM_FLOOR`] (cosine scans need it).
    norms_ok: bool,
    max_scale: f32,
    max_l1: f32,
}

/// Smallest norm a cosine scan's bound handles (smaller nonzero norms make the f32
/// cosine itself lose precision; the f32 scan is used then).
const NORM_FLOOR: f32 = 1e-15;

/// Slack kept in every rounding argument below: `|y/s − round(y/s)| ≤ 1/2 + 2⁻¹⁷`
/// (f32 division is within 2⁻²⁴ relative of `y/s`, and `|y/s| ≤ 127·(1 + 2⁻²³)`).
const HALF_STEP: f32 = 0.5 + 1.0 / 131_072.0;

impl Int8Factors {
    /// None when a value is not finite or the matrix is empty (the f32 scan is used).
    pub fn from_f32(f: &Factors) -> Option<Self> {
        if f.rows == 0 || f.dim == 0 || !f.data.iter().all(|v| v.is_finite()) {
            return None;
        }
        let groups = f.dim.div_ceil(4);
        let blocks = f.rows.div_ceil(INT8_BLOCK);
        let mut data = vec![128u8; blocks * groups * 64];
        let mut scale = vec![0.0f32; blocks * INT8_BLOCK];
        let mut l1 = vec![0.0f32; blocks * INT8_BLOCK];
        let mut inv_norm = vec![0.0f32; blocks * INT8_BLOCK];
        let mut norms_ok = true;
        for i in 0..f.rows {
            let row = f.row(i);
            let norm = dot(row, row).sqrt();
            if norm > 0.0 {
                inv_norm[i] = 1.0 / norm;
                norms_ok &= norm >= NORM_FLOOR && inv_norm[i].is_finite();
            }
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let s = max / 127.0;
            scale[i] = s;
            // Rounded up a little so that the f32 value bounds the exact sum.
            l1[i] = (row.iter().map(|v| v.abs() as f64).sum::<f64>() * (1.0 + 1e-6)) as f32;
            let (b, r) = (i / INT8_BLOCK, i % INT8_BLOCK);
            for (j, &v) in row.iter().enumerate() {
                let q = if s > 0.0 {
                    (v / s).round().clamp(-127.0, 127.0) as i32
                } else {
                    0
                };
                data[(b * groups + j / 4) * 64 + r * 4 + j % 4] = (q + 128) as u8;
            }
        }
        Some(Int8Factors {
            rows: f.rows,
            dim: f.dim,
            groups,
            data,
            inv_norm,
            norms_ok,
            max_scale: scale.iter().fold(0.0, |m, &v| m.max(v)),
            max_l1: l1.iter().fold(0.0, |m, &v| m.max(v)),
            scale,
            l1,
        })
    }
}

/// A query quantised for [`int8_candidates`]: `x ≈ t · x̂` with `x̂` in [-127, 127], and
/// the constants of the error bound.
///
/// The bound. With `y = s·q + e_y`, `x = t·x̂ + e_x`, `|e_y| ≤ h·s`, `|e_x| ≤ h·t`
/// elementwise (`h` = `HALF_STEP`):
/// `x·y − t·s·(x̂·q) = (t·x̂)·e_y + e_x·y`, so
/// `|x·y − t·s·(x̂·q)| ≤ h·s·(|x|₁ + d·h·t) + h·t·|y|₁`. The f32 kernel's score is within
/// `(d+2)·2⁻²⁴·Σ|x_j·y_j| ≤ (d+2)·2⁻²⁴·|x|₁·127·s` of `x·y`, and the approximate score
/// `a = fl(fl(t·s)·(x̂·q))` (the integer sum is exact and below 2²⁴ in magnitude) within
/// `2·2⁻²⁴·|t·s·(x̂·q)| ≤ 2·2⁻²⁴·127·s·(|x|₁ + d·t)` of `t·s·(x̂·q)`. Their sum is at
/// most `C_s·s + C_l·|y|₁` with the constants below halved; the factor 2 covers the
/// rounding of the constants, of `|y|₁` and of `a + B` in f32.
pub struct Int8Query {
    /// `x̂` packed 4 bytes per 32-bit word (the group broadcast to `vpdpbusd`), padded
    /// with zeros to the groups of the items.
    words: Vec<i32>,
    /// `128 · Σ x̂`: what the +128 offset of the item bytes adds to every sum.
    offset: i32,
    t: f32,
    c_scale: f32,
    c_l1: f32,
    /// For cosine scores: 1 / the query's norm.
    cosine: Option<f32>,
}

impl Int8Query {
    /// None for a query of the wrong length, with a value that is not finite, all zeros,
    /// or so large that a score or bound could overflow f32 (the f32 scan handles those).
    pub fn new(query: &[f32], items: &Int8Factors) -> Option<Self> {
        if query.len() != items.dim || !query.iter().all(|v| v.is_finite()) {
            return None;
        }
        let max = query.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let t = max / 127.0;
        if t == 0.0 || !t.is_normal() {
            return None;
        }
        let mut bytes = vec![0i8; items.groups * 4];
        for (b, &v) in bytes.iter_mut().zip(query) {
            *b = (v / t).round().clamp(-127.0, 127.0) as i8;
        }
        let offset = 128 * bytes.iter().map(|&b| b as i32).sum::<i32>();
        let words = bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]))
            .collect();
        let d = items.dim as f32;
        let x1 = (query.iter().map(|v| v.abs() as f64).sum::<f64>() * (1.0 + 1e-6)) as f32;
        let eps = 2f32.powi(-24);
        let h = HALF_STEP;
        let c_scale = 2.0 * (h * (x1 + d * h * t) + (d + 4.0) * eps * 127.0 * (x1 + d * t));
        let c_l1 = 2.0 * h * t;
        // |a| <= t·s·127·127·d and B <= C_s·s + C_l·|y|₁: both far inside f32's range.
        let largest = f64::from(t) * f64::from(items.max_scale) * 16129.0 * f64::from(d)
            + f64::from(c_scale) * f64::from(items.max_scale)
            + f64::from(c_l1) * f64::from(items.max_l1);
        if largest.is_nan() || largest >= 1e36 {
            return None;
        }
        Some(Int8Query {
            words,
            offset,
            t,
            c_scale,
            c_l1,
            cosine: None,
        })
    }

    /// A query for cosine scores `fl(x·y / fl(|x|·|y|))` (0 for a zero row) where
    /// `norm` is `|x|`: the approximate cosine is `a' = a·w` with `w = (1/|x|)·(1/|y|)`,
    /// and its bound `B' = 1.001·B·w + 4·10⁻⁶·(1 + |a'|)` (the relative roundings of
    /// the norms, their product, the division and `w`, a few 2⁻²⁴ each, are taken on
    /// a cosine whose magnitude is below `|a'| + B·w`, itself near 1). None where
    /// [`Int8Query::new`] is None or a norm is below `NORM_FLOOR`.
    pub fn cosine(query: &[f32], norm: f32, items: &Int8Factors) -> Option<Self> {
        if !(items.norms_ok && norm >= NORM_FLOOR && (1.0 / norm).is_finite()) {
            return None;
        }
        let mut q = Int8Query::new(query, items)?;
        q.cosine = Some(1.0 / norm);
        Some(q)
    }
}

/// Appends `(row, a, B)` for every row in `from..to` whose approximate score `a` plus its
/// bound `B` (see [`Int8Query`]) reaches `bar`; `from` is a multiple of [`INT8_BLOCK`].
/// Rows failing the test cannot be in the f32 top-k once the k-th best `a − B` is at
/// least `bar`.
pub fn int8_candidates(
    query: &Int8Query,
    items: &Int8Factors,
    from: usize,
    to: usize,
    bar: f32,
    out: &mut Vec<(u32, f32, f32)>,
) {
    assert!(
        from.is_multiple_of(INT8_BLOCK) && to <= items.rows && query.words.len() == items.groups
    );
    #[cfg(target_arch = "x86_64")]
    if vnni() {
        // SAFETY: `vnni` confirmed AVX-512F, AVX-512BW and AVX-512 VNNI.
        unsafe { int8_candidates_vnni(query, items, from, to, bar, out) };
        return;
    }
    int8_candidates_loop(query, items, from, to, bar, out);
}

/// Whether [`int8_candidates`] runs its VNNI kernel (the 8-bit first pass is used only
/// then: the portable loop is slower than the f32 scan). Follows the kernel level
/// ([`kernels::level`], `FORYOU_KERNELS`).
pub fn vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        kernels::level() == Level::Avx512
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn int8_candidates_loop(
    query: &Int8Query,
    items: &Int8Factors,
    from: usize,
    to: usize,
    bar: f32,
    out: &mut Vec<(u32, f32, f32)>,
) {
    let groups = items.groups;
    for i in from..to {
        let (b, r) = (i / INT8_BLOCK, i % INT8_BLOCK);
        let mut sum = 0i32;
        for (g, w) in query.words.iter().enumerate() {
            let x = w.to_le_bytes();
            let y = &items.data[(b * groups + g) * 64 + r * 4..][..4];
            for j in 0..4 {
                sum += y[j] as i32 * x[j] as i8 as i32;
            }
        }
        let s = items.scale[i];
        let mut a = (query.t * s) * (sum - query.offset) as f32;
        let mut bound = query.c_scale * s + query.c_l1 * items.l1[i];
        if let Some(inv) = query.cosine {
            let w = inv * items.inv_norm[i];
            a *= w;
            bound = 1.001 * (bound * w) + 4e-6 * (1.0 + a.abs());
        }
        if a + bound >= bar {
            out.push((i as u32, a, bound));
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn int8_candidates_vnni(
    query: &Int8Query,
    items: &Int8Factors,
    from: usize,
    to: usize,
    bar: f32,
    out: &mut Vec<(u32, f32, f32)>,
) {
    use std::arch::x86_64::*;
    let groups = items.groups;
    let t = _mm512_set1_ps(query.t);
    let c_scale = _mm512_set1_ps(query.c_scale);
    let c_l1 = _mm512_set1_ps(query.c_l1);
    let bar_v = _mm512_set1_ps(bar);
    let offset = _mm512_set1_epi32(query.offset);
    let mut a_lanes = [0.0f32; INT8_BLOCK];
    let mut b_lanes = [0.0f32; INT8_BLOCK];
    for block in from / INT8_BLOCK..to.div_ceil(INT8_BLOCK) {
        let base = block * groups * 64;
        // Four independent sums: the instruction's latency would otherwise bound the loop.
        let mut acc = [_mm512_setzero_si512(); 4];
        for (g, &w) in query.words.iter().enumerate() {
            // SAFETY: block < rows.div_ceil(16) = the number of blocks, g < groups, so
            // base + g * 64 + 64 <= data.len() (blocks * groups * 64).
            let y = unsafe { _mm512_loadu_si512(items.data.as_ptr().add(base + g * 64).cast()) };
            acc[g & 3] = _mm512_dpbusd_epi32(acc[g & 3], y, _mm512_set1_epi32(w));
        }
        let sum = _mm512_add_epi32(
            _mm512_add_epi32(acc[0], acc[1]),
            _mm512_add_epi32(acc[2], acc[3]),
        );
        let first = block * INT8_BLOCK;
        // SAFETY: scale and l1 hold blocks * 16 values, first + 16 <= that.
        let (s, l1) = unsafe {
            (
                _mm512_loadu_ps(items.scale.as_ptr().add(first)),
                _mm512_loadu_ps(items.l1.as_ptr().add(first)),
            )
        };
        let mut a = _mm512_mul_ps(
            _mm512_mul_ps(t, s),
            _mm512_cvtepi32_ps(_mm512_sub_epi32(sum, offset)),
        );
        let mut b = _mm512_fmadd_ps(c_scale, s, _mm512_mul_ps(c_l1, l1));
        if let Some(inv) = query.cosine {
            // SAFETY: inv_norm holds blocks * 16 values, first + 16 <= that.
            let w = _mm512_mul_ps(_mm512_set1_ps(inv), unsafe {
                _mm512_loadu_ps(items.inv_norm.as_ptr().add(first))
            });
            a = _mm512_mul_ps(a, w);
            let slack = _mm512_set1_ps(4e-6);
            b = _mm512_fmadd_ps(
                _mm512_set1_ps(1.001),
                _mm512_mul_ps(b, w),
                _mm512_fmadd_ps(slack, _mm512_abs_ps(a), slack),
            );
        }
        let mut mask = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_add_ps(a, b), bar_v);
        if mask == 0 {
            continue;
        }
        // SAFETY: both arrays hold 16 f32.
        unsafe {
            _mm512_storeu_ps(a_lanes.as_mut_ptr(), a);
            _mm512_storeu_ps(b_lanes.as_mut_ptr(), b);
        }
        while mask != 0 {
            let r = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let i = first + r;
            if i >= from && i < to {
                out.push((i as u32, a_lanes[r], b_lanes[r]));
            }
        }
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

    #[test]
    fn int8_scores_are_within_their_error_bound() {
        // The bound proven in `Int8Query`, without its factor 2 of slack: a mistake in the
        // derivation shows here before it can change a ranking.
        for dim in [1, 3, 4, 16, 17, 64, 70] {
            let mut items = Factors::random(53, dim, 9, 0);
            items
                .data
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = (*v * 300.0 - 100.0) * if i % 7 == 0 { 1e-6 } else { 1.0 });
            items.row_mut(4).fill(0.0);
            let int8 = Int8Factors::from_f32(&items).unwrap();
            let q: Vec<f32> = Factors::random(1, dim, 10, 1)
                .data
                .iter()
                .map(|v| v * 50.0 - 20.0)
                .collect();
            let query = Int8Query::new(&q, &int8).unwrap();
            let mut loop_out = Vec::new();
            int8_candidates_loop(&query, &int8, 0, 53, f32::NEG_INFINITY, &mut loop_out);
            assert_eq!(loop_out.len(), 53, "every row passes a bar of -inf");
            let mut exact = [0.0f32];
            for &(i, a, b) in &loop_out {
                kernels::dot_rows(&q, items.row(i as usize), &mut exact);
                assert!(
                    (a - exact[0]).abs() <= b / 2.0,
                    "dim {dim} row {i}: {a} vs {} (bound {b})",
                    exact[0]
                );
            }
            // The VNNI kernel computes the same sums and the same bounds (to rounding),
            // and keeps exactly the rows that reach the bar.
            #[cfg(target_arch = "x86_64")]
            if vnni() {
                for (from, to) in [(0, 53), (16, 53), (0, 16), (32, 40)] {
                    let mut v = Vec::new();
                    // SAFETY: `vnni` confirmed the features.
                    unsafe {
                        int8_candidates_vnni(&query, &int8, from, to, f32::NEG_INFINITY, &mut v);
                    };
                    let want: Vec<_> = loop_out[from..to].to_vec();
                    assert_eq!(v.len(), want.len());
                    for (x, y) in v.iter().zip(&want) {
                        assert_eq!((x.0, x.1), (y.0, y.1));
                        assert!((x.2 - y.2).abs() <= 1e-6 * y.2);
                    }
                }
                let bar = loop_out[10].1 + loop_out[10].2;
                let mut v = Vec::new();
                // SAFETY: as above.
                unsafe { int8_candidates_vnni(&query, &int8, 0, 53, bar, &mut v) };
                let mut w = Vec::new();
                int8_candidates_loop(&query, &int8, 0, 53, bar, &mut w);
                assert!(v.len() < 53 && !v.is_empty());
                assert_eq!(
                    v.iter().map(|c| c.0).collect::<Vec<_>>(),
                    w.iter().map(|c| c.0).collect::<Vec<_>>()
                );
            }
        }
        let mut bad = Factors::random(2, 4, 1, 0);
        bad.data[3] = f32::INFINITY;
        assert!(Int8Factors::from_f32(&bad).is_none());
        let ok = Int8Factors::from_f32(&Factors::random(2, 4, 1, 0)).unwrap();
        assert!(Int8Query::new(&[0.0; 4], &ok).is_none());
        assert!(Int8Query::new(&[1.0; 3], &ok).is_none());
        assert!(Int8Query::new(&[3e38, 0.0, 0.0, 0.0], &ok).is_none());
    }
}
