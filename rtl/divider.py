"""Rounded division of several numerators by one denominator (arithmetic.div_round), saturated.

Contract, per lane ``i`` (``b > 0``, ``Q`` = ``q_bits``)::

    o_i = min(max(div_round(a_i, b), lo), lo + 2^Q - 1)
    div_round(a, b) = floor((2a + b) / (2b))                   # a / b rounded half up

with ``lo = -2^(Q-1)`` when ``signed_out`` (then ``o = clamp_Q(div_round(a, b))``, which is
arithmetic.normalize_attention) and ``lo = 0`` otherwise (the MoE gate weights
``div_round(p * 2^W, L)``, which never reach the top when ``p <= L`` and ``Q = W + 1``).

Schedule: restoring long division of the biased numerator ``n_i = 2a_i + b - 2b * lo`` by
``d = 2b``. The ``start`` cycle registers the raw ``a_i`` and ``b`` (no logic behind the
caller's selection of them); the next forms ``n_i`` (one three-input sum: ``-2b * lo`` is
``b * 2^Q`` or 0) and ``d``; the third registers the saturation of each lane (``n_i < 0``: low;
``n_i >> Q >= d``: high). Then Q cycles, one quotient bit each from bit Q-1 down: an
unsaturated lane holds ``n_i = R * 2^Q + low`` with the partial remainder ``R < d``; a step
forms ``R2 = 2R + (top bit of low)`` and subtracts ``d`` when the difference is not negative,
so each cycle has one subtraction as wide as ``d`` + 1 bit and no shifter (the register
shifts left by one). ``done`` is high in the last of them; ``o`` holds the result from the
next cycle until the next ``start``. Latency: :attr:`DivRound.LATENCY` + Q = 3 + Q cycles.

Members: ``start`` (in, one cycle; ignored while ``busy``), ``a`` (in, ``lanes`` numerators),
``b`` (in, the shared denominator), ``busy`` (out), ``done`` (out), ``o`` (out, ``lanes``
results of ``Q`` bits, signed when ``signed_out``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


class DivRound(wiring.Component):
    LATENCY = 3  # cycles besides the Q quotient-bit cycles, from start to the result

    def __init__(self, lanes: int, a_shape: Shape, b_bits: int, q_bits: int, signed_out: bool):
        self._q, self._signed = q_bits, signed_out
        a_shape = Shape.cast(a_shape)
        self._rem_bits = max(a_shape.width + 3, b_bits + q_bits + 3)
        oshape = signed(q_bits) if signed_out else unsigned(q_bits)
        super().__init__(
            {
                "start": In(1),
                "a": In(data.ArrayLayout(a_shape, lanes)),
                "b": In(unsigned(b_bits)),
                "busy": Out(1),
                "done": Out(1),
                "o": Out(data.ArrayLayout(oshape, lanes)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        q, lanes = self._q, len(self.a)
        lo = -(1 << (q - 1)) if self._signed else 0
        it = Signal(range(q + 1), name="it")
        phase = Signal(2, name="phase")  # 1: form n and d, 2: saturation tests
        den = Signal(unsigned(len(self.b) + 1), name="den")
        rem = [Signal(signed(self._rem_bits), name=f"rem{i}") for i in range(lanes)]
        quo = [Signal(unsigned(q), name=f"quo{i}") for i in range(lanes)]
        sat = [Signal(signed(2), name=f"sat{i}") for i in range(lanes)]
        m.d.comb += self.busy.eq((phase != 0) | (it != 0))
        with m.If(~self.busy & self.start):  # the raw inputs
            m.d.sync += [den.eq(self.b), phase.eq(1)]
            m.d.sync += [rem[i].eq(self.a[i]) for i in range(lanes)]
        with m.If(phase == 1):  # den holds b, rem a: n = 2a + b - 2b * lo (lo <= 0)
            m.d.sync += [den.eq(den << 1), phase.eq(2)]
            bias = den << q if lo else 0  # -2b * lo = b * 2^q
            m.d.sync += [rem[i].eq(2 * rem[i] + den + bias) for i in range(lanes)]
        with m.If(phase == 2):
            m.d.sync += [phase.eq(0), it.eq(q)]
            for i in range(lanes):
                hi = (rem[i] >> q) >= den
                m.d.sync += [sat[i].eq(Mux(rem[i] < 0, -1, Mux(hi, 1, 0))), quo[i].eq(0)]
        with m.If(it != 0):
            m.d.comb += self.done.eq(it == 1)
            m.d.sync += it.eq(it - 1)
            for i in range(lanes):
                self._step(m, rem[i], quo[i], den, f"{i}")
        hi = lo + (1 << q) - 1
        for i in range(lanes):
            o = Mux(sat[i] == 1, hi, Mux(sat[i] == -1, lo, quo[i] + lo))
            m.d.comb += self.o[i].eq(o)
        return m

    def _step(self, m, rem, quo, den, tag: str) -> None:
        """One quotient bit: ``rem = R * 2^Q + low`` becomes ``R' * 2^Q + 2 low``."""
        q, nd = self._q, len(den)
        r2 = rem[q - 1 : q + nd]  # 2R + the top bit of low (< 2d: nd + 1 bits)
        diff = Signal(signed(nd + 2), name=f"diff{tag}")
        m.d.comb += diff.eq(r2 - den)
        keep = ~diff[-1]  # 2R + bit >= d
        r_new = Mux(keep, diff[:nd], r2[:nd])
        m.d.sync += [rem.eq(Cat(Const(0, 1), rem[: q - 1], r_new)), quo.eq(Cat(keep, quo[:-1]))]
