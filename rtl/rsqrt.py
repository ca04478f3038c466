"""Integer reciprocal square root (arithmetic.rsqrt_q) by a bit-serial search.

Contract (:func:`edgevit_hw.core.arithmetic.rsqrt_q`), for ``v >= 1``: ``k = bitlen(v)``,
``p = k + (k mod 2)``, ``u = v << (32 - p)`` if ``p <= 32`` else ``v >> (p - 32)`` (so
``u`` in ``[2^30, 2^32)``), ``m = max{m : m^2 * u <= 2^62}`` (in ``(2^15, 2^16]``); the shift
of the result is ``sh = 15 + p/2`` (the user keeps ``p``).

Schedule: the ``start`` cycle registers ``p`` and ``u`` from ``v``; then 2 cycles per bit for
the 17 bits of ``m``, greedy from bit 16 down (``m^2 u`` is monotonic in ``m``, so the greedy
result is the maximum): SQ registers ``cand^2``, CMP keeps ``cand`` if ``cand^2 * u <= 2^62``.
``done`` is high in the last CMP cycle; ``m`` and ``p`` hold the result from the next cycle
until the next ``start``. Latency: 1 + 2 * 17 cycles.

Members: ``start`` (in, one cycle; ignored while ``busy``), ``v`` (in, sampled on ``start``),
``busy`` (out), ``done`` (out), ``m`` (out, 17 bits), ``p`` (out, even, ``2 <= p <= 64``).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.layouts import SHIFT_BITS

from edgevit_hw.core import arithmetic as A


def bitlen(v) -> object:
    """Index of the highest set bit plus one (0 for v == 0): a priority encoder as a balanced
    tree of multiplexers, ``log2(len(v))`` deep."""
    if len(v) == 1:
        return v[0]
    half = len(v) // 2
    return Mux(v[half:].any(), bitlen(v[half:]) + half, bitlen(v[:half]))


def rsqrt_operand(v) -> tuple[object, object]:
    """``(p, u)`` of rsqrt_q as combinational expressions: ``p = k + (k mod 2)`` with
    ``k = bitlen(v)``, ``u = v << (32 - p)`` or ``v >> (p - 32)``, 32 bits."""
    k = bitlen(v)
    p = k + k[0]
    lsh = (32 - p)[:SHIFT_BITS]
    rsh = (p - 32)[:SHIFT_BITS]
    return p, Mux(p <= 32, v << lsh, v >> rsh)[: A.RSQRT_U_BITS]


class RsqrtQ(wiring.Component):
    """arithmetic.rsqrt_q for ``v`` of ``v_bits`` unsigned bits (at most 64)."""

    def __init__(self, v_bits: int):
        self._v_bits = v_bits
        super().__init__(
            {
                "start": In(1),
                "v": In(unsigned(v_bits)),
                "busy": Out(1),
                "done": Out(1),
                "m": Out(unsigned(A.RSQRT_M_BITS)),
                "p": Out(range(v_bits + 2)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        u = Signal(unsigned(A.RSQRT_U_BITS))
        cand_sq = Signal(unsigned(2 * A.RSQRT_M_BITS))
        bit = Signal(range(A.RSQRT_M_BITS + 1))
        cand = self.m | (Const(1, A.RSQRT_M_BITS) << bit)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    p, uv = rsqrt_operand(self.v)
                    m.d.sync += [self.p.eq(p), u.eq(uv)]
                    m.d.sync += [self.m.eq(0), bit.eq(A.RSQRT_M_BITS - 1)]
                    m.next = "SQ"
            with m.State("SQ"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += cand_sq.eq(cand * cand)
                m.next = "CMP"
            with m.State("CMP"):
                m.d.comb += self.busy.eq(1)
                with m.If(cand_sq * u <= (1 << 62)):
                    m.d.sync += self.m.eq(cand)
                m.d.sync += bit.eq(bit - 1)
                m.next = "SQ"
                with m.If(bit == 0):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m
