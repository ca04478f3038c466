"""Host-side float task heads on the accelerator's output tokens (Edge-MoE leaves them out).

* :class:`ClassifierHead`: pooling (class token, or mean / max / avgmax over patch tokens as
  timm's ``global_pool``), optional LayerNorm (timm's ``fc_norm``), then a Linear.
* :class:`DenseHead`: a per-patch Linear on the token grid (class token dropped), bilinearly
  upsampled to the input size: ``K`` maps (segmentation logits) or one map (depth).

Output tokens of the golden model are integers; :func:`dequantize` turns them into floats with
the quantized model's output scale. For ``m3vit``, whose trained decoders are not available,
:func:`fit_dense_heads` builds untrained heads from the tokens alone (k-means prototypes for
segmentation, first principal component for depth) so that a frame can be looked at; the figure
says so. ``python -m edgevit_hw.apps.heads --config m3vit --out build/m3vit`` writes ``frame.png``:
input | segmentation | depth, from the golden model's tokens of each task.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevit_hw.core.errors import CliParser, EdgeVitError, run_cli


def dequantize(tokens: np.ndarray, qmodel) -> np.ndarray:
    """Integer output tokens -> float32 with the output scale of ``qmodel``."""
    return qmodel.dequantize(tokens)


def _layernorm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


@dataclass
class ClassifierHead:
    """``logits = W · norm(pool(tokens)) + b``; tokens [B, N, D] or [N, D]."""

    weight: np.ndarray
    bias: np.ndarray
    pool: str = "token"
    prefix_tokens: int = 1
    include_prefix: bool = False
    norm_weight: np.ndarray | None = None
    norm_bias: np.ndarray | None = None
    eps: float = 1e-6

    def pooled(self, tokens: np.ndarray) -> np.ndarray:
        x = np.asarray(tokens, np.float32)
        x = x[None] if x.ndim == 2 else x
        if self.pool == "token":
            return x[:, 0]
        body = x if self.include_prefix else x[:, self.prefix_tokens :]
        pools = {
            "avg": lambda t: t.mean(axis=1),
            "max": lambda t: t.max(axis=1),
            "avgmax": lambda t: 0.5 * (t.max(axis=1) + t.mean(axis=1)),
            "": lambda t: t.reshape(t.shape[0], -1),
        }
        if self.pool not in pools:
            raise EdgeVitError(f"head pool must be one of {sorted(pools)}, not {self.pool!r}")
        return pools[self.pool](body)

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        x = self.pooled(tokens)
        if self.norm_weight is not None:
            x = _layernorm(x, self.norm_weight, self.norm_bias, self.eps)
        return x @ np.asarray(self.weight, np.float32).T + self.bias

    def predict(self, tokens: np.ndarray) -> np.ndarray:
        return self.logits(tokens).argmax(axis=-1)

    @classmethod
    def from_tensors(cls, tensors: dict, info: dict | None = None, prefix: str = "head"):
        """From ``{prefix}.weight``, ``{prefix}.bias`` (and ``{prefix}.norm.*``) tensors."""
        info = info or {}
        if f"{prefix}.weight" not in tensors:
            raise EdgeVitError(f"no classifier head tensors {prefix}.weight / {prefix}.bias")
        return cls(
            weight=np.asarray(tensors[f"{prefix}.weight"], np.float32),
            bias=np.asarray(tensors[f"{prefix}.bias"], np.float32),
            pool=info.get("pool", "token"),
            prefix_tokens=int(info.get("prefix_tokens", 1)),
            include_prefix=bool(info.get("include_prefix", False)),
            norm_weight=tensors.get(f"{prefix}.norm.weight"),
            norm_bias=tensors.get(f"{prefix}.norm.bias"),
            eps=float(info.get("eps", 1e-6)),
        )


@dataclass
class DenseHead:
    """Per-patch ``W · t + b`` on the token grid [gh, gw], then bilinear upsampling (half-pixel
    centers, as ``torch.nn.functional.interpolate(align_corners=False)``) to [H, W].
    ``weight`` [K, D]; returns [K, H, W]."""

    weight: np.ndarray
    bias: np.ndarray
    grid: tuple[int, int]
    size: tuple[int, int]
    prefix_tokens: int = 1

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        t = np.asarray(tokens, np.float32)[self.prefix_tokens :]
        y = (t @ np.asarray(self.weight, np.float32).T + self.bias).T  # [K, P]
        y = torch.from_numpy(np.ascontiguousarray(y.reshape(-1, *self.grid)))[None]
        up = F.interpolate(y, size=self.size, mode="bilinear", align_corners=False)
        return up[0].numpy()


def _kmeans(x: np.ndarray, k: int, seed: int, iters: int = 25) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cent = x[rng.choice(len(x), size=min(k, len(x)), replace=False)].copy()
    for _ in range(iters):
        lab = ((x[:, None] - cent[None]) ** 2).sum(-1).argmin(1)
        for j in range(len(cent)):
            if np.any(lab == j):
                cent[j] = x[lab == j].mean(0)
    return cent


def fit_dense_heads(spec, seg_tokens: np.ndarray, depth_tokens: np.ndarray, classes: int = 6,
                    seed: int = 0) -> tuple[DenseHead, DenseHead]:  # fmt: skip
    """Untrained heads from float tokens [N, D] (no labels exist here): segmentation = nearest
    of ``classes`` k-means prototypes written as a Linear (``2c·t - |c|^2``); depth = projection
    on the first principal component, scaled to [0, 1] on these tokens."""
    m = spec.model
    pre = int(m.class_token)
    xs = np.asarray(seg_tokens, np.float64)[pre:]
    cent = _kmeans(xs, classes, seed)
    seg = DenseHead(2 * cent, -(cent**2).sum(1), m.grid, (m.image.height, m.image.width), pre)
    xd = np.asarray(depth_tokens, np.float64)[pre:]
    mu = xd.mean(0)
    pc = np.linalg.svd(xd - mu, full_matrices=False)[2][0]
    proj = (xd - mu) @ pc
    lo, span = proj.min(), max(np.ptp(proj), 1e-12)
    w = (pc / span)[None]
    depth = DenseHead(w, np.array([-(mu @ pc + lo) / span]), m.grid, seg.size, pre)
    return seg, depth


def frame_figure(image: np.ndarray, seg: np.ndarray, depth: np.ndarray, path: Path,
                 title: str = "") -> Path:  # fmt: skip
    """PNG with three panels: input [C, H, W] uint8 | segmentation [H, W] | depth [H, W]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = np.asarray(image).transpose(1, 2, 0)
    img = img[..., 0] if img.shape[-1] == 1 else img
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = ((img, "input", "gray"), (seg, "segmentation", "tab10"), (depth, "depth", "magma"))
    for ax, (data, name, cmap) in zip(axes, panels, strict=True):
        ax.imshow(data, cmap=cmap, interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def golden_frame(prep, image: np.ndarray, out: Path, classes: int = 6, seed: int = 0) -> Path:
    """Run the golden model on ``image`` for the first two tasks (segmentation router, then
    depth router), apply fitted host heads and write ``out/frame.png``."""
    from edgevit_hw.core.golden import golden_forward

    spec = prep.spec
    if len(spec.tasks) < 2:
        raise EdgeVitError(f"the frame figure needs two tasks (segmentation, depth), {spec.name}"
                           f" has {list(spec.tasks)}")  # fmt: skip
    toks = [dequantize(golden_forward(prep.qmodel, image, t).tokens, prep.qmodel) for t in (0, 1)]
    seg_head, depth_head = fit_dense_heads(spec, toks[0], toks[1], classes, seed)
    seg = seg_head(toks[0]).argmax(0)
    depth = depth_head(toks[1])[0]
    note = "synthetic weights, " if prep.qmodel.synthetic else ""
    heads = "untrained host heads (k-means prototypes, first principal component)"
    routers = f"{spec.tasks[0]} / {spec.tasks[1]} routers"
    title = f"{spec.name}: golden-model tokens ({routers}); {note}{heads}"
    return frame_figure(image, seg, depth, out / "frame.png", title)


def main(argv: list[str] | None = None) -> int:
    from edgevit_hw.ml.images import CALIB_HELP, EVAL_IMAGE

    ap = CliParser(prog="python -m edgevit_hw.apps.heads")
    ap.add_argument("--config", default="m3vit", help="preset name or YAML spec path")
    ap.add_argument("--weights", default=None, help="float checkpoint (.safetensors or .npz)")
    ap.add_argument("--calib", default=None, help=f"calibration set: {CALIB_HELP}")
    ap.add_argument("--image", default=None, help=f"image file or scikit-image photograph "
                    f"(default {EVAL_IMAGE!r})")  # fmt: skip
    ap.add_argument("--out", default=None, help="output folder (default build/<name>)")
    ap.add_argument("--classes", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    return run_cli(_heads, ap, argv)


def _heads(args) -> int:
    from edgevit_hw.core.spec import load_spec
    from edgevit_hw.flow import check_out, prepare

    out = check_out(Path(args.out)) if args.out else None
    spec = load_spec(args.config)
    out = out or check_out(Path(f"build/{spec.name}"))
    prep = prepare(spec, args.weights, args.calib, args.image)
    print(f"{spec.name}: calibration: {prep.qmodel.calibration}; image: {prep.frame_name}")
    path = golden_frame(prep, prep.pixels(), out, args.classes, args.seed)
    print(f"seed {args.seed}: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
