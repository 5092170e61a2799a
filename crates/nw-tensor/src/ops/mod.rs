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

/// `dst[i] = f(src[i])`, in parallel over fixed chunks for large inputs.
pub(crate) fn map_slice(src: &[f32], dst: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    use rayon::prelude::*;
    debug_assert_eq!(src.len(), dst.len());
    if src.len() >= PAR_THRESHOLD {
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, &s)| *d = f(s)));
    } else {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = f(s));
    }
}

/// `dst[i] = f(a[i], b[i])`, in parallel over fixed chunks for large inputs.
pub(crate) fn zip_slice(a: &[f32], b: &[f32], dst: &mut [f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    use rayon::prelude::*;
    debug_assert!(a.len() == dst.len() && b.len() == dst.len());
    if a.len() >= PAR_THRESHOLD {
        dst.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(
            |(d, (a, b))| {
                for i in 0..d.len() {
                    d[i] = f(a[i], b[i]);
                }
            },
        );
    } else {
        for i in 0..dst.len() {
            dst[i] = f(a[i], b[i]);
        }
    }
}
