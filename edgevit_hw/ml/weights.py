"""Float weights: seeded synthetic weights with trained-like statistics, and loading a float
checkpoint (safetensors or npz, never pickle) checked against the spec.

Synthetic weights follow timm's initialization (truncated normal, std 0.02, for every
Linear, the patch embedding, the position embedding and the class token), with small random
biases and LayerNorm affine parameters so that no path is trivially zero. Every report that
uses them says "synthetic".
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from edgevit_hw.core.errors import WeightsError
from edgevit_hw.core.spec import Spec
from edgevit_hw.ml.reference import ViTMoE

PREFIXES = ("module.", "backbone.", "encoder.")


def expected_shapes(spec: Spec) -> dict[str, tuple[int, ...]]:
    """Every float tensor the spec needs, by M³ViT state_dict name."""
    return {k: tuple(v.shape) for k, v in ViTMoE(spec).state_dict().items()}


def _trunc_normal(rng: np.random.Generator, shape, std: float) -> np.ndarray:
    x = rng.standard_normal(shape)
    while np.any(bad := np.abs(x) > 2.0):
        x[bad] = rng.standard_normal(int(bad.sum()))
    return (x * std).astype(np.float32)


def synthetic_weights(spec: Spec, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded synthetic float weights for ``spec`` (labelled synthetic wherever used)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in expected_shapes(spec).items():
        if name.endswith(("norm1.weight", "norm2.weight")) or name == "norm.weight":
            out[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        elif name.endswith("bias"):
            out[name] = (0.02 * rng.standard_normal(shape)).astype(np.float32)
        else:
            out[name] = _trunc_normal(rng, shape, 0.02)
    return out


def _strip(name: str) -> str:
    for p in PREFIXES:
        if name.startswith(p):
            return _strip(name[len(p) :])
    return name


def check_weights(spec: Spec, weights: dict[str, np.ndarray], source: str) -> dict:
    """Keep the tensors the spec needs; a missing tensor or a wrong shape is one-line error."""
    want = expected_shapes(spec)
    have = {_strip(k): v for k, v in weights.items()}
    for name, shape in want.items():
        if name not in have:
            raise WeightsError(f"{source}: missing tensor {name} (shape {list(shape)})")
        if tuple(have[name].shape) != shape:
            raise WeightsError(
                f"{source}: {name} must have shape {list(shape)} for spec {spec.name},"
                f" not {list(have[name].shape)}"
            )
    return {k: np.asarray(have[k], dtype=np.float32) for k in want}


def load_weights(spec: Spec, path: str | Path) -> dict[str, np.ndarray]:
    """A float checkpoint: ``.safetensors`` or ``.npz`` (loaded with pickling off)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"--weights must be an existing file, not {str(path)!r}")
    try:
        raw = _read_checkpoint(path)
    except (OSError, ValueError, zipfile.BadZipFile, SafetensorError) as exc:
        raise WeightsError(f"{path}: cannot read weights ({exc})") from None
    return check_weights(spec, raw, str(path))


def _read_checkpoint(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))
    raise WeightsError(f"--weights must be a .safetensors or .npz file, not {path.name}")


def build_reference(spec: Spec, weights: dict[str, np.ndarray]) -> ViTMoE:
    """The float model with ``weights`` loaded, in eval mode."""
    model = ViTMoE(spec)
    state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in weights.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()
