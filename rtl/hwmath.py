"""Amaranth expression builders for the arithmetic contract (:mod:`edgevit_hw.core.arithmetic`).

Each builder returns a combinational expression with exactly the formula of the Python op of
the same name; the units register the results between pipeline stages.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from edgevit_hw.rtl.layouts import SHIFT_BITS


def smin(bits: int) -> int:
    return -(1 << (bits - 1))


def smax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def clamp(v: Value, bits: int) -> Value:
    """``clamp_bits(v)`` (arithmetic.clamp): saturate to the signed ``bits``-bit range; the
    result has shape ``signed(bits)``. ``v`` fits iff its bits from ``bits - 1`` up all equal
    its sign (a LUT tree, no comparator carry chain)."""
    v = Value.cast(v)
    sgn = v.shape().signed
    if len(v) < bits or (sgn and len(v) == bits):
        return v.as_signed() if sgn else Cat(v, Const(0, 1)).as_signed()
    top = v[bits - 1 :]
    fits = (top.all() | ~top.any()) if sgn else ~top.any()
    neg = v[-1] if sgn else Const(0, 1)
    sat = Mux(neg, Const(smin(bits), signed(bits)), Const(smax(bits), signed(bits)))
    return Mux(fits, v[:bits].as_signed(), sat)


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


def ext(v: Value, bits: int) -> Value:
    """``v`` sign- or zero-extended (per its shape) to ``bits`` bits, as raw bits."""
    v = Value.cast(v)
    pad = v[-1] if v.shape().signed else Const(0, 1)
    return Cat(v, pad.replicate(bits - len(v))) if bits > len(v) else v[:bits]


def csel_add(a: Value, b: Value, width: int) -> Value:
    """``(a + b) mod 2^width`` (``a``, ``b`` sign- or zero-extended per their shapes), as raw
    bits, by a carry-select adder: the high half's sums with carry-in 0 and 1 form beside the
    low half, whose carry picks one (half the carry chain's levels and one multiplexer), for
    loops whose update is a shift and an add."""
    a, b = ext(a, width), ext(b, width)
    lw = (width + 1) // 2
    lo = a[:lw] + b[:lw]
    hi0 = a[lw:] + b[lw:]
    hi1 = Cat(Const(1, 1), a[lw:]) + Cat(Const(1, 1), b[lw:])  # 2 (a + b + 1)
    return Cat(lo[:lw], Mux(lo[lw], hi1[1 : width - lw + 1], hi0[: width - lw]))


def select_bits(m: Module, v: Value, amount: Value, width: int, name: str) -> Signal:
    """``(v >> amount)[:width]`` (``v`` sign- or zero-extended as needed) as one multiplexer
    per output bit over every value of ``amount`` (a few LUT levels, where a binary shifter
    chains one level per bit of ``amount``)."""
    n = 1 << len(amount)
    ve = ext(v, n + width)
    out = Signal(width, name=name)
    with m.Switch(amount):
        for k in range(n):
            with m.Case(k):
                m.d.comb += out.eq(ve[k : k + width])
    return out


def above_mask(s: Value, bits, width: int) -> Value:
    """The ``hmask`` of :func:`requant_parts`: bit ``i`` (of ``width``) set iff
    ``i >= s + bits - 1`` (``bits`` an int or a Value); registered by the caller."""
    lim = s + (bits - 1)
    return Cat(*((lim <= i) for i in range(width)))


def requant_parts(m: Module, p: Value, s1, zero, hmask, bits: int, name: str) -> dict:
    """arithmetic.requant's ``clamp_bits((p + 2^(s-1)) >> s)`` for a product ``p`` without a
    wide adder, first half: ``(p + 2^(s-1)) >> s = q + r`` with ``q = p >> s`` and
    ``r = p[s-1]``; ``q`` fits ``bits`` iff the bits of ``p`` from ``s + bits - 1`` up equal
    its sign (``hmask`` = :func:`above_mask` marks them). ``s1 = s - 1`` and ``zero = (s == 0)``
    are registered by the caller. Returns ``q`` (low ``bits`` bits), ``r``, ``fits``, ``neg``."""
    neg = p[-1]
    fits = ~((p.as_unsigned() ^ neg.replicate(len(p))) & hmask).any()
    t = select_bits(m, p, s1, bits + 1, f"{name}_t")  # p[s-1], then q
    return {"q": Mux(zero, p[:bits], t[1:]), "r": ~zero & t[0], "fits": fits, "neg": neg}


def requant_finish(q, r, fits, neg, bits: int) -> Value:
    """Second half of :func:`requant_parts`: ``q + r`` saturated (a ``q`` equal to the largest
    value saturates, as ``q + r`` could overflow; an unfit ``q`` saturates by its sign)."""
    top = q[:bits] == smax(bits)
    inc = q[:bits].as_signed() + r
    return Mux(fits, Mux(top, smax(bits), inc), Mux(neg, smin(bits), smax(bits)))
