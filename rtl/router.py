"""MoE router: gate logits in, top-k experts and their gate weights out (arithmetic.gate_q).

Per token (``t`` [E] log2-domain logits, ``F`` = exp_frac_bits, ``O`` = exp_out_bits,
``W`` = gate_weight_bits):

1. RANK (3 cycles): ``rank_e = #{j : t_j > t_e} + #{j < e : t_j == t_e}`` -- the position of
   e in the stable descending sort (ties to the lower index): the comparison bits, their
   counts, then ``idx[r]`` = the e of rank r < k.
2. TOP, MAX (2 cycles): ``t = t_idx[0]``, ``mx = ceil(t / 2^F)`` =
   ``(t >> F) + (t mod 2^F != 0)``.
3. EXP (E + 3 cycles, one exp2 table, a 3-register pipeline over e):
   ``p_e = exp2_q(t_e - mx 2^F) = T[t_e mod 2^F] >> min(mx - (t_e >> F), O + 1)``,
   ``L = sum_e p_e``; the p of each chosen expert is kept.
4. DIV (W + 4 cycles: start, bias, saturation, W + 1 quotient bits; k lanes of
   :class:`rtl.divider.DivRound`):
   ``w_r = div_round(p_r 2^W, L)`` = ``floor((p_r 2^(W+1) + L) / (2L))`` by restoring
   division (``w_r <= 2^W``: W + 1 unsigned quotient bits never saturate).
5. OUT: one beat ``(idx [k], w [k], last)``; ``last`` is copied from the input beat.

Members: ``inp`` (sink, :func:`rtl.layouts.router_in_layout`), ``out`` (source,
:func:`rtl.layouts.router_out_layout`). Throughput: E + W + 14 cycles per token
(:data:`TOKEN_CYCLES` + E + W). Every state's logic is at most 12 levels deep (the
benchmarks/synth_rtl.py measure).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.attention import exp2_rom, exp2_shift
from edgevit_hw.rtl.divider import DivRound
from edgevit_hw.rtl.hwmath import reg
from edgevit_hw.rtl.layouts import router_in_layout, router_out_layout

from edgevit_hw.core.derive import HwParams


def rank_terms(t: list, e: int) -> list[list]:
    """Per element ``i``, the comparison bits whose count is its stable descending rank."""
    out = []
    for i in range(e):
        terms = [(t[j] > t[i]) if j > i else (t[j] >= t[i]) for j in range(e) if j != i]
        out.append(terms)
    return out


def popcount(bits: list) -> Value:
    """Number of set ``bits`` by a balanced adder tree."""
    vals = [Value.cast(b) for b in bits] or [Const(0, 1)]
    while len(vals) > 1:
        nxt = [vals[i] + vals[i + 1] for i in range(0, len(vals) - 1, 2)]
        vals = nxt + (vals[len(vals) - 1 :] if len(vals) % 2 else [])
    return vals[0]


def ranks(t: list, e: int):
    """Stable descending rank of each element (ties: lower index ranks first)."""
    return [popcount(terms) for terms in rank_terms(t, e)]


def select_ranked(rk: list, k: int, idx_bits: int) -> list:
    """``idx[r]`` = the element whose rank ``rk`` is ``r``, for ``r < k``."""
    out = []
    for r in range(k):
        sel = Const(0, unsigned(idx_bits))
        for e in range(len(rk)):
            sel = sel | Mux(rk[e] == r, e, 0)
        out.append(sel)
    return out


def topk_lower_index(t: list, k: int, idx_bits: int) -> list:
    """arithmetic.topk_lower_index of the logits ``t`` (one Value per expert), combinational:
    ``idx[r]`` = the expert of stable descending rank ``r`` (ties to the lower index),
    ``r < k``, each ``idx_bits`` wide."""
    return select_ranked(ranks(t, len(t)), k, idx_bits)


# Cycles per token besides E + W: IN, CMP, RANK, SELECT, TOP, MAX (6), the EXP pipeline's 3,
# DIVSET (the divider's start), its 2 set-up cycles and the 1 of its W + 1 bits, OUT.
TOKEN_CYCLES = 14


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
        E, K, F, W = a.experts, a.top_k, a.exp_frac_bits, a.gate_weight_bits
        t = [Signal(signed(a.logit_bits), name=f"t{e}") for e in range(E)]
        ta = Array(t)
        last = Signal()
        idx = [Signal(unsigned(a.expert_index_bits), name=f"idx{r}") for r in range(K)]
        mx = Signal(signed(a.logit_bits - F + 1))
        top = Signal(signed(a.logit_bits), name="top")
        e_it = Signal(range(E + 1))
        ell = Signal(unsigned(a.gate_sum_bits))
        pch = [Signal(unsigned(a.exp_out_bits + 1), name=f"pch{r}") for r in range(K)]
        m.submodules.div = div = DivRound(K, unsigned(a.exp_out_bits + 1 + W), a.gate_sum_bits,
                                          W + 1, signed_out=False)  # fmt: skip
        m.d.comb += [div.b.eq(ell), *(div.a[r].eq(pch[r] << W) for r in range(K))]
        cmp = [Signal(E - 1, name=f"cmp{e}") for e in range(E)]
        rk = [Signal(range(E), name=f"rank{e}") for e in range(E)]
        in_exp = Signal()
        pe = self._exp(m, ta, mx, e_it, in_exp & (e_it < E))
        with m.FSM():
            with m.State("IN"):
                m.d.comb += self.inp.ready.eq(1)
                with m.If(self.inp.valid):
                    m.d.sync += [t[e].eq(self.inp.payload.t[e]) for e in range(E)]
                    m.d.sync += last.eq(self.inp.payload.last)
                    m.next = "CMP"
            with m.State("CMP"):
                terms = rank_terms(t, E)
                m.d.sync += [cmp[e].eq(Cat(*terms[e])) for e in range(E)]
                m.next = "RANK"
            with m.State("RANK"):
                m.d.sync += [rk[e].eq(popcount(list(cmp[e]))) for e in range(E)]
                m.next = "SELECT"
            with m.State("SELECT"):
                sel = select_ranked(rk, K, a.expert_index_bits)
                m.d.sync += [idx[r].eq(sel[r]) for r in range(K)]
                m.next = "TOP"
            with m.State("TOP"):
                m.d.sync += top.eq(ta[idx[0]])
                m.next = "MAX"
            with m.State("MAX"):
                m.d.sync += [mx.eq((top >> F) + (top[:F] != 0)), e_it.eq(0), ell.eq(0)]
                m.next = "EXP"
            with m.State("EXP"):
                m.d.comb += in_exp.eq(1)
                with m.If(e_it < E):
                    m.d.sync += e_it.eq(e_it + 1)
                with m.If(pe["valid"]):
                    m.d.sync += ell.eq(ell + pe["p"])
                    for r in range(K):
                        with m.If(idx[r] == pe["e"]):
                            m.d.sync += pch[r].eq(pe["p"])
                    with m.If(pe["e"] == E - 1):
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

    def _exp(self, m, ta, mx, e_it, issue) -> dict:
        """EXP pipeline (3 registers): ``t_e``; the exp2 shift ``min(mx - (t_e >> F), O + 1)``
        and ``t_e mod 2^F``; ``p_e = T[t_e mod 2^F] >> shift`` = exp2_q(t_e - mx 2^F).
        Returns ``p``, its expert ``e`` and ``valid``."""
        a = self._hw.arith
        F, O = a.exp_frac_bits, a.exp_out_bits
        v1, e1 = reg(m, 1, issue, "exp_v1"), reg(m, 1, e_it, "exp_e1")
        t1 = reg(m, 1, ta[e_it], "exp_t1")
        v2, e2 = reg(m, 1, v1, "exp_v2"), reg(m, 1, e1, "exp_e2")
        sh2 = reg(m, 1, exp2_shift(mx, t1 >> F, O), "exp_sh2")
        f2 = reg(m, 1, t1[:F], "exp_f2")
        rd = exp2_rom(m, "exp2_rom", F, O)
        m.d.comb += rd.addr.eq(f2)
        p3 = reg(m, 1, rd.data >> sh2, "exp_p3", unsigned(O + 1))
        return {"p": p3, "e": reg(m, 1, e2, "exp_e3"), "valid": reg(m, 1, v2, "exp_v3")}
