//! One reduction step of data-parallel training: this rank's leaves in, the
//! whole tree's sum out, with an optional side message gathered from every rank.
//!
//! Wire format of one rank's message (little endian): `u64` block count, then
//! per block `u64 lo, u64 size, u64 len, len x f32`, then `u64` side length and
//! the side bytes. The sums are finished locally from all ranks' blocks, so
//! every rank holds the same bits.

use crate::collective::Collective;
use crate::error::DistError;
use crate::tree::{Block, finish_owned, run_blocks_owned, split_runs};

/// The run `[a, b)` of micro-shards that `rank` of `size` computes out of `m`.
pub fn my_run(m: usize, rank: usize, size: usize) -> (usize, usize) {
    split_runs(m, size)[rank.min(size.max(1) - 1)]
}

/// Encodes blocks and a side message.
pub fn encode(blocks: &[Block], side: &[u8]) -> Vec<u8> {
    let floats: usize = blocks.iter().map(|b| b.values.len()).sum();
    let mut out = Vec::with_capacity(16 + blocks.len() * 24 + floats * 4 + side.len());
    out.extend_from_slice(&(blocks.len() as u64).to_le_bytes());
    for b in blocks {
        for v in [b.lo as u64, b.size as u64, b.values.len() as u64] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        put_f32s(&mut out, &b.values);
    }
    out.extend_from_slice(&(side.len() as u64).to_le_bytes());
    out.extend_from_slice(side);
    out
}

/// Appends `v` as little-endian bytes: one bulk copy on a little-endian
/// machine (a push per byte cost a twelfth of an MLP step on 2 ranks).
fn put_f32s(out: &mut Vec<u8>, v: &[f32]) {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: an `f32` is 4 initialised bytes with no padding, `u8` has
        // alignment 1, and the slice covers exactly `v`'s memory; on a
        // little-endian machine those bytes are the little-endian encoding.
        let bytes = unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) };
        out.extend_from_slice(bytes);
    }
    #[cfg(not(target_endian = "little"))]
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// `raw` (its length a multiple of 4) read as little-endian `f32`s, in one
/// bulk copy on a little-endian machine.
fn get_f32s(raw: &[u8]) -> Vec<f32> {
    let n = raw.len() / 4;
    #[cfg(target_endian = "little")]
    {
        let mut v: Vec<f32> = Vec::with_capacity(n);
        // SAFETY: `v` has room for `n` f32s (`4 n` bytes) and `raw` holds at
        // least `4 n` readable bytes; the two do not overlap; every bit
        // pattern is a valid `f32`; the length is set after the copy.
        unsafe {
            std::ptr::copy_nonoverlapping(raw.as_ptr(), v.as_mut_ptr().cast::<u8>(), n * 4);
            v.set_len(n);
        }
        v
    }
    #[cfg(not(target_endian = "little"))]
    raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err(format!("truncated: {} bytes left, {n} needed", self.0.len()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u64(&mut self) -> Result<usize, String> {
        let v = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        usize::try_from(v).map_err(|_| format!("size {v} does not fit this machine"))
    }
}

/// Decodes [`encode`]'s message; `width` is the expected leaf length (every block's).
pub fn decode(bytes: &[u8], width: usize) -> Result<(Vec<Block>, Vec<u8>), String> {
    let mut r = Reader(bytes);
    let n = r.u64()?;
    // Each block takes at least 24 bytes: a hostile count fails before any allocation.
    if n > bytes.len() / 24 {
        return Err(format!("{n} blocks cannot fit in {} bytes", bytes.len()));
    }
    let mut blocks = Vec::with_capacity(n);
    for _ in 0..n {
        let (lo, size, len) = (r.u64()?, r.u64()?, r.u64()?);
        if len != width {
            return Err(format!("block of {len} values, expected {width}"));
        }
        let raw = r.take(len.checked_mul(4).ok_or("block length overflows")?)?;
        blocks.push(Block { lo, size, values: get_f32s(raw) });
    }
    let side_len = r.u64()?;
    let side = r.take(side_len)?.to_vec();
    if !r.0.is_empty() {
        return Err(format!("{} trailing bytes", r.0.len()));
    }
    Ok((blocks, side))
}

/// The sum of all `m` micro-shard leaves (each of length `width`) where this
/// rank holds `leaves` for its run [`my_run`]; also every rank's `side`
/// message in rank order. Without a collective this is [`crate::tree::tree_sum`].
/// The leaves are taken by value: they are summed in place, and this
/// rank's own blocks are used as computed rather than decoded from its
/// own message.
pub fn reduce(
    coll: Option<&dyn Collective>,
    m: usize,
    width: usize,
    leaves: Vec<Vec<f32>>,
    side: Vec<u8>,
) -> Result<(Vec<f32>, Vec<Vec<u8>>), DistError> {
    let (rank, size) = coll.map_or((0, 1), |c| (c.rank(), c.size()));
    let (a, b) = my_run(m, rank, size);
    if leaves.len() != b - a {
        return Err(DistError::Setup(format!(
            "rank {rank} holds {} leaves for its run [{a}, {b}) of {m} micro-shards",
            leaves.len()
        )));
    }
    let mine = run_blocks_owned(m, a, b, leaves);
    let Some(c) = coll.filter(|c| c.size() > 1) else {
        let sum = finish_owned(m, mine).map_err(|e| DistError::Setup(e.to_string()))?;
        return Ok((if m == 0 { vec![0.0; width] } else { sum }, vec![side]));
    };
    let msgs = c.all_gather(encode(&mine, &side))?;
    let mut mine = Some(mine);
    let mut blocks = Vec::new();
    let mut sides = Vec::with_capacity(msgs.len());
    for (r, msg) in msgs.iter().enumerate() {
        if r == rank {
            blocks.extend(mine.take().unwrap_or_default());
            sides.push(side.clone());
            continue;
        }
        let (bl, s) = decode(msg, width).map_err(|what| DistError::Malformed { rank: r, what })?;
        let (ra, rb) = my_run(m, r, size);
        if let Some(bad) = bl.iter().find(|x| x.lo < ra || x.lo + x.size.min(m - x.lo.min(m)) > rb) {
            return Err(DistError::Malformed {
                rank: r,
                what: format!("block at {} of width {} is outside its run [{ra}, {rb})", bad.lo, bad.size),
            });
        }
        blocks.extend(bl);
        sides.push(s);
    }
    let sum = finish_owned(m, blocks)
        .map_err(|e| DistError::Malformed { rank: rank_of(m, size, e.0), what: e.to_string() })?;
    Ok((if m == 0 { vec![0.0; width] } else { sum }, sides))
}

/// Every micro-shard's `f64` leaf (each of length `width`), in shard order,
/// on every rank, where this rank holds `leaves` for its run [`my_run`]; then
/// their sum in the fixed tree ([`crate::tree::tree_sum_f64`]). The leaves
/// are small (batch-norm statistics: a few values per channel), so they are
/// gathered whole and every rank evaluates the whole tree: the same additions
/// in the same order for any rank count. Wire format: `width` little-endian
/// `f64` per leaf, back to back.
pub fn gather_sum_f64(
    coll: Option<&dyn Collective>,
    m: usize,
    width: usize,
    leaves: &[Vec<f64>],
) -> Result<Vec<f64>, DistError> {
    let (rank, size) = coll.map_or((0, 1), |c| (c.rank(), c.size()));
    let (a, b) = my_run(m, rank, size);
    if leaves.len() != b - a || leaves.iter().any(|l| l.len() != width) {
        return Err(DistError::Setup(format!(
            "rank {rank} holds {} leaves for its run [{a}, {b}) of {m} micro-shards (each of {width} values)",
            leaves.len()
        )));
    }
    let Some(c) = coll.filter(|c| c.size() > 1) else {
        let sum = crate::tree::tree_sum_f64(leaves);
        return Ok(if m == 0 { vec![0.0; width] } else { sum });
    };
    let mut msg = Vec::with_capacity(leaves.len() * width * 8);
    for x in leaves.iter().flatten() {
        msg.extend_from_slice(&x.to_le_bytes());
    }
    let msgs = c.all_gather(msg)?;
    let mut all = Vec::with_capacity(m);
    for (r, bytes) in msgs.iter().enumerate() {
        let (ra, rb) = my_run(m, r, size);
        let want = (rb - ra) * width * 8;
        if bytes.len() != want {
            return Err(DistError::Malformed {
                rank: r,
                what: format!(
                    "{} bytes of statistics, expected {want} ({} leaves of {width})",
                    bytes.len(),
                    rb - ra
                ),
            });
        }
        if width > 0 {
            for leaf in bytes.chunks_exact(width * 8) {
                all.push(
                    leaf.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                        .collect(),
                );
            }
        } else {
            all.extend((ra..rb).map(|_| Vec::new()));
        }
    }
    let sum = crate::tree::tree_sum_f64(&all);
    Ok(if m == 0 { vec![0.0; width] } else { sum })
}

fn rank_of(m: usize, size: usize, shard: usize) -> usize {
    split_runs(m, size).iter().position(|&(a, b)| a <= shard && shard < b).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads;
    use crate::tree::tree_sum;

    #[test]
    fn round_trip_and_hostile_counts() {
        let b = vec![Block { lo: 2, size: 2, values: vec![1.5, -0.0] }];
        let enc = encode(&b, b"side");
        assert_eq!(decode(&enc, 2).unwrap(), (b, b"side".to_vec()));
        assert!(decode(&enc, 3).unwrap_err().contains("expected 3"));
        assert!(decode(&enc[..enc.len() - 1], 2).is_err());
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend([0; 8]);
        assert!(decode(&huge, 2).is_err());
    }

    #[test]
    fn gathered_f64_sums_equal_the_one_process_tree() {
        let m = 5;
        let leaves: Vec<Vec<f64>> =
            (0..m).map(|i| vec![1e16 * (i as f64 - 2.0), 1.0 + i as f64, 0.1 * i as f64]).collect();
        let whole = crate::tree::tree_sum_f64(&leaves);
        assert_eq!(gather_sum_f64(None, m, 3, &leaves).unwrap(), whole);
        for n in 1..=4 {
            let hs: Vec<_> = threads::group(n, std::time::Duration::from_secs(10))
                .unwrap()
                .into_iter()
                .map(|c| {
                    let l = leaves.clone();
                    std::thread::spawn(move || {
                        let (a, b) = my_run(m, c.rank(), c.size());
                        gather_sum_f64(Some(&c), m, 3, &l[a..b]).unwrap()
                    })
                })
                .collect();
            for h in hs {
                let got = h.join().unwrap();
                assert!(got.iter().zip(&whole).all(|(x, y)| x.to_bits() == y.to_bits()), "n={n}");
            }
        }
        // A rank holding the wrong number of leaves is a set-up error, not a panic.
        assert!(gather_sum_f64(None, m, 3, &leaves[..2]).is_err());
    }

    #[test]
    fn threads_reduce_equals_the_one_process_tree() {
        let m = 7;
        let width = 5;
        let leaves: Vec<Vec<f32>> = (0..m)
            .map(|i| (0..width).map(|j| ((i * 7 + j) as f32).cos() * 1e3f32.powi(i as i32 % 3)).collect())
            .collect();
        let whole = tree_sum(&leaves);
        for n in 1..=4 {
            let ranks = threads::group(n, std::time::Duration::from_secs(10)).unwrap();
            let hs: Vec<_> = ranks
                .into_iter()
                .map(|c| {
                    let l = leaves.clone();
                    std::thread::spawn(move || {
                        let (a, b) = my_run(m, c.rank(), c.size());
                        reduce(Some(&c), m, width, l[a..b].to_vec(), vec![c.rank() as u8]).unwrap()
                    })
                })
                .collect();
            for h in hs {
                let (sum, sides) = h.join().unwrap();
                assert_eq!(
                    sum.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    whole.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    "n={n}"
                );
                assert_eq!(sides, (0..n as u8).map(|r| vec![r]).collect::<Vec<_>>());
            }
        }
    }
}
