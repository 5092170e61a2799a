"""PyTorch DistributedDataParallel (gloo, CPU) on the work of `cargo xtask bench distributed`.

Prints the samples/s of `--ranks` processes, each with one thread, on a
global batch of 2 x shard rows (each rank takes 2 x shard / ranks rows), Adam,
cross-entropy, random Fashion-MNIST-shaped inputs, timed over `--steps` steps
after 3 warm-up steps.
"""
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn


def model(kind):
    if kind == "mlp":
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def worker(rank, args, port, out):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    torch.manual_seed(1)
    m = nn.parallel.DistributedDataParallel(model(args.model))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    rows = 2 * args.shard // args.ranks
    x = torch.rand(rows, 784)
    y = torch.arange(rows) % 10
    lossf = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        lossf(m(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    dist.barrier()
    secs = time.perf_counter() - t0
    if rank == 0:
        out.put(args.steps * 2 * args.shard / secs)
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["mlp", "cnn"], required=True)
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--shard", type=int, default=128)
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=worker, args=(r, args, port, out)) for r in range(args.ranks)]
    for pr in procs:
        pr.start()
    result = out.get(timeout=600)
    for pr in procs:
        pr.join()
        if pr.exitcode != 0:
            raise SystemExit(f"rank exited with {pr.exitcode}")
    print(f"{result:.1f}")


if __name__ == "__main__":
    main()
