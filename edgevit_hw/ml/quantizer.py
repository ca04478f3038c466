"""Post-training quantizer: float weights + calibration images -> :class:`QuantModel`.

Symmetric, zero point 0. Weights per output channel; activations per tensor from the max
absolute value seen on the calibration images (all tasks); one residual-stream scale for the
whole network; LayerNorm gamma per tensor at ``ln_gamma_bits``; the fixed-point domains of
GELU input and of softmax logits are fixed by the quant section, not calibrated.
Every requantization ratio becomes ``(m, s)`` via :func:`arithmetic.quantize_multiplier`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import derive_arith
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.core.spec import Spec
from edgevit_hw.ml.weights import build_reference

I64 = np.int64
LN2 = math.log(2.0)


def calibrate(model, images: np.ndarray, tasks: int) -> dict[str, float]:
    """Max |x| of every recorded float tensor over ``images`` [B, C, H, W] and all tasks."""
    stats: dict[str, float] = {}
    with torch.no_grad():
        for task in range(tasks):
            rec: dict = {}
            model(torch.from_numpy(np.asarray(images)), task, rec)
            for name, t in rec.items():
                if t.is_floating_point():
                    stats[name] = max(stats.get(name, 0.0), float(t.abs().max()))
    return stats


class _Q:
    """Builds the integer tensors; ``self.t`` collects them, ``self.scales`` the float scales."""

    def __init__(self, spec: Spec, w: dict, stats: dict):
        self.spec, self.w, self.stats = spec, w, stats
        self.q = spec.quant
        self.ap = derive_arith(spec)
        self.t: dict[str, np.ndarray] = {}
        self.scales: dict[str, float] = {}

    def act_scale(self, name: str, bits: int | None = None) -> float:
        top = A.smax(bits or self.q.act_bits)
        s = max(self.stats[name], 1e-8) / top
        self.scales[name] = s
        return s

    def weight(self, w: np.ndarray, axis=-1):
        """Per-output-channel quantization: reduce over ``axis``; returns (int w, scales)."""
        top = A.smax(self.q.weight_bits)
        s = np.maximum(np.abs(w).max(axis=axis, keepdims=True), 1e-12) / top
        return np.clip(np.round(w / s), -top - 1, top).astype(np.int8 if top < 128 else np.int16), s

    def bias(self, b: np.ndarray, scale: np.ndarray, lin: str) -> np.ndarray:
        bmax = self.ap.linears[lin].bias_max
        return np.clip(np.round(b / scale), -bmax, bmax).astype(np.int32)

    def mult(self, prefix: str, ratio) -> None:
        m, s = A.quantize_multiplier(np.atleast_1d(np.asarray(ratio, np.float64)), self.q.mult_bits)
        self.t[f"{prefix}.m"], self.t[f"{prefix}.s"] = m.astype(I64), s.astype(I64)

    def linear(self, prefix: str, wname: str, in_scale: float, lin: str, out_ratio):
        """Quantize a Linear; ``out_ratio(acc_scale)`` gives the requantization ratio."""
        wq, sw = self.weight(self.w[f"{wname}.weight"])
        sw = sw[:, 0]
        self.t[f"{prefix}.w"] = wq
        self.t[f"{prefix}.b"] = self.bias(self.w[f"{wname}.bias"], in_scale * sw, lin)
        self.mult(prefix, out_ratio(in_scale * sw))

    def layernorm(self, prefix: str, wname: str, res_scale: float, out_scale: float) -> None:
        d, nf = self.spec.model.embed_dim, self.q.ln_norm_frac_bits
        gamma, beta = self.w[f"{wname}.weight"], self.w[f"{wname}.bias"]
        unit = math.sqrt(d) / (1 << nf)  # float value of one unit of n
        sg = max(np.abs(gamma).max(), 1e-8) * unit / A.smax(self.q.ln_gamma_bits)
        self.t[f"{prefix}.g"] = np.round(gamma * unit / sg).astype(np.int32)
        bmax = (1 << (self.q.bias_bits - 1)) - 1
        self.t[f"{prefix}.b"] = np.clip(np.round(beta / sg), -bmax, bmax).astype(np.int64)
        eps = self.spec.model.ln_eps * d**3 / res_scale**2
        var_cap = (1 << (self.ap.ln_var_bits - 1)) // 2
        self.t[f"{prefix}.eps"] = np.array([min(max(round(eps), 1), var_cap)], dtype=I64)
        self.mult(prefix, sg / out_scale)


def quantize(spec: Spec, weights: dict[str, np.ndarray], images: np.ndarray,
             synthetic: bool, source: str = "") -> QuantModel:  # fmt: skip
    """Calibrate on ``images`` (uint8 [B, C, H, W]) and return the integer model."""
    model = build_reference(spec, weights)
    stats = calibrate(model, images, len(spec.tasks))
    qz = _Q(spec, weights, stats)
    res_names = ["embed"] + [f"blocks.{i}.res{j}" for i in range(spec.model.depth) for j in (1, 2)]
    s_r = max(stats[n] for n in res_names) / A.smax(spec.quant.residual_bits)
    qz.scales["residual"] = s_r
    _embed(qz, s_r)
    for i in range(spec.model.depth):
        _block(qz, i, s_r)
    if spec.model.final_norm:
        qz.layernorm("norm", "norm", s_r, qz.act_scale("norm"))
    qz.scales["out"] = qz.scales["norm"] if spec.model.final_norm else s_r
    return QuantModel(spec, qz.t, qz.scales, synthetic, source)


def _embed(qz: _Q, s_r: float) -> None:
    m, w = qz.spec.model, qz.w
    std = np.asarray(m.std, np.float64)[None, :, None, None]
    mean = np.asarray(m.mean, np.float64)[None, :, None, None]
    conv = w["patch_embed.proj.weight"].astype(np.float64)
    folded = (conv / (255.0 * std)).reshape(m.embed_dim, -1)
    bias = w["patch_embed.proj.bias"] - (conv * mean / std).sum(axis=(1, 2, 3))
    qz.w = {**w, "_patch.weight": folded, "_patch.bias": bias}
    qz.linear("patch", "_patch", 1.0, "patch", lambda acc: acc / s_r)
    top = A.smax(qz.q.residual_bits)
    pos = np.clip(np.round(w["pos_embed"][0] / s_r), -top - 1, top)
    qz.t["pos"] = pos.astype(np.int16)
    if m.class_token:
        qz.t["cls"] = np.clip(np.round(w["cls_token"][0, 0] / s_r), -top - 1, top).astype(np.int16)


def _block(qz: _Q, i: int, s_r: float) -> None:
    p, wp = f"blocks.{i}", f"blocks.{i}"
    s_a1, s_a2 = qz.act_scale(f"{p}.ln1"), qz.act_scale(f"{p}.ln2")
    s_q, s_k, s_v = (qz.act_scale(f"{p}.{n}") for n in "qkv")
    qz.scales[f"{p}.attn"] = s_v
    qz.scales[f"{p}.res1"] = qz.scales[f"{p}.res2"] = s_r
    d = qz.spec.model.embed_dim
    qz.layernorm(f"{p}.ln1", f"{wp}.norm1", s_r, s_a1)
    target = np.repeat([s_q, s_k, s_v], d)
    if f"{wp}.attn.qkv.bias" not in qz.w:
        qz.w[f"{wp}.attn.qkv.bias"] = np.zeros(3 * d, np.float32)
    qz.linear(f"{p}.qkv", f"{wp}.attn.qkv", s_a1, "qkv", lambda acc: acc / target)
    dh = qz.spec.model.head_dim
    logit = s_q * s_k / math.sqrt(dh) / LN2 * (1 << qz.q.exp_frac_bits)
    qz.mult(f"{p}.logit", logit)
    qz.linear(f"{p}.proj", f"{wp}.attn.proj", s_v, "proj", lambda acc: acc / s_r)
    qz.layernorm(f"{p}.ln2", f"{wp}.norm2", s_r, s_a2)
    s_h = qz.act_scale(f"{p}.hidden")
    gelu_unit = 2.0**-qz.q.gelu_frac_bits
    qz.mult(f"{p}.gelu", gelu_unit / s_h)
    if qz.spec.is_moe(i):
        _moe(qz, i, s_a2, s_h, s_r)
    else:
        qz.linear(f"{p}.fc1", f"{wp}.mlp.fc1", s_a2, "fc1", lambda acc: acc / gelu_unit)
        qz.linear(f"{p}.fc2", f"{wp}.mlp.fc2", s_h, "fc2", lambda acc: acc / s_r)


def _moe(qz: _Q, i: int, s_a: float, s_h: float, s_r: float) -> None:
    p, w, q = f"blocks.{i}", qz.w, qz.q
    fb = 1 << q.exp_frac_bits
    for t in range(len(qz.spec.tasks)):
        wg = w[f"{p}.mlp.gate.{t}.w_gate"].T  # [E, D]
        wq, sw = qz.weight(wg)
        qz.t[f"{p}.gate.{t}.w"] = wq
        qz.mult(f"{p}.gate.{t}", s_a * sw[:, 0] / LN2 * fb)
    gelu_unit = 2.0**-q.gelu_frac_bits
    w1, b1 = w[f"{p}.mlp.experts.htoh4.weight"], w[f"{p}.mlp.experts.htoh4.bias"]
    wq1, sw1 = qz.weight(w1)  # [E, H, D], per (expert, channel)
    qz.t[f"{p}.efc1.w"] = wq1
    qz.t[f"{p}.efc1.b"] = qz.bias(b1, s_a * sw1[..., 0], "expert_fc1")
    qz.mult(f"{p}.efc1", s_a * sw1[..., 0] / gelu_unit)
    w2, b2 = w[f"{p}.mlp.experts.h4toh.weight"], w[f"{p}.mlp.experts.h4toh.bias"]
    wq2, sw2 = qz.weight(w2, axis=(0, 2))  # one scale per output channel, shared by experts
    qz.t[f"{p}.efc2.w"] = wq2
    qz.t[f"{p}.efc2.b"] = qz.bias(b2, s_h * sw2[..., 0], "expert_fc2")
    gate_unit = 2.0**-q.gate_weight_bits
    qz.mult(f"{p}.moe", s_h * sw2[0, :, 0] * gate_unit / s_r)
