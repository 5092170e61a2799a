//! `NW_ISA` end to end: the variable is read once per process, so each
//! forced choice runs this test binary again as a child with the variable
//! set, and the child checks that the kernel in use is the forced one and
//! that a matmul (the blocked driver and the batch-1 dot path) gives exactly
//! what that kernel gives when chosen explicitly, within the round-off bound
//! of the scalar kernel's result.

use std::process::Command;

use nw_tensor::gemm::{Kernel, isa, sgemm_with};
use nw_tensor::{Rng, Tensor};

/// Set in the child: the kernel name it was started with.
const EXPECT: &str = "NW_ISA_TEST_EXPECT";

fn name(k: Kernel) -> &'static str {
    match k {
        Kernel::Avx512 => "avx512",
        Kernel::Avx2 => "avx2",
        Kernel::Scalar => "scalar",
    }
}

/// `x w^T` through `sgemm_with(kernel)`, with `w: [n, k]` read in place as
/// the `k x n` operand (row stride 1, column stride k), as `Linear` does.
fn explicit(kernel: Kernel, x: &Tensor, w: &Tensor) -> Vec<f32> {
    let (m, k, n) = (x.shape()[0], x.shape()[1], w.shape()[0]);
    let (av, bv) = (x.to_vec(), w.to_vec());
    let mut c = vec![0.0f32; m * n];
    // SAFETY: row-major buffers of m x k, k x n and m x n floats.
    unsafe {
        sgemm_with(
            kernel,
            m,
            k,
            n,
            1.0,
            av.as_ptr(),
            k as isize,
            1,
            bv.as_ptr(),
            1,
            k as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    };
    c
}

#[test]
fn each_forced_isa_is_used_and_matches_the_scalar_reference() {
    let exe = std::env::current_exe().expect("test binary path");
    for kernel in Kernel::available() {
        let out = Command::new(&exe)
            .args(["--exact", "child_under_forced_isa", "--include-ignored", "--nocapture"])
            .env("NW_ISA", name(kernel))
            .env(EXPECT, name(kernel))
            .output()
            .expect("running the test binary");
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "NW_ISA={}: child failed:\n{text}", name(kernel));
        assert!(text.contains("1 passed"), "NW_ISA={}: child did not run:\n{text}", name(kernel));
    }
    // A value that names nothing, or a set this CPU lacks, is reported.
    let out = Command::new(&exe)
        .args(["--exact", "child_under_forced_isa", "--include-ignored", "--nocapture"])
        .env("NW_ISA", "sse9")
        .env(EXPECT, "error")
        .output()
        .expect("running the test binary");
    assert!(out.status.success(), "NW_ISA=sse9: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
#[ignore = "run by each_forced_isa_is_used_and_matches_the_scalar_reference with NW_ISA set"]
fn child_under_forced_isa() {
    let want = std::env::var(EXPECT).expect("started by the parent test");
    if want == "error" {
        let e = isa::from_env().unwrap_err();
        assert!(e.to_string().contains("sse9"), "{e}");
        assert_eq!(Kernel::detect(), isa::resolve(None, &|k| k.is_available()).unwrap());
        return;
    }
    let kernel = Kernel::detect();
    assert_eq!(name(kernel), want);
    assert_eq!(isa::from_env(), Ok(kernel));
    let mut rng = Rng::new(7);
    let w = Tensor::randn(&[96, 200], 0.0, 1.0, &mut rng);
    for m in [1, 3, 37] {
        // x W^T: the batch-1 dot path for m <= 4, the blocked driver above.
        let x = Tensor::randn(&[m, 200], 0.0, 1.0, &mut rng);
        let wt = w.t().unwrap();
        let got = x.matmul(&wt).unwrap().to_vec();
        let scalar = explicit(Kernel::Scalar, &x, &w);
        assert_eq!(got, explicit(kernel, &x, &w), "m={m}: Tensor::matmul is not {kernel:?}");
        // Against the scalar kernel: at most ~3k roundings apart, relative to sum |x_p w_p|.
        let mag = x.abs().matmul(&wt.abs()).unwrap().to_vec();
        for (i, ((g, s), a)) in got.iter().zip(&scalar).zip(&mag).enumerate() {
            let tol = 2.0 * (3 * 200 + 8) as f32 * f32::EPSILON / 2.0 * a + f32::MIN_POSITIVE;
            assert!((g - s).abs() <= tol, "m={m} element {i}: {g} vs scalar {s} (+- {tol})");
        }
    }
}
