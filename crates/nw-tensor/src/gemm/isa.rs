//! Which instruction set the kernels run with: the best one the CPU has, or
//! the one the environment variable `NW_ISA` forces (read once per process).
//!
//! `NW_ISA` takes `auto` (or unset / empty: the best available), `avx512`,
//! `avx2` or `scalar`. Forcing a lower set lets an AVX-512 machine measure
//! what an AVX2-only user gets; forcing a set the CPU lacks, or a value that
//! is none of these, is an [`IsaError`]. [`from_env`] reports it (the `nw`
//! binary and `cargo xtask` call it at start-up and stop); [`Kernel::detect`]
//! and everything built on it, which cannot fail, print the error once on
//! stderr and use the best available set instead.
//!
//! The choice covers GEMM (so matmul, linear layers and convolutions) and the
//! optimizers' fused update loops in nw-optim, which read [`active`].

use std::sync::OnceLock;

use thiserror::Error;

use super::Kernel;

/// The environment variable that forces an instruction set.
pub const ENV_VAR: &str = "NW_ISA";

/// A bad `NW_ISA`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IsaError {
    /// The value is not one of the names.
    #[error("{ENV_VAR}={value:?}: expected auto, avx512, avx2 or scalar")]
    Unknown {
        /// What the variable held.
        value: String,
    },
    /// The named set is not supported by this CPU.
    #[error("{ENV_VAR}={value}: this CPU does not support {kernel:?} (available: {available:?})")]
    Unsupported {
        /// What the variable held.
        value: String,
        /// The kernel it names.
        kernel: Kernel,
        /// What the CPU does support, best first.
        available: Vec<Kernel>,
    },
}

/// The kernel a value of `NW_ISA` selects, given which kernels the CPU
/// supports: `None`, empty or `auto` select the best available one (in
/// [`Kernel::ALL`] order), a name selects that kernel if `available` says so.
/// A pure function of its inputs, so every choice is testable on any CPU.
pub fn resolve(value: Option<&str>, available: &dyn Fn(Kernel) -> bool) -> Result<Kernel, IsaError> {
    let best = || Kernel::ALL.into_iter().find(|&k| available(k)).unwrap_or(Kernel::Scalar);
    let v = match value.map(str::trim) {
        None | Some("") => return Ok(best()),
        Some(v) => v,
    };
    let kernel = match v.to_ascii_lowercase().as_str() {
        "auto" => return Ok(best()),
        "avx512" => Kernel::Avx512,
        "avx2" => Kernel::Avx2,
        "scalar" => Kernel::Scalar,
        _ => return Err(IsaError::Unknown { value: v.to_string() }),
    };
    if available(kernel) {
        Ok(kernel)
    } else {
        let available = Kernel::ALL.into_iter().filter(|&k| available(k)).collect();
        Err(IsaError::Unsupported { value: v.to_string(), kernel, available })
    }
}

/// The process's choice, from `NW_ISA` (read on first use, then fixed).
fn choice() -> &'static Result<Kernel, IsaError> {
    static CHOICE: OnceLock<Result<Kernel, IsaError>> = OnceLock::new();
    CHOICE.get_or_init(|| {
        let value = std::env::var(ENV_VAR).ok();
        resolve(value.as_deref(), &|k| k.is_available())
    })
}

/// The kernel `NW_ISA` selects on this CPU, or why the value is bad.
pub fn from_env() -> Result<Kernel, IsaError> {
    choice().clone()
}

/// The kernel every GEMM call and the optimizer loops use: [`from_env`], or
/// on a bad `NW_ISA` the best available kernel (the error printed once on
/// stderr).
pub fn active() -> Kernel {
    static ACTIVE: OnceLock<Kernel> = OnceLock::new();
    *ACTIVE.get_or_init(|| match choice() {
        Ok(k) => *k,
        Err(e) => {
            let best = resolve(None, &|k| k.is_available()).unwrap_or(Kernel::Scalar);
            eprintln!("nw: {e}; using {best:?}");
            best
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: Kernel) -> bool {
        true
    }

    fn avx2_only(k: Kernel) -> bool {
        k != Kernel::Avx512
    }

    fn scalar_only(k: Kernel) -> bool {
        k == Kernel::Scalar
    }

    #[test]
    fn unset_empty_and_auto_pick_the_best_available() {
        for v in [None, Some(""), Some("auto"), Some(" AUTO ")] {
            assert_eq!(resolve(v, &all), Ok(Kernel::Avx512), "{v:?}");
            assert_eq!(resolve(v, &avx2_only), Ok(Kernel::Avx2), "{v:?}");
            assert_eq!(resolve(v, &scalar_only), Ok(Kernel::Scalar), "{v:?}");
        }
    }

    #[test]
    fn a_name_forces_that_kernel() {
        assert_eq!(resolve(Some("avx2"), &all), Ok(Kernel::Avx2));
        assert_eq!(resolve(Some("AVX512"), &all), Ok(Kernel::Avx512));
        assert_eq!(resolve(Some("scalar"), &all), Ok(Kernel::Scalar));
        assert_eq!(resolve(Some("scalar"), &avx2_only), Ok(Kernel::Scalar));
    }

    #[test]
    fn unknown_or_unsupported_is_an_error_naming_the_value() {
        let e = resolve(Some("sse9"), &all).unwrap_err();
        assert_eq!(e, IsaError::Unknown { value: "sse9".into() });
        assert!(e.to_string().contains("NW_ISA=\"sse9\""), "{e}");
        let e = resolve(Some("avx512"), &avx2_only).unwrap_err();
        assert_eq!(
            e,
            IsaError::Unsupported {
                value: "avx512".into(),
                kernel: Kernel::Avx512,
                available: vec![Kernel::Avx2, Kernel::Scalar],
            }
        );
        assert!(e.to_string().contains("does not support Avx512"), "{e}");
        assert!(resolve(Some("avx2"), &scalar_only).is_err());
    }

    /// The real CPU: whatever the variable says, the process's choice is
    /// either an available kernel or a reported error.
    #[test]
    fn the_process_choice_is_available() {
        match from_env() {
            Ok(k) => assert!(k.is_available()),
            Err(e) => assert!(matches!(e, IsaError::Unknown { .. } | IsaError::Unsupported { .. })),
        }
        assert!(active().is_available());
    }
}
