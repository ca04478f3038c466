"""Integer reciprocal square root (arithmetic.rsqrt_q), fully pipelined: one operand per cycle.

Contract (:func:`edgevit_hw.core.arithmetic.rsqrt_q`), for ``v >= 1``: ``k = bitlen(v)``,
``p = k + (k mod 2)``, ``u = v << (32 - p)`` if ``p <= 32`` else ``v >> (p - 32)`` (so
``u`` in ``[2^30, 2^32)``), ``m = max{m : m^2 * u <= 2^62}`` (in ``(2^15, 2^16]``); the shift
of the result is ``sh = 15 + p/2`` (the user keeps ``p``).

Pipeline (:attr:`RsqrtQ.LATENCY` = 36 registered stages, a new operand every cycle, no
back-pressure):

1. MSB: ``h`` = index of the highest set bit of ``v`` (``k = h + 1``), a balanced tree of
   multiplexers (the index's top bit is "the upper half holds a set bit"; no adders).
2. NORM: ``p = (h | 1) + 1``, ``u`` by one barrel shift.
3. 17 bit stages of 2 cycles, ``b`` = 16 down to 0, greedy (``m^2 u`` is monotonic in ``m``,
   so the greedy result is the maximum). No multiplier: with ``R = 2^62 - m^2 u`` and
   ``B = m u``, the candidate ``m + 2^b`` fits iff ``2^(b+1) B + 2^(2b) u <= R``; then
   ``R -= 2^(b+1) B + 2^(2b) u``, ``B += 2^b u``, ``m += 2^b``.

Widths: at the input of stage ``b``, ``(m + 2^(b+1))^2 u > 2^62`` (true for ``m = 0`` at
``b = 16``, and kept by each greedy step), so ``R < 2^(b+2) m u + 2^(2b+2) u <= 2^(b+50)``;
``m sqrt(u) <= 2^31`` gives ``B = m u < 2^47``; and ``R`` is a multiple of ``2^(b+2)`` (every
earlier stage ``c`` subtracted a multiple of ``2^(c+1)``). So a stage keeps ``Rt = R >> (b+1)``
(49 bits, exact) and tests ``T = Rt - B - 2^(b-1) u >= 0`` (``b = 0``: ``T = 2(Rt - B) - u``),
a 50-bit signed difference; the next ``Rt`` is ``2T`` or ``2Rt``. Each stage splits its two
additions (``T`` and ``B + 2^b u``) at bit :data:`SPLIT`: the first cycle adds the low parts and
registers their carries, the second adds the high parts, decides and selects, so no carry
chain in a cycle is longer than 26 bits. (Checked exhaustively to 2^12 and sampled to 2^63
against rsqrt_q by tests/test_contract.py.)

Members: ``start`` (in: ``v`` is an operand this cycle), ``v`` (in), ``done`` (out: ``m`` and
``p`` are the result of the operand started ``LATENCY`` cycles earlier), ``m`` (out, 17 bits),
``p`` (out, even, ``2 <= p <= 64``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.layouts import SHIFT_BITS

from edgevit_hw.core import arithmetic as A

RT_BITS = 49  # Rt = R >> (b+1) < 2^49
B_BITS = 47  # B = m u < 2^47
SPLIT = 26  # low bits added in a stage's first cycle


def msb_index(v: Value) -> Value:
    """Index of the highest set bit of ``v`` (0 for ``v`` <= 1): ``log2`` levels of 2:1
    multiplexers over the halves, whose selects (the halves' OR) are computed in parallel."""
    n = 1 << max(1, (len(v) - 1).bit_length())
    return _msb(Cat(v, Const(0, n - len(v))), n)


def _msb(v: Value, n: int) -> Value:
    if n == 2:
        return v[1]
    hi, lo = v[n // 2 :], v[: n // 2]
    return Mux(hi.any(), Cat(_msb(hi, n // 2), Const(1, 1)), Cat(_msb(lo, n // 2), Const(0, 1)))


def rsqrt_operand(v: Value, h: Value) -> tuple[Value, Value]:
    """``(p, u)`` of rsqrt_q from ``v`` and its MSB index ``h``: ``p = k + (k mod 2) =
    (h | 1) + 1``, ``u = v << (32 - p)`` or ``v >> (p - 32)``, 32 bits."""
    p = Cat(Const(0, 1), (h >> 1) + 1)
    lsh = (32 - p)[:SHIFT_BITS]
    rsh = (p - 32)[:SHIFT_BITS]
    return p, Mux(h < 32, v << lsh, v >> rsh)[: A.RSQRT_U_BITS]


class _Regs:
    """A stage's registers (data without reset; ``valid`` with)."""

    def __init__(self, name: str, v_bits: int):
        self.valid = Signal(name=f"{name}_valid")
        self.m = Signal(A.RSQRT_M_BITS, name=f"{name}_m", reset_less=True)
        self.p = Signal(range(v_bits + 2), name=f"{name}_p", reset_less=True)
        self.u = Signal(A.RSQRT_U_BITS, name=f"{name}_u", reset_less=True)
        self.rt = Signal(RT_BITS, name=f"{name}_rt", reset_less=True)
        self.b = Signal(B_BITS, name=f"{name}_b", reset_less=True)

    def carry(self, m: Module, nxt: _Regs, *fields: str) -> None:
        m.d.sync += [getattr(nxt, f).eq(getattr(self, f)) for f in ("valid", *fields)]


class RsqrtQ(wiring.Component):
    """arithmetic.rsqrt_q for ``v`` of ``v_bits`` unsigned bits (at most 63), pipelined."""

    LATENCY = 2 + 2 * A.RSQRT_M_BITS

    def __init__(self, v_bits: int):
        self._v_bits = v_bits
        super().__init__(
            {
                "start": In(1),
                "v": In(unsigned(v_bits)),
                "done": Out(1),
                "m": Out(unsigned(A.RSQRT_M_BITS)),
                "p": Out(range(v_bits + 2)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        top = A.RSQRT_M_BITS - 1
        v1 = Signal(self._v_bits, reset_less=True)
        h1 = Signal(range(64), reset_less=True)
        go1 = Signal()
        m.d.sync += [go1.eq(self.start), v1.eq(self.v), h1.eq(msb_index(self.v))]
        st = _Regs(f"bit{top}", self._v_bits)
        p, u = rsqrt_operand(v1, h1)
        m.d.sync += [st.valid.eq(go1), st.p.eq(p), st.u.eq(u), st.m.eq(0), st.b.eq(0)]
        m.d.sync += st.rt.eq(1 << (62 - top - 1))
        for b in range(top, -1, -1):
            st = self._bit(m, b, st)
        m.d.comb += [self.done.eq(st.valid), self.m.eq(st.m), self.p.eq(st.p)]
        return m

    def _bit(self, m: Module, b: int, st: _Regs) -> _Regs:
        """Bit stage ``b`` (two cycles): the registers of the next stage (the result after
        bit 0). ``T = (Rt << k) - (B << k) - (u << j)``: ``k = 0, j = b - 1`` (``k = 1, j = 0``
        for ``b = 0``)."""
        k, j = (0, b - 1) if b else (1, 0)
        terms = (st.rt << k, st.b << k, st.u << j)
        mid = _Regs(f"bit{b}h", self._v_bits)
        st.carry(m, mid, "m", "p", "u", "rt", "b")
        # cycle 1: low parts (a 3-operand difference leaves a carry in {-2, -1, 0})
        lo = Signal(signed(SPLIT + 2), name=f"t{b}_lo")
        m.d.sync += lo.eq(terms[0][:SPLIT] - terms[1][:SPLIT] - terms[2][:SPLIT])
        bl = Signal(SPLIT + 1, name=f"b{b}_lo")
        m.d.sync += bl.eq(st.b[:SPLIT] + (st.u << b)[:SPLIT])
        # cycle 2: high parts, decision, selection
        mt = (mid.rt << k, mid.b << k, mid.u << j)
        hi = Signal(signed(50 - SPLIT), name=f"t{b}_hi")
        m.d.comb += hi.eq(mt[0][SPLIT:] - mt[1][SPLIT:] - mt[2][SPLIT:] + lo[SPLIT:].as_signed())
        keep = ~hi[-1]  # T >= 0: cand^2 * u <= 2^62
        nxt = _Regs(f"bit{b - 1}" if b else "res", self._v_bits)
        mid.carry(m, nxt, "p", "u")
        m.d.sync += nxt.m.eq(mid.m | (keep << b))
        bh = mid.b[SPLIT:] + (mid.u << b)[SPLIT:] + bl[SPLIT]
        m.d.sync += [
            nxt.rt.eq(Mux(keep, Cat(lo[:SPLIT], hi), mid.rt) << 1),
            nxt.b.eq(Mux(keep, Cat(bl[:SPLIT], bh), mid.b)),
        ]
        return nxt
