"""The generator flow: spec -> quantized model -> golden vectors -> files in an output folder.

This is the only module (with the emitters it calls) that writes files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevit_hw.core.derive import HwParams, derive
from edgevit_hw.core.golden import golden_forward
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.core.spec import Spec
from edgevit_hw.ml.images import EVAL_IMAGE, calibration_set, load_image
from edgevit_hw.ml.quantizer import quantize
from edgevit_hw.ml.weights import load_weights, synthetic_weights

SYNTHETIC_SEED = 0


@dataclass
class Prepared:
    """A spec with its float weights, quantized model and derived parameters."""

    spec: Spec
    weights: dict[str, np.ndarray]
    qmodel: QuantModel
    hw: HwParams


def prepare(spec: Spec, weights_path: str | None = None) -> Prepared:
    """Float weights (from ``weights_path`` or seeded synthetic ones), quantized on the
    calibration photographs. A preset with shipped trained weights uses them (and their own
    calibration images) when no ``weights_path`` is given (:mod:`edgevit_hw.ml.shipped`)."""
    from edgevit_hw.ml.shipped import shipped_calibration, shipped_weights_path

    weights_path = weights_path or shipped_weights_path(spec)
    if weights_path:
        weights, synthetic, source = load_weights(spec, weights_path), False, str(weights_path)
    else:
        weights = synthetic_weights(spec, SYNTHETIC_SEED)
        synthetic, source = True, f"synthetic (seed {SYNTHETIC_SEED})"
    calib = shipped_calibration(weights_path)
    calib = calibration_set(spec) if calib is None else calib
    qm = quantize(spec, weights, calib, synthetic, source)
    return Prepared(spec, weights, qm, derive(spec))


def header(spec: Spec, comment: str = "#") -> str:
    """First line of every generated file."""
    return f"{comment} generated from spec {spec.spec_hash()[:16]} ({spec.name}), do not edit"


def write_text(path: Path, text: str, spec: Spec, comment: str = "#") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header(spec, comment) + "\n" + text)
    return path


def write_golden_vectors(prep: Prepared, out: Path) -> list[Path]:
    """Input pixels and golden output tokens of the evaluation photograph, every task."""
    img = load_image(EVAL_IMAGE, prep.spec)
    written = [out / "vectors" / "input.npy"]
    written[0].parent.mkdir(parents=True, exist_ok=True)
    np.save(written[0], img, allow_pickle=False)
    for t, task in enumerate(prep.spec.tasks):
        path = out / "vectors" / f"golden_{task}.npy"
        np.save(path, golden_forward(prep.qmodel, img, t).tokens, allow_pickle=False)
        written.append(path)
    return written


def generate(prep: Prepared, out: Path) -> list[Path]:
    """Write the resolved spec, derived parameters, quantized model and golden vectors."""
    import yaml

    spec = prep.spec
    out.mkdir(parents=True, exist_ok=True)
    files = [
        write_text(out / "spec.yaml", yaml.safe_dump(spec.to_dict(), sort_keys=False), spec),
        out / "derived.json",
        out / "model.safetensors",
    ]
    files[1].write_text(json.dumps({"_generated": header(spec, "")[1:], **prep.hw.to_dict()},
                                   indent=2, sort_keys=True))  # fmt: skip
    prep.qmodel.save(files[2])
    files += write_golden_vectors(prep, out)
    from edgevit_hw.hls.emit import write_project

    files += write_project(prep, out)  # DIR/hls: the Vitis HLS project (issue 3)
    return files
