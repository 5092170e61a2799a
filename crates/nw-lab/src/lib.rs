//! # nw-lab
//!
//! Experiments that measure the textbook claims about how weights update.
//! Each experiment trains the same model on the same real data (the embedded
//! UCI digits) changing one thing, over several seeds, and writes
//! `results.csv`, `report.md`, plots (SVG and PNG) and an HTML section; the
//! article's figure of every row stands beside the measured mean ± spread,
//! with a plain verdict. [`run_all`] writes one self-contained `index.html`.
//!
//! Main types: [`Experiment`] (the registry of experiments), [`LabOptions`]
//! and [`Budget`] (quick / default / full), [`measure::Setup`],
//! [`measure::Limits`] and [`measure::Trace`] (one measured run),
//! [`report::Report`].
//!
//! ```no_run
//! use nw_lab::{Budget, Experiment, LabOptions};
//!
//! let opts = LabOptions { budget: Budget::Quick, seeds: None, out: "lab-out".into() };
//! let report = Experiment::Momentum.run(&opts).unwrap();
//! println!("{}", report.claims.markdown());
//! ```
//!
//! ## Invariants
//! - Every run is seeded from its seed alone: the same options give the same
//!   `results.csv`, bit for bit, on any number of threads (wall times go to
//!   `timing.csv` only).
//! - The weight update is measured from the weights before and after each
//!   optimizer step, never computed as lr x grad.
//! - The article's figures are quoted, never fitted: the measured numbers come
//!   from the runs alone.
#![deny(missing_docs)]

mod error;
mod exp;
pub mod html;
pub mod measure;
pub mod report;
pub mod runs;
pub mod stats;

use std::path::PathBuf;

pub use error::{LabError, Result};

/// How large the experiments are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Budget {
    /// Seconds per experiment: what the tests run (small nets, few steps, 2 seeds).
    Quick,
    /// A few minutes per experiment on 2 cores (3 seeds).
    #[default]
    Default,
    /// Larger settings (5 seeds, longer budgets).
    Full,
}

impl Budget {
    /// Picks the value for this budget.
    pub fn pick<T>(self, quick: T, default: T, full: T) -> T {
        match self {
            Budget::Quick => quick,
            Budget::Default => default,
            Budget::Full => full,
        }
    }

    /// The budget's name.
    pub fn as_str(self) -> &'static str {
        self.pick("quick", "default", "full")
    }
}

/// Options every experiment takes.
#[derive(Debug, Clone, PartialEq)]
pub struct LabOptions {
    /// Size of the runs.
    pub budget: Budget,
    /// Seeds to run (default: 2 quick, 3 default, 5 full); seeds are 0..N.
    pub seeds: Option<usize>,
    /// Output directory; each experiment writes into `<out>/<name>/`.
    pub out: PathBuf,
}

impl LabOptions {
    /// The seeds to run.
    pub fn seed_list(&self) -> Vec<u64> {
        let n = self.seeds.unwrap_or(self.budget.pick(2, 3, 5)).max(1);
        (0..n as u64).collect()
    }
}

macro_rules! experiments {
    ($($variant:ident => $name:literal, $module:ident, $title:literal;)*) => {
        /// The experiments, in the order `nw lab all` runs them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Experiment {
            $(
                #[doc = $title]
                $variant,
            )*
        }

        impl Experiment {
            /// Every experiment, in order.
            pub const ALL: &'static [Experiment] = &[$(Experiment::$variant),*];

            /// The name used on the command line and as the directory.
            pub fn name(self) -> &'static str {
                match self { $(Experiment::$variant => $name),* }
            }

            /// A one-line description.
            pub fn title(self) -> &'static str {
                match self { $(Experiment::$variant => $title),* }
            }

            /// Runs the experiment, writing its files into `<out>/<name>/`.
            pub fn run(self, opts: &LabOptions) -> Result<report::Report> {
                let dir = opts.out.join(self.name());
                let r = match self { $(Experiment::$variant => exp::$module::run(opts, &dir)?),* };
                r.write()?;
                Ok(r)
            }
        }
    };
}

experiments! {
    Init => "init", init, "Initialisers on a deep ReLU MLP and a deep tanh MLP: convergence steps, activation and gradient scale per layer at step 0";
    Lr => "lr", lr, "Learning rate on a log grid: convergence steps";
    Momentum => "momentum", momentum, "SGD momentum 0 / 0.5 / 0.9 / 0.99 / Nesterov: weight update at iteration 100";
    BatchSize => "batch-size", batch_size, "Full batch vs online vs mini-batches 16..256: steps, epochs and wall time to target";
    Optimizers => "optimizers", optimizers, "Every optimizer nw has, at its own default: steps to target";
    Schedules => "schedules", schedules, "Learning-rate schedules: validation accuracy";
    Regularization => "regularization", regularization, "Regularizers: train-validation accuracy gap and weight update";
    Pruning => "pruning", pruning, "Accuracy against sparsity: one-shot vs gradual, with and without fine-tuning";
    Activation => "activation", activation, "A CNN on the digit images with ReLU, sigmoid and tanh";
    Rnn => "rnn", rnn, "RNN vs LSTM vs GRU on image rows and the adding problem, with and without clipping";
    Algorithms => "algorithms", algorithms, "Backprop vs genetic algorithm vs particle swarm on the same network";
    Unsupervised => "unsupervised", unsupervised, "Classifier vs autoencoder vs GAN on the digits";
    Online => "online", online, "Online updates on a shifted stream: adaptation against forgetting";
}

impl std::str::FromStr for Experiment {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Self> {
        Experiment::ALL.iter().copied().find(|e| e.name() == s).ok_or_else(|| {
            LabError::Config(format!(
                "unknown experiment {s:?}; expected one of {}",
                Experiment::ALL.iter().map(|e| e.name()).collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

/// Runs `experiments` (all of them when empty) and writes `<out>/index.html`
/// with every report; `on_done` sees each finished report. Returns the path
/// of the page.
pub fn run_all(
    opts: &LabOptions,
    experiments: &[Experiment],
    on_done: &mut dyn FnMut(&report::Report),
) -> Result<PathBuf> {
    let list = if experiments.is_empty() { Experiment::ALL } else { experiments };
    let mut reports = Vec::new();
    for e in list {
        let r = e.run(opts)?;
        on_done(&r);
        reports.push(r);
    }
    write_index(opts, &reports)
}

/// Writes `<out>/index.html` for `reports`.
pub fn write_index(opts: &LabOptions, reports: &[report::Report]) -> Result<PathBuf> {
    let mut sections = Vec::new();
    for r in reports {
        sections.push((r.name.clone(), r.name.clone(), r.html()?));
    }
    let intro = vec![
        format!(
            "nw lab, budget **{}**, seeds {}. Each section trains the same model on the same data changing one thing; \
             the article's figures stand beside the measured mean ± spread.",
            opts.budget.as_str(),
            opts.seed_list().iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ),
        "Definitions used throughout:".to_string(),
    ];
    let mut page = html::page("nw lab report", &intro, &sections);
    let defs: String = measure::DEFINITIONS
        .lines()
        .map(|l| format!("<li>{}</li>", html::inline(l.trim_start_matches("- "))))
        .collect();
    page = page.replacen("<nav>", &format!("<ul>{defs}</ul><nav>"), 1);
    std::fs::create_dir_all(&opts.out).map_err(error::io(&opts.out))?;
    let path = opts.out.join("index.html");
    std::fs::write(&path, page).map_err(error::io(&path))?;
    Ok(path)
}
