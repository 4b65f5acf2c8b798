//! What a refit's memory peaks at, estimated from what is known before its large
//! allocations, and fallible allocation of the largest buffers.
//!
//! On stable Rust an allocation failure in `Vec` or `Box` aborts the process: inside a
//! host that loaded the extension, that is a crash of someone else's program. So a refit
//! estimates its peak first (the caller compares it with SQLite's heap limit and probes
//! the allocator for it, `engine::refit`), and the largest buffers are reserved with
//! `try_reserve` ([`filled`]), so that running out becomes an error.

use std::collections::TryReserveError;

/// A refit's size, as known once its events have been read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefitShape {
    /// Events read (an upper bound of the pairs).
    pub events: u64,
    /// Bytes the event sink holds (its capacity: 16 per event, 24 with recency decay).
    pub sink_bytes: u64,
    /// Distinct users and items among the events.
    pub users: u64,
    pub items: u64,
    /// Embedding size.
    pub factors: u64,
    /// Worker threads of the fit.
    pub threads: u64,
    /// A tuned refit (full refit with `tune` on).
    pub tune: bool,
    /// Rows (users + items) of the stored model an incremental refit starts from.
    pub previous_rows: u64,
}

/// Rows per block handed from the SQL reader to the aggregating thread (`engine::refit`),
/// and the most blocks alive at once (4 queued, one filling, one being pushed).
pub const READ_BLOCK_BYTES: u64 = (1 << 14) * 40;
const READ_BLOCKS: u64 = 6;
/// The Gramian's row blocks (`als::GRAM_BLOCKS`): one f64 `f x f` partial each.
const GRAM_BLOCKS: u64 = 64;
/// Rows per stored factor chunk (`store::CHUNK_ROWS`).
const CHUNK_ROWS: u64 = 4096;

/// An upper bound of the bytes a refit allocates at its peak (measured with
/// `/usr/bin/time -v`; see `docs/reference.md`, "Memory"). With `n` events (`P <= n`
/// pairs), `U` users, `I` items, `d = U + I`, `f` factors, `T` threads, `R = max(U, I)`,
/// `S` the sink's bytes (16 n, 24 n with recency decay):
///
/// ```text
/// read  = S + 112 d + 6 · 640 KiB                 event sink, id maps, read blocks
/// agg   = S + 9 n + 150 U + 40 I                  EventSink::finish: order, confidences
/// data  = 24 n + 40 d                             both CSR sides, ids, popularity, weights
/// fac   = 4 f d                                   user and item factors
/// gram  = 8 f² (min(64, R) + 2)                   the Gramian's f64 partials (one per
///       + min(T, 64) · 8 (f + 1) · ceil(R / 64)     row block, all alive before the fixed-
///       + 12 f T + 8 U                              order reduction), blocks in f64, CG
/// write = 4 f U + 16 · 4096 · (f + 2)             users_with_taste's copy, chunk blobs
/// tune  = 32 n + 120 U + 24 I + 2 fac             hold-out copy, 3 factor pairs at once
///         (0 when not tuning)
/// prev  = (4 f + 52) · rows of the stored model   incremental: the model it starts from
///
/// raw   = prev + max(read, agg, data + fac + tune + max(gram, write))
/// peak  = raw + raw / 8 + 2 MiB                   the allocator's slack (freed memory it
///                                                 keeps, per-thread arenas)
/// ```
///
/// At `factors = 1024` the Gramian's partials alone are 512 MiB. Measured (peak RSS of
/// the `sqlite3` shell less its 7 MiB at rest, 2 threads): 150k events over 20k x 20k
/// at 64 factors 22 MiB (estimate 29), tuned 43 (58), at 256 factors 78 (92), at 1024
/// 686 (783); 1M events over 50k x 10k at 32 factors 37 (48), tuned 77 (105).
pub fn refit_peak_bytes(s: &RefitShape) -> u64 {
    let RefitShape {
        events: n,
        sink_bytes,
        users: u,
        items: i,
        factors: f,
        threads,
        tune,
        previous_rows,
    } = *s;
    let d = u.saturating_add(i);
    let add = |terms: &[u64]| terms.iter().fold(0u64, |a, &t| a.saturating_add(t));
    let mul = |a: u64, b: u64| a.saturating_mul(b);
    let read = add(&[sink_bytes, mul(112, d), READ_BLOCKS * READ_BLOCK_BYTES]);
    let agg = add(&[sink_bytes, mul(9, n), mul(150, u), mul(40, i)]);
    let data = add(&[mul(24, n), mul(40, d)]);
    let fac = mul(mul(4, f), d);
    let rows = u.max(i);
    let gram = add(&[
        mul(mul(8, mul(f, f)), rows.min(GRAM_BLOCKS) + 2),
        mul(
            mul(threads.clamp(1, GRAM_BLOCKS), mul(8, f.saturating_add(1))),
            rows.div_ceil(GRAM_BLOCKS),
        ),
        mul(mul(12, f), threads.max(1)),
        mul(8, u),
    ]);
    let write = add(&[mul(mul(4, f), u), mul(16 * CHUNK_ROWS, f.saturating_add(2))]);
    let tuning = if tune {
        add(&[mul(32, n), mul(120, u), mul(24, i), mul(2, fac)])
    } else {
        0
    };
    let prev = mul(mul(4, f).saturating_add(52), previous_rows);
    let fit = add(&[data, fac, tuning, gram.max(write)]);
    let raw = prev.saturating_add(read.max(agg).max(fit));
    add(&[raw, raw / 8, 2 << 20])
}

/// `n` copies of `value`, or the allocator's refusal (where `vec![value; n]` aborts).
///
/// # Errors
/// When the allocator cannot give `n` elements.
pub fn filled<T: Clone>(n: usize, value: T) -> Result<Vec<T>, TryReserveError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)?;
    v.resize(n, value);
    Ok(v)
}

/// Whether the allocator can give `bytes` at once now: reserves them and frees them at
/// once (nothing is written, so no page is touched).
///
/// # Errors
/// When it cannot (an address-space limit, an exhausted heap).
pub fn probe(bytes: u64) -> Result<(), TryReserveError> {
    let mut v: Vec<u8> = Vec::new();
    // More than the address space: the reservation fails as it should.
    v.try_reserve_exact(usize::try_from(bytes).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gramian_dominates_at_large_embeddings() {
        let shape = RefitShape {
            events: 150_000,
            sink_bytes: 16 * 150_000,
            users: 20_000,
            items: 20_000,
            factors: 1024,
            threads: 2,
            ..RefitShape::default()
        };
        let peak = refit_peak_bytes(&shape);
        assert!(peak > 64 * 8 * 1024 * 1024 + 4 * 1024 * 40_000);
        let tuned = refit_peak_bytes(&RefitShape {
            tune: true,
            ..shape
        });
        assert!(tuned > peak + 2 * 4 * 1024 * 40_000);
        // Saturates instead of overflowing.
        let huge = RefitShape {
            events: u64::MAX,
            users: u64::MAX,
            factors: u64::MAX,
            ..shape
        };
        assert_eq!(refit_peak_bytes(&huge), u64::MAX);
    }

    #[test]
    fn filled_and_probe_refuse_what_cannot_exist() {
        assert_eq!(filled(3, 1u32).unwrap(), vec![1, 1, 1]);
        assert!(filled(usize::MAX / 2, 0u64).is_err());
        assert!(probe(u64::MAX).is_err());
        assert!(probe(1 << 20).is_ok());
    }
}
