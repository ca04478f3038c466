"""Integer LayerNorm unit: arithmetic.layernorm_q, one row of D = embed_dim elements at a time.

Phases per row (``D`` = embed_dim, ``NF`` = ln_norm_frac_bits):

1. IN (D beats): store ``(x_i, g_i, b_i)`` in the row buffer, ``S = sum x_i``,
   ``Q = sum x_i^2``.
2. VAR (2 cycles): ``V = D * (D*Q - S^2) + eps`` -- the exact identity
   ``sum_i (D*x_i - S)^2 = D * (D*Q - S^2)``, so V equals the contract's
   ``sum d_i^2 + eps_q`` bit for bit (all intermediates bounded by ``2^ln_var_bits``).
3. NORM (1 cycle) and RSQRT (2 cycles per bit, 17 bits): ``(r, p)`` of rsqrt_q(V) by the
   :class:`rtl.rsqrt.RsqrtQ` search (``u = V`` normalized to ``[2^30, 2^32)``,
   ``r = max{m : m^2 * u <= 2^62}``, ``sh = 15 + p/2``).
4. OUT (D beats, pipelined, back-pressured): ``d_i = D*x_i - S``,
   ``n_i = ln_normalize(d_i * r, p) = round_shift(d_i * r, 15 + p/2 - NF)``,
   ``y_i = requant(n_i*g_i + b_i, m, s, act)``.

Members: ``inp`` (sink, :func:`rtl.layouts.ln_in_layout`; ``last`` on the row's D-th element),
``out`` (source, ``last`` on each row's last element), config inputs ``eps`` (eps_q), ``m``,
``s`` (the LayerNorm's requantization, held constant while a row is processed), and ``err``
(sticky: a row whose ``last`` did not come on its D-th element; such a row is cut or closed at
D elements and still normalized, so the unit never hangs). Throughput: 2*D + 43 cycles per row.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.hwmath import clamp, ln_normalize, reg, round_shift, sreg
from edgevit_hw.rtl.layouts import SHIFT_BITS, ln_in_layout, ln_out_layout
from edgevit_hw.rtl.rsqrt import RsqrtQ

from edgevit_hw.core.derive import HwParams


class LayerNormUnit(wiring.Component):
    def __init__(self, hw: HwParams):
        self._hw = hw
        a = hw.arith
        super().__init__(
            {
                "inp": In(stream.Signature(ln_in_layout(hw))),
                "out": Out(stream.Signature(ln_out_layout(hw))),
                "eps": In(unsigned(a.ln_var_bits)),
                "m": In(unsigned(a.mult_bits)),
                "s": In(unsigned(SHIFT_BITS)),
                "err": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        a = self._hw.arith
        dim = a.embed_dim
        lay = ln_in_layout(self._hw)
        m.submodules.row = row = Memory(shape=lay, depth=dim, init=[])
        wr, rd = row.write_port(), row.read_port(domain="sync")
        ssum = Signal(signed(a.ln_sum_bits))
        sq = Signal(unsigned(a.ln_var_bits))
        var = Signal(unsigned(a.ln_var_bits))
        t1 = Signal(signed(a.ln_var_bits + 1))
        m.submodules.rsqrt = rsq = RsqrtQ(a.ln_var_bits)
        m.d.comb += rsq.v.eq(var)
        idx = Signal(range(dim + 1))
        issue = Signal(range(dim + 1))
        out_active = Signal()
        adv = Signal()
        empty = Signal()
        x = self.inp.payload
        with m.FSM():
            with m.State("IN"):
                m.d.comb += self.inp.ready.eq(1)
                with m.If(self.inp.valid):
                    m.d.comb += [wr.en.eq(idx < dim), wr.addr.eq(idx), wr.data.eq(x)]
                    with m.If(idx < dim):
                        m.d.sync += [ssum.eq(ssum + x.x), sq.eq(sq + x.x * x.x)]
                        m.d.sync += idx.eq(idx + 1)
                    end = x.last | (idx == dim - 1)
                    with m.If(end & ~(x.last & (idx == dim - 1))):
                        m.d.sync += self.err.eq(1)
                    with m.If(end):
                        m.next = "VAR1"
            with m.State("VAR1"):
                m.d.sync += t1.eq(dim * sq - ssum * ssum)
                m.next = "VAR2"
            with m.State("VAR2"):
                m.d.sync += var.eq(dim * t1 + self.eps)
                m.next = "NORM"
            with m.State("NORM"):
                m.d.comb += rsq.start.eq(1)
                m.next = "RSQRT"
            with m.State("RSQRT"):
                with m.If(rsq.done):
                    m.d.sync += issue.eq(0)
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += out_active.eq(1)
                with m.If(adv & (issue < dim)):
                    m.d.sync += issue.eq(issue + 1)
                with m.If((issue == dim) & empty):
                    m.d.sync += [ssum.eq(0), sq.eq(0), idx.eq(0)]
                    m.next = "IN"
        vs = self._out_pipe(m, adv, rd, issue, out_active, ssum, rsq.m, rsq.p)
        m.d.comb += empty.eq(~Cat(*vs).any())
        return m

    def _out_pipe(self, m, adv, rd, issue, active, ssum, r, p):
        """Stages: read (1), d (2), d*r (3), n (4), n*g+b (5), *m (6), out (7)."""
        a = self._hw.arith
        dim = a.embed_dim
        go = active & (issue < dim)
        vs = [reg(m, adv, go, "v1")]
        m.d.comb += [rd.addr.eq(issue), rd.en.eq(adv)]
        lst = [reg(m, adv, issue == dim - 1, "last1")]
        e = rd.data
        d2 = sreg(m, adv, dim * e.x - ssum, a.ln_d_bits, "d2")
        g2, b2 = reg(m, adv, e.g, "g2"), reg(m, adv, e.b, "b2")
        dr3 = sreg(m, adv, d2 * r, a.ln_dr_bits, "dr3")
        g3, b3 = reg(m, adv, g2, "g3"), reg(m, adv, b2, "b3")
        n4 = sreg(m, adv, ln_normalize(dr3, p, a.ln_norm_frac_bits), a.ln_n_bits, "n4")
        g4, b4 = reg(m, adv, g3, "g4"), reg(m, adv, b3, "b4")
        acc5 = sreg(m, adv, n4 * g4 + b4, a.ln_acc_bits, "acc5")
        p6 = sreg(m, adv, acc5 * self.m, a.ln_prod_bits, "p6")
        y7 = sreg(m, adv, clamp(round_shift(p6, self.s), a.act_bits), a.act_bits, "y7")
        for k in range(2, 8):
            vs.append(reg(m, adv, vs[-1], f"v{k}"))
            lst.append(reg(m, adv, lst[-1], f"last{k}"))
        m.d.comb += [
            adv.eq(~vs[-1] | self.out.ready),
            self.out.valid.eq(vs[-1]),
            self.out.payload.y.eq(y7),
            self.out.payload.last.eq(lst[-1]),
        ]
        return vs
