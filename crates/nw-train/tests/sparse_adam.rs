//! `optim.name = "sparse_adam"` from the typed configuration: an embedding
//! with `sparse = true` trains with SparseAdam (its dense head frozen),
//! resumes from a checkpoint bit for bit, and every configuration torch
//! would refuse (a dense parameter, a penalty) is a configuration error
//! (exit 2) naming what is wrong. Micro-shards (`train.accumulate`,
//! distributed ranks) carry the union of the rows each shard touched, as
//! torch's accumulated sparse gradient does once coalesced.

use nw_nn::Module;
use nw_train::RunConfig;

/// A CSV of 240 rows of 6 integer features in 0..=16 (the indices, unscaled)
/// and a class in 0..3, written once per test process.
fn csv() -> std::path::PathBuf {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("nw-sparse-adam-{}.csv", std::process::id()));
        let mut text = String::from("f0,f1,f2,f3,f4,f5,class\n");
        let mut state = 7u64;
        for _ in 0..240 {
            let mut row = Vec::new();
            for _ in 0..6 {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                row.push((state >> 33) % 17);
            }
            let class = row.iter().sum::<u64>() % 3;
            let cells: Vec<String> = row.iter().map(u64::to_string).collect();
            text += &format!("{},{class}\n", cells.join(","));
        }
        std::fs::write(&path, text).unwrap();
        path
    })
    .clone()
}

/// The rows' features looked up in a 17-row table (row 0 is padding).
fn config(extra_train: &str, extra: &str) -> String {
    format!(
        r#"
[data]
dataset = "csv"
csv = "{}"
standardize = false
[model]
layer = [
  {{ type = "embedding", num = 17, dim = 2, padding_idx = 0, sparse = true }},
  {{ type = "flatten" }},
  {{ type = "linear" }},
]
[optim]
name = "sparse_adam"
lr = 0.01
betas = [0.8, 0.99]
[train]
epochs = 2
batch = 64
{extra_train}
{extra}
"#,
        csv().display()
    )
}

fn bits(m: &dyn Module) -> Vec<(String, Vec<u32>)> {
    m.named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.value().to_vec().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

#[test]
fn a_sparse_embedding_trains_with_sparse_adam_and_resumes_bit_for_bit() {
    let cfg = RunConfig::from_toml(&config(r#"freeze = ["2.*"]"#, "")).unwrap();
    assert_eq!(RunConfig::from_toml(&cfg.to_toml()).unwrap(), cfg, "sparse = true round-trips");
    assert!(cfg.to_toml().contains("sparse = true"), "{}", cfg.to_toml());
    let mut run = nw_train::build_run(&cfg).unwrap();
    assert_eq!(run.trainer.optimizer.name(), "SparseAdam");
    assert_eq!(run.trainer.model.sparse_parameters(), ["0.weight"]);
    let start = bits(&run.trainer.model);
    let first = run.trainer.train_epoch(&run.loader, Some(&run.validation), &mut |_, _, _| {}).unwrap();
    assert!(first.train_loss.is_finite());
    let after = bits(&run.trainer.model);
    // the frozen head did not move; the table moved, except its padding row 0,
    // which batches look up but which gets no gradient
    assert_eq!(after[1], start[1]);
    assert_eq!(after[2], start[2]);
    assert_eq!(&after[0].1[..2], &start[0].1[..2]);
    assert_ne!(&after[0].1[2..], &start[0].1[2..]);
    let ck = run.trainer.checkpoint(&cfg.to_toml()).unwrap();
    let bytes = ck.to_bytes().unwrap();
    let second = run.trainer.train_epoch(&run.loader, Some(&run.validation), &mut |_, _, _| {}).unwrap();
    let mut again = nw_train::build_run(&cfg).unwrap();
    let ck = nw_train::checkpoint::Checkpoint::from_bytes(&bytes, std::path::Path::new("mem")).unwrap();
    again.trainer.restore(&ck).unwrap();
    let resumed =
        again.trainer.train_epoch(&again.loader, Some(&again.validation), &mut |_, _, _| {}).unwrap();
    assert_eq!(resumed.train_loss.to_bits(), second.train_loss.to_bits());
    assert_eq!(bits(&run.trainer.model), bits(&again.trainer.model));
    assert_eq!(run.trainer.optimizer.state_dict(), again.trainer.optimizer.state_dict());
}

fn config_error(text: &str) -> String {
    let cfg = RunConfig::from_toml(text).unwrap();
    match nw_train::build_run(&cfg) {
        Ok(_) => panic!("built {text}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{e}");
            e.to_string()
        }
    }
}

#[test]
fn a_dense_parameter_is_a_configuration_error_naming_it() {
    let e = config_error(&config("", ""));
    assert!(e.contains("`2.weight` (and 1 more) has a dense gradient"), "{e}");
    assert!(e.contains("train.freeze"), "{e}");
    // a table without sparse = true is dense too
    let e = config_error(&config(r#"freeze = ["2.*"]"#, "").replace(", sparse = true", ""));
    assert!(e.contains("`0.weight` has a dense gradient"), "{e}");
}

#[test]
fn penalties_and_bad_hyper_parameters_are_refused_up_front() {
    let e = config_error(&config(r#"freeze = ["2.*"]"#, "[reg]\nl2 = 0.01"));
    assert!(e.contains("reg.l1 or reg.l2"), "{e}");
    // torch's hyper-parameter checks, named
    let e = config_error(&config(r#"freeze = ["2.*"]"#, "").replace("lr = 0.01", "lr = 0.0"));
    assert!(e.contains("lr") && e.contains("> 0"), "{e}");
    let e = config_error(&config(r#"freeze = ["2.*"]"#, "").replace("[0.8, 0.99]", "[0.8, 1.0]"));
    assert!(e.contains("betas[1]"), "{e}");
}

fn train(cfg: &RunConfig) -> Vec<(String, Vec<u32>)> {
    let mut run = nw_train::build_run(cfg).unwrap();
    for _ in 0..cfg.train.epochs {
        run.trainer.train_epoch(&run.loader, None, &mut |_, _, _| {}).unwrap();
    }
    bits(&run.trainer.model)
}

/// `accumulate = k` cuts each batch into k micro-shards whose touched rows
/// are united: the same update as one shard up to the summation order of
/// the gradient values (close, not bitwise); and 1, 2, 3 ranks of the threads
/// collective give the same bits as one process at the same `accumulate`.
#[test]
fn micro_shards_unite_their_rows_on_any_rank_count() {
    let one = RunConfig::from_toml(&config(r#"freeze = ["2.*"]"#, "")).unwrap();
    let four = RunConfig::from_toml(&config("freeze = [\"2.*\"]\naccumulate = 4", "")).unwrap();
    let (a, b) = (train(&one), train(&four));
    let floats = |v: &[u32]| v.iter().map(|&x| f32::from_bits(x)).collect::<Vec<_>>();
    let (wa, wb) = (floats(&a[0].1), floats(&b[0].1));
    let worst = wa.iter().zip(&wb).map(|(x, y)| (x - y).abs() / x.abs().max(1e-3)).fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "accumulate 4 vs 1: worst relative difference {worst}");
    assert_eq!(&wa[..2], &wb[..2], "the padding row never moves");
    // in one process, with the distributed arithmetic
    let mut dist = four.clone();
    dist.train.distributed = true;
    let solo = train(&dist);
    for n in 1..=3 {
        let ranks = nw_dist::threads::group(n, std::time::Duration::from_secs(60)).unwrap();
        let hs: Vec<_> = ranks
            .into_iter()
            .map(|c| {
                let cfg = four.clone();
                std::thread::spawn(move || {
                    let mut d = nw_train::distributed::Distributed::new(&cfg, Box::new(c)).unwrap();
                    d.fit(&cfg, None, &mut nw_train::session::Quiet).unwrap();
                    bits(&d.run.trainer.model)
                })
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), solo, "{n} ranks");
        }
    }
}
