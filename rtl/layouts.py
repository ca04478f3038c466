"""Stream payload layouts, defined once and shared by the RTL and the Python packing code.

Every width below is a derived width from :class:`HwParams` (or the maximum of several, when
one datapath serves several matrix kinds); nothing is recomputed from the spec. ``pack`` and
``unpack`` convert between plain Python dicts/lists of ints and the flat integer a stream's
``payload`` port carries in the exported Verilog (two's complement for signed fields).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib.data import ArrayLayout, Layout, StructLayout

from edgevit_hw.core.derive import SHIFT_BITS, HwParams
from edgevit_hw.program.isa import Epi

__all__ = ["SHIFT_BITS"]  # re-exported for the units


class EpiMode(enum.IntEnum):
    """Epilogue of the compute unit, per tile (``a = acc + bias``; see rtl/epilogue.py)."""

    ACC = 0  # y = a                                    (exact accumulator out)
    REQUANT = 1  # y = requant(a, m, s, clamp)
    GELU = 2  # y = requant(gelu_q(requant(a, m, s, gelu_in)), m2, s2, act)
    RESIDUAL = 3  # y = residual_add(res, a, m, s, res_bits)
    MOE_ACC = 4  # y = part + gw * a                     (moe_combine, one slot)
    MOE_RES = 5  # y = residual_add(res, part + gw * a, m, s, res_bits)


class EpiClamp(enum.IntEnum):
    """Saturation width of the REQUANT mode."""

    ACT = 0
    RES = 1
    LOGIT = 2
    GELU_IN = 3


# The program's epilogue kinds (edgevit_hw.program.isa.Epi, the one enumeration of HLS and
# RTL) as the compute unit's datapath modes; the MoE kind is the MOE_ACC mode (gate-weighted
# accumulation), and the program's MOE_COMBINE instruction closes it into the residual.
EPI_MODES = {
    Epi.REQUANT_ACT: (EpiMode.REQUANT, EpiClamp.ACT),
    Epi.REQUANT_LOGIT: (EpiMode.REQUANT, EpiClamp.LOGIT),
    Epi.GELU: (EpiMode.GELU, EpiClamp.ACT),
    Epi.RESIDUAL: (EpiMode.RESIDUAL, EpiClamp.RES),
    Epi.MOE: (EpiMode.MOE_ACC, EpiClamp.ACT),
}


@dataclass(frozen=True)
class Widths:
    """The derived widths the RTL uses, read from HwParams (no width is computed here)."""

    rows: int
    cols: int
    x: int
    w: int
    acc: int
    act: int
    res: int
    mult: int
    moe_acc: int
    gate_w: int
    out: int

    @classmethod
    def of(cls, hw: HwParams) -> Widths:
        a = hw.arith
        return cls(
            rows=hw.mac_rows,
            cols=hw.mac_cols,
            x=a.x_bits,
            w=a.weight_bits,
            acc=a.acc_bits,
            act=a.act_bits,
            res=a.res_bits,
            mult=a.mult_bits,
            moe_acc=a.moe_acc_bits,
            gate_w=a.gate_weight_word_bits,
            out=a.epi_out_bits,
        )

    def clamp_bits(self, hw: HwParams) -> dict[EpiClamp, int]:
        a = hw.arith
        return {
            EpiClamp.ACT: a.act_bits,
            EpiClamp.RES: a.res_bits,
            EpiClamp.LOGIT: a.logit_bits,
            EpiClamp.GELU_IN: a.gelu_in_bits,
        }


def _arr(shape: Shape, n: int) -> ArrayLayout:
    return ArrayLayout(shape, n)


# ------------------------------------------------------------------------- compute unit ----


def mac_op_layout(hw: HwParams) -> StructLayout:
    """One operand vector pair: ``x`` [R] activations, ``w`` [C] weights; ``first`` starts a
    new accumulation (acc = x*w), ``last`` ends it (the R x C tile goes to the epilogue)."""
    w = Widths.of(hw)
    return StructLayout(
        {"x": _arr(signed(w.x), w.rows), "w": _arr(signed(w.w), w.cols), "first": 1, "last": 1}
    )


def epi_cfg_layout(hw: HwParams) -> StructLayout:
    """Per-tile epilogue constants (one beat per tile): mode, per-column bias/m/s, and the
    second requantization (m2, s2) of GELU mode."""
    w = Widths.of(hw)
    return StructLayout(
        {
            "mode": unsigned(3),
            "clamp": unsigned(2),
            "bias": _arr(signed(w.acc), w.cols),
            "m": _arr(unsigned(w.mult), w.cols),
            "s": _arr(unsigned(SHIFT_BITS), w.cols),
            "m2": unsigned(w.mult),
            "s2": unsigned(SHIFT_BITS),
        }
    )


def epi_side_layout(hw: HwParams) -> StructLayout:
    """Per-row side input of the RESIDUAL / MOE_* modes: residual ``res`` [C], running MoE
    accumulator ``part`` [C], gate weight ``gw`` of the row's token."""
    w = Widths.of(hw)
    return StructLayout(
        {
            "res": _arr(signed(w.res), w.cols),
            "part": _arr(signed(w.moe_acc), w.cols),
            "gw": unsigned(w.gate_w),
        }
    )


def epi_out_layout(hw: HwParams) -> StructLayout:
    """One output row of a tile (C values); ``last`` marks the tile's last row."""
    w = Widths.of(hw)
    return StructLayout({"y": _arr(signed(w.out), w.cols), "last": 1})


# ---------------------------------------------------------------------------- attention ----


def attn_q_layout(hw: HwParams) -> StructLayout:
    a = hw.arith
    return StructLayout({"q": _arr(signed(a.act_bits), a.head_dim)})


def attn_kv_layout(hw: HwParams) -> StructLayout:
    a = hw.arith
    row = _arr(signed(a.act_bits), a.head_dim)
    return StructLayout({"k": row, "v": row, "last": 1})


def attn_out_layout(hw: HwParams) -> StructLayout:
    a = hw.arith
    return StructLayout({"o": _arr(signed(a.act_bits), a.head_dim)})


# ---------------------------------------------------------------------------- layernorm ----


def ln_in_layout(hw: HwParams) -> StructLayout:
    """One word of a row: L = act_lanes lanes of residual ``x``, folded gamma ``g`` and beta
    ``b`` (lane ``l`` of a row's word ``w`` is element ``w*L + l``); ``mask`` marks the valid
    lanes (all, but in the last word of a row whose embed_dim is not a multiple of L only the
    first ``embed_dim mod L``); ``last`` ends the row (the unit checks the row has exactly
    ``ceil(embed_dim / L)`` words and every mask is its position's)."""
    a, lanes = hw.arith, hw.streams.act_lanes
    return StructLayout(
        {
            "x": _arr(signed(a.res_bits), lanes),
            "g": _arr(signed(a.ln_gamma_bits), lanes),
            "b": _arr(signed(a.bias_bits), lanes),
            "mask": unsigned(lanes),
            "last": 1,
        }
    )


def ln_out_layout(hw: HwParams) -> StructLayout:
    """One word of a normalized row: ``y`` [L], ``mask`` and ``last`` as in
    :func:`ln_in_layout`."""
    lanes = hw.streams.act_lanes
    return StructLayout(
        {"y": _arr(signed(hw.arith.act_bits), lanes), "mask": unsigned(lanes), "last": 1}
    )


# ------------------------------------------------------------------------------- router ----


def router_in_layout(hw: HwParams) -> StructLayout:
    a = hw.arith
    return StructLayout({"t": _arr(signed(a.logit_bits), a.experts), "last": 1})


def router_out_layout(hw: HwParams) -> StructLayout:
    a = hw.arith
    return StructLayout(
        {
            "idx": _arr(unsigned(a.expert_index_bits), a.top_k),
            "w": _arr(unsigned(a.gate_weight_word_bits), a.top_k),
            "last": 1,
        }
    )


def queue_out_layout(hw: HwParams) -> StructLayout:
    """One queue entry: ``expert``, ``token``, ``slot`` (rank in the token's top-k);
    ``last`` marks the frame's final entry."""
    a = hw.arith
    return StructLayout(
        {
            "expert": unsigned(a.expert_index_bits),
            "token": unsigned(a.token_index_bits),
            "slot": unsigned(a.slot_bits),
            "last": 1,
        }
    )


# ------------------------------------------------------------------------ pack / unpack ----


def _pack(layout, value) -> int:
    if isinstance(layout, StructLayout):
        out = 0
        for name, field in layout:
            out |= _pack(field.shape, value[name]) << field.offset
        return out
    if isinstance(layout, ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        out = 0
        for i, v in enumerate(value):
            out |= _pack(layout.elem_shape, v) << (i * width)
        return out
    shape = Shape.cast(layout)
    v = int(value)
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    hi = (1 << (shape.width - (1 if shape.signed else 0))) - 1
    if not lo <= v <= hi:
        raise ValueError(f"value {v} does not fit {shape}")
    return v & ((1 << shape.width) - 1)


def _unpack(layout, bits: int):
    if isinstance(layout, StructLayout):
        return {name: _unpack(f.shape, bits >> f.offset) for name, f in layout}
    if isinstance(layout, ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        return [_unpack(layout.elem_shape, bits >> (i * width)) for i in range(layout.length)]
    shape = Shape.cast(layout)
    v = bits & ((1 << shape.width) - 1)
    if shape.signed and v >> (shape.width - 1):
        v -= 1 << shape.width
    return v


def pack(layout: Layout, value) -> int:
    """Dict (nested lists for arrays) -> the payload integer; raises if a field overflows."""
    return _pack(layout, value)


def unpack(layout: Layout, bits: int):
    """Payload integer -> dict of Python ints (signed fields sign-extended)."""
    return _unpack(layout, int(bits))
