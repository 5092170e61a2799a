"""Writes fixtures/foreign/: an MLP and a small CNN trained in PyTorch on the
UCI digits, saved as safetensors with their state_dict names, the nw
configurations that describe their architectures, 20 input rows, and
PyTorch's logits and classes for those rows. `nw predict --weights ...
--config ...` must reproduce them (crates/nw-cli/tests/foreign.rs).

Run: /tmp/torch/bin/python benches/torch/foreign_models.py
(The safetensors format is written by hand: an 8-byte little-endian header
length, a JSON header, then the raw little-endian data.)
"""
import gzip, json, os, struct

import torch
from torch import nn

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
OUT = os.path.join(ROOT, "fixtures", "foreign")


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        if t.dtype == torch.float32:
            data, dtype = t.numpy().astype("<f4").tobytes(), "F32"
        elif t.dtype == torch.int64:
            data, dtype = t.numpy().astype("<i8").tobytes(), "I64"
        else:
            raise ValueError(t.dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    torch.manual_seed(0)
    rows = [list(map(float, l.split(","))) for l in gzip.open(os.path.join(ROOT, "datasets/uci/digits.csv.gz"), "rt")]
    x = torch.tensor([r[:64] for r in rows], dtype=torch.float32)
    y = torch.tensor([int(r[64]) for r in rows])
    models = {
        "mlp": nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
        "cnn": nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64, 16),
            nn.ReLU(),
            nn.Linear(16, 10),
        ),
    }
    configs = {
        "mlp": '[data]\ndataset = "digits"\nstandardize = false\n\n[model]\nkind = "mlp"\nhidden = [32]\n',
        "cnn": '[data]\ndataset = "digits"\nstandardize = false\n\n[model]\nkind = "cnn"\nchannels = [4]\nwidth = 16\n',
    }
    probe = x[::90][:20]
    expected = {}
    for name, m in models.items():
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        for epoch in range(30):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 64):
                idx = perm[i : i + 64]
                opt.zero_grad()
                nn.functional.cross_entropy(m(x[idx]), y[idx]).backward()
                opt.step()
        m.eval()
        with torch.no_grad():
            logits = m(probe)
        save_safetensors(os.path.join(OUT, f"{name}.safetensors"), m.state_dict())
        with open(os.path.join(OUT, f"{name}.toml"), "w") as f:
            f.write(configs[name])
        expected[name] = {"logits": logits.tolist(), "classes": logits.argmax(1).tolist()}
    with open(os.path.join(OUT, "inputs.csv"), "w") as f:
        for r in probe.tolist():
            f.write(",".join(str(int(v)) for v in r) + "\n")
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"generator": "benches/torch/foreign_models.py", "torch": torch.__version__, **expected}, f)


if __name__ == "__main__":
    main()
