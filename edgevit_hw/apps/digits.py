"""``digits_moe``: a small M³ViT-style multi-task MoE ViT trained on real handwritten digits.

Data: scikit-learn's bundled ``load_digits`` (1797 real 8×8 images, values 0..16, no
download), scaled to uint8 ``round(v * 255 / 16)``, one channel. Held-out split: stratified,
25 % test (``train_test_split(random_state=SPLIT_SEED)``): 1347 train / 450 test images.

Model: the float reference of ``configs/digits_moe.yaml`` (:class:`edgevit_hw.ml.reference.ViTMoE`)
with two tasks on the same images, each with its own router (``digit``: 10 classes,
``parity``: even / odd); experts are shared. Host heads
(:class:`edgevit_hw.apps.heads.ClassifierHead`) apply LayerNorm + Linear to the class token
of each task's output tokens.

``python -m edgevit_hw.apps.digits train`` (``make digits``) trains on the CPU (AdamW, seeded),
writes ``edgevit_hw/models/digits_moe.safetensors`` (float weights,
``head.<task>.*`` and ``calibration.pixels``: the first ``CALIB_COUNT`` training images) and
reports float and integer (golden model) accuracy per task on the held-out split.
``python -m edgevit_hw.apps.digits eval`` evaluates the shipped file without training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgevit_hw.apps.heads import ClassifierHead, dequantize
from edgevit_hw.core.spec import Spec, load_spec
from edgevit_hw.ml.weights import build_reference, check_weights, synthetic_weights

SPLIT_SEED = 0
TEST_FRACTION = 0.25
CALIB_COUNT = 256
TASK_CLASSES = {"digit": 10, "parity": 2}
SHIPPED = "models/digits_moe.safetensors"
HEAD_POOL = "token"
LR = 5e-3
EPOCHS = 30


@dataclass
class Split:
    """uint8 pixels [B, 1, 8, 8] and digit labels [B] of the training and held-out parts."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def task_labels(task: str, digits: np.ndarray) -> np.ndarray:
    """``digit``: the digit itself; ``parity``: digit mod 2."""
    return np.asarray(digits) % 2 if task == "parity" else np.asarray(digits)


def load_split() -> Split:
    """The seeded stratified split of scikit-learn's digits, scaled to uint8."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = np.clip(np.round(d.images * 255.0 / 16.0), 0, 255).astype(np.uint8)[:, None]
    tx, vx, ty, vy = train_test_split(
        x, d.target, test_size=TEST_FRACTION, stratify=d.target, random_state=SPLIT_SEED
    )
    return Split(tx, ty.astype(np.int64), vx, vy.astype(np.int64))


def _shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image moved by a random (dy, dx) in {-1, 0, 1}^2 with zero fill."""
    out = torch.zeros_like(x)
    shifts = torch.randint(-1, 2, (x.shape[0], 2), generator=gen)
    h, w = x.shape[-2:]
    for i, (dy, dx) in enumerate(shifts.tolist()):
        ys, yd = slice(max(-dy, 0), h - max(dy, 0)), slice(max(dy, 0), h - max(-dy, 0))
        xs, xd = slice(max(-dx, 0), w - max(dx, 0)), slice(max(dx, 0), w - max(-dx, 0))
        out[i, :, yd, xd] = x[i, :, ys, xs]
    return out


class _Heads(nn.Module):
    def __init__(self, dim: int, tasks: tuple[str, ...], pool: str):
        super().__init__()
        self.pool = pool
        self.norm = nn.ModuleList(nn.LayerNorm(dim, eps=1e-6) for _ in tasks)
        self.fc = nn.ModuleList(nn.Linear(dim, TASK_CLASSES[t]) for t in tasks)

    def forward(self, tokens: torch.Tensor, t: int) -> torch.Tensor:
        x = tokens[:, 0] if self.pool == "token" else tokens[:, 1:].mean(dim=1)
        return self.fc[t](self.norm[t](x))


def train(spec: Spec, split: Split, epochs: int = EPOCHS, seed: int = 0, batch: int = 64,
          pool: str = HEAD_POOL, lr: float = LR, augment: bool = False,
          log=print) -> tuple[dict, dict]:  # fmt: skip
    """Train from seeded synthetic initial weights; returns (float weights, head tensors).
    AdamW (weight decay 0.05, one-cycle schedule peaking at ``lr``), both tasks' losses
    summed at every step; ``augment`` adds random one-pixel shifts (off by default: on 8x8
    digits it slowed training more than it helped). One CPU thread: the model is tiny and
    extra threads only add contention."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_reference(spec, synthetic_weights(spec, seed)).train()
    heads = _Heads(spec.model.embed_dim, spec.tasks, pool)
    params = list(model.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    x_all, y_all = torch.from_numpy(split.train_x), torch.from_numpy(split.train_y)
    steps = epochs * -(-len(x_all) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    for ep in range(epochs):
        perm = torch.randperm(len(x_all), generator=gen)
        total = 0.0
        for k in range(0, len(perm), batch):
            idx = perm[k : k + batch]
            x = _shift(x_all[idx], gen) if augment else x_all[idx]
            loss = sum(
                nn.functional.cross_entropy(
                    heads(model(x, t), t), torch.from_numpy(task_labels(name, y_all[idx].numpy()))
                )
                for t, name in enumerate(spec.tasks)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if ep % 10 == 9 or ep == epochs - 1:
            log(f"epoch {ep + 1:3d}/{epochs}  loss {total / len(x_all):.4f}")
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return check_weights(spec, weights, "trained digits_moe"), _head_tensors(heads, spec.tasks)


def _head_tensors(heads: _Heads, tasks) -> dict[str, np.ndarray]:
    out = {}
    for t, name in enumerate(tasks):
        p = f"head.{name}"
        out[f"{p}.weight"] = heads.fc[t].weight.detach().numpy().copy()
        out[f"{p}.bias"] = heads.fc[t].bias.detach().numpy().copy()
        out[f"{p}.norm.weight"] = heads.norm[t].weight.detach().numpy().copy()
        out[f"{p}.norm.bias"] = heads.norm[t].bias.detach().numpy().copy()
    return out


def task_heads(tensors: dict, spec: Spec, pool: str = HEAD_POOL) -> list[ClassifierHead]:
    """One classifier per task from ``head.<task>.*`` tensors (``pool``: ``token`` for the
    class token, ``avg`` for the mean of the patch tokens)."""
    info = {"pool": pool, "prefix_tokens": 1}
    return [ClassifierHead.from_tensors(tensors, info, f"head.{t}") for t in spec.tasks]


def float_accuracy(spec: Spec, weights: dict, heads: list, x, digits) -> list[float]:
    """Accuracy (%) per task of the float reference plus host heads."""
    model = build_reference(spec, weights)
    acc = []
    with torch.no_grad():
        for t, name in enumerate(spec.tasks):
            tokens = model(torch.from_numpy(np.asarray(x)), t).numpy()
            pred = heads[t].predict(tokens)
            acc.append(100.0 * float(np.mean(pred == task_labels(name, digits))))
    return acc


def integer_accuracy(qmodel, heads: list, x, digits) -> list[float]:
    """Accuracy (%) per task of the golden model's tokens (dequantized) plus host heads."""
    from edgevit_hw.core.golden import golden_forward

    acc = []
    for t, name in enumerate(qmodel.spec.tasks):
        toks = np.stack([dequantize(golden_forward(qmodel, img, t).tokens, qmodel) for img in x])
        pred = heads[t].predict(toks)
        acc.append(100.0 * float(np.mean(pred == task_labels(name, digits))))
    return acc


def shipped_path() -> Path:
    return Path(str(resources.files("edgevit_hw") / SHIPPED))


def save_model(path: Path, spec: Spec, weights: dict, heads: dict, calib: np.ndarray,
               meta: dict) -> Path:  # fmt: skip
    from safetensors.numpy import save_file

    from edgevit_hw.ml.shipped import model_key

    tensors = {**weights, **heads, "calibration.pixels": np.ascontiguousarray(calib)}
    info = {"model_key": model_key(spec), "report": json.dumps(meta, sort_keys=True),
            "calibration": f"the first {len(calib)} training digits"}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), info)
    return path


def load_model(spec: Spec, path: Path | None = None):
    """(float weights, heads, calibration pixels) from a saved digits model."""
    from safetensors.numpy import load_file

    raw = load_file(str(path or shipped_path()))
    return check_weights(spec, raw, str(path)), task_heads(raw, spec), raw["calibration.pixels"]


def evaluate(spec: Spec, weights: dict, heads: list, calib: np.ndarray, split: Split) -> dict:
    """Quantize (calibrated on ``calib``) and measure float / integer accuracy per task."""
    from edgevit_hw.ml.quantizer import quantize

    qm = quantize(spec, weights, calib, False, "digits_moe (trained)")
    fl = float_accuracy(spec, weights, heads, split.test_x, split.test_y)
    it = integer_accuracy(qm, heads, split.test_x, split.test_y)
    return {"tasks": list(spec.tasks), "float": fl, "integer": it, "test_images": len(split.test_y),
            "calibration": f"the first {len(calib)} training digits"}  # fmt: skip


def _print_report(rep: dict) -> None:
    print(f"held-out images: {rep['test_images']} (split seed {SPLIT_SEED}); "
          f"calibration: {rep['calibration']}")  # fmt: skip
    for t, name in enumerate(rep["tasks"]):
        f, i = rep["float"][t], rep["integer"][t]
        print(f"  {name:7s} float {f:6.2f}%  integer {i:6.2f}%  (diff {i - f:+.2f} points)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgevit_hw.apps.digits")
    ap.add_argument("action", choices=("train", "eval"))
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--augment", action="store_true", help="random one-pixel shifts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="default: the shipped model file")
    args = ap.parse_args(argv)
    spec, split = load_spec("digits_moe"), load_split()
    path = Path(args.out) if args.out else shipped_path()
    if args.action == "train":
        print(f"training digits_moe on {len(split.train_y)} images, seed {args.seed}")
        t0 = time.perf_counter()
        weights, heads = train(spec, split, args.epochs, args.seed, augment=args.augment)
        secs = time.perf_counter() - t0
        print(f"training time {secs:.1f} s")
        calib = split.train_x[:CALIB_COUNT]
        rep = evaluate(spec, weights, task_heads(heads, spec), calib, split)
        meta = {**rep, "train_seconds": round(secs, 1), "epochs": args.epochs, "seed": args.seed}
        save_model(path, spec, weights, heads, calib, meta)
        print(f"wrote {path}")
    else:
        weights, heads, calib = load_model(spec, path)
        rep = evaluate(spec, weights, heads, calib, split)
    _print_report(rep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
