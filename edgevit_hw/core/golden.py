"""The bit-exact golden model: the integer forward pass that defines every output bit.

It reads only the quantized model and the arithmetic widths (``derive_arith``), never the
hardware section: the MAC array shape or the attention row count cannot change a bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import PIXEL_BITS, ArithParams, derive_arith
from edgevit_hw.core.qmodel import QuantModel

I64 = np.int64


@dataclass
class GoldenResult:
    """Output tokens [N, D] (int8 after the final LayerNorm, else the int16 residual) and, when
    asked for, every intermediate tensor by name in execution order."""

    tokens: np.ndarray
    trace: dict[str, np.ndarray] = field(default_factory=dict)


def patchify(pixels: np.ndarray, patch: int) -> np.ndarray:
    """[C, H, W] pixels -> [patches, C*patch*patch], patches in row-major grid order, each
    flattened in (channel, row, column) order like the convolution weight."""
    c, h, w = pixels.shape
    gh, gw = h // patch, w // patch
    x = pixels.reshape(c, gh, patch, gw, patch).transpose(1, 3, 0, 2, 4)
    return x.reshape(gh * gw, c * patch * patch).astype(I64)


def expert_queues(idx: np.ndarray, experts: int) -> list[np.ndarray]:
    """Patch reordering: for each expert, the (token, slot) pairs routed to it, in token order
    (slot = rank of the expert in that token's top-k). [count, 2] int64 per expert."""
    tok, slot = np.nonzero(np.ones_like(idx, dtype=bool))
    flat = idx.reshape(-1)
    return [np.stack([tok[flat == e], slot[flat == e]], axis=1) for e in range(experts)]


class _Run:
    """One forward pass; methods are the datapath stages, in order."""

    def __init__(self, qm: QuantModel, ap: ArithParams, task: int, trace: bool):
        self.qm, self.ap, self.task = qm, ap, task
        self.trace: dict[str, np.ndarray] | None = {} if trace else None

    def keep(self, name: str, value: np.ndarray) -> np.ndarray:
        if self.trace is not None:
            self.trace[name] = value
        return value

    def requant(self, acc, prefix: str, bits: int):
        return A.requant(acc, self.qm[f"{prefix}.m"], self.qm[f"{prefix}.s"], bits)

    def linear(self, x, prefix: str, x_bits: int | None = None, bias: bool = True):
        w = self.qm[f"{prefix}.w"]
        b = self.qm[f"{prefix}.b"] if bias else 0
        return A.linear(x, w, b, x_bits or self.ap.act_bits, self.ap.weight_bits)

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        qm, ap = self.qm, self.ap
        acc = self.linear(patchify(pixels, qm.spec.model.patch), "patch", PIXEL_BITS)
        x = self.requant(acc, "patch", ap.res_bits)
        if qm.spec.model.class_token:
            x = np.concatenate([qm["cls"][None].astype(I64), x])
        return self.keep("embed", A.clamp(x + qm["pos"], ap.res_bits))

    def layernorm(self, x, prefix: str, bits: int):
        qm = self.qm
        return A.layernorm_q(
            x, qm[f"{prefix}.g"], qm[f"{prefix}.b"], int(qm[f"{prefix}.eps"][0]),
            self.ap.ln_norm_frac_bits, qm[f"{prefix}.m"], qm[f"{prefix}.s"], bits,
        )  # fmt: skip

    def attention(self, i: int, a: np.ndarray) -> np.ndarray:
        ap, p = self.ap, f"blocks.{i}"
        qkv = self.requant(self.linear(a, f"{p}.qkv"), f"{p}.qkv", ap.act_bits)
        n, h, dh = ap.tokens, ap.heads, ap.head_dim
        q, k, v = qkv.reshape(n, 3, h, dh).transpose(1, 2, 0, 3)  # each [H, N, dh]
        for name, val in (("q", q), ("k", k), ("v", v)):
            self.keep(f"{p}.{name}", val)
        score = A.matmul_exact(q, k, ap.act_bits, ap.act_bits)  # [H, N, N], never stored in HW
        t = self.requant(score, f"{p}.logit", ap.logit_bits)
        acc, l = A.online_softmax(t, v, ap.exp_frac_bits, ap.exp_out_bits)
        o = A.normalize_attention(acc, l, ap.act_bits)  # [H, N, dh]
        return self.keep(f"{p}.attn", o.transpose(1, 0, 2).reshape(n, h * dh))

    def gelu_hidden(self, acc, fc: str, gelu: str):
        ap = self.ap
        u = self.requant(acc, fc, ap.gelu_in_bits)
        return self.requant(A.gelu_q(u, ap.gelu_frac_bits), gelu, ap.act_bits)

    def mlp(self, i: int, a: np.ndarray) -> np.ndarray:
        p = f"blocks.{i}"
        h = self.keep(
            f"{p}.hidden", self.gelu_hidden(self.linear(a, f"{p}.fc1"), f"{p}.fc1", f"{p}.gelu")
        )
        return self.linear(h, f"{p}.fc2"), f"{p}.fc2"

    def moe(self, i: int, a: np.ndarray):
        ap, qm, p = self.ap, self.qm, f"blocks.{i}"
        g = f"{p}.gate.{self.task}"
        logits = A.linear(a, qm[f"{g}.w"], 0, ap.act_bits, ap.weight_bits)
        t = self.keep(f"{p}.gate_logits", self.requant(logits, g, ap.logit_bits))
        idx, w = A.gate_q(t, ap.top_k, ap.exp_frac_bits, ap.exp_out_bits, ap.gate_weight_bits)
        self.keep(f"{p}.gate_idx", idx)
        self.keep(f"{p}.gate_w", w)
        acc2 = np.zeros((ap.tokens, ap.top_k, ap.embed_dim), I64)
        for e, queue in enumerate(expert_queues(idx, ap.experts)):
            if len(queue):
                acc2[queue[:, 0], queue[:, 1]] = self.expert(i, e, a[queue[:, 0]])
        return self.keep(f"{p}.moe_acc", A.moe_combine(acc2, w)), f"{p}.moe"

    def expert(self, i: int, e: int, rows: np.ndarray) -> np.ndarray:
        ap, qm, p = self.ap, self.qm, f"blocks.{i}"
        acc1 = A.linear(
            rows, qm[f"{p}.efc1.w"][e], qm[f"{p}.efc1.b"][e], ap.act_bits, ap.weight_bits
        )
        u = A.requant(acc1, qm[f"{p}.efc1.m"][e], qm[f"{p}.efc1.s"][e], ap.gelu_in_bits)
        h = self.requant(A.gelu_q(u, ap.gelu_frac_bits), f"{p}.gelu", ap.act_bits)
        return A.linear(h, qm[f"{p}.efc2.w"][e], qm[f"{p}.efc2.b"][e], ap.act_bits, ap.weight_bits)

    def block(self, i: int, x: np.ndarray) -> np.ndarray:
        ap, p = self.ap, f"blocks.{i}"
        a = self.keep(f"{p}.ln1", self.layernorm(x, f"{p}.ln1", ap.act_bits))
        acc = self.linear(self.attention(i, a), f"{p}.proj")
        x = self.keep(f"{p}.res1", self.residual(x, acc, f"{p}.proj"))
        a = self.keep(f"{p}.ln2", self.layernorm(x, f"{p}.ln2", ap.act_bits))
        acc, rq = self.moe(i, a) if self.qm.spec.is_moe(i) else self.mlp(i, a)
        return self.keep(f"{p}.res2", self.residual(x, acc, rq))

    def residual(self, x, acc, prefix: str):
        return A.residual_add(
            x, acc, self.qm[f"{prefix}.m"], self.qm[f"{prefix}.s"], self.ap.res_bits
        )


def golden_forward(
    qm: QuantModel, pixels: np.ndarray, task: int = 0, trace: bool = False
) -> GoldenResult:
    """Run one frame. ``pixels`` is a [C, H, W] uint8 image; ``task`` selects the router."""
    spec = qm.spec
    m = spec.model
    want = (m.image.channels, m.image.height, m.image.width)
    if pixels.shape != want:
        raise ValueError(f"pixels must have shape {want}, not {pixels.shape}")
    if not 0 <= task < len(spec.tasks):
        raise ValueError(f"task must be in 0..{len(spec.tasks) - 1}, not {task}")
    run = _Run(qm, derive_arith(spec), task, trace)
    x = run.embed(np.asarray(pixels))
    for i in range(m.depth):
        x = run.block(i, x)
    if m.final_norm:
        x = run.keep("norm", run.layernorm(x, "norm", run.ap.act_bits))
    return GoldenResult(tokens=x.astype(I64), trace=run.trace or {})
