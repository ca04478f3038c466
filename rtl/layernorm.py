"""Integer LayerNorm unit: arithmetic.layernorm_q, L lanes per beat, rows pipelined.

A row of ``D`` = embed_dim elements is ``W = ceil(D / L)`` words of ``L`` = act_lanes lanes
(one activation-memory word; lane ``l`` of word ``w`` is element ``w*L + l``; lanes past ``D``
in the last word are ignored on input and masked on output). ``NF`` = ln_norm_frac_bits.

Stages (all registered, one word per cycle; only OUT is back-pressured):

1. IN: the word's ``x`` goes to the row store, its ``(g, b)`` to the word's entry of the
   gamma/beta store; ``x_i`` and ``x_i^2`` of the lanes are summed by two adder trees (a
   register after every level) and over the row's words into ``S = sum x_i``,
   ``Q = sum x_i^2`` (accumulators split in two halves, the carry added a cycle later).
2. VAR (6 cycles): ``V = D * (D*Q - S^2) + eps`` -- the exact identity
   ``sum_i (D*x_i - S)^2 = D * (D*Q - S^2)``, so V equals the contract's ``sum d_i^2 + eps_q``
   bit for bit (all intermediates bounded by ``2^ln_var_bits``).
3. RSQRT: ``(r, p) = rsqrt_q(V)`` by :class:`rtl.rsqrt.RsqrtQ` (36 cycles, a row per cycle).
4. ROW (3 cycles): the row's constants ``Dr = D*r``, ``C = 2^(e-1) - S*r`` and the shift
   ``e = 15 + p/2 - NF``; they wait in a FIFO for OUT.
5. OUT (L lanes per cycle, 9 stages): ``d_i * r + 2^(e-1) = x_i * Dr + C`` (one product
   per lane, exact: ``d_i = D*x_i - S``), ``n_i = ln_normalize(d_i * r, p) = (x_i*Dr + C) >> e``,
   ``y_i = requant(n_i*g_i + b_i, m, s, act)`` by :func:`rtl.hwmath.requant_parts` (no wide
   adder).

Rows overlap: a row holds one of ``slots`` row-store slots (W words each) from its first word
until OUT has read its last word, and ``slots`` covers the latency from IN to OUT, so IN takes a
word per cycle while earlier rows are in VAR, RSQRT and OUT. Additions wider than the
adder trees' (about 40 bits) are split over two cycles (:func:`add2`), shifts are one
multiplexer per output bit (:func:`rtl.hwmath.select_bits`), and no product is followed by an
addition in the same cycle: the synthesis estimate (benchmarks/synth_rtl.py measure) stays at
12 logic levels or fewer.

Members: ``inp`` (sink, :func:`rtl.layouts.ln_in_layout`: ``x`` / ``g`` / ``b`` [L], ``mask``,
``last`` on the row's W-th word), ``out`` (source, :func:`rtl.layouts.ln_out_layout`: ``y``
[L], ``mask``, ``last``), config inputs ``eps`` (eps_q), ``m``, ``s`` (the LayerNorm's
requantization) and ``err`` (sticky: a word whose ``mask`` is not its position's, or a row whose
``last`` is not on its W-th word; such a row is cut or closed at W words and still normalized
(lanes of words it did not send are stale), so the unit never hangs). ``eps``, ``m``, ``s`` and
the ``g``, ``b`` of each word position are per-LayerNorm constants: they must not change while
a row is in the unit (the gamma/beta store keeps one entry per word position, not per row).

Throughput (sim/bench_layernorm.py checks it): W cycles per row; N rows take
``N*W + W + ceil(log2 L) + FILL`` cycles (:data:`FILL` = 58) from the first input word to the
last output word without back-pressure.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.data import ArrayLayout, StructLayout
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.hwmath import (
    above_mask,
    ext,
    half,
    reg,
    requant_finish,
    requant_parts,
    select_bits,
)
from edgevit_hw.rtl.layouts import SHIFT_BITS, ln_in_layout, ln_out_layout
from edgevit_hw.rtl.rsqrt import RsqrtQ

from edgevit_hw.core.derive import HwParams

IN_STAGES, SUM_STAGES, VAR_STAGES, ROW_STAGES, OUT_STAGES = 2, 2, 6, 3, 9
# a row's last input word to its first word's read by OUT: ISSUE + tree levels cycles; to its
# first output word: FILL + tree levels
ISSUE = IN_STAGES + SUM_STAGES + VAR_STAGES + RsqrtQ.LATENCY + ROW_STAGES
FILL = ISSUE + OUT_STAGES


def pipe(m: Module, expr, name: str, shape=None) -> Signal:
    """A data register (no reset) loaded every cycle."""
    return reg(m, 1, expr, name, shape, data=True)


def delay(m: Module, sig, n: int, name: str):
    """``sig`` delayed by ``n`` data registers."""
    for i in range(n):
        sig = pipe(m, sig, f"{name}_d{i}")
    return sig


def add2(m: Module, a, b, bits: int, name: str, sub: bool = False, en=1) -> Value:
    """``a + b`` (``a - b`` with ``sub``) as ``bits`` raw bits (the caller knows the value fits)
    in two cycles (registers loaded on ``en``): the low half and its carry, then the high
    half; ``a`` and ``b`` are read in the first cycle."""
    lo_n = (bits + 1) // 2
    x, y = ext(a, bits), ext(b, bits)
    y = ~y if sub else y

    def r(expr, tag: str, shape=None) -> Signal:
        return reg(m, en, expr, f"{name}_{tag}", shape, data=True)

    lo = r(x[:lo_n] + y[:lo_n] + int(sub), "lo", unsigned(lo_n + 1))
    xh, yh = r(x[lo_n:], "xh"), r(y[lo_n:], "yh")
    return Cat(r(lo[:lo_n], "l"), r(xh + yh + lo[lo_n], "h"))[:bits]


def tree(m: Module, vals: list, name: str) -> Value:
    """Sum of ``vals`` by a balanced adder tree, one register per level (``ceil(log2 n)``)."""
    level = 0
    while len(vals) > 1:
        pairs = [vals[i] + vals[i + 1] for i in range(0, len(vals) - 1, 2)]
        pairs += vals[len(vals) - 1 :] if len(vals) % 2 else []
        vals = [pipe(m, v, f"{name}{level}_{i}") for i, v in enumerate(pairs)]
        level += 1
    return vals[0]


class LayerNormUnit(wiring.Component):
    def __init__(self, hw: HwParams):
        self._hw = hw
        a = hw.arith
        self.lanes = hw.streams.act_lanes
        self.words = math.ceil(a.embed_dim / self.lanes)
        self.tree_levels = (self.lanes - 1).bit_length()
        self.slots = 2 + math.ceil((ISSUE + self.tree_levels) / self.words)
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

    def masks(self) -> tuple[int, int]:
        """(a full word's lane mask, the row's last word's)."""
        rem = self._hw.arith.embed_dim - (self.words - 1) * self.lanes
        return (1 << self.lanes) - 1, (1 << rem) - 1

    def elaborate(self, platform):
        m = Module()
        a, L = self._hw.arith, self.lanes
        gblay = StructLayout(
            {"g": ArrayLayout(signed(a.ln_gamma_bits), L), "b": ArrayLayout(signed(a.bias_bits), L)}
        )
        xmem = Memory(
            shape=ArrayLayout(signed(a.res_bits), L), depth=self.slots * self.words, init=[]
        )
        m.submodules.xmem = xmem
        m.submodules.gbmem = gbmem = Memory(shape=gblay, depth=self.words, init=[])
        used = Signal(range(self.slots + 1))
        take, free = Signal(), Signal()
        m.d.sync += used.eq(used + take - free)
        v0, e0, xs = self._in(m, xmem.write_port(), gbmem.write_port(), used, take)
        rv, rs, rq = self._sums(m, v0, e0, xs)
        fifo = self._stats(m, rv, rs, rq)
        self._out(m, fifo, xmem.read_port(), gbmem.read_port(), free)
        return m

    # ----------------------------------------------------------------------------- IN ----

    def _in(self, m: Module, xw, gbw, used, take):
        """Accepts a word when its row has a slot; returns the registered lanes (lanes past
        D zeroed), their valid and the row-end flag."""
        a, W = self._hw.arith, self.words
        w = Signal(range(W), name="in_word")
        base = Signal(range(self.slots * W), name="in_base")
        x = self.inp.payload
        m.d.comb += self.inp.ready.eq((w != 0) | (used < self.slots))
        acc = self.inp.valid & self.inp.ready
        lastw = w == W - 1
        end = x.last | lastw
        full, part = self.masks()
        m.d.comb += [
            xw.addr.eq(base + w),
            xw.data.eq(x.x),
            xw.en.eq(acc),
            gbw.addr.eq(w),
            gbw.data.eq(Cat(x.g, x.b)),
            gbw.en.eq(acc),
            take.eq(acc & (w == 0)),
        ]
        with m.If(acc):
            with m.If((end & ~(x.last & lastw)) | (x.mask != Mux(lastw, part, full))):
                m.d.sync += self.err.eq(1)
            with m.If(end):
                nb = Mux(base == (self.slots - 1) * W, 0, base + W)
                m.d.sync += [w.eq(0), base.eq(nb)]
            with m.Else():
                m.d.sync += w.eq(w + 1)
        v0 = reg(m, 1, acc, "in_v0")
        e0 = reg(m, 1, end, "in_e0")
        rem = part.bit_length()  # lanes >= rem of a row's last word are past D
        lanes = [Mux(lastw, 0, x.x[i]) if i >= rem else x.x[i] for i in range(self.lanes)]
        xs = [pipe(m, v, f"in_x{i}", signed(a.res_bits)) for i, v in enumerate(lanes)]
        return v0, e0, xs

    def _sums(self, m: Module, v0, e0, xs):
        """Row totals ``S``, ``Q`` (valid ``rv`` for one cycle, SUM_STAGES after the tree)."""
        a = self._hw.arith
        sq = [pipe(m, x * x, f"sq{i}", unsigned(2 * a.res_bits - 1)) for i, x in enumerate(xs)]
        xd = [pipe(m, x, f"xd{i}") for i, x in enumerate(xs)]
        ts, tq = tree(m, xd, "ts"), tree(m, sq, "tq")
        tv, te = v0, e0
        for i in range(1 + self.tree_levels):
            tv, te = reg(m, 1, tv, f"tv{i}"), reg(m, 1, te, f"te{i}")
        qbits = len(tq) + (self.words - 1).bit_length()  # W words of tree sums
        rs = self._accumulate(m, tv, te, ts, a.ln_sum_bits, "row_s")
        rq = self._accumulate(m, tv, te, tq, qbits, "row_q")
        return reg(m, 1, reg(m, 1, tv & te, "row_v0"), "row_v"), rs.as_signed(), rq

    def _accumulate(self, m: Module, tv, te, term, bits: int, name: str) -> Value:
        """Sum of ``term`` over a row's words into ``bits`` raw bits: the low and high halves
        accumulate separately, the low half's carry joins the high half a cycle later; at the
        row's end the halves are registered and the last carry added (2 cycles)."""
        lo_n = (bits + 1) // 2
        t = ext(term, bits)
        lo, hi = Signal(lo_n, name=f"{name}_lo"), Signal(bits - lo_n, name=f"{name}_hi")
        c = Signal(name=f"{name}_c")
        ls = lo + t[:lo_n]
        hs = hi + t[lo_n:] + c
        end_lo = Signal(lo_n + 1, name=f"{name}_el")
        end_hi = Signal(bits - lo_n, name=f"{name}_eh")
        with m.If(tv & te):
            m.d.sync += [lo.eq(0), hi.eq(0), c.eq(0), end_lo.eq(ls), end_hi.eq(hs)]
        with m.Elif(tv):
            m.d.sync += [lo.eq(ls[:lo_n]), c.eq(ls[lo_n]), hi.eq(hs)]
        with m.Else():
            m.d.sync += [hi.eq(hi + c), c.eq(0)]
        total = Cat(end_lo[:lo_n], end_hi + end_lo[lo_n])
        return pipe(m, total, f"{name}_tot", unsigned(bits))

    # ------------------------------------------------------------ VAR / RSQRT / ROW ----

    def _stats(self, m: Module, rv, rs, rq) -> SyncFIFO:
        """VAR, RSQRT and ROW; returns the FIFO of rows' ``(dr, c, e)``."""
        a, dim = self._hw.arith, self._hw.arith.embed_dim
        vb = a.ln_var_bits
        ss1 = pipe(m, rs * rs, "ss1", unsigned(2 * a.ln_sum_bits))
        dq1 = pipe(m, dim * rq, "dq1")
        t3 = add2(m, dq1, ss1, len(dq1), "t", sub=True)  # D*Q - S^2 >= 0
        dt4 = pipe(m, dim * t3, "dt4")
        v6 = add2(m, dt4, self.eps, vb, "v")
        go = delay(m, rv, VAR_STAGES, "var_v")
        m.submodules.rsqrt = rsq = RsqrtQ(vb)
        m.d.comb += [rsq.v.eq(v6), rsq.start.eq(go)]
        s_late = delay(m, rs, VAR_STAGES + RsqrtQ.LATENCY, "row_s")
        return self._row_consts(m, rsq, s_late)

    def _stat_layout(self) -> StructLayout:
        a = self._hw.arith
        dr = unsigned((a.embed_dim << 16).bit_length())  # D * r, r <= 2^16
        return StructLayout({"dr": dr, "c": signed(a.ln_dr_bits + 1), "e": unsigned(SHIFT_BITS)})

    def _row_consts(self, m: Module, rsq, s) -> SyncFIFO:
        """``Dr = D*r``, ``C = 2^(e-1) - S*r``, ``e = 15 + p/2 - NF`` into the FIFO."""
        a = self._hw.arith
        lay = self._stat_layout()
        e1 = pipe(m, (15 - a.ln_norm_frac_bits) + (rsq.p >> 1), "row_e1", unsigned(SHIFT_BITS))
        dr1 = pipe(m, a.embed_dim * rsq.m, "row_dr1", lay["dr"].shape)
        sr1 = pipe(m, s * rsq.m, "row_sr1", signed(a.ln_dr_bits))
        c3 = add2(m, half(e1)[: a.ln_dr_bits], sr1, a.ln_dr_bits + 1, "row_c", sub=True)
        m.submodules.stats = fifo = SyncFIFO(width=lay.size, depth=self.slots)
        stat = Signal(lay)
        m.d.comb += [
            stat.dr.eq(delay(m, dr1, 2, "row_dr")),
            stat.c.eq(c3),
            stat.e.eq(delay(m, e1, 2, "row_e")),
            fifo.w_data.eq(stat),
            fifo.w_en.eq(delay(m, rsq.done, ROW_STAGES, "row_v")),
        ]
        return fifo

    # ---------------------------------------------------------------------------- OUT ----

    def _out(self, m: Module, fifo, xr, gbr, free) -> None:
        """Reads the head row's words (a slot is freed when its last word is read), one per
        cycle while the output advances; every stage register holds on back-pressure."""
        W = self.words
        adv = Signal(name="out_adv")
        ow = Signal(range(W), name="out_word")
        base = Signal(range(self.slots * W), name="out_base")
        head = self._stat_layout()(fifo.r_data)
        issue = adv & fifo.r_rdy
        lastw = ow == W - 1
        m.d.comb += [xr.addr.eq(base + ow), xr.en.eq(adv), fifo.r_en.eq(issue & lastw)]
        m.d.comb += free.eq(issue & lastw)
        with m.If(issue):
            with m.If(lastw):
                nb = Mux(base == (self.slots - 1) * W, 0, base + W)
                m.d.sync += [ow.eq(0), base.eq(nb)]
            with m.Else():
                m.d.sync += ow.eq(ow + 1)
        ctl = {"v": issue, "last": lastw, "word": ow}
        stages = [{k: reg(m, adv, v, f"o1_{k}") for k, v in ctl.items()}]
        for k in range(2, OUT_STAGES + 1):
            stages.append({n: reg(m, adv, v, f"o{k}_{n}") for n, v in stages[-1].items()})
        m.d.comb += [gbr.addr.eq(stages[3]["word"]), gbr.en.eq(adv)]
        row = self._out_consts(m, adv, head)
        y = [self._lane(m, adv, xr.data[i], gbr.data, row, i) for i in range(self.lanes)]
        full, part = self.masks()
        last = stages[-1]["last"]
        m.d.comb += [
            adv.eq(~stages[-1]["v"] | self.out.ready),
            self.out.valid.eq(stages[-1]["v"]),
            self.out.payload.mask.eq(Mux(last, part, full)),
            self.out.payload.last.eq(last),
        ]
        m.d.comb += [self.out.payload.y[i].eq(y[i]) for i in range(self.lanes)]

    def _out_consts(self, m: Module, adv, head) -> dict:
        """Row constants beside the stage that uses them (``dr1`` at o1, ``c2`` at o2, ``e4``
        at o4) and the requantization's per-configuration terms."""
        a = self._hw.arith
        dr1, c1, e = (reg(m, adv, head[k], f"o1_row_{k}") for k in ("dr", "c", "e"))
        c2 = reg(m, adv, c1, "o2_row_c")
        for k in range(2, 5):
            e = reg(m, adv, e, f"o{k}_row_e")
        pb, bits = a.ln_prod_bits, a.act_bits
        hmask = above_mask(self.s, bits, pb)
        return {
            "dr1": dr1,
            "c2": c2,
            "e4": e,
            "s1": reg(m, 1, self.s - 1, "req_s1", unsigned(SHIFT_BITS)),
            "zero": reg(m, 1, self.s == 0, "req_zero"),
            "hmask": reg(m, 1, hmask, "req_hmask"),
        }

    def _lane(self, m: Module, adv, x, gb, row: dict, i: int) -> Value:
        """One lane of OUT: o1 the row store's x, o2 x*Dr, o3 and o4 + C (= d*r + 2^(e-1)),
        o5 n (g, b read beside it), o6 n*g + b, o7 *m, o8 and o9 the requantization."""
        a = self._hw.arith
        bits = a.act_bits

        def st(expr, k: int, name: str, bits: int) -> Signal:
            return reg(m, adv, expr, f"o{k}_{name}{i}", signed(bits), data=True)

        pr2 = st(x * row["dr1"], 2, "pr", a.ln_dr_bits)
        dh4 = add2(m, pr2, row["c2"], a.ln_dr_bits + 1, f"o4_dh{i}", en=adv).as_signed()
        n5 = st(select_bits(m, dh4, row["e4"], a.ln_n_bits, f"o5_sel{i}"), 5, "n", a.ln_n_bits)
        acc6 = st(n5 * gb.g[i] + gb.b[i], 6, "acc", a.ln_acc_bits)
        p7 = st(acc6 * self.m, 7, "p", a.ln_prod_bits)
        parts = requant_parts(m, p7, row["s1"], row["zero"], row["hmask"], bits, f"rq{i}")
        q8 = {k: reg(m, adv, v, f"o8_{k}{i}", data=True) for k, v in parts.items()}
        return st(requant_finish(**q8, bits=bits), 9, "y", bits)
