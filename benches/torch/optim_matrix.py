"""PyTorch side of the matrix-rule rows of `cargo xtask bench optim`: one
torch.optim.Adafactor step and one torch.optim.Muon step over COUNT square
SIZE x SIZE matrices (default ten 1024x1024).

Registered in worker.py's OPS as `optim_matrix`:
  optim_matrix VARIANT COUNT SIZE -> "ok"  (current op: one step of VARIANT)
VARIANT is adafactor (torch's default single-tensor loop), adafactor_foreach,
or muon (torch's Newton-Schulz runs in bfloat16; nw's in float32).
Parameters and gradients are seeded normals (gradients scaled by 0.01); the
optimizers are built once per (COUNT, SIZE) and cached.

Standalone: /tmp/torch/bin/python benches/torch/optim_matrix.py
"""

import statistics
import time

import torch

VARIANTS = ("adafactor", "adafactor_foreach", "muon")
_CACHE = {}


def _build(count, size):
    g = torch.Generator().manual_seed(0)
    optims = {}
    for variant in VARIANTS:
        ps = []
        for _ in range(count):
            p = torch.randn(size, size, generator=g).requires_grad_(True)
            p.grad = torch.randn(size, size, generator=g) * 0.01
            ps.append(p)
        if variant == "adafactor":
            opt = torch.optim.Adafactor(ps)
        elif variant == "adafactor_foreach":
            opt = torch.optim.Adafactor(ps, foreach=True)
        else:
            opt = torch.optim.Muon(ps, lr=0.02)
        opt.step()  # allocate the state
        optims[variant] = opt
    return optims


def setup_optim_matrix(variant, count, size):
    key = (int(count), int(size))
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = _build(*key)
    return _CACHE[key][variant].step


OPS = {"optim_matrix": setup_optim_matrix}


def main():
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for variant in VARIANTS:
            step = setup_optim_matrix(variant, 10, 1024)
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                step()
                times.append((time.perf_counter() - t0) * 1e3)
            print(f"{variant} 10 x 1024x1024, {threads} thread(s): {statistics.median(times):.1f} ms")


if __name__ == "__main__":
    main()
