//! The NaN/infinity guard, one test per source of bad numbers (issue 13): a
//! learning rate of 1e6, a log of zero in a loss, an input holding infinity
//! given through the library API, and an exploding RNN. Each run stops with
//! [`TrainError::NonFinite`] naming the step and the first parameter (layer)
//! the bad value reached, in model order.

use nw_autograd::{Grads, Param, Var};
use nw_data::Targets;
use nw_tensor::Tensor;
use nw_train::guard::LOSS;
use nw_train::{NonFinite, RunConfig, TrainError, build_run, check_finite};

fn config(sets: &[(&str, &str)]) -> RunConfig {
    let mut c = RunConfig::default();
    for (k, v) in sets {
        c.set(k, v).unwrap_or_else(|e| panic!("{k} = {v}: {e}"));
    }
    c.validate().unwrap();
    c
}

/// Trains until the guard stops the run (at most `epochs` epochs).
fn diverge(cfg: &RunConfig) -> NonFinite {
    let mut run = build_run(cfg).unwrap();
    for _ in 0..cfg.train.epochs {
        match run.trainer.train_epoch(&run.loader, None, &mut |_, _, _| {}) {
            Ok(_) => {}
            Err(TrainError::NonFinite(e)) => return e,
            Err(e) => panic!("not the guard: {e}"),
        }
    }
    panic!("the run never diverged")
}

#[test]
fn a_learning_rate_of_1e6_is_stopped_naming_step_and_parameter() {
    let cfg = config(&[
        ("optim.name", "\"sgd\""),
        ("optim.lr", "1e6"),
        ("model.hidden", "[32]"),
        ("train.epochs", "3"),
        ("train.label_smoothing", "0.0"),
    ]);
    let e = diverge(&cfg);
    let text = e.to_string();
    assert!(e.step >= 1, "{text}");
    assert!(text.contains(&format!("step {}", e.step)), "{text}");
    // The first bad value is named by parameter (never only "the loss").
    assert_ne!(e.name, LOSS, "{text}");
    assert!(["0.weight", "0.bias", "2.weight", "2.bias"].contains(&e.name.as_str()), "{text}");
    assert!(text.contains(&e.name), "{text}");
    // The same seed diverges at the same step on the same element.
    let again = diverge(&cfg);
    assert_eq!((again.step, again.name, again.what, again.index), (e.step, e.name.clone(), e.what, e.index));
    assert_eq!(again.value.to_bits(), e.value.to_bits());
}

#[test]
fn a_log_of_zero_in_a_loss_names_the_parameter() {
    // loss = -sum(ln w) with w = [0, 1]: ln 0 = -inf, so the loss is +inf and
    // d loss / d w0 = -1/0 = -inf.
    let w = Param::new(Tensor::from_vec(vec![0.0, 1.0], &[2]).unwrap());
    let b = Param::new(Tensor::from_vec(vec![0.5], &[1]).unwrap());
    let loss = Var::param(&w).ln().sum().neg().add(&Var::param(&b).sum()).unwrap();
    let value = loss.value().item().unwrap();
    assert_eq!(value, f32::INFINITY);
    let grads: Grads = loss.backward().unwrap();
    let params = vec![("head.bias".to_string(), b), ("probs".to_string(), w)];
    let e = check_finite(7, value, &params, &grads).unwrap_err();
    assert_eq!((e.step, e.what, e.name.as_str(), e.index), (7, "loss", "probs", 0), "{e}");
    let text = e.to_string();
    assert!(text.contains("step 7") && text.contains("inf") && text.contains("probs"), "{text}");
}

#[test]
fn an_input_holding_infinity_names_the_first_layer() {
    let cfg = config(&[("model.hidden", "[16]"), ("train.epochs", "1")]);
    let mut run = build_run(&cfg).unwrap();
    let mut x = run.loader.dataset().features().index_select(0, &[0, 1, 2, 3]).unwrap().to_vec();
    x[5] = f32::INFINITY;
    let x = Tensor::from_vec(x, &[4, 64]).unwrap();
    let y = Targets::Classes { labels: vec![0, 1, 2, 3], n_classes: 10 };
    let before: Vec<Vec<f32>> =
        run.trainer.named_parameters().iter().map(|(_, p)| p.value().to_vec()).collect();
    let e = match run.trainer.train_step(&x, &y) {
        Err(TrainError::NonFinite(e)) => e,
        other => panic!("not stopped by the guard: {:?}", other.map(|_| ())),
    };
    assert_eq!((e.step, e.name.as_str()), (1, "0.weight"), "{e}");
    // The step was not taken: the weights are unchanged and finite.
    let after: Vec<Vec<f32>> =
        run.trainer.named_parameters().iter().map(|(_, p)| p.value().to_vec()).collect();
    assert!(before == after, "the guard let a bad step through");
    assert_eq!(run.trainer.step, 0);
}

#[test]
fn an_exploding_rnn_names_its_recurrent_layer() {
    // A tanh RNN over the digits' 8 rows whose recurrent matrix is 1e6 I and
    // whose other weights are zero: the hidden state stays 0 (tanh' = 1), so
    // backpropagation through time multiplies the gradient by 1e6 per step,
    // 1e42 after the 7 steps back from the last row: past f32's range.
    let cfg = config(&[
        ("model.kind", "\"rnn\""),
        ("model.width", "8"),
        ("optim.name", "\"sgd\""),
        ("optim.lr", "0.1"),
        ("train.epochs", "1"),
    ]);
    let mut run = build_run(&cfg).unwrap();
    let names: Vec<String> = run.trainer.named_parameters().iter().map(|(n, _)| n.clone()).collect();
    for (name, p) in run.trainer.named_parameters() {
        let shape = p.shape();
        let v = if name.contains("weight_hh") {
            let n = shape[1];
            let eye: Vec<f32> = (0..shape[0] * n).map(|k| if k / n == k % n { 1e6 } else { 0.0 }).collect();
            Tensor::from_vec(eye, &shape).unwrap()
        } else if name.contains("weight_ih") || name.contains("bias") {
            Tensor::zeros(&shape)
        } else {
            continue; // the output head keeps its weights
        };
        p.set(v).unwrap();
    }
    let e = match run.trainer.train_epoch(&run.loader, None, &mut |_, _, _| {}) {
        Err(TrainError::NonFinite(e)) => e,
        Err(e) => panic!("not the guard: {e}"),
        Ok(_) => panic!("the RNN did not explode"),
    };
    let text = e.to_string();
    assert_eq!(e.step, 1, "{text}");
    assert!(e.name.contains("_l0"), "not a recurrent parameter: {text} (parameters: {names:?})");
    assert!(text.contains(&e.name), "{text}");
}

#[test]
fn detect_anomaly_names_the_first_operation() {
    // The infinite input: the first layer's `linear` is the first op whose
    // output is non-finite.
    let cfg = config(&[("model.hidden", "[16]"), ("train.epochs", "1")]);
    let mut run = build_run(&cfg).unwrap();
    let mut x = run.loader.dataset().features().index_select(0, &[0, 1]).unwrap().to_vec();
    x[3] = f32::INFINITY;
    let x = Tensor::from_vec(x, &[2, 64]).unwrap();
    let y = Targets::Classes { labels: vec![0, 1], n_classes: 10 };
    let before = nw_autograd::set_detect_anomaly(true);
    let e = match run.trainer.train_step(&x, &y) {
        Err(TrainError::NonFinite(e)) => e,
        other => panic!("not stopped by the guard: {:?}", other.map(|_| ())),
    };
    let op = e.first_op.clone().expect("an anomaly report");
    assert!(op.contains("forward pass of `linear`"), "{op}");
    assert!(e.to_string().contains("anomaly detection: the forward pass of `linear`"), "{e}");
    // Off (the default), the guard still stops the run but names no op.
    nw_autograd::set_detect_anomaly(false);
    let e = match run.trainer.train_step(&x, &y) {
        Err(TrainError::NonFinite(e)) => e,
        other => panic!("not stopped by the guard: {:?}", other.map(|_| ())),
    };
    assert_eq!(e.first_op, None);
    // The log of zero: `ln` forward.
    nw_autograd::set_detect_anomaly(true);
    let w = Param::new(Tensor::from_vec(vec![0.0, 1.0], &[2]).unwrap());
    let loss = Var::param(&w).ln().sum().neg();
    let grads = loss.backward().unwrap();
    let e = check_finite(1, loss.value().item().unwrap(), &[("w".into(), w)], &grads).unwrap_err();
    assert!(e.first_op.as_deref().unwrap_or_default().contains("forward pass of `ln`"), "{e}");
    nw_autograd::set_detect_anomaly(before);
}
