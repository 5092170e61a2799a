"""PyTorch side of `cargo xtask bench lstm`, served by worker.py as one op:

  lstm_step  -> "ok"  (current op: one training step of nn.LSTM(28, 128,
                       batch_first=True) over the 28 rows of a batch of 64
                       28x28 images, the last step's hidden state through
                       nn.Linear(128, 10), mean cross-entropy, backward,
                       torch.optim.Adam(lr=1e-3) step)

As on the Rust side, gradients are set to None before each backward and the
batch is fixed (uniform [0, 1) pixels, labels i % 10). The worker runs with
grad mode off, so the op enables it for its own body.

Standalone: /tmp/torch/bin/python benches/torch/lstm.py
"""

import statistics
import time

import torch
import torch.nn.functional as F

BATCH = 64
ROWS = 28
HIDDEN = 128


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(ROWS, HIDDEN, batch_first=True)
        self.head = torch.nn.Linear(HIDDEN, 10)

    def forward(self, x):
        out, _ = self.lstm(x.reshape(x.shape[0], ROWS, ROWS))
        return self.head(out[:, -1])


def setup_step():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    model = Model()
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(BATCH, 1, ROWS, ROWS, generator=g)
    y = torch.arange(BATCH) % 10

    def run():
        with torch.enable_grad():
            optim.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optim.step()

    return run


OPS = {"lstm_step": setup_step}


def main():
    for threads in (1, 2):
        torch.set_num_threads(threads)
        fn = setup_step()
        fn()
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        ms = statistics.median(times)
        print(f"lstm step, {threads} thread(s): {ms:.3f} ms, {BATCH / ms * 1e3:.0f} samples/s")


if __name__ == "__main__":
    main()
