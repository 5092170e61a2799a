"""PyTorch side of nw's state-file interoperability test.

    /tmp/torch/bin/python benches/torch/state_fixture.py make
        writes fixtures/state/torch_mlp_bn.safetensors (the state_dict of the
        model below after one training-mode forward, so the BatchNorm running
        statistics and num_batches_tracked are not at their initial values)
        and fixtures/state/torch_mlp_bn.json (an input and the model's
        eval-mode output for it, float32).

    /tmp/torch/bin/python benches/torch/state_fixture.py check FILE
        loads a safetensors file written by nw into the same architecture
        with load_state_dict(strict=True) and prints how far its eval-mode
        output on the fixture input is from the expected one. The nw test
        `state_files::pytorch_written_file_loads_and_computes_the_same` loads
        the fixture and writes it back to
        target/tmp/nw_resaved_torch_mlp_bn.safetensors: checking that copy
        must print 0.

Needs `pip install safetensors` (0.8).
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "fixtures" / "state"


def model():
    # keys: 0.weight 0.bias 1.weight 1.bias 1.running_mean 1.running_var
    # 1.num_batches_tracked 3.weight 3.bias
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
    )


def make():
    torch.manual_seed(20261123)
    m = model()
    m.train()
    with torch.no_grad():
        m(torch.randn(16, 4))
    m.eval()
    x = torch.randn(5, 4)
    with torch.no_grad():
        y = m(x)
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(OUT / "torch_mlp_bn.safetensors"))
    doc = {
        "note": "made by benches/torch/state_fixture.py make; output is the eval-mode forward of the "
        "model in torch_mlp_bn.safetensors on input (float32)",
        "torch": torch.__version__,
        "input": {"shape": list(x.shape), "data": x.flatten().tolist()},
        "output": {"shape": list(y.shape), "data": y.flatten().tolist()},
    }
    (OUT / "torch_mlp_bn.json").write_text(json.dumps(doc, indent=1) + "\n")


def check(path):
    m = model()
    sd = load_file(path)
    m.load_state_dict(sd, strict=True)
    m.eval()
    doc = json.loads((OUT / "torch_mlp_bn.json").read_text())
    x = torch.tensor(doc["input"]["data"]).reshape(doc["input"]["shape"])
    with torch.no_grad():
        y = m(x)
    want = torch.tensor(doc["output"]["data"]).reshape(doc["output"]["shape"])
    print("keys", sorted(sd.keys()))
    print("dtypes", sorted({str(v.dtype) for v in sd.values()}))
    print("max |torch(nw file) - expected| =", (y - want).abs().max().item())


if __name__ == "__main__":
    if sys.argv[1:2] == ["make"]:
        make()
    elif sys.argv[1:2] == ["check"] and len(sys.argv) == 3:
        check(sys.argv[2])
    else:
        sys.exit(__doc__)
