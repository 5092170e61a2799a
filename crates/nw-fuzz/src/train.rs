//! The `checkpoint` and `config` targets: what `nw resume` and `nw train`
//! do with a checkpoint or a configuration before the first step, without
//! reading data files.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nw_train::checkpoint::MAGIC;
use nw_train::config::DataShape;
use nw_train::{Checkpoint, LrPolicy, RunConfig, Trainer};
use sha2::{Digest, Sha256};

use crate::mutate::{Enc, Field, Seed};

/// The checkpoint header: magic, version, payload length, SHA-256.
const HEADER: usize = 8 + 4 + 8 + 32;

/// The shape a CSV data set is given (its file is not read).
fn stand_in() -> DataShape {
    DataShape { features: vec![4], outputs: 3, classes: true, train_examples: 100 }
}

/// The most parameters and buffers a target builds for an input of `len`
/// bytes: its allocation bound (`64 len + 1 MiB`, see
/// [`crate::harness::alloc_bound`]) over 32 bytes per element (the value,
/// its gradient, two optimizer moments, a weight average, a best-weights
/// copy, with room to spare). A configuration that describes a larger
/// model is refused by `build_trainer`'s limit, before anything of the
/// layer that passes it is allocated.
pub fn element_budget(len: usize) -> usize {
    len.saturating_mul(64).saturating_add(1 << 20) / 32
}

/// `RunConfig::from_toml` of `text`, with the TOML parser's allowance
/// ([`crate::harness::toml_allowance`]) while it runs: the parse and the
/// deserialisation may hold that much more than the target's bound, what
/// they return counts in full afterwards. Errors as text.
pub fn parse_config(text: &str) -> Result<RunConfig, String> {
    crate::alloc::allowing(crate::harness::toml_allowance(text.len()), || {
        RunConfig::from_toml(text).map_err(|e| e.to_string())
    })
}

/// Builds the trainer `cfg` describes on its data set's nominal shape
/// (`model.init_from` dropped: no file is read). Returns it with the shape.
pub fn build(mut cfg: RunConfig, len: usize) -> Result<(Trainer, DataShape), String> {
    cfg.model.init_from = None;
    cfg.validate().map_err(|e| e.to_string())?;
    let shape = DataShape::nominal(&cfg).unwrap_or_else(stand_in);
    let batches = shape.batches_per_epoch(cfg.batch_size());
    let t = nw_train::build_trainer(&cfg, &shape, batches, Some(element_budget(len)))
        .map_err(|e| e.to_string())?;
    Ok((t, shape))
}

/// What `nw resume` does with a verified checkpoint, short of the data:
/// parse its configuration (with [`parse_config`]'s allowance), build the trainer, restore every section, then
/// one evaluation forward pass of a zero example (through the weight
/// average when the run keeps one).
pub fn resume(ck: &Checkpoint, len: usize) -> Result<(), String> {
    let text = ck.config_toml().ok_or("the checkpoint has no configuration")?;
    let cfg = parse_config(text).map_err(|e| format!("the checkpoint's {e}"))?;
    let (mut t, shape) = build(cfg, len)?;
    t.restore(ck).map_err(|e| e.to_string())?;
    let mut dims = vec![1];
    dims.extend_from_slice(&shape.features);
    let x = nw_tensor::Tensor::try_zeros(&dims).map_err(|e| e.to_string())?;
    t.with_averaged(None, |t| t.predict(&x)).map_err(|e| e.to_string())?;
    // the first schedule step the resumed run would take
    match t.lr_policy.clone() {
        Some(LrPolicy::PerStep(mut s) | LrPolicy::PerEpoch(mut s)) => {
            s.step().map_err(|e| e.to_string())?;
        }
        Some(LrPolicy::Plateau(mut p)) => {
            p.step(1.0);
        }
        None => {}
    }
    Ok(())
}

/// Sets the payload length and SHA-256 of a (mutated) checkpoint to match
/// its payload, as a forger would.
pub fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= HEADER {
        let n = (bytes.len() - HEADER) as u64;
        bytes[12..20].copy_from_slice(&n.to_le_bytes());
        let sum = Sha256::digest(&bytes[HEADER..]);
        bytes[20..52].copy_from_slice(&sum);
    }
    bytes
}

/// Records where the varints of a bincode payload are: bincode reads each
/// one by peeking and consuming it (floats and strings are read, not
/// consumed).
struct Recorder<'a> {
    bytes: &'a [u8],
    pos: usize,
    fields: Vec<Field>,
}

impl bincode::de::read::Reader for Recorder<'_> {
    fn read(&mut self, out: &mut [u8]) -> Result<(), bincode::error::DecodeError> {
        let end = self.pos + out.len();
        let src = self
            .bytes
            .get(self.pos..end)
            .ok_or(bincode::error::DecodeError::UnexpectedEnd { additional: out.len() })?;
        out.copy_from_slice(src);
        self.pos = end;
        Ok(())
    }

    fn peek_read(&mut self, n: usize) -> Option<&[u8]> {
        self.bytes.get(self.pos..self.pos + n)
    }

    fn consume(&mut self, n: usize) {
        self.fields.push(Field { at: self.pos, len: n, enc: Enc::Varint });
        self.pos += n;
    }
}

/// A checkpoint's structure: the header's payload length (u64), every
/// varint of the payload (lengths, counts, dimensions, enum tags, integers)
/// and each top-level section (name and content) as a section.
pub fn checkpoint_structure(seed: &mut Seed) {
    let b = seed.bytes.clone();
    if b.len() < HEADER {
        return;
    }
    seed.fields.push(Field { at: 12, len: 8, enc: Enc::U64Le });
    let payload = &b[HEADER..];
    let mut r = Recorder { bytes: payload, pos: 0, fields: Vec::new() };
    let cfg = bincode::config::standard();
    if bincode::serde::decode_from_reader::<Checkpoint, _, _>(&mut r, cfg).is_ok() {
        seed.fields.extend(r.fields.iter().map(|f| Field { at: f.at + HEADER, ..*f }));
    }
    // the map: a varint count, then (name, section) pairs
    let Ok((n, mut pos)) = bincode::decode_from_slice::<u64, _>(payload, cfg) else { return };
    for _ in 0..n {
        let Ok(((_, _), used)) =
            bincode::serde::decode_from_slice::<(String, nw_train::Section), _>(&payload[pos..], cfg)
        else {
            return;
        };
        seed.sections.push(HEADER + pos..HEADER + pos + used);
        pos += used;
    }
}

/// A small run: `sets` are `(key, value)` overrides of the default run.
fn config(sets: &[(&str, &str)]) -> RunConfig {
    let mut cfg = RunConfig::default();
    for (k, v) in sets {
        cfg.set(k, v).unwrap_or_else(|e| panic!("{k} = {v}: {e}"));
    }
    cfg
}

/// A seed run: file name, overrides, and (for a checkpoint inside an
/// epoch) the batches of the second epoch before it stops.
type SeedRun = (&'static str, Vec<(&'static str, &'static str)>, Option<usize>);

/// Checkpoints of small real runs (trained on the embedded data sets):
/// Adam, SGD with momentum and a step schedule with early stopping and
/// dropout, an EMA stopped inside an epoch, and a layer list with
/// convolution and batch norm (buffers, an i64 counter).
pub fn checkpoint_seeds() -> Vec<(String, Vec<u8>)> {
    let quiet = [("train.monitor_every", "0"), ("train.epochs", "2")];
    let runs: Vec<SeedRun> = vec![
        ("iris-adam.nwck", vec![("data.dataset", "iris"), ("model.hidden", "[4]")], None),
        (
            "wine-sgd-step.nwck",
            vec![
                ("data.dataset", "wine"),
                ("model.hidden", "[3]"),
                ("model.dropout", "0.1"),
                ("optim.name", "sgd"),
                ("optim.momentum", "0.9"),
                ("schedule.kind", "step"),
                ("reg.early_stopping", "3"),
            ],
            None,
        ),
        (
            "iris-ema-partial.nwck",
            vec![
                ("data.dataset", "iris"),
                ("model.hidden", "[3]"),
                ("train.ema", "0.9"),
                ("train.batch", "16"),
            ],
            Some(3),
        ),
        (
            "digits-conv-bn.nwck",
            vec![
                (
                    "model.layer",
                    "[{ type = \"reshape\", shape = [1, 8, 8] }, { type = \"conv2d\", out = 2, kernel = 3 }, { type = \"batch_norm\" }, { type = \"relu\" }, { type = \"max_pool2d\", kernel = 2 }, { type = \"flatten\" }, { type = \"linear\" }]",
                ),
                ("train.epochs", "1"),
                ("train.batch", "256"),
            ],
            None,
        ),
    ];
    runs.into_iter()
        .map(|(name, sets, stop_after)| {
            let mut all: Vec<(&str, &str)> = quiet.to_vec();
            all.extend(sets);
            let cfg = config(&all);
            let mut run = nw_train::build_run(&cfg).expect("the seed run builds");
            match stop_after {
                None => {
                    nw_train::session::fit(&mut run, &cfg, None, &mut nw_train::session::Quiet)
                        .expect("the seed run trains");
                }
                Some(k) => {
                    // one epoch, then stop at a step boundary inside the second
                    let flag = Arc::new(AtomicBool::new(false));
                    run.trainer
                        .train_epoch(&run.loader, Some(&run.validation), &mut |_, _, _| {})
                        .expect("trains");
                    run.trainer.stop = Some(flag.clone());
                    let mut seen = 0;
                    let r = run.trainer.train_epoch(&run.loader, Some(&run.validation), &mut |_, _, _| {
                        seen += 1;
                        if seen == k {
                            flag.store(true, Ordering::SeqCst);
                        }
                    });
                    assert!(
                        matches!(r, Err(nw_train::TrainError::Interrupted { .. })),
                        "stopped inside the epoch"
                    );
                    run.trainer.stop = None;
                }
            }
            let ck = run.trainer.checkpoint(&cfg.to_toml()).expect("checkpoint");
            let bytes = ck.to_bytes().expect("encodes");
            assert_eq!(&bytes[..8], MAGIC);
            (name.to_string(), bytes)
        })
        .collect()
}

/// Run configurations: a short MLP, the default run as `nw train` writes it
/// (every key stated), templates (CNN, LSTM), a layer list, other
/// optimizers and schedules, regularizers, a weight average.
pub fn config_seeds() -> Vec<(String, Vec<u8>)> {
    let hand: Vec<(&str, &str)> = vec![
        (
            "mlp.toml",
            "[model]\nhidden = [32, 16]\nactivation = \"tanh\"\n\n[optim]\nname = \"sgd\"\nlr = 0.1\nmomentum = 0.9\n\n[train]\nepochs = 3\nbatch = 64\n",
        ),
        (
            "cnn-fashion.toml",
            "[data]\ndataset = \"fashion-mnist\"\nvalidation = 0.1\n\n[model]\nkind = \"cnn\"\nchannels = [4, 8]\nwidth = 16\n\n[schedule]\nkind = \"onecycle\"\n",
        ),
        (
            "lstm.toml",
            "[model]\nkind = \"lstm\"\nwidth = 8\nlayers = 2\n\n[optim]\nname = \"rmsprop\"\n\n[train]\naccumulate = 4\n",
        ),
        (
            "layers.toml",
            "[model]\nlayer = [\n  { type = \"reshape\", shape = [1, 8, 8] },\n  { type = \"conv2d\", out = 4, kernel = 3, padding = 1 },\n  { type = \"batch_norm\" },\n  { type = \"relu\" },\n  { type = \"avg_pool2d\", kernel = 2 },\n  { type = \"flatten\" },\n  { type = \"dropout\", p = 0.2 },\n  { type = \"linear\", out = 10 },\n]\n",
        ),
        (
            "regularized.toml",
            "[data]\ndataset = \"wine\"\n\n[model]\nhidden = [8]\ninit = \"xavier-uniform\"\n\n[optim]\nname = \"adamw\"\nweight_decay = 0.01\n\n[schedule]\nkind = \"warm-restarts\"\nt_0 = 5\n\n[reg]\nl1 = 0.0001\nmax_norm = 3.0\nclip_grad_norm = 1.0\nearly_stopping = 4\n\n[train]\nema = 0.99\nfreeze = [\"0.bias\"]\n",
        ),
    ];
    let mut out: Vec<(String, Vec<u8>)> =
        hand.into_iter().map(|(n, t)| (n.to_string(), t.as_bytes().to_vec())).collect();
    out.push(("default.toml".into(), RunConfig::default().to_toml().into_bytes()));
    out
}
