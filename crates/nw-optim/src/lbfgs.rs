//! L-BFGS (torch.optim.LBFGS): a closure-driven quasi-Newton method with an
//! optional strong-Wolfe line search.

use nw_autograd::{Grads, Param};
use nw_tensor::Tensor;

use crate::error::{OptimError, check_lr, check_min};
use crate::group::ParamGroup;
use crate::optim::Optimizer;
use crate::reduce::dot;
use crate::state::StateDict;

/// The line search of [`Lbfgs`] (torch's `line_search_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineSearch {
    /// Bracketing and cubic-interpolation zoom until the strong Wolfe
    /// conditions hold (c1 = 1e-4, c2 = 0.9, at most 25 evaluations), torch's
    /// port of minFunc's `lswolfe`.
    StrongWolfe,
}

/// L-BFGS, exactly torch.optim.LBFGS's algorithm (from minFunc): each step
/// evaluates the closure (loss and gradients at the current parameters), then
/// up to `max_iter` iterations of
///
/// ```text
/// d ← −H g      (two-loop recursion over the last history_size pairs
///                (s, y) with y·s > 1e-10; H₀ = (y·s)/(y·y) of the newest)
/// t ← min(1, 1/‖g‖₁) γ at the very first iteration, else γ
/// θ ← θ + t d   (fixed step, re-evaluating the closure unless it is the
///                step's last iteration) | strong-Wolfe line search along d
/// ```
/// stopping early when `g·d > −tolerance_change`, `max|g| ≤ tolerance_grad`,
/// `max|t d| ≤ tolerance_change`, `|Δloss| < tolerance_change`, or after
/// `max_eval` closure calls. Vectors are f32 (the parameters' dtype), dot
/// products are summed in f64 over fixed chunks, scalars are f64.
///
/// Defaults (torch): `lr` 1, `max_iter` 20, `max_eval` None (= `max_iter`·5/4),
/// `tolerance_grad` 1e-7, `tolerance_change` 1e-9, `history_size` 100,
/// `line_search_fn` None. Like torch, one parameter group only, and
/// [`Optimizer::step`] without a closure is an error
/// ([`OptimError::ClosureRequired`]): use [`Optimizer::step_closure`]. The
/// whole state (history, direction, counters) saves and loads.
///
/// ```
/// use nw_autograd::{Param, Var};
/// use nw_optim::{Lbfgs, Optimizer, OptimError};
/// use nw_tensor::Tensor;
///
/// // minimise (w − 3)²: quadratic, so a few iterations reach it
/// let w = Param::new(Tensor::from_vec(vec![0.0], &[1]).unwrap());
/// let mut opt = Lbfgs { lr: 1.0, ..Lbfgs::default() }.build(vec![w.clone()]).unwrap();
/// let target = Var::constant(Tensor::from_vec(vec![3.0], &[1]).unwrap());
/// let mut closure = || -> Result<(f64, nw_autograd::Grads), OptimError> {
///     let loss = Var::param(&w).sub(&target).unwrap().square().sum();
///     let value = loss.value().item().unwrap() as f64;
///     let grads = loss.backward().map_err(|e| OptimError::Closure(e.to_string()))?;
///     Ok((value, grads))
/// };
/// let first = opt.step_closure(&mut closure).unwrap();
/// assert_eq!(first, 9.0);
/// assert!((w.value().to_vec()[0] - 3.0).abs() < 1e-4);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lbfgs {
    /// Learning rate γ: the step length tried along each direction (default 1).
    pub lr: f64,
    /// Iterations per step (default 20).
    pub max_iter: usize,
    /// Closure evaluations per step (default None: `max_iter * 5 / 4`).
    pub max_eval: Option<usize>,
    /// Stop when `max|g| ≤` this (default 1e-7).
    pub tolerance_grad: f64,
    /// Stop on a smaller change of loss or parameters (default 1e-9).
    pub tolerance_change: f64,
    /// Curvature pairs kept (default 100).
    pub history_size: usize,
    /// None: fixed steps of `lr`; or [`LineSearch::StrongWolfe`] (default None).
    pub line_search_fn: Option<LineSearch>,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Lbfgs {
            lr: 1.0,
            max_iter: 20,
            max_eval: None,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
            line_search_fn: None,
        }
    }
}

const NAME: &str = "LBFGS";

impl Lbfgs {
    /// An L-BFGS optimizer over `params`.
    pub fn build(self, params: Vec<Param>) -> Result<LbfgsOptim, OptimError> {
        self.build_groups(vec![ParamGroup::new(params)])
    }

    /// As torch: exactly one group, and it may override only `lr`.
    pub fn build_groups(self, groups: Vec<ParamGroup>) -> Result<LbfgsOptim, OptimError> {
        check_lr(NAME, self.lr)?;
        check_min(NAME, "tolerance_grad", self.tolerance_grad, 0.0, "must be finite and >= 0")?;
        check_min(NAME, "tolerance_change", self.tolerance_change, 0.0, "must be finite and >= 0")?;
        if self.max_iter == 0 {
            return Err(OptimError::InvalidHyper {
                owner: NAME,
                name: "max_iter",
                value: 0.0,
                reason: "must be >= 1",
            });
        }
        if self.history_size == 0 {
            return Err(OptimError::InvalidHyper {
                owner: NAME,
                name: "history_size",
                value: 0.0,
                reason: "must be >= 1",
            });
        }
        let [g] = <[ParamGroup; 1]>::try_from(groups).map_err(|gs| OptimError::InvalidHyper {
            owner: NAME,
            name: "param_groups",
            value: gs.len() as f64,
            reason: "LBFGS takes exactly one parameter group (as torch)",
        })?;
        if g.weight_decay.is_some_and(|w| w != 0.0) {
            return Err(OptimError::InvalidHyper {
                owner: NAME,
                name: "weight_decay",
                value: g.weight_decay.unwrap_or(0.0),
                reason: "LBFGS has no weight decay",
            });
        }
        let lr = g.lr.unwrap_or(self.lr);
        check_lr(NAME, lr)?;
        let mut seen = std::collections::HashSet::new();
        for (i, p) in g.params.iter().enumerate() {
            if !seen.insert(p.id()) {
                return Err(OptimError::DuplicateParam {
                    optimizer: NAME,
                    param: format!("{p:?}"),
                    group: 0,
                    index: i,
                });
            }
        }
        let numel = g.params.iter().map(Param::len).sum();
        let base_lr = self.lr;
        let groups = vec![ParamGroup { params: g.params, lr: Some(lr), weight_decay: Some(0.0) }];
        Ok(LbfgsOptim { config: self, groups, initial_lr: lr, lr: base_lr, numel, state: State::default() })
    }
}

/// torch's LBFGS state (kept on its first parameter there).
#[derive(Debug, Clone, Default, PartialEq)]
struct State {
    func_evals: u64,
    n_iter: u64,
    d: Option<Vec<f32>>,
    t: f64,
    old_dirs: Vec<Vec<f32>>,
    old_stps: Vec<Vec<f32>>,
    ro: Vec<f64>,
    h_diag: f64,
    prev_flat_grad: Option<Vec<f32>>,
    prev_loss: Option<f64>,
}

/// An [`Lbfgs`] config running over its parameters: what `Lbfgs::build` returns.
#[derive(Debug, Clone)]
pub struct LbfgsOptim {
    config: Lbfgs,
    groups: Vec<ParamGroup>,
    initial_lr: f64,
    lr: f64,
    numel: usize,
    state: State,
}

type Closure<'a> = dyn FnMut() -> Result<(f64, Grads), OptimError> + 'a;

fn abs_max(v: &[f32]) -> f64 {
    v.iter().fold(0f32, |m, &x| if x.abs() > m || x.is_nan() { x.abs() } else { m }) as f64
}

impl LbfgsOptim {
    /// Closure evaluations over all steps so far (torch's `func_evals`).
    pub fn func_evals(&self) -> u64 {
        self.state.func_evals
    }

    /// Iterations over all steps so far (torch's `n_iter`).
    pub fn n_iter(&self) -> u64 {
        self.state.n_iter
    }

    fn params(&self) -> &[Param] {
        &self.groups[0].params
    }

    fn flat_grad(&self, grads: &Grads) -> Result<Vec<f32>, OptimError> {
        let mut out = Vec::with_capacity(self.numel);
        for (i, p) in self.params().iter().enumerate() {
            match grads.get(p) {
                Some(g) => {
                    if g.shape() != p.shape().as_slice() {
                        return Err(OptimError::GradShape {
                            optimizer: NAME,
                            group: 0,
                            index: i,
                            param: p.shape(),
                            grad: g.shape().to_vec(),
                        });
                    }
                    out.extend_from_slice(&g.to_vec());
                }
                None => out.resize(out.len() + p.len(), 0.0),
            }
        }
        Ok(out)
    }

    /// θ ← θ + t d (torch's `_add_grad`: `p.add_(d, alpha=t)` in f32).
    fn add_dir(&self, t: f64, d: &[f32]) {
        let t = t as f32;
        let mut off = 0;
        for p in self.params() {
            let n = p.len();
            let seg = &d[off..off + n];
            p.update(|v| v.as_slice_mut().iter_mut().zip(seg).for_each(|(x, &dv)| *x += t * dv));
            off += n;
        }
    }

    fn clone_params(&self) -> Vec<Tensor> {
        self.params().iter().map(Param::value).collect()
    }

    fn set_params(&self, x: &[Tensor]) -> Result<(), OptimError> {
        for (p, v) in self.params().iter().zip(x) {
            p.set(v.clone()).map_err(|e| OptimError::Closure(e.to_string()))?;
        }
        Ok(())
    }

    fn eval(&self, closure: &mut Closure<'_>) -> Result<(f64, Vec<f32>), OptimError> {
        let (loss, grads) = closure()?;
        Ok((loss, self.flat_grad(&grads)?))
    }

    /// Loss and flat gradient at x + t d, then back to x.
    fn directional(
        &self,
        closure: &mut Closure<'_>,
        x: &[Tensor],
        t: f64,
        d: &[f32],
    ) -> Result<(f64, Vec<f32>), OptimError> {
        self.add_dir(t, d);
        let r = self.eval(closure);
        self.set_params(x)?;
        r
    }

    fn run(&mut self, closure: &mut Closure<'_>) -> Result<f64, OptimError> {
        let c = self.config.clone();
        let lr = self.groups[0].lr.unwrap_or(c.lr);
        check_lr(NAME, lr)?;
        let max_eval = c.max_eval.unwrap_or(c.max_iter * 5 / 4);
        let (orig_loss, mut flat_grad) = self.eval(closure)?;
        let mut loss = orig_loss;
        let mut current_evals = 1usize;
        self.state.func_evals += 1;
        if abs_max(&flat_grad) <= c.tolerance_grad {
            return Ok(orig_loss);
        }
        let mut st = std::mem::take(&mut self.state);
        let mut n_iter = 0;
        let result = (|| -> Result<(), OptimError> {
            while n_iter < c.max_iter {
                n_iter += 1;
                st.n_iter += 1;
                let d: Vec<f32> = if st.n_iter == 1 {
                    st.old_dirs.clear();
                    st.old_stps.clear();
                    st.ro.clear();
                    st.h_diag = 1.0;
                    flat_grad.iter().map(|&g| -g).collect()
                } else {
                    let (prev, d_old) = match (&st.prev_flat_grad, &st.d) {
                        (Some(p), Some(d)) => (p, d),
                        _ => {
                            return Err(OptimError::State {
                                owner: NAME,
                                reason: "history without a direction".into(),
                            });
                        }
                    };
                    let y: Vec<f32> = flat_grad.iter().zip(prev).map(|(&a, &b)| a - b).collect();
                    let tf = st.t as f32;
                    let s: Vec<f32> = d_old.iter().map(|&x| x * tf).collect();
                    let ys = dot(&y, &s);
                    if ys > 1e-10 {
                        if st.old_dirs.len() == c.history_size {
                            st.old_dirs.remove(0);
                            st.old_stps.remove(0);
                            st.ro.remove(0);
                        }
                        st.h_diag = ys / dot(&y, &y);
                        st.old_dirs.push(y);
                        st.old_stps.push(s);
                        st.ro.push(1.0 / ys);
                    }
                    let num_old = st.old_dirs.len();
                    let mut al = vec![0f64; num_old];
                    let mut q: Vec<f32> = flat_grad.iter().map(|&g| -g).collect();
                    for i in (0..num_old).rev() {
                        al[i] = dot(&st.old_stps[i], &q) * st.ro[i];
                        let a = (-al[i]) as f32;
                        q.iter_mut().zip(&st.old_dirs[i]).for_each(|(q, &y)| *q += a * y);
                    }
                    let h = st.h_diag as f32;
                    let mut r: Vec<f32> = q.iter().map(|&x| x * h).collect();
                    for i in 0..num_old {
                        let be = dot(&st.old_dirs[i], &r) * st.ro[i];
                        let a = (al[i] - be) as f32;
                        r.iter_mut().zip(&st.old_stps[i]).for_each(|(r, &s)| *r += a * s);
                    }
                    r
                };
                st.prev_flat_grad = Some(flat_grad.clone());
                st.prev_loss = Some(loss);
                let mut t = if st.n_iter == 1 {
                    let l1: f64 = flat_grad.iter().map(|&g| g.abs() as f64).sum();
                    (1.0f64).min(1.0 / l1) * lr
                } else {
                    lr
                };
                let gtd = dot(&flat_grad, &d);
                if gtd > -c.tolerance_change {
                    st.d = Some(d);
                    st.t = t;
                    break;
                }
                let mut ls_evals = 0;
                let opt_cond;
                match c.line_search_fn {
                    Some(LineSearch::StrongWolfe) => {
                        let x = self.clone_params();
                        let (l, g, tt, n) = strong_wolfe(
                            &mut |t: f64, d: &[f32]| self.directional(closure, &x, t, d),
                            t,
                            &d,
                            loss,
                            &flat_grad,
                            gtd,
                        )?;
                        loss = l;
                        flat_grad = g;
                        t = tt;
                        ls_evals = n;
                        self.add_dir(t, &d);
                        opt_cond = abs_max(&flat_grad) <= c.tolerance_grad;
                    }
                    None => {
                        self.add_dir(t, &d);
                        if n_iter != c.max_iter {
                            let (l, g) = self.eval(closure)?;
                            loss = l;
                            flat_grad = g;
                            ls_evals = 1;
                            opt_cond = abs_max(&flat_grad) <= c.tolerance_grad;
                        } else {
                            opt_cond = false;
                        }
                    }
                }
                current_evals += ls_evals;
                st.func_evals += ls_evals as u64;
                let tf = t as f32;
                let small_step =
                    d.iter().fold(0f32, |m, &x| m.max((x * tf).abs())) as f64 <= c.tolerance_change;
                st.d = Some(d);
                st.t = t;
                if n_iter == c.max_iter || current_evals >= max_eval || opt_cond || small_step {
                    break;
                }
                if (loss - st.prev_loss.unwrap_or(loss)).abs() < c.tolerance_change {
                    break;
                }
            }
            Ok(())
        })();
        self.state = st;
        result.map(|()| orig_loss)
    }
}

/// torch's `_cubic_interpolate`: the minimiser of the cubic through
/// (x1, f1, g1) and (x2, f2, g2), clamped to `bounds` (default [x1, x2]).
fn cubic_interpolate(
    x1: f64,
    f1: f64,
    g1: f64,
    x2: f64,
    f2: f64,
    g2: f64,
    bounds: Option<(f64, f64)>,
) -> f64 {
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let min_pos = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        py_min(py_max(min_pos, lo), hi)
    } else {
        (lo + hi) / 2.0
    }
}

/// Python's `max(a, b)`: `a` unless `b > a` (so NaN in `a` stays).
fn py_max(a: f64, b: f64) -> f64 {
    if b > a { b } else { a }
}

/// Python's `min(a, b)`: `a` unless `b < a`.
fn py_min(a: f64, b: f64) -> f64 {
    if b < a { b } else { a }
}

type Obj<'a> = dyn FnMut(f64, &[f32]) -> Result<(f64, Vec<f32>), OptimError> + 'a;

/// torch's `_strong_wolfe` (c1 = 1e-4, c2 = 0.9, tolerance_change = 1e-9,
/// max_ls = 25): returns (loss, flat grad, t, evaluations).
fn strong_wolfe(
    obj: &mut Obj<'_>,
    mut t: f64,
    d: &[f32],
    f: f64,
    g: &[f32],
    gtd: f64,
) -> Result<(f64, Vec<f32>, f64, usize), OptimError> {
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    const TOL: f64 = 1e-9;
    const MAX_LS: usize = 25;
    let d_norm = abs_max(d);
    let (mut f_new, mut g_new) = obj(t, d)?;
    let mut evals = 1;
    let mut gtd_new = dot(&g_new, d);
    let (mut t_prev, mut f_prev, mut g_prev, mut gtd_prev) = (0.0, f, g.to_vec(), gtd);
    let mut done = false;
    let mut ls_iter = 0;
    let mut bracket: Vec<f64> = Vec::new();
    let mut bracket_f: Vec<f64> = Vec::new();
    let mut bracket_g: Vec<Vec<f32>> = Vec::new();
    let mut bracket_gtd: Vec<f64> = Vec::new();
    while ls_iter < MAX_LS {
        if f_new > f + C1 * t * gtd || (ls_iter > 1 && f_new >= f_prev) {
            bracket = vec![t_prev, t];
            bracket_f = vec![f_prev, f_new];
            bracket_g = vec![g_prev.clone(), g_new.clone()];
            bracket_gtd = vec![gtd_prev, gtd_new];
            break;
        }
        if gtd_new.abs() <= -C2 * gtd {
            bracket = vec![t];
            bracket_f = vec![f_new];
            bracket_g = vec![g_new.clone()];
            done = true;
            break;
        }
        if gtd_new >= 0.0 {
            bracket = vec![t_prev, t];
            bracket_f = vec![f_prev, f_new];
            bracket_g = vec![g_prev.clone(), g_new.clone()];
            bracket_gtd = vec![gtd_prev, gtd_new];
            break;
        }
        let min_step = t + 0.01 * (t - t_prev);
        let max_step = t * 10.0;
        let tmp = t;
        t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, Some((min_step, max_step)));
        t_prev = tmp;
        f_prev = f_new;
        g_prev = g_new.clone();
        gtd_prev = gtd_new;
        (f_new, g_new) = obj(t, d)?;
        evals += 1;
        gtd_new = dot(&g_new, d);
        ls_iter += 1;
    }
    if ls_iter == MAX_LS {
        bracket = vec![0.0, t];
        bracket_f = vec![f, f_new];
        bracket_g = vec![g.to_vec(), g_new.clone()];
    }
    let last = bracket_f.len() - 1;
    let (mut low, mut high) = if bracket_f[0] <= bracket_f[last] { (0, 1) } else { (1, 0) };
    let mut insuf_progress = false;
    while !done && ls_iter < MAX_LS {
        if (bracket[1] - bracket[0]).abs() * d_norm < TOL {
            break;
        }
        t = cubic_interpolate(
            bracket[0],
            bracket_f[0],
            bracket_gtd[0],
            bracket[1],
            bracket_f[1],
            bracket_gtd[1],
            None,
        );
        let (bmax, bmin) = (py_max(bracket[0], bracket[1]), py_min(bracket[0], bracket[1]));
        let eps = 0.1 * (bmax - bmin);
        if py_min(bmax - t, t - bmin) < eps {
            if insuf_progress || t >= bmax || t <= bmin {
                t = if (t - bmax).abs() < (t - bmin).abs() { bmax - eps } else { bmin + eps };
                insuf_progress = false;
            } else {
                insuf_progress = true;
            }
        } else {
            insuf_progress = false;
        }
        (f_new, g_new) = obj(t, d)?;
        evals += 1;
        gtd_new = dot(&g_new, d);
        ls_iter += 1;
        if f_new > f + C1 * t * gtd || f_new >= bracket_f[low] {
            bracket[high] = t;
            bracket_f[high] = f_new;
            bracket_g[high] = g_new.clone();
            bracket_gtd[high] = gtd_new;
            (low, high) = if bracket_f[0] <= bracket_f[1] { (0, 1) } else { (1, 0) };
        } else {
            if gtd_new.abs() <= -C2 * gtd {
                done = true;
            } else if gtd_new * (bracket[high] - bracket[low]) >= 0.0 {
                bracket[high] = bracket[low];
                bracket_f[high] = bracket_f[low];
                bracket_g[high] = bracket_g[low].clone();
                bracket_gtd[high] = bracket_gtd[low];
            }
            bracket[low] = t;
            bracket_f[low] = f_new;
            bracket_g[low] = g_new.clone();
            bracket_gtd[low] = gtd_new;
        }
    }
    let low = low.min(bracket.len() - 1);
    Ok((bracket_f[low], bracket_g.swap_remove(low), bracket[low], evals))
}

impl Optimizer for LbfgsOptim {
    fn name(&self) -> &'static str {
        NAME
    }

    fn step(&mut self, _grads: &Grads) -> Result<(), OptimError> {
        Err(OptimError::ClosureRequired { optimizer: NAME })
    }

    fn wants_closure(&self) -> bool {
        true
    }

    fn step_closure(&mut self, closure: &mut Closure<'_>) -> Result<f64, OptimError> {
        self.run(closure)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
        let base = self.config.lr;
        self.groups[0].lr = Some(if base > 0.0 { lr * (self.initial_lr / base) } else { lr });
    }

    fn param_groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    /// Scalars `lr`, `param_groups.0.{lr, initial_lr, weight_decay, params}`,
    /// `state.func_evals`, `state.n_iter`, `state.t`, `state.H_diag`,
    /// `state.history` (pairs kept), `state.ro.{i}`, `state.prev_loss`;
    /// tensors `state.d`, `state.prev_flat_grad`, `state.old_dirs.{i}`,
    /// `state.old_stps.{i}` (flat, over all parameters in order).
    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict { optimizer: NAME.to_string(), ..Default::default() };
        let s = &self.state;
        let g = &self.groups[0];
        let sc = &mut sd.scalars;
        sc.insert("lr".into(), self.lr);
        sc.insert("param_groups.0.lr".into(), g.lr.unwrap_or(self.config.lr));
        sc.insert("param_groups.0.initial_lr".into(), self.initial_lr);
        sc.insert("param_groups.0.weight_decay".into(), 0.0);
        sc.insert("param_groups.0.params".into(), g.params.len() as f64);
        sc.insert("state.func_evals".into(), s.func_evals as f64);
        sc.insert("state.n_iter".into(), s.n_iter as f64);
        sc.insert("state.t".into(), s.t);
        sc.insert("state.H_diag".into(), s.h_diag);
        sc.insert("state.history".into(), s.old_dirs.len() as f64);
        if let Some(l) = s.prev_loss {
            sc.insert("state.prev_loss".into(), l);
        }
        for (i, r) in s.ro.iter().enumerate() {
            sc.insert(format!("state.ro.{i}"), *r);
        }
        let flat = |v: &Vec<f32>| Tensor::from_vec(v.clone(), &[v.len()]).expect("1-D");
        if let Some(d) = &s.d {
            sd.tensors.insert("state.d".into(), flat(d));
        }
        if let Some(p) = &s.prev_flat_grad {
            sd.tensors.insert("state.prev_flat_grad".into(), flat(p));
        }
        for (i, (y, st)) in s.old_dirs.iter().zip(&s.old_stps).enumerate() {
            sd.tensors.insert(format!("state.old_dirs.{i}"), flat(y));
            sd.tensors.insert(format!("state.old_stps.{i}"), flat(st));
        }
        sd
    }

    fn load_state_dict(&mut self, sd: &StateDict) -> Result<(), OptimError> {
        let err = |reason: String| OptimError::State { owner: NAME, reason };
        if sd.optimizer != NAME {
            return Err(err(format!("state dict is for {:?}", sd.optimizer)));
        }
        let scalar = |k: &str| sd.required_scalar(NAME, k);
        let count = |k: &str| sd.count(NAME, k);
        if count("param_groups.0.params")? != self.groups[0].params.len() as u64 {
            return Err(err("the parameter count differs".into()));
        }
        if sd.scalars.contains_key("param_groups.1.params") {
            return Err(err("LBFGS has one parameter group".into()));
        }
        let lr = scalar("lr")?;
        let glr = scalar("param_groups.0.lr")?;
        let init = scalar("param_groups.0.initial_lr")?;
        check_lr(NAME, glr)?;
        let vec_of = |k: &str| -> Result<Option<Vec<f32>>, OptimError> {
            match sd.tensor(k) {
                None => Ok(None),
                Some(t) if t.shape() == [self.numel] => Ok(Some(t.to_vec())),
                Some(t) => Err(err(format!("{k} has shape {:?}, expected [{}]", t.shape(), self.numel))),
            }
        };
        let history = count("state.history")? as usize;
        if history > self.config.history_size {
            return Err(err(format!(
                "{history} curvature pairs, history_size is {}",
                self.config.history_size
            )));
        }
        let mut st = State {
            func_evals: count("state.func_evals")?,
            n_iter: count("state.n_iter")?,
            d: vec_of("state.d")?,
            t: scalar("state.t")?,
            h_diag: scalar("state.H_diag")?,
            prev_flat_grad: vec_of("state.prev_flat_grad")?,
            prev_loss: sd.scalar("state.prev_loss"),
            ..State::default()
        };
        for i in 0..history {
            let y = vec_of(&format!("state.old_dirs.{i}"))?
                .ok_or_else(|| err(format!("missing state.old_dirs.{i}")))?;
            let s = vec_of(&format!("state.old_stps.{i}"))?
                .ok_or_else(|| err(format!("missing state.old_stps.{i}")))?;
            st.old_dirs.push(y);
            st.old_stps.push(s);
            st.ro.push(scalar(&format!("state.ro.{i}"))?);
        }
        let expected_tensors = 2 * history + st.d.is_some() as usize + st.prev_flat_grad.is_some() as usize;
        if sd.tensors.len() != expected_tensors {
            return Err(err(format!("{} tensors, expected {expected_tensors}", sd.tensors.len())));
        }
        if st.n_iter > 0 && (st.d.is_none() || st.prev_flat_grad.is_none()) {
            return Err(err("iterations taken but no direction or previous gradient".into()));
        }
        self.state = st;
        self.lr = lr;
        self.groups[0].lr = Some(glr);
        self.initial_lr = init;
        Ok(())
    }
}
