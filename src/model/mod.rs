//! The model core: pure Rust on owned arrays, no SQLite.
//!
//! - [`factors`]: dense row-major f32 embeddings, deterministic random init, dot product.
//! - [`interactions`]: aggregated feedback as CSR matrices (by user and by item).
//! - [`als`]: implicit-feedback ALS with a conjugate-gradient solver, loss, fold-in.
//! - [`explain`]: a score as the sum of the watched items' contributions (fold-in's
//!   system, solved for the explained item).
//! - [`reference`]: a readable, sequential, exact (Cholesky) ALS used to check [`als`].
//! - [`kernels`]: SIMD dot / axpy / Gramian kernels, run-time dispatch, the same bits on
//!   every CPU.
//! - [`linalg`]: small dense f64 Cholesky solve shared by fold-in and the reference.
//! - [`topk`]: bounded-heap top-k by dot product, cosine, or arbitrary scores.
//! - [`scan`]: quantised copies of the item factors for the catalogue scan's first
//!   pass (8-bit with AVX-512 VNNI, half precision), with their error bounds.
//! - [`feedback`]: from watch events to (preference, confidence) pairs: the skip rule,
//!   the confidence forms, recency, popularity.
//! - [`tune`]: choosing `alpha` and the regularisation on a hold-out split.
//! - [`memory`]: a refit's peak memory, estimated before it allocates; fallible buffers.
//! - [`metrics`]: ranking metrics at k (precision, recall, NDCG, MAP, coverage).
//!
//! Determinism: every result here is bit-identical for any rayon thread count (rows are
//! computed independently, reductions are done in a fixed order).

pub mod als;
pub mod explain;
pub mod factors;
pub mod feedback;
pub mod interactions;
pub mod kernels;
pub mod linalg;
pub mod memory;
pub mod metrics;
#[cfg(test)]
mod reference;
pub mod scan;
pub mod topk;
pub mod tune;

pub use als::{AlsParams, FitReport, ModelError};
pub use factors::Factors;
pub use interactions::Interactions;
