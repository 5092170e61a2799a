"""Extra `layer` fixtures (format nw-reference/1) for options the reference set
does not cover: class weights and ignore_index in cross-entropy and NLL,
stacked recurrent layers with initial states, time-major input and the relu
RNN, and BatchNorm's cumulative average (momentum None).

    /tmp/torch/bin/python benches/torch/nn_extra_fixtures.py

writes fixtures/nn-extra/layers_extra.json. As in the reference set, inputs
and parameters are drawn in float32 (so they are exact in f32) and every
computation runs in float64.
"""
import json
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[2] / "fixtures" / "nn-extra" / "layers_extra.json"
torch.manual_seed(11235)


def t(x):
    x = x.detach().to(torch.float64)
    return {"shape": list(x.shape), "data": x.flatten().tolist()}


def f32(*shape, scale=1.0):
    return (torch.randn(tuple(shape), dtype=torch.float32) * scale).to(torch.float64)


def case(name, op, hyper, inputs, params, outputs, diff, rtol=1e-5, atol=1e-7, extra=None):
    """`diff`: the inputs and params (name -> tensor with requires_grad) to differentiate."""
    gouts = {k: f32(*v.shape) for k, v in outputs.items()}
    total = sum((outputs[k] * gouts[k]).sum() for k in outputs)
    grads = torch.autograd.grad(total, list(diff.values()))
    c = {
        "name": name,
        "op": op,
        "hyper": hyper,
        "inputs": {k: t(v) for k, v in inputs.items()},
        "params": {k: t(v) for k, v in params.items()},
        "outputs": {k: t(v) for k, v in outputs.items()},
        "grad_outputs": {k: t(v) for k, v in gouts.items()},
        "grads": {k: t(g) for k, g in zip(diff.keys(), grads)},
        "rtol": rtol,
        "atol": atol,
    }
    if extra:
        c.update(extra)
    return c


cases = []

# ----- cross-entropy and NLL with class weights / ignore_index -----
n, c = 7, 5
target = torch.tensor([0, 3, 2, 4, 2, 1, 3])
weight = f32(c).abs() + 0.25
for name, hyper in [
    ("cross_entropy_weight_mean", {}),
    ("cross_entropy_weight_sum", {"reduction": "sum"}),
    ("cross_entropy_weight_none", {"reduction": "none"}),
    ("cross_entropy_weight_ignore", {"ignore_index": 2}),
    ("cross_entropy_weight_ignore_smoothing", {"ignore_index": 3, "label_smoothing": 0.2}),
    ("cross_entropy_weight_smoothing_none", {"label_smoothing": 0.1, "reduction": "none"}),
]:
    x = f32(n, c, scale=2.0).requires_grad_()
    y = torch.nn.functional.cross_entropy(
        x,
        target,
        weight=weight,
        ignore_index=hyper.get("ignore_index", -100),
        reduction=hyper.get("reduction", "mean"),
        label_smoothing=hyper.get("label_smoothing", 0.0),
    )
    inputs = {"input": x, "target": target, "weight": weight}
    cases.append(case(name, "cross_entropy", hyper, inputs, {}, {"output": y}, {"input": x}))

x = f32(n, c, scale=2.0).requires_grad_()
y = torch.nn.functional.cross_entropy(x, target, ignore_index=4)
cases.append(
    case("cross_entropy_ignore", "cross_entropy", {"ignore_index": 4}, {"input": x, "target": target}, {}, {"output": y}, {"input": x})
)
for name, hyper in [("nll_weight_ignore", {"ignore_index": 0}), ("nll_weight_none", {"reduction": "none"})]:
    x = torch.log_softmax(f32(n, c, scale=2.0), 1).detach().requires_grad_()
    y = torch.nn.functional.nll_loss(
        x, target, weight=weight, ignore_index=hyper.get("ignore_index", -100), reduction=hyper.get("reduction", "mean")
    )
    cases.append(case(name, "nll", hyper, {"input": x, "target": target, "weight": weight}, {}, {"output": y}, {"input": x}))

# ----- stacked recurrent layers with initial states, time-major -----
for op, cls, gates in [("lstm", torch.nn.LSTM, 4), ("gru", torch.nn.GRU, 3), ("rnn_relu", torch.nn.RNN, 1)]:
    kw = {"nonlinearity": "relu"} if op == "rnn_relu" else {}
    m = cls(3, 4, num_layers=2, batch_first=False, **kw).to(torch.float64)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(f32(*p.shape, scale=0.5))
    params = dict(m.named_parameters())
    x = f32(6, 2, 3).requires_grad_()
    h0 = f32(2, 2, 4, scale=0.5).requires_grad_()
    inputs = {"x": x, "h0": h0}
    if op == "lstm":
        c0 = f32(2, 2, 4, scale=0.5).requires_grad_()
        inputs["c0"] = c0
        out, (hn, cn) = m(x, (h0, c0))
        outputs = {"output": out, "h_n": hn, "c_n": cn}
    else:
        out, hn = m(x, h0)
        outputs = {"output": out, "h_n": hn}
    hyper = {"input_size": 3, "hidden_size": 4, "num_layers": 2, "batch_first": False}
    diff = dict(inputs)
    diff.update(params)
    cases.append(case(f"{op}_2layer_state", op, hyper, inputs, params, outputs, diff, rtol=1e-4, atol=1e-6))

# ----- BatchNorm with momentum None (cumulative average), after two batches -----
bn = torch.nn.BatchNorm1d(3, momentum=None).to(torch.float64)
with torch.no_grad():
    bn.weight.copy_(f32(3))
    bn.bias.copy_(f32(3))
    bn.running_mean.copy_(f32(3))
    bn.running_var.copy_(f32(3).abs() + 0.5)
    bn.num_batches_tracked.fill_(1)
before = {"running_mean": t(bn.running_mean), "running_var": t(bn.running_var)}
x = f32(5, 3).requires_grad_()
y = bn(x)
after = {"running_mean": t(bn.running_mean), "running_var": t(bn.running_var)}
params = {"weight": bn.weight, "bias": bn.bias}
cases.append(
    case(
        "batchnorm1d_cumulative",
        "batch_norm",
        {"training": True, "momentum": None, "eps": 1e-5, "num_batches_tracked": 1},
        {"x": x},
        params,
        {"output": y},
        {"x": x, "weight": bn.weight, "bias": bn.bias},
        rtol=1e-4,
        atol=1e-6,
        extra={"state_before": before, "state_after": after},
    )
)

doc = {
    "format": "nw-reference/1",
    "generator": f"benches/torch/nn_extra_fixtures.py, torch {torch.__version__}, float64",
    "kind": "layer",
    "note": "Options beyond fixtures/reference/layers.json. Loss cases: inputs.weight is the class-weight "
    "tensor (not differentiated), hyper.ignore_index the ignored class. Recurrent cases: time-major "
    "[seq, batch, feature], two layers, initial states inputs.h0 (and inputs.c0), parameters under "
    "torch's names (weight_ih_l0 ...), gradients also for h0/c0. batchnorm1d_cumulative: momentum None "
    "(cumulative average) starting from hyper.num_batches_tracked batches already seen.",
    "cases": cases,
}
OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps(doc) + "\n")
print(f"{len(cases)} cases -> {OUT}")
