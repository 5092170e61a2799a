//! A persistent PyTorch worker (`benches/torch/worker.py`) driven over
//! stdin/stdout lines, so nw and PyTorch can be timed alternately in one run.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail};

/// The worker script, found from this crate's manifest directory.
pub fn worker_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/torch/worker.py")
}

/// A running worker. Dropping it asks the worker to quit and waits for it.
pub struct Torch {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Torch {
    /// Starts `python worker.py` and checks that it answers.
    pub fn start(python: &Path) -> Result<Torch> {
        let script = worker_script();
        let mut child = Command::new(python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("worker stdout")?);
        let mut t = Torch { child, stdin, stdout };
        t.request("info").context("the PyTorch worker did not answer `info`")?;
        Ok(t)
    }

    /// Sends one request line and returns the reply after its `ok`.
    pub fn request(&mut self, line: &str) -> Result<String> {
        writeln!(self.stdin, "{line}").context("writing to the PyTorch worker")?;
        self.stdin.flush()?;
        let mut reply = String::new();
        if self.stdout.read_line(&mut reply)? == 0 {
            bail!("the PyTorch worker exited (request: {line})");
        }
        let reply = reply.trim_end();
        match reply.strip_prefix("ok") {
            Some(rest) => Ok(rest.trim().to_string()),
            None => bail!("PyTorch worker, request `{line}`: {reply}"),
        }
    }

    /// `torch.__version__` and the default thread count, as the worker reports them.
    pub fn info(&mut self) -> Result<String> {
        self.request("info")
    }

    /// `torch.set_num_threads(n)`.
    pub fn set_threads(&mut self, n: usize) -> Result<()> {
        let got = self.request(&format!("threads {n}"))?;
        if got != n.to_string() {
            bail!("asked PyTorch for {n} threads, it reports {got}");
        }
        Ok(())
    }

    /// Seconds taken by `iters` runs of the op set up last.
    pub fn time(&mut self, iters: u64) -> Result<f64> {
        let s = self.request(&format!("time {iters}"))?;
        s.parse().with_context(|| format!("bad time from the PyTorch worker: {s}"))
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}
