"""Quantization quality: the golden model against the float reference, layer by layer.

For a quantized model and a set of evaluation images (never the calibration images):

* per-layer SQNR in dB, ``10 log10(sum f^2 / sum (f - s*q)^2)`` where ``f`` is the float
  reference tensor, ``q`` the golden model's integer tensor at the same trace point and ``s``
  its quantization scale; sums run over every image and every task. Points: ``embed``,
  ``blocks.i.{ln1, q, k, v, attn, res1, ln2, hidden (dense blocks), res2}``, ``norm``.
  (MoE hidden activations and gate logits are left out: their float and integer orders or
  domains differ.) A block's SQNR range is the min and max over its points;
* output cosine similarity of the dequantized golden tokens against the float tokens, per
  image and task (flattened), reported as mean and minimum;
* accuracy per task of float and integer tokens through host heads, where labels exist.

``python -m edgevit_hw.ml.quality --config NAME [--weights W] [--out DIR]`` prints the table and
writes ``quality.png`` and ``quality.json`` in the output folder (default ``build/NAME``);
``--timm MODEL`` imports a timm model (default init, ``--seed``) instead of a preset. For a
preset with shipped trained weights and labelled data (``digits_moe``) the held-out digits are
the evaluation set and accuracy is reported.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgevit_hw.core.errors import CliParser, run_cli
from edgevit_hw.core.golden import golden_forward
from edgevit_hw.ml.images import check_calib_path
from edgevit_hw.ml.weights import build_reference
from edgevit_hw.progress import step

EVAL_IMAGES = ("astronaut", "camera", "coins", "moon", "grass", "brick")
BLOCK_POINTS = ("ln1", "q", "k", "v", "attn", "res1", "ln2", "hidden", "res2")


@dataclass
class QualityReport:
    """SQNR per trace point (dB, execution order), per-block ranges, output cosine, accuracy
    per task (``{task: [float %, integer %]}``) and the calibration set of the quantized model."""

    model: str
    images: int
    layers: dict[str, float]
    blocks: dict[str, list[float]]
    cosine_mean: float
    cosine_min: float
    accuracy: dict[str, list[float]] = field(default_factory=dict)
    calibration: str = ""


def trace_points(spec) -> list[tuple[str, str]]:
    """(trace name, scale name) of every compared point, in execution order."""
    pts = [("embed", "residual")]
    for i in range(spec.model.depth):
        for p in BLOCK_POINTS:
            if p == "hidden" and spec.is_moe(i):
                continue
            name = f"blocks.{i}.{p}"
            pts.append((name, "residual" if p.startswith("res") else name))
    if spec.model.final_norm:
        pts.append(("norm", "norm"))
    return pts


def sqnr_db(signal: float, noise: float) -> float:
    """``10 log10(signal / noise)``; infinite when the noise is zero."""
    return math.inf if noise == 0 else 10.0 * math.log10(max(signal, 1e-300) / noise)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))


def _accumulate(qm, pts, rec: dict, b: int, gold: dict, energy: dict) -> None:
    for name, scale in pts:
        f = rec[name][b].numpy().astype(np.float64)
        q = gold[name].astype(np.float64) * qm.scales[scale]
        s, n = energy.get(name, (0.0, 0.0))
        energy[name] = (s + float((f * f).sum()), n + float(((f - q) ** 2).sum()))


def measure(qmodel, weights: dict, images: np.ndarray, labels=None, heads=None,
            label_fn=None) -> QualityReport:  # fmt: skip
    """Compare the golden model with the float reference on ``images`` (uint8 [B, C, H, W])
    for every task. ``heads[t]`` (with ``predict(tokens)``) and ``label_fn(task, labels)``
    give accuracy when ``labels`` is given."""
    spec = qmodel.spec
    model, pts = build_reference(spec, weights), trace_points(spec)
    energy: dict[str, tuple[float, float]] = {}
    cosines, accuracy = [], {}
    for t, task in enumerate(spec.tasks):
        rec: dict = {}
        with torch.no_grad():
            out = model(torch.from_numpy(np.asarray(images)), t, rec).numpy()
        gold_out = []
        for b, img in enumerate(images):
            g = golden_forward(qmodel, img, t, trace=True)
            _accumulate(qmodel, pts, rec, b, g.trace, energy)
            gold_out.append(g.tokens.astype(np.float64) * qmodel.scales["out"])
            cosines.append(_cosine(out[b], gold_out[-1]))
        if labels is not None and heads is not None:
            want = label_fn(task, labels) if label_fn else np.asarray(labels)
            pairs = ((heads[t], out), (heads[t], np.stack(gold_out)))
            accuracy[task] = [100.0 * float(np.mean(h.predict(x) == want)) for h, x in pairs]
    layers = {n: sqnr_db(*energy[n]) for n, _ in pts}
    return QualityReport(spec.name, len(images), layers, _block_ranges(spec, layers),
                         float(np.mean(cosines)), float(np.min(cosines)), accuracy,
                         qmodel.calibration)  # fmt: skip


def _block_ranges(spec, layers: dict[str, float]) -> dict[str, list[float]]:
    out = {}
    for i in range(spec.model.depth):
        vals = [v for k, v in layers.items() if k.startswith(f"blocks.{i}.")]
        out[str(i)] = [min(vals), max(vals), layers[f"blocks.{i}.res2"]]
    return out


def print_report(rep: QualityReport, console=None) -> None:
    """Rich tables: SQNR range per block, then the summary lines."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"{rep.model}: golden vs float reference, {rep.images} images")
    for col in ("block", "min SQNR dB", "max SQNR dB", "block output (res2) dB"):
        table.add_column(col, justify="right")
    table.add_row("embed", "", "", f"{rep.layers['embed']:.1f}")
    for i, (lo, hi, res) in rep.blocks.items():
        kind = "" if f"blocks.{i}.hidden" in rep.layers else " (MoE)"
        table.add_row(f"{i}{kind}", f"{lo:.1f}", f"{hi:.1f}", f"{res:.1f}")
    if "norm" in rep.layers:
        table.add_row("norm", "", "", f"{rep.layers['norm']:.1f}")
    console.print(table)
    console.print(f"calibration: {rep.calibration or 'not recorded'}", highlight=False)
    console.print(f"output cosine similarity: mean {rep.cosine_mean:.5f}, min {rep.cosine_min:.5f}")
    for task, (f, q) in rep.accuracy.items():
        console.print(f"accuracy {task}: float {f:.2f}%  integer {q:.2f}%  ({q - f:+.2f} points)")


def plot_report(rep: QualityReport, path: Path) -> Path:
    """SQNR of every trace point (one line per point kind across blocks) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.2))
    names = list(rep.layers)
    vals = [min(rep.layers[n], 99.0) for n in names]
    ax.plot(range(len(names)), vals, marker="o", ms=3, lw=1)
    step = max(1, len(names) // 40)
    ax.set_xticks(range(0, len(names), step))
    ax.set_xticklabels(names[::step], rotation=90, fontsize=6)
    ax.set_ylabel("SQNR (dB)")
    ax.set_title(f"{rep.model}: golden vs float, {rep.images} images; output cosine"
                 f" mean {rep.cosine_mean:.4f}, min {rep.cosine_min:.4f}", fontsize=9)  # fmt: skip
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(rep: QualityReport, out: Path) -> list[Path]:
    """``quality.png`` and ``quality.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    js = out / "quality.json"
    js.write_text(json.dumps(asdict(rep), indent=2, sort_keys=True))
    return [plot_report(rep, out / "quality.png"), js]


def eval_images(spec) -> np.ndarray:
    """uint8 [B, C, H, W]: scikit-image photographs, none of them in the calibration set."""
    from edgevit_hw.ml.images import load_image

    return np.stack([load_image(n, spec) for n in EVAL_IMAGES])


def _calibration(args, spec):
    """``--calib`` (never holding an evaluation image), or None for the flow's default."""
    from edgevit_hw.ml.images import check_calibration, load_calibration

    if not args.calib:
        return None
    cal = load_calibration(args.calib, spec)
    check_calibration(cal, spec, EVAL_IMAGES)
    return cal


def _preset_run(args) -> QualityReport:
    from edgevit_hw.core.spec import load_spec
    from edgevit_hw.flow import prepare

    spec = load_spec(args.config)
    prep = prepare(spec, args.weights, _calibration(args, spec))
    if spec.name == "digits_moe" and not args.weights:
        from edgevit_hw.apps import digits

        split = digits.load_split()
        _, heads, _ = digits.load_model(spec)
        x, y = split.test_x[: args.limit], split.test_y[: args.limit]
        with step(f"measuring {spec.name} on {len(x)} held-out digits"):
            return measure(prep.qmodel, prep.weights, x, y, heads, digits.task_labels)
    with step(f"measuring {spec.name} on {len(EVAL_IMAGES)} photographs, golden vs float"):
        return measure(prep.qmodel, prep.weights, eval_images(spec))


def _timm_run(args) -> QualityReport:
    from dataclasses import replace

    from edgevit_hw.ml.images import default_calibration
    from edgevit_hw.ml.importers import import_timm, load_timm
    from edgevit_hw.ml.quantizer import quantize

    torch.manual_seed(args.seed)
    print(f"timm {args.timm}: default initialization, seed {args.seed}")
    model = load_timm().create_model(args.timm, pretrained=False).eval()
    imp = import_timm(model, args.timm.replace("-", "_").replace(".", "_"))
    cal = _calibration(args, imp.spec) or default_calibration(imp.spec)
    with step(f"calibrating {imp.spec.name} on {len(cal.pixels)} images and quantizing"):
        qm = quantize(imp.spec, imp.weights, cal.pixels, True, f"timm {args.timm}")
    qm = replace(qm, calibration=cal.label)
    with step(f"measuring {imp.spec.name} on {len(EVAL_IMAGES)} photographs, golden vs float"):
        return measure(qm, imp.weights, eval_images(imp.spec))


def main(argv: list[str] | None = None) -> int:
    from edgevit_hw.ml.images import CALIB_HELP

    ap = CliParser(prog="python -m edgevit_hw.ml.quality")
    ap.add_argument("--config", default="micro_moe", help="preset name or YAML spec path")
    ap.add_argument("--weights", default=None, help="float checkpoint (.safetensors or .npz)")
    ap.add_argument("--calib", default=None, help=f"calibration set: {CALIB_HELP}")
    ap.add_argument("--timm", default=None, help="a timm model name instead of --config")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="at most this many labelled images")
    ap.add_argument("--out", default=None, help="output folder (default build/<name>)")
    return run_cli(_quality, ap, argv)


def _quality(args) -> int:
    from edgevit_hw.flow import check_out

    if args.out:
        check_out(Path(args.out))
    if args.calib:
        check_calib_path(args.calib)
    rep = _timm_run(args) if args.timm else _preset_run(args)
    print_report(rep)
    for path in write_report(rep, Path(args.out or f"build/{rep.model}")):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
