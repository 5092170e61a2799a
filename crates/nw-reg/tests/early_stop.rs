//! Early stopping: patience, min_delta, modes, restoring the best weights.

use nw_autograd::Param;
use nw_reg::{Decision, EarlyStopping, Mode, RegError};
use nw_tensor::Tensor;

fn run(es: &mut EarlyStopping, w: &Param, metrics: &[f64]) -> Vec<Decision> {
    let mut out = Vec::new();
    for (epoch, &m) in metrics.iter().enumerate() {
        w.set(Tensor::from_vec(vec![epoch as f32, -(epoch as f32)], &[2]).unwrap()).unwrap();
        let d = es.step(m, std::slice::from_ref(w)).unwrap();
        out.push(d);
        if d == Decision::Stop {
            break;
        }
    }
    out
}

#[test]
fn min_mode_with_min_delta_and_restore() {
    let w = Param::new(Tensor::zeros(&[2]));
    let mut es = EarlyStopping::new(3, 0.1, Mode::Min).unwrap();
    // epoch 1 improves by 0.5; epochs 2..4 improve by at most 0.05 < min_delta
    let d = run(&mut es, &w, &[1.0, 0.5, 0.45, 0.42, 0.41, 0.0]);
    use Decision::*;
    assert_eq!(d, vec![Improved, Improved, Wait { wait: 1 }, Wait { wait: 2 }, Stop]);
    assert!(es.should_stop());
    assert_eq!((es.best(), es.best_epoch()), (Some(0.5), Some(1)));
    // the weights of epoch 1, bit for bit
    assert_eq!(w.value().to_vec(), vec![1.0, -1.0]);
}

#[test]
fn max_mode_resets_wait_on_improvement() {
    let w = Param::new(Tensor::zeros(&[2]));
    let mut es = EarlyStopping::new(2, 0.0, Mode::Max).unwrap();
    use Decision::*;
    let d = run(&mut es, &w, &[0.5, 0.4, 0.6, 0.6, 0.55]);
    // 0.6 = 0.6 is not an improvement (strictly greater needed)
    assert_eq!(d, vec![Improved, Wait { wait: 1 }, Improved, Wait { wait: 1 }, Stop]);
    assert_eq!(es.best_epoch(), Some(2));
    assert_eq!(w.value().to_vec(), vec![2.0, -2.0]);
}

#[test]
fn nan_never_improves_and_restore_can_be_off() {
    let w = Param::new(Tensor::zeros(&[2]));
    let mut es = EarlyStopping::new(2, 0.0, Mode::Min).unwrap().restore_best_weights(false);
    let d = run(&mut es, &w, &[f64::NAN, 1.0, f64::NAN, f64::NAN]);
    assert_eq!(d.last(), Some(&Decision::Stop));
    assert_eq!(es.best_epoch(), Some(1));
    // not restored: the weights of the last epoch
    assert_eq!(w.value().to_vec(), vec![3.0, -3.0]);
    assert!(!es.restore(&[w]).unwrap());
}

#[test]
fn restore_at_the_end_and_mismatches() {
    let w = Param::new(Tensor::zeros(&[2]));
    let mut es = EarlyStopping::new(10, 0.0, Mode::Min).unwrap();
    run(&mut es, &w, &[3.0, 1.0, 2.0]);
    assert!(!es.should_stop());
    assert!(es.restore(std::slice::from_ref(&w)).unwrap());
    assert_eq!(w.value().to_vec(), vec![1.0, -1.0]);
    let other = Param::new(Tensor::zeros(&[2]));
    assert!(matches!(es.restore(std::slice::from_ref(&other)), Err(RegError::ParamMismatch { .. })));
    assert!(es.step(0.5, &[w, other]).is_err());
    assert!(EarlyStopping::new(1, -0.1, Mode::Min).is_err());
    assert!(EarlyStopping::new(1, f64::NAN, Mode::Max).is_err());
}
