//! Elementwise arithmetic, unary math, reductions and softmax.
//!
//! Elementwise kernels run over contiguous slices, split into fixed chunks of
//! [`CHUNK`] elements across rayon's threads when the tensor is large; each
//! output element is computed by one thread from its inputs alone, so results
//! do not depend on the thread count. Reductions that combine many elements
//! into one (`sum_all`) add fixed-size chunks in a fixed order.

mod binary;
pub mod fast;
mod math;
mod reduce;

pub use binary::broadcast_shape;
pub use math::{erf, sigmoid};

/// Elements per parallel work item of the elementwise kernels.
pub const CHUNK: usize = 16 * 1024;

/// Below this many elements an elementwise kernel stays on the calling thread.
pub const PAR_THRESHOLD: usize = 64 * 1024;

/// `f(src[i])` as a new vector, written once (never zeroed first), in
/// parallel over fixed chunks for large inputs.
pub(crate) fn map_collect(src: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    use rayon::prelude::*;
    if src.len() >= PAR_THRESHOLD {
        let mut out = Vec::new();
        src.par_iter().with_min_len(CHUNK).map(|&x| f(x)).collect_into_vec(&mut out);
        out
    } else {
        src.iter().map(|&x| f(x)).collect()
    }
}

/// `f(a[i], b[i])` as a new vector, written once (never zeroed first), in
/// parallel over fixed chunks for large inputs; `a` and `b` have one length.
pub(crate) fn zip_collect(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    use rayon::prelude::*;
    debug_assert!(a.len() == b.len());
    if a.len() >= PAR_THRESHOLD {
        let mut out = Vec::new();
        a.par_iter().zip(b.par_iter()).with_min_len(CHUNK).map(|(&x, &y)| f(x, y)).collect_into_vec(&mut out);
        out
    } else {
        a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    }
}
