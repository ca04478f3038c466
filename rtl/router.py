"""MoE router: gate logits in, top-k experts and their gate weights out (arithmetic.gate_q).

Per token (``t`` [E] log2-domain logits, ``F`` = exp_frac_bits, ``O`` = exp_out_bits,
``W`` = gate_weight_bits):

1. RANK (1 cycle): ``rank_e = #{j : t_j > t_e} + #{j < e : t_j == t_e}`` -- the position of e
   in the stable descending sort (ties to the lower index); ``idx[r]`` = the e of rank r < k.
2. EXP (E cycles, one exp2 table): ``mx = ceil(t_idx[0] / 2^F)``, ``p_e = exp2_q(t_e - mx 2^F)``,
   ``L = sum_e p_e``; the p of each chosen expert is kept.
3. DIV (1 + W + 1 cycles, k lanes of :class:`rtl.divider.DivRound`):
   ``w_r = div_round(p_r 2^W, L)`` = ``floor((p_r 2^(W+1) + L) / (2L))`` by restoring
   division (``w_r <= 2^W``: W + 1 unsigned quotient bits never saturate).
4. OUT: one beat ``(idx [k], w [k], last)``; ``last`` is copied from the input beat.

Members: ``inp`` (sink, :func:`rtl.layouts.router_in_layout`), ``out`` (source,
:func:`rtl.layouts.router_out_layout`). Throughput: E + W + 5 cycles per token.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.attention import exp2_q, exp2_rom
from edgevit_hw.rtl.divider import DivRound
from edgevit_hw.rtl.layouts import router_in_layout, router_out_layout

from edgevit_hw.core.derive import HwParams


def ranks(t: list, e: int):
    """Stable descending rank of each element (ties: lower index ranks first)."""
    out = []
    for i in range(e):
        terms = [(t[j] > t[i]) if j > i else (t[j] >= t[i]) for j in range(e) if j != i]
        total = Const(0, range(e))
        for term in terms:
            total = total + term
        out.append(total)
    return out


def topk_lower_index(t: list, k: int, idx_bits: int) -> list:
    """arithmetic.topk_lower_index of the logits ``t`` (one Value per expert), combinational:
    ``idx[r]`` = the expert of stable descending rank ``r`` (ties to the lower index),
    ``r < k``, each ``idx_bits`` wide."""
    rk = ranks(t, len(t))
    out = []
    for r in range(k):
        sel = Const(0, unsigned(idx_bits))
        for e in range(len(t)):
            sel = sel | Mux(rk[e] == r, e, 0)
        out.append(sel)
    return out


class MoeRouter(wiring.Component):
    def __init__(self, hw: HwParams):
        self._hw = hw
        super().__init__(
            {
                "inp": In(stream.Signature(router_in_layout(hw))),
                "out": Out(stream.Signature(router_out_layout(hw))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        a = self._hw.arith
        E, K, F, O, W = a.experts, a.top_k, a.exp_frac_bits, a.exp_out_bits, a.gate_weight_bits
        t = [Signal(signed(a.logit_bits), name=f"t{e}") for e in range(E)]
        ta = Array(t)
        last = Signal()
        idx = [Signal(unsigned(a.expert_index_bits), name=f"idx{r}") for r in range(K)]
        mx = Signal(signed(a.logit_bits - F + 1))
        e_it = Signal(range(E + 1))
        ell = Signal(unsigned(a.gate_sum_bits))
        pch = [Signal(unsigned(O + 1), name=f"pch{r}") for r in range(K)]
        m.submodules.div = div = DivRound(K, unsigned(O + 1 + W), a.gate_sum_bits, W + 1,
                                          signed_out=False)  # fmt: skip
        m.d.comb += [div.b.eq(ell), *(div.a[r].eq(pch[r] << W) for r in range(K))]
        rd = exp2_rom(m, "exp2_rom", F, O)
        pe = exp2_q(m, rd, (ta[e_it] - (mx << F))[: a.logit_bits + 2].as_signed(), F, O)
        with m.FSM():
            with m.State("IN"):
                m.d.comb += self.inp.ready.eq(1)
                with m.If(self.inp.valid):
                    m.d.sync += [t[e].eq(self.inp.payload.t[e]) for e in range(E)]
                    m.d.sync += last.eq(self.inp.payload.last)
                    m.next = "RANK"
            with m.State("RANK"):
                top = topk_lower_index(t, K, a.expert_index_bits)
                m.d.sync += [idx[r].eq(top[r]) for r in range(K)]
                m.next = "MAX"
            with m.State("MAX"):
                top = ta[idx[0]]
                m.d.sync += [mx.eq(-((-top) >> F)), e_it.eq(0), ell.eq(0)]
                m.next = "EXP"
            with m.State("EXP"):
                m.d.sync += [ell.eq(ell + pe), e_it.eq(e_it + 1)]
                for r in range(K):
                    with m.If(idx[r] == e_it):
                        m.d.sync += pch[r].eq(pe)
                with m.If(e_it == E - 1):
                    m.next = "DIVSET"
            with m.State("DIVSET"):
                m.d.comb += div.start.eq(1)
                m.next = "DIV"
            with m.State("DIV"):
                with m.If(div.done):
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.out.valid.eq(1)
                m.d.comb += [self.out.payload.idx[r].eq(idx[r]) for r in range(K)]
                m.d.comb += [self.out.payload.w[r].eq(div.o[r]) for r in range(K)]
                m.d.comb += self.out.payload.last.eq(last)
                with m.If(self.out.ready):
                    m.next = "IN"
        return m
