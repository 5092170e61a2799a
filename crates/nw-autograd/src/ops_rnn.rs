//! Fused recurrent sequences: [`Var::recurrent`] runs one direction of one
//! recurrent layer over every time step as a single recorded op, so the graph
//! holds one node per sequence instead of a dozen per step. Its derivative is
//! the `Recurrent` arm of `backward.rs`, with the loops in
//! [`recurrent_backward`] below.
//!
//! Inputs are the input projections of every step, `xp = x W_ih^T + b_ih`
//! (`[T, B, G H]`, one GEMM over all steps and gates done by the caller), the
//! recurrent weight `W_hh` `[G H, H]`, its bias `b_hh` `[G H]`, and the
//! initial state `h0` (and `c0`) `[B, H]`. Each step `t` adds
//! `a = h W_hh^T + b_hh` (one GEMM per step into a reused buffer) and applies
//! the cell in one pass (`*` elementwise, `σ` the sigmoid):
//! - tanh / relu: `h' = act(xp_t + a)`;
//! - LSTM, gates `(i, f, g, o)`: `i = σ(.)`, `f = σ(.)`, `g = tanh(.)`,
//!   `o = σ(.)` of `xp_t + a`, `c' = f * c + i * g`, `h' = o * tanh(c')`;
//! - GRU, gates `(r, z, n)`: `r = σ(xp_r + a_r)`, `z = σ(xp_z + a_z)`,
//!   `n = tanh(xp_n + r * a_n)`, `h' = (1 - z) * n + z * h = n + z * (h - n)`.
//!
//! The output is `[S, T, B, H]`, in time order whatever the direction: `S = 1`
//! holds `h_t`; an LSTM has `S = 2`, `h_t` then `c_t`. A reverse direction
//! runs `t = T - 1` down to 0. Per step the op keeps the activated gates
//! (LSTM: `i, f, g, o, tanh c'`; GRU: `r, z, n, a_n`) for backward.
//!
//! Sigmoid and tanh are nw-tensor's vectorised approximations
//! (`ops::fast`, within 3 ulp), applied in place on each row's gate blocks.
//!
//! The per-step work is one GEMM (split over rows and columns of its output
//! across threads, never over K) and elementwise loops on the calling thread,
//! so results are bit-identical for any thread count.

use nw_tensor::gemm::{Kernel, MatRef, PackedB, gemm_packed_serial, gemm_slices};
use nw_tensor::ops::fast::{sigmoid_slice, tanh_slice};
use nw_tensor::{Tensor, TensorError};

use rayon::prelude::*;

use crate::error::{AutogradError, Result};
use crate::op::Op;
use crate::var::Var;

/// The cell of a fused recurrent sequence ([`Var::recurrent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecurrentCell {
    /// Elman cell `h' = tanh(xp + h W^T + b)`.
    Tanh,
    /// Elman cell `h' = relu(xp + h W^T + b)`.
    Relu,
    /// LSTM cell, gates `(i, f, g, o)`.
    Lstm,
    /// GRU cell, gates `(r, z, n)`.
    Gru,
}

impl RecurrentCell {
    /// Gate blocks of `hidden` rows in `W_ih`, `W_hh` and the biases.
    pub fn gates(self) -> usize {
        match self {
            RecurrentCell::Tanh | RecurrentCell::Relu => 1,
            RecurrentCell::Lstm => 4,
            RecurrentCell::Gru => 3,
        }
    }

    /// States per step in the output: `h`, and `c` for an LSTM.
    pub fn states(self) -> usize {
        if self == RecurrentCell::Lstm { 2 } else { 1 }
    }

    /// Values kept per step and batch row, in units of `hidden`.
    fn saved_width(self) -> usize {
        match self {
            RecurrentCell::Tanh | RecurrentCell::Relu => 0,
            RecurrentCell::Lstm => 5,
            RecurrentCell::Gru => 4,
        }
    }
}

fn invalid(reason: String) -> AutogradError {
    AutogradError::InvalidArgument { op: "recurrent", reason }
}

/// A tensor's values as one contiguous vector.
fn dense(t: &Tensor) -> Vec<f32> {
    t.contiguous().as_slice().expect("contiguous").to_vec()
}

/// Buffers kept per thread for reuse by [`PooledBuf`]; at most this many.
const POOL_BUFFERS: usize = 8;

thread_local! {
    static POOL: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A zero-filled `f32` buffer taken from a small per-thread pool and given
/// back to it when dropped: the gates an op keeps for backward and
/// backward's scratch are megabytes per sequence, and allocating them anew
/// each training step maps fresh pages (a page fault per 4 KiB) every time.
/// The contents never depend on the pool (always zeroed first).
pub(crate) struct PooledBuf(Vec<f32>);

impl PooledBuf {
    /// `n` zeros, reusing the smallest pooled buffer that holds them.
    fn zeros(n: usize) -> PooledBuf {
        let reused = POOL
            .try_with(|p| {
                let mut p = p.borrow_mut();
                let best = (0..p.len()).filter(|&i| p[i].capacity() >= n).min_by_key(|&i| p[i].capacity());
                best.map(|i| p.swap_remove(i))
            })
            .ok()
            .flatten();
        let mut v = reused.unwrap_or_default();
        v.clear();
        v.resize(n, 0.0);
        PooledBuf(v)
    }
}

impl std::ops::Deref for PooledBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl std::ops::DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        if v.capacity() == 0 {
            return;
        }
        // on a full pool the smallest buffer makes way; after the thread's
        // pool is gone (thread exit) the buffer is simply freed
        let _ = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            p.push(v);
            if p.len() > POOL_BUFFERS {
                let small = (0..p.len()).min_by_key(|&i| p[i].capacity()).expect("not empty");
                p.swap_remove(small);
            }
        });
    }
}

/// Sizes of one sequence: steps, batch, hidden, gates * hidden.
#[derive(Clone, Copy)]
struct Dims {
    t: usize,
    b: usize,
    h: usize,
    g: usize,
}

impl Dims {
    /// The time index of processing step `step`.
    fn time(&self, step: usize, reverse: bool) -> usize {
        if reverse { self.t - 1 - step } else { step }
    }

    /// The time index whose state step `ti` starts from (`None`: the initial state).
    fn prev(&self, ti: usize, reverse: bool) -> Option<usize> {
        if reverse { (ti + 1 < self.t).then_some(ti + 1) } else { ti.checked_sub(1) }
    }
}

/// `a[r, :] <- b_hh` for every row (zeros without a bias); returns the GEMM's beta.
fn fill_bias(a: &mut [f32], bias: Option<&[f32]>, g: usize) -> f32 {
    match bias {
        Some(bv) => {
            a.chunks_exact_mut(g).for_each(|row| row.copy_from_slice(bv));
            1.0
        }
        None => 0.0,
    }
}

impl Var {
    /// Runs one direction of a recurrent layer over a whole sequence as one
    /// op (see the [module docs](self) for the cells and the layout).
    ///
    /// `self` is `xp` `[T, B, G H]`; `w_hh` `[G H, H]`; `b_hh` `[G H]`;
    /// `h0` `[B, H]`; `c0` `[B, H]` for an LSTM only. Returns `[S, T, B, H]`.
    ///
    /// ```
    /// use nw_autograd::{RecurrentCell, Var};
    /// use nw_tensor::Tensor;
    /// // one unit, two steps: h1 = tanh(0.5 + 2 * 0.25), h2 = tanh(-1 + 2 h1)
    /// let xp = Var::constant(Tensor::from_vec(vec![0.5, -1.0], &[2, 1, 1]).unwrap());
    /// let w = Var::constant(Tensor::full(&[1, 1], 2.0));
    /// let h0 = Var::constant(Tensor::full(&[1, 1], 0.25));
    /// let y = xp.recurrent(RecurrentCell::Tanh, &w, None, &h0, None, false).unwrap();
    /// let h1 = 1.0f32.tanh();
    /// let want = [h1, (-1.0 + 2.0 * h1).tanh()];
    /// assert_eq!(y.shape(), &[1, 2, 1, 1]);
    /// assert!(y.value().to_vec().iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6));
    /// ```
    pub fn recurrent(
        &self,
        cell: RecurrentCell,
        w_hh: &Var,
        b_hh: Option<&Var>,
        h0: &Var,
        c0: Option<&Var>,
        reverse: bool,
    ) -> Result<Var> {
        let xs = self.shape();
        if h0.shape().len() != 2 || xs.len() != 3 || xs[1] != h0.shape()[0] {
            return Err(invalid(format!("xp {xs:?} must be [T, B, G H] and h0 {:?} [B, H]", h0.shape())));
        }
        let (t, b, h) = (xs[0], xs[1], h0.shape()[1]);
        let g = cell.gates() * h;
        if xs[2] != g || w_hh.shape() != [g, h] {
            return Err(invalid(format!(
                "{cell:?} with hidden {h}: xp {xs:?} needs {g} features and w_hh {:?} must be [{g}, {h}]",
                w_hh.shape()
            )));
        }
        if let Some(bv) = b_hh
            && bv.shape() != [g]
        {
            return Err(invalid(format!("b_hh {:?} must be [{g}]", bv.shape())));
        }
        match (cell, c0) {
            (RecurrentCell::Lstm, Some(c)) if c.shape() == h0.shape() => {}
            (RecurrentCell::Lstm, c) => {
                return Err(invalid(format!("an LSTM needs c0 of h0's shape {:?}, got {c:?}", h0.shape())));
            }
            (_, Some(_)) => return Err(invalid(format!("only an LSTM takes c0, not {cell:?}"))),
            (_, None) => {}
        }
        let d = Dims { t, b, h, g };
        let x = self.value().contiguous();
        let x = x.as_slice().expect("contiguous");
        let w = w_hh.value().contiguous();
        // B = W_hh^T [H, G], packed once for every step's GEMM
        let wt = PackedB::new(MatRef::transposed(w.as_slice().expect("contiguous"), h, g))?;
        let bias = b_hh.map(|v| dense(v.value()));
        let bh = b * h;
        let sw = cell.saved_width() * h;
        let mut y = vec![0.0f32; cell.states() * t * bh];
        let mut saved = PooledBuf::zeros(t * b * sw);
        let h0v = dense(h0.value());
        let c0v = c0.map(|c| dense(c.value())).unwrap_or_default();
        let blocks = row_blocks(d, wt.kernel());
        let (hs, cs) = y.split_at_mut(t * bh);
        // per block, its rows of every step's h, c and saved gates
        let mut outs: Vec<[Vec<&mut [f32]>; 3]> = blocks.iter().map(|_| Default::default()).collect();
        for (which, (buf, width)) in [(hs, h), (cs, h), (&mut saved[..], sw)].into_iter().enumerate() {
            for step in buf.chunks_exact_mut((b * width).max(1)).take(t) {
                let mut rest = step;
                for (o, &(r0, r1)) in outs.iter_mut().zip(&blocks) {
                    let (mine, tail) = rest.split_at_mut((r1 - r0) * width);
                    o[which].push(mine);
                    rest = tail;
                }
            }
        }
        let run = |(&(r0, r1), [hs, cs, sv]): (&(usize, usize), [Vec<&mut [f32]>; 3])| {
            let f = BlockForward { cell, d, reverse, x, wt: &wt, bias: bias.as_deref(), r0, r1 };
            let c0 = if cell == RecurrentCell::Lstm { &c0v[r0 * h..r1 * h] } else { &[][..] };
            f.run(&h0v[r0 * h..r1 * h], c0, hs, cs, sv)
        };
        if blocks.len() == 1 {
            blocks.iter().zip(outs).try_for_each(run)?;
        } else {
            blocks.par_iter().zip(outs).try_for_each(run)?;
        }
        let value = Tensor::from_vec(y, &[cell.states(), t, b, h])?;
        let op = Op::Recurrent {
            cell,
            xp: self.clone(),
            w_hh: w_hh.clone(),
            b_hh: b_hh.cloned(),
            h0: h0.clone(),
            c0: c0.cloned(),
            reverse,
            saved,
        };
        Ok(Var::from_op(value, op))
    }
}

/// Sequence work (`2 T B H G` flops) below which one thread runs the whole
/// sequence: a fork-join costs a few microseconds, a 16 x 16 LSTM over 8
/// steps (1 MFLOP) about 10.
pub const RECURRENT_PAR_MIN_FLOPS: usize = 1 << 20;

/// The blocks of batch rows `[r0, r1)` that run a sequence independently
/// (each row's recurrence touches only its own row of `h` and `c`): one
/// block on one thread or for a small sequence, else up to one per thread,
/// each a whole number of the micro-kernel's `MR`-row tiles. The bits do not
/// depend on the split: every row sees the same operations whatever block
/// it is in (`gemm_packed_serial` gives any row split the same bits).
fn row_blocks(d: Dims, kernel: Kernel) -> Vec<(usize, usize)> {
    let flops = 2usize.saturating_mul(d.t).saturating_mul(d.b).saturating_mul(d.h).saturating_mul(d.g);
    let mr = kernel.tile().0;
    let tiles = d.b.div_ceil(mr);
    let n = if flops < RECURRENT_PAR_MIN_FLOPS { 1 } else { rayon::current_num_threads().min(tiles).max(1) };
    (0..n)
        .map(|i| {
            let (t0, t1) = (i * tiles / n, (i + 1) * tiles / n);
            ((t0 * mr).min(d.b), (t1 * mr).min(d.b))
        })
        .collect()
}

/// What one block of batch rows needs to run a sequence forward.
struct BlockForward<'a> {
    cell: RecurrentCell,
    /// The whole sequence's sizes (`b` is all rows).
    d: Dims,
    reverse: bool,
    /// `xp`, `[T, B, G]`.
    x: &'a [f32],
    /// `W_hh^T` packed.
    wt: &'a PackedB,
    bias: Option<&'a [f32]>,
    r0: usize,
    r1: usize,
}

impl BlockForward<'_> {
    /// Rows `r0..r1` of every step from the initial states `h0`, `c0` (those
    /// rows); writes the step's rows of `h` (`hs[t]`), `c` and the saved gates.
    fn run(
        &self,
        h0: &[f32],
        c0: &[f32],
        mut hs: Vec<&mut [f32]>,
        mut cs: Vec<&mut [f32]>,
        mut sv: Vec<&mut [f32]>,
    ) -> Result<()> {
        let (rows, g) = (self.r1 - self.r0, self.d.g);
        let d = Dims { b: rows, ..self.d };
        let mut a = vec![0.0f32; rows * g];
        let mut hp = h0.to_vec();
        let mut cp = c0.to_vec();
        for step in 0..d.t {
            let ti = d.time(step, self.reverse);
            // a <- h W_hh^T + b_hh
            let beta = fill_bias(&mut a, self.bias, g);
            gemm_packed_serial(1.0, MatRef::row_major(&hp, rows, d.h), self.wt, beta, &mut a)?;
            let base = ti * self.d.b * g;
            let xt = &self.x[base + self.r0 * g..base + self.r1 * g];
            let ht = &mut *hs[ti];
            match self.cell {
                // h' = tanh(xp + a)
                RecurrentCell::Tanh => {
                    ht.iter_mut().zip(xt.iter().zip(&a)).for_each(|(o, (x, a))| *o = x + a);
                    tanh_slice(ht);
                }
                // h' = max(xp + a, 0)
                RecurrentCell::Relu => {
                    ht.iter_mut().zip(xt.iter().zip(&a)).for_each(|(o, (x, a))| *o = (x + a).max(0.0))
                }
                RecurrentCell::Lstm => {
                    let ct = &mut *cs[ti];
                    lstm_forward_step(d, xt, &a, &cp, ht, ct, sv[ti]);
                    cp.copy_from_slice(ct);
                }
                RecurrentCell::Gru => gru_forward_step(d, xt, &a, &hp, ht, sv[ti]),
            }
            hp.copy_from_slice(ht);
        }
        Ok(())
    }
}

/// One LSTM step over `[B, 4H]` pre-activations `xt + a`:
/// `c' = σ(f) c + σ(i) tanh(g)`, `h' = σ(o) tanh(c')`; keeps `(i, f, g, o, tanh c')`
/// per row in `sv`, where the activations are computed in place.
fn lstm_forward_step(
    d: Dims,
    xt: &[f32],
    a: &[f32],
    cp: &[f32],
    ht: &mut [f32],
    ct: &mut [f32],
    sv: &mut [f32],
) {
    let (h, g) = (d.h, d.g);
    for r in 0..d.b {
        let (x, a) = (&xt[r * g..(r + 1) * g], &a[r * g..(r + 1) * g]);
        let s = &mut sv[r * 5 * h..(r + 1) * 5 * h];
        s[..g].iter_mut().zip(x.iter().zip(a)).for_each(|(s, (x, a))| *s = x + a);
        sigmoid_slice(&mut s[..2 * h]);
        tanh_slice(&mut s[2 * h..3 * h]);
        sigmoid_slice(&mut s[3 * h..4 * h]);
        let (gates, tc) = s.split_at_mut(4 * h);
        let (c, hh) = (&mut ct[r * h..(r + 1) * h], &mut ht[r * h..(r + 1) * h]);
        for j in 0..h {
            // c' = f c + i g
            c[j] = gates[h + j] * cp[r * h + j] + gates[j] * gates[2 * h + j];
            tc[j] = c[j];
        }
        tanh_slice(tc);
        // h' = o tanh(c')
        hh.iter_mut().zip(gates[3 * h..].iter().zip(tc.iter())).for_each(|(y, (o, t))| *y = o * t);
    }
}

/// One GRU step: `r = σ(x_r + a_r)`, `z = σ(x_z + a_z)`, `n = tanh(x_n + r a_n)`,
/// `h' = n + z (h - n)`; keeps `(r, z, n, a_n)` per row in `sv`.
fn gru_forward_step(d: Dims, xt: &[f32], a: &[f32], hp: &[f32], ht: &mut [f32], sv: &mut [f32]) {
    let (h, g) = (d.h, d.g);
    for r in 0..d.b {
        let (x, a) = (&xt[r * g..(r + 1) * g], &a[r * g..(r + 1) * g]);
        let s = &mut sv[r * 4 * h..(r + 1) * 4 * h];
        s[..2 * h].iter_mut().zip(x.iter().zip(a)).for_each(|(s, (x, a))| *s = x + a);
        sigmoid_slice(&mut s[..2 * h]);
        s[3 * h..].copy_from_slice(&a[2 * h..]);
        for j in 0..h {
            s[2 * h + j] = x[2 * h + j] + s[j] * s[3 * h + j];
        }
        tanh_slice(&mut s[2 * h..3 * h]);
        for j in 0..h {
            let (z, n) = (s[h + j], s[2 * h + j]);
            ht[r * h + j] = n + z * (hp[r * h + j] - n);
        }
    }
}

/// Gradients of a fused recurrent sequence with respect to its inputs.
pub(crate) struct RecurrentGrads {
    /// `d xp`, `[T, B, G H]`.
    pub(crate) xp: Tensor,
    /// `d W_hh`, `[G H, H]`.
    pub(crate) w_hh: Tensor,
    /// `d b_hh`, `[G H]`.
    pub(crate) b_hh: Tensor,
    /// `d h0`, `[B, H]` (zeros when not wanted).
    pub(crate) h0: Tensor,
    /// `d c0` (LSTM), `[B, H]`.
    pub(crate) c0: Option<Tensor>,
}

/// The inputs of [`recurrent_backward`] besides the upstream gradient.
pub(crate) struct RecurrentSaved<'a> {
    pub(crate) cell: RecurrentCell,
    pub(crate) xp: &'a Tensor,
    pub(crate) w_hh: &'a Tensor,
    pub(crate) h0: &'a Tensor,
    pub(crate) c0: Option<&'a Tensor>,
    pub(crate) reverse: bool,
    pub(crate) saved: &'a [f32],
    /// The op's output `[S, T, B, H]`.
    pub(crate) y: &'a Tensor,
    /// Whether the gradients of the initial states are wanted (else the
    /// last step's `dh_prev = dA W_hh` is skipped and they are zeros).
    pub(crate) initial_grads: bool,
}

/// Back-propagation through time of one sequence (the formulas are beside
/// the `Recurrent` arm in `backward.rs`): per block of batch rows (as in
/// forward, see [`row_blocks`]), steps in reverse processing order, each one
/// elementwise pass and one GEMM `dh_prev = dA W_hh` with `W_hh` packed once;
/// then `dW_hh = dA^T H_prev` over all `T B` rows in one GEMM (split over
/// its outputs) and `db_hh` as column sums in row order (f64).
pub(crate) fn recurrent_backward(s: &RecurrentSaved<'_>, g: &Tensor) -> Result<RecurrentGrads> {
    let (cell, reverse) = (s.cell, s.reverse);
    let xs = s.xp.shape();
    let (t, b, h) = (xs[0], xs[1], s.h0.shape()[1]);
    let gw = cell.gates() * h;
    let d = Dims { t, b, h, g: gw };
    if g.shape() != s.y.shape() {
        return Err(AutogradError::Tensor(TensorError::ShapeMismatch {
            op: "recurrent backward",
            lhs: s.y.shape().to_vec(),
            rhs: g.shape().to_vec(),
        }));
    }
    let bh = b * h;
    let gv = g.contiguous();
    let gv = gv.as_slice().expect("contiguous");
    let yv = s.y.contiguous();
    let yv = yv.as_slice().expect("contiguous");
    let w = s.w_hh.contiguous();
    // B = W_hh [G, H], packed once for every step's dh_prev = dA W_hh
    let wp = PackedB::new(MatRef::row_major(w.as_slice().expect("contiguous"), gw, h))?;
    let h0 = dense(s.h0);
    let c0 = s.c0.map(dense).unwrap_or_default();
    let sw = cell.saved_width() * h;
    let ys_h = &yv[..t * bh];
    // gradients of the pre-activations: dxp (of xp) and dhh (of h W_hh^T + b_hh);
    // they differ only in a GRU's n block
    let gru = cell == RecurrentCell::Gru;
    let mut dxp = vec![0.0f32; t * b * gw];
    let mut dhh = PooledBuf::zeros(if gru { t * b * gw } else { 0 });
    let mut dh0 = vec![0.0f32; bh];
    let mut dc0 = vec![0.0f32; if cell == RecurrentCell::Lstm { bh } else { 0 }];
    let blocks = row_blocks(d, wp.kernel());
    // per block, its rows of every step's dxp and dhh, and of dh0, dc0
    type Outs<'a> = ([Vec<&'a mut [f32]>; 2], [&'a mut [f32]; 2]);
    let mut outs: Vec<Outs<'_>> = Vec::with_capacity(blocks.len());
    {
        let (mut rh, mut rc) = (&mut dh0[..], &mut dc0[..]);
        for &(r0, r1) in &blocks {
            let (mh, th) = rh.split_at_mut((r1 - r0) * h);
            let (mc, tc) = rc.split_at_mut(if cell == RecurrentCell::Lstm { (r1 - r0) * h } else { 0 });
            outs.push((Default::default(), [mh, mc]));
            (rh, rc) = (th, tc);
        }
    }
    for (which, buf) in [&mut dxp[..], &mut dhh[..]].into_iter().enumerate() {
        for step in buf.chunks_exact_mut((b * gw).max(1)).take(t) {
            let mut rest = step;
            for (o, &(r0, r1)) in outs.iter_mut().zip(&blocks) {
                let (mine, tail) = rest.split_at_mut((r1 - r0) * gw);
                o.0[which].push(mine);
                rest = tail;
            }
        }
    }
    let ctx = BlockBackward { cell, d, reverse, gv, yv, saved: s.saved, sw, w: &wp, h0: &h0, c0: &c0 };
    let run = |(&(r0, r1), ([dx, dhh], [dh0, dc0])): (&(usize, usize), Outs<'_>)| {
        ctx.run(r0, r1, s.initial_grads, dx, dhh, dh0, dc0)
    };
    if blocks.len() == 1 {
        blocks.iter().zip(outs).try_for_each(run)?;
    } else {
        blocks.par_iter().zip(outs).try_for_each(run)?;
    }
    // the state each step started from, in time order: [T * B, H]
    let mut hprev = PooledBuf::zeros(t * bh);
    for ti in 0..t {
        let src = match d.prev(ti, reverse) {
            Some(p) => &ys_h[p * bh..(p + 1) * bh],
            None => &h0[..],
        };
        hprev[ti * bh..(ti + 1) * bh].copy_from_slice(src);
    }
    let da_all: &[f32] = if gru { &dhh } else { &dxp };
    // dW_hh = sum_t dA_t^T h_prev_t: [G H, T B] x [T B, H]
    let mut dw = vec![0.0f32; gw * h];
    gemm_slices(
        1.0,
        MatRef::transposed(da_all, gw, t * b),
        MatRef::row_major(&hprev, t * b, h),
        0.0,
        &mut dw,
    )?;
    let db = column_sums(da_all, gw);
    Ok(RecurrentGrads {
        xp: Tensor::from_vec(dxp, &[t, b, gw])?,
        w_hh: Tensor::from_vec(dw, &[gw, h])?,
        b_hh: Tensor::from_vec(db, &[gw])?,
        h0: Tensor::from_vec(dh0, &[b, h])?,
        c0: (cell == RecurrentCell::Lstm).then(|| Tensor::from_vec(dc0, &[b, h])).transpose()?,
    })
}

/// Columns per chunk of [`column_sums`] when it runs on several threads.
const SUM_CHUNK: usize = 64;

/// Column sums of the row-major `[rows, cols]` matrix `m` (`db_hh`), each
/// accumulated in f64 over the rows in order and rounded once. Above
/// `ops::PAR_THRESHOLD` elements, chunks of [`SUM_CHUNK`] columns run on
/// the pool's threads; every column is still one in-order sum, so the bits
/// do not depend on the thread count.
fn column_sums(m: &[f32], cols: usize) -> Vec<f32> {
    let sum = |c0: usize, out: &mut [f32]| {
        let mut acc = vec![0.0f64; out.len()];
        for row in m.chunks_exact(cols) {
            acc.iter_mut().zip(&row[c0..c0 + out.len()]).for_each(|(a, &v)| *a += v as f64);
        }
        out.iter_mut().zip(acc).for_each(|(o, a)| *o = a as f32);
    };
    let mut out = vec![0.0f32; cols];
    if cols == 0 {
        return out;
    }
    if m.len() < nw_tensor::ops::PAR_THRESHOLD || rayon::current_num_threads() == 1 {
        sum(0, &mut out);
    } else {
        out.par_chunks_mut(SUM_CHUNK).enumerate().for_each(|(i, o)| sum(i * SUM_CHUNK, o));
    }
    out
}

/// What every block of batch rows reads to run a sequence backward.
struct BlockBackward<'a> {
    cell: RecurrentCell,
    /// The whole sequence's sizes (`b` is all rows).
    d: Dims,
    reverse: bool,
    /// Upstream gradient `[S, T, B, H]`.
    gv: &'a [f32],
    /// The op's output `[S, T, B, H]`.
    yv: &'a [f32],
    /// Saved gates `[T, B, sw]`.
    saved: &'a [f32],
    sw: usize,
    /// `W_hh` packed (B of `dA W_hh`).
    w: &'a PackedB,
    h0: &'a [f32],
    c0: &'a [f32],
}

impl<'x> BlockBackward<'x> {
    /// Rows `r0..r1` back through time: writes their rows of every step's
    /// `dxp` (`dx[t]`) and, for a GRU, `dhh`; leaves the gradients of the
    /// initial states in `dh0`, `dc0` (zeros unless `initial`).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        r0: usize,
        r1: usize,
        initial: bool,
        mut dx: Vec<&mut [f32]>,
        mut dhh: Vec<&mut [f32]>,
        dh0: &mut [f32],
        dc0: &mut [f32],
    ) -> Result<()> {
        let (t, h, gw, bt) = (self.d.t, self.d.h, self.d.g, self.d.b);
        let rows = r1 - r0;
        let d = Dims { b: rows, ..self.d };
        let bh = bt * h;
        // this block's rows of step ti of a [T, B, H] array at `off`
        let at = |v: &'x [f32], off: usize, ti: usize| &v[off + ti * bh + r0 * h..off + ti * bh + r1 * h];
        let gru = self.cell == RecurrentCell::Gru;
        let mut dh = vec![0.0f32; rows * h];
        let mut dc = vec![0.0f32; if self.cell == RecurrentCell::Lstm { rows * h } else { 0 }];
        let mut direct = vec![0.0f32; if gru { rows * h } else { 0 }];
        let h0 = &self.h0[r0 * h..r1 * h];
        let c0 = if self.c0.is_empty() { &[][..] } else { &self.c0[r0 * h..r1 * h] };
        for step in (0..t).rev() {
            let ti = d.time(step, self.reverse);
            // dh <- upstream gradient of h_t + what flowed back from the next step
            dh.iter_mut().zip(at(self.gv, 0, ti)).for_each(|(d, g)| *d += g);
            let ht = at(self.yv, 0, ti);
            let sv = &self.saved[ti * bt * self.sw + r0 * self.sw..ti * bt * self.sw + r1 * self.sw];
            let da = &mut *dx[ti];
            match self.cell {
                // da = dh (1 - h'^2)
                RecurrentCell::Tanh => {
                    da.iter_mut().zip(dh.iter().zip(ht)).for_each(|(o, (g, y))| *o = g * (1.0 - y * y))
                }
                // da = dh [h' > 0]
                RecurrentCell::Relu => da
                    .iter_mut()
                    .zip(dh.iter().zip(ht))
                    .for_each(|(o, (g, y))| *o = if *y > 0.0 { *g } else { 0.0 }),
                RecurrentCell::Lstm => {
                    dc.iter_mut().zip(at(self.gv, t * bh, ti)).for_each(|(d, g)| *d += g);
                    let cprev = match d.prev(ti, self.reverse) {
                        Some(p) => at(self.yv, t * bh, p),
                        None => c0,
                    };
                    lstm_backward_step(d, sv, cprev, &dh, &mut dc, da);
                }
                RecurrentCell::Gru => {
                    let hp = match d.prev(ti, self.reverse) {
                        Some(p) => at(self.yv, 0, p),
                        None => h0,
                    };
                    gru_backward_step(d, sv, hp, &dh, &mut direct, da, dhh[ti]);
                }
            }
            if step == 0 && !initial {
                dh.fill(0.0);
                dc.fill(0.0);
                break;
            }
            // dh_prev = dA W_hh (+ dh z for a GRU)
            let da: &[f32] = if gru { dhh[ti] } else { dx[ti] };
            gemm_packed_serial(1.0, MatRef::row_major(da, rows, gw), self.w, 0.0, &mut dh)?;
            if gru {
                dh.iter_mut().zip(&direct).for_each(|(d, z)| *d += z);
            }
        }
        dh0.copy_from_slice(&dh);
        dc0.copy_from_slice(&dc);
        Ok(())
    }
}
/// One LSTM step backward: from `dh`, `dc` (of `h'`, `c'`) to the
/// pre-activation gradients `da` `[B, 4H]`; `dc` becomes that of `c`.
fn lstm_backward_step(d: Dims, sv: &[f32], cprev: &[f32], dh: &[f32], dc: &mut [f32], da: &mut [f32]) {
    let (h, g) = (d.h, d.g);
    for r in 0..d.b {
        let s = &sv[r * 5 * h..(r + 1) * 5 * h];
        let out = &mut da[r * g..(r + 1) * g];
        for j in 0..h {
            let k = r * h + j;
            let (i, f, gg, o, tc) = (s[j], s[h + j], s[2 * h + j], s[3 * h + j], s[4 * h + j]);
            let dhv = dh[k];
            let dcv = dc[k] + dhv * o * (1.0 - tc * tc);
            out[j] = dcv * gg * i * (1.0 - i);
            out[h + j] = dcv * cprev[k] * f * (1.0 - f);
            out[2 * h + j] = dcv * i * (1.0 - gg * gg);
            out[3 * h + j] = dhv * tc * o * (1.0 - o);
            dc[k] = dcv * f;
        }
    }
}

/// One GRU step backward: pre-activation gradients of `xp` (`dx`) and of
/// `h W_hh^T + b_hh` (`dhh`), and the direct part `dh z` of `dh_prev`.
fn gru_backward_step(
    d: Dims,
    sv: &[f32],
    hp: &[f32],
    dh: &[f32],
    direct: &mut [f32],
    dx: &mut [f32],
    dhh: &mut [f32],
) {
    let (h, g) = (d.h, d.g);
    for r in 0..d.b {
        let s = &sv[r * 4 * h..(r + 1) * 4 * h];
        let (ox, oh) = (&mut dx[r * g..(r + 1) * g], &mut dhh[r * g..(r + 1) * g]);
        for j in 0..h {
            let k = r * h + j;
            let (rg, z, n, an) = (s[j], s[h + j], s[2 * h + j], s[3 * h + j]);
            let dhv = dh[k];
            let dan = dhv * (1.0 - z) * (1.0 - n * n);
            let dar = dan * an * rg * (1.0 - rg);
            let daz = dhv * (hp[k] - n) * z * (1.0 - z);
            ox[j] = dar;
            ox[h + j] = daz;
            ox[2 * h + j] = dan;
            oh[j] = dar;
            oh[h + j] = daz;
            oh[2 * h + j] = dan * rg;
            direct[k] = dhv * z;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PooledBuf;

    #[test]
    fn pooled_buffers_come_back_zeroed() {
        let mut a = PooledBuf::zeros(1000);
        a.iter_mut().for_each(|v| *v = f32::NAN);
        let ptr = a.as_ptr();
        drop(a);
        // the same allocation, all zeros again
        let b = PooledBuf::zeros(600);
        assert_eq!(b.as_ptr(), ptr);
        assert!(b.len() == 600 && b.iter().all(|&v| v == 0.0));
        assert!(PooledBuf::zeros(0).is_empty());
    }
}
