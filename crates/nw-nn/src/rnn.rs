//! Recurrent layers [`Rnn`], [`Lstm`], [`Gru`] with PyTorch's parameter
//! layout, names, gate order and initialisation.
//!
//! Each layer is unrolled over time from autograd primitives: the input
//! projection of all time steps is one GEMM (`x W_ih^T + b_ih` over
//! `[batch * time, input]`), then each step adds `h W_hh^T + b_hh` and
//! applies the cell. The backward sweep is iterative, and the per-step
//! slices of the projection are differentiated in place, so long sequences
//! cost memory linear in their length and no stack.
//!
//! Cells (`*` elementwise, `σ` the sigmoid; gates are consecutive blocks of
//! `hidden` rows of `W_ih`, `W_hh`, `b_ih`, `b_hh`):
//! - RNN: `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)` (or relu);
//! - LSTM, gates `(i, f, g, o)`: `i = σ(.)`, `f = σ(.)`, `g = tanh(.)`,
//!   `o = σ(.)`, `c' = f * c + i * g`, `h' = o * tanh(c')`;
//! - GRU, gates `(r, z, n)`: `r = σ(W_ir x + b_ir + W_hr h + b_hr)`,
//!   `z = σ(...)`, `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`,
//!   `h' = (1 - z) * n + z * h`.

use nw_autograd::{Param, Var};
use nw_tensor::{Rng, Tensor};

use crate::error::{NnError, Result};
use crate::module::Module;

/// The nonlinearity of a plain [`Rnn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RnnNonlinearity {
    /// `tanh` (PyTorch's default).
    #[default]
    Tanh,
    /// `relu`.
    Relu,
}

/// Sizes and options of a recurrent layer stack (PyTorch's constructor
/// arguments; defaults `num_layers = 1`, `bias = true`, `batch_first = false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RnnConfig {
    /// Features of each input step.
    pub input_size: usize,
    /// Features of the hidden state.
    pub hidden_size: usize,
    /// Stacked layers; layer `k > 0` reads the hidden states of layer `k - 1`.
    pub num_layers: usize,
    /// Whether the layers have `bias_ih` and `bias_hh`.
    pub bias: bool,
    /// Input and output as `[batch, time, features]` (else `[time, batch, features]`).
    pub batch_first: bool,
}

impl RnnConfig {
    /// One layer with biases, time-major input (PyTorch's defaults).
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        RnnConfig { input_size, hidden_size, num_layers: 1, bias: true, batch_first: false }
    }

    /// Sets `num_layers`.
    pub fn num_layers(mut self, n: usize) -> Self {
        self.num_layers = n;
        self
    }

    /// Sets `batch_first`.
    pub fn batch_first(mut self, b: bool) -> Self {
        self.batch_first = b;
        self
    }

    /// Sets `bias`.
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }
}

/// The parameters of one layer of a recurrent stack (PyTorch names
/// `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`).
#[derive(Debug, Clone)]
pub struct RecurrentLayer {
    /// `[gates * hidden, input]` (input is `hidden` above the first layer).
    pub weight_ih: Param,
    /// `[gates * hidden, hidden]`.
    pub weight_hh: Param,
    /// `[gates * hidden]`.
    pub bias_ih: Option<Param>,
    /// `[gates * hidden]`.
    pub bias_hh: Option<Param>,
}

/// A recurrent state: `h` `[num_layers, batch, hidden]`, and for an LSTM the
/// cell state `c` of the same shape.
#[derive(Debug, Clone)]
pub struct RnnState {
    /// Hidden state per layer.
    pub h: Var,
    /// Cell state per layer (LSTM only).
    pub c: Option<Var>,
}

/// What a recurrent stack returns.
#[derive(Debug, Clone)]
pub struct RnnOutput {
    /// The last layer's hidden state at every step: `[batch, time, hidden]`
    /// (batch-first) or `[time, batch, hidden]`.
    pub output: Var,
    /// The final hidden state of every layer, `[num_layers, batch, hidden]`.
    pub h_n: Var,
    /// The final cell state of every layer (LSTM only).
    pub c_n: Option<Var>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CellKind {
    Rnn(RnnNonlinearity),
    Lstm,
    Gru,
}

impl CellKind {
    fn gates(self) -> usize {
        match self {
            CellKind::Rnn(_) => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }
    fn name(self) -> &'static str {
        match self {
            CellKind::Rnn(_) => "RNN",
            CellKind::Lstm => "LSTM",
            CellKind::Gru => "GRU",
        }
    }
}

/// The shared machinery of the three recurrent layers.
#[derive(Debug, Clone)]
struct Recurrent {
    kind: CellKind,
    cfg: RnnConfig,
    layers: Vec<RecurrentLayer>,
}

impl Recurrent {
    /// Every parameter `U(-1/sqrt(hidden), 1/sqrt(hidden))`, drawn in
    /// PyTorch's parameter order (per layer: w_ih, w_hh, b_ih, b_hh).
    fn new(kind: CellKind, cfg: RnnConfig, rng: &mut Rng) -> Result<Self> {
        let what = kind.name();
        if cfg.input_size == 0 || cfg.hidden_size == 0 || cfg.num_layers == 0 {
            return Err(NnError::config(what, format!("sizes must be positive, got {cfg:?}")));
        }
        let h = cfg.hidden_size;
        let too_large = || {
            NnError::config(
                what,
                format!(
                    "{cfg:?} has more than {} parameters (nw_tensor::MAX_ELEMENTS)",
                    nw_tensor::MAX_ELEMENTS
                ),
            )
        };
        // Parameter count, checked before anything is allocated:
        // layer 0: g (input + h) + 2 g [bias], layers 1..: g (h + h) + 2 g, g = gates * h.
        let g = kind.gates().checked_mul(h).ok_or_else(too_large)?;
        let per_layer = |inp: usize| -> Option<usize> {
            let w = g.checked_mul(inp.checked_add(h)?)?;
            w.checked_add(if cfg.bias { g.checked_mul(2)? } else { 0 })
        };
        per_layer(h)
            .and_then(|rest| rest.checked_mul(cfg.num_layers - 1))
            .and_then(|rest| rest.checked_add(per_layer(cfg.input_size)?))
            .filter(|&n| n <= nw_tensor::MAX_ELEMENTS)
            .ok_or_else(too_large)?;
        let k = 1.0 / (h as f32).sqrt();
        // the same draws as Tensor::rand_uniform(shape, -k, k): U(-k, k) in f64, row-major
        let (lo, hi) = ((-k) as f64, k as f64);
        let mut draw = |shape: &[usize]| -> Result<Param> {
            let t = Tensor::try_from_fn(shape, || rng.uniform(lo, hi) as f32)
                .map_err(|e| NnError::config(what, e.to_string()))?;
            Ok(Param::new(t))
        };
        let mut layers = Vec::new();
        for l in 0..cfg.num_layers {
            let inp = if l == 0 { cfg.input_size } else { h };
            let weight_ih = draw(&[g, inp])?;
            let weight_hh = draw(&[g, h])?;
            let bias_ih = if cfg.bias { Some(draw(&[g])?) } else { None };
            let bias_hh = if cfg.bias { Some(draw(&[g])?) } else { None };
            layers.push(RecurrentLayer { weight_ih, weight_hh, bias_ih, bias_hh });
        }
        Ok(Recurrent { kind, cfg, layers })
    }

    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut v = Vec::new();
        for (l, p) in self.layers.iter().enumerate() {
            v.push((format!("weight_ih_l{l}"), p.weight_ih.clone()));
            v.push((format!("weight_hh_l{l}"), p.weight_hh.clone()));
            if let Some(b) = &p.bias_ih {
                v.push((format!("bias_ih_l{l}"), b.clone()));
            }
            if let Some(b) = &p.bias_hh {
                v.push((format!("bias_hh_l{l}"), b.clone()));
            }
        }
        v
    }

    /// Checks a state tensor `[num_layers, batch, hidden]`.
    fn check_state(&self, what: &str, v: &Var, batch: usize) -> Result<()> {
        let want = [self.cfg.num_layers, batch, self.cfg.hidden_size];
        if v.shape() != want {
            return Err(NnError::input(
                self.kind.name(),
                format!("{what} has shape {:?}, expected {want:?}", v.shape()),
            ));
        }
        Ok(())
    }

    fn forward(&self, x: &Var, state: Option<&RnnState>) -> Result<RnnOutput> {
        let what = self.kind.name();
        let s = x.shape().to_vec();
        if s.len() != 3 || s[2] != self.cfg.input_size {
            return Err(NnError::input(
                what,
                format!(
                    "input {s:?} must be [{}] with {} features",
                    if self.cfg.batch_first { "batch, time, features" } else { "time, batch, features" },
                    self.cfg.input_size
                ),
            ));
        }
        // work batch-first: [B, T, F]
        let x = if self.cfg.batch_first { x.clone() } else { x.transpose(0, 1)? };
        let (b, t) = (x.shape()[0], x.shape()[1]);
        if t == 0 || b == 0 {
            return Err(NnError::input(what, format!("input {s:?} has no time step or no batch")));
        }
        let hs = self.cfg.hidden_size;
        let lstm = self.kind == CellKind::Lstm;
        if let Some(st) = state {
            self.check_state("h_0", &st.h, b)?;
            match (&st.c, lstm) {
                (Some(c), true) => self.check_state("c_0", c, b)?,
                (None, true) => return Err(NnError::input(what, "an LSTM state needs c_0")),
                (Some(_), false) => return Err(NnError::input(what, "only an LSTM state has c_0")),
                (None, false) => {}
            }
        }
        let zeros = || Var::constant(Tensor::zeros(&[b, hs]));
        let initial = |v: &Option<Var>, l: usize| -> Result<Var> {
            match v {
                Some(v) => Ok(v.narrow(0, l, 1)?.reshape(&[b, hs])?),
                None => Ok(zeros()),
            }
        };
        let mut seq = x;
        let (mut h_n, mut c_n) = (Vec::new(), Vec::new());
        for (l, p) in self.layers.iter().enumerate() {
            let mut h = initial(&state.map(|s| s.h.clone()), l)?;
            let mut c = if lstm { Some(initial(&state.and_then(|s| s.c.clone()), l)?) } else { None };
            let (out, h_last, c_last) = self.layer(p, &seq, &mut h, &mut c)?;
            seq = out;
            h_n.push(h_last.reshape(&[1, b, hs])?);
            if let Some(c) = c_last {
                c_n.push(c.reshape(&[1, b, hs])?);
            }
        }
        let output = if self.cfg.batch_first { seq } else { seq.transpose(0, 1)? };
        let h_n = Var::concat(&h_n, 0)?;
        let c_n = if lstm { Some(Var::concat(&c_n, 0)?) } else { None };
        Ok(RnnOutput { output, h_n, c_n })
    }

    /// One layer over the whole sequence `[B, T, F]` -> `([B, T, H], h_T, c_T)`.
    #[allow(clippy::type_complexity)]
    fn layer(
        &self,
        p: &RecurrentLayer,
        seq: &Var,
        h: &mut Var,
        c: &mut Option<Var>,
    ) -> Result<(Var, Var, Option<Var>)> {
        let (b, t, f) = (seq.shape()[0], seq.shape()[1], seq.shape()[2]);
        let hs = self.cfg.hidden_size;
        let g = self.kind.gates() * hs;
        let w_ih = Var::param(&p.weight_ih);
        let w_hh = Var::param(&p.weight_hh);
        let b_ih = p.bias_ih.as_ref().map(Var::param);
        let b_hh = p.bias_hh.as_ref().map(Var::param);
        // input projections of every step at once: [B*T, F] -> [B, T, G]
        let xp = seq.reshape(&[b * t, f])?.linear(&w_ih, b_ih.as_ref())?.reshape(&[b, t, g])?;
        let gate = |v: &Var, k: usize| v.narrow(1, k * hs, hs);
        let mut outs = Vec::with_capacity(t);
        for s in 0..t {
            let xs = xp.narrow(1, s, 1)?.reshape(&[b, g])?;
            let hp = h.linear(&w_hh, b_hh.as_ref())?;
            let next = match self.kind {
                CellKind::Rnn(RnnNonlinearity::Tanh) => xs.add(&hp)?.tanh(),
                CellKind::Rnn(RnnNonlinearity::Relu) => xs.add(&hp)?.relu(),
                CellKind::Lstm => {
                    let a = xs.add(&hp)?;
                    let i = gate(&a, 0)?.sigmoid();
                    let fg = gate(&a, 1)?.sigmoid();
                    let gg = gate(&a, 2)?.tanh();
                    let o = gate(&a, 3)?.sigmoid();
                    let prev = c.take().expect("an LSTM carries a cell state");
                    let cn = fg.mul(&prev)?.add(&i.mul(&gg)?)?;
                    let hn = o.mul(&cn.tanh())?;
                    *c = Some(cn);
                    hn
                }
                CellKind::Gru => {
                    let r = gate(&xs, 0)?.add(&gate(&hp, 0)?)?.sigmoid();
                    let z = gate(&xs, 1)?.add(&gate(&hp, 1)?)?.sigmoid();
                    let n = gate(&xs, 2)?.add(&r.mul(&gate(&hp, 2)?)?)?.tanh();
                    // (1 - z) n + z h = n + z (h - n)
                    n.add(&z.mul(&h.sub(&n)?)?)?
                }
            };
            outs.push(next.reshape(&[b, 1, hs])?);
            *h = next;
        }
        Ok((Var::concat(&outs, 1)?, h.clone(), c.clone()))
    }

    fn describe(&self) -> String {
        let c = self.cfg;
        let nl = match self.kind {
            CellKind::Rnn(RnnNonlinearity::Relu) => ", nonlinearity='relu'",
            _ => "",
        };
        format!(
            "{}({}, {}, num_layers={}, bias={}, batch_first={}{nl})",
            self.kind.name(),
            c.input_size,
            c.hidden_size,
            c.num_layers,
            c.bias,
            c.batch_first
        )
    }
}

macro_rules! recurrent_layer {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(Recurrent);

        impl $name {
            /// Runs the stack from `state` (zeros when `None`) and returns the
            /// output sequence and the final states.
            pub fn forward_with_state(&self, x: &Var, state: Option<&RnnState>) -> Result<RnnOutput> {
                self.0.forward(x, state)
            }

            /// The configuration.
            pub fn config(&self) -> RnnConfig {
                self.0.cfg
            }

            /// The parameters of each layer.
            pub fn layers(&self) -> &[RecurrentLayer] {
                &self.0.layers
            }
        }

        impl Module for $name {
            /// The output sequence from a zero state (use
            /// `forward_with_state` for the final states).
            fn forward(&self, x: &Var) -> Result<Var> {
                Ok(self.0.forward(x, None)?.output)
            }
            fn named_parameters(&self) -> Vec<(String, Param)> {
                self.0.named_parameters()
            }
            fn describe(&self) -> String {
                self.0.describe()
            }
        }
    };
}

recurrent_layer!(
    /// An Elman RNN stack (torch `nn.RNN`).
    ///
    /// ```
    /// use nw_autograd::Var;
    /// use nw_nn::{Rnn, RnnConfig, RnnNonlinearity, Module};
    /// use nw_tensor::{Rng, Tensor};
    /// let cfg = RnnConfig::new(3, 4).batch_first(true).num_layers(2);
    /// let rnn = Rnn::new(cfg, RnnNonlinearity::Tanh, &mut Rng::new(0)).unwrap();
    /// let out = rnn.forward_with_state(&Var::constant(Tensor::zeros(&[2, 5, 3])), None).unwrap();
    /// assert_eq!(out.output.shape(), &[2, 5, 4]);
    /// assert_eq!(out.h_n.shape(), &[2, 2, 4]);
    /// assert_eq!(rnn.named_parameters()[4].0, "weight_ih_l1");
    /// ```
    Rnn
);
recurrent_layer!(
    /// A long short-term memory stack (torch `nn.LSTM`), gates `(i, f, g, o)`.
    ///
    /// ```
    /// use nw_autograd::Var;
    /// use nw_nn::{Lstm, RnnConfig};
    /// use nw_tensor::{Rng, Tensor};
    /// let lstm = Lstm::new(RnnConfig::new(3, 4), &mut Rng::new(0)).unwrap();
    /// // time-major input [time, batch, features]
    /// let out = lstm.forward_with_state(&Var::constant(Tensor::zeros(&[5, 2, 3])), None).unwrap();
    /// assert_eq!(out.output.shape(), &[5, 2, 4]);
    /// assert_eq!(out.c_n.unwrap().shape(), &[1, 2, 4]);
    /// assert_eq!(lstm.layers()[0].weight_ih.shape(), vec![16, 3]);
    /// ```
    Lstm
);
recurrent_layer!(
    /// A gated recurrent unit stack (torch `nn.GRU`), gates `(r, z, n)`.
    Gru
);

impl Rnn {
    /// A stack initialised as PyTorch does.
    pub fn new(cfg: RnnConfig, nonlinearity: RnnNonlinearity, rng: &mut Rng) -> Result<Self> {
        Ok(Rnn(Recurrent::new(CellKind::Rnn(nonlinearity), cfg, rng)?))
    }
}

impl Lstm {
    /// A stack initialised as PyTorch does.
    pub fn new(cfg: RnnConfig, rng: &mut Rng) -> Result<Self> {
        Ok(Lstm(Recurrent::new(CellKind::Lstm, cfg, rng)?))
    }
}

impl Gru {
    /// A stack initialised as PyTorch does.
    pub fn new(cfg: RnnConfig, rng: &mut Rng) -> Result<Self> {
        Ok(Gru(Recurrent::new(CellKind::Gru, cfg, rng)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_bounds_and_names() {
        let g = Gru::new(RnnConfig::new(3, 16).num_layers(2).bias(false), &mut Rng::new(0)).unwrap();
        // U(-1/4, 1/4) for hidden 16
        for (n, p) in g.named_parameters() {
            assert!(p.value().to_vec().iter().all(|v| v.abs() <= 0.25), "{n}");
        }
        let names: Vec<String> = g.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"]);
        assert_eq!(g.layers()[1].weight_ih.shape(), vec![48, 16]);
        assert!(Lstm::new(RnnConfig::new(3, 0), &mut Rng::new(0)).is_err());
    }

    #[test]
    fn rnn_step_by_hand() {
        // one step, one unit: h = tanh(w_ih x + b_ih + w_hh h0 + b_hh) with
        // w_ih = 0.5, w_hh = 2, biases 0.1 and 0.2, x = 1, h0 = 0.25: tanh(1.3)
        let r = Rnn::new(RnnConfig::new(1, 1).batch_first(true), RnnNonlinearity::Tanh, &mut Rng::new(0))
            .unwrap();
        let l = &r.layers()[0];
        l.weight_ih.set(Tensor::from_vec(vec![0.5], &[1, 1]).unwrap()).unwrap();
        l.weight_hh.set(Tensor::from_vec(vec![2.0], &[1, 1]).unwrap()).unwrap();
        l.bias_ih.as_ref().unwrap().set(Tensor::from_vec(vec![0.1], &[1]).unwrap()).unwrap();
        l.bias_hh.as_ref().unwrap().set(Tensor::from_vec(vec![0.2], &[1]).unwrap()).unwrap();
        let x = Var::constant(Tensor::ones(&[1, 1, 1]));
        let h0 = RnnState { h: Var::constant(Tensor::full(&[1, 1, 1], 0.25)), c: None };
        let out = r.forward_with_state(&x, Some(&h0)).unwrap();
        assert!((out.h_n.value().to_vec()[0] - 1.3f32.tanh()).abs() < 1e-7);
    }

    #[test]
    fn state_and_input_errors() {
        let l = Lstm::new(RnnConfig::new(3, 4), &mut Rng::new(0)).unwrap();
        let x = Var::constant(Tensor::zeros(&[5, 2, 3]));
        let h = Var::constant(Tensor::zeros(&[1, 2, 4]));
        assert!(l.forward_with_state(&x, Some(&RnnState { h: h.clone(), c: None })).is_err());
        let bad = RnnState { h: Var::constant(Tensor::zeros(&[1, 3, 4])), c: Some(h.clone()) };
        assert!(l.forward_with_state(&x, Some(&bad)).is_err());
        assert!(l.forward(&Var::constant(Tensor::zeros(&[5, 2, 2]))).is_err());
        assert!(l.forward(&Var::constant(Tensor::zeros(&[0, 2, 3]))).is_err());
        let ok = RnnState { h: h.clone(), c: Some(h) };
        assert_eq!(l.forward_with_state(&x, Some(&ok)).unwrap().output.shape(), &[5, 2, 4]);
    }
}
