"""PyTorch side of `cargo xtask bench optim`: one Adam step and one SGD-momentum
step over a 10-million-parameter model (three tensors: 4000x1000, 4000x1000,
2000x1000), torch.optim with fused=True and with foreach=True.

Registered in worker.py's OPS as `optim`:
  optim VARIANT N   -> "ok"  (current op: one step of VARIANT over N parameters)
VARIANT is adam_fused, adam_foreach, sgd_fused or sgd_foreach (SGD: momentum 0.9).
The four optimizers and their tensors are built once per N and cached, so the
Rust side can switch between them every repeat without rebuilding 10M tensors.

Standalone: /tmp/torch/bin/python benches/torch/optim.py
"""

import statistics
import time

import torch

VARIANTS = ("adam_fused", "adam_foreach", "sgd_fused", "sgd_foreach")
_CACHE = {}


def shapes_for(n):
    if n == 10_000_000:
        return [(4000, 1000), (4000, 1000), (2000, 1000)]
    a = n * 2 // 5  # any other size: three tensors of 40%, 40%, 20%
    return [(a,), (a,), (n - 2 * a,)]


def _build(n):
    g = torch.Generator().manual_seed(0)
    optims = {}
    for variant in VARIANTS:
        ps = []
        for s in shapes_for(n):
            p = torch.randn(s, generator=g).requires_grad_(True)
            p.grad = torch.randn(s, generator=g) * 0.01
            ps.append(p)
        kind, impl = variant.split("_")
        kw = {"fused": True} if impl == "fused" else {"foreach": True}
        if kind == "adam":
            opt = torch.optim.Adam(ps, lr=1e-3, **kw)
        else:
            opt = torch.optim.SGD(ps, lr=1e-3, momentum=0.9, **kw)
        opt.step()  # allocate the state
        optims[variant] = opt
    return optims


def setup_optim(variant, n):
    n = int(n)
    if variant not in VARIANTS:
        raise ValueError(f"unknown optimizer variant {variant!r} (one of {', '.join(VARIANTS)})")
    if n not in _CACHE:
        _CACHE.clear()
        _CACHE[n] = _build(n)
    return _CACHE[n][variant].step


OPS = {"optim": setup_optim}


def main():
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for variant in VARIANTS:
            step = setup_optim(variant, 10_000_000)
            step()
            times = []
            for _ in range(15):
                t0 = time.perf_counter()
                step()
                times.append((time.perf_counter() - t0) * 1e3)
            print(f"{variant} 10M params, {threads} thread(s): {statistics.median(times):.2f} ms")


if __name__ == "__main__":
    main()
