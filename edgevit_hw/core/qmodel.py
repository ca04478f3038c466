"""The quantized model: named integer tensors (weights, biases, requantization constants) and
the float scales of each quantization point, saved as safetensors (no pickle anywhere).

Tensor names (``i`` a block, ``t`` a task index, ``*`` in {w, b, m, s}: weight, bias,
requantization multiplier and shift, per output channel unless noted)::

    patch.*            patch embedding as a matmul on flattened (c, i, j) patches -> residual
    cls, pos           class token [D] and position embedding [N, D], residual units
    blocks.i.ln1.{g,b,m,s,eps}   LayerNorm (m, s, eps scalars)
    blocks.i.qkv.*     -> q, k, v int8 (rows [q | k | v], heads contiguous)
    blocks.i.logit.{m,s}         q.k -> log2-domain logits (scalars)
    blocks.i.proj.*    -> residual
    blocks.i.ln2.*
    blocks.i.fc1.*     -> GELU input (fixed point), blocks.i.gelu.{m,s} -> hidden int8
    blocks.i.fc2.*     -> residual                              (dense blocks)
    blocks.i.gate.t.{w,m,s}      router of task t -> log2-domain logits (MoE blocks)
    blocks.i.efc1.*    [E, H, D] / [E, H] experts' first layer -> GELU input
    blocks.i.gelu.{m,s}          shared by all experts
    blocks.i.efc2.{w,b} [E, D, H] / [E, D], all experts at one per-channel scale
    blocks.i.moe.{m,s} [D]       gate-weighted sum -> residual
    norm.{g,b,m,s,eps} final LayerNorm -> output tokens (when model.final_norm)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from edgevit_hw.core.errors import WeightsError
from edgevit_hw.core.spec import Spec, spec_from_dict


@dataclass
class QuantModel:
    """Integer tensors plus metadata: the spec it was quantized for, float scales of every
    quantization point (for dequantization and SQNR), whether the weights are synthetic, where
    they came from (``source``) and the calibration set they were quantized on."""

    spec: Spec
    tensors: dict[str, np.ndarray]
    scales: dict[str, float] = field(default_factory=dict)
    synthetic: bool = True
    source: str = ""
    calibration: str = ""

    def __getitem__(self, name: str) -> np.ndarray:
        return self.tensors[name]

    def block(self, i: int, name: str) -> np.ndarray:
        return self.tensors[f"blocks.{i}.{name}"]

    def save(self, path: str | Path) -> None:
        meta = {
            "spec": json.dumps(self.spec.to_dict(), sort_keys=True),
            "spec_hash": self.spec.spec_hash(),
            "scales": json.dumps(self.scales, sort_keys=True),
            "synthetic": json.dumps(self.synthetic),
            "source": self.source,
            "calibration": self.calibration,
        }
        save_file({k: np.ascontiguousarray(v) for k, v in self.tensors.items()}, str(path), meta)

    @classmethod
    def load(cls, path: str | Path) -> QuantModel:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
            spec = spec_from_dict(json.loads(meta["spec"]))
        except (OSError, KeyError, ValueError, SafetensorError) as exc:
            raise WeightsError(f"{path}: not a quantized edgevit_hw model ({exc})") from None
        return cls(
            spec=spec,
            tensors=tensors,
            scales=json.loads(meta.get("scales", "{}")),
            synthetic=json.loads(meta.get("synthetic", "true")),
            source=meta.get("source", ""),
            calibration=meta.get("calibration", ""),
        )

    def dequantize(self, tokens: np.ndarray) -> np.ndarray:
        """Integer output tokens -> float32 at the model's output scale."""
        return (np.asarray(tokens, np.float64) * self.scales["out"]).astype(np.float32)

    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.tensors.values())
