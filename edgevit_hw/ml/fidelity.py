"""Quantized-versus-float fidelity: the one place where float tolerances are allowed.

The golden model's trace is dequantized with the quantizer's scales and compared with the
float reference's tensors at the same points (cosine similarity, SQNR in dB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from edgevit_hw.core.golden import golden_forward
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.ml.reference import ViTMoE


def sqnr_db(ref: np.ndarray, approx: np.ndarray) -> float:
    """``10 log10(sum ref^2 / sum (ref - approx)^2)``; inf when identical."""
    noise = float(((ref - approx) ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(float((ref**2).sum()) / noise)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


@dataclass
class Fidelity:
    """One frame, one task: output cosine and SQNR, and SQNR of every block's output."""

    task: int
    cosine: float
    sqnr: float
    block_sqnr: list[float]


def float_trace(model: ViTMoE, pixels: np.ndarray, task: int) -> tuple[np.ndarray, dict]:
    rec: dict = {}
    with torch.no_grad():
        out = model(torch.from_numpy(np.asarray(pixels)[None]), task, rec)
    return out[0].numpy(), {k: v[0].numpy() for k, v in rec.items() if v.is_floating_point()}


def measure(qm: QuantModel, model: ViTMoE, pixels: np.ndarray, task: int) -> Fidelity:
    """Golden (dequantized) against float on ``pixels`` for ``task``."""
    gold = golden_forward(qm, pixels, task, trace=True)
    ref, rec = float_trace(model, pixels, task)
    deq = gold.tokens * qm.scales["out"]
    s_r = qm.scales["residual"]
    blocks = [
        sqnr_db(rec[f"blocks.{i}.res2"], gold.trace[f"blocks.{i}.res2"] * s_r)
        for i in range(qm.spec.model.depth)
    ]
    return Fidelity(task, cosine(deq, ref), sqnr_db(ref, deq), blocks)
