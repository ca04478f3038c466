"""Amaranth expression builders for the arithmetic contract (:mod:`edgevit_hw.core.arithmetic`).

Each builder returns a combinational expression with exactly the formula of the Python op of
the same name; the units register the results between pipeline stages.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed
from edgevit_hw.rtl.layouts import SHIFT_BITS


def smin(bits: int) -> int:
    return -(1 << (bits - 1))


def smax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def clamp(v: Value, bits: int) -> Value:
    """``clamp_bits(v)`` (arithmetic.clamp): saturate to the signed ``bits``-bit range; the
    result has shape ``signed(bits)``."""
    lo, hi = smin(bits), smax(bits)
    return Mux(v > hi, hi, Mux(v < lo, lo, v))


def half(s: Value) -> Value:
    """``2^(s-1)`` for ``s >= 1`` and 0 for ``s == 0`` (the rounding constant of round_shift)."""
    return (Const(1, 1) << s) >> 1


def round_shift(x: Value, s: Value | int) -> Value:
    """arithmetic.round_shift: ``(x + 2^(s-1)) >> s`` (arithmetic shift), ``x`` when s == 0."""
    xs = x.as_signed()
    if isinstance(s, int):
        return (xs + ((1 << s) >> 1)) >> s
    return (xs + half(s)) >> s


def requant_round(acc: Value, m: Value, s: Value) -> Value:
    """The unsaturated part of arithmetic.requant: ``(acc * m + 2^(s-1)) >> s``."""
    return round_shift(acc.as_signed() * m, s)


def ln_normalize(dr: Value, p: Value, norm_frac: int) -> Value:
    """arithmetic.ln_normalize, ``n = round_shift(d * r, sh - NF)`` with ``sh = 15 + p/2``
    (``(r, p)`` from :class:`rtl.rsqrt.RsqrtQ`): ``dr`` is the product ``d * r`` (registered
    by the caller), ``p`` the even normalization width, ``norm_frac`` = NF (at most 15)."""
    shn = (15 - norm_frac) + (p >> 1)
    return round_shift(dr, shn[:SHIFT_BITS])


def reg(m: Module, en: Value, expr: Value, name: str, shape=None, data: bool = False) -> Signal:
    """A pipeline register loaded with ``expr`` when ``en``. ``data=True``: no reset (pure
    datapath registers, which lets synthesis absorb them into DSP48E2 M/P registers)."""
    shape = shape if shape is not None else Value.cast(expr).shape()
    sig = Signal(shape, name=name, reset_less=data)
    with m.If(en):
        m.d.sync += sig.eq(expr)
    return sig


def sreg(m: Module, en: Value, expr: Value, bits: int, name: str) -> Signal:
    """A signed ``bits``-wide pipeline register (the caller guarantees the value fits)."""
    return reg(m, en, expr, name, signed(bits))
