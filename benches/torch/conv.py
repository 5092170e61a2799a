"""PyTorch side of the conv2d benchmark: input 64x32x28x28, 64 output channels,
3x3 kernel, padding 1, with bias. Prints the median (and minimum) milliseconds
of the forward pass and of forward + backward (input, weight and bias
gradients) at 1 and 2 threads, and the median CPU time of the process per call
(time.process_time, all threads). On a shared, loaded machine the CPU time at
1 thread is the steadiest figure; at 2 threads it is the total work of both. Run: /tmp/torch/bin/python benches/torch/conv.py [--repeats N]
The Rust side is `cargo run --release -p nw-tensor --example conv_bench`.

Also served by worker.py for `cargo xtask bench conv`, as two ops:
  conv_fwd      -> "ok"  (current op: the forward pass, no graph)
  conv_fwd_bwd  -> "ok"  (current op: forward, then backward with a fixed
                          upstream gradient: input, weight and bias gradients)
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def median_ms(fn, repeats):
    fn()  # warm-up
    fn()
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(times), min(times), statistics.median(cpu)


def _tensors():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 32, 28, 28, generator=g).requires_grad_(True)
    w = (torch.randn(64, 32, 3, 3, generator=g) * 0.1).requires_grad_()
    b = torch.zeros(64, requires_grad=True)
    dy = torch.randn(64, 64, 28, 28, generator=g)
    return x, w, b, dy


def setup_fwd():
    x, w, b, _ = _tensors()

    def run():
        with torch.no_grad():
            F.conv2d(x, w, b, padding=1)

    return run


def setup_fwd_bwd():
    x, w, b, dy = _tensors()

    def run():
        with torch.enable_grad():
            x.grad = w.grad = b.grad = None
            F.conv2d(x, w, b, padding=1).backward(dy)

    return run


OPS = {"conv_fwd": setup_fwd, "conv_fwd_bwd": setup_fwd_bwd}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(64, 32, 28, 28, requires_grad=True)
    w = (torch.randn(64, 32, 3, 3) * 0.1).requires_grad_()
    b = torch.zeros(64, requires_grad=True)
    dy = torch.randn(64, 64, 28, 28)

    def fwd():
        with torch.no_grad():
            F.conv2d(x, w, b, padding=1)

    def fwd_bwd():
        x.grad = w.grad = b.grad = None
        y = F.conv2d(x, w, b, padding=1)
        y.backward(dy)

    print(f"torch {torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        f = median_ms(fwd, args.repeats)
        fb = median_ms(fwd_bwd, args.repeats)
        print(
            f"conv2d 64x32x28x28 -> 64 3x3 pad 1, {threads} thread(s): "
            f"fwd {f[0]:.2f} ms (min {f[1]:.2f}, cpu {f[2]:.2f}), "
            f"fwd+bwd {fb[0]:.2f} ms (min {fb[1]:.2f}, cpu {fb[2]:.2f})"
        )


if __name__ == "__main__":
    main()
