//! Learning-rate schedules: hand-worked values, errors, checkpoint round trips.
//! (Every torch schedule is also checked against PyTorch in nw-parity's
//! `optim_parity` test.)

use nw_autograd::Param;
use nw_optim::schedule::{
    Anneal, LambdaLr, LrSchedule, PlateauConfig, PlateauMode, ReduceLrOnPlateau, Schedule, Scheduler,
    ThresholdMode,
};
use nw_optim::{OptimError, Optimizer, ParamGroup, Sgd};
use nw_tensor::Tensor;

fn rates(s: Schedule, base: f64, n: usize) -> Vec<f64> {
    let mut s = Scheduler::new(s, base).unwrap();
    let mut out = vec![s.lr()];
    for _ in 1..n {
        out.push(s.step().unwrap());
    }
    out
}

fn close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-12 + 1e-12 * w.abs(), "step {i}: got {g}, want {w}\n{got:?}");
    }
}

#[test]
fn closed_forms_worked_by_hand() {
    // StepLR(step_size 2, γ 0.5): 1, 1, .5, .5, .25
    close(&rates(Schedule::Step { step_size: 2, gamma: 0.5 }, 1.0, 5), &[1.0, 1.0, 0.5, 0.5, 0.25]);
    // MultiStepLR with a repeated milestone decays twice there
    close(
        &rates(Schedule::MultiStep { milestones: vec![1, 3, 3], gamma: 0.5 }, 1.0, 4),
        &[1.0, 0.5, 0.5, 0.125],
    );
    // CosineAnnealingLR(T_max 2, η_min 0): 1, 0.5, 0, then back up 0.5, 1
    close(&rates(Schedule::CosineAnnealing { t_max: 2, eta_min: 0.0 }, 1.0, 5), &[1.0, 0.5, 0.0, 0.5, 1.0]);
    // SGDR(T_0 1, T_mult 2): periods 1, 2, 4: T_cur = 0 | 0 1 | 0 1 2 3
    let c = |t: f64, ti: f64| (1.0 + (std::f64::consts::PI * t / ti).cos()) / 2.0;
    close(
        &rates(Schedule::CosineWarmRestarts { t_0: 1, t_mult: 2, eta_min: 0.0 }, 1.0, 7),
        &[1.0, 1.0, c(1.0, 2.0), 1.0, c(1.0, 4.0), c(2.0, 4.0), c(3.0, 4.0)],
    );
    // LinearLR(0.25 → 1 over 3): 0.25, 0.5, 0.75, 1, 1
    close(
        &rates(Schedule::Linear { start_factor: 0.25, end_factor: 1.0, total_iters: 3 }, 1.0, 5),
        &[0.25, 0.5, 0.75, 1.0, 1.0],
    );
    // PolynomialLR(total 2, power 2): 1, 1/4, 0, 0
    close(&rates(Schedule::Polynomial { total_iters: 2, power: 2.0 }, 1.0, 4), &[1.0, 0.25, 0.0, 0.0]);
    // OneCycleLR linear, max 1, 10 steps, pct 0.3, div 10, final div 10:
    // up over steps 0..=2 from 0.1 to 1, then down to 0.01 at step 9
    let oc = Schedule::OneCycle {
        max_lr: 1.0,
        total_steps: 10,
        pct_start: 0.3,
        anneal_strategy: Anneal::Linear,
        div_factor: 10.0,
        final_div_factor: 10.0,
        three_phase: false,
        cycle_momentum: None,
    };
    let r = rates(oc, 123.0, 10);
    close(&r[..3], &[0.1, 0.55, 1.0]);
    close(&r[9..], &[0.01]);
}

#[test]
fn one_cycle_past_its_end_is_an_error_as_in_torch() {
    let mut s = Scheduler::new(Schedule::one_cycle(0.1, 3), 0.1).unwrap();
    for _ in 0..3 {
        s.step().unwrap(); // epoch 3 = total_steps is still allowed (torch raises above it)
    }
    assert_eq!(
        s.step().unwrap_err(),
        OptimError::ScheduleFinished { schedule: "OneCycleLR", step: 4, total_steps: 3 }
    );
    assert_eq!(s.epoch(), 3);
}

#[test]
fn invalid_schedules_are_errors_naming_the_field() {
    let bad = |s: Schedule| match Scheduler::new(s, 0.1).unwrap_err() {
        OptimError::InvalidHyper { owner, name, value, .. } => (owner, name, value),
        e => panic!("{e}"),
    };
    assert_eq!(bad(Schedule::Step { step_size: 0, gamma: 0.5 }), ("StepLR", "step_size", 0.0));
    assert_eq!(bad(Schedule::Constant { factor: 1.5, total_iters: 3 }), ("ConstantLR", "factor", 1.5));
    assert_eq!(
        bad(Schedule::Linear { start_factor: 0.0, end_factor: 1.0, total_iters: 3 }),
        ("LinearLR", "start_factor", 0.0)
    );
    assert_eq!(
        bad(Schedule::CosineAnnealing { t_max: 0, eta_min: 0.0 }),
        ("CosineAnnealingLR", "T_max", 0.0)
    );
    assert_eq!(
        bad(Schedule::CosineWarmRestarts { t_0: 5, t_mult: 0, eta_min: 0.0 }),
        ("CosineAnnealingWarmRestarts", "T_mult", 0.0)
    );
    assert_eq!(
        bad(Schedule::Sequential {
            schedules: vec![Schedule::Exponential { gamma: 0.9 }],
            milestones: vec![3]
        }),
        ("SequentialLR", "milestones", 1.0)
    );
    // a nested schedule is checked too
    assert_eq!(
        bad(Schedule::Sequential {
            schedules: vec![Schedule::Exponential { gamma: -1.0 }, Schedule::Exponential { gamma: 0.9 }],
            milestones: vec![3],
        }),
        ("ExponentialLR", "gamma", -1.0)
    );
    let e =
        ReduceLrOnPlateau::new(PlateauConfig { factor: 1.0, ..PlateauConfig::default() }, 0.1).unwrap_err();
    assert_eq!(e.to_string(), "ReduceLROnPlateau: invalid factor = 1: must lie in [0, 1)");
}

#[test]
fn a_scheduler_saved_mid_run_continues_identically() {
    let sched = Schedule::Sequential {
        schedules: vec![
            Schedule::Linear { start_factor: 0.1, end_factor: 1.0, total_iters: 4 },
            Schedule::CosineWarmRestarts { t_0: 3, t_mult: 2, eta_min: 0.001 },
        ],
        milestones: vec![4],
    };
    let mut a = Scheduler::new(sched.clone(), 0.5).unwrap();
    let mut b = Scheduler::new(sched, 0.5).unwrap();
    for _ in 0..9 {
        a.step().unwrap();
        b.step().unwrap();
    }
    let saved = serde_json::to_string(&b).unwrap();
    drop(b);
    let mut b: Scheduler = serde_json::from_str(&saved).unwrap();
    for _ in 0..20 {
        assert_eq!(a.step().unwrap().to_bits(), b.step().unwrap().to_bits());
    }

    let mut p =
        ReduceLrOnPlateau::new(PlateauConfig { patience: 0, ..PlateauConfig::default() }, 1.0).unwrap();
    p.step(1.0);
    p.step(2.0); // worse: patience 0 reduces at once to 0.1
    let mut q: ReduceLrOnPlateau = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(q, p);
    assert_eq!((p.step(3.0), q.step(3.0)), (0.1 * 0.1, 0.1 * 0.1));
}

#[test]
fn plateau_modes_worked_by_hand() {
    // max mode, absolute threshold 0.1, patience 1, factor 0.5:
    // 1.0 best | 1.05 not > 1.1: bad 1 | 1.2 best | 1.2 bad 1 | 1.25 bad 2 > 1: halve
    let cfg = PlateauConfig {
        mode: PlateauMode::Max,
        threshold_mode: ThresholdMode::Abs,
        threshold: 0.1,
        patience: 1,
        factor: 0.5,
        ..PlateauConfig::default()
    };
    let mut s = ReduceLrOnPlateau::new(cfg, 0.8).unwrap();
    let got: Vec<f64> = [1.0, 1.05, 1.2, 1.2, 1.25].iter().map(|&m| s.step(m)).collect();
    assert_eq!(got, [0.8, 0.8, 0.8, 0.8, 0.4]);
    assert_eq!(s.best(), Some(1.2));
    // min_lr floors the rate, and a reduction smaller than eps is not applied
    let cfg = PlateauConfig { patience: 0, factor: 0.5, min_lr: 0.3, ..PlateauConfig::default() };
    let mut s = ReduceLrOnPlateau::new(cfg, 1.0).unwrap();
    let got: Vec<f64> = [1.0, 1.0, 1.0, 1.0].iter().map(|&m| s.step(m)).collect();
    assert_eq!(got, [1.0, 0.5, 0.3, 0.3]);
}

#[test]
fn lambda_schedule_drives_an_optimizer_with_groups() {
    let a = Param::new(Tensor::zeros(&[1]));
    let b = Param::new(Tensor::zeros(&[1]));
    let mut opt = Sgd { lr: 0.2, ..Sgd::default() }
        .build_groups(vec![ParamGroup::new(vec![a]), ParamGroup::new(vec![b]).lr(0.02)])
        .unwrap();
    let mut s = LambdaLr::new(0.2, |t| 0.5f64.powi(t as i32));
    s.step().unwrap();
    s.step().unwrap();
    s.apply(&mut opt);
    // 0.2 · 0.25 = 0.05 for the default group; the other keeps its tenth
    assert_eq!(opt.lr(), 0.05);
    assert_eq!(opt.param_groups()[1].lr, Some(0.05 * (0.02 / 0.2)));
    assert_eq!(s.epoch(), 2);
    s.set_epoch(0);
    assert_eq!(s.lr(), 0.2);
}

#[test]
fn momentum_is_set_where_an_optimizer_has_one_and_an_error_elsewhere() {
    use nw_optim::{Adagrad, Adam};
    let p = || vec![nw_autograd::Param::new(nw_tensor::Tensor::zeros(&[2]))];
    let mut adam = Adam::default().build(p()).unwrap();
    adam.set_momentum(0.8).unwrap();
    assert_eq!(adam.momentum(), Some(0.8));
    assert_eq!(adam.config().betas, (0.8, 0.999)); // beta2 untouched
    // beta1 = 1 is out of range: an error, and nothing changes
    assert!(adam.set_momentum(1.0).is_err());
    assert_eq!(adam.momentum(), Some(0.8));
    let mut sgd = Sgd { momentum: 0.9, ..Sgd::default() }.build(p()).unwrap();
    sgd.set_momentum(0.85).unwrap();
    assert_eq!(sgd.momentum(), Some(0.85));
    // SGD without momentum has no buffer to cycle
    let mut plain = Sgd::default().build(p()).unwrap();
    assert!(matches!(
        plain.set_momentum(0.9),
        Err(nw_optim::OptimError::NoMomentum { optimizer: "SGD", .. })
    ));
    let mut ada = Adagrad::default().build(p()).unwrap();
    assert_eq!(ada.momentum(), None);
    assert!(matches!(ada.set_momentum(0.9), Err(nw_optim::OptimError::NoMomentum { .. })));
}

#[test]
fn chained_multiplicative_and_swalr_step_as_torch() {
    // ChainedScheduler(ConstantLR(0.5, 2), ExponentialLR(0.5)) from 1:
    // 0.5, 0.25, then ConstantLR ends (x2): 0.25, 0.125
    let c = Schedule::Chained {
        schedules: vec![
            Schedule::Constant { factor: 0.5, total_iters: 2 },
            Schedule::Exponential { gamma: 0.5 },
        ],
    };
    close(&rates(c, 1.0, 4), &[0.5, 0.25, 0.25, 0.125]);
    close(&rates(Schedule::Multiplicative { factor: 0.5 }, 1.0, 3), &[1.0, 0.5, 0.25]);
    // SWALR linear over 2 steps from 1 to 0.1: 1, 0.55, 0.1, 0.1
    let s = Schedule::Swa { swa_lr: 0.1, anneal_epochs: 2, anneal_strategy: Anneal::Linear };
    close(&rates(s, 1.0, 4), &[1.0, 0.55, 0.1, 0.1]);
    // cycle_momentum: CyclicLR triangular up 2: momentum max at the low rate, base at the peak
    let cy = Schedule::Cyclic {
        base_lr: 0.1,
        max_lr: 1.0,
        step_size_up: 2,
        step_size_down: None,
        mode: nw_optim::schedule::CyclicMode::Triangular,
        gamma: 1.0,
        cycle_momentum: Some(nw_optim::schedule::MomentumCycle { base_momentum: 0.8, max_momentum: 0.9 }),
    };
    let m: Vec<f64> = (0..5).map(|t| cy.momentum_at(t).unwrap()).collect();
    close(&m, &[0.9, 0.85, 0.8, 0.85, 0.9]);
}
