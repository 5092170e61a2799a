//! Dropout, Dropout2d and DropConnect: statistics, evaluation identity,
//! gradient routing, determinism, validation.

use nw_autograd::{Param, Var};
use nw_reg::{DropConnect, Dropout, Dropout2d, RegError, drop_connect, dropout, dropout_mask, dropout2d};
use nw_tensor::{Rng, Tensor};

#[test]
fn mean_is_preserved_and_drop_rate_is_p() {
    let mut rng = Rng::new(1);
    let n = 200 * 500;
    for p in [0.1, 0.3, 0.5, 0.8] {
        let x = Var::constant(Tensor::ones(&[200, 500]));
        let y = dropout(&x, p, true, &mut rng).unwrap().value().to_vec();
        let mean = y.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        // mean of n iid values with variance p/(1-p): std of the mean
        // sqrt(p / (1-p) / n) <= 0.0064 here; allow 5 std
        let sd = (p / (1.0 - p) / n as f64).sqrt();
        assert!((mean - 1.0).abs() < 5.0 * sd, "p {p}: mean {mean}");
        // fraction dropped: std sqrt(p (1-p) / n) <= 0.0016; allow 5 std
        assert!((zeros - p).abs() < 5.0 * (p * (1.0 - p) / n as f64).sqrt(), "p {p}: dropped {zeros}");
        // kept values carry the inverted scale 1/(1-p) computed in f32
        let scale = 1.0f32 / (1.0 - p) as f32;
        assert!(y.iter().all(|&v| v == 0.0 || v == scale));
    }
}

#[test]
fn eval_mode_and_p_zero_are_identity_and_draw_nothing() {
    let mut rng = Rng::new(2);
    let x = Var::constant(Tensor::randn(&[3, 4], 0.0, 1.0, &mut rng));
    let before = rng.state();
    let mut d = Dropout::new(0.5).unwrap();
    d.eval();
    assert!(!d.is_training());
    assert_eq!(d.forward(&x, &mut rng).unwrap().value(), x.value());
    assert_eq!(dropout(&x, 0.0, true, &mut rng).unwrap().value(), x.value());
    let x4 = Var::constant(Tensor::ones(&[2, 3, 2, 2]));
    let mut d2 = Dropout2d::new(0.5).unwrap();
    d2.set_training(false);
    assert_eq!(d2.forward(&x4, &mut rng).unwrap().value(), x4.value());
    assert_eq!(rng.state(), before);
    d.train();
    assert_ne!(d.forward(&x, &mut rng).unwrap().value(), x.value());
}

#[test]
fn gradient_flows_only_through_kept_units() {
    let mut rng = Rng::new(3);
    let xv = Tensor::randn(&[8, 16], 0.0, 1.0, &mut rng).map(|v| v + 10.0); // no zeros in x
    let x = Var::leaf(xv.clone(), true);
    let p = 0.4;
    let y = dropout(&x, p, true, &mut rng).unwrap();
    let g = y.sum().backward().unwrap();
    let gx = g.wrt(&x).unwrap().to_vec();
    let yv = y.value().to_vec();
    let scale = 1.0f32 / (1.0 - p) as f32;
    let mut kept = 0;
    for (i, (&yi, &gi)) in yv.iter().zip(&gx).enumerate() {
        if yi == 0.0 {
            assert_eq!(gi, 0.0, "dropped unit {i} got gradient");
        } else {
            kept += 1;
            // d(sum y)/dx_i = m_i / (1-p)
            assert_eq!(gi, scale);
            assert_eq!(yi, xv.to_vec()[i] * scale);
        }
    }
    assert!(kept > 0 && kept < yv.len());
}

#[test]
fn same_seed_same_mask() {
    let x = Var::constant(Tensor::ones(&[32, 32]));
    let a = dropout(&x, 0.5, true, &mut Rng::new(42)).unwrap().value().clone();
    let b = dropout(&x, 0.5, true, &mut Rng::new(42)).unwrap().value().clone();
    let c = dropout(&x, 0.5, true, &mut Rng::new(43)).unwrap().value().clone();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(
        dropout_mask(&[5, 7], 0.2, &mut Rng::new(9)).unwrap(),
        dropout_mask(&[5, 7], 0.2, &mut Rng::new(9)).unwrap()
    );
}

#[test]
fn p_one_gives_zeros_and_bad_p_is_an_error() {
    let mut rng = Rng::new(4);
    let x = Var::leaf(Tensor::ones(&[3, 3]), true);
    let y = dropout(&x, 1.0, true, &mut rng).unwrap();
    assert!(y.value().to_vec().iter().all(|&v| v == 0.0));
    let g = y.sum().backward().unwrap();
    assert!(g.wrt(&x).unwrap().to_vec().iter().all(|&v| v == 0.0));
    for bad in [-0.1, 1.0001, f64::NAN] {
        assert!(matches!(Dropout::new(bad), Err(RegError::BadProbability { .. })), "{bad}");
        assert!(dropout(&x, bad, false, &mut rng).is_err(), "{bad}");
        assert!(Dropout2d::new(bad).is_err() && DropConnect::new(bad).is_err());
    }
}

#[test]
fn dropout2d_drops_whole_channels() {
    let mut rng = Rng::new(5);
    let (n, c, h, w) = (4, 64, 3, 3);
    let x = Var::constant(Tensor::ones(&[n, c, h, w]));
    let y = dropout2d(&x, 0.5, true, &mut rng).unwrap().value().to_vec();
    let mut dropped = 0;
    for ch in y.chunks(h * w) {
        // every channel is all zeros or all 2 = 1/(1-0.5)
        assert!(ch.iter().all(|&v| v == 0.0) || ch.iter().all(|&v| v == 2.0), "{ch:?}");
        dropped += (ch[0] == 0.0) as usize;
    }
    // 256 channels, Binomial(256, 0.5): mean 128, std 8; allow 5 std
    assert!((dropped as i64 - 128).abs() < 40, "{dropped}");
    // unbatched [C, H, W]
    let y3 = dropout2d(&Var::constant(Tensor::ones(&[c, h, w])), 0.5, true, &mut rng).unwrap();
    assert!(y3.value().to_vec().chunks(h * w).all(|ch| ch.iter().all(|&v| v == ch[0])));
    // a 2-D input is an error
    let e = dropout2d(&Var::constant(Tensor::ones(&[4, 4])), 0.5, true, &mut rng).unwrap_err();
    assert!(matches!(e, RegError::BadArgument { .. }));
}

#[test]
fn drop_connect_masks_weights_and_their_gradient() {
    let mut rng = Rng::new(6);
    let w = Param::new(Tensor::randn(&[5, 4], 0.0, 1.0, &mut rng).map(|v| v + 10.0));
    let x = Var::constant(Tensor::ones(&[2, 4]));
    let dc = DropConnect::new(0.5).unwrap();
    let wm = dc.weight(&w, &mut rng).unwrap();
    let y = x.linear(&wm, None).unwrap();
    let g = y.sum().backward().unwrap();
    let gw = g.get(&w).unwrap().to_vec();
    let masked = wm.value().to_vec();
    for (i, (&m, &gi)) in masked.iter().zip(&gw).enumerate() {
        if m == 0.0 {
            assert_eq!(gi, 0.0, "dropped weight {i} got gradient");
        } else {
            // d/dW_ij sum_n y_nj = sum_n x_ni * 2 (scale 1/(1-0.5)) = 2 * 2
            assert_eq!(gi, 4.0);
        }
    }
    assert!(masked.contains(&0.0));
    // evaluation: the plain weight
    assert_eq!(drop_connect(&w, 0.5, false, &mut rng).unwrap().value(), &w.value());
}
