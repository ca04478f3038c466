"""Trained float weights shipped with a preset (``edgevit_hw/models/<name>.safetensors``).

:func:`edgevit_hw.flow.prepare` uses them when no ``--weights`` is given and the spec's model,
MoE and task sections are exactly those the file was trained for (its ``model_key``
metadata); a file may also carry its own calibration images (``calibration.pixels``, uint8
[B, C, H, W], described by its ``calibration`` metadata), used instead of the photographs when
the model was trained on other data. Any weights file given with ``--weights`` may carry them
too (the importers' ``--calib``).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np

from edgevit_hw.core.spec import Spec
from edgevit_hw.ml.images import Calibration


def model_key(spec: Spec) -> str:
    """SHA-256 of the sections that decide the float weights (model, moe, tasks)."""
    d = spec.to_dict()
    text = json.dumps({k: d[k] for k in ("model", "moe", "tasks")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def shipped_weights_path(spec: Spec) -> Path | None:
    """The shipped weights file of ``spec.name`` if it exists and matches ``spec``."""
    from safetensors import safe_open

    path = Path(str(resources.files("edgevit_hw") / "models" / f"{spec.name}.safetensors"))
    if not path.is_file():
        return None
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
    return path if meta.get("model_key") == model_key(spec) else None


def shipped_calibration(path: str | Path | None) -> Calibration | None:
    """``calibration.pixels`` of a weights file (safetensors) with its label (the file's
    ``calibration`` metadata when it has one), or None."""
    if path is None or Path(path).suffix != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        if "calibration.pixels" not in f.keys():
            return None
        pixels = np.asarray(f.get_tensor("calibration.pixels"), dtype=np.uint8)
        meta = f.metadata() or {}
    names = tuple(f"calibration.pixels[{i}]" for i in range(len(pixels)))
    name = Path(path).name
    label = f"{len(pixels)} images stored in {name}"
    label = f"{meta['calibration']}, stored in {name}" if meta.get("calibration") else label
    return Calibration(pixels, names, label)
