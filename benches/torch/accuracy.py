"""PyTorch side of `cargo xtask bench accuracy`: trains the same model on the
same Fashion-MNIST data as nw-train (60k train / 10k test, pixels / 255, no
augmentation), with the same batch size, epochs, optimizer (Adam), learning
rate, dropout and schedule, and prints one line per epoch and a final line:

  epoch E train_loss L seconds S test_loss TL test_acc A eval_seconds ES
  final test_acc A train_seconds S

`seconds` is the epoch's training time (batches, forward, backward, steps);
the test-set evaluation after each epoch is timed apart (`eval_seconds`).

Models (as nw_train::models::ModelSpec builds them, PyTorch default init):
  mlp: Linear(784, 256) ReLU Linear(256, 128) ReLU Linear(128, 10)
  cnn: [Conv2d(c, k, 3, padding=1) ReLU MaxPool2d(2)] for k in 32, 64,
       Flatten, Linear(3136, 128) ReLU [Dropout], Linear(128, 10)

Batches: a fresh torch.randperm of the training set each epoch (a different
order from nw's seeded shuffle; the same distribution), the last batch short.

Run: /tmp/torch/bin/python benches/torch/accuracy.py --model mlp [--epochs 10] ...
"""

import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DIRS = ["datasets/fashion-mnist", "/usr/share/datasets/fashion-mnist"]


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(directory, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    return None


def load(directory, flat):
    if directory is None:
        directory = next(d for d in DIRS if find(d, "train-images-idx3-ubyte"))
    out = []
    for prefix in ("train", "t10k"):
        x = read_idx(find(directory, f"{prefix}-images-idx3-ubyte")).astype(np.float32) / 255.0
        y = read_idx(find(directory, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
        x = torch.from_numpy(x.reshape(len(x), 784) if flat else x.reshape(len(x), 1, 28, 28).copy())
        out.append((x, torch.from_numpy(y.copy())))
    return out


def build(model, dropout):
    if model == "mlp":
        layers = [nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU()]
        if dropout > 0:
            layers.insert(2, nn.Dropout(dropout))
            layers.append(nn.Dropout(dropout))
        return nn.Sequential(*layers, nn.Linear(128, 10))
    layers = []
    c = 1
    for k in (32, 64):
        layers += [nn.Conv2d(c, k, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c = k
    layers += [nn.Flatten(), nn.Linear(c * 7 * 7, 128), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(128, 10))


def evaluate(model, x, y, batch=1000):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(x[i : i + batch])
            loss += F.cross_entropy(out, y[i : i + batch], reduction="sum").item()
            correct += (out.argmax(1) == y[i : i + batch]).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["mlp", "cnn"], required=True)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--schedule", choices=["none", "cosine"], default="none")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    (xtr, ytr), (xte, yte) = load(args.data, flat=args.model == "mlp")
    model = build(args.model, args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs) if args.schedule == "cosine" else None
    g = torch.Generator().manual_seed(args.seed)
    n = len(xtr)
    total = 0.0
    acc = float("nan")
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=g)
        loss_sum = 0.0
        for i in range(0, n, args.batch):
            idx = perm[i : i + args.batch]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
        if sched is not None:
            sched.step()
        secs = time.perf_counter() - t0
        total += secs
        t1 = time.perf_counter()
        test_loss, acc = evaluate(model, xte, yte)
        print(
            f"epoch {epoch} train_loss {loss_sum / n:.6f} seconds {secs:.3f} "
            f"test_loss {test_loss:.6f} test_acc {acc:.6f} eval_seconds {time.perf_counter() - t1:.3f}",
            flush=True,
        )
    print(f"final test_acc {acc:.6f} train_seconds {total:.3f}", flush=True)


if __name__ == "__main__":
    main()
