//! # nw-fuzz
//!
//! The hostile-input harness of nw's readers (see `docs/RELIABILITY.md`):
//!
//! - [`Target`]: each reader (IDX raw and gzip, CSV, safetensors and bincode
//!   model state, fixture files, run checkpoints and configurations) as a function of bytes that must return
//!   `Ok` or a typed error for every input; the coverage-guided fuzz
//!   binaries in `fuzz/` (run by `cargo xtask fuzz TARGET`) call the same
//!   functions.
//! - [`mutate`]: the seeded mutation engine (truncations, hostile length and
//!   count fields, section moves, bit flips) behind the mutation tests.
//! - [`alloc`]: a counting global allocator that measures the peak
//!   allocation of one call on one thread.
//! - [`harness`]: runs a target over its mutated corpus, catching panics and
//!   checking every input's peak allocation against [`harness::alloc_bound`].
//!
//! ```
//! use nw_fuzz::Target;
//! // an IDX header that claims 2^32-1 x 2^32-1 images is a typed error
//! let mut bytes = vec![0, 0, 8, 3];
//! for d in [u32::MAX, u32::MAX, 1] {
//!     bytes.extend_from_slice(&d.to_be_bytes());
//! }
//! let e = Target::IdxRaw.run(&bytes).unwrap_err();
//! assert!(e.contains("truncated"), "{e}");
//! ```
//!
//! ## Invariants
//! - Nothing here is used by the library crates; it depends on them.
//! - Every run is deterministic: the same corpus and seed give the same inputs.
#![deny(missing_docs)]

pub mod alloc;
pub mod harness;
pub mod mutate;
pub mod targets;
pub mod train;

pub use targets::Target;
