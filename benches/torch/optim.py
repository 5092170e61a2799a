"""PyTorch side of the optimizer-step benchmark (`bench_optim`): one Adam step
and one SGD-momentum step over a 10-million-parameter model (three tensors:
4000x1000, 4000x1000, 2000x1000), torch.optim with fused=True and with
foreach=True.

Driven by the Rust side over stdin/stdout so that nw and torch are measured
alternately in one run, one line per command:
    setup N            -> "ok"     (parameters and gradients, seeded)
    run VARIANT T R    -> JSON list of R step times in ms at T threads
VARIANT is adam_fused, adam_foreach, sgd_fused or sgd_foreach.
Standalone: /tmp/torch/bin/python benches/torch/optim.py --standalone
"""

import json
import statistics
import sys
import time

import torch

SHAPES = [(4000, 1000), (4000, 1000), (2000, 1000)]


def shapes_for(n):
    if n == 10_000_000:
        return SHAPES
    # any other size: three tensors of 40%, 40%, 20%
    a = n * 2 // 5
    return [(a,), (a,), (n - 2 * a,)]


class Bench:
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.optims = {}
        shapes = shapes_for(n)
        for variant in ("adam_fused", "adam_foreach", "sgd_fused", "sgd_foreach"):
            ps = []
            for s in shapes:
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
            self.optims[variant] = opt

    def run(self, variant, threads, reps):
        torch.set_num_threads(threads)
        opt = self.optims[variant]
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            opt.step()
            times.append((time.perf_counter() - t0) * 1e3)
        return times


def serve():
    bench = None
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "setup":
            bench = Bench(int(cmd[1]))
            print("ok", flush=True)
        elif cmd[0] == "run":
            print(json.dumps(bench.run(cmd[1], int(cmd[2]), int(cmd[3]))), flush=True)
        elif cmd[0] == "version":
            print(torch.__version__, flush=True)
        else:
            print(json.dumps({"error": f"unknown command {cmd[0]}"}), flush=True)


def standalone():
    bench = Bench(10_000_000)
    for threads in (1, 2):
        for variant in bench.optims:
            bench.run(variant, threads, 2)
            ms = statistics.median(bench.run(variant, threads, 15))
            print(f"{variant} 10M params, {threads} thread(s): {ms:.2f} ms")


if __name__ == "__main__":
    if "--standalone" in sys.argv:
        standalone()
    else:
        serve()
