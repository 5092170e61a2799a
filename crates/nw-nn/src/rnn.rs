//! Recurrent layers [`Rnn`], [`Lstm`], [`Gru`] with PyTorch's parameter
//! layout, names, gate order and initialisation.
//!
//! Each direction of each layer is two recorded ops: the input projection
//! of all time steps and gates as one GEMM (`x W_ih^T + b_ih` over
//! `[time * batch, input]`), then nw-autograd's fused recurrence
//! ([`Var::recurrent`]), which adds `h W_hh^T + b_hh` at each step (one GEMM
//! into a reused buffer) and applies the cell in one pass; its backward runs
//! back through time in one loop and forms `dW_hh` in one GEMM over all
//! steps. Memory is linear in the sequence length, and nothing recurses.
//!
//! Cells (`*` elementwise, `σ` the sigmoid; gates are consecutive blocks of
//! `hidden` rows of `W_ih`, `W_hh`, `b_ih`, `b_hh`):
//! - RNN: `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)` (or relu);
//! - LSTM, gates `(i, f, g, o)`: `i = σ(.)`, `f = σ(.)`, `g = tanh(.)`,
//!   `o = σ(.)`, `c' = f * c + i * g`, `h' = o * tanh(c')`;
//! - GRU, gates `(r, z, n)`: `r = σ(W_ir x + b_ir + W_hr h + b_hr)`,
//!   `z = σ(...)`, `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`,
//!   `h' = (1 - z) * n + z * h`.

use nw_autograd::{Param, RecurrentCell, Var};
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
/// arguments; defaults `num_layers = 1`, `bias = true`, `batch_first = false`,
/// `bidirectional = false`).
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
    /// Each layer also runs a second direction from the last step to the
    /// first; its outputs are concatenated after the forward ones, so the
    /// output and every layer above the first see `2 * hidden` features.
    pub bidirectional: bool,
}

impl RnnConfig {
    /// One layer with biases, time-major input (PyTorch's defaults).
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        RnnConfig {
            input_size,
            hidden_size,
            num_layers: 1,
            bias: true,
            batch_first: false,
            bidirectional: false,
        }
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

    /// Sets `bidirectional`.
    pub fn bidirectional(mut self, b: bool) -> Self {
        self.bidirectional = b;
        self
    }

    /// Directions per layer: 2 when bidirectional, else 1.
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }
}

/// The parameters of one direction of one layer of a recurrent stack
/// (PyTorch names `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`,
/// `bias_hh_l{k}`, with the suffix `_reverse` for the backward direction).
#[derive(Debug, Clone)]
pub struct RecurrentLayer {
    /// `[gates * hidden, input]` (input is `directions * hidden` above the first layer).
    pub weight_ih: Param,
    /// `[gates * hidden, hidden]`.
    pub weight_hh: Param,
    /// `[gates * hidden]`.
    pub bias_ih: Option<Param>,
    /// `[gates * hidden]`.
    pub bias_hh: Option<Param>,
}

/// A recurrent state: `h` `[num_layers * directions, batch, hidden]`
/// (layer-major, forward before backward: row `l * directions + d`), and for
/// an LSTM the cell state `c` of the same shape.
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
    /// The last layer's hidden state at every step: `[batch, time,
    /// directions * hidden]` (batch-first) or `[time, batch, directions *
    /// hidden]`, the forward direction's features first.
    pub output: Var,
    /// The final hidden state of every layer and direction,
    /// `[num_layers * directions, batch, hidden]` ordered as [`RnnState`]
    /// (the backward direction's final state is the one after step 0).
    pub h_n: Var,
    /// The final cell state of every layer and direction (LSTM only).
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
    /// The fused op's cell.
    fn cell(self) -> RecurrentCell {
        match self {
            CellKind::Rnn(RnnNonlinearity::Tanh) => RecurrentCell::Tanh,
            CellKind::Rnn(RnnNonlinearity::Relu) => RecurrentCell::Relu,
            CellKind::Lstm => RecurrentCell::Lstm,
            CellKind::Gru => RecurrentCell::Gru,
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
    /// Layer `l`, direction `d` at index `l * directions + d`.
    layers: Vec<RecurrentLayer>,
}

impl Recurrent {
    /// Every parameter `U(-1/sqrt(hidden), 1/sqrt(hidden))`, drawn in
    /// PyTorch's parameter order (per layer and direction: w_ih, w_hh, b_ih,
    /// b_hh).
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
        let dirs = cfg.directions();
        dirs.checked_mul(h)
            .and_then(per_layer)
            .and_then(|rest| rest.checked_mul(cfg.num_layers - 1))
            .and_then(|rest| rest.checked_add(per_layer(cfg.input_size)?))
            .and_then(|n| n.checked_mul(dirs))
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
        let dirs = cfg.directions();
        let mut layers = Vec::new();
        for ld in 0..cfg.num_layers * dirs {
            let inp = if ld < dirs { cfg.input_size } else { dirs * h };
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
        let dirs = self.cfg.directions();
        for (ld, p) in self.layers.iter().enumerate() {
            let sfx = format!("l{}{}", ld / dirs, if ld % dirs == 1 { "_reverse" } else { "" });
            v.push((format!("weight_ih_{sfx}"), p.weight_ih.clone()));
            v.push((format!("weight_hh_{sfx}"), p.weight_hh.clone()));
            if let Some(b) = &p.bias_ih {
                v.push((format!("bias_ih_{sfx}"), b.clone()));
            }
            if let Some(b) = &p.bias_hh {
                v.push((format!("bias_hh_{sfx}"), b.clone()));
            }
        }
        v
    }

    /// Checks a state tensor `[num_layers * directions, batch, hidden]`.
    fn check_state(&self, what: &str, v: &Var, batch: usize) -> Result<()> {
        let want = [self.cfg.num_layers * self.cfg.directions(), batch, self.cfg.hidden_size];
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
        // work time-major: [T, B, F]
        let x = if self.cfg.batch_first { x.transpose(0, 1)? } else { x.clone() };
        let (t, b) = (x.shape()[0], x.shape()[1]);
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
        let dirs = self.cfg.directions();
        let mut seq = x;
        let (mut h_n, mut c_n) = (Vec::new(), Vec::new());
        for layer in self.layers.chunks(dirs) {
            let mut outs = Vec::with_capacity(dirs);
            for (d, p) in layer.iter().enumerate() {
                // state row of this layer and direction: l * directions + d
                let row = h_n.len();
                let h0 = initial(&state.map(|s| s.h.clone()), row)?;
                let c0 = if lstm { Some(initial(&state.and_then(|s| s.c.clone()), row)?) } else { None };
                let (out, h_last, c_last) = self.layer(p, &seq, &h0, c0.as_ref(), d == 1)?;
                outs.push(out);
                h_n.push(h_last);
                c_n.extend(c_last);
            }
            // [T, B, H] per direction -> [T, B, directions * H], forward first
            seq = if dirs == 1 { outs.pop().expect("one direction") } else { Var::concat(&outs, 2)? };
        }
        let output = if self.cfg.batch_first { seq.transpose(0, 1)? } else { seq };
        let h_n = Var::concat(&h_n, 0)?;
        let c_n = if lstm { Some(Var::concat(&c_n, 0)?) } else { None };
        Ok(RnnOutput { output, h_n, c_n })
    }

    /// One direction of one layer over the time-major sequence `[T, B, F]`
    /// -> `([T, B, H], h_last, c_last)`, the final states `[1, B, H]`.
    /// `reverse` runs the steps from `T - 1` down to 0 (the output stays in
    /// time order, and its final state is the one after step 0).
    #[allow(clippy::type_complexity)]
    fn layer(
        &self,
        p: &RecurrentLayer,
        seq: &Var,
        h0: &Var,
        c0: Option<&Var>,
        reverse: bool,
    ) -> Result<(Var, Var, Option<Var>)> {
        let (t, b, f) = (seq.shape()[0], seq.shape()[1], seq.shape()[2]);
        let hs = self.cfg.hidden_size;
        let g = self.kind.gates() * hs;
        let w_ih = Var::param(&p.weight_ih);
        let w_hh = Var::param(&p.weight_hh);
        let b_ih = p.bias_ih.as_ref().map(Var::param);
        let b_hh = p.bias_hh.as_ref().map(Var::param);
        // input projections of every step and gate in one GEMM:
        // [T B, F] W_ih^T + b_ih -> [T, B, G]
        let xp = seq.reshape(&[t * b, f])?.linear(&w_ih, b_ih.as_ref())?.reshape(&[t, b, g])?;
        // the recurrence as one fused op: [S, T, B, H], h_t then (LSTM) c_t
        let y = xp.recurrent(self.kind.cell(), &w_hh, b_hh.as_ref(), h0, c0, reverse)?;
        let last = if reverse { 0 } else { t - 1 };
        let hseq = y.narrow(0, 0, 1)?.reshape(&[t, b, hs])?;
        let h_last = hseq.narrow(0, last, 1)?;
        let c_last = match self.kind {
            CellKind::Lstm => Some(y.narrow(0, 1, 1)?.reshape(&[t, b, hs])?.narrow(0, last, 1)?),
            _ => None,
        };
        Ok((hseq, h_last, c_last))
    }

    fn describe(&self) -> String {
        let c = self.cfg;
        let nl = match self.kind {
            CellKind::Rnn(RnnNonlinearity::Relu) => ", nonlinearity='relu'",
            _ => "",
        };
        format!(
            "{}({}, {}, num_layers={}, bias={}, batch_first={}, bidirectional={}{nl})",
            self.kind.name(),
            c.input_size,
            c.hidden_size,
            c.num_layers,
            c.bias,
            c.batch_first,
            c.bidirectional
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

            /// The parameters of each layer and direction: layer `l`,
            /// direction `d` (1 = reverse) at index `l * directions + d`.
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
