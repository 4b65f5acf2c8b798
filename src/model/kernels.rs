//! f32 and f64 vector kernels of the solver, with run-time CPU dispatch and results that
//! are **bit-identical on every CPU** (AVX-512, AVX2 + FMA, or the portable scalar code).
//!
//! # Why the bits cannot depend on the CPU
//!
//! Every kernel is defined by one exact sequence of IEEE-754 operations, written out in
//! the scalar code; the SIMD versions perform the same operations on the same operands,
//! only several at a time. Two rules make that possible:
//!
//! - **FMA everywhere.** Each multiply-accumulate is one fused multiply-add, rounded once
//!   (`f32::mul_add` / `f64::mul_add` in the scalar code: the correctly rounded software
//!   `fma` where the CPU has none, so the result is the same, only slower). A separate
//!   multiply and add would round twice, and a SIMD FMA would then differ from it.
//! - **A fixed lane layout for reductions.** [`dot`] keeps [`LANES`] = 16 partial sums:
//!   lane `l` accumulates the products of the elements `l, l + 16, l + 32, ...` in that
//!   order, each step one FMA. At the end the 16 lanes are added in one fixed tree:
//!   `s8[l] = s[l] + s[l+8]`, `s4[l] = s8[l] + s8[l+4]`, `s2[l] = s4[l] + s4[l+2]`,
//!   `dot = s2[0] + s2[1]`. AVX-512 holds the 16 lanes in one register, AVX2 in two (lanes
//!   0–7 and 8–15), the scalar code in an array; every lane sees the same FMAs in the same
//!   order, and the tree is the same additions (IEEE addition is commutative, so the
//!   operand order inside one addition does not matter). A tail shorter than 16 updates
//!   only its own lanes (AVX-512: masked FMA; AVX2: a blend keeps the inactive lanes), so
//!   no lane ever sees an extra `fma(0, 0, s)` (which could turn a `-0.0` into `+0.0`).
//!
//! Element-wise kernels ([`axpy`], [`gemv_sym`], [`syr_upper_f64`]) have no reduction
//! across elements: each output element is its own chain of FMAs in a fixed order, so
//! any vector width gives the same bits. [`gather_dot_axpy`], the conjugate-gradient
//! product, is [`dot`] then [`axpy`] per row (the registers only save loads and
//! stores). Several SIMD bodies are the scalar code compiled with the target features
//! enabled and left to LLVM's vectoriser: Rust's float semantics forbid reassociation
//! and never contract `a * b + c` into an FMA, so vectorising cannot change a result.
//!
//! The f64 dot products of the loss ([`dot_f32_f64`], [`dot_f64_f32`]) are the one
//! place without FMA: 8 lanes (`l, l + 8, ...`), each product rounded to f64 and then
//! added, reduced as `((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))` — the same
//! operations on every level (products of two f32 are exact in f64 anyway).
//!
//! The level is chosen once per process ([`level`]); [`set_level`] can lower it (tests, and
//! the `FORYOU_KERNELS=scalar|avx2|avx512` environment variable, read once, for checks).
//!
//! # Safety
//!
//! The `unsafe` blocks are of two kinds, each argued where it occurs: calling a
//! `#[target_feature]` function, sound because [`level`] only returns a level whose
//! features `is_x86_feature_detected!` confirmed; and raw-pointer loads and stores in the
//! SIMD bodies, sound because every pointer is derived from a slice whose length was
//! checked (or clamped) before the loop, and masked loads/stores touch only in-bounds
//! lanes.

// The hot arithmetic stays as written (its exact operation sequence is the contract above):
// - `as` casts between float widths and lane counts/masks are exact here or intended;
// - `#[inline(always)]` on the bodies: each must be inlined into its `#[target_feature]`
//   caller to be compiled with that caller's features (LLVM will not inline across them);
// - `use std::arch::x86_64::*` in the SIMD bodies: the intrinsics, by their Intel names.
#![allow(
    clippy::cast_lossless,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::inline_always,
    clippy::wildcard_imports
)]

use std::sync::atomic::{AtomicU8, Ordering};

/// Number of partial sums of [`dot`] (the lane layout every level reproduces).
pub const LANES: usize = 16;

/// A kernel implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Portable Rust (`mul_add`), any CPU.
    Scalar = 1,
    /// x86-64 AVX2 + FMA.
    Avx2 = 2,
    /// x86-64 AVX-512F.
    Avx512 = 3,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    fn from_u8(v: u8) -> Option<Level> {
        match v {
            1 => Some(Level::Scalar),
            2 => Some(Level::Avx2),
            3 => Some(Level::Avx512),
            _ => None,
        }
    }
}

/// 0 = not chosen yet.
static LEVEL: AtomicU8 = AtomicU8::new(0);

/// The best level this CPU supports.
pub fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Level::Avx2;
        }
    }
    Level::Scalar
}

#[cfg(test)]
/// Every level this CPU can run, lowest first (tests compare them).
pub fn supported() -> Vec<Level> {
    [Level::Scalar, Level::Avx2, Level::Avx512]
        .into_iter()
        .filter(|&l| l <= detected())
        .collect()
}

/// The level in use: [`detected`], lowered by `FORYOU_KERNELS` or [`set_level`].
#[inline]
pub fn level() -> Level {
    match Level::from_u8(LEVEL.load(Ordering::Relaxed)) {
        Some(l) => l,
        None => init_level(),
    }
}

#[cold]
fn init_level() -> Level {
    let best = detected();
    let wanted = match std::env::var("FORYOU_KERNELS").as_deref() {
        Ok("scalar") => Level::Scalar,
        Ok("avx2") => Level::Avx2,
        _ => best,
    };
    let l = wanted.min(best);
    LEVEL.store(l as u8, Ordering::Relaxed);
    l
}

#[cfg(test)]
/// Uses `wanted`, or the best supported level below it; returns the level now in use.
/// Results do not depend on the level, so this changes speed only.
pub fn set_level(wanted: Level) -> Level {
    let l = wanted.min(detected());
    LEVEL.store(l as u8, Ordering::Relaxed);
    l
}

// ---- scalar reference definitions ------------------------------------------------------

/// The fixed reduction tree of the 16 lanes.
#[inline(always)]
fn reduce16(s: &[f32; LANES]) -> f32 {
    let mut s8 = [0.0f32; 8];
    for l in 0..8 {
        s8[l] = s[l] + s[l + 8];
    }
    let mut s4 = [0.0f32; 4];
    for l in 0..4 {
        s4[l] = s8[l] + s8[l + 4];
    }
    let s2 = [s4[0] + s4[2], s4[1] + s4[3]];
    s2[0] + s2[1]
}

fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut s = [0.0f32; LANES];
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        let l = k % LANES;
        s[l] = x.mul_add(*y, s[l]);
    }
    reduce16(&s)
}

#[inline(always)]
fn axpy_body(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = a.mul_add(*xi, *yi);
    }
}

#[inline(always)]
fn gemv_body(g: &[f32], v: &[f32], out: &mut [f32]) {
    let n = out.len();
    for o in out.iter_mut() {
        *o = 0.0;
    }
    for (j, &vj) in v.iter().enumerate() {
        let row = &g[j * n..(j + 1) * n];
        for (o, &gjk) in out.iter_mut().zip(row) {
            *o = vj.mul_add(gjk, *o);
        }
    }
}

/// Rows one after the other (each element sees the same FMAs in row order), four at a
/// time so that each element of `acc` is loaded and stored once per four rows.
#[inline(always)]
fn syr_body(acc: &mut [f64], xs: &[f64], ws: &[f64]) {
    let dim = xs.len().checked_div(ws.len()).unwrap_or(0);
    let mut r = 0;
    while r + 4 <= ws.len() {
        syr_block::<4>(acc, &xs[r * dim..(r + 4) * dim], &ws[r..r + 4], dim);
        r += 4;
    }
    while r < ws.len() {
        syr_block::<1>(acc, &xs[r * dim..(r + 1) * dim], &ws[r..=r], dim);
        r += 1;
    }
}

#[inline(always)]
fn syr_block<const M: usize>(acc: &mut [f64], xs: &[f64], ws: &[f64], dim: usize) {
    assert!(xs.len() == M * dim && ws.len() == M && acc.len() == dim * dim);
    for i in 0..dim {
        let wx: [f64; M] = std::array::from_fn(|r| ws[r] * xs[r * dim + i]);
        let rows: [&[f64]; M] = std::array::from_fn(|r| &xs[r * dim + i..(r + 1) * dim]);
        let out = &mut acc[i * dim + i..(i + 1) * dim];
        for (jj, a) in out.iter_mut().enumerate() {
            let mut v = *a;
            for r in 0..M {
                v = wx[r].mul_add(rows[r][jj], v);
            }
            *a = v;
        }
    }
}

/// f64 dot product in 8 lanes (lane `l` takes elements `l, l + 8, ...`), reduced as
/// `((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))`. Each product is rounded to f64,
/// then added (never fused): element-wise lanes, so any vector width gives these bits.
#[inline(always)]
fn dot_f64_body<A: Copy + Into<f64>>(a: &[A], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (ca, cb) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut s = [0.0f64; 8];
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            s[l] += x[l].into() * y[l] as f64;
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        s[l] += (*x).into() * *y as f64;
    }
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))
}

// ---- public kernels --------------------------------------------------------------------

/// `Σ a[k]·b[k]` in f64 over the common length (products of two f32 are exact in f64),
/// in the 8-lane order of `dot_f64_body`: the same bits on every CPU. For losses.
#[inline]
pub fn dot_f32_f64(a: &[f32], b: &[f32]) -> f64 {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`).
        Level::Avx512 => unsafe { x86::dot_f32_f64_avx512(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`).
        Level::Avx2 => unsafe { x86::dot_f32_f64_avx2(a, b) },
        _ => dot_f64_body(a, b),
    }
}

/// `Σ a[k]·b[k]` for f64 `a` and f32 `b` (each product rounded, then added), in the
/// 8-lane order of `dot_f64_body`: the same bits on every CPU. For losses.
#[inline]
pub fn dot_f64_f32(a: &[f64], b: &[f32]) -> f64 {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`).
        Level::Avx512 => unsafe { x86::dot_f64_f32_avx512(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`).
        Level::Avx2 => unsafe { x86::dot_f64_f32_avx2(a, b) },
        _ => dot_f64_body(a, b),
    }
}

/// `Σ a[k]·b[k]` over the common length, in the lane layout of the module doc.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_at(level(), a, b)
}

/// [`dot`] at a given level (must be supported; lower levels are always fine).
pub fn dot_at(level: Level, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` only returns Avx512/Avx2 after feature detection (set_level
        // clamps to `detected()`), so the target features are present.
        Level::Avx512 => unsafe { x86::dot_avx512(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, AVX2 and FMA were detected.
        Level::Avx2 => unsafe { x86::dot_avx2(a, b) },
        _ => dot_scalar(a, b),
    }
}

/// `out[i] = dot(query, row i of data)` for rows of `query.len()` floats, as many as both
/// `data` and `out` hold: [`dot`] row after row (the same bits), with the level chosen
/// once and the per-row kernel inlined into the loop (a catalogue scan calls this).
#[inline]
pub fn dot_rows(query: &[f32], data: &[f32], out: &mut [f32]) {
    dot_rows_at(level(), query, data, out);
}

/// [`dot_rows`] at a given level (must be supported; lower levels are always fine).
pub fn dot_rows_at(level: Level, query: &[f32], data: &[f32], out: &mut [f32]) {
    if query.is_empty() {
        return;
    }
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`).
        Level::Avx512 => unsafe { x86::dot_rows_avx512(query, data, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`).
        Level::Avx2 => unsafe { x86::dot_rows_avx2(query, data, out) },
        _ => {
            for (row, o) in data.chunks_exact(query.len()).zip(out.iter_mut()) {
                *o = dot_scalar(query, row);
            }
        }
    }
}

/// `y += a·x` element-wise (one FMA per element), over the common length.
#[inline]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    axpy_at(level(), y, a, x);
}

pub fn axpy_at(level: Level, y: &mut [f32], a: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    let (y, x) = (&mut y[..n], &x[..n]);
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`).
        Level::Avx512 => unsafe { x86::axpy_avx512(y, a, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`).
        Level::Avx2 => unsafe { x86::axpy_avx2(y, a, x) },
        _ => axpy_body(y, a, x),
    }
}

/// `out = G v` for a symmetric row-major `n × n` matrix `g` (`n = out.len()`), computed
/// as `Σ_j v[j]·G[j,:]`: element `k` is the FMA chain over `j = 0, 1, ...` from 0.
///
/// # Panics
/// If `g.len() != n²` or `v.len() != n`.
#[inline]
pub fn gemv_sym(g: &[f32], v: &[f32], out: &mut [f32]) {
    gemv_sym_at(level(), g, v, out);
}

pub fn gemv_sym_at(level: Level, g: &[f32], v: &[f32], out: &mut [f32]) {
    let n = out.len();
    assert!(g.len() == n * n && v.len() == n, "gemv_sym: shapes");
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`); shapes checked above.
        Level::Avx512 => unsafe { x86::gemv_avx512(g, v, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`).
        Level::Avx2 => unsafe { x86::gemv_avx2(g, v, out) },
        _ => gemv_body(g, v, out),
    }
}

/// For each `k`: if `coef(k)` is `Some(f)`, then with `t = dot(table row cols[k], v)`,
/// `acc += f(t) · (table row cols[k])`. Exactly [`dot`] then [`axpy`] per entry (same
/// bits), with the row read once. `table` is row-major with `dim = v.len() = acc.len()`
/// values per row.
///
/// # Panics
/// If `v.len() != acc.len()` or a row is outside `table`.
#[inline]
pub fn gather_dot_axpy<F, G>(table: &[f32], cols: &[u32], v: &[f32], acc: &mut [f32], coef: F)
where
    F: FnMut(usize) -> Option<G>,
    G: FnOnce(f32) -> f32,
{
    gather_dot_axpy_at(level(), table, cols, v, acc, coef);
}

pub fn gather_dot_axpy_at<F, G>(
    level: Level,
    table: &[f32],
    cols: &[u32],
    v: &[f32],
    acc: &mut [f32],
    mut coef: F,
) where
    F: FnMut(usize) -> Option<G>,
    G: FnOnce(f32) -> f32,
{
    let dim = v.len();
    assert_eq!(acc.len(), dim, "gather_dot_axpy: shapes");
    if dim == 0 {
        return;
    }
    let rows = table.len() / dim;
    // One bounds check up front, so that the SIMD bodies can read rows unchecked.
    assert!(
        cols.iter().all(|&c| (c as usize) < rows),
        "gather_dot_axpy: row out of range"
    );
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`); every row index checked above.
        Level::Avx512 => unsafe { x86::gather_avx512(table, cols, v, acc, &mut coef) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`); every row index checked above.
        Level::Avx2 => unsafe { x86::gather_avx2(table, cols, v, acc, &mut coef) },
        _ => {
            for (k, &c) in cols.iter().enumerate() {
                if let Some(f) = coef(k) {
                    let y = &table[c as usize * dim..(c as usize + 1) * dim];
                    let t = dot_scalar(y, v);
                    axpy_body(acc, f(t), y);
                }
            }
        }
    }
}

/// For each row `x` of `xs` (row-major, `ws.len()` rows of `n`) in order, with its
/// weight `w`: `acc[i, j] += (w·x[i])·x[j]` (one FMA) for `j >= i`, the upper triangle
/// of a row-major `n × n` f64 matrix.
///
/// # Panics
/// If `xs.len() != ws.len()·n` or `acc.len() != n²`.
#[inline]
pub fn syr_upper_f64(acc: &mut [f64], xs: &[f64], ws: &[f64]) {
    syr_upper_f64_at(level(), acc, xs, ws);
}

pub fn syr_upper_f64_at(level: Level, acc: &mut [f64], xs: &[f64], ws: &[f64]) {
    let n = (acc.len() as f64).sqrt() as usize;
    assert!(
        n * n == acc.len() && xs.len() == ws.len() * n,
        "syr_upper_f64: shapes"
    );
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`).
        Level::Avx512 => unsafe { x86::syr_avx512(acc, xs, ws) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: features detected (see `dot_at`).
        Level::Avx2 => unsafe { x86::syr_avx2(acc, xs, ws) },
        _ => syr_body(acc, xs, ws),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The SIMD bodies. Each is `unsafe fn` with `#[target_feature]`: callers guarantee the
    //! features (checked by `level()`); the pointer arithmetic is argued inline.
    use super::{axpy_body, dot_f64_body, gemv_body, syr_body, LANES};

    /// # Safety
    /// AVX-512F present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f32_f64_avx512(a: &[f32], b: &[f32]) -> f64 {
        dot_f64_body(a, b)
    }

    /// # Safety
    /// AVX-512F present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f64_f32_avx512(a: &[f64], b: &[f32]) -> f64 {
        dot_f64_body(a, b)
    }

    /// # Safety
    /// AVX2 and FMA present.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_f32_f64_avx2(a: &[f32], b: &[f32]) -> f64 {
        dot_f64_body(a, b)
    }

    /// # Safety
    /// AVX2 and FMA present.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_f64_f32_avx2(a: &[f64], b: &[f32]) -> f64 {
        dot_f64_body(a, b)
    }
    use std::arch::x86_64::*;

    // -- AVX-512 --------------------------------------------------------------------------

    /// Mask of the first `m` lanes (`m < 16`).
    #[inline(always)]
    fn mask16(m: usize) -> __mmask16 {
        ((1u32 << m) - 1) as __mmask16
    }

    /// The reduction tree of the module doc on one 16-lane register.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce_avx512(s: __m512) -> f32 {
        let lo = _mm512_castps512_ps256(s);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(s)));
        reduce8(_mm256_add_ps(lo, hi))
    }

    /// From `s8` (lanes 0–7): `s4[l] = s8[l] + s8[l+4]`, `s2[l] = s4[l] + s4[l+2]`,
    /// `s2[0] + s2[1]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn reduce8(s8: __m256) -> f32 {
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2)))
    }

    /// 16-lane dot of `a` and `b` (equal lengths) from pointers.
    ///
    /// # Safety
    /// `a` and `b` must be valid for `n` reads; AVX-512F present.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_ptr_avx512(a: *const f32, b: *const f32, n: usize) -> f32 {
        let mut s = _mm512_setzero_ps();
        let full = n / LANES;
        for c in 0..full {
            // SAFETY: c·16 + 15 < n, within both buffers.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(a.add(c * LANES)),
                    _mm512_loadu_ps(b.add(c * LANES)),
                )
            };
            s = _mm512_fmadd_ps(x, y, s);
        }
        let m = n - full * LANES;
        if m > 0 {
            let k = mask16(m);
            // SAFETY: masked loads read only the first m < 16 lanes, all below n.
            let (x, y) = unsafe {
                (
                    _mm512_maskz_loadu_ps(k, a.add(full * LANES)),
                    _mm512_maskz_loadu_ps(k, b.add(full * LANES)),
                )
            };
            // Inactive lanes keep `s` unchanged.
            s = _mm512_mask3_fmadd_ps(x, y, s, k);
        }
        reduce_avx512(s)
    }

    /// `y += a·x` from pointers.
    ///
    /// # Safety
    /// `y` valid for `n` reads and writes, `x` for `n` reads; AVX-512F present.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn axpy_ptr_avx512(y: *mut f32, a: f32, x: *const f32, n: usize) {
        let av = _mm512_set1_ps(a);
        let full = n / LANES;
        for c in 0..full {
            // SAFETY: c·16 + 15 < n.
            unsafe {
                let p = y.add(c * LANES);
                let r = _mm512_fmadd_ps(av, _mm512_loadu_ps(x.add(c * LANES)), _mm512_loadu_ps(p));
                _mm512_storeu_ps(p, r);
            }
        }
        let m = n - full * LANES;
        if m > 0 {
            let k = mask16(m);
            // SAFETY: masked loads and store touch only the first m lanes, below n.
            unsafe {
                let p = y.add(full * LANES);
                let r = _mm512_fmadd_ps(
                    av,
                    _mm512_maskz_loadu_ps(k, x.add(full * LANES)),
                    _mm512_maskz_loadu_ps(k, p),
                );
                _mm512_mask_storeu_ps(p, k, r);
            }
        }
    }

    /// # Safety
    /// AVX-512F present; `query` not empty.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_rows_avx512(query: &[f32], data: &[f32], out: &mut [f32]) {
        let n = query.len();
        for (row, o) in data.chunks_exact(n).zip(out.iter_mut()) {
            // SAFETY: `row` and `query` both hold n values.
            *o = unsafe { dot_ptr_avx512(query.as_ptr(), row.as_ptr(), n) };
        }
    }

    /// # Safety
    /// AVX-512F present; `a.len() == b.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        // SAFETY: both slices hold a.len() values.
        unsafe { dot_ptr_avx512(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    /// # Safety
    /// AVX-512F present; `y.len() == x.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn axpy_avx512(y: &mut [f32], a: f32, x: &[f32]) {
        debug_assert_eq!(y.len(), x.len());
        // SAFETY: both slices hold y.len() values; `y` is borrowed mutably.
        unsafe { axpy_ptr_avx512(y.as_mut_ptr(), a, x.as_ptr(), y.len()) }
    }

    /// # Safety
    /// AVX-512F present; `g.len() == n²`, `v.len() == n` with `n = out.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gemv_avx512(g: &[f32], v: &[f32], out: &mut [f32]) {
        let n = out.len();
        if !n.is_multiple_of(LANES) {
            // Element-wise: the plain loop vectorises with the same bits.
            return gemv_body(g, v, out);
        }
        // Blocks of up to 4 registers of `out`, each an FMA chain over j.
        let gp = g.as_ptr();
        let mut base = 0;
        while base < n {
            let regs = ((n - base) / LANES).min(4);
            let mut acc = [_mm512_setzero_ps(); 4];
            for (j, &vj) in v.iter().enumerate() {
                let b = _mm512_set1_ps(vj);
                for (r, a) in acc.iter_mut().enumerate().take(regs) {
                    // SAFETY: j < n and base + 16r + 15 < n, so the index is below n².
                    let row = unsafe { _mm512_loadu_ps(gp.add(j * n + base + r * LANES)) };
                    *a = _mm512_fmadd_ps(b, row, *a);
                }
            }
            for (r, a) in acc.iter().enumerate().take(regs) {
                // SAFETY: base + 16r + 15 < n = out.len().
                unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(base + r * LANES), *a) };
            }
            base += regs * LANES;
        }
    }

    /// # Safety
    /// AVX-512F present; every `cols[k]` indexes a row of `table` (`dim = v.len()`),
    /// `acc.len() == dim`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gather_avx512<F, G>(
        table: &[f32],
        cols: &[u32],
        v: &[f32],
        acc: &mut [f32],
        coef: &mut F,
    ) where
        F: FnMut(usize) -> Option<G>,
        G: FnOnce(f32) -> f32,
    {
        let dim = v.len();
        // SAFETY: (all arms) the caller's guarantees, passed on unchanged.
        unsafe {
            match dim {
                16 => return gather_avx512_regs::<1, F, G>(table, cols, v, acc, coef),
                32 => return gather_avx512_regs::<2, F, G>(table, cols, v, acc, coef),
                48 => return gather_avx512_regs::<3, F, G>(table, cols, v, acc, coef),
                64 => return gather_avx512_regs::<4, F, G>(table, cols, v, acc, coef),
                96 => return gather_avx512_regs::<6, F, G>(table, cols, v, acc, coef),
                128 => return gather_avx512_regs::<8, F, G>(table, cols, v, acc, coef),
                _ => {}
            }
        }
        for (k, &c) in cols.iter().enumerate() {
            if let Some(f) = coef(k) {
                // SAFETY: the caller checked c < table.len() / dim, so the row's dim
                // values are in `table`; `v` and `acc` hold dim values.
                unsafe {
                    let y = table.as_ptr().add(c as usize * dim);
                    let t = dot_ptr_avx512(y, v.as_ptr(), dim);
                    axpy_ptr_avx512(acc.as_mut_ptr(), f(t), y, dim);
                }
            }
        }
    }

    /// How many entries ahead `gather_*_regs` prefetches rows.
    const PREFETCH_AHEAD: usize = 4;

    /// `gather_avx512` for `dim = 16·C`, with `v`, `acc` and the current row held in
    /// registers: the same FMAs in the same order as `dot_ptr_avx512` (chunks 0..C into
    /// one 16-lane sum, then `reduce_avx512`) and `axpy_ptr_avx512`, so the same bits.
    ///
    /// # Safety
    /// As `gather_avx512`, and `v.len() == acc.len() == 16·C`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn gather_avx512_regs<const C: usize, F, G>(
        table: &[f32],
        cols: &[u32],
        v: &[f32],
        acc: &mut [f32],
        coef: &mut F,
    ) where
        F: FnMut(usize) -> Option<G>,
        G: FnOnce(f32) -> f32,
    {
        let dim = C * LANES;
        debug_assert!(v.len() == dim && acc.len() == dim);
        let mut vr = [_mm512_setzero_ps(); C];
        let mut ar = [_mm512_setzero_ps(); C];
        for c in 0..C {
            // SAFETY: c·16 + 15 < dim = v.len() = acc.len().
            unsafe {
                vr[c] = _mm512_loadu_ps(v.as_ptr().add(c * LANES));
                ar[c] = _mm512_loadu_ps(acc.as_ptr().add(c * LANES));
            }
        }
        let base = table.as_ptr();
        for (k, &col) in cols.iter().enumerate() {
            if let Some(&ahead) = cols.get(k + PREFETCH_AHEAD) {
                // SAFETY: `ahead` is a checked row index, so the address is inside
                // `table`; a prefetch reads nothing architecturally.
                unsafe {
                    let p = base.add(ahead as usize * dim).cast::<i8>();
                    for line in (0..dim * 4).step_by(64) {
                        _mm_prefetch::<_MM_HINT_T0>(p.add(line));
                    }
                }
            }
            if let Some(f) = coef(k) {
                let mut yr = [_mm512_setzero_ps(); C];
                let mut s = _mm512_setzero_ps();
                for c in 0..C {
                    // SAFETY: col is a checked row index: dim values from col·dim.
                    yr[c] = unsafe { _mm512_loadu_ps(base.add(col as usize * dim + c * LANES)) };
                    s = _mm512_fmadd_ps(yr[c], vr[c], s);
                }
                let b = _mm512_set1_ps(f(reduce_avx512(s)));
                for c in 0..C {
                    ar[c] = _mm512_fmadd_ps(b, yr[c], ar[c]);
                }
            }
        }
        for (c, a) in ar.iter().enumerate() {
            // SAFETY: c·16 + 15 < dim = acc.len().
            unsafe { _mm512_storeu_ps(acc.as_mut_ptr().add(c * LANES), *a) };
        }
    }

    /// # Safety
    /// AVX-512F present; shapes as `syr_upper_f64_at` checks.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn syr_avx512(acc: &mut [f64], xs: &[f64], ws: &[f64]) {
        syr_body(acc, xs, ws);
    }

    // -- AVX2 + FMA -----------------------------------------------------------------------

    /// Lanes of an 8-wide register that are active when `m` (< 8) elements remain.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn mask8(m: usize) -> __m256i {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(m as i32), idx)
    }

    /// 16-lane dot in two 8-lane registers (lanes 0–7 and 8–15).
    ///
    /// # Safety
    /// `a` and `b` valid for `n` reads; AVX2 and FMA present.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_ptr_avx2(a: *const f32, b: *const f32, n: usize) -> f32 {
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let full = n / LANES;
        for c in 0..full {
            // SAFETY: c·16 + 15 < n.
            unsafe {
                let (pa, pb) = (a.add(c * LANES), b.add(c * LANES));
                lo = _mm256_fmadd_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb), lo);
                hi = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(8)), _mm256_loadu_ps(pb.add(8)), hi);
            }
        }
        let m = n - full * LANES;
        if m > 0 {
            let (pa, pb) = (a.wrapping_add(full * LANES), b.wrapping_add(full * LANES));
            let klo = mask8(m.min(8));
            // SAFETY: masked loads read only lanes < m, below n; inactive lanes are 0.
            let t = unsafe {
                _mm256_fmadd_ps(_mm256_maskload_ps(pa, klo), _mm256_maskload_ps(pb, klo), lo)
            };
            // The blend keeps inactive lanes of `lo` as they were.
            lo = _mm256_blendv_ps(lo, t, _mm256_castsi256_ps(klo));
            if m > 8 {
                let khi = mask8(m - 8);
                // SAFETY: lanes 8 + l with l < m − 8, below n.
                let t = unsafe {
                    _mm256_fmadd_ps(
                        _mm256_maskload_ps(pa.add(8), khi),
                        _mm256_maskload_ps(pb.add(8), khi),
                        hi,
                    )
                };
                hi = _mm256_blendv_ps(hi, t, _mm256_castsi256_ps(khi));
            }
        }
        reduce8(_mm256_add_ps(lo, hi))
    }

    /// `y += a·x` from pointers.
    ///
    /// # Safety
    /// `y` valid for `n` reads and writes, `x` for `n` reads; AVX2 and FMA present.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn axpy_ptr_avx2(y: *mut f32, a: f32, x: *const f32, n: usize) {
        let av = _mm256_set1_ps(a);
        let full = n / 8;
        for c in 0..full {
            // SAFETY: c·8 + 7 < n.
            unsafe {
                let p = y.add(c * 8);
                let r = _mm256_fmadd_ps(av, _mm256_loadu_ps(x.add(c * 8)), _mm256_loadu_ps(p));
                _mm256_storeu_ps(p, r);
            }
        }
        for i in full * 8..n {
            // SAFETY: i < n.
            unsafe { *y.add(i) = a.mul_add(*x.add(i), *y.add(i)) };
        }
    }

    /// # Safety
    /// AVX2 and FMA present; `query` not empty.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_rows_avx2(query: &[f32], data: &[f32], out: &mut [f32]) {
        let n = query.len();
        for (row, o) in data.chunks_exact(n).zip(out.iter_mut()) {
            // SAFETY: `row` and `query` both hold n values.
            *o = unsafe { dot_ptr_avx2(query.as_ptr(), row.as_ptr(), n) };
        }
    }

    /// # Safety
    /// AVX2 and FMA present; `a.len() == b.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        // SAFETY: both slices hold a.len() values.
        unsafe { dot_ptr_avx2(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    /// # Safety
    /// AVX2 and FMA present; `y.len() == x.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy_avx2(y: &mut [f32], a: f32, x: &[f32]) {
        axpy_body(y, a, x);
    }

    /// # Safety
    /// AVX2 and FMA present; shapes as `gemv_avx512`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemv_avx2(g: &[f32], v: &[f32], out: &mut [f32]) {
        let n = out.len();
        if !n.is_multiple_of(8) {
            return gemv_body(g, v, out);
        }
        let gp = g.as_ptr();
        let mut base = 0;
        while base < n {
            let regs = ((n - base) / 8).min(8);
            let mut acc = [_mm256_setzero_ps(); 8];
            for (j, &vj) in v.iter().enumerate() {
                let b = _mm256_set1_ps(vj);
                for (r, a) in acc.iter_mut().enumerate().take(regs) {
                    // SAFETY: j < n and base + 8r + 7 < n.
                    let row = unsafe { _mm256_loadu_ps(gp.add(j * n + base + r * 8)) };
                    *a = _mm256_fmadd_ps(b, row, *a);
                }
            }
            for (r, a) in acc.iter().enumerate().take(regs) {
                // SAFETY: base + 8r + 7 < n = out.len().
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(base + r * 8), *a) };
            }
            base += regs * 8;
        }
    }

    /// # Safety
    /// As `gather_avx512`, with AVX2 and FMA present.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gather_avx2<F, G>(
        table: &[f32],
        cols: &[u32],
        v: &[f32],
        acc: &mut [f32],
        coef: &mut F,
    ) where
        F: FnMut(usize) -> Option<G>,
        G: FnOnce(f32) -> f32,
    {
        let dim = v.len();
        // SAFETY: (all arms) the caller's guarantees, passed on unchanged.
        unsafe {
            match dim {
                16 => return gather_avx2_regs::<2, F, G>(table, cols, v, acc, coef),
                32 => return gather_avx2_regs::<4, F, G>(table, cols, v, acc, coef),
                48 => return gather_avx2_regs::<6, F, G>(table, cols, v, acc, coef),
                64 => return gather_avx2_regs::<8, F, G>(table, cols, v, acc, coef),
                _ => {}
            }
        }
        for (k, &c) in cols.iter().enumerate() {
            if let Some(f) = coef(k) {
                // SAFETY: the caller checked c < table.len() / dim.
                unsafe {
                    let y = table.as_ptr().add(c as usize * dim);
                    let t = dot_ptr_avx2(y, v.as_ptr(), dim);
                    axpy_ptr_avx2(acc.as_mut_ptr(), f(t), y, dim);
                }
            }
        }
    }

    /// `gather_avx2` for `dim = 8·R` (R even), with the accumulator in R registers (the
    /// row and `v` are read from memory, L1 after the first touch): the same FMAs in
    /// the same order as `dot_ptr_avx2` (lanes 0–7 in `lo`, 8–15 in `hi`, chunks of 16
    /// in order) and `axpy_ptr_avx2`, so the same bits.
    ///
    /// # Safety
    /// As `gather_avx2`, and `v.len() == acc.len() == 8·R`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gather_avx2_regs<const R: usize, F, G>(
        table: &[f32],
        cols: &[u32],
        v: &[f32],
        acc: &mut [f32],
        coef: &mut F,
    ) where
        F: FnMut(usize) -> Option<G>,
        G: FnOnce(f32) -> f32,
    {
        let dim = R * 8;
        debug_assert!(v.len() == dim && acc.len() == dim && R.is_multiple_of(2));
        let mut ar = [_mm256_setzero_ps(); R];
        for (r, a) in ar.iter_mut().enumerate() {
            // SAFETY: 8r + 7 < dim = acc.len().
            *a = unsafe { _mm256_loadu_ps(acc.as_ptr().add(r * 8)) };
        }
        let (base, vp) = (table.as_ptr(), v.as_ptr());
        for (k, &col) in cols.iter().enumerate() {
            if let Some(&ahead) = cols.get(k + PREFETCH_AHEAD) {
                // SAFETY: a checked row index; a prefetch reads nothing architecturally.
                unsafe {
                    let p = base.add(ahead as usize * dim).cast::<i8>();
                    for line in (0..dim * 4).step_by(64) {
                        _mm_prefetch::<_MM_HINT_T0>(p.add(line));
                    }
                }
            }
            if let Some(f) = coef(k) {
                // SAFETY: col is a checked row index: dim values from col·dim; v holds dim.
                unsafe {
                    let y = base.add(col as usize * dim);
                    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                    for c in 0..R / 2 {
                        let o = c * LANES;
                        lo = _mm256_fmadd_ps(
                            _mm256_loadu_ps(y.add(o)),
                            _mm256_loadu_ps(vp.add(o)),
                            lo,
                        );
                        hi = _mm256_fmadd_ps(
                            _mm256_loadu_ps(y.add(o + 8)),
                            _mm256_loadu_ps(vp.add(o + 8)),
                            hi,
                        );
                    }
                    let b = _mm256_set1_ps(f(reduce8(_mm256_add_ps(lo, hi))));
                    for (r, a) in ar.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(b, _mm256_loadu_ps(y.add(r * 8)), *a);
                    }
                }
            }
        }
        for (r, a) in ar.iter().enumerate() {
            // SAFETY: 8r + 7 < dim = acc.len().
            unsafe { _mm256_storeu_ps(acc.as_mut_ptr().add(r * 8), *a) };
        }
    }

    /// # Safety
    /// AVX2 and FMA present; shapes as `syr_upper_f64_at` checks.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn syr_avx2(acc: &mut [f64], xs: &[f64], ws: &[f64]) {
        syr_body(acc, xs, ws);
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

    fn lcg(s: &mut u64) -> u64 {
        *s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *s >> 33
    }

    /// Values over many magnitudes and both signs, with exact zeros and signed zeros, so
    /// that any difference in operation order shows in the bits.
    fn values(n: usize, s: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let r = lcg(s);
                match r % 23 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => 1e-30 * (r % 7) as f32,
                    _ => {
                        let m = (r % 20001) as f32 / 10000.0 - 1.0;
                        m * 10f32.powi((r % 9) as i32 - 4)
                    }
                }
            })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn every_level_matches_the_scalar_code_bit_for_bit() {
        let levels = supported();
        assert_eq!(levels[0], Level::Scalar);
        let mut s = 7u64;
        for n in (0..=80).chain([95, 96, 97, 127, 128, 129, 200, 255, 256, 1000]) {
            for _ in 0..4 {
                let (a, b) = (values(n, &mut s), values(n, &mut s));
                let want = dot_at(Level::Scalar, &a, &b);
                let coef = (lcg(&mut s) % 2001) as f32 / 1000.0 - 1.0;
                let y_start = values(n, &mut s);
                let mut y_want = y_start.clone();
                axpy_at(Level::Scalar, &mut y_want, coef, &a);
                for &l in &levels {
                    assert_eq!(
                        dot_at(l, &a, &b).to_bits(),
                        want.to_bits(),
                        "dot {l:?} n {n}"
                    );
                    let mut y = y_start.clone();
                    axpy_at(l, &mut y, coef, &a);
                    assert_eq!(bits(&y), bits(&y_want), "axpy {l:?} n {n}");
                    if n > 0 {
                        // Rows of `y_start` (3 of n values, plus a partial row that is
                        // not scored) against `a`: each is dot(a, row).
                        let data: Vec<f32> =
                            [&y_start[..], &y_start[..], &b[..], &a[..n / 2]].concat();
                        let mut out = [f32::NAN; 3];
                        dot_rows_at(l, &a, &data, &mut out);
                        let rows = [&y_start, &y_start, &b];
                        for (o, row) in out.iter().zip(rows) {
                            assert_eq!(
                                o.to_bits(),
                                dot_at(Level::Scalar, &a, row).to_bits(),
                                "dot_rows {l:?} n {n}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn matrix_kernels_match_across_levels() {
        let levels = supported();
        let mut s = 11u64;
        for n in [1, 3, 8, 15, 16, 17, 24, 32, 48, 64, 72, 80, 96, 100, 128] {
            let g = values(n * n, &mut s);
            let v = values(n, &mut s);
            let mut want = vec![0.0; n];
            gemv_sym_at(Level::Scalar, &g, &v, &mut want);
            // Rows of a table, gathered with a coefficient that depends on the dot.
            let table = values(n * 37, &mut s);
            let cols: Vec<u32> = (0..60).map(|_| (lcg(&mut s) % 37) as u32).collect();
            let confidence = values(60, &mut s);
            let coef = |k: usize| {
                let ck = confidence[k];
                (ck != 0.0).then_some(move |t: f32| ck * 2.0 - t)
            };
            let mut acc_want = values(n, &mut s);
            let acc0 = acc_want.clone();
            gather_dot_axpy_at(Level::Scalar, &table, &cols, &v, &mut acc_want, coef);
            // The fused kernel is dot then axpy.
            let mut acc_sep = acc0.clone();
            for (k, &c) in cols.iter().enumerate() {
                if confidence[k] != 0.0 {
                    let y = &table[c as usize * n..(c as usize + 1) * n];
                    let t = dot_at(Level::Scalar, y, &v);
                    axpy_at(Level::Scalar, &mut acc_sep, confidence[k] * 2.0 - t, y);
                }
            }
            assert_eq!(bits(&acc_sep), bits(&acc_want));
            // 7 rows: a block of four, then three single rows; equal to one row at a time.
            let xs: Vec<f64> = values(7 * n, &mut s).iter().map(|&v| v as f64).collect();
            let ws = [1.7, 0.0, -2.5, 1.0, 3.25, 1e-3, 7.0];
            let mut syr_want = vec![0.5f64; n * n];
            syr_upper_f64_at(Level::Scalar, &mut syr_want, &xs, &ws);
            let mut one_by_one = vec![0.5f64; n * n];
            for r in 0..7 {
                let x = &xs[r * n..(r + 1) * n];
                for i in 0..n {
                    for j in i..n {
                        let a = &mut one_by_one[i * n + j];
                        *a = (ws[r] * x[i]).mul_add(x[j], *a);
                    }
                }
            }
            assert!(one_by_one
                .iter()
                .zip(&syr_want)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            // gemv: the single FMA chain of its definition.
            let mut chain = vec![0.0f32; n];
            for (k, o) in chain.iter_mut().enumerate() {
                for j in 0..n {
                    *o = v[j].mul_add(g[j * n + k], *o);
                }
            }
            assert_eq!(bits(&chain), bits(&want), "gemv definition n {n}");
            for &l in &levels {
                let mut out = vec![f32::NAN; n];
                gemv_sym_at(l, &g, &v, &mut out);
                assert_eq!(bits(&out), bits(&want), "gemv {l:?} n {n}");
                let mut acc = acc0.clone();
                gather_dot_axpy_at(l, &table, &cols, &v, &mut acc, coef);
                assert_eq!(bits(&acc), bits(&acc_want), "gather {l:?} n {n}");
                let mut syr = vec![0.5f64; n * n];
                syr_upper_f64_at(l, &mut syr, &xs, &ws);
                assert!(
                    syr.iter()
                        .zip(&syr_want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "syr {l:?} n {n}"
                );
            }
        }
    }

    #[test]
    fn f64_dots_match_across_levels() {
        let mut s = 3u64;
        for n in (0..=40).chain([63, 64, 65, 200]) {
            let (a, b) = (values(n, &mut s), values(n, &mut s));
            let g: Vec<f64> = values(n, &mut s).iter().map(|&v| v as f64 * 1.1).collect();
            let want = (dot_f64_body(&a, &b), dot_f64_body(&g, &b));
            for l in supported() {
                set_level(l);
                assert_eq!(
                    dot_f32_f64(&a, &b).to_bits(),
                    want.0.to_bits(),
                    "{l:?} n {n}"
                );
                assert_eq!(
                    dot_f64_f32(&g, &b).to_bits(),
                    want.1.to_bits(),
                    "{l:?} n {n}"
                );
            }
            set_level(Level::Avx512);
            let exact: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            assert!((want.0 - exact).abs() <= 1e-12 * exact.abs().max(1e-30) + 1e-300);
        }
    }

    #[test]
    fn dot_is_accurate_and_handles_unequal_lengths() {
        let a: Vec<f32> = (0..67).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..67).map(|i| 1.0 - i as f32 * 0.25).collect();
        let exact: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        for l in supported() {
            assert!((dot_at(l, &a, &b) as f64 - exact).abs() < 1e-4 * exact.abs());
            assert_eq!(dot_at(l, &[], &[]), 0.0);
            assert_eq!(dot_at(l, &[1.0, 2.0], &[3.0]), 3.0);
        }
    }
}
