//! The model core: pure Rust on owned arrays, no SQLite.
//!
//! - [`factors`]: dense row-major f32 embeddings, deterministic random init, dot product.
//! - [`interactions`]: aggregated feedback as CSR matrices (by user and by item).
//! - [`als`]: implicit-feedback ALS with a conjugate-gradient solver, loss, fold-in.
//! - [`reference`]: a readable, sequential, exact (Cholesky) ALS used to check [`als`].
//! - [`kernels`]: SIMD dot / axpy / Gramian kernels, run-time dispatch, the same bits on
//!   every CPU.
//! - [`linalg`]: small dense f64 Cholesky solve shared by fold-in and the reference.
//! - [`topk`]: bounded-heap top-k by dot product, cosine, or arbitrary scores.
//!
//! Determinism: every result here is bit-identical for any rayon thread count (rows are
//! computed independently, reductions are done in a fixed order).

pub mod als;
pub mod evaluate;
pub mod factors;
pub mod feedback;
pub mod interactions;
pub mod kernels;
pub mod linalg;
pub mod reference;
pub mod scan;
pub mod topk;
pub mod tune;

pub use als::{AlsParams, FitReport, ModelError};
pub use factors::Factors;
pub use interactions::{Entry, Interactions};
