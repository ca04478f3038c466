"""Rounded division of several numerators by one denominator (arithmetic.div_round), saturated.

Contract, per lane ``i`` (``b > 0``, ``Q`` = ``q_bits``)::

    o_i = min(max(div_round(a_i, b), lo), lo + 2^Q - 1)
    div_round(a, b) = floor((2a + b) / (2b))                   # a / b rounded half up

with ``lo = -2^(Q-1)`` when ``signed_out`` (then ``o = clamp_Q(div_round(a, b))``, which is
arithmetic.normalize_attention) and ``lo = 0`` otherwise (the MoE gate weights
``div_round(p * 2^W, L)``, which never reach the top when ``p <= L`` and ``Q = W + 1``).

Schedule: restoring division of the biased numerator ``n_i = 2a_i + b - 2b * lo`` by
``2b``. The ``start`` cycle registers ``n_i``, ``2b`` and the saturation of each lane
(``n_i < 0``: low; ``n_i >= 2b * 2^Q``: high); then Q cycles, one quotient bit each from
bit Q-1 down. ``done`` is high in the last of them; ``o`` holds the result from the next
cycle until the next ``start``. Latency: 1 + Q cycles.

Members: ``start`` (in, one cycle; ignored while ``busy``), ``a`` (in, ``lanes`` numerators),
``b`` (in, the shared denominator), ``busy`` (out), ``done`` (out), ``o`` (out, ``lanes``
results of ``Q`` bits, signed when ``signed_out``).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


class DivRound(wiring.Component):
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
        den = Signal(unsigned(len(self.b) + 1), name="den")
        it = Signal(range(q + 1), name="it")
        rem = [Signal(signed(self._rem_bits), name=f"rem{i}") for i in range(lanes)]
        quo = [Signal(unsigned(q), name=f"quo{i}") for i in range(lanes)]
        sat = [Signal(signed(2), name=f"sat{i}") for i in range(lanes)]
        m.d.comb += self.busy.eq(it != 0)
        with m.If(~self.busy & self.start):
            dn = self.b << 1
            m.d.sync += [den.eq(dn), it.eq(q)]
            for i in range(lanes):
                num = 2 * self.a[i] + self.b - dn * lo
                m.d.sync += [rem[i].eq(num), quo[i].eq(0)]
                m.d.sync += sat[i].eq(Mux(num < 0, -1, Mux(num >= (dn << q), 1, 0)))
        with m.If(self.busy):
            m.d.comb += self.done.eq(it == 1)
            m.d.sync += it.eq(it - 1)
            sh = (it - 1)[: len(it)]
            step = den << sh
            for i in range(lanes):
                with m.If(rem[i] >= step):
                    m.d.sync += [rem[i].eq(rem[i] - step), quo[i].eq(quo[i] | (Const(1, q) << sh))]
        hi = lo + (1 << q) - 1
        for i in range(lanes):
            o = Mux(sat[i] == 1, hi, Mux(sat[i] == -1, lo, quo[i] + lo))
            m.d.comb += self.o[i].eq(o)
        return m
