"""PyTorch side of `cargo xtask bench train`: one task per process, the same
work as nw's `bench train-worker` (xtask/src/bench/train/worker.rs), and one
line on stdout:

  result value=<number> rss_kb=<peak resident KiB> [acc=<test accuracy>] kernel=torch

Tasks (Fashion-MNIST, pixels / 255, Adam lr 1e-3 betas (0.9, 0.999) eps 1e-8,
default CPU implementations, 5 untimed warm-up steps, seed 0):
  mlp_epoch      784-512-256-10 ReLU MLP, one epoch at batch 128 (a seeded
                 torch.randperm, batches gathered in the timed loop), samples/s;
                 then test accuracy
  cnn            conv3x3(32)-ReLU-pool2, conv3x3(64)-ReLU-pool2, fc128-ReLU, fc10;
                 200 steps at batch 64, samples/s
  lstm           nn.LSTM(28, 128, batch_first) over the 28 rows, last step to fc10;
                 200 steps at batch 64, samples/s
  adam           Adam step over 10M parameters (4000x1000, 4000x1000, 2000x1000), ms
  sgd_momentum   SGD(lr 1e-3, momentum 0.9) step over the same, ms
  mlp_infer_1 / mlp_infer_256 / cnn_infer_1 / cnn_infer_256
                 eval-mode forward under torch.inference_mode on the first test
                 images: us per call at batch 1, samples/s at 256

Timing of the optimizer and inference tasks: calibrated repeats of >= 50 ms,
median of 9, as nw's side does.

Run: /tmp/torch/bin/python benches/torch/train.py --task mlp_epoch --threads 1
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from accuracy import build, load

SEED = 0
WARMUP = 5
STEPS = 200


def peak_rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Lstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 128, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        out, _ = self.lstm(x.reshape(x.shape[0], 28, 28))
        return self.fc(out[:, -1])


def model(name):
    if name == "mlp":
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    if name == "cnn":
        return build("cnn", 0.0)
    return Lstm()


def train(name, data, batch, steps):
    """Returns samples/s over `steps` steps (all of one epoch when None)."""
    (xtr, ytr), _ = data
    torch.manual_seed(SEED)
    net = model(name)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(SEED)

    def step(idx):
        x, y = xtr[idx], ytr[idx]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    warm = torch.randperm(len(xtr), generator=g)
    for i in range(WARMUP):
        step(warm[i * batch : (i + 1) * batch])
    n = len(xtr)
    t0 = time.perf_counter()
    perm = torch.randperm(n, generator=g)
    count = n if steps is None else min(n, steps * batch)
    done = 0
    for start in range(0, count, batch):
        idx = perm[start : min(start + batch, count)]
        step(idx)
        done += len(idx)
    secs = time.perf_counter() - t0
    return net, done / secs


def accuracy(net, data):
    _, (xte, yte) = data
    net.eval()
    correct = 0
    with torch.inference_mode():
        for s in range(0, len(xte), 1000):
            correct += (net(xte[s : s + 1000]).argmax(1) == yte[s : s + 1000]).sum().item()
    return correct / len(xte)


def timed(f):
    """Median seconds per call over 9 repeats of >= 50 ms."""
    f()
    iters = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(iters):
            f()
        t = time.perf_counter() - t0
        if t >= 0.05:
            break
        iters = max(iters * 2, min(iters * 1000, int(iters * 0.06 / max(t, 1e-9)) + 1))
    samples = []
    for _ in range(9):
        t0 = time.perf_counter()
        for _ in range(iters):
            f()
        samples.append((time.perf_counter() - t0) / iters)
    return statistics.median(samples)


def optim_step(kind):
    g = torch.Generator().manual_seed(SEED)
    ps = []
    for s in [(4000, 1000), (4000, 1000), (2000, 1000)]:
        p = torch.randn(s, generator=g).requires_grad_(True)
        p.grad = torch.randn(s, generator=g) * 0.01
        ps.append(p)
    if kind == "adam":
        opt = torch.optim.Adam(ps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.SGD(ps, lr=1e-3, momentum=0.9)
    return timed(opt.step) * 1e3


def infer(name, data, batch):
    _, (xte, _) = data
    torch.manual_seed(SEED)
    net = model(name)
    net.eval()
    x = xte[:batch].contiguous()
    with torch.inference_mode():
        secs = timed(lambda: net(x))
    return secs * 1e6 if batch == 1 else batch / secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True)
    ap.add_argument("--threads", type=int, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t = args.task
    acc = None
    if t in ("adam", "sgd_momentum"):
        value = optim_step("adam" if t == "adam" else "sgd")
    else:
        flat = t.startswith("mlp")
        data = load(None, flat)
        if t == "mlp_epoch":
            net, value = train("mlp", data, 128, None)
            acc = accuracy(net, data)
        elif t in ("cnn", "lstm"):
            _, value = train(t, data, 64, STEPS)
        elif t.startswith(("mlp_infer_", "cnn_infer_")):
            name, batch = t.split("_infer_")
            value = infer(name, data, int(batch))
        else:
            raise SystemExit(f"unknown task {t!r}")
    extra = f" acc={acc}" if acc is not None else ""
    print(f"result value={value} rss_kb={peak_rss_kb()}{extra} kernel=torch", flush=True)


if __name__ == "__main__":
    main()
