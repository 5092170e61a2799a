"""PyTorch side of `cargo xtask bench`: a persistent worker driven over
stdin/stdout, one request per line and one reply per line, so the Rust side can
alternate its own timings with PyTorch's in a single run.

Requests:
  info                          -> "ok torch <version> threads <n>"
  threads N                     -> "ok N"  (torch.set_num_threads(N))
  gemm M K N TA TB              -> "ok"    (current op: C = A @ B, see below)
  optim VARIANT N               -> "ok"    (current op: one optimizer step, see optim.py)
  optim_matrix VARIANT COUNT SIZE -> "ok"  (Adafactor / Muon step, see optim_matrix.py)
  mlp_layer | mlp_step OPT      -> "ok"    (current op: Linear+ReLU fwd+bwd / MLP step, see mlp.py)
  conv_fwd | conv_fwd_bwd       -> "ok"    (current op: conv2d 64x32x28x28 -> 64 3x3, see conv.py)
  lstm_step                     -> "ok"    (current op: LSTM(28->128) classifier Adam step, see lstm.py)
  time ITERS                    -> "ok SECONDS" (runs the current op ITERS times)
  quit                          -> exits
Any failure replies "err <message>" and the worker keeps serving.

gemm: A is M x K, B is K x N, C = torch.matmul(A, B, out=C) into a
preallocated C (nw also writes into a preallocated buffer). TA=1 makes A the
view `.t()` of a K x M tensor, TB=1 makes B the view `.t()` of an N x K
tensor: transposed views, never copies, as a Linear layer's backward uses them.

To add an op (conv, optimizer step, MLP step ...), add a setup function to
OPS that builds its tensors and returns a zero-argument callable.

Run by hand: /tmp/torch/bin/python benches/torch/worker.py, then type requests.
"""

import sys
import time

import torch


def setup_gemm(m, k, n, ta, tb):
    m, k, n, ta, tb = int(m), int(k), int(n), int(ta), int(tb)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(k, m, generator=g).t() if ta else torch.rand(m, k, generator=g)
    b = torch.rand(n, k, generator=g).t() if tb else torch.rand(k, n, generator=g)
    a = a * 2 - 1 if not ta else (a.t() * 2 - 1).t()
    b = b * 2 - 1 if not tb else (b.t() * 2 - 1).t()
    c = torch.empty(m, n)

    def run():
        torch.matmul(a, b, out=c)

    return run


OPS = {"gemm": setup_gemm}

from optim import OPS as OPTIM_OPS  # noqa: E402  (benches/torch/optim.py: `optim VARIANT N`)

OPS.update(OPTIM_OPS)

from optim_matrix import OPS as OPTIM_MATRIX_OPS  # noqa: E402  (benches/torch/optim_matrix.py)

OPS.update(OPTIM_MATRIX_OPS)

from mlp import OPS as MLP_OPS  # noqa: E402  (benches/torch/mlp.py: `mlp_layer`, `mlp_step OPT`)

OPS.update(MLP_OPS)

from conv import OPS as CONV_OPS  # noqa: E402  (benches/torch/conv.py: `conv_fwd`, `conv_fwd_bwd`)

OPS.update(CONV_OPS)

from lstm import OPS as LSTM_OPS  # noqa: E402  (benches/torch/lstm.py: `lstm_step`)

OPS.update(LSTM_OPS)


def main():
    torch.set_grad_enabled(False)
    current = None
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, args = words[0], words[1:]
        try:
            if cmd == "quit":
                break
            elif cmd == "info":
                reply = f"ok torch {torch.__version__} threads {torch.get_num_threads()}"
            elif cmd == "threads":
                torch.set_num_threads(int(args[0]))
                reply = f"ok {torch.get_num_threads()}"
            elif cmd in OPS:
                current = OPS[cmd](*args)
                current()  # warm-up
                reply = "ok"
            elif cmd == "time":
                if current is None:
                    raise RuntimeError("no op set up")
                iters = int(args[0])
                t0 = time.perf_counter()
                for _ in range(iters):
                    current()
                reply = f"ok {time.perf_counter() - t0!r}"
            else:
                raise RuntimeError(f"unknown request {cmd!r}")
        except Exception as e:  # report and keep serving
            reply = f"err {type(e).__name__}: {e}".replace("\n", " ")
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
