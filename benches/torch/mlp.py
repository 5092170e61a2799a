"""PyTorch side of `cargo xtask bench mlp`, served by worker.py as two ops:

  mlp_layer     -> "ok"  (current op: Linear(784 -> 512) + ReLU at batch 128,
                          forward and backward with a fixed upstream gradient)
  mlp_step OPT  -> "ok"  (current op: one training step of a 784-512-256-10
                          ReLU MLP at batch 128: forward, cross-entropy (mean),
                          backward, OPT step; OPT is adam (lr 1e-3) or sgd (lr 0.01))

Both match the Rust side: the layer's input requires a gradient (so backward
computes dX, dW and db, three GEMMs and a column sum), gradients are set to
None before each backward (as nw returns fresh gradients), and the optimizer is
torch.optim's default implementation for CPU tensors (what a user's
`torch.optim.Adam(model.parameters())` runs). The worker runs with grad mode
off, so each op enables it for its own body.

Standalone: /tmp/torch/bin/python benches/torch/mlp.py
"""

import statistics
import time

import torch
import torch.nn.functional as F

BATCH = 128


def setup_layer():
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(784, 512)
    x = torch.rand(BATCH, 784, generator=g).requires_grad_(True)
    dy = torch.randn(BATCH, 512, generator=g)

    def run():
        with torch.enable_grad():
            x.grad = lin.weight.grad = lin.bias.grad = None
            y = F.linear(x, lin.weight, lin.bias).relu()
            y.backward(dy)

    return run


def mlp_model():
    return torch.nn.Sequential(
        torch.nn.Linear(784, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )


def setup_step(opt="adam"):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = mlp_model()
    if opt == "adam":
        optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    elif opt == "sgd":
        optim = torch.optim.SGD(model.parameters(), lr=0.01)
    else:
        raise ValueError(f"unknown optimizer {opt!r} (adam, sgd)")
    x = torch.rand(BATCH, 784, generator=g)
    y = torch.arange(BATCH) % 10

    def run():
        with torch.enable_grad():
            optim.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optim.step()

    return run


OPS = {"mlp_layer": setup_layer, "mlp_step": setup_step}


def main():
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, fn in (("layer", setup_layer()), ("adam step", setup_step("adam"))):
            fn()
            times = []
            for _ in range(50):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
            print(f"{name}, {threads} thread(s): {statistics.median(times):.3f} ms")


if __name__ == "__main__":
    main()
