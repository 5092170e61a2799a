//! The fixed summation tree over micro-shard indices.
//!
//! The tree is the dyadic (segment) tree over `[0, P)`, `P` the power of two
//! at or above `M`: node `(lo, size)` covers `[lo, lo + size)`; its value is
//! `left + right` elementwise, a node whose right half lies wholly at or past
//! `M` passes its left child through unchanged (no addition of zeros), and
//! leaf `i` is micro-shard `i`'s vector. The shape depends on `M` only.

use std::collections::HashMap;

/// A canonical subtree value: node `(lo, size)` and its sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// First micro-shard index the node covers.
    pub lo: usize,
    /// Width of the node (a power of two).
    pub size: usize,
    /// The node's sum.
    pub values: Vec<f32>,
}

fn root(m: usize) -> usize {
    m.max(1).next_power_of_two()
}

/// `a + b` elementwise (`a`'s length wins; the vectors share a length in use).
fn add(mut a: Vec<f32>, b: &[f32]) -> Vec<f32> {
    for (x, y) in a.iter_mut().zip(b) {
        *x += *y;
    }
    a
}

fn node(m: usize, lo: usize, size: usize, leaf: &mut dyn FnMut(usize) -> Vec<f32>) -> Option<Vec<f32>> {
    if lo >= m {
        return None;
    }
    if size == 1 {
        return Some(leaf(lo));
    }
    let h = size / 2;
    let left = node(m, lo, h, leaf)?;
    match node(m, lo + h, h, leaf) {
        Some(right) => Some(add(left, &right)),
        None => Some(left),
    }
}

/// The tree sum of all `leaves` (one process, no exchange); empty input gives an empty vector.
pub fn tree_sum(leaves: &[Vec<f32>]) -> Vec<f32> {
    let m = leaves.len();
    node(m, 0, root(m), &mut |i| leaves[i].clone()).unwrap_or_default()
}

fn node_with<T: Clone>(
    m: usize,
    lo: usize,
    size: usize,
    leaves: &[T],
    add: &dyn Fn(T, &T) -> T,
) -> Option<T> {
    if lo >= m {
        return None;
    }
    if size == 1 {
        return Some(leaves[lo].clone());
    }
    let h = size / 2;
    let left = node_with(m, lo, h, leaves, add)?;
    match node_with(m, lo + h, h, leaves, add) {
        Some(right) => Some(add(left, &right)),
        None => Some(left),
    }
}

/// The same tree as [`tree_sum`] over any leaf type, with `add` as the node
/// operation (`add(left, right)`); `None` for no leaves.
pub fn tree_fold<T: Clone>(leaves: &[T], add: impl Fn(T, &T) -> T) -> Option<T> {
    let m = leaves.len();
    node_with(m, 0, root(m), leaves, &add)
}

/// [`tree_sum`] in `f64`: the fixed tree over vectors of double precision
/// (batch-norm statistics); empty input gives an empty vector.
pub fn tree_sum_f64(leaves: &[Vec<f64>]) -> Vec<f64> {
    tree_fold(leaves, |mut a, b| {
        for (x, y) in a.iter_mut().zip(b) {
            *x += *y;
        }
        a
    })
    .unwrap_or_default()
}

/// The contiguous run `[a, b)` of micro-shards of rank `r` among `n` ranks
/// for `m` micro-shards: `[r m / n, (r + 1) m / n)` (unequal when `n` does not divide `m`).
pub fn split_runs(m: usize, n: usize) -> Vec<(usize, usize)> {
    let n = n.max(1);
    (0..n).map(|r| (r * m / n, (r + 1) * m / n)).collect()
}

/// The canonical blocks covering run `[a, b)` of `m` micro-shards, computed
/// from that run's leaves (`run_leaves[i - a]` is leaf `i`), in index order.
pub fn run_blocks(m: usize, a: usize, b: usize, run_leaves: &[Vec<f32>]) -> Vec<Block> {
    run_blocks_owned(m, a, b, run_leaves.to_vec())
}

/// [`run_blocks`] taking the run's leaves by value: each leaf becomes (or is
/// summed into) its block without a copy.
pub fn run_blocks_owned(m: usize, a: usize, b: usize, run_leaves: Vec<Vec<f32>>) -> Vec<Block> {
    let mut out = Vec::new();
    let b = b.min(m);
    let mut leaves: Vec<Option<Vec<f32>>> = run_leaves.into_iter().map(Some).collect();
    #[allow(clippy::too_many_arguments)]
    fn walk(
        m: usize,
        a: usize,
        b: usize,
        lo: usize,
        size: usize,
        leaves: &mut [Option<Vec<f32>>],
        out: &mut Vec<Block>,
    ) {
        let hi = (lo + size).min(m);
        if lo >= hi || hi <= a || lo >= b {
            return;
        }
        if a <= lo && hi <= b {
            let mut take = |i: usize| leaves.get_mut(i - a).and_then(Option::take).unwrap_or_default();
            if let Some(values) = node(m, lo, size, &mut take) {
                out.push(Block { lo, size, values });
            }
            return;
        }
        walk(m, a, b, lo, size / 2, leaves, out);
        walk(m, a, b, lo + size / 2, size / 2, leaves, out);
    }
    if a < b {
        walk(m, a, b, 0, root(m), &mut leaves, &mut out);
    }
    out
}

/// A micro-shard that no block covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingShard(pub usize);

impl std::fmt::Display for MissingShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no rank delivered micro-shard {}", self.0)
    }
}

impl std::error::Error for MissingShard {}

/// Finishes the tree of `m` micro-shards from canonical `blocks` (all
/// ranks' [`run_blocks`], any order); equals [`tree_sum`] over the leaves bit for bit.
pub fn finish(m: usize, blocks: &[Block]) -> Result<Vec<f32>, MissingShard> {
    finish_owned(m, blocks.to_vec())
}

/// [`finish`] taking the blocks by value: a block is summed in place (the
/// left operand of each addition), never copied.
pub fn finish_owned(m: usize, blocks: Vec<Block>) -> Result<Vec<f32>, MissingShard> {
    let mut map: HashMap<(usize, usize), Vec<f32>> =
        blocks.into_iter().map(|b| ((b.lo, b.size), b.values)).collect();
    fn walk(
        m: usize,
        lo: usize,
        size: usize,
        map: &mut HashMap<(usize, usize), Vec<f32>>,
    ) -> Result<Option<Vec<f32>>, MissingShard> {
        if lo >= m {
            return Ok(None);
        }
        // each node is visited once: its block can be moved out
        if let Some(v) = map.remove(&(lo, size)) {
            return Ok(Some(v));
        }
        if size == 1 {
            return Err(MissingShard(lo));
        }
        let h = size / 2;
        let left = walk(m, lo, h, map)?.ok_or(MissingShard(lo))?;
        Ok(Some(match walk(m, lo + h, h, map)? {
            Some(right) => add(left, &right),
            None => left,
        }))
    }
    Ok(walk(m, 0, root(m), &mut map)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaves whose float sums depend on the order of addition.
    fn leaves(m: usize) -> Vec<Vec<f32>> {
        (0..m)
            .map(|i| {
                (0..7).map(|j| ((i * 31 + j * 17) as f32).sin() * 10f32.powi((i % 5) as i32 - 2)).collect()
            })
            .collect()
    }

    #[test]
    fn any_rank_count_gives_the_same_bits() {
        for m in 1..40 {
            let l = leaves(m);
            let whole = tree_sum(&l);
            for n in 1..=6 {
                let mut blocks = Vec::new();
                for (a, b) in split_runs(m, n) {
                    blocks.extend(run_blocks(m, a, b, &l[a..b]));
                }
                let got = finish(m, &blocks).unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&whole), "m={m} n={n}");
            }
        }
    }

    #[test]
    fn tree_is_pairwise_by_hand() {
        // m = 4, worked by hand in f32: (1e8 + 1) + (-1e8 + 1) = 1e8 - 1e8 = 0,
        // whereas a left fold gives ((1e8 + 1) - 1e8) + 1 = 1.
        let l = vec![vec![1e8f32], vec![1.0], vec![-1e8], vec![1.0]];
        assert_eq!(tree_sum(&l), vec![0.0]);
    }

    #[test]
    fn the_generic_tree_has_the_same_shape() {
        for m in 1..20 {
            let l = leaves(m);
            let f = tree_fold(&l, |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += *y;
                }
                a
            })
            .unwrap();
            assert_eq!(f, tree_sum(&l), "m={m}");
            // f64: the same pairing, worked by hand for m = 3: (a + b) + c.
            let d: Vec<Vec<f64>> = l.iter().map(|v| v.iter().map(|&x| x as f64).collect()).collect();
            if m == 3 {
                let want: Vec<f64> = (0..7).map(|j| (d[0][j] + d[1][j]) + d[2][j]).collect();
                assert_eq!(tree_sum_f64(&d), want);
            }
        }
        assert!(tree_sum_f64(&[]).is_empty());
    }

    #[test]
    fn a_missing_shard_is_named() {
        let l = leaves(5);
        let blocks = run_blocks(5, 0, 2, &l[0..2]);
        assert_eq!(finish(5, &blocks), Err(MissingShard(2)));
    }
}
