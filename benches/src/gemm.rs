//! GEMM benchmark cases: square products and the products of a training step
//! of an MLP's two Linear layers, with their operands in the layouts a
//! Linear layer really uses (transposed views, no copies).

use nw_tensor::gemm::{Kernel, MatRef, PackedB, gemm_packed, sgemm_with};

/// One GEMM to measure: `C[m, n] = A[m, k] B[k, n]` where `A` (`B`) is a
/// transposed view of a row-major buffer when `ta` (`tb`) is set.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmCase {
    /// Short label, e.g. `"512"` or `"fc1.dW"`.
    pub name: String,
    /// What the product is, e.g. `"dW = dY^T X"`.
    pub what: &'static str,
    /// Rows of C.
    pub m: usize,
    /// Depth of the product.
    pub k: usize,
    /// Columns of C.
    pub n: usize,
    /// A is the transpose of a row-major `k x m` buffer (strides `1, m`).
    pub ta: bool,
    /// B is the transpose of a row-major `n x k` buffer (strides `1, k`).
    pub tb: bool,
    /// B is packed once ([`PackedB`]) outside the timed products, as
    /// inference through a linear layer reuses its cached `W^T` pack.
    pub packed: bool,
}

impl GemmCase {
    /// Floating-point operations of one product, `2 m n k`.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// `"NN"`, `"NT"`, `"TN"` or `"TT"`: which operands are transposed views.
    pub fn layout(&self) -> &'static str {
        match (self.ta, self.tb) {
            (false, false) => "NN",
            (false, true) => "NT",
            (true, false) => "TN",
            (true, true) => "TT",
        }
    }
}

/// Batch size of the MLP cases.
pub const BATCH: usize = 128;

/// The cases, in order: square products of side 64 to 2048, then for each
/// Linear layer `y = x W^T + b` of a 784-512-256 MLP at batch 128 the
/// forward product `x W^T` (B a transposed view of `W`), the weight gradient
/// `dW = dY^T X` (A a transposed view of `dY`) and the input gradient
/// `dX = dY W` (both row-major), then each layer's forward at batch 256
/// (inference), with B packed per call and pre-packed (`.pk`).
pub fn cases() -> Vec<GemmCase> {
    let mut v: Vec<GemmCase> = [64, 128, 256, 512, 1024, 2048]
        .into_iter()
        .map(|s| GemmCase {
            name: s.to_string(),
            what: "A B",
            m: s,
            k: s,
            n: s,
            ta: false,
            tb: false,
            packed: false,
        })
        .collect();
    for (layer, (inp, out)) in [(784, 512), (512, 256)].into_iter().enumerate() {
        let l = layer + 1;
        v.push(GemmCase {
            name: format!("fc{l}.fwd"),
            what: "Y = X W^T",
            m: BATCH,
            k: inp,
            n: out,
            ta: false,
            tb: true,
            packed: false,
        });
        v.push(GemmCase {
            name: format!("fc{l}.dW"),
            what: "dW = dY^T X",
            m: out,
            k: BATCH,
            n: inp,
            ta: true,
            tb: false,
            packed: false,
        });
        v.push(GemmCase {
            name: format!("fc{l}.dX"),
            what: "dX = dY W",
            m: BATCH,
            k: out,
            n: inp,
            ta: false,
            tb: false,
            packed: false,
        });
    }
    // Inference at batch INFER_BATCH: x W^T with W^T packed on every call
    // (as training does) and pre-packed (as no_grad inference does).
    for (layer, (inp, out)) in [(784, 512), (512, 256)].into_iter().enumerate() {
        for packed in [false, true] {
            v.push(GemmCase {
                name: format!("inf{}{}", layer + 1, if packed { ".pk" } else { "" }),
                what: if packed { "Y = X W^T pk" } else { "Y = X W^T" },
                m: INFER_BATCH,
                k: inp,
                n: out,
                ta: false,
                tb: true,
                packed,
            });
        }
    }
    v
}

/// Batch size of the inference cases.
pub const INFER_BATCH: usize = 256;

/// Operand buffers for one case, filled with small deterministic values.
pub struct GemmBuffers {
    case: GemmCase,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    /// B packed for a kernel, for `packed` cases (made on first use).
    pack: Option<PackedB>,
}

impl GemmBuffers {
    /// Allocates and fills A and B (values in `[-1, 1)`), and C.
    pub fn new(case: &GemmCase) -> GemmBuffers {
        let fill = |len: usize, seed: u32| -> Vec<f32> {
            (0..len as u32)
                .map(|i| ((i.wrapping_mul(2654435761) ^ seed) >> 8) as f32 / (1 << 23) as f32 - 1.0)
                .collect()
        };
        GemmBuffers {
            case: case.clone(),
            a: fill(case.m * case.k, 0x1234_5678),
            b: fill(case.k * case.n, 0x0bad_cafe),
            c: vec![0.0; case.m * case.n],
            pack: None,
        }
    }

    /// Runs `C = A B` once with nw's GEMM (the detected kernel) on the
    /// current rayon pool.
    pub fn run(&mut self) {
        self.run_with(Kernel::detect());
    }

    /// [`run`](Self::run) with a chosen micro-kernel.
    ///
    /// # Panics
    /// If the CPU does not support `kernel`.
    pub fn run_with(&mut self, kernel: Kernel) {
        let GemmCase { m, k, n, ta, tb, .. } = self.case;
        let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
        let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
        if self.case.packed {
            if self.pack.as_ref().is_none_or(|p| p.kernel() != kernel) {
                let b = MatRef {
                    data: &self.b,
                    rows: k,
                    cols: n,
                    row_stride: rsb as usize,
                    col_stride: csb as usize,
                };
                self.pack = Some(PackedB::with_kernel(kernel, b).expect("the kernel is available"));
            }
            let a = MatRef {
                data: &self.a,
                rows: m,
                cols: k,
                row_stride: rsa as usize,
                col_stride: csa as usize,
            };
            let pack = self.pack.as_ref().expect("packed above");
            gemm_packed(1.0, a, pack, 0.0, &mut self.c).expect("the shapes match");
            return;
        }
        // SAFETY: A holds m * k floats laid out by (rsa, csa), B k * n floats
        // by (rsb, csb), C m * n row-major floats in a separate buffer.
        unsafe {
            sgemm_with(
                kernel,
                m,
                k,
                n,
                1.0,
                self.a.as_ptr(),
                rsa,
                csa,
                self.b.as_ptr(),
                rsb,
                csb,
                0.0,
                self.c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    }

    /// The result of the last [`run`](Self::run), row-major `m x n`.
    pub fn c(&self) -> &[f32] {
        &self.c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_cover_the_mlp_products() {
        let c = cases();
        assert_eq!(c.len(), 16);
        let pk = c.iter().find(|c| c.name == "inf1.pk").unwrap();
        assert_eq!((pk.m, pk.k, pk.n, pk.layout(), pk.packed), (256, 784, 512, "NT", true));
        let dw = c.iter().find(|c| c.name == "fc1.dW").unwrap();
        assert_eq!((dw.m, dw.k, dw.n, dw.layout()), (512, 128, 784, "TN"));
        let fwd = c.iter().find(|c| c.name == "fc2.fwd").unwrap();
        assert_eq!((fwd.m, fwd.k, fwd.n, fwd.layout()), (128, 512, 256, "NT"));
    }

    #[test]
    fn transposed_views_compute_the_right_product() {
        // fc1.dW at a glance: C[0, 0] = sum_p A[0, p] B[p, 0] with A read
        // through the transposed strides, checked against the buffers.
        for packed in [false, true] {
            let case = GemmCase { name: "t".into(), what: "", m: 5, k: 3, n: 4, ta: true, tb: true, packed };
            let mut g = GemmBuffers::new(&case);
            g.run();
            for i in 0..5 {
                for j in 0..4 {
                    let want: f64 = (0..3).map(|p| g.a[p * 5 + i] as f64 * g.b[j * 3 + p] as f64).sum();
                    assert!((g.c()[i * 4 + j] as f64 - want).abs() < 1e-5, "({i}, {j})");
                }
            }
        }
    }
}
